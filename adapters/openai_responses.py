"""OpenAI Responses streams (``POST /v1/responses`` with ``stream: true``, or a resumed
``GET /v1/responses/{id}?stream=true&starting_after=N``) -> streamops events.

Wire format (OpenAI API reference, "Responses" -> "Streaming events"): Server-Sent Events, each
with ``event: <type>`` and a JSON ``data`` object carrying the same ``type`` and a
``sequence_number``. The lifecycle is ``response.queued`` / ``response.created`` /
``response.in_progress`` (with the ``response`` object), then output items
(``response.output_item.added`` ... ``response.output_item.done``) whose content streams as
deltas, and one terminal event: ``response.completed``, ``response.incomplete`` or
``response.failed``; an ``error`` event reports a stream error. There is no ``[DONE]``.

Mapping (:class:`ResponsesParser`):

- the first payload -> :class:`RunStart` (``model`` and ``response_id`` from its ``response``
  object; a resumed stream that starts mid-way still gets one, with what it carries);
- ``response.output_text.delta`` -> :class:`TextDelta` (``block_id`` =
  ``"<item_id>:<content_index>"``); ``response.refusal.delta`` -> :class:`RefusalDelta`;
- ``response.reasoning_summary_text.delta`` (``block_id`` ``"<item_id>:summary:<summary_index>"``)
  and ``response.reasoning_text.delta`` (``"<item_id>:<content_index>"``) ->
  :class:`ReasoningDelta`; summaries concatenate with no separator;
- ``response.output_item.added`` of a ``function_call`` (or ``custom_tool_call``) item ->
  :class:`ToolCallStart` (``call_id`` = the item's ``call_id``, ``index`` = ``output_index``);
  ``response.function_call_arguments.delta`` (``custom_tool_call_input.delta``) ->
  :class:`ToolCallDelta`; ``response.function_call_arguments.done``
  (``custom_tool_call_input.done``), else the item's ``response.output_item.done``, ->
  :class:`ToolCallEnd` with the whole arguments (a custom tool's free-text ``input``). In a
  resumed stream that joins after a call's item was added, the call's argument fragments are
  held until its ``output_item.done`` (or the terminal event's ``response.output``) gives the
  ``call_id``, so the call is never keyed by the wrong id;
- ``response.output_item.done`` of a ``reasoning`` item with ``encrypted_content`` ->
  :class:`RedactedReasoning` (pass it back unchanged on the next turn);
- ``response.completed`` / ``response.incomplete`` -> :class:`UsageEvent` (``input_tokens``,
  ``output_tokens``, ``output_tokens_details.reasoning_tokens``,
  ``input_tokens_details.cached_tokens`` / ``cache_write_tokens``) and :class:`RunEnd` with
  ``raw_finish_reason`` = the response status (``"completed"``) or, when incomplete,
  ``incomplete_details.reason`` (``"max_output_tokens"``, ``"content_filter"``). A completed
  response whose output has function calls gets the normalized ``finish_reason``
  ``"tool_calls"`` (the raw reason stays ``"completed"``), so agents can test one value
  across providers;
- ``error`` -> :class:`ErrorEvent` (``error_type`` = the error's ``type``, else its ``code``);
  the run end waits for the ``response.failed`` that normally follows (so its status is
  kept as the raw finish reason) and is emitted at the end of the body if none comes;
  ``response.failed`` -> :class:`ErrorEvent` from ``response.error`` (skipped when it repeats
  the ``error`` event's code and message) and a failed :class:`RunEnd` (raw ``"failed"``);
- built-in tool items (``web_search_call``, ``file_search_call``, ``mcp_call``,
  ``mcp_list_tools``, ``tool_search_call``, ``code_interpreter_call``...), their progress events
  (``response.web_search_call.searching``, ``response.mcp_call_arguments.delta``...),
  ``response.output_text.annotation.added`` and every unknown type -> :class:`RawEvent`
  (``event_type`` = the payload type), never dropped.

Skipped because they carry nothing new (the same text, or an empty shell, is in the events
above): ``response.in_progress``/``created``/``queued`` after the first payload,
``response.output_item.added`` / ``.done`` of ``message`` and ``reasoning`` items (but see
encrypted reasoning above) and ``.done`` of ``function_call`` items already ended,
``response.content_part.added`` / ``.done``, ``response.output_text.done``,
``response.refusal.done``, ``response.reasoning_summary_part.added`` / ``.done``,
``response.reasoning_summary_text.done``, ``response.reasoning_text.done``.

Wire values of the wrong type (a numeric ``delta``, a list ``call_id``, a ``bool`` token
count...) are malformed input, reported with the field's path and the type found and never
copied into an event (with ``on_malformed="event"`` that field's event is skipped and the
stream goes on).

A body that ends without a terminal event (``response.completed`` / ``incomplete`` /
``failed``, or an ``error``) is truncated: :class:`~streamops.errors.TruncatedStreamError`, or
an ``ErrorEvent`` with ``on_malformed="event"``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, ClassVar, TypeAlias, Unpack

import streamops.events as ev
from streamops.errors import StreamFormatError

from ._base import IntCheck, ParserBase, ParserOptions, count_at, lenient_int
from ._drive import SSESource, drive_payloads, drive_sse

__all__ = ["ResponsesParser", "parse_responses_sdk", "parse_responses_sse", "responses_usage"]

_TOOL_ITEMS = frozenset({"function_call", "custom_tool_call"})
_SILENT_ITEMS = frozenset({"message", "reasoning"})


def responses_usage(u: dict[str, Any], num: IntCheck = lenient_int) -> ev.Usage:
    """Map a Responses ``usage`` object to :class:`Usage` (``input_tokens``, ``output_tokens``,
    ``output_tokens_details.reasoning_tokens``, ``input_tokens_details.cached_tokens`` and
    ``cache_write_tokens``). ``num(value, where)`` checks each count (see
    :func:`~streamops.adapters.openai_chat.chat_usage`)."""
    return ev.Usage(
        input_tokens=count_at(u, "input_tokens", num, "response.usage."),
        output_tokens=count_at(u, "output_tokens", num, "response.usage."),
        reasoning_tokens=count_at(u, "output_tokens_details.reasoning_tokens", num, "response.usage."),
        cache_read_tokens=count_at(u, "input_tokens_details.cached_tokens", num, "response.usage."),
        cache_write_tokens=count_at(u, "input_tokens_details.cache_write_tokens", num, "response.usage."),
    )


class _Call:
    """State of one function (or custom tool) call, keyed by its item id."""

    __slots__ = ("call_id", "ended", "index", "name", "parts", "started")

    def __init__(self, call_id: str, name: str, index: int | None) -> None:
        self.call_id = call_id
        self.name = name
        self.index = index
        self.parts: list[str] = []
        self.started = False
        self.ended = False


def _err_fields(err: Any) -> tuple[str, str, str | None]:
    if type(err) is not dict:
        return "provider_error", str(err), None
    etype = err.get("type")
    code = err.get("code")
    message = err.get("message")
    error_type = etype if etype else (code if code is not None else "provider_error")
    return (
        str(error_type),
        str(message) if message is not None else "provider error",
        None if code is None else str(code),
    )


class ResponsesParser(ParserBase):
    """Sans-IO parser of an OpenAI Responses stream (see the module docstring for the wire
    format and the mapping).

    Feed it with ``feed_json(event_type, data)`` (one SSE event), or ``feed_payload(event)``
    (a decoded event, e.g. an SDK ``ResponseStreamEvent.model_dump()``), then ``close()`` at
    the end of the body. Keyword arguments: ``run_id``, ``agent``, ``keep_raw``,
    ``on_malformed``.
    """

    api: ClassVar[str] = "openai-responses"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._started = False
        self._calls: dict[str, _Call] = {}
        self._errored: tuple[str, str] | None = None
        self._has_tool_calls = False

    # ------------------------------------------------------------------ payloads
    def on_payload(self, event_type: str | None, payload: Any) -> None:
        """Map one streaming event."""
        if type(payload) is not dict:
            self.malformed(
                f"responses event is not a JSON object ({self.api}): {type(payload).__name__}", repr(payload)
            )
            return
        t = payload.get("type") or event_type
        if not self._started:
            self._start(payload)
        handler = _HANDLERS.get(t) if type(t) is str else None
        try:
            if handler is None:
                self.unknown(t if type(t) is str else None, payload)
            else:
                handler(self, payload)
        except StreamFormatError:
            raise
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            self.malformed(f"responses event {t!r} of the wrong shape ({self.api}): {exc}", repr(payload))

    def _start(self, payload: dict[str, Any]) -> None:
        self._started = True
        resp = payload.get("response")
        if type(resp) is not dict:
            resp = {}
        self.start_run(payload, resp.get("model"), resp.get("id"), "response.model", "response.id")

    def _skip(self, payload: dict[str, Any]) -> None:
        pass

    def _item_added(self, p: dict[str, Any]) -> None:
        item = p["item"]
        itype = item.get("type")
        if itype in _TOOL_ITEMS:
            call = self._item_call(item, p, "response.output_item.added.item")
            if call is None or call.started:
                return  # reported, or a repeated added event
            self._start_call(call, item, p)
            args = self._item_args(item, "response.output_item.added.item")
            if args:
                call.parts.append(args)
                self.emit(ev.ToolCallDelta, p, call_id=call.call_id, delta=args, index=call.index)
        elif itype not in _SILENT_ITEMS:
            self.unknown(p.get("type"), p)

    def _item_key(self, item: dict[str, Any], where: str) -> str | None:
        """A tool item's key: its ``id``, else its ``call_id`` (both checked strings), else
        ``""``; ``None`` (reported) when either has the wrong type."""
        iid = item.get("id")
        cid = item.get("call_id")
        if (iid is None or isinstance(iid, str)) and (cid is None or isinstance(cid, str)):
            return iid or cid or ""
        if iid is not None and not isinstance(iid, str):
            self.wrong_type(iid, where + ".id", "string")
        else:
            self.wrong_type(cid, where + ".call_id", "string")
        return None

    def _item_call(self, item: dict[str, Any], p: dict[str, Any], where: str) -> _Call | None:
        """The call of a tool item of an ``output_item`` event (made on first sight), by
        :meth:`_item_key`; ``None`` when the key is of the wrong type (reported)."""
        key = self._item_key(item, where)
        if key is None:
            return None
        return self._call_for(key, self.opt_int(p.get("output_index"), "output_index"))

    def _item_args(self, item: dict[str, Any], where: str) -> str | None:
        """A tool item's arguments (checked): a function call's ``arguments``, a custom tool
        call's ``input``."""
        key = "arguments" if item.get("type") == "function_call" else "input"
        return self.text(item.get(key), f"{where}.{key}")

    def _call_for(self, item_id: str, index: int | None) -> _Call:
        call = self._calls.get(item_id)
        if call is None:
            self._has_tool_calls = True
            call = self._calls[item_id] = _Call("", "", index)
        return call

    def _start_call(self, call: _Call, item: dict[str, Any] | None, raw: Any) -> None:
        """Emit the call's start once its ``call_id`` is known (from the item; a call whose item
        was never seen, in a resumed stream, falls back to the item id)."""
        if item is not None:
            # call_id / id were checked by _item_key (or come from our own {"id": item_id})
            call.call_id = item.get("call_id") or call.call_id or item.get("id") or ""
            call.name = self.text(item.get("name"), "item.name") or call.name
        if not call.call_id:
            call.call_id = f"call-{call.index}"
        call.started = True
        self.emit(ev.ToolCallStart, raw, call_id=call.call_id, name=call.name, index=call.index)
        if call.parts:  # fragments that came before the call's item (resumed stream)
            self.emit(ev.ToolCallDelta, raw, call_id=call.call_id, delta="".join(call.parts), index=call.index)

    def _args_delta(self, p: dict[str, Any]) -> None:
        item_id = self.text(p.get("item_id"), "item_id")
        index = self.opt_int(p.get("output_index"), "output_index")
        d = self.req_text(p["delta"], "delta")
        if item_id is None and p.get("item_id") is not None:
            return  # reported: whose call it is is unknown
        call = self._call_for(item_id or "", index)
        if d:
            call.parts.append(d)
            if call.started:
                self.emit(ev.ToolCallDelta, p, call_id=call.call_id, delta=d, index=call.index)
        # else: a resumed stream joined after the item was added; wait for its call_id

    def _args_done(self, p: dict[str, Any]) -> None:
        item_id = self.text(p.get("item_id"), "item_id")
        index = self.opt_int(p.get("output_index"), "output_index")
        if item_id is None and p.get("item_id") is not None:
            return  # reported: whose call it is is unknown
        call = self._call_for(item_id or "", index)
        args = p.get("arguments")
        args = self.text(args, "arguments") if args is not None else self.text(p.get("input"), "input")
        if not call.started:  # resumed: the item's output_item.done will say the call_id
            if args is not None:
                call.parts = [args]
            name = self.text(p.get("name"), "name")
            if name:
                call.name = name
            return
        self._end_call(call, args, p)

    def _end_call(self, call: _Call, args: Any, raw: Any) -> None:
        if call.ended:
            return
        call.ended = True
        if type(args) is not str:
            args = "".join(call.parts)
        self.emit(ev.ToolCallEnd, raw, call_id=call.call_id, name=call.name, arguments=args, index=call.index)

    def _item_done(self, p: dict[str, Any]) -> None:
        item = p["item"]
        itype = item.get("type")
        if itype in _TOOL_ITEMS:
            call = self._item_call(item, p, "response.output_item.done.item")
            if call is None:
                return
            if not call.started:
                call.parts = []  # the item holds the whole arguments
                self._start_call(call, item, p)
            elif not call.name:
                name = self.text(item.get("name"), "item.name")
                if name:
                    call.name = name
            self._end_call(call, self._item_args(item, "response.output_item.done.item"), p)
        elif itype == "reasoning":
            enc = self.text(item.get("encrypted_content"), "item.encrypted_content")
            if enc:
                self.emit(ev.RedactedReasoning, p, data=enc, block_id=self.text(item.get("id"), "item.id"))
        elif itype != "message":
            self.unknown(p.get("type"), p)

    def _end_open_calls(self, output: Any) -> None:
        for item_id, call in self._calls.items():
            if call.ended:
                continue
            if not call.started:
                item = None
                if type(output) is list:
                    item = next((o for o in output if type(o) is dict and o.get("id") == item_id), None)
                if item is not None and self._item_key(item, "response.output[]") is None:
                    item = None
                self._start_call(call, item if item is not None else {"id": item_id}, None)
            self._end_call(call, None, None)

    def _completed(self, p: dict[str, Any]) -> None:
        resp = p.get("response") or {}
        self._end_open_calls(resp.get("output"))
        u = resp.get("usage")
        usage = None
        if u:
            usage = responses_usage(u, self.opt_int)
            self.emit(ev.UsageEvent, p, usage=usage)
        status = self.text(resp.get("status"), "response.status") or str(p["type"]).removeprefix("response.")
        raw_reason = status
        finish: ev.FinishReason | None = None
        if status == "incomplete":
            details = resp.get("incomplete_details")
            reason = self.text(details.get("reason"), "response.incomplete_details.reason") if details else None
            if reason:
                raw_reason = reason
        elif status == "completed" and self._has_tool_calls:
            finish = "tool_calls"
        self.end_run(raw_finish_reason=raw_reason, finish_reason=finish, usage=usage, raw=p)

    def _error(self, p: dict[str, Any]) -> None:
        err = p.get("error")
        if err is None:  # documented shape: code/message/param on the event itself
            err = {"code": p.get("code"), "message": p.get("message")}
        etype, message, code = _err_fields(err)
        self._errored = (code or etype, message)
        self.emit(ev.ErrorEvent, p, error_type=etype, message=message, code=code)

    def _failed(self, p: dict[str, Any]) -> None:
        resp = p.get("response") or {}
        err = resp.get("error")
        if err:
            etype, message, code = _err_fields(err)
            if self._errored != (code or etype, message):
                self.emit(ev.ErrorEvent, p, error_type=etype, message=message, code=code)
        elif self._errored is None:
            self.emit(ev.ErrorEvent, p, error_type="response_failed", message="the response failed")
        u = resp.get("usage")
        usage = responses_usage(u, self.opt_int) if u else None
        if usage is not None:
            self.emit(ev.UsageEvent, p, usage=usage)
        self.end_run(status="failed", raw_finish_reason="failed", finish_reason="error", usage=usage, raw=p)

    # ------------------------------------------------------------------ end
    def on_done(self) -> None:
        """A ``[DONE]`` (some proxies add one): the same as the end of the body."""
        self.on_close()

    def on_close(self) -> None:
        """End of the body: a failed run end after an ``error`` event, else truncation."""
        if self._errored is not None:
            self.end_run(status="failed", finish_reason="error")
            return
        self.malformed(
            f"stream ended without response.completed, response.incomplete or response.failed ({self.api})",
            None,
            truncated=True,
        )


