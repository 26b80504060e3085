"""The first operators: filter, map (sync and async), scan, take, take_until, tap, of_type;
and fusion of consecutive synchronous stages."""

from __future__ import annotations

import inspect
import itertools
import operator
import sys
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamops import (
    CustomEvent,
    RunEnd,
    RunStart,
    Stage,
    Stream,
    TextDelta,
    ToolCallEnd,
    filter,
    map,
    of_type,
    scan,
    take,
    take_until,
    tap,
)
from tests._util import Counter, Probe

pytestmark = pytest.mark.anyio

ints = st.lists(st.integers(min_value=-1000, max_value=1000), max_size=40)
ASYNC_EXAMPLES = settings(max_examples=25)


def is_even(x: int) -> bool:
    return x % 2 == 0


def times3(x: int) -> int:
    return x * 3


# ----------------------------------------------------------------------------- properties


@ASYNC_EXAMPLES
@given(xs=ints, k=st.integers(min_value=1, max_value=5))
async def test_filter_agrees_with_list_comprehension(xs: list[int], k: int) -> None:
    def pred(x: int) -> bool:
        return x % k == 0

    assert await (Stream.from_iterable(xs) | filter(pred)).collect() == [x for x in xs if pred(x)]


@ASYNC_EXAMPLES
@given(xs=ints)
async def test_map_agrees_with_list_comprehension(xs: list[int]) -> None:
    assert await (Stream.from_iterable(xs) | map(times3)).collect() == [times3(x) for x in xs]
    out = await (Stream.from_iterable(xs) | map(str)).collect()
    assert out == [str(x) for x in xs]


@ASYNC_EXAMPLES
@given(xs=ints)
async def test_filter_then_map_agrees_with_comprehension(xs: list[int]) -> None:
    s = Stream.from_iterable(xs) | filter(is_even) | map(times3)
    assert await s.collect() == [times3(x) for x in xs if is_even(x)]


@ASYNC_EXAMPLES
@given(xs=ints, init=st.integers(), fn=st.sampled_from([operator.add, operator.sub, max, min]))
async def test_scan_agrees_with_accumulate(xs: list[int], init: int, fn: Any) -> None:
    out = await (Stream.from_iterable(xs) | scan(fn, init)).collect()
    assert out == list(itertools.accumulate(xs, fn, initial=init))[1:]


@ASYNC_EXAMPLES
@given(xs=ints, n=st.integers(min_value=0, max_value=50))
async def test_take_gives_the_first_n(xs: list[int], n: int) -> None:
    probe = Probe(xs)
    assert await (probe.stream() | take(n)).collect() == xs[:n]
    assert probe.pulled == min(n, len(xs))
    assert probe.closed or n == 0


@ASYNC_EXAMPLES
@given(xs=ints, threshold=st.integers(min_value=-1000, max_value=1000), inclusive=st.booleans())
async def test_take_until_agrees_with_takewhile(xs: list[int], threshold: int, inclusive: bool) -> None:
    def hit(x: int) -> bool:
        return x > threshold

    probe = Probe(xs)
    out = await (probe.stream() | take_until(hit, inclusive=inclusive)).collect()
    expected = list(itertools.takewhile(lambda x: not hit(x), xs))
    stopped = len(expected) < len(xs)
    if stopped and inclusive:
        expected.append(xs[len(expected)])
    assert out == expected
    # it stops pulling at the first hit
    first_hit = next((i for i, x in enumerate(xs) if hit(x)), None)
    assert probe.pulled == (len(xs) if first_hit is None else first_hit + 1)
    assert probe.closed


@ASYNC_EXAMPLES
@given(xs=ints)
async def test_tap_sees_every_item_once_in_order(xs: list[int]) -> None:
    seen: list[int] = []
    out = await (Stream.from_iterable(xs) | tap(seen.append) | map(times3)).collect()
    assert seen == xs
    assert out == [times3(x) for x in xs]


@ASYNC_EXAMPLES
@given(xs=ints)
async def test_tap_runs_as_items_pass(xs: list[int]) -> None:
    # tap's side effect for an item happens before the consumer sees that item, and not
    # earlier than the item is pulled (nothing is read ahead)
    seen: list[int] = []
    async with (Stream.from_iterable(xs) | tap(seen.append)).iterate() as it:
        i = 0
        async for x in it:
            assert seen == xs[: i + 1]
            assert x == xs[i]
            i += 1


@ASYNC_EXAMPLES
@given(xs=ints)
async def test_async_map_keeps_order(xs: list[int]) -> None:
    async def slow_triple(x: int) -> int:
        for _ in range(x % 3):  # uneven delays
            await anyio.lowlevel.checkpoint()
        return x * 3

    s = Stream.from_iterable(xs) | map(slow_triple)
    assert await s.collect() == [x * 3 for x in xs]


# ----------------------------------------------------------------------------- take


