"""Events over a WebSocket: one text message of JSON per event (starlette).

Browsers let any page open a WebSocket to any host and send the user's cookies with it
(cross-site WebSocket hijacking), so :func:`websocket_sink` checks the ``Origin`` header against
an explicit list before it accepts the connection (RFC 6455, section 10.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..events import BaseEvent, to_json
from ..operators.errors import errors_as_events

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from .._stream import Stream

__all__ = ["INTERNAL_ERROR", "POLICY_VIOLATION", "origin_allowed", "websocket_sink"]

POLICY_VIOLATION = 1008
"""The close code of a connection refused for its ``Origin`` (RFC 6455, 7.4.1). Closed before the
handshake completes, the client sees an HTTP ``403 Forbidden`` instead."""

INTERNAL_ERROR = 1011
"""The close code sent after the stream raised (and its ``ErrorEvent`` was sent)."""


class _Gone(Exception):
    """The client went away while an event was being sent."""


def _normalize(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_allowed(origin: str | None, allowed_origins: Sequence[str], *, allow_missing: bool = False) -> bool:
    """Whether a request's ``Origin`` header value is allowed.

    Origins compare as ``scheme://host[:port]``, case-insensitively, a trailing ``/`` ignored;
    ``"*"`` in ``allowed_origins`` allows any origin. A request without ``Origin`` (not from a
    browser) is allowed only with ``allow_missing`` or ``"*"``.
    """
    if "*" in allowed_origins:
        return True
    if origin is None:
        return allow_missing
    want = _normalize(origin)
    return any(_normalize(o) == want for o in allowed_origins)


async def websocket_sink(
    websocket: WebSocket,
    stream: Stream[BaseEvent],
    *,
    allowed_origins: Sequence[str],
    allow_missing_origin: bool = False,
) -> None:
    """Serve ``stream`` on a starlette WebSocket route: one text message per event.

    Args:
        websocket: the route's (not yet accepted) WebSocket.
        stream: the events to send; iterated here with ``stream.iterate()``.
        allowed_origins: the origins (``"https://app.example"``) allowed to connect; ``"*"``
            allows any. Pass ``[]`` to allow none but clients without ``Origin`` (with
            ``allow_missing_origin``).
        allow_missing_origin: accept a handshake without an ``Origin`` header (non-browser
            clients; browsers always send one).

    The handshake is refused (close code 1008, which the server turns into HTTP 403) when the
    origin is not allowed, and the stream is never started. Otherwise each event is sent as the
    text of :func:`~streamops.events.to_json`; at the end the socket is closed normally (1000).
    If the stream raises, an ``ErrorEvent`` (``error_type`` the exception's class name) is sent,
    then the socket is closed with 1011. When the client disconnects, the stream is closed at
    once (its ``finally`` blocks run, the provider request is closed). Messages the client sends
    are read and ignored.

    Raises:
        TypeError: ``allowed_origins`` is a single string (pass a list).
    """
    import anyio
    from starlette.websockets import WebSocketDisconnect

    if isinstance(allowed_origins, str):
        raise TypeError("allowed_origins must be a sequence of origins, not one string: pass [origin]")
    if not origin_allowed(websocket.headers.get("origin"), allowed_origins, allow_missing=allow_missing_origin):
        await websocket.close(code=POLICY_VIOLATION)
        return
    await websocket.accept()
    gone = False
    code = 1000

    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal gone
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    gone = True
                    tg.cancel_scope.cancel()
                    return

        async def send(event: BaseEvent) -> None:
            nonlocal gone
            try:
                await websocket.send_text(to_json(event).decode("utf-8"))
            except (WebSocketDisconnect, OSError):  # the client is gone
                gone = True
                raise _Gone from None

        async def produce() -> None:
            nonlocal code
            try:
                async with (stream | errors_as_events(reraise=True)).iterate() as it:
                    async for event in it:
                        await send(event)
            except _Gone:
                return
            except Exception:  # the stream failed: its ErrorEvent was sent
                code = INTERNAL_ERROR
            finally:
                tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(produce)

    if not gone:
        try:
            await websocket.close(code=code)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
