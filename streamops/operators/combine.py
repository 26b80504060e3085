"""Combining operators: ``merge`` (several concurrent sources into one stream) and ``concat``
(one source after another), plus :func:`task_scope`, where operators that own tasks put them.

Structured concurrency (PEP 789). ``merge`` runs one task per source. Those tasks never live in
a task group held across the ``yield`` of an async generator: the merged stream's iterator is a
plain object whose ``__anext__`` takes the next item from a shared buffer, and the tasks are
spawned into the innermost *task scope*, a task group opened by an async context manager
(:func:`task_scope`, ``async with merged.iterate()``) or a terminal coroutine (``collect``,
``first``, ``last``, ``run`` of a merged stream, and of any stream piped from one). Outside any
scope (a bare ``async for``, ``iter_sync``), the iterator hosts its tasks itself (asyncio tasks,
trio system tasks); either way each task runs in its own cancel scope, and closing the iterator
(``aclose``, which the stream does when the consumer stops) cancels them and waits until every
source has been closed.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._stream import Stage, Stream, _aclose, _GenSource
from ..events import BaseEvent, ErrorEvent

if TYPE_CHECKING:
    import anyio

__all__ = ["concat", "merge", "task_scope"]

T = TypeVar("T")
U = TypeVar("U")

try:  # the core's task host (terminals publish their task group there), when present
    from .._host import _HOST as _SCOPE
except ImportError:  # pragma: no cover - older core without streamops._host
    _SCOPE = contextvars.ContextVar("streamops_task_scope", default=None)
_HOSTED: set[asyncio.Task[Any]] = set()  # strong references to self-hosted asyncio tasks


# --------------------------------------------------------------------------------- task scopes
@asynccontextmanager
async def task_scope() -> AsyncGenerator[None, None]:
    """``async with task_scope(): ...``: a task group for the operators started inside it.

    ``merge`` (and ``share`` without its own ``async with``) spawn their tasks into the
    innermost open scope, found through a context variable, so the task group is opened here,
    by a context manager, and never held across an async generator's ``yield`` (PEP 789). The
    terminals of a merged stream open one for you; open one yourself around a bare
    ``async for`` over a merged stream, or around a pipeline whose consumer you wrote as an
    async generator.

    On exit, tasks still running (an iterator left unclosed) are cancelled, and their sources
    closed. An exception raised by the body leaves as itself, never wrapped in an
    ``ExceptionGroup`` (a group of one exception is unwrapped).
    """
    import anyio  # imported on use: `import streamops` stays light

    single: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            token = _SCOPE.set(tg)
            try:
                yield
            finally:
                _SCOPE.reset(token)
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        single = group.exceptions[0]
    if single is not None:
        raise single


def _in_trio() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _spawn(fn: Callable[..., Coroutine[Any, Any, None]], *args: Any, use_scope: bool = True) -> None:
    """Start ``fn(*args)`` in the current task scope, or self-hosted outside any scope (or
    with ``use_scope=False``).

    ``fn`` must handle its own errors (it reports them to its owner) and must finish when its
    own cancel scope is cancelled; the owner joins it. The task runs in a copy of the caller's
    context.
    """
    tg = _SCOPE.get() if use_scope else None
    if tg is not None:
        tg.start_soon(fn, *args)
    elif _in_trio():
        import trio

        trio.lowlevel.spawn_system_task(fn, *args, context=contextvars.copy_context())
    else:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(fn(*args))
        _HOSTED.add(task)
        task.add_done_callback(_HOSTED.discard)


class _ScopedStream(Stream[T]):
    """A stream whose terminals open a :func:`task_scope` when none is open.

    Piping keeps the class (stages and stream functions alike), so ``merge(a, b) | op`` still
    opens the scope in its terminals, around the whole pipeline.
    """

    __slots__ = ()

    def __aiter__(self) -> AsyncGenerator[T, None]:
        # A bare ``async for`` gets the real async generator: the event loop's finalizer closes
        # it (and the merge with it) if the consumer abandons it.
        return Stream._gen(self)

    def _gen(self) -> AsyncGenerator[T, None]:
        # Terminals and ``iterate()`` always close what they iterate, so a merge with no stages
        # after it is iterated directly (one async generator layer less per item).
        source = self._source
        if not self._stages and isinstance(source, _MergeSource):
            return source.__aiter__()
        return Stream._gen(self)

    def __or__(self, op: Stage[T, U] | Callable[[Stream[T]], Stream[U]]) -> Stream[U]:
        out = super().__or__(op)
        if type(out) is Stream:
            return _ScopedStream(out._source, out._stages)
        return out

    def iterate(self) -> AbstractAsyncContextManager[AsyncGenerator[T, None]]:
        return _scoped_iterate(self)

    async def collect(self) -> list[T]:
        if _SCOPE.get() is not None:
            return await super().collect()
        async with task_scope():
            return await super().collect()

    async def first(self) -> T:
        if _SCOPE.get() is not None:
            return await super().first()
        async with task_scope():
            return await super().first()

    async def last(self) -> T:
        if _SCOPE.get() is not None:
            return await super().last()
        async with task_scope():
            return await super().last()

    async def run(self, sink: Callable[[T], Awaitable[object] | object] | Any) -> int:
        if _SCOPE.get() is not None:
            return await super().run(sink)
        async with task_scope():
            return await super().run(sink)


@asynccontextmanager
async def _scoped_iterate(stream: Stream[T]) -> AsyncGenerator[AsyncGenerator[T, None], None]:
    if _SCOPE.get() is not None:
        async with aclosing(stream._gen()) as it:
            yield it
        return
    async with task_scope(), aclosing(stream._gen()) as it:
        yield it


# --------------------------------------------------------------------------------- merge
class _Source:
    __slots__ = ("iterable", "label", "pending", "scope", "space")

    def __init__(self, iterable: AsyncIterable[Any], label: str) -> None:
        self.iterable = iterable
        self.label = label
        self.pending = 0  # items of this source in the shared buffer
        self.scope: anyio.CancelScope | None = None
        self.space: anyio.Event | None = None  # set by the consumer when the source may go on


class _MergeSource:
    """The merged stream's source: each ``__aiter__`` starts a fresh merge."""

    __slots__ = ("_buffer", "_on_error", "_sources")

    def __init__(
        self, sources: list[tuple[str, AsyncIterable[Any]]], buffer: int, on_error: Literal["fail", "continue"]
    ) -> None:
        self._sources = sources
        self._buffer = buffer
        self._on_error = on_error

    def __aiter__(self) -> _MergeIterator:
        return _MergeIterator(self._sources, self._buffer, self._on_error)