async def test_take_closes_the_source_before_the_consumer_sees_the_nth_item() -> None:
    counter = Counter()
    got: list[int] = []
    async with (counter.stream() | take(3)).iterate() as it:
        async for x in it:
            got.append(x)
            if len(got) == 3:
                # the upstream's finally ran before we got control back with the 3rd item
                assert counter.closed
                assert counter.pulled == 3
            else:
                assert not counter.closed
    assert got == [0, 1, 2]
    assert counter.pulled == 3
    assert counter.log[-1] == ("counter", "finally")
    assert counter.log[-2] == ("counter", "yield", 2)


async def test_take_inside_a_longer_chain_closes_the_source_at_once() -> None:
    counter = Counter()
    s = counter.stream() | filter(is_even) | take(2) | map(times3)
    it = s.__aiter__()
    assert await it.__anext__() == 0
    assert not counter.closed
    assert await it.__anext__() == 6
    assert counter.closed
    assert counter.pulled == 3  # 0, 1, 2: nothing after the 2nd kept item
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


async def test_take_zero_pulls_nothing() -> None:
    probe = Probe([1, 2, 3])
    assert await (probe.stream() | take(0)).collect() == []
    assert probe.pulled == 0
    assert not probe.started
    counter = Counter()
    assert await (counter.stream() | map(times3) | take(0)).collect() == []
    assert counter.pulled == 0


async def test_take_of_infinite_source_ends() -> None:
    with anyio.fail_after(5):
        assert await (Counter().stream() | take(5)).collect() == [0, 1, 2, 3, 4]


def test_take_rejects_negative() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        take(-1)


async def test_take_state_is_per_iteration() -> None:
    s = Stream.from_iterable(range(10)) | take(2) | scan(operator.add, 0)
    assert await s.collect() == [0, 1]
    assert await s.collect() == [0, 1]


# ----------------------------------------------------------------------------- take_until


def is_run_end(e: Any) -> bool:
    return isinstance(e, RunEnd)


async def test_take_until_inclusive_and_exclusive() -> None:
    events = [RunStart(), TextDelta(delta="a"), RunEnd(), TextDelta(delta="late")]
    inc = await (Stream.from_iterable(events) | take_until(is_run_end)).collect()
    assert inc == events[:3]
    exc = await (Stream.from_iterable(events) | take_until(is_run_end, inclusive=False)).collect()
    assert exc == events[:2]


async def test_take_until_closes_source_before_the_hit_is_seen() -> None:
    counter = Counter()
    async with (counter.stream() | take_until(lambda x: x == 4)).iterate() as it:
        async for x in it:
            assert counter.closed == (x == 4)
    assert counter.pulled == 5


async def test_take_until_exclusive_closes_source_after_last_item() -> None:
    counter = Counter()
    assert await (counter.stream() | take_until(lambda x: x == 2, inclusive=False)).collect() == [0, 1]
    assert counter.closed
    assert counter.pulled == 3


# ----------------------------------------------------------------------------- of_type


MIXED: list[Any] = [
    RunStart(run_id="r"),
    TextDelta(delta="a"),
    ToolCallEnd(call_id="c", name="t", arguments="{}"),
    "not an event",
    TextDelta(delta=" "),
    CustomEvent(name="x"),
    7,
    RunEnd(run_id="r"),
]


async def test_of_type_with_a_class() -> None:
    out = await (Stream.from_iterable(MIXED) | of_type(TextDelta)).collect()
    assert out == [MIXED[1], MIXED[4]]
    assert all(a is b for a, b in zip(out, [MIXED[1], MIXED[4]], strict=True))  # unchanged


async def test_of_type_with_kind_strings_and_classes_mixed() -> None:
    out = await (Stream.from_iterable(MIXED) | of_type("text-delta", ToolCallEnd)).collect()
    assert out == [MIXED[1], MIXED[2], MIXED[4]]
    out = await (Stream.from_iterable(MIXED) | of_type("run-start", "run-end")).collect()
    assert out == [MIXED[0], MIXED[7]]
    out = await (Stream.from_iterable(MIXED) | of_type(int, str)).collect()
    assert out == ["not an event", 7]


@ASYNC_EXAMPLES
@given(picks=st.lists(st.integers(min_value=0, max_value=len(MIXED) - 1), max_size=20))
async def test_of_type_agrees_with_isinstance(picks: list[int]) -> None:
    items = [MIXED[i] for i in picks]
    out = await (Stream.from_iterable(items) | of_type(TextDelta, RunEnd)).collect()
    assert out == [x for x in items if isinstance(x, (TextDelta, RunEnd))]


def test_of_type_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="text_delta"):
        of_type("text_delta")
    with pytest.raises(ValueError, match="unknown event kind"):
        of_type(TextDelta, "nope")


# ----------------------------------------------------------------------------- fusion


def _async_gen_frames() -> int:
    """How many async generator frames are on the current call stack."""
    n = 0
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_flags & inspect.CO_ASYNC_GENERATOR:
            n += 1
        frame = frame.f_back
    return n


