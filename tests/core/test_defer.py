"""``Stream.defer``: a lazy, re-iterable source built by a factory per iteration."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from streamops import Stream

pytestmark = pytest.mark.anyio


async def test_defer_calls_the_factory_once_per_iteration_and_only_when_pulled() -> None:
    calls: list[int] = []

    async def gen(n: int) -> AsyncGenerator[int, None]:
        calls.append(n)
        for i in range(n):
            yield i

    s = Stream.defer(gen, 3)
    assert calls == []  # lazy
    assert await s.collect() == [0, 1, 2]
    assert await s.collect() == [0, 1, 2]
    assert calls == [3, 3]


async def test_defer_accepts_a_factory_that_returns_a_stream() -> None:
    s = Stream.defer(lambda: Stream.from_iterable("ab"))
    assert await s.collect() == ["a", "b"]
    assert await s.collect() == ["a", "b"]


async def test_defer_factory_error_surfaces_at_the_first_pull() -> None:
    def broken() -> AsyncGenerator[int, None]:
        raise ValueError("no source")

    s: Stream[int] = Stream.defer(broken)  # no error yet
    with pytest.raises(ValueError, match="no source"):
        await s.collect()


async def test_defer_closes_the_factory_iterator_on_early_exit() -> None:
    closed: list[bool] = []

    async def gen() -> AsyncGenerator[int, None]:
        try:
            for i in range(100):
                yield i
        finally:
            closed.append(True)

    assert await Stream.defer(gen).first() == 0
    assert closed == [True]


class _Counter:
    """An async iterator that is not an async generator (an SDK stream's shape): counts to
    ``n`` (raising ``fail`` instead of ending, when given) and records ``aclose()`` calls."""

    def __init__(self, n: int, fail: Exception | None = None) -> None:
        self.n = n
        self.i = 0
        self.fail = fail
        self.closed = 0

    def __aiter__(self) -> _Counter:
        return self

    async def __anext__(self) -> int:
        if self.i == self.n:
            if self.fail is not None:
                raise self.fail
            raise StopAsyncIteration
        self.i += 1
        return self.i

    async def aclose(self) -> None:
        self.closed += 1


async def test_a_stream_without_stages_closes_a_plain_async_iterator_at_its_end() -> None:
    src = _Counter(3)
    assert await Stream.defer(lambda: src).collect() == [1, 2, 3]
    assert src.closed >= 1


async def test_a_stream_without_stages_closes_a_plain_async_iterator_that_fails() -> None:
    src = _Counter(2, fail=ValueError("boom"))
    got: list[int] = []
    with pytest.raises(ValueError, match="boom"):
        async for x in Stream.defer(lambda: src):
            got.append(x)
    assert got == [1, 2]
    assert src.closed >= 1


async def test_a_stream_without_stages_closes_its_source_when_the_consumer_leaves() -> None:
    src = _Counter(100)
    it = Stream.defer(lambda: Stream.defer(lambda: src)).__aiter__()
    assert await it.__anext__() == 1
    await it.aclose()
    assert src.closed == 1
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


async def test_closing_a_stream_never_pulled_calls_no_factory() -> None:
    calls: list[int] = []

    def factory() -> _Counter:
        calls.append(1)
        return _Counter(1)

    it = Stream.defer(factory).__aiter__()
    await it.aclose()
    assert calls == []
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()
    assert calls == []


async def test_defer_after_a_factory_error_the_stream_is_over() -> None:
    def broken() -> AsyncGenerator[int, None]:
        raise ValueError("no source")

    it = Stream.defer(broken).__aiter__()
    with pytest.raises(ValueError, match="no source"):
        await it.__anext__()
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


async def test_athrow_closes_the_source_and_raises() -> None:
    src = _Counter(5)
    it = Stream.defer(lambda: src).__aiter__()
    assert await it.asend(None) == 1
    with pytest.raises(KeyError):
        await it.athrow(KeyError("k"))
    assert src.closed == 1
