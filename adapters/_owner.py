"""A thread that owns some blocking state (a llama.cpp context, a sync iterator) and runs every
call on it, one at a time, woken back on the event loop without blocking either side.

Used by the local model (one thread per :class:`~streamops.adapters.local.LocalModel`) and by
the drivers for sync sources (one thread per source read): whatever is not thread-safe, or is
bound to the thread that made it (an sqlite cursor), or sets context variables across calls
(a tracing span opened in one ``next()`` and closed in a later one), sees one thread and, with
``context``, one :class:`contextvars.Context`.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

T = TypeVar("T")

_Job = tuple[Callable[[], Any], "Future[Any]"]


class OwnerThread(threading.Thread):
    """Runs the jobs put on it (:meth:`submit`), one at a time and in order, until :meth:`stop`.

    A daemon thread. Each job runs in ``context`` when one is given (every job then sees the
    context variables the earlier ones set), else in the thread's own context. A job's
    exception is delivered to its future; the thread goes on.

    Args:
        name: the thread's name.
        key: any object the owner of the thread can recognise it by (:attr:`key`), not the
            owner itself, so the thread does not keep it alive.
        context: the context the jobs run in, or ``None``.
    """

    def __init__(self, name: str, key: object = None, context: contextvars.Context | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.key = key
        self.context = context
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.running = False
        """A job is running now."""

    @property
    def idle(self) -> bool:
        """No job is running or waiting."""
        return not self.running and self.jobs.empty()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn``; its future holds what it returns or raises."""
        future: Future[T] = Future()
        self.jobs.put((fn, future))
        return future

    def stop(self) -> None:
        """End the thread once the jobs queued before this call have run (does not wait)."""
        self.jobs.put(None)

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, future = job
            del job
            if future.set_running_or_notify_cancel():
                self.running = True
                try:
                    result = fn() if self.context is None else self.context.run(fn)
                except BaseException as exc:  # delivered to the waiter; the thread goes on
                    self.running = False
                    future.set_exception(exc)
                else:
                    self.running = False
                    future.set_result(result)
            # Drop the job's references (its state, its result) before waiting for the next.
            del fn, future


def wake(token: anyio.lowlevel.EventLoopToken, event: anyio.Event) -> None:
    """Set ``event`` in its event loop, from another thread, without waiting for the loop.

    Not ``anyio.from_thread.run_sync``: it waits until the loop has run the call, and the loop
    may itself be blocked waiting for the owner thread (a sync ``tokenize()`` called from the
    loop while a model's step is in flight): a deadlock."""
    backend: Any = token.backend_class
    native: Any = token.native_token
    try:
        run_sync_soon = getattr(backend, "run_sync_soon", None)
        if run_sync_soon is not None:  # anyio >= 4.16
            run_sync_soon(event.set, (), native)
        elif hasattr(native, "call_soon_threadsafe"):  # an asyncio loop
            native.call_soon_threadsafe(event.set)
        else:  # a trio token
            native.run_sync_soon(event.set)
    except RuntimeError:  # anyio.RunFinishedError, a closed loop: nobody is waiting any more
        pass


async def wait_for(future: Future[T], *, shield: bool) -> T:
    """What ``future`` (from :meth:`OwnerThread.submit`) returns, awaited without blocking the
    event loop and without a thread of anyio's pool.

    ``shield=True``: the wait cannot be cancelled (the job cannot be interrupted, and its
    result must be taken); a cancellation takes effect at the caller's next checkpoint.
    ``shield=False``: a cancellation abandons the wait at once; the job still runs to its end
    on the owner thread.

    Raises:
        BaseException: what the job raised.
    """
    token = anyio.lowlevel.current_token()
    event = anyio.Event()
    future.add_done_callback(lambda _: wake(token, event))
    if shield:
        with anyio.CancelScope(shield=True):
            await event.wait()
    else:
        await event.wait()
    return future.result()
