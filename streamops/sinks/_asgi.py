"""The ASGI side of the streaming sinks (starlette): one response class for every streamed
body (SSE, NDJSON, the OpenAI, Vercel, AG-UI and A2A streams, the server's completions).

:class:`EventStreamResponse` produces its body with a *producer* coroutine, ``produce(write)``,
run in a task beside one that watches for the client's ``http.disconnect`` and, optionally, one
that sends heartbeats. Unlike a ``StreamingResponse`` body iterator, no task group or cancel
scope is held across a ``yield``: a producer iterates its stream with ``stream.iterate()`` in its
own frame, so operators that run tasks (``merge``, agents) have their owner, and a disconnect
cancels the producer at once (its ``finally`` blocks run then, not when the garbage collector
gets to an abandoned generator).

:func:`encoder_producer` is the producer of an encoded body (any
:class:`~streamops.sinks.encoder.Encoder`): it writes each event's frames, then the closing
frames, or the encoder's error frames once if the stream or the encoder raised, and always
closes the source; :func:`encoder_response` wraps it in a response. :class:`RunFollowResponse` follows a run of a
:class:`~streamops.serve.runlog.RunRegistry`.

Kept apart from the sink modules so that their sans-IO encoders import without starlette (the
``server`` extra); this module is imported when a response is built.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from starlette.responses import Response, StreamingResponse

from .._stream import Stream
from ..events import BaseEvent
from ..operators.errors import error_event
from .encoder import Encoder
from .resume import DisconnectPolicy, ResumableRun, ResumeUnavailableError

if TYPE_CHECKING:
    from starlette.background import BackgroundTask
    from starlette.types import Receive, Scope, Send

__all__ = [
    "EventStreamResponse",
    "Produce",
    "RunFollowResponse",
    "Write",
    "SSE_HEARTBEAT",
    "check_disconnect_policy",
    "check_heartbeat",
    "closing_events",
    "encoder_producer",
    "encoder_response",
]

T = TypeVar("T")

Write = Callable[[bytes], Awaitable[None]]
"""Sends one chunk of the body (a no-op once the client is gone)."""

SSE_HEARTBEAT = b": ping\n\n"
"""The default heartbeat: an SSE comment line (clients dispatch nothing for it)."""

Produce = Callable[[Write], Awaitable[None]]
"""A producer: writes the whole body with ``write``; the response ends when it returns."""


def check_disconnect_policy(on_disconnect: str) -> None:
    """Raises ``ValueError`` unless ``on_disconnect`` is ``"cancel"`` or ``"continue"``."""
    if on_disconnect not in ("cancel", "continue"):
        raise ValueError(f"on_disconnect must be 'cancel' or 'continue', got {on_disconnect!r}")


def check_heartbeat(interval: float | None) -> None:
    """Raises ``ValueError`` unless ``interval`` is ``None`` or a positive number of seconds."""
    if interval is not None and not interval > 0:
        raise ValueError(f"heartbeat must be a positive number of seconds or None, got {interval!r}")


class EventStreamResponse(StreamingResponse):
    """A streaming response whose body is written by ``produce(write)`` in a task.

    Args:
        produce: the producer (see :func:`encoder_producer`); the body ends when it returns.
        headers: the response headers.
        media_type: the ``Content-Type`` when ``headers`` has none.
        preamble: bytes sent first (an SSE ``retry:`` hint).
        heartbeat: what a heartbeat sends (default an SSE comment line, which every SSE client
            skips).
        heartbeat_interval: seconds without a write after which a heartbeat is sent (> 0);
            ``None`` (the default) sends none.
        on_disconnect: when the client goes away before the body is complete: ``"cancel"``
            cancels the producer at once (closing the stream it iterates); ``"continue"`` lets
            it run to its end, its writes discarded.
        after_disconnect: called once the response is over, if the client went away.
        on_end: called once the response is over, however it ended (the body complete, the
            client gone, the producer never started because the client was gone first, an
            error): where a route gives back what it holds for the body (an A2A task's place
            under the run limit).
        background: a task run after the response, as for any starlette response.

    Attributes:
        disconnected: true once the client went away before the body was complete.

    Raises:
        ValueError: ``on_disconnect`` is not ``"cancel"``/``"continue"``, or
            ``heartbeat_interval`` is not positive.
    """

    def __init__(
        self,
        produce: Produce,
        *,
        headers: dict[str, str],
        media_type: str | None = None,
        preamble: bytes = b"",
        heartbeat: bytes = SSE_HEARTBEAT,
        heartbeat_interval: float | None = None,
        on_disconnect: DisconnectPolicy = "cancel",
        after_disconnect: Callable[[], None] | None = None,
        on_end: Callable[[], None] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        check_disconnect_policy(on_disconnect)
        check_heartbeat(heartbeat_interval)
        super().__init__((), headers=headers, media_type=media_type, background=background)
        self._produce = produce
        self._preamble = preamble
        self._heartbeat = heartbeat
        self._interval = heartbeat_interval
        self._on_disconnect = on_disconnect
        self._after_disconnect = after_disconnect
        self._on_end = on_end
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(send, receive)
        finally:
            if self._on_end is not None:
                self._on_end()
        if self.background is not None:
            await self.background()

    async def _respond(self, send: Send, receive: Receive) -> None:
        lock = anyio.Lock()
        clock = {"last": anyio.current_time()}
        gone = anyio.Event()

        async def write(chunk: bytes) -> None:
            if gone.is_set() or not chunk:
                return
            async with lock:
                try:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except OSError:  # ASGI 2.4 servers raise on a send to a closed connection
                    gone.set()
            clock["last"] = anyio.current_time()

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
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
                if self._on_disconnect == "cancel":
                    tg.cancel_scope.cancel()

            async def beat(interval: float, payload: bytes) -> None:
                while not gone.is_set():
                    await anyio.sleep(max(0.0, clock["last"] + interval - anyio.current_time()))
                    if anyio.current_time() - clock["last"] >= interval:
                        await write(payload)

            tg.start_soon(produce)
            tg.start_soon(watch)
            if self._interval is not None:
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


@asynccontextmanager
async def closing_events(source: AsyncIterable[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Iterate ``source`` for the block, and close it however the block exits: a
    :class:`~streamops.Stream` through ``iterate()`` (which also hosts its tasks), any other
    async iterable by ``aclose()``-ing its iterator (shielded, so a cancelled producer still
    runs the source's ``finally`` at once)."""
    if isinstance(source, Stream):
        async with source.iterate() as hosted_it:
            yield hosted_it
        return
    it = aiter(source)
    try:
        yield it
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()