class _MergeIterator:
    """One merge in progress. Not an async generator: nothing is held across a ``yield``.

    The source tasks append ``(source, item)`` to one shared deque (arrival order, so each
    source's order is kept) and wake the consumer only if it is waiting; a source that has
    ``buffer`` items in the deque waits until the consumer has taken half of them (all of them
    for ``buffer=1``), so its task switches are paid once per batch, not per item.
    """

    __slots__ = (
        "_active",
        "_all_done",
        "_buffer",
        "_closed",
        "_error",
        "_low",
        "_on_error",
        "_q",
        "_sources",
        "_stamp",
        "_started",
        "_waiter",
    )

    def __init__(
        self, sources: list[tuple[str, AsyncIterable[Any]]], buffer: int, on_error: Literal["fail", "continue"]
    ) -> None:
        self._sources = [_Source(it, label) for label, it in sources]
        self._stamp = any(label for label, _ in sources)
        self._buffer = buffer
        self._low = buffer // 2
        self._on_error = on_error
        self._q: deque[tuple[_Source, Any]] = deque()
        self._waiter: anyio.Event | None = None
        self._active = len(self._sources)
        self._all_done: anyio.Event | None = None
        self._started = False
        self._closed = False
        self._error: BaseException | None = None

    def __aiter__(self) -> _MergeIterator:
        return self

    async def __anext__(self) -> Any:
        q = self._q
        if q:
            src, x = q.popleft()
            n = src.pending = src.pending - 1
            if n <= self._low:
                space = src.space
                if space is not None:
                    src.space = None
                    space.set()
            return x
        return await self._next_slow()

    async def _next_slow(self) -> Any:
        import anyio  # imported on use: `import streamops` stays light

        if not self._started:
            self._start()
        while True:
            if self._q:
                return await self.__anext__()
            if self._error is not None:
                error = self._error
                await self.aclose()
                raise error
            if self._active == 0 or self._closed:
                raise StopAsyncIteration
            waiter = self._waiter = anyio.Event()
            await waiter.wait()

    def _start(self) -> None:
        import anyio  # imported on use: `import streamops` stays light

        self._started = True
        self._all_done = anyio.Event()
        if not self._sources:
            self._all_done.set()
        for src in self._sources:
            _spawn(self._run, src)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    async def _run(self, src: _Source) -> None:
        import anyio  # imported on use: `import streamops` stays light

        q = self._q
        k = self._buffer
        label = src.label
        stamp = self._stamp and bool(label)
        last: Any = None
        it: AsyncIterator[Any] | None = None
        try:
            with anyio.CancelScope() as scope:
                src.scope = scope
                try:
                    it = src.iterable.__aiter__()
                    if not self._closed:
                        async for x in it:
                            if stamp and isinstance(x, BaseEvent) and not x.agent:
                                x = replace(x, agent=label)
                            last = x
                            q.append((src, x))
                            waiter = self._waiter
                            if waiter is not None:
                                self._waiter = None
                                waiter.set()
                            n = src.pending = src.pending + 1
                            if n >= k:
                                space = src.space = anyio.Event()
                                await space.wait()
                except Exception as exc:
                    self._source_failed(src, exc, last)
                finally:
                    if it is not None:
                        # Shielded only when cancelled (closing an exhausted source awaits nothing).
                        with anyio.CancelScope(shield=scope.cancel_called):
                            try:
                                await _aclose(it)
                            except Exception as exc:
                                self._source_failed(src, exc, last)
        finally:
            src.scope = None
            self._active -= 1
            if self._active == 0:
                assert self._all_done is not None
                self._all_done.set()
            self._wake()

    def _source_failed(self, src: _Source, exc: Exception, last: Any) -> None:
        if self._on_error == "continue":
            run_id = last.run_id if isinstance(last, BaseEvent) else ""
            agent = src.label or (last.agent if isinstance(last, BaseEvent) else "")
            event = ErrorEvent(
                run_id=run_id,
                agent=agent,
                seq=last.seq + 1 if isinstance(last, BaseEvent) else 0,
                error_type=type(exc).__name__,
                message=str(exc),
            )
            src.pending += 1
            self._q.append((src, event))
            return
        if self._error is None:
            self._error = exc
            self._cancel_all()

    def _cancel_all(self) -> None:
        self._closed = True
        for src in self._sources:
            if src.scope is not None:
                src.scope.cancel()
            space = src.space
            if space is not None:
                src.space = None
                space.set()

    async def asend(self, value: None) -> Any:
        return await self.__anext__()

    async def athrow(self, *exc: Any) -> Any:
        await self.aclose()
        raise exc[1] if len(exc) > 1 and exc[1] is not None else exc[0]

    async def aclose(self) -> None:
        """Cancel every source task and wait until each source has been closed."""
        import anyio  # imported on use: `import streamops` stays light

        self._cancel_all()
        self._q.clear()
        if self._started and self._all_done is not None:
            with anyio.CancelScope(shield=True):
                await self._all_done.wait()


