"""Run streams from synchronous code, on an event loop in a worker thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import CancelledError as FutureCancelledError
from typing import TYPE_CHECKING, Any, TypeVar

from anyio.from_thread import start_blocking_portal

if TYPE_CHECKING:
    from ._stream import Stream

T = TypeVar("T")

_END = object()


def run_sync(fn: Callable[[], Awaitable[T]], *, backend: str = "asyncio") -> T:
    """Run ``await fn()`` to completion on a fresh event loop in a worker thread."""
    with start_blocking_portal(backend) as portal:
        return portal.call(fn)


def iter_sync(stream: Stream[T], *, backend: str = "asyncio") -> Generator[T, None, None]:
    """Iterate ``stream`` from synchronous code; see :meth:`Stream.iter_sync`.

    One task in the portal's loop iterates the stream inside ``stream.iterate()`` (so
    operators that run tasks have their host) and hands each item over through a zero-capacity
    channel: it pulls at most one item ahead of the synchronous consumer.
    """
    import anyio

    with start_blocking_portal(backend) as portal:
        send, receive = portal.call(lambda: _channel(anyio))

        async def produce() -> None:
            async with send:
                try:
                    async with stream.iterate() as it:
                        async for x in it:
                            await send.send((True, x))
                except Exception as exc:
                    await send.send((False, exc))

        future = portal.start_task_soon(produce)
        try:
            while True:
                try:
                    ok, value = portal.call(receive.receive)
                except anyio.EndOfStream:
                    return
                if not ok:
                    raise value
                yield value
        finally:
            future.cancel()
            try:
                future.result()
            except FutureCancelledError:
                pass
            portal.call(receive.aclose)


def _channel(anyio: Any) -> Any:
    return anyio.create_memory_object_stream(0)
