"""Vercel AI SDK UI message stream (``x-vercel-ai-ui-message-stream: v1``).

The protocol is the one ``useChat`` (``@ai-sdk/react``) and ``readUIMessageStream`` read: an
SSE body of JSON "UI message chunks", one per ``data:`` line, ending with ``data: [DONE]``.
The chunk types and their fields are those of ``uiMessageChunkSchema`` in the AI SDK
(``packages/ai/src/ui-message-stream/ui-message-chunks.ts`` in github.com/vercel/ai; the
stream-protocol page of ai-sdk.dev describes the same parts). The encoder sends only the
fields listed there (the package itself, ``ai`` 6.0.325, would let extra fields through). The
tests parse every encoded recorded stream with that npm package's own ``parseJsonEventStream``
and ``readUIMessageStream`` under Node.js (``tests/sinks/test_vercel_ai_package.py``).

Mapping (one streamops event may give several chunks; ``*-start``/``*-end`` chunks are those of
the block events, ``BlockStart``/``BlockEnd``, derived from the events by
:class:`~streamops.operators.blocks.BlockSplitter`: a ``text-start`` when a block begins, its
``text-end`` when the block changes or another event of the run ends it):

=====================================  ==================================================
streamops event                        UI message chunks
=====================================  ==================================================
``RunStart``                           ``start`` (``messageId``: the run id)
``StepStart`` / ``StepEnd``            ``start-step`` / ``finish-step``
``TextDelta``, ``RefusalDelta``        ``text-start`` + ``text-delta`` (+ ``text-end``)
``ReasoningDelta``                     ``reasoning-start`` + ``reasoning-delta`` (+ ``-end``)
``ReasoningSignature``                 ``reasoning-delta`` with an empty delta and
                                       ``providerMetadata.streamops.signature``
``RedactedReasoning``                  an empty reasoning block whose ``reasoning-start``
                                       carries ``providerMetadata.streamops.redactedData``
``ToolCallStart`` / ``ToolCallDelta``  ``tool-input-start`` (once per call) /
                                       ``tool-input-delta``
``ToolCallEnd``                        ``tool-input-available`` (``input``: the parsed
                                       arguments), or ``tool-input-error`` if they are
                                       not a JSON object
``ToolResult`` / ``ToolError``         ``tool-output-available`` / ``tool-output-error``
``ToolProgress``                       ``data-tool-progress`` (transient)
``CustomEvent``                        ``data-<name>``
``PartialObject`` / ``FinalOutput``    ``data-partial-object`` (transient) /
                                       ``data-final-output``
``ErrorEvent``                         ``error`` (``errorText``)
``RunEnd``                             open blocks closed, then ``finish`` (with
                                       ``finishReason`` and ``messageMetadata``: status and
                                       usage); a cancelled run ends with ``abort`` instead
=====================================  ==================================================

``UsageEvent``, ``RawEvent`` and ``ObjectDelta`` give no chunk (usage arrives in the
``finish`` chunk's metadata; the partial objects carry what the object deltas say).

:class:`VercelEncoder` is sans-IO: ``encode(event)`` returns chunk dicts, :meth:`frame` frames
one (:meth:`encode_frames` frames an event's chunks: the
:class:`~streamops.sinks.encoder.Encoder` protocol), :meth:`close` ends a stream that stopped
without a run end; :func:`vercel_response` is the Starlette helper.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

import streamops.events as ev

from .._stream import Stream
from .encoder import BlockEncoder, encoded
from .openai import DONE
from .sse import SSE_HEADERS

if TYPE_CHECKING:
    from starlette.responses import StreamingResponse

    from .resume import DisconnectPolicy

__all__ = ["DONE", "VERCEL_HEADERS", "VercelEncoder", "vercel_response"]

VERCEL_HEADERS: dict[str, str] = {**SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1"}
"""Response headers of a UI message stream: those of the AI SDK's ``UI_MESSAGE_STREAM_HEADERS``
(``content-type: text/event-stream``, ``cache-control: no-cache``, ``connection: keep-alive``,
``x-accel-buffering: no``: the SSE sink's :data:`~streamops.sinks.sse.SSE_HEADERS`) and
``x-vercel-ai-ui-message-stream: v1``."""

_FINISH_REASONS: dict[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "error": "error",
    "cancelled": "other",
}


def _usage_dict(usage: ev.Usage) -> dict[str, int]:
    fields = {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "reasoningTokens": usage.reasoning_tokens,
        "cachedInputTokens": usage.cache_read_tokens,
        "totalTokens": usage.total_tokens,
    }
    return {k: v for k, v in fields.items() if v is not None}


class VercelEncoder(BlockEncoder[dict[str, Any]]):
    """Turns streamops events into AI SDK UI message chunks (sans-IO, one stream per encoder).

    Block starts and ends come from :class:`~streamops.operators.blocks.BlockSplitter` (the
    rule of :func:`~streamops.operators.blocks.blocks`), fed every event: ``text-start`` /
    ``reasoning-start`` / ``tool-input-start`` at a block start, ``*-end`` at its end.

    Args:
        message_id: the ``messageId`` of the ``start`` chunk; default the run id of the
            ``RunStart`` event.
    """

    terminator = DONE

    def __init__(self, message_id: str | None = None) -> None:
        super().__init__()
        self.message_id = message_id
        self._started = False
        self._blocks = 0
        self._ids: dict[tuple[str, str], str] = {}  # (run id, agent) -> id of its open content block
        self._calls: set[str] = set()  # call ids whose tool-input-start was sent and not ended
        self._step_open = False

    def _begin(self, run_id: str) -> None:
        out = self._out
        if not self._started:
            self._started = True
            start: dict[str, Any] = {"type": "start"}
            mid = self.message_id or run_id
            if mid:
                start["messageId"] = mid
            out.append(start)

    def _new_id(self, kind: str) -> str:
        bid = f"{kind}-{self._blocks}"
        self._blocks += 1
        return bid

    # ---------------------------------------------------------------- encoding
    def _one(self, event: ev.BaseEvent) -> None:
        out = self._out
        if isinstance(event, (ev.TextDelta, ev.RefusalDelta)):
            out.append({"type": "text-delta", "id": self._ids[event.run_id, event.agent], "delta": event.delta})
        elif isinstance(event, ev.ReasoningDelta):
            out.append({"type": "reasoning-delta", "id": self._ids[event.run_id, event.agent], "delta": event.delta})
        elif isinstance(event, ev.BlockStart):
            if event.block == "tool-call":
                assert event.call_id is not None
                self._calls.add(event.call_id)
                out.append({"type": "tool-input-start", "toolCallId": event.call_id, "toolName": event.name})
            else:
                kind = "reasoning" if event.block == "reasoning" else "text"
                bid = self._ids[event.run_id, event.agent] = self._new_id(kind)
                out.append({"type": f"{kind}-start", "id": bid})
        elif isinstance(event, ev.BlockEnd):
            if event.block == "tool-call":
                self._calls.discard(event.call_id or "")
            else:
                kind = "reasoning" if event.block == "reasoning" else "text"
                out.append({"type": f"{kind}-end", "id": self._ids.pop((event.run_id, event.agent))})
        elif isinstance(event, ev.ReasoningSignature):
            out.append(
                {
                    "type": "reasoning-delta",
                    "id": self._ids[event.run_id, event.agent],
                    "delta": "",
                    "providerMetadata": {"streamops": {"signature": event.signature}},
                }
            )
        elif isinstance(event, ev.RedactedReasoning):
            bid = self._new_id("reasoning")
            out.append(
                {
                    "type": "reasoning-start",
                    "id": bid,
                    "providerMetadata": {"streamops": {"redactedData": event.data}},
                }
            )
            out.append({"type": "reasoning-end", "id": bid})
        elif isinstance(event, ev.StepStart):
            if self._step_open:
                out.append({"type": "finish-step"})
            self._step_open = True
            out.append({"type": "start-step"})
        elif isinstance(event, ev.StepEnd):
            if self._step_open:
                self._step_open = False
                out.append({"type": "finish-step"})
        elif isinstance(event, ev.ToolCallDelta):
            if event.call_id in self._calls:  # else a fragment of a call that never started
                out.append({"type": "tool-input-delta", "toolCallId": event.call_id, "inputTextDelta": event.delta})
        elif isinstance(event, ev.ToolCallEnd):
            out.append(self._tool_input(event))
        elif isinstance(event, ev.ToolResult):
            out.append({"type": "tool-output-available", "toolCallId": event.call_id, "output": event.result})
        elif isinstance(event, ev.ToolError):
            out.append({"type": "tool-output-error", "toolCallId": event.call_id, "errorText": event.message})
        elif isinstance(event, ev.ToolProgress):
            out.append(
                {
                    "type": "data-tool-progress",
                    "id": event.call_id,
                    "data": {"toolCallId": event.call_id, "toolName": event.name, "data": event.data},
                    "transient": True,
                }
            )
        elif isinstance(event, ev.CustomEvent):
            out.append({"type": f"data-{event.name}", "data": event.data})
        elif isinstance(event, ev.PartialObject):
            out.append({"type": "data-partial-object", "data": event.value, "transient": True})
        elif isinstance(event, ev.FinalOutput):
            out.append({"type": "data-final-output", "data": event.value})
        elif isinstance(event, ev.ErrorEvent):
            out.append({"type": "error", "errorText": f"{event.error_type}: {event.message}"})
        elif isinstance(event, ev.RunEnd):
            self._end(event)

    @staticmethod
    def _tool_input(event: ev.ToolCallEnd) -> dict[str, Any]:
        try:
            args = json.loads(event.arguments) if event.arguments.strip() else {}
        except ValueError as exc:
            return {
                "type": "tool-input-error",
                "toolCallId": event.call_id,
                "toolName": event.name,
                "input": event.arguments,
                "errorText": f"arguments are not valid JSON: {exc}",
            }
        return {"type": "tool-input-available", "toolCallId": event.call_id, "toolName": event.name, "input": args}

    def _end(self, event: ev.RunEnd | None) -> None:
        out = self._out
        if self._step_open:
            self._step_open = False
            out.append({"type": "finish-step"})
        self.finished = True
        if event is None or event.status == "cancelled":
            out.append({"type": "abort", "reason": "cancelled" if event is not None else "stream ended"})
            return
        if event.status == "failed" and event.finish_reason is None:
            finish_reason = "error"
        else:
            finish_reason = _FINISH_REASONS.get(event.finish_reason or "stop", "other")
        meta: dict[str, Any] = {"status": event.status}
        if event.usage is not None:
            meta["usage"] = _usage_dict(event.usage)
        out.append({"type": "finish", "finishReason": finish_reason, "messageMetadata": meta})

    # ---------------------------------------------------------------- framing
    @staticmethod
    def frame(item: dict[str, Any]) -> bytes:
        """One chunk as an SSE message (``data: {json}``; compact JSON has no line breaks).

        Values are serialised by :func:`~streamops.events.json_bytes`, as the SSE and NDJSON
        sinks serialise events (``repr()`` for what pydantic cannot dump: a ``datetime`` in a
        tool result becomes its ISO string; a lone surrogate becomes U+FFFD), and NaN and
        infinities become ``null``: JSON has no such numbers and the AI SDK's ``JSON.parse``
        rejects ``NaN``/``Infinity``.
        """
        return b"data: " + ev.json_bytes(item) + b"\n\n"

    def encode_stream(self, stream: AsyncIterable[ev.BaseEvent]) -> Stream[bytes]:
        """The whole SSE body for ``stream`` (:func:`~streamops.sinks.encoder.encoded`): every
        chunk, then :meth:`close`'s, then ``data: [DONE]``; if ``stream`` raises, the ``error``
        chunk of its ``ErrorEvent``, the closing chunks and ``data: [DONE]``, then the
        exception. ``stream`` is always closed."""
        return encoded(stream, self)


def vercel_response(
    stream: AsyncIterable[ev.BaseEvent],
    *,
    message_id: str | None = None,
    heartbeat: float | None = None,
    on_disconnect: DisconnectPolicy = "cancel",
) -> StreamingResponse:
    """A Starlette response streaming ``stream`` as a UI message stream (with
    :data:`VERCEL_HEADERS`).

    A :class:`~streamops.Stream` (an agent run included) is iterated inside its own terminal,
    so its tasks are hosted and it is closed when the response ends. When the client goes
    away, ``on_disconnect="cancel"`` closes the stream at once (cancelling the run);
    ``"continue"`` iterates it to its end, discarding the chunks. If the stream raises, an
    ``error`` chunk and an ``abort`` end it. ``heartbeat``: seconds of silence after which an
    SSE comment line is sent (``None``: never).

    Raises:
        ValueError: ``heartbeat`` is not positive, or ``on_disconnect`` is not
            ``"cancel"``/``"continue"``.
    """
    from ._asgi import encoder_response

    return encoder_response(
        stream,
        VercelEncoder(message_id),
        headers=dict(VERCEL_HEADERS),
        heartbeat_interval=heartbeat,
        on_disconnect=on_disconnect,
    )
