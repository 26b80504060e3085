"""Events over a WebSocket: one text message of JSON per event (starlette).

:func:`websocket_sink` sends one stream and closes; :func:`websocket_conversation` carries a
whole conversation with an agent on one connection, one turn per user message.

Browsers let any page open a WebSocket to any host and send the user's cookies with it
(cross-site WebSocket hijacking), so :func:`websocket_sink` checks the ``Origin`` header against
an explicit list before it accepts the connection (RFC 6455, section 10.2).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._stream import Stream
from ..events import BaseEvent, ErrorEvent, to_json
from ..operators.errors import errors_as_events

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from ..agent import Agent
    from ..models import ChatMessage

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_MESSAGE",
    "POLICY_VIOLATION",
    "origin_allowed",
    "websocket_conversation",
    "websocket_sink",
]

POLICY_VIOLATION = 1008
"""The close code of a connection refused for its ``Origin`` (RFC 6455, 7.4.1). Closed before the
handshake completes, the client sees an HTTP ``403 Forbidden`` instead."""

INTERNAL_ERROR = 1011
"""The close code sent after the stream raised (and its ``ErrorEvent`` was sent)."""


class _Gone(Exception):
    """The client went away while an event was being sent."""


class _Peer:
    """The accepted socket's side both serving functions share: sending an event (a client
    that is gone raises :class:`_Gone`), noting a disconnect, closing quietly at the end."""

    __slots__ = ("code", "gone", "websocket")

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.gone = False
        self.code = 1000

    async def send(self, event: BaseEvent) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            await self.websocket.send_text(to_json(event).decode("utf-8"))
        except (WebSocketDisconnect, OSError):  # the client is gone
            self.gone = True
            raise _Gone from None

    async def receive(self) -> dict[str, Any] | None:
        """The client's next message; ``None`` (and :attr:`gone` set) once it disconnected."""
        message: dict[str, Any] = dict(await self.websocket.receive())
        if message["type"] == "websocket.disconnect":
            self.gone = True
            return None
        return message

    async def send_stream(self, stream: Stream[BaseEvent]) -> bool:
        """Send every event of ``stream`` (iterated here, so its tasks are hosted). False when
        it raised: its ``ErrorEvent`` was sent last and the close code is then 1011. The client
        leaving raises :class:`_Gone`; the stream is closed on every exit."""
        try:
            async with (stream | errors_as_events(reraise=True)).iterate() as it:
                async for event in it:
                    await self.send(event)
        except _Gone:
            raise
        except Exception:  # the stream failed: its ErrorEvent was sent
            self.code = INTERNAL_ERROR
            return False
        return True

    async def close(self) -> None:
        if self.gone:
            return
        from starlette.websockets import WebSocketDisconnect

        try:
            await self.websocket.close(code=self.code)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass


async def _accept(websocket: WebSocket, allowed_origins: Sequence[str], allow_missing_origin: bool) -> _Peer | None:
    """Accept the handshake, or refuse it (1008, HTTP 403) for an origin not allowed (``None``).

    Raises:
        TypeError: ``allowed_origins`` is a single string.
    """
    if isinstance(allowed_origins, str):
        raise TypeError("allowed_origins must be a sequence of origins, not one string: pass [origin]")
    if not origin_allowed(websocket.headers.get("origin"), allowed_origins, allow_missing=allow_missing_origin):
        await websocket.close(code=POLICY_VIOLATION)
        return None
    await websocket.accept()
    return _Peer(websocket)


async def _until_one_ends(*tasks: Callable[[], Awaitable[None]]) -> None:
    """Run ``tasks`` at once until one of them returns: the others are then cancelled (an
    exception from any of them cancels the others too, and propagates)."""
    import anyio

    async with anyio.create_task_group() as tg:

        async def run(task: Callable[[], Awaitable[None]]) -> None:
            try:
                await task()
            finally:
                tg.cancel_scope.cancel()

        for task in tasks:
            tg.start_soon(run, task)


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
    peer = await _accept(websocket, allowed_origins, allow_missing_origin)
    if peer is None:
        return

    async def watch() -> None:
        while await peer.receive() is not None:
            pass  # messages from the client are ignored

    async def produce() -> None:
        try:
            await peer.send_stream(stream)
        except _Gone:
            return

    await _until_one_ends(watch, produce)
    await peer.close()


INVALID_MESSAGE = "invalid_message"
"""The ``error_type`` of the ``ErrorEvent`` answering a client message that is not a user turn."""