def merge(
    *streams: AsyncIterable[T] | Mapping[str, AsyncIterable[T]],
    buffer: int = 16,
    on_error: Literal["fail", "continue"] = "fail",
) -> Stream[T]:
    """Run several sources concurrently and emit their items as they arrive.

    ``merge(a, b, c)`` or, to label the sources, ``merge({"researcher": a, "writer": b})``: an
    event from a labelled source whose ``agent`` is empty gets the label as its ``agent`` (a
    copy made with :func:`dataclasses.replace`; events that name their agent, and non-events,
    pass unchanged). ``run_id`` and ``seq`` are never touched.

    One task per source (not per item), each in its own cancel scope; a source's async
    generator runs in its own task from its first item to its last, so context variables it
    sets persist across its items. The tasks live in the innermost :func:`task_scope`, which
    the merged stream's terminals and ``iterate()`` open when none is open; a bare
    ``async for`` outside any scope hosts them itself (see the module notes). No cancel scope
    is held across a ``yield``.

    - Emits: each item of each source, as soon as the source produces it; each source's order
      is kept; nothing is lost or duplicated. Sources interleave fairly: a source that never
      awaits can run at most ``buffer`` items ahead of the consumer before the others run.
    - Completes: when every source has completed (at once, for no sources).
    - Fails: with ``on_error="fail"`` (default), when the first source fails: the other
      sources are cancelled and closed, the items that reached the buffer before are emitted,
      then the source's exception is re-raised as itself (same object, never wrapped in an
      ``ExceptionGroup``). With ``on_error="continue"``, a failing source is dropped, an
      :class:`~streamops.ErrorEvent` (``error_type`` = the exception's class name,
      ``message``, the source's label or last ``agent``, its last ``run_id``, ``seq`` one past
      its last event) is emitted in its place, and the others go on.
    - Cancels: when the consumer stops (``break``, ``aclose()``, cancellation, the end of
      ``iterate()``): every source task is cancelled and every source's ``aclose`` runs
      (shielded) before the close returns.
    - Buffers: at most ``buffer`` items per source (default 16; ``buffer=1`` is strict
      one-item hand-off); a source whose items the consumer has not taken waits, and resumes
      when at most ``buffer // 2`` of its items remain.

    Marble: ``a: 1 . 2 . 3`` and ``b: . x . y`` give ``merge(a, b)``: ``1 x 2 y 3``
    (interleaving depends on timing; per-source order never changes).

    Raises:
        ValueError: ``buffer`` < 1, an unknown ``on_error``, or a mapping mixed with
            positional sources.
    """
    if buffer < 1:
        raise ValueError(f"merge(): buffer must be >= 1, got {buffer}")
    if on_error not in ("fail", "continue"):
        raise ValueError(f"merge(): on_error must be 'fail' or 'continue', got {on_error!r}")
    sources: list[tuple[str, AsyncIterable[Any]]] = []
    for s in streams:
        if isinstance(s, Mapping):
            if len(streams) != 1:
                raise ValueError("merge(): pass either one mapping {label: stream} or positional streams")
            sources.extend((str(label), src) for label, src in s.items())
        else:
            sources.append(("", s))
    return _ScopedStream(_MergeSource(sources, buffer, on_error))