def unfused_map(fn: Any) -> Any:
    """A map written as its own async generator (the unfused way), for comparison."""

    async def gen(up: Stream[Any]) -> AsyncGenerator[Any, None]:
        async for x in up:
            yield fn(x)

    return lambda up: Stream.defer(gen, up)


def test_stages_lists_fused_stages() -> None:
    s = Stream.from_iterable([1]) | filter(is_even) | map(times3) | scan(operator.add, 0)
    assert s.stages == ("filter(is_even)", "map(times3)", "scan(add)")
    assert all(isinstance(st_, Stage) for st_ in s._stages)
    assert Stream.from_iterable([1]).stages == ()


def test_pipe_is_the_same_as_or() -> None:
    src = Stream.from_iterable([1])
    ops = (filter(is_even), map(times3), take(3))
    assert src.pipe(*ops).stages == (src | ops[0] | ops[1] | ops[2]).stages
    assert src.pipe() is src


def test_async_map_is_not_a_stage_and_cuts_fusion() -> None:
    async def amul(x: int) -> int:
        return x

    s = Stream.from_iterable([1]) | filter(is_even) | map(amul) | map(times3) | tap(print)
    assert s.stages == ("map(times3)", "tap(print)")
    assert not isinstance(map(amul), Stage)


def test_composing_does_not_mutate_the_upstream() -> None:
    base = Stream.from_iterable([1, 2]) | filter(is_even)
    longer = base | map(times3)
    assert base.stages == ("filter(is_even)",)
    assert longer.stages == ("filter(is_even)", "map(times3)")


async def test_fused_stages_run_in_one_generator() -> None:
    depths: list[int] = []

    def record(x: int) -> int:
        depths.append(_async_gen_frames())
        return x

    s = Stream.from_iterable(range(4)) | map(record) | filter(lambda x: record(x) >= 0) | tap(record)
    s = s | scan(lambda a, x: record(x), 0) | map(record)
    assert await s.collect() == [0, 1, 2, 3]
    assert len(depths) == 5 * 4
    # every stage ran directly inside the one async generator of the stream
    assert set(depths) == {1}

    # the bind path (take and of_type in the chain) fuses too
    depths.clear()
    s1 = Stream.from_iterable(range(4)) | map(record) | of_type(int) | take(10) | tap(record)
    assert await s1.collect() == [0, 1, 2, 3]
    assert depths == [1] * 8

    # the measure does see extra generators: an unfused map adds one level
    depths.clear()
    s2 = Stream.from_iterable(range(4)) | unfused_map(record) | map(record)
    assert await s2.collect() == [0, 1, 2, 3]
    assert sorted(set(depths)) == [1, 2]


async def test_stream_from_list_is_reiterable_with_fresh_state() -> None:
    s = Stream.from_iterable([1, 2, 3]) | scan(operator.add, 0) | take(2)
    assert await s.collect() == [1, 3]
    assert await s.collect() == [1, 3]
    assert await s.first() == 1
    assert await s.last() == 3


async def test_first_and_last_on_empty_raise_lookup_error() -> None:
    empty = Stream.from_iterable([1, 3]) | filter(is_even)
    with pytest.raises(LookupError):
        await empty.first()
    with pytest.raises(LookupError):
        await empty.last()


async def test_from_async_iterable_of_a_stream_is_the_stream() -> None:
    s = Stream.from_iterable([1])
    assert Stream.from_async_iterable(s) is s


async def test_run_into_sinks() -> None:
    got: list[int] = []

    async def asink(x: int) -> None:
        got.append(x)

    class Sink:
        def __init__(self) -> None:
            self.items: list[int] = []
            self.closed = False

        async def send(self, x: int) -> None:
            self.items.append(x)

        async def aclose(self) -> None:
            self.closed = True

    s = Stream.from_iterable([1, 2, 3]) | map(times3)
    assert await s.run(got.append) == 3
    assert await s.run(asink) == 3
    assert got == [3, 6, 9, 3, 6, 9]
    sink = Sink()
    assert await s.run(sink) == 3
    assert sink.items == [3, 6, 9]
    assert sink.closed


class NoClose:
    """A minimal async iterator without ``aclose``: any async iterable is a source."""

    def __init__(self, n: int) -> None:
        self.i = 0
        self.n = n

    def __aiter__(self) -> NoClose:
        return self

    async def __anext__(self) -> int:
        if self.i >= self.n:
            raise StopAsyncIteration
        self.i += 1
        return self.i


async def test_any_async_iterable_is_a_source() -> None:
    assert await (Stream.from_async_iterable(NoClose(5)) | filter(is_even)).collect() == [2, 4]
    assert await (Stream.from_async_iterable(NoClose(5)) | take(2)).collect() == [1, 2]
    assert await Stream.from_async_iterable(NoClose(5)).first() == 1


def test_or_with_a_non_operator_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _ = Stream.from_iterable([1]) | 5  # type: ignore[operator]
