"""``Accumulator``, ``accumulate()`` and ``assemble()``: folding a run's events into its message."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamops import (
    Accumulator,
    ErrorEvent,
    ErrorInfo,
    Message,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RefusalDelta,
    RunEnd,
    RunStart,
    StepEnd,
    Stream,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolError,
    ToolResult,
    Usage,
    UsageEvent,
    accumulate,
    assemble,
    map,
)
from tests._util import Boom, Probe

WS = " \t\n\r\u00a0\u3000"
pieces_text = st.one_of(st.text(max_size=30), st.text(alphabet=WS, max_size=10))


@st.composite
def splits(draw: st.DrawFn, s: str) -> list[str]:
    """Any split of ``s`` into pieces, empty pieces included."""
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(s)), max_size=8)))
    bounds = [0, *cuts, len(s)]
    return [s[a:b] for a, b in itertools.pairwise(bounds)]


def interleave(draw: st.DrawFn, channels: list[list[Any]]) -> list[Any]:
    """A random interleaving that keeps each channel's own order."""
    queues = [list(c) for c in channels]
    out: list[Any] = []
    while any(queues):
        live = [q for q in queues if q]
        q = live[draw(st.integers(min_value=0, max_value=len(live) - 1))]
        out.append(q.pop(0))
    return out


@st.composite
def run_events(draw: st.DrawFn, text: str, reasoning: str, args1: str, args2: str, with_end: bool) -> list[Any]:
    r = "run-1"
    text_ev = [TextDelta(run_id=r, delta=p, block_id="t") for p in draw(splits(text))]
    reas_ev = [ReasoningDelta(run_id=r, delta=p) for p in draw(splits(reasoning))]
    call1 = [ToolCallStart(run_id=r, call_id="c1", name="search", index=0)]
    call1 += [ToolCallDelta(run_id=r, call_id="c1", delta=p, index=0) for p in draw(splits(args1))]
    call2 = [ToolCallStart(run_id=r, call_id="c2", name="search", index=1)]
    call2 += [ToolCallDelta(run_id=r, call_id="c2", delta=p, index=1) for p in draw(splits(args2))]
    if with_end and draw(st.booleans()):
        call2.append(ToolCallEnd(run_id=r, call_id="c2", name="search", arguments=args2, index=1))
    body = interleave(draw, [text_ev, reas_ev, call1, call2])
    events: list[Any] = [RunStart(run_id=r, model="m", response_id="resp"), *body]
    if with_end:
        events.append(
            RunEnd(
                run_id=r,
                finish_reason="tool_calls",
                raw_finish_reason="tool_use",
                usage=Usage(input_tokens=5, output_tokens=7),
            )
        )
    return events


def expected_message(events: list[Any], text: str, reasoning: str, args1: str, args2: str, with_end: bool) -> Message:
    calls = {
        "c1": ToolCall(id="c1", name="search", arguments=args1, index=0),
        "c2": ToolCall(id="c2", name="search", arguments=args2, index=1),
    }
    # tool calls come in order of first appearance
    order = list(dict.fromkeys(e.call_id for e in events if isinstance(e, (ToolCallStart, ToolCallDelta))))
    return Message(
        text=text,
        reasoning=reasoning,
        tool_calls=[calls[c] for c in order],
        finish_reason="tool_calls" if with_end else None,
        raw_finish_reason="tool_use" if with_end else None,
        usage=Usage(input_tokens=5, output_tokens=7) if with_end else None,
        status="completed" if with_end else None,
        run_id="run-1",
        model="m",
        response_id="resp",
    )


def fold(events: list[Any]) -> Message:
    acc = Accumulator()
    for e in events:
        acc.add(e)
    return acc.message()


@settings(max_examples=80)
@given(
    data=st.data(),
    text=pieces_text,
    reasoning=pieces_text,
    args1=pieces_text,
    args2=pieces_text,
    with_end=st.booleans(),
)
def test_message_does_not_depend_on_the_split(
    data: st.DataObject, text: str, reasoning: str, args1: str, args2: str, with_end: bool
) -> None:
    one = data.draw(run_events(text, reasoning, args1, args2, with_end))
    two = data.draw(run_events(text, reasoning, args1, args2, with_end))
    assert fold(one) == expected_message(one, text, reasoning, args1, args2, with_end)
    assert fold(two) == expected_message(two, text, reasoning, args1, args2, with_end)


