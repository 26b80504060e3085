"""Gemini ``streamGenerateContent?alt=sse`` -> streamops events.

Wire format (Gemini API docs, "Generating content" / ``GenerateContentResponse``; Vertex AI
docs for ``FunctionCall.partialArgs``): an SSE body of unnamed events, each ``data:`` a whole
``GenerateContentResponse`` chunk::

    {"candidates": [{"content": {"role": "model", "parts": [...]},
                     "finishReason": "STOP", "index": 0, "groundingMetadata": {...}}],
     "usageMetadata": {"promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
                       "cachedContentTokenCount", "toolUsePromptTokenCount", "totalTokenCount"},
     "promptFeedback": {"blockReason": ...}, "modelVersion": "...", "responseId": "..."}

The body has no terminator: it simply ends (often with CRLF line ends). Only candidate 0 is
followed (``candidateCount`` > 1 is not streamed by streamops).

Mapping (every event gets ``raw=`` its chunk unless ``keep_raw=False``):

=======================================  ======================================================
wire                                     streamops
=======================================  ======================================================
first chunk                              :class:`RunStart` (``model`` = ``modelVersion``,
                                         ``response_id`` = ``responseId``)
part ``text``                            :class:`TextDelta`
part ``text`` with ``thought: true``     :class:`ReasoningDelta`
part ``thoughtSignature``                :class:`ReasoningSignature` (after the part's content;
                                         standard base64, also from an SDK dump)
part ``functionCall`` {name, args, id}   :class:`ToolCallStart` + :class:`ToolCallEnd`,
                                         ``arguments = json.dumps(args, ensure_ascii=False)``
streamed ``functionCall.partialArgs``    :class:`ToolCallStart` at the first piece, one
                                         :class:`ToolCallEnd` with the assembled arguments
other parts (``executableCode``...)      :class:`RawEvent` (``event_type`` = the part's key)
``groundingMetadata``                    :class:`RawEvent` (``event_type="groundingMetadata"``)
``usageMetadata``                        :class:`UsageEvent` (cumulative), when it changed
``finishReason``                         kept; :class:`RunEnd` at the end of the body
``promptFeedback.blockReason``           kept as the raw finish reason (prompt blocked)
``{"error": {...}}``                     :class:`ErrorEvent` + failed :class:`RunEnd`
=======================================  ======================================================

Decisions:

- **Call ids.** Gemini's ``functionCall.id`` is used when given. When it is absent (the
  Gemini API usually omits it; Vertex too), a stable id is made up: ``f"{name}-{n}"``, where
  ``n`` is the call's position among this response's calls (0, 1, ...). It is unique within
  the run, so tool results can be keyed by it; :attr:`GeminiParser.synthesized_ids` lists the
  ids that were made up (the recorded expected.json shows ``null`` for those).
- **Streamed arguments** (Vertex ``streamFunctionCallArguments``): a ``functionCall`` with a
  ``name`` starts a call; following ``functionCall`` parts without a name carry
  ``partialArgs`` (``jsonPath`` like ``$.recipe.steps[1]``, a ``stringValue`` /
  ``numberValue`` / ``boolValue`` / ``nullValue``, ``willContinue``), and the call ends at
  the first ``functionCall`` without ``willContinue``. Pieces of one string arrive under the
  same path while the previous piece had ``willContinue: true`` and are appended; other
  values are set at their path (objects and arrays created on the way, keys kept in arrival
  order). The arguments are ``json.dumps`` of the assembled object, so no
  :class:`ToolCallDelta` is emitted: JSON text built from path updates cannot be streamed as
  fragments that are guaranteed to concatenate to the final text.
- **Usage.** Each ``usageMetadata`` is a snapshot of the totals so far; a
  :class:`UsageEvent` is emitted when the derived figures change. Derivation:
  ``input_tokens = promptTokenCount`` (it already includes ``cachedContentTokenCount``),
  ``output_tokens = candidatesTokenCount + thoughtsTokenCount`` (streamops output includes
  reasoning, as OpenAI's ``completion_tokens`` does), ``reasoning_tokens =
  thoughtsTokenCount``, ``cache_read_tokens = cachedContentTokenCount``.
  ``toolUsePromptTokenCount`` (tokens of built-in tool results, e.g. Google Search
  grounding, fed back to the model) is in neither: it stays in the raw chunk, and
  ``input_tokens + output_tokens + toolUsePromptTokenCount == totalTokenCount`` on every
  recorded stream.
- **Wire types.** A copied value of the wrong type (a numeric ``text``, a list
  ``finishReason``, a string token count, non-object ``args``...) is malformed input, reported
  with the field's path and the type found and never copied into an event (with
  ``on_malformed="event"`` that part or field is skipped and the stream goes on).
- **End of body.** The run ends at :meth:`close` (chunks may follow the one with
  ``finishReason``): normally if a ``finishReason`` (or ``blockReason``) was seen, else the
  body is truncated (:class:`~streamops.errors.TruncatedStreamError`, or an ``ErrorEvent``
  ``truncated_stream`` with ``on_malformed="event"``). A streamed call still open then gets
  its :class:`ToolCallEnd` first.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncGenerator
from typing import Any, Unpack

import streamops.events as ev
from streamops.errors import StreamFormatError

from ._base import IntCheck, ParserBase, ParserOptions, lenient_int
from ._drive import SSESource, drive_payloads, drive_sse

__all__ = ["GeminiParser", "gemini_usage", "parse_gemini_sdk", "parse_gemini_sse"]

_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]")


_B64_STANDARD = str.maketrans("-_", "+/")
"""URL-safe -> standard base64 alphabet. google-genai holds ``thoughtSignature`` as ``bytes``
and its ``model_dump(mode="json")`` encodes them URL-safe (pydantic's ``ser_json_bytes="base64"``);
the wire (proto3 JSON) has standard base64, so a signature is the same from either source."""

_PATHS: dict[str, list[str | int]] = {}
"""Parsed ``jsonPath`` strings (bounded cache shared by all parsers; lists are never mutated)."""


def gemini_usage(meta: dict[str, Any], num: IntCheck = lenient_int) -> ev.Usage | None:
    """streamops :class:`~streamops.events.Usage` from a Gemini ``usageMetadata`` object, or
    ``None`` when it holds no token count (Vertex's first chunk has only ``trafficType``).
    ``num(value, where)`` checks each count (see
    :func:`~streamops.adapters.openai_chat.chat_usage`)."""
    prompt = num(meta.get("promptTokenCount"), "usageMetadata.promptTokenCount")
    cand = num(meta.get("candidatesTokenCount"), "usageMetadata.candidatesTokenCount")
    thoughts = num(meta.get("thoughtsTokenCount"), "usageMetadata.thoughtsTokenCount")
    cached = num(meta.get("cachedContentTokenCount"), "usageMetadata.cachedContentTokenCount")
    if prompt is None and cand is None and thoughts is None:
        return None
    inp = prompt
    out = None if cand is None and thoughts is None else (cand or 0) + (thoughts or 0)
    return ev.Usage(input_tokens=inp, output_tokens=out, reasoning_tokens=thoughts, cache_read_tokens=cached)


def _parse_path(path: str) -> list[str | int]:
    """``$.a.b[2]['c d']`` -> ``["a", "b", 2, "c d"]``."""
    if not path.startswith("$"):
        raise ValueError(f"jsonPath does not start with $: {path!r}")
    tokens: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f"bad jsonPath {path!r} at {pos}")
        key, idx, sq, dq = m.groups()
        if idx is not None:
            tokens.append(int(idx))
        elif key is not None:
            tokens.append(key)
        else:
            raw = sq if sq is not None else dq
            tokens.append(re.sub(r"\\(.)", r"\1", raw))
        pos = m.end()
    return tokens


class _Call:
    """A function call whose arguments are being streamed as ``partialArgs``."""

    __slots__ = ("args", "call_id", "index", "name", "open_paths")

    def __init__(self, call_id: str, name: str, index: int, args: Any) -> None:
        self.call_id = call_id
        self.name = name
        self.index = index
        self.args: Any = args
        self.open_paths: set[str] = set()


class GeminiParser(ParserBase):
    """Sans-IO parser of one Gemini ``streamGenerateContent`` stream (see the module docstring
    for the mapping). Feed SSE ``data`` with ``feed_json(None, data)`` or decoded chunks (REST
    camelCase dicts, e.g. google-genai's ``chunk.model_dump(mode="json", by_alias=True,
    exclude_none=True)``) with ``feed_payload(chunk)``; call ``close()`` at the end."""

    api = "gemini"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._started = False
        self._finish: str | None = None
        self._usage: ev.Usage | None = None
        self._ncalls = 0
        self._call: _Call | None = None
        self._block_kind = ""
        self._block_id = ""
        self._nblocks = 0
        self.synthesized_ids: list[str] = []
        """Call ids made up because Gemini gave none (``f"{name}-{n}"``)."""

    # ------------------------------------------------------------------ feeding
    def on_payload(self, event_type: str | None, payload: Any) -> None:
        """Handle one ``GenerateContentResponse`` chunk (or an ``error`` object)."""
        if type(payload) is not dict:
            self.malformed(f"gemini: chunk is not a JSON object: {str(payload)[:80]!r}", str(payload))
            return
        try:
            self._chunk(payload)
        except StreamFormatError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            self.malformed(
                f"gemini: malformed chunk ({type(exc).__name__}: {exc})",
                json.dumps(payload, default=str)[:200],
            )

    def on_close(self) -> None:
        """End of body: a normal run end if a finish reason was seen, else truncation."""
        self._end_call(None)
        if self._finish is not None:
            self.end_run(raw_finish_reason=self._finish, usage=self._usage)
            return
        self.malformed("gemini: the stream ended without a finishReason", truncated=True)

    # ------------------------------------------------------------------ chunks
    def _chunk(self, payload: dict[str, Any]) -> None:
        err = payload.get("error")
        if err is not None:
            self._error(err, payload)
            return
        if not self._started:
            self._started = True
            self.start_run(
                payload, payload.get("modelVersion"), payload.get("responseId"), "modelVersion", "responseId"
            )
        candidates = payload.get("candidates")
        if candidates:
            cand = candidates[0]
            if len(candidates) > 1 and cand.get("index", 0) != 0:
                cand = next((c for c in candidates if c.get("index", 0) == 0), cand)
            content = cand.get("content")
            if content:
                parts = content.get("parts")
                if parts:
                    for part in parts:
                        self._part(part, payload)
            grounding = cand.get("groundingMetadata")
            if grounding is not None:
                self.emit(ev.RawEvent, payload, event_type="groundingMetadata", data=grounding)
            reason = self.text(cand.get("finishReason"), "candidates[0].finishReason")
            if reason is not None:
                self._finish = reason
                self._end_call(payload)
        else:
            feedback = payload.get("promptFeedback")
            reason = self.text(feedback.get("blockReason"), "promptFeedback.blockReason") if feedback else None
            if reason is not None:
                self._finish = reason
        meta = payload.get("usageMetadata")
        if meta:
            usage = gemini_usage(meta, self.opt_int)
            if usage is not None and usage != self._usage:
                self._usage = usage
                self.emit(ev.UsageEvent, payload, usage=usage, cumulative=True)

    def _error(self, err: Any, payload: dict[str, Any]) -> None:
        if type(err) is not dict:
            err = {"message": str(err)}
        code = err.get("code")
        status = err.get("status")
        self._end_call(None)
        self.provider_error(
            str(status or code or "error"),
            str(err.get("message") or "provider error"),
            code=None if code is None else str(code),
            raw=payload,
        )

    def _block(self, kind: str) -> str:
        if kind != self._block_kind:
            self._block_kind = kind
            self._block_id = f"{kind}-{self._nblocks}"
            self._nblocks += 1
        return self._block_id

    def _part(self, part: dict[str, Any], payload: dict[str, Any]) -> None:
        bid = ""
        text = part.get("text")
        if text is not None:
            text = self.text(text, "candidates[0].content.parts[].text")  # None: reported, skipped
            if part.get("thought"):
                bid = self._block("reasoning")
                if text:
                    self.emit(ev.ReasoningDelta, payload, delta=text, block_id=bid)
            else:
                bid = self._block("text")
                if text:
                    self.emit(ev.TextDelta, payload, delta=text, block_id=bid)
        else:
            fc = part.get("functionCall")
            if fc is not None:
                bid = self._function_call(fc, payload)
            else:
                for key, value in part.items():
                    if key not in ("thoughtSignature", "thought"):
                        bid = self._block(key)
                        self.emit(ev.RawEvent, payload, event_type=key, data=value)
                        break
        sig = self.text(part.get("thoughtSignature"), "candidates[0].content.parts[].thoughtSignature")
        if sig:
            sig = sig.translate(_B64_STANDARD)  # google-genai dumps bytes URL-safe (- _)
            self.emit(ev.ReasoningSignature, payload, signature=sig, block_id=bid or self._block("signature"))

    # ------------------------------------------------------------------ function calls
    def _function_call(self, fc: dict[str, Any], payload: dict[str, Any]) -> str:
        name = fc.get("name")
        if name is not None and self.text(name, "functionCall.name") is None:
            return ""  # reported
        call = self._call
        if name:
            args = fc.get("args")
            if not (args is None or type(args) is dict):
                self.wrong_type(args, "functionCall.args", "object")
                return ""
            if call is not None:
                self._end_call(payload)
            n = self._ncalls
            self._ncalls += 1
            call_id = self.text(fc.get("id"), "functionCall.id")  # wrong type: reported, made up
            if not call_id:
                call_id = f"{name}-{n}"
                self.synthesized_ids.append(call_id)
            self._block_kind = ""
            self.emit(ev.ToolCallStart, payload, call_id=call_id, name=name, index=n)
            partial = fc.get("partialArgs")
            if not fc.get("willContinue") and not partial:
                arguments = json.dumps({} if args is None else args, ensure_ascii=False)
                self.emit(ev.ToolCallEnd, payload, call_id=call_id, name=name, arguments=arguments, index=n)
                return call_id
            call = self._call = _Call(call_id, name, n, {} if args is None else args)
        elif call is None:
            self.malformed(
                "gemini: functionCall without a name and no streamed call open",
                json.dumps(fc, default=str)[:200],
            )
            return ""
        partial = fc.get("partialArgs")
        if partial:
            for arg in partial:
                self._apply(call, arg)
        if not fc.get("willContinue"):
            self._end_call(payload)
        return call.call_id

    def _apply(self, call: _Call, arg: dict[str, Any]) -> None:
        path = self.req_text(arg["jsonPath"], "functionCall.partialArgs[].jsonPath")
        if path is None:
            return
        tokens = _PATHS.get(path)
        if tokens is None:
            if len(_PATHS) >= 4096:
                _PATHS.clear()
            tokens = _PATHS[path] = _parse_path(path)
        appending = path in call.open_paths
        if "stringValue" in arg:
            value: Any = self.req_text(arg["stringValue"], "functionCall.partialArgs[].stringValue")
            if value is None:
                return
        elif "numberValue" in arg:
            value = arg["numberValue"]
            if type(value) is float:
                if value.is_integer():
                    value = int(value)
            elif type(value) is not int:
                self.wrong_type(value, "functionCall.partialArgs[].numberValue", "number")
                return
            appending = False
        elif "boolValue" in arg:
            value = arg["boolValue"]
            if type(value) is not bool:
                self.wrong_type(value, "functionCall.partialArgs[].boolValue", "bool")
                return
            appending = False
        elif "nullValue" in arg:
            value = None
            appending = False
        else:
            raise KeyError("partialArgs entry has no value")
        if arg.get("willContinue"):
            call.open_paths.add(path)
        else:
            call.open_paths.discard(path)
        if not tokens:
            call.args = value
            return
        node = call.args
        for tok, nxt in itertools.pairwise(tokens):
            node = _child(node, tok, {} if type(nxt) is str else [])
        last = tokens[-1]
        if type(last) is int:
            if type(node) is not list:
                raise TypeError(f"jsonPath {path!r} indexes a non-array")
            while len(node) <= last:
                node.append(None)
            node[last] = node[last] + value if appending and type(node[last]) is str else value
        else:
            if type(node) is not dict:
                raise TypeError(f"jsonPath {path!r} keys a non-object")
            old = node.get(last)
            node[last] = old + value if appending and type(old) is str else value

    def _end_call(self, payload: Any) -> None:
        call = self._call
        if call is None:
            return
        self._call = None
        self.emit(
            ev.ToolCallEnd,
            payload,
            call_id=call.call_id,
            name=call.name,
            arguments=json.dumps(call.args, ensure_ascii=False),
            index=call.index,
        )


def _child(node: Any, tok: str | int, empty: Any) -> Any:
    """The child of ``node`` at ``tok``, created as ``empty`` when missing."""
    if type(tok) is int:
        if type(node) is not list:
            raise TypeError("jsonPath indexes a non-array")
        while len(node) <= tok:
            node.append(None)
        if node[tok] is None:
            node[tok] = empty
        return node[tok]
    if type(node) is not dict:
        raise TypeError("jsonPath keys a non-object")
    child = node.get(tok)
    if child is None:
        child = node[tok] = empty
    return child


# ---------------------------------------------------------------------- async entry points (see _drive)
def parse_gemini_sse(chunks: SSESource, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Events of a Gemini ``streamGenerateContent?alt=sse`` body given as byte chunks split
    anywhere. ``options`` go to :class:`GeminiParser`. With ``on_malformed="raise"`` a
    :class:`~streamops.errors.StreamFormatError` (or
    :class:`~streamops.errors.TruncatedStreamError`) is raised after every event before the
    bad input. An async source is closed (``aclose()``) when the iteration stops early."""
    return drive_sse(chunks, "gemini", options)


def parse_gemini_sdk(stream: Any, **options: Unpack[ParserOptions]) -> AsyncGenerator[ev.Event, None]:
    """Events of a google-genai stream (``await client.aio.models.generate_content_stream(...)``)
    or its sync ``client.models.generate_content_stream(...)``, or any iterable of chunk dicts.
    Each SDK chunk becomes a camelCase dict with ``model_dump(mode="json", by_alias=True,
    exclude_none=True)``; the events are those of the raw body but for ``raw`` (the SDK drops
    fields it does not know, e.g. ``usageMetadata.serviceTier``). The stream is closed in
    ``finally`` when it has ``aclose()``/``close()``."""
    return drive_payloads(stream, "gemini", options, "gemini")
