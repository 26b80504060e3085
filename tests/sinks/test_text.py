"""Plain text output (:class:`~streamops.sinks.text.PlainTextEncoder`, the terminal renderer's
plain mode): the same bytes as the renderer before it became an encoder, text deltas verbatim.

``tests/fixtures/render_plain.json`` holds the output of every case of
``tests/sinks/_render_cases.py`` as the old renderer (commit b2df955) wrote it, except two cases
changed on purpose (docs/decisions.md, "The terminal renderer over block events"): with labels,
a block's end ends its line, so two consecutive blocks of one agent no longer glue their words
(``anthropic/messages_code_execution_emoji_pyd | merged``,
``azure_openai/responses_azure_reasoning_summary | merged``).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamops.events as ev
from streamops._stream import Stream
from streamops.sinks import PlainTextEncoder, TerminalRenderer, encoded
from tests.sinks._render_cases import FIXTURE, cases, nested_run

EXPECTED: dict[str, str] = json.loads(FIXTURE.read_text(encoding="utf-8"))
CASES = list(cases())


def plain(events: list[Any], **options: Any) -> str:
    buf = io.StringIO()
    renderer = TerminalRenderer(buf, **options)
    assert not renderer.live
    for e in events:
        renderer.send(e)
    renderer.close()
    return buf.getvalue()


def encoder_text(events: list[ev.BaseEvent], **options: Any) -> str:
    """The encoder alone, sans-IO: every event's pieces, then close()'s."""
    enc = PlainTextEncoder(**options)
    frames = [enc.encode_frames(e) for e in events]
    return (b"".join(frames) + enc.close_frames()).decode()


def test_every_case_is_pinned() -> None:
    assert sorted(name for name, _, _ in CASES) == sorted(EXPECTED)
    assert len(EXPECTED) == 3 * 67 + 7


@pytest.mark.parametrize(("name", "events", "options"), CASES, ids=[c[0] for c in CASES])
def test_plain_output_is_the_pinned_output(name: str, events: list[ev.BaseEvent], options: dict[str, Any]) -> None:
    out = plain(events, **options)
    assert out == EXPECTED[name]
    assert encoder_text(events, **options) == out


def test_labelled_blocks_end_their_lines() -> None:
    # the deliberate change: two reasoning summary parts (two blocks) no longer glue their words
    evs = [
        ev.ReasoningDelta(agent="a", delta="part one.", block_id="s0"),
        ev.ReasoningDelta(agent="a", delta="**Part two**", block_id="s1"),
        ev.TextDelta(agent="a", delta="Answer", block_id="t"),
        ev.TextDelta(agent="a", delta=" one.", block_id="t"),
        ev.TextDelta(agent="a", delta="Answer two.", block_id="t2"),
    ]
    assert plain(evs) == ("a thinking: part one.\na thinking: **Part two**\na Answer one.\na Answer two.\n")
    # unlabelled, the deltas are the output, as they came
    assert plain(evs, labels=False) == "thinking: part one.**Part two**\nAnswer one.Answer two.\n"


def test_events_the_terminal_does_not_show_never_split_a_line() -> None:
    evs = [
        ev.TextDelta(agent="a", delta="one ", block_id="t"),
        ev.PartialObject(agent="a", value={}),
        ev.ReasoningSignature(agent="a", signature="sig", block_id="t"),
        ev.CustomEvent(agent="a", name="n"),
        ev.UsageEvent(agent="a", usage=ev.Usage(output_tokens=1)),
        ev.TextDelta(agent="a", delta="line", block_id="t"),
        ev.RunEnd(agent="a"),
    ]
    assert plain(evs) == "a one line\na run end: completed\n"


def test_merged_two_agents_take_turns_line_by_line() -> None:
    evs = [
        ev.RunStart(agent="alpha", model="m1"),
        ev.RunStart(agent="beta", model="m2"),
        ev.TextDelta(agent="alpha", delta="Roses are", block_id="t"),
        ev.TextDelta(agent="beta", delta="One fish\ntwo", block_id="t"),
        ev.TextDelta(agent="alpha", delta=" red\nviolets", block_id="t"),
        ev.ToolCallStart(agent="beta", call_id="c", name="count"),
        ev.ToolCallEnd(agent="beta", call_id="c", name="count", arguments='{"n": 2}'),
        ev.TextDelta(agent="alpha", delta=" are blue", block_id="t"),
        ev.RunEnd(agent="alpha", finish_reason="stop"),
        ev.RunEnd(agent="beta", status="cancelled"),
    ]
    assert plain(evs).splitlines() == [
        "alpha model m1",
        "beta model m2",
        "beta One fish",
        "alpha Roses are red",
        "beta two",  # its block ended at the tool call
        'beta tool call count({"n": 2})',
        "alpha violets are blue",
        "alpha run end: completed, finish stop",
        "beta run end: cancelled",
    ]


def test_nested_runs_keep_their_own_lines_and_run_ends() -> None:
    out = plain(nested_run())
    assert out == EXPECTED["nested run"]
    assert "researcher run end: completed, finish stop, tokens out 9\n" in out  # not lowered to a custom event
    assert "sub-run" not in out


@pytest.mark.anyio
async def test_a_source_that_fails_mid_block_ends_with_its_error_line(anyio_backend: str) -> None:
    async def source() -> AsyncIterator[ev.BaseEvent]:
        yield ev.RunStart(model="m")
        yield ev.TextDelta(delta="Half a ", block_id="t")
        yield ev.TextDelta(delta="sentence", block_id="t")
        raise ConnectionError("reset by peer")

    chunks: list[bytes] = []
    with pytest.raises(ConnectionError, match="reset by peer"):
        async with encoded(source(), PlainTextEncoder()).iterate() as it:
            async for chunk in it:
                chunks.append(chunk)
    assert b"".join(chunks).decode() == "model m\nHalf a sentence\nerror ConnectionError: reset by peer\n"


@pytest.mark.anyio
async def test_encoded_bytes_are_the_renderer_output(anyio_backend: str) -> None:
    name, events, options = CASES[0]
    body = await encoded(Stream.from_iterable(events), PlainTextEncoder(**options)).collect()
    assert b"".join(body).decode() == EXPECTED[name]


def test_a_lone_surrogate_is_framed_as_a_replacement_character() -> None:
    assert PlainTextEncoder().encode_frames(ev.TextDelta(delta="a\ud800b")) == "a\ufffdb".encode()


def test_a_non_event_is_a_line_of_its_own() -> None:
    out = plain([ev.TextDelta(delta="partial"), "a note [not markup]", ev.TextDelta(delta="more")])
    assert out == "partial\na note [not markup]\nmore\n"


def test_colour_console_styles_labels_but_keeps_text_verbatim() -> None:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="standard", width=20)
    renderer = TerminalRenderer(console=console, live=False)
    long = "a line much longer than the twenty columns of this console\t[b]x[/b] :smile:"
    renderer.send(ev.TextDelta(agent="", delta=long))
    renderer.send(ev.ToolResult(agent="alpha", call_id="c", name="f", result=":smile:"))
    renderer.close()
    out = buf.getvalue()
    assert long + "\n" in out  # not wrapped, tabs, markup and emoji codes kept
    assert "\x1b[1;36malpha\x1b[0m" in out  # the label in the agent's colour
    assert "-> ':smile:'\n" in out


# -- property: every text delta, in order, byte for byte, per agent --------------------------

TEXT = "0123456789 \t\r[]/é😀\n"  # no letters: every other line of the output has some
AGENTS = ("", "a", "b")


def _events(draw: st.DrawFn) -> ev.BaseEvent:
    env: dict[str, Any] = {"run_id": draw(st.sampled_from(("r1", "r2"))), "agent": draw(st.sampled_from(AGENTS))}
    text = draw(st.text(TEXT, max_size=8))
    block = {"block_id": draw(st.sampled_from(("0", "1", None)))}
    call = {"call_id": draw(st.sampled_from(("c1", "c2")))}
    return draw(
        st.sampled_from(
            [
                *[ev.TextDelta(delta=text, **block, **env)] * 4,
                ev.ReasoningDelta(delta=text, **block, **env),
                ev.RefusalDelta(delta="no", **block, **env),
                ev.ReasoningSignature(signature="s", **block, **env),
                ev.ToolCallStart(name="f", **call, **env),
                ev.ToolCallDelta(delta="{", **call, **env),
                ev.ToolCallEnd(name="f", arguments="{}", **call, **env),
                ev.UsageEvent(usage=ev.Usage(output_tokens=1), **env),
                ev.StepStart(**env),
                ev.RunStart(model="m", **env),
                ev.RunEnd(**env),
                ev.CustomEvent(name="n", **env),
                ev.PartialObject(value=1, **env),
                ev.ErrorEvent(error_type="E", message="m", **env),
                ev.BlockStart(block="text", **block, **env),  # block events in the input are derived again
                ev.BlockEnd(block="text", **block, **env),
            ]
        )
    )


one_event = st.composite(_events)


def found_in_order(out: str, pieces: list[str]) -> bool:
    pos = 0
    for piece in pieces:
        found = out.find(piece, pos)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


@settings(max_examples=200, deadline=None)
@given(events=st.lists(one_event(), max_size=50), labels=st.booleans(), show_reasoning=st.booleans())
def test_every_text_delta_is_in_the_output_in_order_per_agent(
    events: list[ev.BaseEvent], labels: bool, show_reasoning: bool
) -> None:
    out = plain(events, labels=labels, show_reasoning=show_reasoning)
    assert encoder_text(events, labels=labels, show_reasoning=show_reasoning) == out
    assert out == "" or out.endswith("\n")
    for agent in AGENTS:
        deltas = [e.delta for e in events if isinstance(e, ev.TextDelta) and e.agent == agent and e.delta]
        if labels and agent:
            # whole lines, each after the agent's label: the agent's text is its text lines
            lines = [ln[len(agent) + 1 :] for ln in out.split("\n") if ln.startswith(agent + " ")]
            text = "".join(ln + "\n" for ln in lines if set(ln) <= set(TEXT))
        else:
            text = out  # written as they come
        assert found_in_order(text, deltas), (agent, deltas, out)


@settings(max_examples=100, deadline=None)
@given(deltas=st.lists(st.text(TEXT + "abc*#", max_size=10), max_size=20), block_ids=st.lists(st.sampled_from("xy")))
def test_one_unlabelled_agents_text_is_the_output(deltas: list[str], block_ids: list[str]) -> None:
    evs = [
        ev.TextDelta(delta=d, block_id=(block_ids[i % len(block_ids)] if block_ids else None))
        for i, d in enumerate(deltas)
    ]
    text = "".join(deltas)
    assert plain(evs) == (text + "\n" if evs else "")
