"""Combining operators: ``merge`` (several concurrent sources into one stream) and ``concat``
(one source after another), plus :func:`task_scope`, a task host for hand-written consumers.

Structured concurrency (PEP 789). ``merge`` runs one task per source, and starts those tasks
only in the task host of the terminal that pulls it (see :mod:`streamops._host`): a task group
opened by ``collect()``, ``first()``, ``last()``, ``run()``, ``async with stream.iterate()``,
``iter_sync()``/``to_list()`` (through ``iterate()``/``collect()`` on the bridge's loop), or
by ``async with task_scope():`` around a consumer you wrote yourself. Every terminal works,
also for streams piped from a merge. A bare ``async for`` over a merge outside any host raises
:class:`~streamops.errors.TaskHostRequired`. The merged stream's iterator is a plain object, not an
async generator, so no task group or cancel scope is held across a ``yield``; each source task
runs in its own cancel scope, and closing the iterator (``aclose``, which every terminal does
when the consumer stops) cancels them and waits until every source has been closed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, aclosing
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .._host import current_host, hosted
from .._stream import Stream, aclose_iterator
from ..events import BaseEvent, derive
from .errors import error_event

if TYPE_CHECKING:
    import anyio
    from anyio.abc import TaskGroup

__all__ = ["concat", "merge", "task_scope"]

T = TypeVar("T")


# --------------------------------------------------------------------------------- task scopes
def task_scope() -> AbstractAsyncContextManager[TaskGroup]:
    """``async with task_scope(): ...``: a task host for a consumer you wrote yourself.

    The same host the terminals open (:func:`streamops._host.hosted`): a task group, opened by
    this context manager in your frame and published in a context variable until the block
    exits, where operators that run tasks (``merge``, time windows, prefetch) start them. Use it
    around a bare ``async for`` over such a stream, or around a pipeline whose consumer is an
    async generator; terminals (``collect()``, ``run()``, ``iterate()``...) need none.

    On exit, tasks still running (an iterator left unclosed) are cancelled, and their sources
    closed. An exception raised by the body leaves as itself, never wrapped in an
    ``ExceptionGroup`` (a group of one exception is unwrapped).
    """
    return hosted()



async def aclose_shielded(it: object) -> Exception | None:
    """Close the iterator ``it`` (:func:`~streamops._stream.aclose_iterator`) shielded from
    cancellation, so that a source's own cleanup runs even when its task, or the whole host,
    is being cancelled; return the ``Exception`` its ``aclose()`` raised, if any. For the
    operators that pull a source in a task of their own (``merge``, ``share``)."""
    import anyio

    with anyio.CancelScope(shield=True):
        try:
            await aclose_iterator(it)
        except Exception as exc:
            return exc
    return None

class _MergedStream(Stream[T]):
    """A merge with no stages after it: terminals iterate the merge directly.

    Terminals and ``iterate()`` always close what they iterate, so they can skip the stream's
    async generator layer (one ``async for``/``yield`` less per item). A bare ``async for``
    still gets the stream's async generator. Piping returns a plain :class:`Stream`.
    """

    __slots__ = ()

    def __aiter__(self) -> AsyncGenerator[T, None]:
        return Stream._gen(self)

    def _gen(self) -> AsyncGenerator[T, None]:
        source = self._source
        if not self._stages and isinstance(source, _MergeSource):
            return source.__aiter__()
        return Stream._gen(self)


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
        "_interrupted",
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
        self._interrupted = False  # a source task was cancelled from outside (not by the merge)

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
                if self._interrupted:
                    # A cancellation from outside (a deadline around the consumer, the host
                    # being cancelled) ended the sources, not their end: the consumer is inside
                    # the same cancelled scope, so let it see the cancellation instead of
                    # reporting a complete stream.
                    self._interrupted = False
                    await anyio.lowlevel.checkpoint()
                raise StopAsyncIteration
            waiter = self._waiter = anyio.Event()
            await waiter.wait()

    def _start(self) -> None:
        import anyio  # imported on use: `import streamops` stays light

        tg = current_host("merge()")  # raises TaskHostRequired under a bare `async for`
        self._started = True
        self._all_done = anyio.Event()
        if not self._sources:
            self._all_done.set()
        run = self._run
        for src in self._sources:
            tg.start_soon(run, src)

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
                                x = derive(x, agent=label)
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
                        failed = await aclose_shielded(it)
                        if failed is not None:
                            self._source_failed(src, failed, last)
        except anyio.get_cancelled_exc_class():
            # Not the merge's own cancellation (that one stops at the source's scope).
            if not self._closed:
                self._interrupted = True
            raise
        finally:
            src.scope = None
            self._active -= 1
            if self._active == 0:
                assert self._all_done is not None
                self._all_done.set()
            self._wake()

    def _source_failed(self, src: _Source, exc: Exception, last: Any) -> None:
        if self._on_error == "continue":
            event = error_event(exc, last if isinstance(last, BaseEvent) else None)
            if src.label:
                event = derive(event, agent=src.label)
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
    copy made with :func:`~streamops.events.derive`; events that name their agent, and non-events,
    pass unchanged). ``run_id`` and ``seq`` are never touched.

    One task per source (not per item), each in its own cancel scope; a source's async
    generator runs in its own task from its first item to its last, so context variables it
    sets persist across its items. The tasks live in the task host of the terminal that pulls
    the stream: every terminal works (``collect()``, ``first()``, ``last()``, ``run()``,
    ``async with stream.iterate()``, ``iter_sync()``, ``to_list()``), also for a stream piped
    from a merge. For a bare ``async for``, open a host yourself:
    ``async with task_scope(): async for x in merge(a, b): ...``; without one, the first pull
    raises :class:`~streamops.errors.TaskHostRequired`. No cancel scope is held across a ``yield``.

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
      (shielded) before the close returns. A cancellation from outside (a deadline around the
      consumer) that ends the sources is never reported as their completion; when it meets a
      source's failure, the consumer gets either the failure (as itself, on asyncio and trio
      alike) or the cancellation (``TimeoutError`` from ``anyio.fail_after``), never an
      ``ExceptionGroup``.
    - Buffers: at most ``buffer`` items per source (default 16; ``buffer=1`` is strict
      one-item hand-off); a source whose items the consumer has not taken waits, and resumes
      when at most ``buffer // 2`` of its items remain.

    Marble: ``a: 1 . 2 . 3`` and ``b: . x . y`` give ``merge(a, b)``: ``1 x 2 y 3``
    (interleaving depends on timing; per-source order never changes).

    Raises:
        ValueError: ``buffer`` < 1, an unknown ``on_error``, or a mapping mixed with
            positional sources.
        TaskHostRequired: on the first pull, when no task host is open (a bare
            ``async for`` outside ``task_scope()``).
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
    return _MergedStream(_MergeSource(sources, buffer, on_error))


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
                await aclose_iterator(src)


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
    return Stream.defer(_concat, streams)
