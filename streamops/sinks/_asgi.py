"""The ASGI side of the streaming sinks (starlette): a response that produces its body in a
task, watches for the client going away and sends heartbeats.

Kept apart from :mod:`streamops.sinks.sse` and :mod:`streamops.sinks.ndjson` so that their
sans-IO encoders and decoders import without starlette (the ``server`` extra); this module is
imported when a response is built.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import Response, StreamingResponse

from ..events import BaseEvent
from .runlog import DisconnectPolicy, ResumeUnavailableError, RunHandle, error_event

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from .._stream import Stream

__all__ = ["EventStreamResponse", "RunFollowResponse", "Write", "stream_producer"]

Write = Callable[[bytes], Awaitable[None]]
"""Sends one chunk of the body (a no-op once the client is gone)."""


class EventStreamResponse(StreamingResponse):
    """A streaming response whose body is produced by ``produce(write)`` in a task, beside a
    task that watches for the client's ``http.disconnect`` and one that sends heartbeats.

    Unlike a plain ``StreamingResponse`` body iterator, no task group or cancel scope is held
    across a ``yield``: the stream is iterated with ``stream.iterate()`` inside the producer
    task, so operators that run tasks (``merge``, agents) have their owner.
    """

    def __init__(
        self,
        produce: Callable[[Write], Awaitable[None]],
        *,
        headers: dict[str, str],
        preamble: bytes = b"",
        heartbeat: bytes | None = None,
        heartbeat_interval: float | None = None,
        continue_on_disconnect: bool = False,
        after_disconnect: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(_empty(), headers=headers)
        self._produce = produce
        self._preamble = preamble
        self._heartbeat = heartbeat
        self._interval = heartbeat_interval
        self._continue = continue_on_disconnect
        self._after_disconnect = after_disconnect
        self.disconnected = False
        """True once the client went away before the body was complete."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import anyio

        lock = anyio.Lock()
        clock = {"last": anyio.current_time()}
        gone = anyio.Event()

        async def write(chunk: bytes) -> None:
            if gone.is_set():
                return
            async with lock:
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except OSError:  # ASGI 2.4 servers raise on a send to a closed connection
                    gone.set()
            clock["last"] = anyio.current_time()

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self._preamble:
            await write(self._preamble)

        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                try:
                    await self._produce(write)
                finally:
                    tg.cancel_scope.cancel()

            async def watch() -> None:
                while not gone.is_set():
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        gone.set()
                if not self._continue:
                    tg.cancel_scope.cancel()

            async def beat(interval: float, payload: bytes) -> None:
                while not gone.is_set():
                    await anyio.sleep(max(0.0, clock["last"] + interval - anyio.current_time()))
                    if anyio.current_time() - clock["last"] >= interval:
                        await write(payload)

            tg.start_soon(produce)
            tg.start_soon(watch)
            if self._heartbeat is not None and self._interval is not None:
                tg.start_soon(beat, self._interval, self._heartbeat)

        if gone.is_set():
            self.disconnected = True
            if self._after_disconnect is not None:
                self._after_disconnect()
        else:
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass
        if self.background is not None:
            await self.background()


async def _empty() -> AsyncGenerator[bytes, None]:
    return
    yield  # pragma: no cover


def stream_producer(
    source: Stream[BaseEvent], encode: Callable[[BaseEvent], bytes]
) -> Callable[[Write], Awaitable[None]]:
    """A producer for :class:`_EventStreamResponse`: iterates ``source`` (owning its tasks) and
    writes each encoded event; if the source raises, writes an ``ErrorEvent`` for it and ends."""

    async def produce(write: Write) -> None:
        last: BaseEvent | None = None
        try:
            async with source.iterate() as it:
                async for event in it:
                    last = event
                    await write(encode(event))
        except Exception as exc:
            await write(encode(error_event(exc, last)))

    return produce


class RunFollowResponse(EventStreamResponse):
    """A response following a run handle (encoded by ``encode``); reads ``Last-Event-ID`` from
    the request if it was not given, and answers 409 when that id cannot be resumed. On
    disconnect the run is cancelled if both ``on_disconnect`` and the handle's own policy say
    ``"cancel"`` and no other client follows it."""

    def __init__(
        self,
        handle: RunHandle,
        encode: Callable[[BaseEvent], bytes],
        last_event_id: str | None,
        on_disconnect: DisconnectPolicy,
        common: dict[str, Any],
    ) -> None:
        self._handle = handle
        self._last_event_id = last_event_id

        async def produce(write: Write) -> None:
            try:
                async for event in handle.follow(self._last_event_id):
                    await write(encode(event))
            except ResumeUnavailableError:
                # Fell behind the log's capacity mid-stream: end the body; the client
                # reconnects with the last id it got and is told then (409).
                return

        def after_disconnect() -> None:
            if on_disconnect == "cancel" and handle.on_disconnect == "cancel" and handle.followers == 0:
                handle.cancel()

        super().__init__(produce, after_disconnect=after_disconnect, **common)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._last_event_id is None:
            for name, value in scope.get("headers", ()):
                if name.lower() == b"last-event-id":
                    self._last_event_id = value.decode("latin-1")
                    break
            try:
                self._handle.log.check(self._last_event_id)
            except ResumeUnavailableError as exc:
                await Response(str(exc), status_code=409, media_type="text/plain")(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
