"""Stream grammar: every stream is ``item* (end | one exception)``, and nothing follows the end.

Checked against a reference: the same chain written as plain synchronous generators, whose
semantics (lazy pulls, early stop, exceptions propagating as themselves) are the spec.
"""

from __future__ import annotations

import operator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamops import (
    Message,
    RunEnd,
    RunStart,
    Stage,
    Stream,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    accumulate,
    filter,
    map,
    scan,
    take,
    take_until,
    tap,
)
from tests._util import Boom, Counter, Probe, apply_ref, drain

pytestmark = pytest.mark.anyio

STAGE_ERROR = Boom("stage")


def is_even(x: int) -> bool:
    return x % 2 == 0


def is_positive(x: int) -> bool:
    return x > 0


def always(x: int) -> bool:
    return True


def never(x: int) -> bool:
    return False


def explodes_on_7(x: int) -> bool:
    if x == 7:
        raise STAGE_ERROR
    return True


def times3(x: int) -> int:
    return x * 3


def minus1(x: int) -> int:
    return x - 1


def boom_on_5(x: int) -> int:
    if x == 5:
        raise STAGE_ERROR
    return x


def noop(x: int) -> None:
    return None


preds = st.sampled_from([is_even, is_positive, always, never, explodes_on_7])
fns = st.sampled_from([times3, minus1, boom_on_5])
ops = st.one_of(
    st.tuples(st.just("filter"), preds),
    st.tuples(st.just("map"), fns),
    st.tuples(st.just("amap"), fns),
    st.tuples(st.just("scan"), st.sampled_from([(operator.add, 0), (max, -100)])),
    st.tuples(st.just("take"), st.integers(min_value=0, max_value=8)),
    st.tuples(st.just("take_until"), st.tuples(preds, st.booleans())),
    st.tuples(st.just("tap"), st.just(noop)),
)


def build(stream: Stream[Any], chain: list[tuple[str, Any]]) -> Stream[Any]:
    for name, arg in chain:
        if name == "filter":
            stream = stream | filter(arg)
        elif name == "map":
            stream = stream | map(arg)
        elif name == "amap":

            async def afn(x: int, _fn: Any = arg) -> Any:
                await anyio.lowlevel.checkpoint()
                return _fn(x)

            stream = stream | map(afn)
        elif name == "scan":
            stream = stream | scan(*arg)
        elif name == "take":
            stream = stream | take(arg)
        elif name == "take_until":
            stream = stream | take_until(arg[0], inclusive=arg[1])
        elif name == "tap":
            stream = stream | tap(arg)
    return stream


def reference(items: list[int], raise_at: int | None, error: Exception, chain: list[Any]) -> tuple[list[Any], Any]:
    def source() -> Any:
        for i, x in enumerate(items):
            if i == raise_at:
                raise error
            yield x
        if raise_at is not None and raise_at >= len(items):
            raise error

    out: list[Any] = []
    try:
        for x in apply_ref(chain, source()):
            out.append(x)
    except Boom as exc:
        return out, exc
    return out, None


@settings(max_examples=60)
@given(
    items=st.lists(st.integers(min_value=-3, max_value=9), max_size=12),
    raise_at=st.one_of(st.none(), st.integers(min_value=0, max_value=13)),
    chain=st.lists(ops, max_size=5),
)
async def test_any_chain_is_items_then_one_end(items: list[int], raise_at: int | None, chain: list[Any]) -> None:
    probe = Probe(items, raise_at=raise_at)
    expected, expected_error = reference(items, raise_at, probe.error, chain)
    got, error = await drain(build(probe.stream(), chain))
    assert got == expected
    assert error is expected_error  # the same instance, or both None
    # the source was closed exactly when it was started (``take(0)`` never starts it)
    assert probe.closed == probe.started


async def test_after_completion_anext_raises_stop() -> None:
    s = Stream.from_iterable([1, 2]) | map(times3)
    agen = s.__aiter__()
    assert [await agen.__anext__(), await agen.__anext__()] == [3, 6]
    for _ in range(3):
        with pytest.raises(StopAsyncIteration):
            await agen.__anext__()


