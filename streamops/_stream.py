"""``Stream``: a lazy, pull-based async iterable with fused synchronous stages."""

from __future__ import annotations

import inspect
import types
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar, overload

from ._host import hosted

if TYPE_CHECKING:
    from collections.abc import Generator

    import reactivex

__all__ = ["Operator", "Push", "Stage", "Stream", "StageComplete", "aclose_iterator"]

T = TypeVar("T")
U = TypeVar("U")
V = TypeVar("V")

Push: TypeAlias = Callable[[Any], None]
"""Hands one item to the next stage."""
End: TypeAlias = Callable[[], None]
"""Tells the next stage that no more items will come (it emits what it holds, then passes
the end on)."""


class StageComplete(Exception):  # a control-flow signal, not an error
    """Raised by a stage's push to say it needs no more input (``take`` reached its count).

    The stage must call its downstream ``end`` before raising. The stream then stops pulling
    and closes its source.
    """


class Stage(Generic[T, U]):
    """A synchronous stage that fuses with its neighbours into one generator step.

    ``bind(down, end)`` is called once per iteration of the stream, with the next stage's push
    and end functions; it returns this stage's own ``(push, end)``. Per-iteration state lives
    in the closure, so a stream can be iterated again with fresh state. ``push(item)`` emits
    zero or more items by calling ``down``; ``end()`` emits what the stage holds and must call
    the downstream ``end``; ``push`` may raise :class:`StageComplete` after calling ``end``.

    A stage costs one Python call per item, not an ``await``: consecutive stages run inside one
    step of one async generator.

    ``step`` (optional) is a faster equivalent form for stages that emit at most one item per
    input, hold nothing at the end and never complete early (``filter``, ``map``, ``scan``,
    ``tap``): called once per iteration (fresh state, like ``bind``), it returns a function
    ``f(item)`` that returns the one output item, or :data:`SKIP` for none. When every stage
    of a stream has a ``step``, the stream calls these functions in a row (no push chain, no
    output buffer); otherwise it uses ``bind``. Both forms must behave the same.
    """

    __slots__ = ("_bind", "_step", "name")

    def __init__(
        self,
        bind: Callable[[Push, End], tuple[Push, End]],
        name: str,
        *,
        step: Callable[[], Callable[[Any], Any]] | None = None,
    ) -> None:
        self._bind = bind
        self._step = step
        self.name = name

    def bind(self, down: Push, end: End) -> tuple[Push, End]:
        """Build this stage's ``(push, end)`` feeding ``down``/``end``."""
        return self._bind(down, end)

    def __repr__(self) -> str:
        return f"<Stage {self.name}>"


Operator: TypeAlias = "Stage[T, U] | Callable[[Stream[T]], Stream[U]]"
"""What ``|`` and :meth:`Stream.pipe` accept: a fusable :class:`Stage`, or any function from
one stream to another (operators that await, own tasks or watch time)."""


def _noop() -> None:
    return None


class Marker:
    """A marker object (:data:`SKIP`, :data:`streamops._pump.TIMED_OUT`): compared by identity,
    shown by its name."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


SKIP: Any = Marker("SKIP")
"""Returned by a stage's ``step`` function to emit nothing for this input."""


class _Deferred(Generic[T]):
    """An async iterable that calls ``factory(*args)`` for a fresh async iterable each time."""

    __slots__ = ("_args", "_factory")

    def __init__(self, factory: Callable[..., AsyncIterable[T]], args: tuple[Any, ...]) -> None:
        self._factory = factory
        self._args = args

    def __aiter__(self) -> AsyncIterator[T]:
        return self._factory(*self._args).__aiter__()

    def __repr__(self) -> str:
        return f"<defer {getattr(self._factory, '__qualname__', self._factory)!r}>"