@st.composite
def run_cases(draw: st.DrawFn) -> tuple[list[Any], str, str, str, bool]:
    """(events, text, reasoning, args1, with_end) of one run whose second tool call's arguments
    are ``{}``. Drawn by ``@given``, never by ``data.draw`` inside an async test: a draw that
    overruns raises hypothesis' ``StopTest`` (a BaseException) inside anyio's test-runner task,
    which then dies with it unretrieved and asyncio logs "Task exception was never retrieved"
    into whichever later test collects it."""
    text, reasoning, args1 = draw(pieces_text), draw(pieces_text), draw(pieces_text)
    with_end = draw(st.booleans())
    return draw(run_events(text, reasoning, args1, "{}", with_end)), text, reasoning, args1, with_end


@pytest.mark.anyio
@settings(max_examples=20)
@given(case=run_cases())
async def test_accumulate_and_assemble_agree_with_the_accumulator(case: tuple[list[Any], str, str, str, bool]) -> None:
    events, text, reasoning, args1, with_end = case
    expected = expected_message(events, text, reasoning, args1, "{}", with_end)
    assert await (Stream.from_iterable(events) | accumulate()).collect() == [expected]
    probe = Probe(events)
    assert await assemble(probe.gen()) == expected
    assert probe.closed


def test_whitespace_only_text_is_kept() -> None:
    msg = fold([TextDelta(delta=" "), TextDelta(delta="\n"), TextDelta(delta=""), TextDelta(delta="\t")])
    assert msg.text == " \n\t"


def test_no_reasoning_or_refusal_is_none_but_empty_delta_is_empty() -> None:
    msg = fold([TextDelta(delta="x")])
    assert msg.reasoning is None
    assert msg.refusal is None
    msg = fold([ReasoningDelta(delta=""), RefusalDelta(delta="")])
    assert msg.reasoning == ""
    assert msg.refusal == ""


def test_refusal_signatures_redacted_and_error() -> None:
    msg = fold(
        [
            RefusalDelta(delta="I can"),
            RefusalDelta(delta="'t"),
            ReasoningSignature(signature="sig1"),
            RedactedReasoning(data="enc1"),
            ReasoningSignature(signature="sig2"),
            ErrorEvent(error_type="overloaded_error", message="first"),
            ErrorEvent(error_type="api_error", message="last"),
        ]
    )
    assert msg.refusal == "I can't"
    assert msg.reasoning_signatures == ["sig1", "sig2"]
    assert msg.redacted_reasoning == ["enc1"]
    assert msg.error == ErrorInfo(type="api_error", message="last")


# ----------------------------------------------------------------------------- tool calls


def test_interleaved_tool_calls_are_keyed_by_call_id() -> None:
    msg = fold(
        [
            ToolCallStart(call_id="a", name="get_weather", index=0),
            ToolCallStart(call_id="b", name="get_weather", index=1),
            ToolCallDelta(call_id="b", delta='{"city": ', index=1),
            ToolCallDelta(call_id="a", delta='{"city": ', index=0),
            ToolCallDelta(call_id="a", delta='"Paris"}', index=0),
            ToolCallDelta(call_id="b", delta='"Oslo"}', index=1),
            ToolResult(call_id="b", name="get_weather", result={"t": -3}),
            ToolError(call_id="a", name="get_weather", message="timeout", error_type="TimeoutError"),
        ]
    )
    assert msg.tool_calls == [
        ToolCall(id="a", name="get_weather", arguments='{"city": "Paris"}', index=0),
        ToolCall(id="b", name="get_weather", arguments='{"city": "Oslo"}', index=1),
    ]
    assert set(msg.tool_results) == {"a", "b"}
    assert isinstance(msg.tool_results["a"], ToolError)
    assert msg.tool_results["a"].message == "timeout"
    result_b = msg.tool_results["b"]
    assert isinstance(result_b, ToolResult)
    assert result_b.result == {"t": -3}
    assert "get_weather" not in msg.tool_results


