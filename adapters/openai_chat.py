"""OpenAI Chat Completions streams (``POST /v1/chat/completions`` with ``stream: true``) ->
streamops events.

Wire format (OpenAI API reference, "The chat completion chunk object" and "Streaming"): the body
is Server-Sent Events whose ``data`` is one ``chat.completion.chunk`` JSON object per event,
ended by ``data: [DONE]``. Each chunk has ``id``, ``model``, ``choices[]`` (``index``,
``delta``, ``finish_reason``, ``logprobs``) and, with ``stream_options.include_usage``, a last
chunk with ``choices: []`` and ``usage``. OpenAI-compatible providers add fields that are
mapped too: ``delta.reasoning`` / ``delta.reasoning_content`` (Groq, DeepSeek, OpenRouter,
Z.ai, Together), an ``error`` object inside a chunk (OpenRouter), an SSE ``event: error`` frame
whose data is ``{"error": {...}}`` (Groq), Azure's ``prompt_filter_results`` chunk.

Mapping (:class:`ChatCompletionsParser`):

- the first chunk with an ``id``, choices, usage or an error -> :class:`RunStart` (``model``,
  ``response_id``); chunks before it that carry nothing else (Azure's prompt-filter chunk with
  an empty id) become :class:`RawEvent` ``"chunk"`` right after the run start (they are held
  within the detection window ``max_detect``, 1 MiB by default: past it
  :class:`~streamops.errors.LimitExceededError`);
- choice 0 ``delta.reasoning_content`` (DeepSeek, vLLM before 0.11; else ``delta.reasoning``:
  Groq ``reasoning_format: parsed``, OpenRouter, vLLM) -> :class:`ReasoningDelta`,
  ``delta.content`` -> :class:`TextDelta`, ``delta.refusal`` -> :class:`RefusalDelta`; every
  non-empty string is kept, whitespace-only included (``""`` is skipped: it carries nothing);
  ``block_id`` is ``"choice-0"``;
- ``delta.content`` as an array of content parts (Mistral's reasoning models,
  https://docs.mistral.ai/capabilities/reasoning/), in order: ``text`` parts ->
  :class:`TextDelta`, the ``text`` parts inside a ``thinking`` part -> :class:`ReasoningDelta`,
  any other part type -> :class:`RawEvent` ``"delta.content_part"`` (not an error);
- OpenRouter's ``delta.reasoning_details`` (https://openrouter.ai/docs/use-cases/reasoning-tokens):
  ``reasoning.text`` / ``reasoning.summary`` details that repeat ``delta.reasoning`` are
  skipped, and are the reasoning delta when the chunk has no ``delta.reasoning``;
  ``reasoning.encrypted`` and signed details -> :class:`RawEvent` ``"delta.reasoning_details"``;
- choice 0 ``delta.tool_calls[]``, keyed by ``index``: the first fragment with an ``id`` or a
  ``name`` -> :class:`ToolCallStart`; argument fragments -> :class:`ToolCallDelta`; when
  choice 0's ``finish_reason`` arrives (or at ``[DONE]`` / end of body if it never does) ->
  one :class:`ToolCallEnd` per call with ``arguments`` = the concatenated fragments. A call
  whose id never arrives gets the call id ``"call-<index>"`` (the accumulator needs a key);
- a non-null ``usage`` (in the ``choices: []`` chunk or beside choices, as Groq sends it) ->
  :class:`UsageEvent` (``prompt_tokens`` -> ``input_tokens``, ``completion_tokens`` ->
  ``output_tokens``, ``completion_tokens_details.reasoning_tokens``,
  ``prompt_tokens_details.cached_tokens`` (DeepSeek: ``prompt_cache_hit_tokens``) and
  ``prompt_tokens_details.cache_write_tokens`` where present); Groq's ``x_groq.usage`` is not
  read (it duplicates ``usage`` when both exist) and stays in ``raw``;
- ``[DONE]`` or the end of the body -> :class:`RunEnd` with the last ``finish_reason`` of
  choice 0 (raw and normalized; an unknown raw value normalizes to ``None``) and the last
  usage; a body that ends with no finish reason, no ``[DONE]`` and no error is truncated
  (:class:`~streamops.errors.TruncatedStreamError`, or an ``ErrorEvent`` with
  ``on_malformed="event"``);
- an ``error`` object in a chunk or an ``event: error`` frame -> :class:`ErrorEvent`
  (``error_type`` = the error's ``type``, else its ``code``; ``code`` = its ``code``), then a
  failed :class:`RunEnd` that keeps the raw finish reason and usage seen so far (its
  normalized ``finish_reason`` is ``"error"``); everything before the error is kept, and the
  rest of the chunk (deltas, usage) is processed before the error;
- content-filter results, logprobs, annotations' positions, ``system_fingerprint``... stay in
  each event's ``raw`` (the chunk, when ``keep_raw``). A choice-0 chunk that yields no event but
  has content-filter results or logprobs becomes a :class:`RawEvent` ``"choice"`` so they are
  never lost; other unmapped ``delta`` fields with a value (``annotations``,
  ``executed_tools``, the legacy ``function_call``) become a :class:`RawEvent`
  ``"delta.<field>"``. ``delta.role`` and ``delta.channel`` are skipped.

Wire values of the wrong type (``delta.content: 1``, a ``bool`` token count, a numeric tool
call ``id``...) are malformed input: each field copied into an event is checked with the
:class:`~streamops.adapters._base.ParserBase` helpers (``text``, ``opt_int``...), reported
through ``malformed()`` with its path and the type found, and never copied; with
``on_malformed="event"`` that field's event is skipped and the stream goes on.

Multiple choices (``n > 1``): choice 0 is the message (text, reasoning, refusal, tool calls,
finish reason). Every other choice's chunk is kept whole as a :class:`RawEvent` with
``event_type="choice"`` and ``data`` the choice object (its ``index`` tells which), so other
choices never mix into the accumulated message and are never dropped. Usage covers all choices,
as the provider reports it.

Two ways in: :meth:`ChatCompletionsParser.feed_json` for raw SSE data (the gateway path: one
``json.loads`` and dict lookups per chunk, no pydantic) and ``feed_payload`` for decoded chunks
(``ChatCompletionChunk.model_dump()`` from the official ``openai`` SDK; ``None`` fields are
treated as absent). :func:`parse_chat_sse` and :func:`parse_chat_sdk` are the async entry points.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, ClassVar, Unpack

import streamops.events as ev
from streamops.errors import StreamFormatError

from ._base import IntCheck, ParserBase, ParserOptions, count_at, lenient_int
from ._drive import SSESource, drive_payloads, drive_sse

__all__ = ["ChatCompletionsParser", "chat_usage", "parse_chat_sdk", "parse_chat_sse"]

_KNOWN_DELTA = frozenset(
    {
        "role",
        "content",
        "refusal",
        "reasoning",
        "reasoning_content",
        "reasoning_details",
        "tool_calls",
        "channel",
        "token_id",
    }
)
"""``delta`` fields the parser maps or deliberately skips (``role``, ``channel``,
``token_id``)."""

_BLOCK = "choice-0"


def chat_usage(u: dict[str, Any], num: IntCheck = lenient_int) -> ev.Usage:
    """Map a Chat Completions ``usage`` object to :class:`Usage`.

    ``num(value, where)`` checks each count: by default a value that is not an ``int`` (a
    ``bool`` included) is left out silently; the parser passes its
    :meth:`~streamops.adapters._base.ParserBase.opt_int`, which reports it as malformed input.

    ``prompt_tokens`` -> ``input_tokens``; ``completion_tokens`` -> ``output_tokens``;
    ``completion_tokens_details.reasoning_tokens`` -> ``reasoning_tokens``;
    ``prompt_tokens_details.cached_tokens`` (DeepSeek ``prompt_cache_hit_tokens``, Together
    top-level ``cached_tokens``) -> ``cache_read_tokens``;
    ``prompt_tokens_details.cache_write_tokens`` (OpenRouter) -> ``cache_write_tokens``.
    """
    cached = count_at(u, "prompt_tokens_details.cached_tokens", num, "usage.")
    hit = count_at(u, "prompt_cache_hit_tokens", num, "usage.")  # every count is checked
    top = count_at(u, "cached_tokens", num, "usage.")
    if cached is None:
        cached = hit if hit is not None else top
    return ev.Usage(
        input_tokens=count_at(u, "prompt_tokens", num, "usage."),
        output_tokens=count_at(u, "completion_tokens", num, "usage."),
        reasoning_tokens=count_at(u, "completion_tokens_details.reasoning_tokens", num, "usage."),
        cache_read_tokens=cached,
        cache_write_tokens=count_at(u, "prompt_tokens_details.cache_write_tokens", num, "usage."),
    )


class _Call:
    """State of one streamed tool call of choice 0."""

    __slots__ = ("call_id", "ended", "index", "name", "parts", "started")

    def __init__(self, index: int) -> None:
        self.index = index
        self.call_id = ""
        self.name = ""
        self.parts: list[str] = []
        self.started = False
        self.ended = False


class ChatCompletionsParser(ParserBase):
    """Sans-IO parser of an OpenAI Chat Completions stream (see the module docstring for the
    wire format and the mapping).

    Feed it with ``feed_json(event_type, data)`` (one SSE event), or ``feed_payload(chunk)``
    (a decoded chunk), then ``close()`` at the end of the body; each call returns the new
    events. Keyword arguments: ``run_id``, ``agent``, ``keep_raw`` (put each chunk in the
    events' ``raw``), ``on_malformed`` (``"raise"`` or ``"event"``).
    """

    api: ClassVar[str] = "openai-chat"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._started = False
        self._pending: list[Any] = []
        self._calls: dict[int, _Call] = {}
        self._last_call: _Call | None = None
        self._finish_raw: str | None = None
        self._usage: ev.Usage | None = None
        self._done = False

    # ------------------------------------------------------------------ payloads
    def on_payload(self, event_type: str | None, payload: Any) -> None:
        """Map one chunk (or an ``event: error`` frame's payload)."""
        if type(payload) is not dict:
            self.malformed(
                f"chat completion chunk is not a JSON object ({self.api}): {type(payload).__name__}",
                repr(payload),
            )
            return
        try:
            self._chunk(event_type, payload)
        except StreamFormatError:
            raise
        except (AttributeError, TypeError, ValueError) as exc:
            self.malformed(f"chat completion chunk of the wrong shape ({self.api}): {exc}", repr(payload))

    def _chunk(self, event_type: str | None, payload: dict[str, Any]) -> None:
        err = payload.get("error")
        choices = payload.get("choices")
        usage = payload.get("usage")
        if not self._started:
            if not (payload.get("id") or choices or usage or err or event_type == "error"):
                self.hold(self._pending, payload)
                return
            self._start(payload)
        if choices:
            for choice in choices:
                if choice.get("index", 0) == 0:
                    self._choice0(choice, payload)
                else:
                    self.unknown("choice", choice)
        elif not usage and not err and event_type != "error":
            self.unknown("chunk", payload)
        if usage:
            u = self._usage = chat_usage(usage, self.opt_int)
            self.emit(ev.UsageEvent, payload, usage=u)
        if err or event_type == "error":
            self._error(err if err is not None else payload, payload)

    def _start(self, payload: dict[str, Any]) -> None:
        self._started = True
        self.start_run(payload, payload.get("model"), payload.get("id"), "model", "id")
        if self._pending:
            for p in self._pending:
                self.unknown("chunk", p)
            self._pending = []

    def _choice0(self, choice: dict[str, Any], payload: dict[str, Any]) -> None:
        seq0 = self.seq
        delta = choice.get("delta")
        if delta:
            emit = self.emit
            text = self.text
            r = text(delta.get("reasoning_content"), "choices[0].delta.reasoning_content") or text(
                delta.get("reasoning"), "choices[0].delta.reasoning"
            )
            if r:
                emit(ev.ReasoningDelta, payload, delta=r, block_id=_BLOCK)
            content = delta.get("content")
            if type(content) is list:
                self._content_parts(content, payload)
            else:
                c = text(content, "choices[0].delta.content")
                if c:
                    emit(ev.TextDelta, payload, delta=c, block_id=_BLOCK)
            rf = text(delta.get("refusal"), "choices[0].delta.refusal")
            if rf:
                emit(ev.RefusalDelta, payload, delta=rf, block_id=_BLOCK)
            tcs = delta.get("tool_calls")
            if tcs:
                self._tool_calls(tcs, payload)
            for key in delta:
                if key == "reasoning_details":
                    self._reasoning_details(delta[key], r, payload)
                elif key not in _KNOWN_DELTA:
                    self._other_delta_field(key, delta[key])
        fr = self.text(choice.get("finish_reason"), "choices[0].finish_reason")
        if fr is not None:
            self._finish_raw = fr
            self._end_calls()
        if self.seq == seq0 and (choice.get("content_filter_results") or choice.get("logprobs")):
            self.unknown("choice", choice)

    def _other_delta_field(self, key: str, value: Any) -> None:
        if value is None or value == [] or value == {}:
            return
        self.unknown("delta." + key, value)

    def _content_parts(self, parts: list[Any], payload: dict[str, Any]) -> None:
        """``delta.content`` as an array of content parts (Mistral's reasoning models), in
        order: ``{"type": "text", "text"}`` -> text delta; ``{"type": "thinking", "thinking":
        [parts]}`` -> a reasoning delta per ``text`` part inside (a string ``thinking`` is taken
        as the text); any other part type (``reference``...), also inside ``thinking``, -> a
        :class:`RawEvent` ``"delta.content_part"`` holding the part. A part that is not an
        object, or a ``text`` of the wrong type, is malformed."""
        emit = self.emit
        for part in parts:
            if type(part) is not dict:
                self.wrong_type(part, "choices[0].delta.content[]", "content part object")
                continue
            kind = part.get("type")
            if kind == "text":
                t = self.text(part.get("text"), "choices[0].delta.content[].text")
                if t:
                    emit(ev.TextDelta, payload, delta=t, block_id=_BLOCK)
            elif kind == "thinking":
                inner = part.get("thinking")
                if type(inner) is str:
                    if inner:
                        emit(ev.ReasoningDelta, payload, delta=inner, block_id=_BLOCK)
                    continue
                if type(inner) is not list:
                    self.wrong_type(inner, "choices[0].delta.content[].thinking", "list of content parts")
                    continue
                for sub in inner:
                    if type(sub) is dict and sub.get("type") == "text":
                        t = self.text(sub.get("text"), "choices[0].delta.content[].thinking[].text")
                        if t:
                            emit(ev.ReasoningDelta, payload, delta=t, block_id=_BLOCK)
                    else:
                        self.unknown("delta.content_part", sub)
            else:
                self.unknown("delta.content_part", part)

    def _reasoning_details(self, value: Any, reasoning: str | None, payload: dict[str, Any]) -> None:
        """OpenRouter's ``delta.reasoning_details`` (its "Reasoning Tokens" guide): a list of
        ``reasoning.text`` (``text``, ``signature``), ``reasoning.summary`` (``summary``) and
        ``reasoning.encrypted`` (``data``) details. Text and summary details without a signature
        repeat ``delta.reasoning``: skipped when their text is that delta's reasoning, made the
        reasoning delta when the chunk has no ``delta.reasoning``, kept raw when they differ.
        Other details (encrypted, signed) -> one :class:`RawEvent` ``"delta.reasoning_details"``
        holding them (they must go back to the provider in the next turn)."""
        if value is None or value == []:
            return
        if type(value) is not list:
            self.unknown("delta.reasoning_details", value)
            return
        texts: list[str] = []
        rest: list[Any] = []
        for d in value:
            if type(d) is dict and not d.get("signature"):
                kind = d.get("type")
                t = (
                    d.get("text")
                    if kind == "reasoning.text"
                    else d.get("summary")
                    if kind == "reasoning.summary"
                    else None
                )
                if type(t) is str:
                    texts.append(t)
                    continue
            rest.append(d)
        joined = "".join(texts)
        if joined and joined != (reasoning or ""):
            if reasoning:
                rest = value  # not a copy of delta.reasoning: keep everything as sent
            else:
                self.emit(ev.ReasoningDelta, payload, delta=joined, block_id=_BLOCK)
        if rest:
            self.unknown("delta.reasoning_details", rest)

    def _tool_calls(self, tcs: list[dict[str, Any]], payload: dict[str, Any]) -> None:
        calls = self._calls
        text = self.text
        for tc in tcs:
            idx = tc.get("index")
            if idx is not None and type(idx) is not int:
                self.wrong_type(idx, "choices[0].delta.tool_calls[].index", "int")
                continue  # whose call it belongs to is unknown
            tid = text(tc.get("id"), "choices[0].delta.tool_calls[].id")
            if idx is None:
                # Some compatibles omit ``index``: a new id starts a new call, else continue the
                # last one.
                last = self._last_call
                new = last is None or (tid and last.started and tid != last.call_id)
                idx = len(calls) if new or last is None else last.index
            call = calls.get(idx)
            if call is None or call.ended:
                call = calls[idx] = _Call(idx)
            self._last_call = call
            fn = tc.get("function")
            name = text(fn.get("name"), "choices[0].delta.tool_calls[].function.name") if fn else None
            args = text(fn.get("arguments"), "choices[0].delta.tool_calls[].function.arguments") if fn else None
            if not call.started:
                if tid:
                    call.call_id = tid
                if name:
                    call.name = name
                if tid or name:
                    call.started = True
                    if not call.call_id:
                        call.call_id = f"call-{idx}"
                    self.emit(ev.ToolCallStart, payload, call_id=call.call_id, name=call.name, index=idx)
                    if call.parts:  # fragments that came before the id/name
                        self.emit(ev.ToolCallDelta, payload, call_id=call.call_id, delta="".join(call.parts), index=idx)
            elif name and not call.name:
                call.name = name
            if args:
                call.parts.append(args)
                if call.started:
                    self.emit(ev.ToolCallDelta, payload, call_id=call.call_id, delta=args, index=idx)

    def _end_calls(self) -> None:
        for call in self._calls.values():
            if call.ended:
                continue
            call.ended = True
            if not call.started:
                call.started = True
                call.call_id = f"call-{call.index}"
                self.emit(ev.ToolCallStart, None, call_id=call.call_id, name=call.name, index=call.index)
            self.emit(
                ev.ToolCallEnd,
                None,
                call_id=call.call_id,
                name=call.name,
                arguments="".join(call.parts),
                index=call.index,
            )

    def _error(self, err: Any, payload: dict[str, Any]) -> None:
        if type(err) is dict:
            etype = err.get("type")
            code = err.get("code")
            message = err.get("message")
        else:
            etype, code, message = None, None, err
        error_type = etype if etype else (code if code is not None else "provider_error")
        self.emit(
            ev.ErrorEvent,
            payload,
            error_type=str(error_type),
            message=str(message) if message is not None else "provider error",
            code=None if code is None else str(code),
        )
        self.end_run(
            status="failed",
            finish_reason="error",
            raw_finish_reason=self._finish_raw,
            usage=self._usage,
        )

    # ------------------------------------------------------------------ end
    def on_done(self) -> None:
        """``data: [DONE]``: the provider finished the stream."""
        self._done = True
        self.on_close()

    def on_close(self) -> None:
        """End of the body: end open tool calls and the run, or report truncation."""
        if not self._started:
            if not self._pending and not self._done:
                self.malformed(f"stream ended before any chunk ({self.api})", None, truncated=True)
                return
            self._start({})
        if self._finish_raw is None and not self._done:
            self.malformed(f"stream ended without a finish reason or [DONE] ({self.api})", None, truncated=True)
            return
        self._end_calls()
        self.end_run(raw_finish_reason=self._finish_raw, usage=self._usage)


# ---------------------------------------------------------------------- async entry points (see _drive)
def parse_chat_sse(chunks: SSESource, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Parse a Chat Completions SSE body (bytes, in any split) into events.

    ``options`` go to :class:`ChatCompletionsParser` (``run_id``, ``agent``, ``keep_raw``,
    ``on_malformed``). Malformed input raises :class:`~streamops.errors.StreamFormatError`
    (after the events before it) unless ``on_malformed="event"``. Reading stops at ``[DONE]``
    (or an error); the source is then closed.
    """
    return drive_sse(chunks, "openai-chat", options)


def parse_chat_sdk(stream: Any, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Parse the ``openai`` SDK's async chat stream (``await client.chat.completions.create(...,
    stream=True)``) into events.

    Each ``ChatCompletionChunk`` is ``model_dump(warnings=False)``-ed and fed to
    :meth:`ChatCompletionsParser.feed_payload`. The SDK raises ``openai.APIError`` on a chunk
    with an ``error`` field; that becomes an :class:`ErrorEvent` and a failed run end, as on the
    raw path. The SDK stream is closed in ``finally`` (also when the consumer stops early or is
    cancelled), so the HTTP response is released and the provider sees the cancellation.
    """
    return drive_payloads(stream, "openai-chat", options, "openai-chat")