async def test_source_error_delivers_items_then_the_same_exception_then_nothing() -> None:
    probe = Probe([1, 2, 3, 4], raise_at=3)
    s = probe.stream() | filter(always) | map(times3) | scan(operator.add, 0)
    agen = s.__aiter__()
    assert [await agen.__anext__() for _ in range(3)] == [3, 9, 18]
    with pytest.raises(Boom) as info:
        await agen.__anext__()
    assert info.value is probe.error
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        (filter(explodes_on_7), [3, 4, 5, 6]),
        (map(boom_on_5), [3, 4]),
        (tap(boom_on_5), [3, 4]),
        (scan(lambda a, x: boom_on_5(x), 0), [3, 4]),
    ],
    ids=["filter", "map", "tap", "scan"],
)
async def test_stage_error_delivers_items_then_the_same_exception(stage: Any, expected: list[int]) -> None:
    counter = Counter()
    got, error = await drain(counter.stream() | map(lambda x: x + 3) | stage)
    assert got == expected
    assert error is STAGE_ERROR
    assert counter.closed
    assert counter.pulled == len(expected) + 1


async def test_stage_error_in_a_bound_chain_closes_the_source() -> None:
    # with take in the chain the stream uses its bind path; a failing stage still ends the
    # stream with its exception and closes the source
    counter = Counter()
    got, error = await drain(counter.stream() | take(100) | map(boom_on_5))
    assert got == [0, 1, 2, 3, 4]
    assert error is STAGE_ERROR
    assert counter.closed
    assert counter.pulled == 6


async def test_terminals_raise_the_same_instance() -> None:
    probe = Probe([1, 2], raise_at=2)
    with pytest.raises(Boom) as info:
        await (probe.stream() | map(times3)).collect()
    assert info.value is probe.error
    seen: list[int] = []
    probe = Probe([1, 2], raise_at=2)
    with pytest.raises(Boom) as info:
        await (probe.stream() | take(5)).run(seen.append)
    assert seen == [1, 2]
    assert info.value is probe.error


async def test_async_map_error_is_itself() -> None:
    async def afail(x: int) -> int:
        if x == 2:
            raise STAGE_ERROR
        return x

    probe = Probe(range(10))
    got, error = await drain(probe.stream() | map(afail) | map(times3))
    assert got == [0, 3]
    assert error is STAGE_ERROR
    assert probe.closed


def is_run_end(e: Any) -> bool:
    return isinstance(e, RunEnd)


async def test_take_until_run_end_leaves_nothing_after_it() -> None:
    events = [
        RunStart(run_id="r"),
        TextDelta(run_id="r", delta="hi"),
        RunEnd(run_id="r"),
        TextDelta(run_id="r", delta="after the end"),
        RunStart(run_id="r2"),
    ]
    # the source would fail after the junk: it must not even get there
    probe = Probe(events, raise_at=len(events))
    got, error = await drain(probe.stream() | take_until(is_run_end))
    assert error is None
    assert got == events[:3]
    assert isinstance(got[-1], RunEnd)
    assert probe.pulled == 3
    assert probe.closed


@settings(max_examples=30)
@given(before=st.integers(min_value=0, max_value=5), after=st.integers(min_value=0, max_value=5))
async def test_run_end_is_last(before: int, after: int) -> None:
    events: list[Any] = [RunStart(run_id="r")]
    events += [TextDelta(run_id="r", delta=str(i)) for i in range(before)]
    events.append(RunEnd(run_id="r"))
    events += [TextDelta(run_id="r", delta="x") for _ in range(after)]
    got, error = await drain(Stream.from_iterable(events) | take_until(is_run_end))
    assert error is None
    assert got == events[: before + 2]
    assert sum(isinstance(e, RunEnd) for e in got) == 1


async def test_source_error_flushes_accumulate_partial_message() -> None:
    events = [
        RunStart(run_id="r", model="m"),
        TextDelta(run_id="r", delta="Hel"),
        TextDelta(run_id="r", delta="lo"),
        ToolCallStart(run_id="r", call_id="c1", name="search"),
        ToolCallDelta(run_id="r", call_id="c1", delta='{"q": '),
    ]
    probe = Probe(events, raise_at=len(events))
    got, error = await drain(probe.stream() | accumulate())
    assert error is probe.error
    assert len(got) == 1
    msg = got[0]
    assert isinstance(msg, Message)
    assert msg.text == "Hello"
    assert msg.status is None  # no run end: not invented
    assert msg.finish_reason is None
    assert msg.model == "m"
    assert [(c.id, c.name, c.arguments) for c in msg.tool_calls] == [("c1", "search", '{"q": ')]


