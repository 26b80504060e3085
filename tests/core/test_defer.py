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