def encoder_producer(source: AsyncIterable[BaseEvent], encoder: Encoder) -> Produce:
    """The one producer of an encoded body (the driver of every sink): iterates ``source``
    (owning its tasks, see :func:`closing_events`) and writes ``encoder.encode_frames(event)``
    for each event, then ``encoder.close_frames()``.

    When ``source`` or the encoder raises an ``Exception``, the source is closed and the
    encoder's ``error_frames`` for it (the :func:`~streamops.operators.errors.error_event` of
    the exception, after the last event encoded) are written once, instead of the closing frames;
    if ``error_frames`` raises too, the body just ends. A cancelled producer (the client left)
    writes nothing more. The source is closed on every exit."""

    async def produce(write: Write) -> None:
        last: BaseEvent | None = None
        try:
            async with closing_events(source) as it:
                async for event in it:
                    frames = encoder.encode_frames(event)
                    last = event
                    await write(frames)
            tail = encoder.close_frames()
        except Exception as exc:
            try:
                tail = encoder.error_frames(error_event(exc, last))
            except Exception:
                return
        await write(tail)

    return produce


def encoder_response(
    source: AsyncIterable[BaseEvent],
    encoder: Encoder,
    *,
    headers: dict[str, str],
    preamble: bytes = b"",
    heartbeat: bytes = SSE_HEARTBEAT,
    heartbeat_interval: float | None = None,
    on_disconnect: DisconnectPolicy = "cancel",
    on_end: Callable[[], None] | None = None,
) -> EventStreamResponse:
    """A streaming response whose body ``encoder`` writes for ``source``
    (:func:`encoder_producer` in an :class:`EventStreamResponse`: heartbeats, disconnect
    policy, the error frames, the source always closed). What every ``*_response`` returns.
    ``on_end``: called once the response is over, however it ended (see
    :class:`EventStreamResponse`).

    Raises:
        ValueError: ``on_disconnect`` is not ``"cancel"``/``"continue"``, or
            ``heartbeat_interval`` is not positive.
    """
    return EventStreamResponse(
        encoder_producer(source, encoder),
        headers=headers,
        preamble=preamble,
        heartbeat=heartbeat,
        heartbeat_interval=heartbeat_interval,
        on_disconnect=on_disconnect,
        on_end=on_end,
    )


class RunFollowResponse(EventStreamResponse):
    """A response following a run handle (encoded by ``encode``); reads ``Last-Event-ID`` from
    the request if it was not given, and answers 409 when that id cannot be resumed. On
    disconnect the run is cancelled if both ``on_disconnect`` and the handle's own policy say
    ``"cancel"`` and no other client follows it. ``options``: those of
    :class:`EventStreamResponse` (``headers``, ``preamble``, heartbeats...)."""

    def __init__(
        self,
        handle: ResumableRun,
        encode: Callable[[BaseEvent], bytes],
        last_event_id: str | None,
        on_disconnect: DisconnectPolicy,
        **options: Any,
    ) -> None:
        self._handle = handle
        self._last_event_id = last_event_id

        async def produce(write: Write) -> None:
            try:
                async with closing_events(handle.follow(self._last_event_id)) as it:
                    async for event in it:
                        await write(encode(event))
            except ResumeUnavailableError:
                # Fell behind the log's capacity mid-stream: end the body; the client
                # reconnects with the last id it got and is told then (409).
                return

        def after_disconnect() -> None:
            if on_disconnect == "cancel" and handle.on_disconnect == "cancel" and handle.followers == 0:
                handle.cancel()

        check_disconnect_policy(on_disconnect)
        super().__init__(produce, after_disconnect=after_disconnect, **options)

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
