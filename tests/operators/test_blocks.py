"""``blocks()`` / ``BlockSplitter``: explicit start and end of text, reasoning, refusal and
tool-call blocks, per run and agent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamops import Stream
from streamops.events import (
    BaseEvent,
    BlockEnd,
    BlockStart,
    CustomEvent,
    ReasoningDelta,
    ReasoningSignature,
    RefusalDelta,
    RunEnd,
    RunStart,
    StepStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageEvent,
    from_json,
    to_json,
)
from streamops.operators import BlockSplitter, blocks, merge

pytestmark = pytest.mark.anyio

RUNS = ("r1", "r2")


@st.composite
def one_event(draw: st.DrawFn) -> BaseEvent:
    env: dict[str, Any] = {"run_id": draw(st.sampled_from(RUNS)), "agent": draw(st.sampled_from(("", "a"))), "seq": 0}
    bid = draw(st.sampled_from(("0", "1", None)))
    cid = draw(st.sampled_from(("c1", "c2")))
    kind = draw(st.integers(0, 11))
    if kind == 0:
        return TextDelta(delta=draw(st.sampled_from(("x", "", " "))), block_id=bid, **env)
    if kind == 1:
        return ReasoningDelta(delta="r", block_id=bid, **env)
    if kind == 2:
        return RefusalDelta(delta="no", block_id=bid, **env)
    if kind == 3:
        return ReasoningSignature(signature="s", block_id=bid, **env)
    if kind == 4:
        return ToolCallStart(call_id=cid, name="f", **env)
    if kind == 5:
        return ToolCallDelta(call_id=cid, delta="{", **env)
    if kind == 6:
        return ToolCallEnd(call_id=cid, name="f", arguments="{}", **env)
    if kind == 7:
        return UsageEvent(usage=Usage(output_tokens=1), **env)
    if kind == 8:
        return StepStart(**env)
    if kind == 9:
        return CustomEvent(name="n", **env)
    if kind == 10:
        return RunStart(**env)
    return TextDelta(delta="y", block_id=bid, **env)


events_lists = st.lists(one_event(), max_size=40).map(
    lambda evs: [*evs, *(RunEnd(run_id=r, agent=a, seq=0) for r in RUNS for a in ("", "a") if draw_end(evs, r, a))]
)


def draw_end(evs: list[BaseEvent], run: str, agent: str) -> bool:
    return any(e.run_id == run and e.agent == agent for e in evs) and len(evs) % 2 == 0


def _key(e: BaseEvent) -> tuple[str, str]:
    return (e.run_id, e.agent)


def check_blocks(inp: list[BaseEvent], out: list[BaseEvent]) -> None:
    """The invariants of blocks(): the input passes unchanged and in order, every start has
    exactly one end, deltas are inside their block, blocks of one run and agent never overlap
    wrongly (one content block at a time, never while a tool call is open... per call)."""
    assert [e for e in out if not isinstance(e, (BlockStart, BlockEnd))] == [
        e for e in inp if not isinstance(e, (BlockStart, BlockEnd))
    ]
    content: dict[tuple[str, str], BlockStart] = {}
    calls: dict[tuple[str, str], dict[str, BlockStart]] = {}
    started = 0
    for e in out:
        k = _key(e)
        if isinstance(e, BlockStart):
            started += 1
            if e.block == "tool-call":
                assert e.call_id is not None and e.call_id not in calls.setdefault(k, {})
                assert k not in content  # a content block never spans a tool call
                calls[k][e.call_id] = e
            else:
                assert k not in content, "two content blocks of one run open at once"
                content[k] = e
        elif isinstance(e, BlockEnd):
            if e.block == "tool-call":
                start = calls.get(k, {}).pop(e.call_id or "", None)
                assert start is not None, "an end without its start"
            else:
                start = content.pop(k, None)
                assert start is not None and (start.block, start.block_id) == (e.block, e.block_id)
        elif isinstance(e, (TextDelta, RefusalDelta, ReasoningDelta, ReasoningSignature)):
            block = {TextDelta: "text", RefusalDelta: "refusal"}.get(type(e), "reasoning")
            open_ = content.get(k)
            assert open_ is not None and (open_.block, open_.block_id) == (block, e.block_id)
        elif isinstance(e, (ToolCallStart, ToolCallEnd)):
            assert e.call_id in calls.get(k, {}), "a tool-call event outside its block"
            assert k not in content
        elif isinstance(e, RunEnd):
            assert k not in content and not calls.get(k), "a block still open at its run's end"
        elif isinstance(e, ToolCallDelta):
            assert k not in content
    assert not content and not any(calls.values()), "a block never ended"
    assert started == sum(isinstance(e, BlockEnd) for e in out)


@settings(max_examples=150, deadline=None)
@given(inp=events_lists)
def test_sans_io_invariants_and_idempotence(inp: list[BaseEvent]) -> None:
    s = BlockSplitter()
    out = [x for e in inp for x in s.feed(e)] + s.flush()
    check_blocks(inp, out)
    again = BlockSplitter()
    assert [x for e in out for x in again.feed(e)] + again.flush() == out  # block events re-derived


@settings(max_examples=40, deadline=None)
@given(inp=events_lists)
async def test_the_operator_is_the_splitter_fused(inp: list[BaseEvent]) -> None:
    out = await (Stream.from_iterable(inp) | blocks()).collect()
    s = BlockSplitter()
    assert out == [x for e in inp for x in s.feed(e)] + s.flush()
    assert (Stream.from_iterable(inp) | blocks()).stages == ("blocks",)


@settings(max_examples=30, deadline=None)
@given(a=events_lists, b=events_lists)
async def test_merged_runs_keep_their_own_blocks(a: list[BaseEvent], b: list[BaseEvent]) -> None:
    a = [e for e in a if e.run_id == "r1"]
    b = [e for e in b if e.run_id == "r2"]
    merged = await merge(Stream.from_iterable(a), Stream.from_iterable(b)).collect()
    out = await (Stream.from_iterable(merged) | blocks()).collect()
    check_blocks(merged, out)
    # each run's blocks are those it has alone
    for run, alone in (("r1", a), ("r2", b)):
        mine = [e for e in out if e.run_id == run]
        assert mine == await (Stream.from_iterable(alone) | blocks()).collect()


def test_exact_blocks_of_a_small_run() -> None:
    e: dict[str, Any] = {"run_id": "r"}
    inp: list[BaseEvent] = [
        RunStart(seq=0, **e),
        ReasoningDelta(delta="hm", block_id="0", seq=1, **e),
        ReasoningSignature(signature="sig", block_id="0", seq=2, **e),
        TextDelta(delta="Hi", block_id="1", seq=3, **e),
        UsageEvent(usage=Usage(output_tokens=1), seq=4, **e),
        TextDelta(delta="!", block_id="1", seq=5, **e),
        ToolCallStart(call_id="c", name="f", seq=6, **e),
        ToolCallDelta(call_id="c", delta="{}", seq=7, **e),
        ToolCallEnd(call_id="c", name="f", arguments="{}", seq=8, **e),
        ToolCallEnd(call_id="d", name="g", arguments="{}", seq=9, **e),
        ToolCallStart(call_id="open", name="h", seq=10, **e),
        RunEnd(seq=11, **e),
    ]
    out = BlockSplitter()
    got = [x for ev in inp for x in out.feed(ev)] + out.flush()
    marks = [
        (x.kind, x.block, x.block_id or x.call_id, x.seq) if isinstance(x, (BlockStart, BlockEnd)) else x.kind
        for x in got
    ]
    assert marks == [
        "run-start",
        ("block-start", "reasoning", "0", 1),
        "reasoning-delta",
        "reasoning-signature",
        ("block-end", "reasoning", "0", 2),
        ("block-start", "text", "1", 3),
        "text-delta",
        "usage",
        "text-delta",
        ("block-end", "text", "1", 5),
        ("block-start", "tool-call", "c", 6),
        "tool-call-start",
        "tool-call-delta",
        "tool-call-end",
        ("block-end", "tool-call", "c", 8),
        ("block-start", "tool-call", "d", 9),
        "tool-call-end",
        ("block-end", "tool-call", "d", 9),
        ("block-start", "tool-call", "open", 10),
        "tool-call-start",
        ("block-end", "tool-call", "open", 10),
        "run-end",
    ]
    assert got[-2].name == "h"  # type: ignore[attr-defined]


def test_a_delta_of_a_call_that_never_started_is_outside_any_block() -> None:
    s = BlockSplitter()
    d = ToolCallDelta(call_id="x", delta="{")
    assert s.feed(d) == [d] and s.flush() == []


def test_the_stream_end_closes_what_is_open() -> None:
    s = BlockSplitter()
    s.feed(TextDelta(delta="a", run_id="r", agent="x"))
    s.feed(ToolCallStart(call_id="c", name="f", run_id="r", agent="y"))
    ends = s.flush()
    assert [(e.kind, e.block, e.agent) for e in ends if isinstance(e, BlockEnd)] == [
        ("block-end", "text", "x"),
        ("block-end", "tool-call", "y"),
    ]


def test_block_events_round_trip_through_json() -> None:
    for ev in (
        BlockStart(block="tool-call", call_id="c", name="f", run_id="r", seq=3),
        BlockEnd(block="reasoning", block_id="0", agent="a/b"),
    ):
        assert from_json(to_json(ev)) == ev
