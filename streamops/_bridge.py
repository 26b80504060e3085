"""Run streams from synchronous code, on an event loop in a worker thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, TypeVar

from anyio.from_thread import start_blocking_portal

if TYPE_CHECKING:
    from ._stream import Stream

T = TypeVar("T")


def run_sync(fn: Callable[[], Awaitable[T]], *, backend: str = "asyncio") -> T:
    """Run ``await fn()`` to completion on a fresh event loop in a worker thread."""
    with start_blocking_portal(backend) as portal:
        return portal.call(fn)


def iter_sync(stream: Stream[T], *, backend: str = "asyncio") -> Generator[T, None, None]:
    """Iterate ``stream`` from synchronous code; see :meth:`Stream.iter_sync`."""
    with start_blocking_portal(backend) as portal:
        agen = stream.__aiter__()
        try:
            while True:
                try:
                    item = portal.call(agen.__anext__)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            portal.call(agen.aclose)