class _Pass(AsyncGenerator[T, None]):
    """The iterator of a stream without stages: its source's iterator, started at the first
    pull, with nothing in between.

    Same behaviour as :meth:`Stream._gen` for such a stream, at the cost of one function call
    per item instead of one async generator step: ``source.__aiter__()`` (a
    :meth:`Stream.defer` factory) runs at the first pull and its error surfaces there; when the
    source's iterator is an async generator (or another ``_Pass``) its own ``__anext__`` is
    handed out as is (it closes itself when it ends or fails, and the event loop's finalizer
    closes it when dropped); any other iterator is wrapped in :func:`_closing` (closed when
    it ends, fails or is closed, as ``_gen`` does). ``aclose()`` closes the source's iterator
    (nothing when never pulled); ``athrow`` closes it and raises the exception.
    """

    __slots__ = ("_anext", "_it", "_source")

    def __init__(self, source: AsyncIterable[T]) -> None:
        self._source = source
        self._it: AsyncIterator[T] | None = None
        self._anext: Callable[[], Awaitable[T]] = self._first

    def __aiter__(self) -> _Pass[T]:
        return self

    def __anext__(self) -> Any:
        return self._anext()

    def asend(self, value: None) -> Any:
        return self._anext()

    async def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> T:
        await self.aclose()
        if val is None:
            raise typ
        raise val

    async def aclose(self) -> None:
        self._anext = _finished
        it, self._it = self._it, None
        if it is not None:
            await aclose_iterator(it)

    async def _first(self) -> T:
        self._anext = _finished  # a factory that raises: the stream is over, as for ``_gen``
        it = self._source.__aiter__()
        if type(it) is not _AGEN and type(it) is not _Pass:
            it = _closing(it)
        self._it = it
        self._anext = it.__anext__
        return await it.__anext__()


async def _finished() -> Any:
    raise StopAsyncIteration