# --------------------------------------------------------------------------------- concat
async def _concat(sources: tuple[AsyncIterable[Any], ...]) -> AsyncGenerator[Any, None]:
    i = 0
    try:
        while i < len(sources):
            src = sources[i]
            i += 1
            async with aclosing(src.__aiter__()) as it:  # type: ignore[type-var]
                async for x in it:
                    yield x
    finally:
        # Sources never started that are iterators themselves (async generator objects) are
        # closed too: the consumer stopped, nobody will run them.
        for src in sources[i:]:
            if isinstance(src, AsyncIterator):
                await _aclose(src)


def concat(*streams: AsyncIterable[T]) -> Stream[T]:
    """Emit every item of the first source, then of the second, and so on.

    Each source is opened only when the previous one has completed, and closed (``aclose``)
    before the next one starts; no task is started.

    - Emits: the items of each source in turn, unchanged.
    - Completes: when the last source completes.
    - Fails: when a source fails (re-raised as itself; later sources never start, and those
      that are async generator objects are closed).
    - Cancels: when the consumer stops: the current source is closed, and later sources that
      are async generator objects are closed unstarted.
    - Buffers: nothing.

    Marble: ``a: 1 2|`` and ``b: 3 4|`` give ``concat(a, b)``: ``1 2 3 4|``.
    """
    return _ScopedStream(_GenSource(_concat, streams))