async def test_source_error_flushes_every_open_run_in_order() -> None:
    events = [
        TextDelta(run_id="b", delta="B1"),
        TextDelta(run_id="a", delta="A1"),
        RunEnd(run_id="c"),  # a finished run: emitted at once, not again at the error
        TextDelta(run_id="b", delta="B2"),
    ]
    probe = Probe(events, raise_at=len(events))
    got, error = await drain(probe.stream() | accumulate() | map(lambda m: (m.run_id, m.text)))
    assert error is probe.error
    assert got == [("c", ""), ("b", "B1B2"), ("a", "A1")]


async def test_accumulate_partial_message_when_the_error_comes_first() -> None:
    probe = Probe([], raise_at=0)
    got, error = await drain(probe.stream() | accumulate())
    assert got == []
    assert error is probe.error


def pairs() -> Stage[int, tuple[int, ...]]:
    """A user-written stage that holds items: emits pairs, and the odd one out at the end."""

    def bind(down: Any, end: Any) -> tuple[Any, Any]:
        held: list[int] = []

        def push(x: int) -> None:
            held.append(x)
            if len(held) == 2:
                down(tuple(held))
                held.clear()

        def flush() -> None:
            if held:
                down(tuple(held))
                held.clear()
            end()

        return push, flush

    return Stage(bind, "pairs")


@pytest.mark.parametrize("n", [0, 1, 4, 5])
async def test_held_items_are_flushed_at_the_end(n: int) -> None:
    got, error = await drain(Stream.from_iterable(range(n)) | pairs())
    assert error is None
    assert got == [tuple(range(i, min(i + 2, n))) for i in range(0, n, 2)]


async def test_held_items_are_flushed_before_a_source_error() -> None:
    probe = Probe(range(5), raise_at=5)
    got, error = await drain(probe.stream() | pairs() | map(list))
    assert got == [[0, 1], [2, 3], [4]]
    assert error is probe.error


async def test_take_after_a_holding_stage_flushes_nothing_more() -> None:
    counter = Counter()
    got, error = await drain(counter.stream() | pairs() | take(2))
    assert (got, error) == ([(0, 1), (2, 3)], None)
    assert counter.pulled == 4
    assert counter.closed


async def test_take_before_a_holding_stage_ends_it() -> None:
    # take's completion runs the downstream stages' end: the odd item is flushed
    counter = Counter()
    got, error = await drain(counter.stream() | take(3) | pairs())
    assert (got, error) == ([(0, 1), (2,)], None)
    assert counter.pulled == 3
    assert counter.closed


async def test_take_then_accumulate_gives_the_partial_message() -> None:
    events = [TextDelta(run_id="r", delta=d) for d in ["a", "b", "c", "d"]]
    got, error = await drain(Stream.from_iterable(events) | take(2) | accumulate())
    assert error is None
    assert [m.text for m in got] == ["ab"]


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.integers(min_value=-3, max_value=9), max_size=12),
    chain=st.lists(ops.filter(lambda op: op[0] != "take"), max_size=4),
    break_at=st.integers(min_value=0, max_value=12),
)
async def test_a_consumer_break_at_any_item_closes_the_source_before_the_block_ends(
    items: list[int], chain: list[Any], break_at: int
) -> None:
    """``break`` out of ``async with stream.iterate()`` after any item: the items seen are the
    reference's prefix, and the source's ``finally`` has run by the time the block exits (not
    later, in a garbage collector's finalizer), leaving no task behind."""
    from tests._tasks import live_tasks

    probe = Probe(items)
    expected, expected_error = reference(items, None, probe.error, chain)
    before = live_tasks()
    got: list[Any] = []
    error: BaseException | None = None
    try:
        async with build(probe.stream(), chain).iterate() as it:
            async for x in it:
                got.append(x)
                if len(got) > break_at:
                    break
    except Boom as exc:
        error = exc
    assert got == expected[: break_at + 1]
    # a stage error is raised only when the consumer did not break before reaching it
    assert error is (expected_error if len(expected) <= break_at else None)
    assert probe.closed == probe.started
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)