def _user_content(data: str | bytes) -> str:
    """The text of one client message ``{"role": "user", "content": "..."}``; ``ValueError``
    (with the reason) for anything else."""
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {type(message).__name__}")
    role = message.get("role", "user")
    if role != "user":
        raise ValueError(f"expected role 'user', got {role!r}")
    content = message.get("content")
    if not isinstance(content, str):
        raise ValueError(f"expected a string 'content', got {type(content).__name__}")
    return content


async def websocket_conversation(
    websocket: WebSocket,
    agent: Agent,
    *,
    allowed_origins: Sequence[str],
    allow_missing_origin: bool = False,
    history: Sequence[Mapping[str, Any]] = (),
    max_pending: int = 8,
) -> list[ChatMessage]:
    """Serve a conversation with ``agent`` on a starlette WebSocket route: many turns per
    connection, the history kept between them.

    Protocol (every message a text frame of JSON):

    - client -> server, one per turn: ``{"role": "user", "content": "What is 2 + 3?"}``
      (``role`` may be left out; ``content`` is the user's text).
    - server -> client: that turn's run, one event per message as
      :func:`~streamops.events.to_json` (``RunStart``, steps, deltas, tool calls... see
      :mod:`streamops.agent`), ending with the run's ``RunEnd``: the turn is over, the server
      waits for the next user message. Each turn is a new run (its own ``run_id``).
    - a client message that is not such an object gets one
      ``ErrorEvent(error_type="invalid_message")`` (its ``message`` says why); no run starts,
      the history is unchanged and the connection stays open.
    - a user message sent while a turn runs is queued and starts the next turn once the current
      one ended (turns run one at a time, in order); more than ``max_pending`` queued closes the
      connection with 1008.

    Each turn calls ``agent.stream(content, history=conversation)`` and afterwards sets the
    conversation to the run's :attr:`~streamops.agent.AgentStream.result_messages` (the user
    message, the assistant's messages and tool results; whatever the run's status, so a failed
    turn leaves its user message in the history). The handshake is refused (1008, HTTP 403) for
    an origin not allowed, as :func:`websocket_sink` does. When the client disconnects (mid-turn
    or between turns) the turn in progress is cancelled at once: its run is closed (model
    request and tools cancelled, the ``RunEnd(status="cancelled")`` goes to the agent's hooks).
    If a run's stream raises, an ``ErrorEvent`` (``error_type`` the exception's class name) is
    sent and the connection closed with 1011.

    Args:
        websocket: the route's (not yet accepted) WebSocket.
        agent: the :class:`~streamops.agent.Agent` that answers each turn.
        allowed_origins, allow_missing_origin: as for :func:`websocket_sink`.
        history: the conversation so far (a previous return value or
            :attr:`~streamops.agent.RunResult.messages`), continued by the first turn.
        max_pending: user messages that may wait while a turn runs.

    Returns:
        The conversation when the connection ended (to persist it, or continue it later).

    Raises:
        TypeError: ``allowed_origins`` is a single string (pass a list).
        ValueError: ``max_pending`` < 1.
    """
    import anyio

    if isinstance(allowed_origins, str):
        raise TypeError("allowed_origins must be a sequence of origins, not one string: pass [origin]")
    if max_pending < 1:
        raise ValueError(f"max_pending must be >= 1, got {max_pending}")
    conversation: list[ChatMessage] = [dict(m) for m in history]
    peer = await _accept(websocket, allowed_origins, allow_missing_origin)
    if peer is None:
        return conversation
    send = peer.send
    inbox_send, inbox = anyio.create_memory_object_stream[str | bytes](max_pending)

    with inbox_send, inbox:  # closed however the tasks end (even before they start)

        async def receive() -> None:
            while True:
                message = await peer.receive()
                if message is None:
                    return
                data = message.get("text")
                try:
                    inbox_send.send_nowait(data if data is not None else message.get("bytes") or b"")
                except anyio.WouldBlock:
                    peer.code = POLICY_VIOLATION
                    return

        async def converse() -> None:
            try:
                async for data in inbox:
                    try:
                        content = _user_content(data)
                    except ValueError as exc:
                        await send(ErrorEvent(error_type=INVALID_MESSAGE, message=str(exc)))
                        continue
                    stream = agent.stream(content, history=conversation)
                    try:
                        if not await peer.send_stream(stream):  # the run's stream failed
                            return
                    finally:
                        messages = stream.result_messages
                        if messages is not None:
                            conversation[:] = messages
            except _Gone:
                return

        await _until_one_ends(receive, converse)

    await peer.close()
    return conversation
