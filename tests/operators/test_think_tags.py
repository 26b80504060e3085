"""``think_tags``: reasoning written inline as ``<think>...</think>`` becomes reasoning deltas,
whatever the deltas' cuts (issue 15 item 17)."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import streamops as so
from streamops import ReasoningDelta, RunEnd, Stage, TextDelta, ToolCallStart, think_tags
from streamops.testing import virtual_backends


def run_stage(stage: Any, events: list[Any]) -> list[Any]:
    """Drive a Stage synchronously: push every event, then end."""
    assert isinstance(stage, Stage)
    out: list[Any] = []
    ended: list[bool] = []
    push, end = stage.bind(out.append, lambda: ended.append(True))
    for e in events:
        push(e)
    end()
    assert ended == [True]
    return out


def reference(
    s: str, open_tag: str = "<think>", close_tag: str = "</think>", inside: bool = False
) -> list[tuple[str, str]]:
    """The whole text split at the tags, as ``(kind, text)`` segments (the specification)."""
    segs: list[tuple[str, str]] = []
    while True:
        tag = close_tag if inside else open_tag
        i = s.find(tag)
        part = s if i < 0 else s[:i]
        kind = "reasoning" if inside else "text"
        if part and segs and segs[-1][0] == kind:  # <think></think> between: one segment
            segs[-1] = (kind, segs[-1][1] + part)
        elif part:
            segs.append((kind, part))
        if i < 0:
            return segs
        s = s[i + len(tag) :]
        inside = not inside


def segments(events: list[Any]) -> list[tuple[str, str]]:
    """Consecutive deltas of one kind joined: what a reader sees."""
    segs: list[tuple[str, str]] = []
    for e in events:
        kind = "reasoning" if isinstance(e, ReasoningDelta) else "text"
        assert e.delta, "no empty delta is emitted"
        if segs and segs[-1][0] == kind:
            segs[-1] = (kind, segs[-1][1] + e.delta)
        else:
            segs.append((kind, e.delta))
    return segs


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


PIECES = ["<think>", "</think>", "<", "</", "<th", "ink>", "think", ">", "a", "b c", "\n", "é", "🙂", "<<", "/"]
texts_st = st.lists(st.sampled_from(PIECES), max_size=25).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts_st, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30), opened=st.booleans())
@example(text="<think>hmm</think>Hi", cuts=[4, 14], opened=False)
@example(text="<<think>x</think", cuts=[1], opened=False)
def test_any_split_gives_the_same_reasoning_and_text(text: str, cuts: list[int], opened: bool) -> None:
    """Property: for any cut of the text into deltas, the output's text and reasoning (in
    order, joined per kind) are the text split at the tags as a whole."""
    deltas = [TextDelta(delta=p, run_id="r") for p in split_at(text, cuts)]
    out = run_stage(think_tags(opened=opened), deltas)
    assert segments(out) == reference(text, inside=opened)
    assert all(e.run_id == "r" for e in out)


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(texts_st, min_size=2, max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    order=st.lists(st.integers(min_value=0, max_value=2), max_size=60),
)
def test_interleaved_runs_are_split_independently(texts: list[str], cuts: list[int], order: list[int]) -> None:
    """Property: merging k runs' deltas in any interleaving, then splitting, gives each run
    what splitting it alone gives."""
    queues = [[TextDelta(delta=p, run_id=f"r{k}") for p in split_at(t, cuts)] for k, t in enumerate(texts)]
    merged: list[Any] = []
    pick = iter(order)
    while any(queues):
        k = next(pick, 0) % len(queues)
        k = next(i for i in [*range(k, len(queues)), *range(k)] if queues[i])
        merged.append(queues[k].pop(0))
    out = run_stage(think_tags(), merged)
    for k, t in enumerate(texts):
        assert segments([e for e in out if e.run_id == f"r{k}"]) == reference(t)


def test_docstring_marble_and_envelope() -> None:
    src = [
        TextDelta(delta="<thi", run_id="r", agent="a", seq=1, block_id="b"),
        TextDelta(delta="nk>hmm</th", run_id="r", agent="a", seq=2, block_id="b"),
        TextDelta(delta="ink>Hi", run_id="r", agent="a", seq=3, block_id="b"),
    ]
    out = run_stage(think_tags(), src)
    assert [(type(e).__name__, e.delta) for e in out] == [("ReasoningDelta", "hmm"), ("TextDelta", "Hi")]
    assert [(e.run_id, e.agent, e.seq, e.block_id) for e in out] == [("r", "a", 2, "b"), ("r", "a", 3, "b")]


def test_held_tail_goes_out_before_another_event_of_its_run_and_at_the_end() -> None:
    call = ToolCallStart(run_id="r", call_id="c1", name="f")
    out = run_stage(think_tags(), [TextDelta(delta="a <", run_id="r"), call, TextDelta(delta="x <th", run_id="r")])
    assert [(e.kind, getattr(e, "delta", None)) for e in out] == [
        ("text-delta", "a "),
        ("text-delta", "<"),  # held as a possible tag, out before the tool call
        ("tool-call-start", None),
        ("text-delta", "x "),
        ("text-delta", "<th"),  # an unfinished tag at the end is text
    ]
    # an unclosed think block stays reasoning; a run's end resets its state
    out = run_stage(
        think_tags(),
        [TextDelta(delta="<think>hm", run_id="r"), RunEnd(run_id="r"), TextDelta(delta="ok", run_id="r")],
    )
    assert [(e.kind, getattr(e, "delta", None)) for e in out] == [
        ("reasoning-delta", "hm"),
        ("run-end", None),
        ("text-delta", "ok"),
    ]


def test_custom_tags_and_provider_reasoning_pass_through() -> None:
    r = ReasoningDelta(delta="already split", run_id="r")
    out = run_stage(think_tags("<reasoning>", "</reasoning>"), [r, TextDelta(delta="<reasoning>x</reasoning>y")])
    assert out[0] is r
    assert segments(out[1:]) == [("reasoning", "x"), ("text", "y")]


@pytest.mark.parametrize(("open_tag", "close_tag"), [("", "</think>"), ("<t>", ""), ("<t>", "<t>")])
def test_bad_tags_are_a_value_error(open_tag: str, close_tag: str) -> None:
    with pytest.raises(ValueError, match="think_tags"):
        think_tags(open_tag, close_tag)


@pytest.mark.anyio
async def test_in_a_stream_held_text_goes_out_before_the_upstream_error() -> None:
    async def src() -> Any:
        yield TextDelta(delta="<think>a</thi", run_id="r")
        raise RuntimeError("boom")

    seen: list[Any] = []
    with pytest.raises(RuntimeError, match="boom"):
        await (so.Stream.from_async_iterable(src()) | think_tags() | so.tap(seen.append)).collect()
    assert segments(seen) == [("reasoning", "a</thi")]


def test_runs_on_both_backends() -> None:
    async def main() -> list[Any]:
        return await (so.Stream.from_iterable([TextDelta(delta="<think>x</think>y")]) | think_tags()).collect()

    for backend, options in virtual_backends():
        out = anyio.run(main, backend=backend, backend_options=options)
        assert segments(out) == [("reasoning", "x"), ("text", "y")]