_Handler: TypeAlias = Callable[[ResponsesParser, dict[str, Any]], None]


def _delta_handler(
    cls: type[ev.TextDelta | ev.RefusalDelta | ev.ReasoningDelta], etype: str, index_key: str, infix: str = ""
) -> _Handler:
    """The handler of a text-like ``*.delta`` event of type ``etype``: a ``cls`` event of the
    non-empty ``delta``, ``block_id`` ``"<item_id>:<infix><index_key's value>"``. A ``delta``,
    ``item_id`` or index of the wrong type is reported and no event is emitted."""
    w_delta = f"{etype}.delta"
    w_item = f"{etype}.item_id"
    w_index = f"{etype}.{index_key}"

    def handler(self: ResponsesParser, p: dict[str, Any]) -> None:
        d = self.req_text(p["delta"], w_delta)
        if d:
            item_id = p.get("item_id")
            idx = self.req_int(p.get(index_key, 0), w_index)
            if idx is None or (item_id is not None and self.text(item_id, w_item) is None):
                return
            self.emit(cls, p, delta=d, block_id=f"{item_id}:{infix}{idx}")

    return handler


_HANDLERS: dict[str, _Handler] = {
    "response.output_text.delta": _delta_handler(ev.TextDelta, "response.output_text.delta", "content_index"),
    "response.refusal.delta": _delta_handler(ev.RefusalDelta, "response.refusal.delta", "content_index"),
    "response.reasoning_summary_text.delta": _delta_handler(
        ev.ReasoningDelta, "response.reasoning_summary_text.delta", "summary_index", "summary:"
    ),
    "response.reasoning_text.delta": _delta_handler(
        ev.ReasoningDelta, "response.reasoning_text.delta", "content_index"
    ),
    "response.function_call_arguments.delta": ResponsesParser._args_delta,
    "response.function_call_arguments.done": ResponsesParser._args_done,
    "response.custom_tool_call_input.delta": ResponsesParser._args_delta,
    "response.custom_tool_call_input.done": ResponsesParser._args_done,
    "response.output_item.added": ResponsesParser._item_added,
    "response.output_item.done": ResponsesParser._item_done,
    "response.completed": ResponsesParser._completed,
    "response.incomplete": ResponsesParser._completed,
    "response.failed": ResponsesParser._failed,
    "error": ResponsesParser._error,
    "response.error": ResponsesParser._error,
    "response.created": ResponsesParser._skip,
    "response.in_progress": ResponsesParser._skip,
    "response.queued": ResponsesParser._skip,
    "response.content_part.added": ResponsesParser._skip,
    "response.content_part.done": ResponsesParser._skip,
    "response.output_text.done": ResponsesParser._skip,
    "response.refusal.done": ResponsesParser._skip,
    "response.reasoning_summary_part.added": ResponsesParser._skip,
    "response.reasoning_summary_part.done": ResponsesParser._skip,
    "response.reasoning_summary_text.done": ResponsesParser._skip,
    "response.reasoning_text.done": ResponsesParser._skip,
}
"""Payload ``type`` -> handler; any other type becomes a :class:`RawEvent`."""


def parse_responses_sse(chunks: SSESource, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Parse a Responses SSE body (bytes, in any split) into events.

    ``options`` go to :class:`ResponsesParser` (``run_id``, ``agent``, ``keep_raw``,
    ``on_malformed``). Malformed input raises :class:`~streamops.errors.StreamFormatError`
    (after the events before it) unless ``on_malformed="event"``.
    """
    return drive_sse(chunks, "openai-responses", options)


def parse_responses_sdk(stream: Any, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Parse the ``openai`` SDK's async Responses stream (``await client.responses.create(...,
    stream=True)``, or the stream of ``client.responses.stream(...)``) into events.

    Each event is ``model_dump(warnings=False)``-ed (the SDK builds objects without validation,
    so a newer item type must not warn) and fed to :meth:`ResponsesParser.feed_payload`. The SDK
    raises ``openai.APIError`` on an ``error`` event; that becomes an :class:`ErrorEvent` and a
    failed run end, as on the raw path. The SDK stream is closed in ``finally`` (also on early
    exit or cancellation), so the provider sees the cancellation.
    """
    return drive_payloads(stream, "openai-responses", options, "openai-responses")