def test_tool_call_end_replaces_the_streamed_arguments() -> None:
    msg = fold(
        [
            ToolCallStart(call_id="a", name="f"),
            ToolCallDelta(call_id="a", delta='{"x": 1'),
            ToolCallEnd(call_id="a", name="f", arguments='{"x": 1}'),
        ]
    )
    assert msg.tool_calls == [ToolCall(id="a", name="f", arguments='{"x": 1}')]


def test_tool_call_order_is_first_appearance_and_name_arrives_late() -> None:
    msg = fold(
        [
            ToolCallDelta(call_id="b", delta="{}"),
            ToolCallStart(call_id="a", name="first"),
            ToolCallEnd(call_id="b", name="late_name", arguments="{}"),
        ]
    )
    assert [(c.id, c.name) for c in msg.tool_calls] == [("b", "late_name"), ("a", "first")]


# ----------------------------------------------------------------------------- usage


def test_cumulative_usage_reports_overlay() -> None:
    msg = fold(
        [
            UsageEvent(usage=Usage(input_tokens=10, cache_read_tokens=4)),
            UsageEvent(usage=Usage(output_tokens=1)),
            UsageEvent(usage=Usage(output_tokens=7)),
        ]
    )
    assert msg.usage == Usage(input_tokens=10, output_tokens=7, cache_read_tokens=4)


def test_incremental_usage_reports_add() -> None:
    msg = fold(
        [
            UsageEvent(usage=Usage(output_tokens=3), cumulative=False),
            UsageEvent(usage=Usage(output_tokens=4), cumulative=False),
            UsageEvent(usage=Usage(input_tokens=2, output_tokens=1), cumulative=False),
        ]
    )
    assert msg.usage == Usage(input_tokens=2, output_tokens=8)


def test_run_end_usage_wins() -> None:
    msg = fold(
        [
            UsageEvent(usage=Usage(input_tokens=10, output_tokens=3, reasoning_tokens=1)),
            UsageEvent(usage=Usage(output_tokens=5), cumulative=False),
            RunEnd(usage=Usage(input_tokens=11, output_tokens=9)),
            UsageEvent(usage=Usage(output_tokens=100)),  # after the end: the end still wins
        ]
    )
    assert msg.usage is not None
    assert msg.usage.input_tokens == 11
    assert msg.usage.output_tokens == 9
    assert msg.usage.reasoning_tokens == 1  # not reported by the end: kept


def test_run_end_usage_alone_and_no_usage() -> None:
    assert fold([RunEnd(usage=Usage(output_tokens=2))]).usage == Usage(output_tokens=2)
    assert fold([TextDelta(delta="x"), RunEnd()]).usage is None


def test_finish_reason_is_never_invented() -> None:
    msg = fold([TextDelta(delta="x"), StepEnd(), RunEnd(status="failed")])
    assert msg.finish_reason is None
    assert msg.raw_finish_reason is None
    assert msg.status == "failed"
    msg = fold([StepEnd(finish_reason="length", raw_finish_reason="max_tokens"), RunEnd(status="length")])
    assert (msg.finish_reason, msg.raw_finish_reason, msg.status) == ("length", "max_tokens", "length")


def test_message_is_a_snapshot() -> None:
    acc = Accumulator()
    acc.add(TextDelta(delta="a"))
    acc.add(ToolCallDelta(call_id="c", delta="{"))
    first = acc.message()
    acc.add(TextDelta(delta="b"))
    acc.add(ToolCallDelta(call_id="c", delta="}"))
    assert first.text == "a"
    assert first.tool_calls[0].arguments == "{"
    second = acc.message()
    assert second.text == "ab"
    assert second.tool_calls[0].arguments == "{}"
    assert acc.message() == second
    assert acc.message() is not second


def test_unknown_items_are_ignored() -> None:
    msg = fold(["not an event", 3, None, TextDelta(delta="x")])
    assert msg.text == "x"


# ----------------------------------------------------------------------------- per run


