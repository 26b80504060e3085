"""Transforming operators: ``map``, ``scan``, ``tap``.

``map`` with a synchronous function, ``scan`` and ``tap`` are fusable stages (one function call
per item, nothing buffered). ``map`` with an ``async def`` function awaits it item by item.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar, overload

from .._stream import End, Push, Stage, Stream

__all__ = ["map", "scan", "tap"]

T = TypeVar("T")
U = TypeVar("U")
A = TypeVar("A")


@overload
def map(fn: Callable[[T], Awaitable[U]]) -> Callable[[Stream[T]], Stream[U]]: ...  # type: ignore[overload-overlap]
@overload
def map(fn: Callable[[T], U]) -> Stage[T, U]: ...
def map(fn: Callable[[T], Any]) -> Stage[T, Any] | Callable[[Stream[T]], Stream[Any]]:
    """Replace each item by ``fn(item)``.

    With an ``async def`` function, each call is awaited before the next item is pulled (order
    kept, one call at a time); the result is then a regular, unfused operator.

    - Emits: ``fn(item)`` for each item, when the item arrives (when the call returns, for an
      async ``fn``).
    - Completes: when the upstream completes.
    - Fails: when the upstream fails or ``fn`` raises (re-raised as itself).
    - Cancels: when the downstream stops (an async call in flight is cancelled); buffers
      nothing.

    Marble: ``1 2 3 | map(x * 10)`` gives ``10 20 30``.
    """
    if inspect.iscoroutinefunction(fn):
        afn = fn

        async def gen(up: Stream[T]) -> AsyncGenerator[Any, None]:
            # Not ``up.iterate()``: that opens the terminal's task host, which must never be
            # held across this generator's ``yield`` (PEP 789); operators only close upstream.
            async with aclosing(up.__aiter__()) as it:
                async for x in it:
                    yield await afn(x)

        def op(up: Stream[T]) -> Stream[Any]:
            return Stream.defer(gen, up)

        return op

    def bind(down: Push, end: End) -> tuple[Push, End]:
        def push(x: Any) -> None:
            down(fn(x))

        return push, end

    def step() -> Callable[[Any], Any]:
        return fn  # the function itself is the step: one call per item, nothing around it

    return Stage(bind, f"map({getattr(fn, '__name__', 'fn')})", step=step)


def scan(fn: Callable[[A, T], A], initial: A) -> Stage[T, A]:
    """Fold items into an accumulator and emit the accumulator after each item.

    - Emits: ``acc = fn(acc, item)`` for each item, starting from ``initial`` (which itself is
      not emitted).
    - Completes: when the upstream completes.
    - Fails: when the upstream fails or ``fn`` raises.
    - Cancels: when the downstream stops; holds only the accumulator.

    Marble: ``1 2 3 | scan(add, 0)`` gives ``1 3 6``.
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        acc = initial

        def push(x: Any) -> None:
            nonlocal acc
            acc = fn(acc, x)
            down(acc)

        return push, end

    def step() -> Callable[[Any], Any]:
        acc = initial

        def step1(x: Any) -> Any:
            nonlocal acc
            acc = fn(acc, x)
            return acc

        return step1

    return Stage(bind, f"scan({getattr(fn, '__name__', 'fn')})", step=step)


def tap(fn: Callable[[T], object]) -> Stage[T, T]:
    """Call ``fn(item)`` for its side effect and pass the item on unchanged.

    - Emits: each item, right after ``fn`` returned.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails or ``fn`` raises.
    - Cancels: when the downstream stops; buffers nothing.

    Marble: ``a b | tap(print)`` gives ``a b`` (and prints both).
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        def push(x: Any) -> None:
            fn(x)
            down(x)

        return push, end

    def step() -> Callable[[Any], Any]:
        def step1(x: Any) -> Any:
            fn(x)
            return x

        return step1

    return Stage(bind, f"tap({getattr(fn, '__name__', 'fn')})", step=step)
