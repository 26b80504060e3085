"""What every provider parser shares: the envelope, the options (:class:`ParserOptions`),
finish-reason normalization and the policy for malformed input. The async drivers that feed a
parser are in :mod:`streamops.adapters._drive`."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeAlias, TypedDict, TypeVar, cast

import streamops.events as ev
from streamops.errors import LimitExceededError, StreamFormatError, TruncatedStreamError
from streamops.operators.text import ThinkTagSplitter

__all__ = [
    "DEFAULT_MAX_DETECT",
    "IntCheck",
    "OnMalformed",
    "PARSERS",
    "ParserBase",
    "ParserOptions",
    "count_at",
    "lenient_int",
    "normalize_finish_reason",
    "type_name",
]

E = TypeVar("E", bound=ev.BaseEvent)

OnMalformed = Literal["raise", "event"]
"""What a parser does with malformed input: ``"raise"`` a
:class:`~streamops.errors.StreamFormatError` (after emitting everything before it), or emit an
:class:`~streamops.events.ErrorEvent` (``error_type`` ``"malformed_stream"`` or
``"truncated_stream"``) and go on."""


class ParserOptions(TypedDict, total=False):
    """The keyword options of every parser, and of every function that makes one
    (``parse_sse``, ``parse_chat_sse``, ``SSEParser``...). Subclasses of :class:`ParserBase`
    take them as ``**options: Unpack[ParserOptions]`` and pass them on unchanged."""

    run_id: str | None
    """The ``run_id`` of every event (default ``None``: a fresh ``uuid4().hex``)."""
    agent: str
    """The ``agent`` of every event (default ``""``)."""
    parent_run_id: str
    """The ``parent_run_id`` of every event: the run that started this one (default ``""``)."""
    keep_raw: bool
    """Put the wire payload each event came from in its ``raw`` (default ``True``)."""
    on_malformed: OnMalformed
    """What to do with malformed input (default ``"raise"``)."""
    think_tags: bool
    """Split reasoning the model writes inline in its text as ``<think>...</think>``
    (DeepSeek-R1 distills, Qwen3) into reasoning deltas, as
    :func:`streamops.think_tags` does (default ``False``)."""
    max_line: int
    """Raw SSE bodies: the longest line the SSE decoder holds, in characters (default
    :data:`streamops.sse.DEFAULT_MAX_LINE`, 16 MiB); past it
    :class:`~streamops.errors.LimitExceededError`."""
    max_event: int
    """Raw SSE bodies: the most ``data`` one SSE event may carry, in characters (default
    :data:`streamops.sse.DEFAULT_MAX_EVENT`, 16 MiB); past it ``LimitExceededError``."""
    max_detect: int
    """The detection window: the most input held before it can be used, in characters of SSE
    data, each held event or chunk counting 100 more for its bookkeeping (default
    :data:`DEFAULT_MAX_DETECT`, 1 MiB); past it ``LimitExceededError``. It bounds the events
    held by ``api="auto"`` before one shows the API, and the chunks a parser holds before
    the run can start (OpenAI Chat: chunks with no ``id``, choices, usage or error)."""


DEFAULT_MAX_DETECT = 1024 * 1024
"""Default detection window (``max_detect``): 1 MiB. A real body shows its API in its first
event with data, or after a few that tell nothing (an ``error`` payload, ``[DONE]``); held
events are replayed to the parser once it is known, so they are the only thing held."""


_FINISH: dict[str, ev.FinishReason] = {
    # OpenAI Chat Completions and compatibles
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    # Anthropic Messages stop_reason
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
    # Gemini finishReason
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    # OpenAI Responses status / incomplete_details.reason
    "completed": "stop",
    "failed": "error",
    "cancelled": "cancelled",
    "max_output_tokens": "length",
    # generic
    "error": "error",
}


def normalize_finish_reason(raw: str | None) -> ev.FinishReason | None:
    """Map a provider's finish/stop reason to stop | length | tool_calls | content_filter |
    error | cancelled. An unknown or missing value gives ``None`` (never an invented reason).

    Sources: OpenAI Chat ``finish_reason``, Anthropic ``stop_reason``, Gemini ``finishReason``,
    OpenAI Responses ``status`` and ``incomplete_details.reason``.
    """
    if raw is None:
        return None
    return _FINISH.get(raw)


_TYPE_NAMES: dict[type, str] = {
    str: "string",
    bool: "bool",
    int: "int",
    float: "float",
    list: "list",
    dict: "dict",
    type(None): "null",
}


def type_name(value: Any) -> str:
    """The JSON-ish name of ``value``'s type, for messages: ``string``, ``int``, ``float``,
    ``bool``, ``list``, ``dict``, ``null`` (else the Python type name)."""
    t = type(value)
    return _TYPE_NAMES.get(t) or t.__name__


IntCheck: TypeAlias = Callable[[Any, str], "int | None"]
"""``(value, where) -> int | None``: :func:`lenient_int` or a parser's
:meth:`ParserBase.opt_int`."""


def lenient_int(value: Any, where: str) -> int | None:
    """``value`` if it is an ``int`` (not a ``bool``), else ``None``, silently: the checker the
    public ``*_usage()`` mappers use by default (parsers pass their reporting
    :meth:`ParserBase.opt_int` instead)."""
    return value if type(value) is int else None


def count_at(obj: dict[str, Any], path: str, num: IntCheck, prefix: str) -> int | None:
    """The token count at the dotted ``path`` of a usage object (``"prompt_tokens"``,
    ``"prompt_tokens_details.cached_tokens"``), checked by ``num`` with ``where`` = ``prefix +
    path``; ``None`` when an object on the way is absent, null or empty. The key and the path
    reported are written once, so they cannot disagree."""
    *outer, key = path.split(".")
    node: Any = obj
    for name in outer:
        node = node.get(name)
        if not node:
            return None
    return num(node.get(key), prefix + path)


def status_for(finish: ev.FinishReason | None) -> ev.RunStatus:
    """The run status a finish reason implies."""
    if finish == "length":
        return "length"
    if finish == "error":
        return "failed"
    if finish == "cancelled":
        return "cancelled"
    return "completed"


_DELTA_CLASSES = (ev.TextDelta, ev.ReasoningDelta, ev.RefusalDelta, ev.ToolCallDelta)
_NO_KEY = object()
_SURROGATE = re.compile("[\ud800-\udfff]")

PARSERS: dict[str, type[ParserBase]] = {}
"""The sans-IO parser class of each wire API, by API name (``"openai-chat"`` ->
``ChatCompletionsParser``...). Filled by the package (``streamops.adapters``), which imports
every parser module; :func:`~streamops.adapters.parser_for` looks parsers up here."""


class ParserBase:
    """Sans-IO base of the provider parsers.

    Subclasses implement ``on_payload(event_type, payload)`` for one decoded JSON payload
    (``event_type`` is the SSE ``event:`` name, or ``None``) and ``on_close()`` for the end of
    the body; they call :meth:`emit` to build events. The envelope (``run_id``, ``agent``,
    monotonic ``seq``, ``ts``, ``raw``, ``parent_run_id``) is filled in here. The constructor takes the
    :class:`ParserOptions` (this is where their defaults live); a subclass that keeps state
    declares ``__init__(self, **options: Unpack[ParserOptions])`` and calls
    ``super().__init__(**options)``.
    """

    api: ClassVar[str] = ""

    def __init__(
        self,
        *,
        run_id: str | None = None,
        agent: str = "",
        parent_run_id: str = "",
        keep_raw: bool = True,
        on_malformed: OnMalformed = "raise",
        think_tags: bool = False,
        max_line: int | None = None,
        max_event: int | None = None,
        max_detect: int | None = None,
    ) -> None:
        # max_line, max_event: read by the SSE feeder (adapters._sansio.SSEParser), accepted
        # here so that every parser takes the same options.
        self.max_detect = max_detect or DEFAULT_MAX_DETECT
        self._held_size = 0  # the detection window used by held chunks
        self._wire_len = 0  # the length of the SSE data being fed (0 for a decoded payload)
        self.run_id = run_id if run_id is not None else uuid.uuid4().hex
        self._think = ThinkTagSplitter() if think_tags else None
        self._think_src: tuple[Any, str | None] = (None, None)  # raw, block_id of the last text
        self.agent = agent
        self.parent_run_id = parent_run_id
        self.keep_raw = keep_raw
        self.on_malformed: OnMalformed = on_malformed
        self.seq = 0
        self.out: list[ev.BaseEvent] = []
        self.ended = False
        """True once a run end was emitted; later payloads are ignored."""
        self._hi: tuple[type[ev.BaseEvent], Any, dict[str, Any]] | None = None  # a held high surrogate
        self._clean = True
        """No payload fed so far could hold a surrogate (JSON text with no ``\\ud``/``\\uD``
        escape and no raw surrogate): then no string the parser keeps (tool arguments, names)
        holds one either."""
        self._plain = False
        """True while a payload is mapped with ``_clean`` still true: its events skip the
        surrogate checks (the hot path)."""
        self.replaced_surrogates = 0
        """How many lone UTF-16 surrogates (JSON escapes such as ``"\\ud83d"`` with no other
        half) this parser replaced by U+FFFD in the events' string fields."""

    # -------------------------------------------------------------------- lone surrogates
    def _unicode(self, cls: type[E], raw: Any, fields: dict[str, Any]) -> E | None:
        """Make the string fields of an event about to be built valid Unicode, in place.

        A provider that escapes non-BMP characters in JSON (``"\\ud83d\\ude00"``) may split
        the pair across two chunks. A delta ending in a high surrogate holds it back, and the
        next delta of the same kind and block/call prepends it, joining the pair. A held half
        that finds no partner (another event comes first), and any other lone surrogate in any
        string field, becomes U+FFFD, counted in :attr:`replaced_surrogates`. Returns an event
        that was not emitted when the whole delta is held (it was nothing but the high half)."""
        hi = self._hi
        key = fields.get("block_id", fields.get("call_id")) if cls in _DELTA_CLASSES else _NO_KEY
        if hi is not None:
            self._hi = None
            hcls, hkey, hfields = hi
            delta = fields.get("delta")
            low = isinstance(delta, str) and delta[:1] and "\udc00" <= delta[0] <= "\udfff"
            if hcls is cls and hkey == key and low:
                fields["delta"] = hfields["delta"] + delta
            else:
                self.replaced_surrogates += 1
                hfields["delta"] = "\ufffd"
                self._build(hcls, hfields.pop("_raw"), {k: v for k, v in hfields.items() if k != "_raw"})
        for name, value in fields.items():
            if type(value) is str and not value.isascii():
                if name == "delta" and key is not _NO_KEY and "\ud800" <= value[-1] <= "\udbff":
                    value = value[:-1]
                    self._hi = (cls, key, {**fields, "delta": fields["delta"][-1], "_raw": raw})
                fields[name] = self._replace_lone(value)
        if self._hi is not None and fields.get("delta") == "":
            # held whole: not emitted
            return cls(run_id=self.run_id, agent=self.agent, parent_run_id=self.parent_run_id, seq=self.seq, **fields)
        return None

    def _deep_replace(self, value: Any) -> Any:
        """``value`` (decoded JSON data) with lone surrogates in its strings and keys replaced."""
        if type(value) is str:
            return value if value.isascii() else self._replace_lone(value)
        if isinstance(value, dict):
            return {self._deep_replace(k): self._deep_replace(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._deep_replace(v) for v in value]
        return value

    def _replace_lone(self, value: str) -> str:
        if _SURROGATE.search(value) is None:
            return value
        fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # joins pairs, replaces lone
        self.replaced_surrogates += fixed.count("\ufffd") - value.count("\ufffd")
        return fixed

    # -------------------------------------------------------------------- building events
    def emit(self, cls: type[E], raw: Any = None, **fields: Any) -> E:
        """Build an event of ``cls`` with the envelope filled in and append it to the output.

        With ``think_tags``, a text delta goes through the think-tag splitter: it may come out
        as text and reasoning deltas, or be held in part until the next event (a possible
        partial tag); the event returned is then the last one emitted, or a text delta that
        was not emitted (everything held).
        """
        think = self._think
        if think is not None:
            if cls is ev.TextDelta:
                self._think_src = (raw, fields.get("block_id"))
                last = self._think_pieces(think.feed(fields["delta"]))
                return cast(E, last if last is not None else ev.TextDelta(delta="", block_id=fields.get("block_id")))
            if think.pending:
                self._think_pieces(think.flush())
        return self._build(cls, raw, fields)

    def _think_pieces(self, pieces: list[tuple[bool, str]]) -> ev.BaseEvent | None:
        raw, block_id = self._think_src
        last: ev.BaseEvent | None = None
        for reasoning, text in pieces:
            cls = ev.ReasoningDelta if reasoning else ev.TextDelta
            last = self._build(cls, raw, {"delta": text, "block_id": block_id})
        return last

    def _build(self, cls: type[E], raw: Any, fields: dict[str, Any]) -> E:
        # The hot path of every parser (one call per event): no generator, no re-packed kwargs.
        check = self._hi is not None  # a high surrogate is held from the last delta
        if not self._plain:
            if cls not in _DELTA_CLASSES:
                for name, value in fields.items():
                    if isinstance(value, (dict, list)):
                        fields[name] = self._deep_replace(value)
            if not check:
                for value in fields.values():
                    if type(value) is str and not value.isascii():
                        check = True  # only a non-ASCII string can hold a surrogate
                        break
        if check:
            held = self._unicode(cls, raw, fields)
            if held is not None:
                return held
        event = cls(
            run_id=self.run_id,
            agent=self.agent,
            parent_run_id=self.parent_run_id,
            seq=self.seq,
            ts=time.time(),
            raw=raw if self.keep_raw else None,
            **fields,
        )
        self.seq += 1
        self.out.append(event)
        return event

    def end_run(
        self,
        *,
        status: ev.RunStatus | None = None,
        raw_finish_reason: str | None = None,
        finish_reason: ev.FinishReason | None = None,
        usage: ev.Usage | None = None,
        raw: Any = None,
    ) -> None:
        """Emit the run end once (later calls are ignored)."""
        if self.ended:
            return
        self.ended = True
        finish = finish_reason if finish_reason is not None else normalize_finish_reason(raw_finish_reason)
        self.emit(
            ev.RunEnd,
            raw,
            status=status if status is not None else status_for(finish),
            finish_reason=finish,
            raw_finish_reason=raw_finish_reason,
            usage=usage,
        )

    def provider_error(self, error_type: str, message: str, code: str | None = None, raw: Any = None) -> None:
        """A provider error inside the stream: an error event, then a failed run end."""
        self.emit(ev.ErrorEvent, raw, error_type=error_type, message=message, code=code)
        self.end_run(status="failed", finish_reason="error", raw=None)

    def malformed(self, message: str, data: str | None = None, *, truncated: bool = False) -> None:
        """Report malformed input according to ``on_malformed``."""
        cut = None if data is None else data[:200]
        if self.on_malformed == "raise":
            cls = TruncatedStreamError if truncated else StreamFormatError
            raise cls(message, data=cut)
        self.emit(
            ev.ErrorEvent,
            cut,
            error_type="truncated_stream" if truncated else "malformed_stream",
            message=message,
        )
        if truncated:
            self.end_run(status="failed", finish_reason="error")

    # -------------------------------------------------------------------- wire field types
    # The checks of every wire value a parser copies into an event: cheap (one ``type`` /
    # ``isinstance`` test on the good path, no allocation); a value of the wrong type is
    # malformed input, reported through :meth:`malformed` with ``where`` (the field's path,
    # e.g. ``"choices[0].delta.content"``) and the type found, and ``None`` comes back so the
    # caller skips that field's event (or leaves an optional field out) and goes on.
    def wrong_type(self, value: Any, where: str, expected: str) -> None:
        """Report ``value`` at ``where`` as malformed: not of the ``expected`` type."""
        self.malformed(f"{self.api}: {where}: expected {expected}, got {type_name(value)}", repr(value))

    def text(self, value: Any, where: str) -> str | None:
        """An optional string field: ``value`` if a ``str``, ``None`` if absent/null; any
        other type is reported (``None``)."""
        if value is None or isinstance(value, str):
            return value
        self.wrong_type(value, where, "string")
        return None

    def req_text(self, value: Any, where: str) -> str | None:
        """A required string field: ``value`` if a ``str``; anything else (null included) is
        reported (``None``)."""
        if isinstance(value, str):
            return value
        self.wrong_type(value, where, "string")
        return None

    def opt_int(self, value: Any, where: str) -> int | None:
        """An optional integer field (an index, a token count): ``value`` if an ``int`` and
        not a ``bool``, ``None`` if absent/null; any other type is reported (``None``)."""
        if value is None or type(value) is int:
            return value
        self.wrong_type(value, where, "int")
        return None

    def req_int(self, value: Any, where: str) -> int | None:
        """A required integer field: ``value`` if an ``int`` (not a ``bool``); anything else
        (null included) is reported (``None``)."""
        if type(value) is int:
            return value
        self.wrong_type(value, where, "int")
        return None

    def start_run(self, raw: Any, model: Any, response_id: Any, model_where: str, id_where: str) -> None:
        """Emit the :class:`RunStart` (an empty ``model`` / ``response_id`` is ``None``). A value
        of the wrong type is left out and reported right after the run start, so the run start
        stays the first event."""
        m = model if isinstance(model, str) else None
        r = response_id if isinstance(response_id, str) else None
        self.emit(ev.RunStart, raw, model=m or None, response_id=r or None)
        if m is None and model is not None:
            self.wrong_type(model, model_where, "string")
        if r is None and response_id is not None:
            self.wrong_type(response_id, id_where, "string")

    def unknown(self, event_type: str | None, payload: Any) -> None:
        """Keep a payload that has no event kind of its own as a :class:`RawEvent` (a
        ``type`` that is not a string is left out: ``event_type`` ``None``)."""
        self.emit(ev.RawEvent, None, event_type=event_type if isinstance(event_type, str) else None, data=payload)

    # -------------------------------------------------------------------- feeding
    def feed_json(self, event_type: str | None, data: str) -> list[ev.BaseEvent]:
        """Feed one SSE event's ``data`` text (JSON, or ``[DONE]``); return the new events."""
        self.out = []
        if self.ended:
            return self.out
        if data.strip() == "[DONE]":
            self.on_done()
            return self.out
        self._wire_len = len(data)
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested about 1,000 deep
            if event_type == "error":
                self.on_error_text(data)
                return self.out
            why = "nested too deep" if isinstance(exc, RecursionError) else "invalid JSON"
            self.malformed(f"{why} in SSE data ({self.api}): {data[:80]!r}", data)
            return self.out
        if self._clean:  # json.loads makes a surrogate only from a \ud800-\udfff escape or a raw one
            clean = "\\u" not in data or ("\\ud" not in data and "\\uD" not in data)
            self._clean = self._plain = clean and (data.isascii() or _SURROGATE.search(data) is None)
        try:  # _payload inlined: one call less per SSE event
            self.on_payload(event_type, payload)
        except RecursionError:
            self._too_deep()
        finally:
            self._plain = False  # events built elsewhere (close, SDK objects) are checked
        return self.out

    def feed_payload(self, payload: Any, event_type: str | None = None) -> list[ev.BaseEvent]:
        """Feed one already-decoded payload (an SDK object's ``model_dump()``, a dict)."""
        self.out = []
        self._wire_len = 0
        self._clean = False  # Python objects: any string may hold a surrogate
        if not self.ended:
            self._payload(event_type, payload)
        return self.out

    def hold(self, held: list[Any], payload: Any) -> None:
        """Hold ``payload`` in ``held`` until it can be used, within the detection window
        (:attr:`max_detect`: its SSE data length, 100 more for bookkeeping).

        Raises:
            LimitExceededError: the window is passed (``held`` is then emptied).
        """
        held.append(payload)
        n = self._held_size = self._held_size + self._wire_len + 100
        if n > self.max_detect:
            held.clear()
            raise LimitExceededError(
                "max_detect", self.max_detect, n, f"chunks held before the run could start ({self.api})"
            )

    def _payload(self, event_type: str | None, payload: Any) -> None:
        """``on_payload``, with a payload too deeply nested to walk reported as malformed."""
        try:
            self.on_payload(event_type, payload)
        except RecursionError:
            self._too_deep()

    def _too_deep(self) -> None:
        self._hi = None
        self.malformed(f"{self.api}: payload nested too deep (over the interpreter's recursion limit)")

    def close(self) -> list[ev.BaseEvent]:
        """The body ended: emit what is pending and the run end (or report truncation)."""
        self.out = []
        if self._think is not None and self._think.pending:
            self._think_pieces(self._think.flush())
        if not self.ended:
            self.on_close()
        return self.out

    # -------------------------------------------------------------------- to implement
    def on_payload(self, event_type: str | None, payload: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def on_error_text(self, data: str) -> None:
        """An SSE ``event: error`` whose data is not JSON: still a provider error (its text is
        the message), the same in every parser: an :class:`ErrorEvent` (``error_type``
        ``"error"``) and a failed run end, not malformed input."""
        self.provider_error("error", data.strip()[:1000] or "provider error", raw=data)

    def on_done(self) -> None:
        """``data: [DONE]`` arrived (OpenAI-style streams): by default, close."""
        self.on_close()

    def on_close(self) -> None:  # pragma: no cover
        raise NotImplementedError