@pytest.mark.anyio
async def test_interleaved_runs_give_one_message_each_at_its_run_end() -> None:
    log: list[Any] = []
    events = [
        RunStart(run_id="A", agent="alice"),
        RunStart(run_id="B", agent="bob"),
        TextDelta(run_id="A", delta="Hello"),
        TextDelta(run_id="B", delta="Hi"),
        TextDelta(run_id="A", delta=" there"),
        RunEnd(run_id="B", finish_reason="stop"),
        TextDelta(run_id="A", delta="!"),
        RunEnd(run_id="A", finish_reason="length"),
    ]
    probe = Probe(events, log=log)
    async with (probe.stream() | accumulate()).iterate() as it:
        async for msg in it:
            log.append(("got", msg.run_id))
            assert isinstance(msg, Message)
    got = [e for e in log if e[0] == "got"]
    assert got == [("got", "B"), ("got", "A")]
    # each message came right when its run end was pulled, before the next event
    b = log.index(("got", "B"))
    assert log[b - 1] == ("source", "yield", events[5])
    a = log.index(("got", "A"))
    assert log[a - 1] == ("source", "yield", events[7])


@pytest.mark.anyio
async def test_interleaved_runs_fold_separately() -> None:
    events = [
        TextDelta(run_id="A", agent="alice", delta="Hel"),
        TextDelta(run_id="B", agent="bob", delta="Hi"),
        ToolCallStart(run_id="A", call_id="x", name="t"),
        UsageEvent(run_id="B", usage=Usage(output_tokens=2)),
        TextDelta(run_id="A", agent="alice", delta="lo"),
        RunEnd(run_id="A", status="completed", finish_reason="stop"),
        RunEnd(run_id="B", status="cancelled"),
    ]
    msgs = await (Stream.from_iterable(events) | accumulate()).collect()
    assert [(m.run_id, m.agent, m.text, m.status) for m in msgs] == [
        ("A", "alice", "Hello", "completed"),
        ("B", "bob", "Hi", "cancelled"),
    ]
    assert [c.id for c in msgs[0].tool_calls] == ["x"]
    assert msgs[1].tool_calls == []
    assert msgs[1].usage == Usage(output_tokens=2)
    assert msgs[0].usage is None


@pytest.mark.anyio
async def test_partial_message_at_end_without_run_end() -> None:
    events = [RunStart(run_id="r"), TextDelta(run_id="r", delta="cut "), TextDelta(run_id="r", delta="off")]
    msgs = await (Stream.from_iterable(events) | accumulate() | map(lambda m: (m.text, m.status))).collect()
    assert msgs == [("cut off", None)]
    # and a second run id that ended gives its message first, the open one at the end
    events2 = [TextDelta(run_id="o", delta="open"), RunEnd(run_id="d")]
    msgs2 = await (Stream.from_iterable(events2) | accumulate()).collect()
    assert [(m.run_id, m.text, m.status) for m in msgs2] == [("d", "", "completed"), ("o", "open", None)]


@pytest.mark.anyio
async def test_accumulate_of_an_empty_stream_is_empty() -> None:
    assert await (Stream.from_iterable([]) | accumulate()).collect() == []
    assert await assemble(Stream.from_iterable([])) == Message()


@pytest.mark.anyio
async def test_accumulate_state_is_per_iteration() -> None:
    s = Stream.from_iterable([TextDelta(delta="a"), TextDelta(delta="b")]) | accumulate()
    assert [m.text for m in await s.collect()] == ["ab"]
    assert [m.text for m in await s.collect()] == ["ab"]


@pytest.mark.anyio
async def test_assemble_propagates_a_source_error_and_closes() -> None:
    probe = Probe([TextDelta(delta="x")], raise_at=1)
    with pytest.raises(Boom) as info:
        await assemble(probe.stream())
    assert info.value is probe.error
    assert probe.closed


@pytest.mark.anyio
async def test_agents_without_run_ids_fold_separately() -> None:
    events = [
        TextDelta(agent="alice", delta="Hel"),
        TextDelta(agent="bob", delta="Hi"),
        TextDelta(agent="alice", delta="lo"),
        RunEnd(agent="bob", status="completed"),
        RunEnd(agent="alice", status="completed"),
    ]
    msgs = await (Stream.from_iterable(events) | accumulate()).collect()
    assert [(m.agent, m.text) for m in msgs] == [("bob", "Hi"), ("alice", "Hello")]
