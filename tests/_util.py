"""Helpers shared by the core tests: instrumented sources and a grammar-checking drain."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from contextlib import aclosing
from typing import Any

from streamops import Stream


class Boom(Exception):
    """A marker exception raised by test sources and stages."""


class Probe:
    """An instrumented async generator source.

    It records how many items it produced (``pulled``), whether its ``finally`` ran
    (``closed``), and appends to ``log`` (shared with other probes and the consumer when
    given) so tests can check the order in which things happened.
    """

    def __init__(
        self,
        items: Iterable[Any],
        *,
        raise_at: int | None = None,
        error: BaseException | None = None,
        log: list[Any] | None = None,
        name: str = "source",
    ) -> None:
        self.items = list(items)
        self.raise_at = raise_at
        self.error = error if error is not None else Boom(name)
        self.pulled = 0
        self.closed = False
        self.started = False
        self.log: list[Any] = log if log is not None else []
        self.name = name

    async def gen(self) -> AsyncGenerator[Any, None]:
        self.started = True
        try:
            for i, x in enumerate(self.items):
                if self.raise_at is not None and i == self.raise_at:
                    raise self.error
                self.pulled += 1
                self.log.append((self.name, "yield", x))
                yield x
            if self.raise_at is not None and self.raise_at >= len(self.items):
                raise self.error
        finally:
            self.closed = True
            self.log.append((self.name, "finally"))

    def stream(self) -> Stream[Any]:
        """A single-use stream over a fresh generator."""
        return Stream.from_async_iterable(self.gen())


class Counter:
    """An infinite instrumented source: 0, 1, 2, ..."""

    def __init__(self, log: list[Any] | None = None, name: str = "counter") -> None:
        self.pulled = 0
        self.closed = False
        self.log: list[Any] = log if log is not None else []
        self.name = name

    async def gen(self) -> AsyncGenerator[int, None]:
        try:
            i = 0
            while True:
                self.pulled += 1
                self.log.append((self.name, "yield", i))
                yield i
                i += 1
        finally:
            self.closed = True
            self.log.append((self.name, "finally"))

    def stream(self) -> Stream[int]:
        return Stream.from_async_iterable(self.gen())


class Flagged:
    """An unfused operator (an async generator over its upstream) with a ``finally`` flag."""

    def __init__(self, name: str = "op", log: list[Any] | None = None) -> None:
        self.name = name
        self.closed = False
        self.log: list[Any] = log if log is not None else []

    async def _gen(self, up: AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
        # An operator closes its upstream iterator itself (``aclosing``), never leaving it to
        # the garbage collector; it is not a terminal, so it does not use ``up.iterate()``.
        try:
            async with aclosing(up.__aiter__()) as it:  # type: ignore[type-var]
                async for x in it:
                    yield x
        finally:
            self.closed = True
            self.log.append((self.name, "finally"))

    def __call__(self, up: Stream[Any]) -> Stream[Any]:
        return Stream.defer(self._gen, up)


END = "end"
ERROR = "error"


async def drain(stream: AsyncIterable[Any], *, extra_pulls: int = 2) -> tuple[list[Any], BaseException | None]:
    """Pull ``stream`` by hand to its end and check the grammar ``item* (end | error)``.

    Returns the items and the exception (``None`` for a normal end). After the end, every
    further ``__anext__`` must raise ``StopAsyncIteration`` (nothing follows the end).
    """
    agen = stream.__aiter__()
    items: list[Any] = []
    error: BaseException | None = None
    try:
        while True:
            try:
                items.append(await agen.__anext__())
            except StopAsyncIteration:
                break
            except Exception as exc:
                error = exc
                break
        for _ in range(extra_pulls):
            try:
                x = await agen.__anext__()
            except StopAsyncIteration:
                continue
            raise AssertionError(f"item {x!r} after the end of the stream")
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()
    return items, error


def apply_ref(ops: list[tuple[str, Any]], it: Iterable[Any]) -> Iterable[Any]:
    """Reference semantics of a chain of simple ops, as plain synchronous generators."""

    def take(src: Iterable[Any], n: int) -> Iterable[Any]:
        if n == 0:
            return
        for i, x in enumerate(src, 1):
            yield x
            if i == n:
                return

    def take_until(src: Iterable[Any], pred: Callable[[Any], object], inclusive: bool) -> Iterable[Any]:
        for x in src:
            if pred(x):
                if inclusive:
                    yield x
                return
            yield x

    def scan(src: Iterable[Any], fn: Callable[[Any, Any], Any], init: Any) -> Iterable[Any]:
        acc = init
        for x in src:
            acc = fn(acc, x)
            yield acc

    def keep(src: Iterable[Any], pred: Callable[[Any], object]) -> Iterable[Any]:
        return (x for x in src if pred(x))

    def apply(src: Iterable[Any], fn: Callable[[Any], Any]) -> Iterable[Any]:
        return (fn(x) for x in src)

    for name, arg in ops:
        if name == "filter":
            it = keep(it, arg)
        elif name in ("map", "amap"):
            it = apply(it, arg)
        elif name == "scan":
            it = scan(it, *arg)
        elif name == "take":
            it = take(it, arg)
        elif name == "take_until":
            it = take_until(it, *arg)
        elif name == "tap":
            it = apply(it, lambda x: x)
        else:  # pragma: no cover - a test bug
            raise AssertionError(name)
    return it
