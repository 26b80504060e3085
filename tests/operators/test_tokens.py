"""Token counting (real tiktoken encodings, offline), budgets and stream metrics."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamops.adapters import parse_sse_bytes

import streamops as so
from streamops.operators.metrics import StreamMetrics, metrics
from streamops.operators.tokens import TokenCounter, budget, count_tokens, load_encoding
from tests.conftest import RECORDED

COUNT = load_encoding("o200k_base")


def deltas(text_pieces: list[str], *, run_id: str = "r", agent: str = "") -> list[so.BaseEvent]:
    evs: list[so.BaseEvent] = [so.RunStart(run_id=run_id, agent=agent, model="gpt-4o")]
    evs += [so.TextDelta(delta=p, run_id=run_id, agent=agent, block_id="b") for p in text_pieces]
    evs.append(so.RunEnd(run_id=run_id, agent=agent, finish_reason="stop"))
    return evs


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@pytest.mark.anyio
@settings(max_examples=150)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab cd  ef\n\tg'1 23,.!?é你好🙂")),
        max_size=80,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
async def test_live_estimate_equals_the_tokenizer_on_the_whole_text_for_any_split(text: str, cuts: list[int]) -> None:
    # runs on asyncio and on trio (the anyio plugin's backends), hypothesis inside each loop
    counter = TokenCounter()
    stream = so.Stream.from_iterable(deltas(split(text, cuts))) | count_tokens(counter, tokenizer=COUNT)
    out = await stream.collect()
    (c,) = counter.runs.values()
    assert c.estimated_output == COUNT(text)
    assert c.source == "estimated"
    passed = [e for e in out if not isinstance(e, so.UsageEvent)]
    assert [(type(e), getattr(e, "delta", None)) for e in passed] == [
        (type(e), getattr(e, "delta", None)) for e in deltas(split(text, cuts))
    ]


@pytest.mark.anyio
async def test_estimate_is_close_to_the_provider_and_reconciles_to_it() -> None:
    body = (RECORDED / "openai" / "chat_json_object_utf8_openai_python.sse").read_bytes()
    events = parse_sse_bytes(body)
    counter = TokenCounter()
    out = await (so.Stream.from_iterable(events) | count_tokens(counter)).collect()
    (c,) = counter.runs.values()
    assert c.provider is not None
    reported = c.provider.output_tokens
    assert reported is not None
    # gpt-4o uses o200k_base: the live estimate is within a few tokens of the bill
    assert abs(c.estimated_output - reported) <= max(3, reported // 20)
    assert c.output_tokens == reported
    assert c.source == "provider"
    estimates = [e for e in out if isinstance(e, so.UsageEvent) and e.source == "estimated"]
    assert estimates, "live estimates are emitted while the text streams"
    values = [e.usage.output_tokens or 0 for e in estimates]
    assert values == sorted(values)
    # an estimate never comes after the provider's figures for that run
    first_provider = next(i for i, e in enumerate(out) if isinstance(e, so.UsageEvent) and e.source == "provider")
    assert all(out.index(e) < first_provider for e in estimates)


@pytest.mark.anyio
async def test_counts_are_kept_per_agent_in_a_merged_stream() -> None:
    a = deltas(["one ", "two ", "three"], run_id="ra", agent="alice")
    b = deltas(["un ", "deux"], run_id="rb", agent="bob")
    interleaved = [x for pair in zip(a, b, strict=False) for x in pair] + a[len(b) :]
    counter = TokenCounter()
    await (so.Stream.from_iterable(interleaved) | count_tokens(counter, emit_every=None)).collect()
    assert counter.runs[("alice", "ra")].estimated_output == COUNT("one two three")
    assert counter.runs[("bob", "rb")].estimated_output == COUNT("un deux")
    assert counter.total().output_tokens == COUNT("one two three") + COUNT("un deux")


@pytest.mark.anyio
async def test_incremental_and_cumulative_provider_usage() -> None:
    evs: list[so.BaseEvent] = [
        so.UsageEvent(usage=so.Usage(input_tokens=10, output_tokens=1), cumulative=True),
        so.UsageEvent(usage=so.Usage(output_tokens=5), cumulative=True),
        so.UsageEvent(usage=so.Usage(output_tokens=2), cumulative=False),
    ]
    counter = TokenCounter()
    await (so.Stream.from_iterable(evs) | count_tokens(counter, tokenizer=COUNT)).collect()
    (c,) = counter.runs.values()
    assert (c.input_tokens, c.output_tokens) == (10, 7)


@pytest.mark.anyio
async def test_budget_ends_the_run_mid_stream_and_closes_the_source() -> None:
    closed = []
    words = [f"word{i} " for i in range(200)]

    async def source() -> AsyncGenerator[so.BaseEvent, None]:
        try:
            for e in deltas(words):
                yield e
        finally:
            closed.append(True)

    out = await (so.Stream.from_async_iterable(source()) | budget(max_tokens=20, tokenizer=COUNT)).collect()
    end = out[-1]
    assert isinstance(end, so.RunEnd)
    assert end.status == "budget_exceeded"
    assert end.usage is not None
    assert end.usage.output_tokens is not None
    assert end.usage.output_tokens > 20
    text = "".join(e.delta for e in out if isinstance(e, so.TextDelta))
    assert COUNT(text) <= 20
    assert len(out) < len(words)
    assert closed == [True]
    msg = so.Accumulator()
    for e in out:
        msg.add(e)
    assert msg.message().status == "budget_exceeded"


@pytest.mark.anyio
async def test_budget_by_cost_with_a_price_and_with_litellms_local_table() -> None:
    words = [f"w{i} " for i in range(400)]
    # $10 per 1M output tokens: $0.0001 buys 10 tokens
    out = await (
        so.Stream.from_iterable(deltas(words)) | budget(max_cost=0.0001, price=(0.0, 10e-6), tokenizer=COUNT)
    ).collect()
    assert isinstance(out[-1], so.RunEnd)
    assert out[-1].status == "budget_exceeded"
    # gpt-4o's price comes from LiteLLM's bundled table (LITELLM_LOCAL_MODEL_COST_MAP=True)
    out = await (so.Stream.from_iterable(deltas(words)) | budget(max_cost=0.0002, tokenizer=COUNT)).collect()
    assert out[-1].status == "budget_exceeded"
    text = "".join(e.delta for e in out if isinstance(e, so.TextDelta))
    assert len(text) > 0
    assert COUNT(text) * 10e-6 <= 0.0002 < (COUNT(text) + 4) * 10e-6  # gpt-4o: $10 per 1M output tokens
    # a budget that is never reached changes nothing
    out = await (so.Stream.from_iterable(deltas(words[:5])) | budget(max_tokens=10_000, tokenizer=COUNT)).collect()
    assert out[-1].status == "completed"


def test_budget_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="give max_tokens"):
        budget()
    with pytest.raises(ValueError, match="max_tokens must be"):
        budget(max_tokens=0)
    with pytest.raises(ValueError, match="max_cost must be"):
        budget(max_cost=-1)


@pytest.mark.anyio
async def test_metrics_time_to_first_token_gaps_and_stalls() -> None:
    t = [0.0]

    def clock() -> float:
        return t[0]

    steps: list[tuple[float, Any]] = [
        (0.0, so.RunStart(run_id="r")),
        (0.5, so.TextDelta(delta="Hel", run_id="r")),
        (0.6, so.TextDelta(delta="lo", run_id="r")),
        (3.6, so.TextDelta(delta="!", run_id="r")),
        (3.6, so.UsageEvent(usage=so.Usage(output_tokens=3), run_id="r")),
        (3.7, so.RunEnd(run_id="r")),
    ]

    async def source() -> AsyncGenerator[Any, None]:
        for at, ev in steps:
            t[0] = at
            yield ev

    m = StreamMetrics()
    out = await (so.Stream.from_async_iterable(source()) | metrics(m, stall=2.0, clock=clock)).collect()
    assert len(out) == len(steps)
    r = m.runs[("", "r")]
    assert r.time_to_first_token == pytest.approx(0.5)
    assert r.chunks == 3
    assert r.chars == 6
    assert r.gaps == pytest.approx([0.1, 3.0])
    assert r.max_gap == pytest.approx(3.0)
    assert r.stalls == 1
    assert r.tokens_per_second == pytest.approx(3 / 3.1)
    assert r.ended_at == pytest.approx(3.7)


def test_metrics_rejects_bad_stall() -> None:
    with pytest.raises(ValueError, match="stall"):
        metrics(stall=0)


@pytest.mark.anyio
async def test_held_piece_is_counted_when_the_stream_ends_without_a_run_end() -> None:
    # "Hello world world": tiktoken says 3; the last " world" is held until more text or the end
    assert COUNT("Hello world world") == 3
    evs = [so.TextDelta(delta=p, run_id="r", block_id="b") for p in ["Hello", " world", " world"]]
    counter = TokenCounter()
    out = await (so.Stream.from_iterable(evs) | count_tokens(counter, tokenizer=COUNT)).collect()
    assert counter.total().output_tokens == 3
    assert [e.delta for e in out if isinstance(e, so.TextDelta)] == ["Hello", " world", " world"]
    last = out[-1]
    assert isinstance(last, so.UsageEvent) and last.source == "estimated"
    assert last.usage.output_tokens == 3
    # without live estimates: the counter still gets the last piece, and no event is added
    counter = TokenCounter()
    out = await (so.Stream.from_iterable(evs) | count_tokens(counter, tokenizer=COUNT, emit_every=None)).collect()
    assert counter.total().output_tokens == 3
    assert out == evs
