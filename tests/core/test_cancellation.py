"""Closing the consumer closes every upstream, however it stops; no task is left behind."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from streamops import Stream, filter, map, scan, take, take_until
from tests._util import Boom, Counter, Flagged

pytestmark = pytest.mark.anyio


async def double(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x * 2


class Chain:
    """source (finally flag) | op1 (flag) | async map | sync stages | op2 (flag)."""

    def __init__(self, tail: Callable[[Stream[Any]], Stream[Any]] | None = None) -> None:
        self.log: list[Any] = []
        self.source = Counter(log=self.log)
        self.op1 = Flagged("op1", log=self.log)
        self.op2 = Flagged("op2", log=self.log)
        s = self.source.stream() | self.op1 | map(double) | filter(lambda x: x >= 0) | map(lambda x: x + 1)
        s = s | self.op2
        self.stream = tail(s) if tail is not None else s

    @property
    def flags(self) -> tuple[bool, bool, bool]:
        return (self.source.closed, self.op1.closed, self.op2.closed)

    def assert_all_closed(self) -> None:
        assert self.flags == (True, True, True)
        # each operator closes its upstream before its own ``finally`` completes, so the
        # flags are set from the source outward, each exactly once
        finals = [e[0] for e in self.log if e[1] == "finally"]
        assert finals == ["counter", "op1", "op2"]


@asynccontextmanager
async def no_task_left(backend: str) -> AsyncIterator[None]:
    """On asyncio, the set of tasks is the same before and after; on trio (no task registry
    to compare), the block must finish within a deadline rather than hang."""
    before = asyncio.all_tasks() if backend == "asyncio" else set()
    with anyio.fail_after(10):
        yield
    if backend == "asyncio":
        for _ in range(3):
            await asyncio.sleep(0)
        assert asyncio.all_tasks() == before


async def test_break_inside_iterate_closes_every_upstream(anyio_backend: str) -> None:
    chain = Chain()
    async with no_task_left(anyio_backend):
        async with chain.stream.iterate() as it:
            async for x in it:
                if x >= 5:
                    break
        chain.assert_all_closed()
    assert chain.source.pulled == 3  # 0, 1, 2 -> 1, 3, 5


async def test_exception_in_the_consumer_closes_every_upstream(anyio_backend: str) -> None:
    chain = Chain()
    async with no_task_left(anyio_backend):
        with pytest.raises(Boom, match="consumer"):
            async with chain.stream.iterate() as it:
                async for x in it:
                    if x == 3:
                        raise Boom("consumer")
        chain.assert_all_closed()


async def test_first_closes_every_upstream(anyio_backend: str) -> None:
    chain = Chain()
    async with no_task_left(anyio_backend):
        assert await chain.stream.first() == 1
        chain.assert_all_closed()
    assert chain.source.pulled == 1


async def test_take_at_the_end_closes_every_upstream(anyio_backend: str) -> None:
    chain = Chain(lambda s: s | take(4))
    async with no_task_left(anyio_backend):
        assert await chain.stream.collect() == [1, 3, 5, 7]
        chain.assert_all_closed()
    assert chain.source.pulled == 4


async def test_take_until_with_run_sink_closes_every_upstream(anyio_backend: str) -> None:
    chain = Chain(lambda s: s | scan(lambda a, x: a + x, 0) | take_until(lambda a: a > 10))
    got: list[int] = []
    async with no_task_left(anyio_backend):
        assert await chain.stream.run(got.append) == 4
        chain.assert_all_closed()
    assert got == [1, 4, 9, 16]


async def test_take_closes_upstream_before_the_last_item_is_seen(anyio_backend: str) -> None:
    chain = Chain(lambda s: s | take(2))
    async with no_task_left(anyio_backend):
        async with chain.stream.iterate() as it:
            assert await it.__anext__() == 1
            assert chain.flags == (False, False, False)
            assert await it.__anext__() == 3
            assert chain.flags == (True, True, True)
        chain.assert_all_closed()


async def test_sink_error_closes_every_upstream(anyio_backend: str) -> None:
    chain = Chain()

    def sink(x: int) -> None:
        if x > 4:
            raise Boom("sink")

    async with no_task_left(anyio_backend):
        with pytest.raises(Boom, match="sink"):
            await chain.stream.run(sink)
        chain.assert_all_closed()


async def test_stage_error_closes_every_upstream(anyio_backend: str) -> None:
    def explode(x: int) -> int:
        if x > 4:
            raise Boom("stage")
        return x

    chain = Chain(lambda s: s | map(explode))
    async with no_task_left(anyio_backend):
        with pytest.raises(Boom, match="stage"):
            await chain.stream.collect()
        chain.assert_all_closed()


async def test_explicit_aclose_closes_every_upstream(anyio_backend: str) -> None:
    chain = Chain()
    async with no_task_left(anyio_backend):
        agen = chain.stream.__aiter__()
        assert await agen.__anext__() == 1
        await agen.aclose()
        chain.assert_all_closed()


@pytest.mark.parametrize("where", ["consumer", "source"])
async def test_cancelling_the_consumer_closes_every_upstream(anyio_backend: str, where: str) -> None:
    # "consumer": the cancel lands while the consumer awaits in its own body;
    # "source": it lands inside the source's await (the deepest frame of the chain).
    log: list[Any] = []
    src_closed = anyio.Event()
    state = {"closed": False, "pulled": 0}

    async def slow_source() -> Any:
        try:
            i = 0
            while True:
                state["pulled"] += 1
                yield i
                i += 1
                if where == "source" and i >= 3:
                    await anyio.sleep_forever()
        finally:
            state["closed"] = True
            src_closed.set()

    op1, op2 = Flagged("op1", log), Flagged("op2", log)
    stream = Stream.from_async_iterable(slow_source()) | op1 | map(double) | map(lambda x: x + 1) | op2
    got: list[int] = []
    three = anyio.Event()

    async def consume() -> None:
        async with stream.iterate() as it:
            async for x in it:
                got.append(x)
                if len(got) == 3:
                    three.set()
                    if where == "consumer":
                        await anyio.sleep_forever()

    async with no_task_left(anyio_backend):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await three.wait()
            await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        assert state["closed"]
        assert op1.closed
        assert op2.closed
    assert got == [1, 3, 5]
    assert state["pulled"] == 3


async def test_cancel_scope_around_the_consumer_closes_upstream(anyio_backend: str) -> None:
    chain = Chain()
    got: list[int] = []
    async with no_task_left(anyio_backend):
        with anyio.CancelScope() as scope:
            async with chain.stream.iterate() as it:
                async for x in it:
                    got.append(x)
                    if x == 5:
                        scope.cancel()
                        await anyio.sleep(1)  # cancelled here
        assert scope.cancelled_caught
        chain.assert_all_closed()
    assert got == [1, 3, 5]


async def test_move_on_after_closes_upstream(anyio_backend: str) -> None:
    counter = Counter()

    async def ticking(x: int) -> int:
        await anyio.sleep(0.001)
        return x

    got: list[int] = []
    async with no_task_left(anyio_backend):
        with anyio.move_on_after(0.05):
            async with (counter.stream() | map(ticking)).iterate() as it:
                async for x in it:
                    got.append(x)
        assert counter.closed
    assert got == list(range(len(got)))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_plain_async_for_break_closes_upstream_once_dropped(anyio_backend: str) -> None:
    # Only on asyncio, and only because of two CPython/asyncio mechanisms: after ``break`` the
    # hidden iterator of ``async for`` is dropped, CPython's reference counting frees the
    # stream's async generator at once, and asyncio's async-generator finalizer hook
    # (installed by the running loop) schedules its ``aclose()`` as a task. A couple of loop
    # iterations later every upstream is closed. (trio does the same through its own hook,
    # but that is not what this test is about.) Deterministic code uses ``iterate()``.
    chain = Chain()
    async for x in chain.stream:
        if x >= 3:
            break
    assert chain.flags == (False, False, False)  # nothing closed it yet
    for _ in range(5):
        await asyncio.sleep(0)
        if all(chain.flags):
            break
    gc.collect()
    await asyncio.sleep(0)
    chain.assert_all_closed()
