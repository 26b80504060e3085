"""Sinks: where event streams go out (SSE, NDJSON, WebSocket, protocol re-serializations).

Every name below is importable from ``streamops.sinks`` itself; its module is imported on first
use of the name (``import streamops.sinks`` imports no sink module, and no starlette, pydantic,
ag-ui or a2a-sdk). Encoders and decoders are sans-IO; the ``*_response`` helpers and
:func:`websocket_sink` need starlette (the ``server`` extra).

The encoder protocol (:mod:`streamops.sinks.encoder`)
    :class:`Encoder` (sans-IO: ``encode_frames(event)``, ``close_frames()``,
    ``error_frames(error)``, bytes out), :class:`ItemEncoder` (the base of the encoders that
    map events to protocol items), :class:`BlockEncoder` (those over block events),
    :func:`encoded` (any encoder's body as a stream of bytes).
Server-Sent Events (:mod:`streamops.sinks.sse`)
    :class:`SSEEncoder`, :func:`sse_response`, :func:`sse_events`, :data:`SSE_HEADERS`.
Newline-delimited JSON (:mod:`streamops.sinks.ndjson`)
    :class:`NDJSONEncoder`, :func:`ndjson_encode`, :func:`ndjson_response`,
    :func:`ndjson_events`, :data:`NDJSON_HEADERS`.
WebSocket (:mod:`streamops.sinks.websocket`)
    :func:`websocket_sink` (one stream), :func:`websocket_conversation` (an agent, many turns
    per connection), :func:`origin_allowed`, close codes :data:`POLICY_VIOLATION` and
    :data:`INTERNAL_ERROR`, error type :data:`INVALID_MESSAGE`.
Resume (:mod:`streamops.sinks.resume`)
    :data:`DisconnectPolicy`, :func:`event_id`, :class:`EventIds`, :func:`parse_event_id`,
    :class:`ResumeUnavailableError` (defined in :mod:`streamops.errors`); :class:`ResumableRun` and
    :class:`RunEventLog`, what a resuming response follows (implemented in memory by
    :mod:`streamops.serve.runlog`, durably by :mod:`streamops.stores`).
OpenAI Chat Completions chunks (:mod:`streamops.sinks.openai`)
    :class:`ChunkEncoder`, :func:`openai_response`, :func:`completion_object`,
    :func:`openai_usage`, :data:`DONE` (``data: [DONE]``, which ends the Vercel stream too).
Vercel AI SDK UI message stream (:mod:`streamops.sinks.vercel`)
    :class:`VercelEncoder`, :func:`vercel_response`, :data:`VERCEL_HEADERS`.
AG-UI (:mod:`streamops.sinks.agui`, extra ``agui``)
    :class:`AGUIEncoder`, :func:`agui_response`.
A2A (:mod:`streamops.sinks.a2a`, extra ``a2a``)
    :class:`A2AEncoder`, :func:`a2a_types_module`, :data:`A2A_PROTOCOL_VERSION` (the routes
    that serve an agent over A2A are :mod:`streamops.serve.a2a`).

Terminal (:mod:`streamops.sinks.render`, extra-free: ``rich``)
    :class:`TerminalRenderer`.
Plain text (:mod:`streamops.sinks.text`)
    :class:`PlainTextEncoder` (the renderer's plain mode, text deltas verbatim), its items
    :data:`Piece`.

Every streamed HTTP body is one encoder driven by one response
(``streamops.sinks._asgi.encoder_response``): the stream is iterated in a producer task beside
a disconnect watcher and optional heartbeats, ``on_disconnect`` cancels or continues it, a
stream or encoder that raises ends with the encoder's error frames, and the stream is always
closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import LazyExports

if TYPE_CHECKING:  # what type checkers see: every name each module lists in its __all__
    from .a2a import *  # noqa: F403
    from .agui import *  # noqa: F403
    from .encoder import *  # noqa: F403
    from .ndjson import *  # noqa: F403
    from .openai import *  # noqa: F403
    from .render import *  # noqa: F403
    from .resume import *  # noqa: F403
    from .sse import *  # noqa: F403
    from .text import *  # noqa: F403
    from .vercel import *  # noqa: F403
    from .websocket import *  # noqa: F403

_MODULES: dict[str, tuple[str, ...]] = {
    "a2a": ("A2A_PROTOCOL_VERSION", "A2AEncoder", "a2a_types_module"),
    "agui": ("AGUIEncoder", "agui_response"),
    "encoder": ("BlockEncoder", "Encoder", "ItemEncoder", "encoded"),
    "ndjson": ("NDJSON_HEADERS", "NDJSONEncoder", "ndjson_encode", "ndjson_events", "ndjson_response"),
    "openai": ("DONE", "ChunkEncoder", "completion_object", "openai_response", "openai_usage"),
    "render": ("TerminalRenderer",),
    "resume": (
        "DisconnectPolicy",
        "EventIds",
        "ResumableRun",
        "ResumeUnavailableError",
        "RunEventLog",
        "event_id",
        "parse_event_id",
    ),
    "sse": ("SSE_HEADERS", "SSEEncoder", "sse_events", "sse_response"),
    "text": ("Piece", "PlainTextEncoder"),
    "vercel": ("VERCEL_HEADERS", "VercelEncoder", "vercel_response"),
    "websocket": (
        "INTERNAL_ERROR",
        "INVALID_MESSAGE",
        "POLICY_VIOLATION",
        "origin_allowed",
        "websocket_conversation",
        "websocket_sink",
    ),
}
"""Which sink module defines each exported name."""

__all__ = sorted(name for names in _MODULES.values() for name in names)


_EXPORTS = LazyExports(globals(), _MODULES)
__getattr__ = _EXPORTS.get  # PEP 562: a name is imported from its module on first access
__dir__ = _EXPORTS.names