async def _closing(it: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """``it``'s items; ``it`` closed (when it can be) however this generator ends."""
    try:
        async for x in it:
            yield x
    finally:
        await aclose_iterator(it)


async def _from_sync_iterable(items: Iterable[T]) -> AsyncGenerator[T, None]:
    for item in items:
        yield item


async def aclose_iterator(it: object) -> None:
    """Close an async iterator if it can be closed (``await it.aclose()`` when it has one).

    What a hand-written operator calls on its source's iterator when it stops early, so the
    provider's request is closed at once rather than by the garbage collector. Errors raised
    by ``aclose()`` propagate.
    """
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


_AGEN = types.AsyncGeneratorType


class Stream(Generic[T]):
    """A lazy, pull-based, composable async stream of ``T``.

    Nothing runs until a terminal pulls: ``async for``, :meth:`collect`, :meth:`run`,
    :meth:`first`, :meth:`last`, :meth:`to_list` or :meth:`iter_sync`. Backpressure is the
    pull itself: the source is asked for the next item only when the consumer wants one, so no
    buffer grows between stages.

    Compose with ``stream | op`` or ``stream.pipe(op1, op2)``. Consecutive :class:`Stage`
    operators (``filter``, ``map``, ``scan``, ``take``...) are fused: they run as plain
    function calls inside a single async generator step.

    Closing: when the consumer stops early (``break``, an exception, ``aclose()``), the
    stream's async generator closes its source, which closes its own source, and so on up to
    the provider. ``async for`` on a bare stream leaves that to the event loop's async
    generator finalizer (it runs when the generator is garbage collected: at once in
    CPython); use ``async with stream.iterate() as it`` or a terminal to close it
    deterministically.

    A stream is as re-iterable as its source: one built from a list can be iterated again, one
    built from an async generator only once.
    """

    __slots__ = ("_source", "_stages")

    def __init__(self, source: AsyncIterable[Any], stages: tuple[Stage[Any, Any], ...] = ()) -> None:
        self._source = source
        self._stages = stages

    # ----------------------------------------------------------------------------- sources
    @classmethod
    def from_iterable(cls, items: Iterable[T]) -> Stream[T]:
        """A stream of the items of a synchronous iterable (re-iterable if ``items`` is)."""
        return cls(_Deferred(_from_sync_iterable, (items,)))

    @classmethod
    def defer(cls, factory: Callable[..., AsyncIterable[T]], /, *args: Any) -> Stream[T]:
        """A stream that calls ``factory(*args)`` anew for each iteration and streams what it
        returns (an async generator, another :class:`Stream`, any async iterable).

        This is how a source that does work when it starts (opens a request, takes a lock,
        starts a run) stays lazy and re-iterable: nothing runs until a terminal pulls, and
        each iteration is a fresh run. Errors raised by ``factory`` itself surface at the first
        pull. Closing the stream closes the iterator ``factory`` gave.

        Marble (``gen`` yields ``a b |`` each time it is called)::

            Stream.defer(gen)    iteration 1: a b |    iteration 2: a b |
        """
        return cls(_Deferred(factory, args))

    @classmethod
    def from_async_iterable(cls, items: AsyncIterable[T]) -> Stream[T]:
        """A stream over any async iterable (async generator, SDK stream, another Stream)."""
        if isinstance(items, Stream):
            return items
        return cls(items)

    @classmethod
    def from_observable(
        cls,
        observable: reactivex.Observable[T],
        *,
        max_buffer: int = 1024,
        overflow: Literal["error", "drop_oldest", "drop_newest"] = "error",
    ) -> Stream[T]:
        """A stream of the items a ReactiveX observable pushes, subscribed when the stream is
        iterated (each iteration subscribes anew). Requires the ``reactivex`` package (extra
        ``rx``).

        - Emits: each pushed item, in push order, when the consumer pulls.
        - Completes: when the observable completes (after the buffer is drained).
        - Fails: with the observable's error (after the buffer is drained), or with
          :class:`~streamops.errors.BufferOverflowError` when more than ``max_buffer`` items
          wait and ``overflow="error"``.
        - Cancels: when the consumer stops, the subscription is disposed.
        - Buffers: Rx pushes and has no backpressure, so at most ``max_buffer`` items wait;
          ``"drop_oldest"`` drops the oldest waiting item to make room, ``"drop_newest"`` the
          pushed one. Items may be pushed from any thread (see :mod:`streamops.rx`).

        Raises:
            ValueError: ``max_buffer`` is less than 1.
        """
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
        from .rx import observe

        return cls.defer(observe, observable, max_buffer, overflow)

    def to_observable(self) -> reactivex.Observable[T]:
        """This stream as a ReactiveX observable (see :func:`streamops.rx.to_observable`)."""
        from .rx import to_observable

        return to_observable(self)

    # ----------------------------------------------------------------------------- composition
    def __or__(self, op: Stage[T, U] | Callable[[Stream[T]], Stream[U]]) -> Stream[U]:
        if isinstance(op, Stage):
            return Stream(self._source, (*self._stages, op))
        if callable(op):
            out = op(self)
            if not isinstance(out, Stream):
                raise _not_a_stream(op, out)
            return out
        return NotImplemented

    @overload
    def pipe(self) -> Stream[T]: ...
    @overload
    def pipe(self, op1: Stage[T, U] | Callable[[Stream[T]], Stream[U]], /) -> Stream[U]: ...
    @overload
    def pipe(
        self,
        op1: Stage[T, U] | Callable[[Stream[T]], Stream[U]],
        op2: Stage[U, V] | Callable[[Stream[U]], Stream[V]],
        /,
    ) -> Stream[V]: ...
    @overload
    def pipe(self, *ops: Stage[Any, Any] | Callable[[Stream[Any]], Stream[Any]]) -> Stream[Any]: ...
    def pipe(self, *ops: Stage[Any, Any] | Callable[[Stream[Any]], Stream[Any]]) -> Stream[Any]:
        """Apply operators in order: ``s.pipe(a, b)`` is ``s | a | b``."""
        out: Stream[Any] = self
        for op in ops:
            out = out | op
        return out

    @property
    def stages(self) -> tuple[str, ...]:
        """Names of the fused stages at the tail of this stream (for inspection)."""
        return tuple(s.name for s in self._stages)

    # ----------------------------------------------------------------------------- iteration
    def __aiter__(self) -> AsyncGenerator[T, None]:
        if not self._stages:
            return _Pass(self._source)  # nothing to run between the source and the consumer
        return self._gen()

    async def _gen(self) -> AsyncGenerator[T, None]:
        # The hot loop. Two paths with the same semantics:
        # - every stage has a ``step`` (filter/map/scan/tap...): call the step functions in a
        #   row per item, no push chain and no output buffer (unrolled for 1-3 stages);
        # - otherwise: bind the push chain, collect each push's outputs in ``out``, yield them.
        # Locals only in the loops; ``try`` costs nothing on 3.11+ until something raises.
        stages = self._stages
        it = self._source.__aiter__()
        try:
            if not stages:
                async for x in it:
                    yield x
                return
            if all(s._step is not None for s in stages):
                steps = [s._step() for s in stages]  # type: ignore[misc]
                skip = SKIP
                n = len(steps)
                if n == 1:
                    f = steps[0]
                    async for x in it:
                        try:
                            x = f(x)
                            if x is skip:
                                continue
                        except StageComplete:
                            break
                        yield x
                elif n == 2:
                    f, g = steps
                    async for x in it:
                        try:
                            x = f(x)
                            if x is skip:
                                continue
                            x = g(x)
                            if x is skip:
                                continue
                        except StageComplete:
                            break
                        yield x
                elif n == 3:
                    f, g, h = steps
                    async for x in it:
                        try:
                            x = f(x)
                            if x is skip:
                                continue
                            x = g(x)
                            if x is skip:
                                continue
                            x = h(x)
                            if x is skip:
                                continue
                        except StageComplete:
                            break
                        yield x
                else:
                    async for x in it:
                        try:
                            for f in steps:
                                x = f(x)
                                if x is skip:
                                    break
                        except StageComplete:
                            break
                        if x is not skip:
                            yield x
                return
            out: list[Any] = []
            push: Push = out.append
            end: End = _noop
            try:
                for stage in reversed(stages):
                    push, end = stage.bind(push, end)
            except StageComplete:
                # A stage needs no input at all (``take(0)``): do not pull from the source.
                for y in out:
                    yield y
                return
            complete = False
            failure: BaseException | None = None
            try:
                async for x in it:
                    try:
                        push(x)
                    except StageComplete:
                        complete = True
                    except Exception as exc:
                        failure = exc
                    else:
                        if out:
                            if len(out) == 1:
                                yield out.pop()
                            else:
                                for y in out:
                                    yield y
                                out.clear()
                        continue
                    # Completed or failed: this push's outputs are yielded below, before the
                    # error is re-raised; the source is closed first, so the consumer gets
                    # control back with every upstream already closed (``take``).
                    await aclose_iterator(it)
                    break
            except Exception as exc:
                # The source failed: emit what the stages hold, then re-raise.
                failure = exc
                try:
                    end()
                except StageComplete:
                    pass
            if failure is None and not complete:
                try:
                    end()
                except StageComplete:
                    pass
            for y in out:
                yield y
            out.clear()
            if failure is not None:
                raise failure
        finally:
            await aclose_iterator(it)

    def iterate(self) -> AbstractAsyncContextManager[AsyncGenerator[T, None]]:
        """``async with stream.iterate() as it: async for x in it: ...``: the iterator is
        closed (and with it every upstream source) when the block exits, however it exits.

        The block also hosts the tasks of operators that run tasks (``merge``, time windows):
        they are started in a task group the block owns and are cancelled and awaited when it
        exits (see :mod:`streamops._host`).
        """
        return self._iterate_hosted()

    @asynccontextmanager
    async def _iterate_hosted(self) -> AsyncIterator[AsyncGenerator[T, None]]:
        async with hosted(), aclosing(self._gen()) as it:
            yield it

    # ----------------------------------------------------------------------------- terminals
    async def collect(self) -> list[T]:
        """Run the stream to its end and return every item in a list."""
        async with hosted(), aclosing(self._gen()) as it:
            return [x async for x in it]

    async def first(self) -> T:
        """The first item; the stream is closed right after it.

        Raises:
            LookupError: the stream was empty.
        """
        async with hosted(), aclosing(self._gen()) as it:
            async for x in it:
                return x
        raise LookupError("first(): the stream was empty")

    async def last(self) -> T:
        """The last item, after running the stream to its end.

        Raises:
            LookupError: the stream was empty.
        """
        sentinel: Any = _EMPTY
        last: Any = sentinel
        async with hosted(), aclosing(self._gen()) as it:
            async for x in it:
                last = x
        if last is sentinel:
            raise LookupError("last(): the stream was empty")
        return last  # type: ignore[no-any-return]

    async def run(self, sink: Callable[[T], Awaitable[object] | object] | Any) -> int:
        """Run the stream into ``sink`` and return how many items it received.

        ``sink`` is a function (sync or async) called with each item, or an object with a
        ``send(item)`` method (sync or async) and optionally ``aclose()``/``close()`` (sync or
        async: awaited when it returns an awaitable), called at the end (also on error or
        cancellation).
        """
        send = getattr(sink, "send", None)
        fn: Callable[[T], Any] = send if send is not None else sink
        is_async = inspect.iscoroutinefunction(fn)
        n = 0
        try:
            async with hosted(), aclosing(self._gen()) as it:
                if is_async:
                    async for x in it:
                        await fn(x)
                        n += 1
                else:
                    async for x in it:
                        r = fn(x)
                        if inspect.isawaitable(r):
                            await r
                        n += 1
        finally:
            if send is not None:
                close = getattr(sink, "aclose", None) or getattr(sink, "close", None)
                if close is not None:
                    r = close()
                    if inspect.isawaitable(r):  # ``async def close()`` (or a sync ``aclose``)
                        await r
        return n

    def to_list(self, *, backend: str = "asyncio") -> list[T]:
        """Run the stream from synchronous code and return every item (see :meth:`iter_sync`)."""
        from ._bridge import run_sync

        return run_sync(self.collect, backend=backend)

    def iter_sync(self, *, backend: str = "asyncio") -> Generator[T, None, None]:
        """Iterate from synchronous code: ``for event in stream.iter_sync(): ...``.

        The stream runs on an event loop in a worker thread (anyio blocking portal, on
        ``backend``). Abandoning the iterator (``break``, an exception, ``close()``, garbage
        collection) closes the stream and its sources and stops the thread: nothing leaks.
        Each item costs a thread hop (tens of microseconds): use it at the edges, not on a hot
        path. Must not be called from inside a running event loop's thread if the loop would
        then block waiting on itself.
        """
        from ._bridge import iter_sync

        return iter_sync(self, backend=backend)

    def __repr__(self) -> str:
        stages = " | ".join(self.stages)
        return f"<Stream {type(self._source).__name__}{' | ' + stages if stages else ''}>"


_EMPTY = object()


def _not_a_stream(op: object, out: object) -> TypeError:
    """The error for ``stream | op`` when ``op(stream)`` is not a :class:`Stream`."""
    what = type(out)
    msg = (
        f"stream | op: the operator returned {what.__module__}.{what.__qualname__}, not a "
        "Stream; an operator is a Stage or a callable Stream -> Stream"
    )
    if what.__module__.split(".")[0] == "reactivex":
        msg += (
            ". ReactiveX operators apply to observables, not streams: convert with "
            "stream.to_observable(), pipe the Rx operators there, and come back with "
            "Stream.from_observable(observable)"
        )
    return TypeError(msg)
