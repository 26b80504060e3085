"""Vercel AI SDK UI message stream (``x-vercel-ai-ui-message-stream: v1``).

The protocol is the one ``useChat`` (``@ai-sdk/react``) and ``readUIMessageStream`` read: an
SSE body of JSON "UI message chunks", one per ``data:`` line, ending with ``data: [DONE]``.
The chunk types and their fields are those of ``uiMessageChunkSchema`` in the AI SDK
(``packages/ai/src/ui-message-stream/ui-message-chunks.ts`` in github.com/vercel/ai; the
stream-protocol page of ai-sdk.dev describes the same parts). The encoder sends only the
fields listed there (the package itself, ``ai`` 6.0.325, would let extra fields through). The
tests parse every encoded recorded stream with that npm package's own ``parseJsonEventStream``
and ``readUIMessageStream`` under Node.js (``tests/sinks/test_vercel_ai_package.py``).

Mapping (one streamops event may give several chunks; ``start``/``end`` chunks are
synthesized from block ids: a ``text-start`` when a block begins, its ``text-end`` when the
block changes or any other chunk is about to be sent):

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
``ToolCallStart`` / ``ToolCallDelta``  ``tool-input-start`` / ``tool-input-delta``
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

:class:`VercelEncoder` is sans-IO: ``encode(event)`` returns chunk dicts, :meth:`sse` frames
one (:meth:`encode_sse` frames an event's chunks), :meth:`close` ends a stream that stopped
without a run end; :func:`vercel_response` is the Starlette helper.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from .._stream import Stream, aclose_iterator
from ..events import (
    BaseEvent,
    CustomEvent,
    ErrorEvent,
    FinalOutput,
    PartialObject,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RefusalDelta,
    RunEnd,
    RunStart,
    StepEnd,
    StepStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolError,
    ToolProgress,
    ToolResult,
    Usage,
)
from ..operators.errors import errors_as_events
from ._nesting import Nesting
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


def _usage_dict(usage: Usage) -> dict[str, int]:
    fields = {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "reasoningTokens": usage.reasoning_tokens,
        "cachedInputTokens": usage.cache_read_tokens,
        "totalTokens": usage.total_tokens,
    }
    return {k: v for k, v in fields.items() if v is not None}


class VercelEncoder:
    """Turns streamops events into AI SDK UI message chunks (sans-IO, one stream per encoder).

    Args:
        message_id: the ``messageId`` of the ``start`` chunk; default the run id of the
            ``RunStart`` event.
    """

    def __init__(self, message_id: str | None = None) -> None:
        self.message_id = message_id
        self._started = False
        self._finished = False
        self._open: tuple[str, str, str | None] | None = None  # (kind, emitted id, source block id)
        self._blocks = 0
        self._step_open = False
        self._calls: dict[str, str] = {}  # call id -> tool name, for calls whose input started
        self._usage: Usage | None = None
        self._nesting = Nesting()

    # ---------------------------------------------------------------- blocks
    def _close_block(self, out: list[dict[str, Any]]) -> None:
        if self._open is not None:
            kind, bid, _ = self._open
            out.append({"type": f"{kind}-end", "id": bid})
            self._open = None

    def _block(self, out: list[dict[str, Any]], kind: str, source: str | None) -> str:
        """Id of the open ``kind`` block for ``source``, opening one (and closing another) if
        needed."""
        if self._open is not None and self._open[0] == kind and self._open[2] == source:
            return self._open[1]
        self._close_block(out)
        bid = f"{kind}-{self._blocks}"
        self._blocks += 1
        self._open = (kind, bid, source)
        out.append({"type": f"{kind}-start", "id": bid})
        return bid

    def _ensure_start(self, out: list[dict[str, Any]], run_id: str = "") -> None:
        if not self._started:
            self._started = True
            start: dict[str, Any] = {"type": "start"}
            mid = self.message_id or run_id
            if mid:
                start["messageId"] = mid
            out.append(start)

    # ---------------------------------------------------------------- encoding
    def encode(self, event: BaseEvent) -> list[dict[str, Any]]:
        """The chunks for one event (possibly none). Nothing is encoded after the run end. A
        nested run's start and end and a handoff are ``data-<name>`` parts
        (:mod:`streamops.sinks._nesting`)."""
        event = self._nesting.lower(event)
        out: list[dict[str, Any]] = []
        if self._finished:
            return out
        if isinstance(event, RunStart):
            self._ensure_start(out, event.run_id)
            return out
        self._ensure_start(out, event.run_id)
        if isinstance(event, (TextDelta, RefusalDelta)):
            source = event.block_id if isinstance(event, TextDelta) else f"refusal:{event.block_id}"
            bid = self._block(out, "text", source)
            out.append({"type": "text-delta", "id": bid, "delta": event.delta})
        elif isinstance(event, ReasoningDelta):
            bid = self._block(out, "reasoning", event.block_id)
            out.append({"type": "reasoning-delta", "id": bid, "delta": event.delta})
        elif isinstance(event, ReasoningSignature):
            bid = self._block(out, "reasoning", event.block_id)
            out.append(
                {
                    "type": "reasoning-delta",
                    "id": bid,
                    "delta": "",
                    "providerMetadata": {"streamops": {"signature": event.signature}},
                }
            )
        elif isinstance(event, RedactedReasoning):
            self._close_block(out)
            bid = f"reasoning-{self._blocks}"
            self._blocks += 1
            out.append(
                {
                    "type": "reasoning-start",
                    "id": bid,
                    "providerMetadata": {"streamops": {"redactedData": event.data}},
                }
            )
            out.append({"type": "reasoning-end", "id": bid})
        elif isinstance(event, StepStart):
            self._close_block(out)
            if self._step_open:
                out.append({"type": "finish-step"})
            self._step_open = True
            out.append({"type": "start-step"})
        elif isinstance(event, StepEnd):
            self._close_block(out)
            if self._step_open:
                self._step_open = False
                out.append({"type": "finish-step"})
        elif isinstance(event, ToolCallStart):
            self._close_block(out)
            self._calls[event.call_id] = event.name
            out.append({"type": "tool-input-start", "toolCallId": event.call_id, "toolName": event.name})
        elif isinstance(event, ToolCallDelta):
            self._close_block(out)
            if event.call_id not in self._calls:
                return out  # a fragment of a call that never started: nothing to attach it to
            out.append({"type": "tool-input-delta", "toolCallId": event.call_id, "inputTextDelta": event.delta})
        elif isinstance(event, ToolCallEnd):
            self._close_block(out)
            if event.call_id not in self._calls:
                self._calls[event.call_id] = event.name
                out.append({"type": "tool-input-start", "toolCallId": event.call_id, "toolName": event.name})
            out.append(self._tool_input(event))
        elif isinstance(event, ToolResult):
            self._close_block(out)
            out.append({"type": "tool-output-available", "toolCallId": event.call_id, "output": event.result})
        elif isinstance(event, ToolError):
            self._close_block(out)
            out.append({"type": "tool-output-error", "toolCallId": event.call_id, "errorText": event.message})
        elif isinstance(event, ToolProgress):
            self._close_block(out)
            out.append(
                {
                    "type": "data-tool-progress",
                    "id": event.call_id,
                    "data": {"toolCallId": event.call_id, "toolName": event.name, "data": event.data},
                    "transient": True,
                }
            )
        elif isinstance(event, CustomEvent):
            self._close_block(out)
            out.append({"type": f"data-{event.name}", "data": event.data})
        elif isinstance(event, PartialObject):
            self._close_block(out)
            out.append({"type": "data-partial-object", "data": event.value, "transient": True})
        elif isinstance(event, FinalOutput):
            self._close_block(out)
            out.append({"type": "data-final-output", "data": event.value})
        elif isinstance(event, ErrorEvent):
            self._close_block(out)
            out.append({"type": "error", "errorText": f"{event.error_type}: {event.message}"})
        elif isinstance(event, RunEnd):
            out += self._end(event)
        return out

    @staticmethod
    def _tool_input(event: ToolCallEnd) -> dict[str, Any]:
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

    def _end(self, event: RunEnd | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._ensure_start(out)
        self._close_block(out)
        if self._step_open:
            self._step_open = False
            out.append({"type": "finish-step"})
        self._finished = True
        if event is None or event.status == "cancelled":
            out.append({"type": "abort", "reason": "cancelled" if event is not None else "stream ended"})
            return out
        if event.status == "failed" and event.finish_reason is None:
            finish_reason = "error"
        else:
            finish_reason = _FINISH_REASONS.get(event.finish_reason or "stop", "other")
        meta: dict[str, Any] = {"status": event.status}
        if event.usage is not None:
            meta["usage"] = _usage_dict(event.usage)
        out.append({"type": "finish", "finishReason": finish_reason, "messageMetadata": meta})
        return out

    def close(self) -> list[dict[str, Any]]:
        """Chunks that end a stream which stopped without a ``RunEnd`` (open blocks closed,
        then ``abort``); nothing if the run end was encoded."""
        if self._finished:
            return []
        return self._end(None)

    # ---------------------------------------------------------------- framing
    @staticmethod
    def sse(part: dict[str, Any]) -> bytes:
        """One chunk as an SSE message (``data: {json}``; compact JSON has no line breaks).

        Values are serialised as the SSE and NDJSON sinks serialise events (pydantic's JSON
        mode, ``repr()`` for what it cannot dump: a ``datetime`` in a tool result becomes its
        ISO string), and NaN and infinities become ``null``: JSON has no such numbers and the
        AI SDK's ``JSON.parse`` rejects ``NaN``/``Infinity``.
        """
        from pydantic_core import to_json

        return b"data: " + to_json(part, fallback=repr, inf_nan_mode="null") + b"\n\n"

    def encode_sse(self, event: BaseEvent) -> bytes:
        """The chunks of one event, each framed by :meth:`sse`, concatenated (``b""`` for none)."""
        return b"".join(map(self.sse, self.encode(event)))

    def close_sse(self) -> bytes:
        """The frames that end the stream: :meth:`close`'s chunks, then ``data: [DONE]``."""
        return b"".join(map(self.sse, self.close())) + DONE

    async def encode_stream(self, stream: AsyncIterable[BaseEvent]) -> AsyncIterator[bytes]:
        """The whole SSE body for ``stream``: every chunk, then :meth:`close`'s, then
        ``data: [DONE]``.

        If ``stream`` raises (an ``Exception``), the body ends as :func:`vercel_response` ends
        it: the ``error`` chunk of the ``ErrorEvent`` for the failure
        (:func:`~streamops.operators.errors.error_event`), the closing chunks (``abort`` unless the
        run end was encoded) and ``data: [DONE]``; then the exception is re-raised. ``stream``
        is always closed (``aclose()`` of its iterator, when it has one): at its end, on its
        failure, and when this generator is closed early (``break`` then ``aclose()``, or
        cancellation).

        Iterate it inside the terminal that hosts ``stream`` when the stream runs tasks (an
        agent run): :func:`vercel_response` does that.
        """
        it = aiter(Stream.from_async_iterable(stream) | errors_as_events(reraise=True))
        failure: Exception | None = None
        try:
            async for event in it:
                for part in self.encode(event):
                    yield self.sse(part)
        except Exception as exc:  # the stream failed: its ErrorEvent was encoded
            failure = exc
        finally:
            await aclose_iterator(it)
        for part in self.close():
            yield self.sse(part)
        yield DONE
        if failure is not None:
            raise failure


def vercel_response(
    stream: AsyncIterable[BaseEvent],
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
    from ._asgi import EventStreamResponse, stream_producer

    encoder = VercelEncoder(message_id)
    return EventStreamResponse(
        stream_producer(stream, encoder.encode_sse, finish=encoder.close_sse),
        headers=dict(VERCEL_HEADERS),
        heartbeat_interval=heartbeat,
        on_disconnect=on_disconnect,
    )
