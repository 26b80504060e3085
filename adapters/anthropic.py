"""Anthropic Messages streaming (``POST /v1/messages`` with ``"stream": true``) -> streamops events.

Wire format (Anthropic API docs, "Streaming Messages"): a Server-Sent Events body whose events
are named after their payload's ``type``::

    message_start        {"message": {"id", "model", "usage": {...}, ...}}
    content_block_start  {"index": i, "content_block": {"type": "text" | "thinking" | ...}}
    content_block_delta  {"index": i, "delta": {"type": "text_delta" | "thinking_delta" | ...}}
    content_block_stop   {"index": i}
    message_delta        {"delta": {"stop_reason", "stop_sequence"}, "usage": {...}}
    message_stop         {}
    ping                 {}
    error                {"error": {"type": "overloaded_error", "message": "..."}}

Mapping (every event gets ``raw=`` the payload it came from, unless ``keep_raw=False``):

===============================================  ===============================================
wire                                             streamops
===============================================  ===============================================
``message_start``                                :class:`RunStart` (``model``, ``response_id`` =
                                                 ``message.id``), then :class:`UsageEvent`
``text_delta``                                   :class:`TextDelta` (``block_id`` = the block
                                                 index as text, ``"0"``, ``"1"``...)
``thinking_delta``                               :class:`ReasoningDelta`
``signature_delta``                              :class:`ReasoningSignature`
``redacted_thinking`` block start                :class:`RedactedReasoning` (``data``)
``tool_use`` block start                         :class:`ToolCallStart` (``call_id`` = the
                                                 block's ``id``, ``index`` = block index)
``input_json_delta`` of a ``tool_use`` block     :class:`ToolCallDelta` (``partial_json``)
``content_block_stop`` of a ``tool_use`` block   :class:`ToolCallEnd` (``arguments`` = the
                                                 concatenated ``partial_json``; ``"{}"``-style
                                                 ``json.dumps(input)`` if no fragment came)
``server_tool_use`` / ``mcp_tool_use`` block     one :class:`RawEvent` at its stop
                                                 (``event_type`` = block type, ``data`` =
                                                 ``{"type", "id", "name", "input"}``)
``*_tool_result`` and other unknown blocks       :class:`RawEvent` of the ``content_block``
``citations_delta`` and unknown deltas           :class:`RawEvent` of the delta
``message_delta``                                :class:`UsageEvent` (cumulative); the
                                                 ``stop_reason`` is kept for the run end
``message_stop``                                 :class:`ToolCallEnd` for any tool block left
                                                 open, then :class:`RunEnd`
``ping``                                         nothing (a keep-alive with no content)
``error``                                        :class:`ErrorEvent` + failed :class:`RunEnd`
unknown event type                               :class:`RawEvent` (Anthropic's versioning
                                                 policy says new event types may appear)
===============================================  ===============================================

Decisions:

- **Server tools.** ``server_tool_use`` (web search, code execution...), ``mcp_tool_use`` and
  their ``*_tool_result`` blocks are run by Anthropic, not by the client, so they are *not*
  client tool calls: they never produce ``ToolCallStart``/``ToolCallEnd`` (the recorded
  code-execution stream's expected tool calls are empty). They are kept whole as
  :class:`RawEvent`: the server tool call once complete (its ``input`` parsed from the
  streamed JSON when valid, else the text), each result block as it starts.
- **Usage.** ``message_delta`` usage overlays ``message_start`` usage field by field (a later
  non-null value replaces the earlier one); every report is a cumulative :class:`UsageEvent`
  and the run end carries the total. Derivation from Anthropic's raw usage:
  ``input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens``
  (streamops counts the whole prompt, cache included), ``output_tokens = output_tokens``,
  ``cache_read_tokens = cache_read_input_tokens``, ``cache_write_tokens =
  cache_creation_input_tokens``; Anthropic reports no separate reasoning count.
- **End of body.** A body can end right after ``message_stop`` without the final blank line,
  and an SSE decoder that follows the spec then drops that last event. So :meth:`close`
  ends the run normally (``completed``, no error) whenever a ``stop_reason`` was seen; only a
  body with neither a ``stop_reason`` nor an ``error`` is truncated
  (:class:`~streamops.errors.TruncatedStreamError`, or an ``ErrorEvent`` of type
  ``truncated_stream`` with ``on_malformed="event"``).
- **Open tool blocks.** Every :class:`ToolCallStart` gets its :class:`ToolCallEnd` before the
  run end, even when the block never got its ``content_block_stop`` (a ``max_tokens`` cut):
  the arguments are then whatever JSON text arrived, possibly invalid.
- **Malformed input.** A payload that is not a JSON object, lacks a ``type``, has fields of
  the wrong type, or an ``input_json_delta`` for a block never started is reported through
  :meth:`~streamops.adapters._base.ParserBase.malformed` (``StreamFormatError`` or an
  ``ErrorEvent``); everything before it has been emitted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Any, Unpack

import streamops.events as ev
from streamops.errors import StreamFormatError

from ._base import ParserBase, ParserOptions
from ._drive import SSESource, drive_payloads, drive_sse

__all__ = ["MessagesParser", "anthropic_usage", "parse_anthropic_sdk", "parse_anthropic_sse"]

_TEXT = 0
_THINKING = 1
_TOOL = 2
_SERVER_TOOL = 3
_OTHER = 4


_USAGE_INTS = frozenset({"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"})
"""The ``usage`` counts :func:`anthropic_usage` reads (checked as ints by the parser)."""


def _int(v: Any) -> int | None:
    return v if type(v) is int else None


def anthropic_usage(raw: dict[str, Any]) -> ev.Usage:
    """streamops :class:`~streamops.events.Usage` from an Anthropic ``usage`` object.

    ``input_tokens`` counts the whole prompt: Anthropic's ``input_tokens`` plus
    ``cache_read_input_tokens`` plus ``cache_creation_input_tokens``.
    """
    inp = _int(raw.get("input_tokens"))
    read = _int(raw.get("cache_read_input_tokens"))
    write = _int(raw.get("cache_creation_input_tokens"))
    total: int | None = None
    for n in (inp, read, write):
        if n is not None:
            total = n if total is None else total + n
    return ev.Usage(
        input_tokens=total,
        output_tokens=_int(raw.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


class _Block:
    """One open content block."""

    __slots__ = ("bid", "btype", "call_id", "index", "input", "kind", "name", "parts")

    def __init__(self, index: int, kind: int, btype: str) -> None:
        self.index = index
        self.bid = str(index)
        self.kind = kind
        self.btype = btype
        self.call_id = ""
        self.name = ""
        self.parts: list[str] = []
        self.input: Any = None


class MessagesParser(ParserBase):
    """Sans-IO parser of one Anthropic Messages stream (see the module docstring for the
    mapping). Feed raw SSE events with ``feed_json(event_name, data)`` or decoded payloads
    (``event.model_dump()`` of the ``anthropic`` SDK's ``RawMessageStreamEvent``) with
    ``feed_payload(payload)``; call ``close()`` at the end of the body."""

    api = "anthropic"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._blocks: dict[int, _Block] = {}
        self._stop_reason: str | None = None
        self._usage_raw: dict[str, Any] = {}
        self._usage: ev.Usage | None = None

    # ------------------------------------------------------------------ feeding
    def on_error_text(self, data: str) -> None:
        """An ``error`` event whose data is not JSON: close open tool calls, then the base's
        provider error."""
        self._close_tools()
        super().on_error_text(data)

    def on_payload(self, event_type: str | None, payload: Any) -> None:
        """Dispatch one decoded payload on its ``type`` (the SSE event name if it has none)."""
        if type(payload) is not dict:
            self.malformed(f"anthropic: payload is not a JSON object: {str(payload)[:80]!r}", str(payload))
            return
        t = payload.get("type")
        if t is None and event_type != "message":
            t = event_type
        handler = _HANDLERS.get(t) if type(t) is str else None
        try:
            if handler is not None:
                handler(self, payload)
            elif type(t) is str:
                self.unknown(t, payload)
            else:
                self.malformed("anthropic: payload has no type", json.dumps(payload)[:200])
        except StreamFormatError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            self.malformed(
                f"anthropic: malformed {t} payload ({type(exc).__name__}: {exc})",
                json.dumps(payload, default=str)[:200],
            )

    def on_close(self) -> None:
        """End of body: a normal run end if a ``stop_reason`` was seen, else truncation."""
        if self._stop_reason is not None:
            self._finish(None)
            return
        self._close_tools()
        self.malformed(
            "anthropic: the stream ended before message_stop (no stop_reason, no error)",
            truncated=True,
        )

    # ------------------------------------------------------------------ events
    def _ping(self, payload: dict[str, Any]) -> None:
        """A keep-alive: nothing to map."""

    def _error(self, payload: dict[str, Any]) -> None:
        """An ``error`` event: close open tool calls, then a provider error (its ``type`` and
        ``message``)."""
        err = payload.get("error")
        if type(err) is not dict:
            err = {}
        self._close_tools()
        self.provider_error(str(err.get("type") or "error"), str(err.get("message") or "provider error"), raw=payload)

    def _message_start(self, payload: dict[str, Any]) -> None:
        msg = payload["message"]
        self.start_run(payload, msg.get("model"), msg.get("id"), "message.model", "message.id")
        usage = msg.get("usage")
        if type(usage) is dict:
            self._update_usage(usage, payload)

    def _update_usage(self, usage: dict[str, Any], payload: dict[str, Any]) -> None:
        raw = self._usage_raw
        for k, v in usage.items():
            if v is not None:
                if k in _USAGE_INTS and type(v) is not int:
                    self.wrong_type(v, "usage." + k, "int")
                    continue
                raw[k] = v
        self._usage = u = anthropic_usage(raw)
        self.emit(ev.UsageEvent, payload, usage=u, cumulative=True)

    def _message_delta(self, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if type(delta) is dict:
            reason = self.text(delta.get("stop_reason"), "message_delta.delta.stop_reason")
            if reason is not None:
                self._stop_reason = reason
        usage = payload.get("usage")
        if type(usage) is dict:
            self._update_usage(usage, payload)

    def _start(self, payload: dict[str, Any]) -> None:
        index = self.req_int(payload["index"], "content_block_start.index")
        cb = payload["content_block"]
        bt = self.req_text(cb["type"], "content_block.type")
        if index is None or bt is None:
            return
        if bt == "text" or bt == "thinking":
            # the opening content (usually "") is under the key the block's type names
            thinking = bt == "thinking"
            blk = _Block(index, _THINKING if thinking else _TEXT, bt)
            self._blocks[index] = blk
            text = self.text(cb.get(bt), "content_block." + bt)
            if text:
                self.emit(ev.ReasoningDelta if thinking else ev.TextDelta, payload, delta=text, block_id=blk.bid)
            sig = self.text(cb.get("signature"), "content_block.signature") if thinking else None
            if sig:
                self.emit(ev.ReasoningSignature, payload, signature=sig, block_id=blk.bid)
        elif bt == "tool_use":
            call_id = self.req_text(cb["id"], "content_block.id")
            name = self.req_text(cb["name"], "content_block.name")
            if call_id is None or name is None:
                # reported; the block's deltas are kept as RawEvents, no call is made up
                self._blocks[index] = _Block(index, _OTHER, bt)
                return
            blk = _Block(index, _TOOL, bt)
            blk.call_id = call_id
            blk.name = name
            blk.input = cb.get("input")
            self._blocks[index] = blk
            self.emit(ev.ToolCallStart, payload, call_id=blk.call_id, name=blk.name, index=index)
        elif bt == "redacted_thinking":
            blk = _Block(index, _OTHER, bt)
            self._blocks[index] = blk
            data = self.req_text(cb.get("data", ""), "content_block.data")
            if data is not None:
                self.emit(ev.RedactedReasoning, payload, data=data, block_id=blk.bid)
        elif bt.endswith("_tool_use"):
            blk = _Block(index, _SERVER_TOOL, bt)
            blk.call_id = str(cb.get("id", ""))
            blk.name = str(cb.get("name", ""))
            blk.input = cb.get("input")
            self._blocks[index] = blk
        else:
            self._blocks[index] = _Block(index, _OTHER, bt)
            self.emit(ev.RawEvent, payload, event_type=bt, data=cb)

    def _delta(self, payload: dict[str, Any]) -> None:
        index = self.req_int(payload["index"], "content_block_delta.index")
        if index is None:
            return
        d = payload["delta"]
        dt = d["type"]
        blk = self._blocks.get(index)
        if dt == "text_delta":
            text = self.req_text(d["text"], "text_delta.text")
            if text:
                self.emit(ev.TextDelta, payload, delta=text, block_id=str(index) if blk is None else blk.bid)
        elif dt == "input_json_delta":
            part = d["partial_json"]
            if blk is None:
                self.malformed(
                    f"anthropic: input_json_delta for block {index}, which was never started",
                    json.dumps(payload)[:200],
                )
                return
            if self.req_text(part, "input_json_delta.partial_json") is None:
                return
            if blk.kind == _TOOL:
                blk.parts.append(part)
                if part:
                    self.emit(ev.ToolCallDelta, payload, call_id=blk.call_id, delta=part, index=index)
            elif blk.kind == _SERVER_TOOL:
                blk.parts.append(part)
            else:
                self.emit(ev.RawEvent, payload, event_type=dt, data=d)
        elif dt == "thinking_delta":
            text = self.req_text(d["thinking"], "thinking_delta.thinking")
            if text:
                self.emit(ev.ReasoningDelta, payload, delta=text, block_id=str(index) if blk is None else blk.bid)
        elif dt == "signature_delta":
            sig = self.req_text(d["signature"], "signature_delta.signature")
            if sig is not None:
                self.emit(
                    ev.ReasoningSignature, payload, signature=sig, block_id=str(index) if blk is None else blk.bid
                )
        elif self.req_text(dt, "content_block_delta.delta.type") is not None:
            self.emit(ev.RawEvent, payload, event_type=dt, data=d)

    def _stop(self, payload: dict[str, Any]) -> None:
        index = self.req_int(payload["index"], "content_block_stop.index")
        if index is None:
            return
        blk = self._blocks.pop(index, None)
        if blk is None:
            return
        if blk.kind == _TOOL:
            self._end_tool(blk, payload)
        elif blk.kind == _SERVER_TOOL:
            self._end_server_tool(blk, payload)

    def _end_tool(self, blk: _Block, raw: Any) -> None:
        args = "".join(blk.parts)
        if not args and blk.input is not None:
            args = json.dumps(blk.input, ensure_ascii=False)
        self.emit(ev.ToolCallEnd, raw, call_id=blk.call_id, name=blk.name, arguments=args, index=blk.index)

    def _end_server_tool(self, blk: _Block, raw: Any) -> None:
        text = "".join(blk.parts)
        inp: Any = blk.input
        if text:
            try:
                inp = json.loads(text)
            except (ValueError, RecursionError):
                inp = text
        self.emit(
            ev.RawEvent,
            raw,
            event_type=blk.btype,
            data={"type": blk.btype, "id": blk.call_id, "name": blk.name, "input": inp},
        )

    def _close_tools(self) -> None:
        """End every tool block left open (no ``content_block_stop``), in index order."""
        if not self._blocks:
            return
        for index in sorted(self._blocks):
            blk = self._blocks[index]
            if blk.kind == _TOOL:
                self._end_tool(blk, None)
            elif blk.kind == _SERVER_TOOL:
                self._end_server_tool(blk, None)
        self._blocks.clear()

    def _finish(self, payload: Any) -> None:
        self._close_tools()
        self.end_run(raw_finish_reason=self._stop_reason, usage=self._usage, raw=payload)


_HANDLERS: dict[str, Callable[[MessagesParser, dict[str, Any]], None]] = {
    "content_block_delta": MessagesParser._delta,
    "content_block_start": MessagesParser._start,
    "content_block_stop": MessagesParser._stop,
    "ping": MessagesParser._ping,
    "message_start": MessagesParser._message_start,
    "message_delta": MessagesParser._message_delta,
    "message_stop": MessagesParser._finish,
    "error": MessagesParser._error,
}
"""The handler of each wire event ``type`` (any other string type is kept as a
:class:`~streamops.events.RawEvent`)."""


# ---------------------------------------------------------------------- async entry points (see _drive)
def parse_anthropic_sse(chunks: SSESource, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Events of an Anthropic Messages SSE body given as byte chunks split anywhere (an
    ``httpx`` response's ``aiter_raw()``, or a list of ``bytes``).

    ``options`` go to :class:`MessagesParser` (``run_id``, ``agent``, ``keep_raw``,
    ``on_malformed``). With ``on_malformed="raise"`` a
    :class:`~streamops.errors.StreamFormatError` (or
    :class:`~streamops.errors.TruncatedStreamError`) is raised after every event before the
    bad input. An async source is closed (``aclose()``) when the iteration stops early.
    """
    return drive_sse(chunks, "anthropic", options)


def parse_anthropic_sdk(stream: Any, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Events of an ``anthropic`` SDK stream: the ``AsyncStream[RawMessageStreamEvent]`` of
    ``client.messages.create(..., stream=True)``, or the ``AsyncMessageStream`` entered from
    ``client.messages.stream(...)`` (its helper events ``text``, ``thinking``, ``signature``,
    ``input_json``, ``citation`` repeat the wire deltas with snapshots and are skipped).

    Each event becomes a dict with ``model_dump()`` and is fed to :class:`MessagesParser`.
    The SDK stream is closed in ``finally`` (``await stream.close()``), so cancelling or
    leaving the iteration early closes the HTTP response. An ``event: error`` frame makes the
    SDK itself raise ``anthropic.APIStatusError``; it propagates unchanged, after every event
    before it.
    """
    return drive_payloads(stream, "anthropic", options, "anthropic")
