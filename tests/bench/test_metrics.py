"""The sans-IO measuring core: Recorder and summarize invariants (hypothesis), percentiles,
open-loop arrival schedules."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamops.bench import Recorder, RequestTiming, arrival_times, stats, summarize
from streamops.events import RunEnd, TextDelta, Usage, UsageEvent

gaps = st.lists(st.floats(min_value=0.0, max_value=5.0, allow_nan=False), min_size=1, max_size=40)


@given(first=st.floats(min_value=0.0, max_value=10.0), gaps=gaps, tokens=st.none() | st.integers(1, 500))
def test_recorder_invariants(first: float, gaps: list[float], tokens: int | None) -> None:
    rec = Recorder(RequestTiming(target="t", index=0), t0=100.0)
    now = 100.0 + first
    rec.feed(now, [TextDelta(delta="a")])
    for g in gaps[1:]:
        now += g
        rec.feed(now, [TextDelta(delta="b")])
    if tokens is not None:
        rec.feed(now, [UsageEvent(usage=Usage(output_tokens=tokens))])
    rec.feed(now, [RunEnd(usage=None)])
    t = rec.finish(now + 0.5)
    assert t.ok and t.chunks == len(gaps) and len(t.itl_s) == t.chunks - 1
    assert t.ttft_s == pytest.approx(first) and t.ttfc_s == t.ttft_s
    assert t.ttft_s + sum(t.itl_s) == pytest.approx(now - 100.0)
    assert t.e2e_s == pytest.approx(now + 0.5 - 100.0)
    assert t.output_tokens == tokens and t.tokens_source == ("usage" if tokens else "none")
    if tokens is not None and tokens > 1:
        assert t.tpot_s == pytest.approx((t.e2e_s - t.ttft_s) / (tokens - 1))  # type: ignore[operator]
    else:
        assert t.tpot_s is None


def test_events_without_output_make_no_chunk_and_counting_falls_back() -> None:
    rec = Recorder(RequestTiming(target="t", index=0), t0=0.0)
    rec.feed(1.0, [UsageEvent(usage=Usage(input_tokens=3))])
    assert rec.timing.chunks == 0 and rec.timing.ttft_s is None
    rec.feed(2.0, [TextDelta(delta="hello"), TextDelta(delta=" world")])  # one read, one chunk
    assert rec.timing.chunks == 1 and rec.needs_count
    t = rec.finish(3.0, lambda text: len(text.split()))
    assert (t.output_tokens, t.input_tokens, t.tokens_source) == (2, 3, "counted")


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_ordered_and_bounded(values: list[float]) -> None:
    s = stats(values)
    assert s.n == len(values)
    assert min(values) <= s.p[50] <= s.p[90] <= s.p[95] <= s.p[99] <= s.max == max(values)
    assert s.mean == pytest.approx(statistics.fmean(values))


def test_percentiles_interpolate_like_numpy() -> None:
    assert stats([1.0, 2.0, 3.0, 4.0]).p[50] == 2.5
    assert stats([0.0, 10.0]).p[90] == pytest.approx(9.0)
    assert stats([]).n == 0 and stats([]).mean is None


@given(st.lists(st.sampled_from([None, "timeout", "http-401"]), min_size=1, max_size=30))
def test_summary_counts_every_request_once(errors: list[str | None]) -> None:
    timings = [
        RequestTiming(
            target="t", index=i, start_s=float(i), e2e_s=1.0, ttft_s=0.5, chunks=2, itl_s=[0.5], error=e,
            output_tokens=4,
        )
        for i, e in enumerate(errors)
    ]
    s = summarize(timings, target="t", duration_s=10.0, slo={"ttft": 1.0})
    assert s.completed + s.failed == len(errors) and s.completed == errors.count(None)
    assert sum(s.errors.values()) == s.failed
    assert s.request_throughput == pytest.approx(s.completed / 10.0)
    assert s.goodput == pytest.approx(s.request_throughput)
    assert s.output_token_throughput == pytest.approx(4 * s.completed / 10.0)


def test_arrival_schedules() -> None:
    rng = random.Random(0)
    assert arrival_times(4.0, n=5, duration=None, arrival="constant", rng=rng) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert arrival_times(4.0, n=None, duration=1.0, arrival="constant", rng=rng) == [0.0, 0.25, 0.5, 0.75]
    times = arrival_times(10.0, n=5000, duration=None, arrival="poisson", rng=random.Random(1))
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(0.1, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(0.1, rel=0.1)  # exponential: sd == mean
    assert times == sorted(times)
    with pytest.raises(ValueError, match="> 0"):
        arrival_times(0.0, n=1, duration=None, arrival="poisson", rng=rng)
    with pytest.raises(ValueError, match="number of requests or a duration"):
        arrival_times(1.0, n=None, duration=None, arrival="poisson", rng=rng)


def test_goodput_counts_a_one_token_request_as_tpot_zero_like_vllm() -> None:
    # vLLM's calculate_metrics: "if output_len <= 1, we regard tpot as 0 for goodput"
    one = RequestTiming(target="t", index=0, e2e_s=0.2, ttft_s=0.2, chunks=1, output_tokens=1)
    slow = RequestTiming(
        target="t", index=1, e2e_s=2.0, ttft_s=0.2, chunks=3, itl_s=[0.9, 0.9], output_tokens=3
    )
    s = summarize([one, slow], target="t", duration_s=1.0, slo={"tpot": 0.5, "itl": 0.5})
    assert one.tpot_s is None and slow.tpot_s == pytest.approx(0.9)
    assert s.goodput == pytest.approx(1.0)  # the one-token request is good, the slow one is not
    assert s.metrics["tpot_s"].n == 1  # but it has no TPOT in the statistics
