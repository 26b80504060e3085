"""A Starlette streaming response whose body is written by a producer coroutine.

Used by the protocol sinks (:mod:`~streamops.sinks.vercel`, :mod:`~streamops.sinks.agui`,
:mod:`~streamops.sinks.a2a`). The producer runs in a task beside one that watches for the
client's ``http.disconnect``; when the client goes away the producer is cancelled, which
closes the stream it iterates (and cancels an agent run). Unlike a ``StreamingResponse`` body
generator, no task group or cancel scope is held across a ``yield``: the producer iterates its
stream with ``stream.iterate()`` in its own frame, so streams that run tasks have their owner.
Imports Starlette: import this module lazily.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .._stream import Stream
from ..events import BaseEvent

Write = Callable[[bytes], Awaitable[None]]


class ProducerResponse(StreamingResponse):
    """``produce(write)`` writes the body; the response ends when it returns."""

    def __init__(self, produce: Callable[[Write], Awaitable[None]], *, headers: dict[str, str]) -> None:
        super().__init__((), media_type="text/event-stream", headers=headers)
        self._produce = produce
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = anyio.Event()

        async def write(chunk: bytes) -> None:
            if not gone.is_set():
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except OSError:
                    gone.set()

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                try:
                    await self._produce(write)
                finally:
                    tg.cancel_scope.cancel()

            async def watch() -> None:
                while not gone.is_set():
                    if (await receive())["type"] == "http.disconnect":
                        gone.set()
                tg.cancel_scope.cancel()

            tg.start_soon(produce)
            tg.start_soon(watch)
        self.disconnected = gone.is_set()
        if not gone.is_set():
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass


def frames_producer(
    stream: AsyncIterable[BaseEvent], frames: Callable[[AsyncIterable[BaseEvent]], AsyncIterator[bytes]]
) -> Callable[[Write], Awaitable[None]]:
    """A producer writing ``frames(events)``; a :class:`~streamops.Stream` is iterated inside
    its own terminal (``iterate()``), in the producer's frame."""

    async def produce(write: Write) -> None:
        if isinstance(stream, Stream):
            async with stream.iterate() as it:
                async for chunk in frames(it):
                    await write(chunk)
        else:
            async for chunk in frames(stream):
                await write(chunk)

    return produce
