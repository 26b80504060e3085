"""ReactiveX interop: observables to streams and back (needs the ``reactivex`` package).

Rx pushes and has no backpressure; a :class:`~streamops.Stream` pulls. The bridges make the
buffering between the two explicit:

- :func:`observe` (behind :meth:`Stream.from_observable <streamops.Stream.from_observable>`)
  keeps pushed items in a bounded buffer (``max_buffer`` items) until
  the stream's consumer pulls them; a full buffer fails the stream or drops an item, as
  ``overflow`` says. Items may be pushed from any thread: off-loop pushes hop onto the event
  loop (and block the pushing thread until they are buffered).
- :func:`to_observable` runs the stream in an asyncio task per subscription and calls
  ``on_next`` for each item as it is pulled: it pulls only as fast as ``on_next`` returns,
  so it buffers nothing. Disposing the subscription cancels the task and closes the stream.
  It runs on asyncio (the ``AsyncIOScheduler`` world) and on trio (in a system task).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import reactivex
from reactivex import abc as rxabc
from reactivex.disposable import Disposable

from .errors import BufferOverflowError

if TYPE_CHECKING:
    from ._stream import Stream

__all__ = ["observe", "to_observable"]

T = TypeVar("T")


async def observe(
    observable: reactivex.Observable[T], max_buffer: int = 1024, overflow: str = "error"
) -> AsyncGenerator[T, None]:
    """The items ``observable`` pushes, as an async generator that subscribes when iterated:
    the bridge behind :meth:`Stream.from_observable <streamops.Stream.from_observable>`, which
    documents the buffering, ``overflow`` and errors (use that: it checks ``max_buffer``)."""
    token = anyio.lowlevel.current_token()
    loop_thread = threading.get_ident()
    buf: deque[T] = deque()
    waiter: list[anyio.Event] = []
    state: dict[str, Any] = {"done": False, "error": None}

    def wake() -> None:
        if waiter:
            waiter.pop().set()

    def in_loop(fn: Any, *args: Any) -> None:
        if threading.get_ident() == loop_thread:
            fn(*args)
        else:
            anyio.from_thread.run_sync(fn, *args, token=token)

    def put(x: T) -> None:
        if state["done"] or state["error"] is not None:
            return
        if len(buf) >= max_buffer:
            if overflow == "drop_newest":
                return
            if overflow == "drop_oldest":
                buf.popleft()
            else:
                state["error"] = BufferOverflowError(max_buffer)
                wake()
                return
        buf.append(x)
        wake()

    def fail(exc: Exception) -> None:
        if state["error"] is None:
            state["error"] = exc
        wake()

    def complete() -> None:
        state["done"] = True
        wake()

    subscription = observable.subscribe(
        on_next=lambda x: in_loop(put, x),
        on_error=lambda e: in_loop(fail, e),
        on_completed=lambda: in_loop(complete),
    )
    try:
        while True:
            while buf:
                yield buf.popleft()
            if state["error"] is not None:
                raise state["error"]
            if state["done"]:
                return
            ev = anyio.Event()
            waiter.append(ev)
            await ev.wait()
    finally:
        subscription.dispose()


def to_observable(stream: Stream[T]) -> reactivex.Observable[T]:
    """An observable that, on each subscription, iterates ``stream`` in a task of the running
    event loop (an asyncio task, or a trio system task).

    - Emits: ``on_next(item)`` for each item as it is pulled.
    - Completes: ``on_completed()`` when the stream completes.
    - Fails: ``on_error(exc)`` with the stream's exception.
    - Cancels: disposing the subscription cancels the task, which closes the stream and its
      sources. Under trio the task is also cancelled when ``trio.run()`` ends.
    - Buffers: nothing; the stream is pulled only as fast as ``on_next`` returns.

    Subscribe (and dispose) from the thread of a running asyncio event loop (the loop an
    ``AsyncIOScheduler`` would use) or from a trio task. A ``scheduler`` passed to
    ``subscribe()`` is not used: ``on_next`` is called from the pulling task, on that loop;
    pipe the observable through ``ops.observe_on(scheduler)`` to deliver elsewhere. A stream
    built on a single-use source can be subscribed only once.

    Raises:
        RuntimeError: on subscribe, when neither an asyncio loop nor trio runs in this thread
            (Rx hands it to the observer's ``on_error``; it is raised only when no
            ``on_error`` is given).
    """

    async def pump(observer: rxabc.ObserverBase[T]) -> None:
        try:
            async with stream.iterate() as it:
                async for x in it:
                    observer.on_next(x)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            observer.on_error(exc)
        else:
            observer.on_completed()

    def subscribe(
        observer: rxabc.ObserverBase[T], scheduler: rxabc.SchedulerBase | None = None
    ) -> Disposable:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            trio = _running_trio()
            if trio is None:
                raise RuntimeError(
                    "to_observable(): subscribe from a running asyncio event loop or trio task; "
                    "none runs in this thread"
                ) from None
            return _subscribe_trio(trio, pump, observer)
        task = loop.create_task(pump(observer))

        def dispose() -> None:
            task.cancel()

        return Disposable(dispose)

    return reactivex.create(subscribe)


def _running_trio() -> Any:
    """The ``trio`` module when a trio run is active in this thread, else ``None``."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None
    return trio


def _subscribe_trio(trio: Any, pump: Any, observer: Any) -> Disposable:
    # A system task: it needs no nursery from the subscriber (Rx subscribes from sync code),
    # and trio cancels it when the run ends. ``pump`` catches every ``Exception``; the scope
    # absorbs the cancellation, so nothing escapes to crash the run.
    scope = trio.CancelScope()

    async def run() -> None:
        with scope:
            await pump(observer)

    trio.lowlevel.spawn_system_task(run, name="streamops.rx.to_observable")
    return Disposable(scope.cancel)
