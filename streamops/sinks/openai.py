"""Events -> OpenAI ``chat.completion.chunk`` objects: a drop-in OpenAI-compatible stream.

Source of the format: OpenAI API reference, "Chat Completions" -> "The chat completion chunk
object" and "The chat completion object" (``POST /v1/chat/completions``; with ``stream: true``
the body is Server-Sent Events, one ``data: <chunk JSON>`` per chunk, ended by
``data: [DONE]``).

:class:`ChunkEncoder` is sans-IO: ``encode(event)`` returns the chunks (plain ``dict``\\ s, JSON
ready) that one event gives, ``frame(chunk)`` frames one as SSE bytes, :data:`DONE` is the
terminator, and ``close()`` flushes what a stream that ended without a run end still owes
(the :class:`~streamops.sinks.encoder.Encoder` protocol on top: ``encode_frames``,
``close_frames``, ``error_frames``); :func:`openai_response` serves it.
Every chunk has the same envelope::

    {"id": "chatcmpl-...", "object": "chat.completion.chunk", "created": <unix seconds>,
     "model": "<model>", "choices": [...]}

Mapping (one choice, ``index`` 0):

===========================  ===============================================================
event                        chunk(s)
===========================  ===============================================================
RunStart                     ``delta: {"role": "assistant", "content": ""}`` (sent once;
                             also sent before the first content chunk if no run start came)
TextDelta                    ``delta: {"content": text}``
ReasoningDelta               ``delta: {"reasoning_content": text}``: not an OpenAI field; it
                             is what DeepSeek, vLLM, Z.ai, Together and others send, and what
                             OpenAI-compatible clients read (the ``openai`` SDK keeps it as an
                             extra attribute of the delta)
RefusalDelta                 ``delta: {"refusal": text}``
ToolCallStart                ``delta: {"tool_calls": [{"index": i, "id": call_id,
                             "type": "function", "function": {"name": name,
                             "arguments": ""}}]}``
ToolCallDelta                ``delta: {"tool_calls": [{"index": i, "function":
                             {"arguments": fragment}}]}``
ToolCallEnd                  nothing when the fragments sent add up to its ``arguments``
                             and the call's name was sent; else one more fragment with the
                             missing tail of the arguments and, when no name was sent yet
                             (a call opened by a delta), the name (a call with no deltas
                             sends its whole arguments here; a call with no start sends id,
                             name and arguments in one fragment)
UsageEvent                   nothing (folded: cumulative reports overlay, increments add)
StepEnd                      nothing (its finish reason is remembered)
RunEnd                       ``delta: {}, finish_reason: <reason>``, then (``include_usage``
                             and some usage known) ``choices: [], usage: {...}``
ErrorEvent                   one error chunk (below); nothing is encoded after it
anything else                nothing (reasoning signatures, redacted reasoning, tool results
                             and errors, progress, raw and custom events, structured-output
                             events: the chunk format has no place for them)
===========================  ===============================================================

Tool-call indexes are stable per ``call_id``: ``0, 1, 2...`` in order of first appearance over
the whole stream (an agent run with several steps numbers on; the events' own ``index`` is not
used, since it restarts with each step). ``id`` goes in the first fragment only, and the
``name`` is sent once per call: in the first fragment, or (when a delta opened the call) in the
first fragment after it becomes known (a later start, or the end). Clients concatenate every
string fragment of a call, ``id`` and ``name`` included, so neither is ever sent twice; a
repeated start is otherwise ignored.

Finish reason: the run end's normalized ``finish_reason``, else the last step end's, else one
implied by the run end's ``status`` (``completed`` -> ``stop``, ``length`` -> ``length``,
``failed`` -> ``error``, ``cancelled`` -> ``cancelled``, ``max_steps`` -> ``tool_calls``,
``budget_exceeded`` -> ``length``). Values: ``stop``, ``length``, ``tool_calls``,
``content_filter`` (OpenAI's), and two that OpenAI does not define: ``error`` (the run failed)
and ``cancelled`` (the run was cancelled). The ``openai`` SDK does not validate the field, so
clients receive them as strings. A run end with no finish reason, no step end reason and no
status-implied one sends ``finish_reason: null`` in the final chunk.

Usage chunk (``stream_options.include_usage`` in the OpenAI API): ``usage`` =
``{"prompt_tokens", "completion_tokens", "total_tokens"}`` (tokens; an unknown count is sent
as 0 only when the other one is known), plus ``completion_tokens_details.reasoning_tokens``
and ``prompt_tokens_details.cached_tokens`` when known. The run end's usage wins over the
reports in the stream (they are overlaid, as :class:`~streamops.Accumulator` does). When no
usage was ever reported, no usage chunk is sent.

Error chunk: OpenAI itself ends a failed stream with an HTTP error or an ``error`` SSE event;
OpenAI-compatible servers (OpenRouter, vLLM, LiteLLM's proxy) send a chunk with an ``error``
object, which the ``openai`` SDK turns into an ``openai.APIError``. This encoder does the
latter::

    {"id", "object": "chat.completion.chunk", "created", "model", "choices": [],
     "error": {"message": str, "type": str, "code": str | null},
     ["usage": {...}]}       # the usage known so far, when include_usage and known

``data: [DONE]`` should still follow it. :meth:`ChunkEncoder.encode_stream` sends one, then
``data: [DONE]``, when its source raises (and then re-raises), never an invented finish chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

import streamops.events as ev

from .._stream import Stream
from ..operators.aggregate import Message
from ._nesting import Nesting
from .encoder import ItemEncoder, encoded

if TYPE_CHECKING:
    from starlette.responses import StreamingResponse

    from .resume import DisconnectPolicy

__all__ = ["DONE", "ChunkEncoder", "completion_object", "openai_response", "openai_usage"]

DONE = b"data: [DONE]\n\n"
"""The SSE frame that ends an OpenAI chat completion stream."""

_STATUS_FINISH: dict[ev.RunStatus, ev.FinishReason] = {
    "completed": "stop",
    "length": "length",
    "failed": "error",
    "cancelled": "cancelled",
    "max_steps": "tool_calls",
    "budget_exceeded": "length",
}

_DELTA_FIELDS: dict[type[ev.BaseEvent], str] = {
    ev.TextDelta: "content",
    ev.ReasoningDelta: "reasoning_content",
    ev.RefusalDelta: "refusal",
}
"""The ``delta`` field each content delta event goes in."""

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def openai_usage(usage: ev.Usage) -> dict[str, Any]:
    """A :class:`~streamops.events.Usage` as an OpenAI ``usage`` object (counts in tokens).

    ``input_tokens`` -> ``prompt_tokens``, ``output_tokens`` -> ``completion_tokens``, their
    sum -> ``total_tokens`` (an unknown count counts as 0); ``reasoning_tokens`` ->
    ``completion_tokens_details.reasoning_tokens`` and ``cache_read_tokens`` ->
    ``prompt_tokens_details.cached_tokens``, each only when known.
    """
    prompt = usage.input_tokens or 0
    completion = usage.output_tokens or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.cache_read_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    return out


def _has_usage(u: ev.Usage | None) -> bool:
    return u is not None and (u.input_tokens is not None or u.output_tokens is not None)


class _Call:
    __slots__ = ("index", "named", "sent")

    def __init__(self, index: int, named: bool) -> None:
        self.index = index
        self.named = named  # a non-empty name was sent (clients concatenate name fragments)
        self.sent: list[str] = []


class ChunkEncoder(ItemEncoder[dict[str, Any]]):
    r"""Sans-IO encoder of events into OpenAI ``chat.completion.chunk`` objects (see the module
    docstring for the mapping).

    Args:
        model: the ``model`` field of every chunk.
        completion_id: the ``id`` of every chunk; default ``"chatcmpl-" + uuid4().hex``.
        created: the ``created`` field (Unix time, seconds); default now.
        include_usage: send the final usage chunk (``choices: []``, ``usage``), as OpenAI does
            with ``stream_options: {"include_usage": true}``.

    One encoder is one completion: feed it one run's events in order. The
    :class:`~streamops.sinks.encoder.Encoder` of the ``stream: true`` body (every frame
    :meth:`frame`\ d, :data:`DONE` last). ``encode`` never raises
    on an event kind it does not map (it returns ``[]``); after an :class:`ErrorEvent` or a
    :class:`RunEnd` it returns ``[]`` for everything.
    """

    __slots__ = (
        "_calls",
        "_end_usage",
        "_ended",
        "_finish",
        "_nesting",
        "_role_sent",
        "_usage",
        "completion_id",
        "created",
        "include_usage",
        "model",
    )

    def __init__(
        self,
        *,
        model: str,
        completion_id: str | None = None,
        created: int | None = None,
        include_usage: bool = True,
    ) -> None:
        self.model = model
        self.completion_id = completion_id or f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time()) if created is None else created
        self.include_usage = include_usage
        self._role_sent = False
        self._ended = False
        self._calls: dict[str, _Call] = {}
        self._finish: ev.FinishReason | None = None
        self._usage: ev.Usage | None = None
        self._end_usage: ev.Usage | None = None
        self._nesting = Nesting()

    # ------------------------------------------------------------------ chunk shapes
    def _empty_chunk(self) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
        }

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk = self._empty_chunk()
        chunk["choices"].append({"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason})
        return chunk

    def _usage_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """``chunk`` with the usage folded so far, when ``include_usage`` and some is known."""
        u = self.usage
        if self.include_usage and u is not None and _has_usage(u):
            chunk["usage"] = openai_usage(u)
        return chunk

    def _role(self, out: list[dict[str, Any]]) -> None:
        """The role chunk, once, before the first content chunk."""
        if not self._role_sent:
            self._role_sent = True
            out.append(self._chunk({"role": "assistant", "content": ""}))

    def _tool_chunk(self, index: int, function: dict[str, str], call_id: str | None = None) -> dict[str, Any]:
        """A ``tool_calls`` delta of one call; with ``call_id`` the call's first fragment (id and
        type go in it only)."""
        call: dict[str, Any] = {"index": index}
        if call_id is not None:
            call["id"] = call_id
            call["type"] = "function"
        call["function"] = function
        return self._chunk({"tool_calls": [call]})

    @property
    def usage(self) -> ev.Usage | None:
        """The usage folded so far (run end's overlaid on the stream's reports), or ``None``."""
        u = self._usage
        if self._end_usage is not None:
            u = self._end_usage if u is None else u.merged(self._end_usage)
        return u

    @property
    def ended(self) -> bool:
        """True once a run end or an error was encoded: nothing more will be."""
        return self._ended

    # ------------------------------------------------------------------ encoding
    def encode(self, event: ev.BaseEvent) -> list[dict[str, Any]]:
        """The chunks for one event (often one, sometimes none or two). The events of a run
        nested in the stream's run (an agent used as a tool) give none: the chunks are one
        assistant message (:mod:`streamops.sinks._nesting`)."""
        if self._ended or self._nesting.nested(event):
            return []
        out: list[dict[str, Any]] = []
        t = type(event)
        field = _DELTA_FIELDS.get(t)
        if field is not None:  # text, reasoning or refusal
            self._role(out)
            out.append(self._chunk({field: event.delta}))  # type: ignore[attr-defined]
        elif t is ev.ToolCallDelta:
            self._tool_delta(event, out)  # type: ignore[arg-type]
        elif t is ev.ToolCallStart:
            self._tool_start(event, out)  # type: ignore[arg-type]
        elif t is ev.ToolCallEnd:
            self._tool_end(event, out)  # type: ignore[arg-type]
        elif t is ev.UsageEvent:
            self._usage = event.folded(self._usage)  # type: ignore[attr-defined]
        elif t is ev.RunStart:
            self._role(out)
        elif t is ev.StepEnd:
            se: ev.StepEnd = event  # type: ignore[assignment]
            if se.finish_reason is not None:
                self._finish = se.finish_reason
        elif t is ev.RunEnd:
            re: ev.RunEnd = event  # type: ignore[assignment]
            if re.usage is not None:
                self._end_usage = re.usage
            finish = re.finish_reason or self._finish or _STATUS_FINISH.get(re.status)
            self._end(finish, out)
        elif t is ev.ErrorEvent:
            self._error(event, out)  # type: ignore[arg-type]
        return out

    def close(self, finish_reason: ev.FinishReason | None = None) -> list[dict[str, Any]]:
        """The chunks a stream that ended without a :class:`RunEnd` still owes: the finish
        chunk (``finish_reason``, else the last step end's, else ``"stop"``) and the usage
        chunk. ``[]`` when the run end (or an error) was already encoded."""
        if self._ended:
            return []
        out: list[dict[str, Any]] = []
        self._end(finish_reason or self._finish or "stop", out)
        return out

    def _end(self, finish: str | None, out: list[dict[str, Any]]) -> None:
        self._ended = True
        self._role(out)
        out.append(self._chunk({}, finish))
        usage = self._usage_chunk(self._empty_chunk())
        if "usage" in usage:
            out.append(usage)

    def _error(self, e: ev.ErrorEvent, out: list[dict[str, Any]]) -> None:
        self._ended = True
        chunk = self._empty_chunk()
        chunk["error"] = {"message": e.message, "type": e.error_type, "code": e.code}
        out.append(self._usage_chunk(chunk))

    def _open_call(self, call_id: str, function: dict[str, str], out: list[dict[str, Any]]) -> _Call:
        """A call seen for the first time: its index, and its first fragment (id, type and
        ``function``) after the role chunk if none was sent."""
        self._role(out)
        call = self._calls[call_id] = _Call(len(self._calls), bool(function.get("name")))
        out.append(self._tool_chunk(call.index, function, call_id))
        return call

    def _tool_start(self, e: ev.ToolCallStart, out: list[dict[str, Any]]) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            self._open_call(e.call_id, {"name": e.name, "arguments": ""}, out)
        elif e.name and not call.named:  # a repeated start: only a first name is news
            call.named = True
            out.append(self._tool_chunk(call.index, {"name": e.name}))

    def _tool_delta(self, e: ev.ToolCallDelta, out: list[dict[str, Any]]) -> None:
        call = self._calls.get(e.call_id)
        if call is None:  # a delta with no start: open the call with its id
            call = self._open_call(e.call_id, {"arguments": e.delta}, out)
        else:
            out.append(self._tool_chunk(call.index, {"arguments": e.delta}))
        call.sent.append(e.delta)

    def _tool_end(self, e: ev.ToolCallEnd, out: list[dict[str, Any]]) -> None:
        call = self._calls.get(e.call_id)
        if call is None:
            call = self._open_call(e.call_id, {"name": e.name, "arguments": e.arguments}, out)
            call.sent.append(e.arguments)
            return
        function: dict[str, str] = {}
        if e.name and not call.named:  # a call opened by a delta: its name is known only now
            call.named = True
            function["name"] = e.name
        sent = "".join(call.sent)
        if sent != e.arguments and e.arguments.startswith(sent):
            # Only the missing tail can be sent: chunks cannot take back what was streamed.
            # (When the whole text differs from the fragments, the fragments stand.)
            function["arguments"] = e.arguments[len(sent) :]
            call.sent = [e.arguments]
        if function:
            out.append(self._tool_chunk(call.index, function))

    # ------------------------------------------------------------------ framing
    terminator = DONE
    """What ends the body after :meth:`close`'s chunks: ``data: [DONE]``."""

    @staticmethod
    def frame(item: dict[str, Any]) -> bytes:
        """One chunk as an SSE frame: ``b"data: <compact UTF-8 JSON>\\n\\n"``.

        JSON text never holds a raw CR or LF (they are escaped in strings), so a chunk is
        always exactly one ``data`` line.
        """
        return b"data: " + ev.utf8(_dumps(item)) + b"\n\n"

    def encode_stream(self, stream: AsyncIterable[ev.BaseEvent]) -> Stream[bytes]:
        """The ``stream: true`` body for one run's events (:func:`~streamops.sinks.encoder.encoded`).

        - When the source emits: each item is the SSE frames of one event (events that give no
          chunk give no item).
        - When it completes: whatever :meth:`close` owes (the finish chunk and the usage
          chunk, unless a run end or an error event was encoded), then ``data: [DONE]``.
        - When it fails (raises an ``Exception``): the error chunk of the ``ErrorEvent`` for it
          (:func:`~streamops.operators.errors.error_event`: ``type`` the exception's class name,
          ``message`` its text; nothing if a run end or an error was already encoded), never a
          finish chunk, then ``data: [DONE]``; then the exception is re-raised to the consumer.
        - When the consumer stops early (``break``, ``aclose()``, cancellation): nothing more
          is emitted, and the source is closed.

        The result is a lazy :class:`~streamops.Stream` (iterate it with ``async with
        s.iterate() as it``, or a terminal, so operators upstream that own tasks have a host),
        iterated once (the encoder holds the completion's state).
        """
        return encoded(stream, self)


def openai_response(
    stream: AsyncIterable[ev.BaseEvent],
    *,
    model: str,
    completion_id: str | None = None,
    created: int | None = None,
    include_usage: bool = True,
    heartbeat: float | None = None,
    on_disconnect: DisconnectPolicy = "cancel",
) -> StreamingResponse:
    """A starlette response streaming ``stream`` as an OpenAI ``stream: true`` chat completion
    (:class:`ChunkEncoder`; arguments as for it), with :data:`~streamops.sinks.sse.SSE_HEADERS`.

    When the client goes away, ``on_disconnect="cancel"`` closes the stream at once;
    ``"continue"`` iterates it to its end, discarding the chunks. If the stream (or the
    encoder) raises, the error chunk and ``data: [DONE]`` end the body. ``heartbeat``: seconds
    of silence after which an SSE comment line is sent (``None``: never).

    Raises:
        ValueError: ``heartbeat`` is not positive, or ``on_disconnect`` is not
            ``"cancel"``/``"continue"``.
    """
    from ._asgi import encoder_response
    from .sse import SSE_HEADERS

    encoder = ChunkEncoder(model=model, completion_id=completion_id, created=created, include_usage=include_usage)
    return encoder_response(
        stream, encoder, headers=dict(SSE_HEADERS), heartbeat_interval=heartbeat, on_disconnect=on_disconnect
    )


def completion_object(
    message: Message,
    *,
    model: str,
    completion_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A folded message as one OpenAI ``chat.completion`` object (the ``stream: false``
    response)::

        {"id", "object": "chat.completion", "created", "model",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": str | null,
                      "refusal": str | null, ["reasoning_content": str,]
                      ["tool_calls": [{"id", "type": "function",
                                       "function": {"name", "arguments"}}]]},
                      "logprobs": null, "finish_reason": str | null}],
         "usage": {...}}     # when known (see openai_usage)

    ``content`` is ``null`` when the message has no text and has tool calls (as OpenAI sends
    it), else the text. The finish reason is the message's normalized one, else implied by its
    status (as for the stream).
    """
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": message.text if (message.text or not message.tool_calls) else None,
        "refusal": message.refusal,
    }
    if message.reasoning is not None:
        msg["reasoning_content"] = message.reasoning
    if message.tool_calls:
        msg["tool_calls"] = [
            {"id": c.id or f"call-{i}", "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(message.tool_calls)
        ]
    finish = message.finish_reason or (_STATUS_FINISH.get(message.status) if message.status else None)
    out: dict[str, Any] = {
        "id": completion_id or f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": finish}],
    }
    if _has_usage(message.usage):
        assert message.usage is not None
        out["usage"] = openai_usage(message.usage)
    return out
