"""The sans-IO front of the adapters: which parser serves an API (:func:`parser_for`), telling
the API of a stream, and the two feeders the async drivers (:mod:`._drive`) run:
:class:`SSEParser` (raw SSE bytes) and :class:`PayloadParser` (decoded payloads).

Both feeders keep ``out``: the events of the current ``feed``/``close`` call, so that after a
:class:`~streamops.errors.StreamFormatError` the caller still has every event before the bad
input; and ``ended``: the run end was emitted, nothing more needs reading.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeAlias, Unpack

from streamops.errors import LimitExceededError, StreamFormatError
from streamops.events import BaseEvent
from streamops.sse import DEFAULT_MAX_EVENT, DEFAULT_MAX_LINE, SSEDecoder, SSEEvent

from ._base import DEFAULT_MAX_DETECT, PARSERS, ParserBase, ParserOptions

__all__ = ["API", "APIS", "PayloadParser", "SSEParser", "detect_api", "detect_one", "parser_for"]

API: TypeAlias = Literal["openai-chat", "openai-responses", "anthropic", "gemini"]
"""The wire APIs streamops parses."""

APIS: tuple[API, ...] = ("openai-chat", "openai-responses", "anthropic", "gemini")

_ANTHROPIC_TYPES = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "ping",
    }
)


def parser_for(api: API, **options: Unpack[ParserOptions]) -> ParserBase:
    """A fresh sans-IO parser for ``api``.

    Raises:
        ValueError: ``api`` is not one of :data:`APIS`.
    """
    cls = PARSERS.get(api)
    if cls is None:
        raise ValueError(f"unknown api {api!r}; expected one of {', '.join(APIS)}")
    return cls(**options)


def detect_api(body: bytes) -> API:
    """The API of an SSE body, from its first events.

    Raises:
        StreamFormatError: the body is not an event stream of a known API.
    """
    p = SSEParser("auto")
    p._route(p._decoder.feed(body) + p._decoder.flush())
    if p.parser is None:
        raise StreamFormatError("cannot tell the API of this body: no event of a known provider")
    return p.parser.api  # type: ignore[return-value]


def detect_one(event_type: str | None, payload: Any) -> API | None:
    """The API one SSE event (or decoded payload) belongs to, or ``None`` if it can't tell."""
    if event_type is not None:
        if event_type.startswith("response."):
            return "openai-responses"
        if event_type in _ANTHROPIC_TYPES:
            return "anthropic"
    if not isinstance(payload, dict):
        return None
    ptype = payload.get("type")
    if isinstance(ptype, str):
        if ptype.startswith("response."):
            return "openai-responses"
        if ptype in _ANTHROPIC_TYPES:
            return "anthropic"
    if payload.get("object") == "chat.completion.chunk" or "choices" in payload:
        return "openai-chat"
    if "candidates" in payload or "usageMetadata" in payload or "modelVersion" in payload:
        return "gemini"
    return None


class SSEParser:
    """Sans-IO: raw SSE bytes in, events out, for one response body.

    ``feed(chunk)`` returns the events completed by that chunk; ``close()`` the rest, ending
    with the run end. With ``api="auto"`` the API is detected from the first SSE events
    (their ``event:`` names and payload shapes); events seen before the API is known are held
    and replayed to the parser (a body that opens with an ``error`` event waits for the next),
    within the detection window ``max_detect``. Keyword options:
    :class:`~streamops.adapters._base.ParserOptions` (``max_line`` and ``max_event`` go to the
    :class:`~streamops.sse.SSEDecoder`).

    Raises (from ``feed``/``close``; :attr:`out` then holds the events of that call before
    the bad input):
        StreamFormatError: the body holds no SSE event with data, or its API cannot be told;
            or a parser found malformed input (see ``on_malformed``).
        TruncatedStreamError: the body ended before the provider said it was done.
        LimitExceededError: a line, an event or the detection window passed its limit (in
            either ``on_malformed`` mode).
    """

    def __init__(self, api: API | Literal["auto"] = "auto", **options: Unpack[ParserOptions]) -> None:
        self._decoder = SSEDecoder(
            max_line=options.get("max_line") or DEFAULT_MAX_LINE,
            max_event=options.get("max_event") or DEFAULT_MAX_EVENT,
        )
        self._max_detect = options.get("max_detect") or DEFAULT_MAX_DETECT
        self._held = 0  # the detection window used: data characters + 100 per held event
        self._options = options
        self.parser: ParserBase | None = None if api == "auto" else parser_for(api, **options)
        self._pending: list[SSEEvent] = []
        self.out: list[BaseEvent] = []
        """The events of the current (or last) ``feed``/``close`` call."""

    @property
    def api(self) -> str | None:
        """The API in use, once known."""
        return None if self.parser is None else self.parser.api

    @property
    def ended(self) -> bool:
        """True once the run end was emitted: the rest of the body can be left unread."""
        return self.parser is not None and self.parser.ended

    def feed(self, chunk: bytes) -> list[BaseEvent]:
        """Feed raw bytes (any split); return the events they completed."""
        self.out = []
        self._route(self._decoder.feed(chunk))
        return self.out

    def close(self) -> list[BaseEvent]:
        """The body ended: return the remaining events, ending with the run end."""
        self.out = []
        self._route(self._decoder.flush())
        parser = self.parser
        if parser is None:
            if not any(sse.data for sse in self._pending):
                raise StreamFormatError("not an event stream: the body holds no SSE event with data")
            # Only ambiguous events (an error payload, [DONE]): the chat parser reports them.
            parser = self._start("openai-chat")
        try:
            self.out += parser.close()
        except StreamFormatError:
            self.out += parser.out
            raise
        return self.out

    def _route(self, events: list[SSEEvent]) -> None:
        parser = self.parser
        if parser is None:
            api = self._detect(events)
            self._pending.extend(events)
            if api is not None:
                self._start(api)
                return
            held = self._held = self._held + sum(len(e.data) + 100 for e in events)
            if held > self._max_detect:
                self._pending = []
                raise LimitExceededError(
                    "max_detect", self._max_detect, held, "SSE events held before any showed the API"
                )
            return
        out = self.out
        try:
            for sse in events:
                name = sse.event
                out += parser.feed_json(None if name == "message" else name, sse.data)
        except StreamFormatError:
            out += parser.out
            raise

    def _start(self, api: API) -> ParserBase:
        """Make the parser of ``api`` and replay the events held until now."""
        parser = self.parser = parser_for(api, **self._options)
        pending, self._pending = self._pending, []
        self._route(pending)
        return parser

    def _detect(self, events: list[SSEEvent]) -> API | None:
        """The API the first telling one of ``events`` shows (the events held before them told
        nothing: each event is looked at once)."""
        for sse in events:
            name = None if sse.event == "message" else sse.event
            if name is not None:
                api = detect_one(name, None)
                if api is not None:
                    return api
            try:
                payload = json.loads(sse.data)
            except (ValueError, RecursionError):
                continue
            api = detect_one(name, payload)
            if api is not None:
                return api
        return None


class PayloadParser:
    """Sans-IO: already-decoded payloads in (an SDK object's ``model_dump()``, a dict), events
    out. With ``api="auto"`` the API is detected from the first payload. Keyword options:
    :class:`~streamops.adapters._base.ParserOptions`.

    Raises (from ``feed``/``close``; :attr:`out` then holds the events of that call before
    the bad input):
        StreamFormatError: the first payload is of no known API; or a parser found malformed
            input (see ``on_malformed``).
        TruncatedStreamError: the stream ended before the provider said it was done.
    """

    def __init__(self, api: API | Literal["auto"] = "auto", **options: Unpack[ParserOptions]) -> None:
        self._options = options
        self.parser: ParserBase | None = None if api == "auto" else parser_for(api, **options)

    @property
    def out(self) -> list[BaseEvent]:
        """The events of the current (or last) ``feed``/``close`` call."""
        return [] if self.parser is None else self.parser.out

    @property
    def ended(self) -> bool:
        """True once the run end was emitted: the rest of the stream can be left unread."""
        return self.parser is not None and self.parser.ended

    def feed(self, payload: Any, event_type: str | None = None) -> list[BaseEvent]:
        """Feed one payload (``event_type``: the SSE event name, when there is one); return
        the new events."""
        parser = self.parser
        if parser is None:
            api = detect_one(None, payload)
            if api is None:
                raise StreamFormatError(
                    f"cannot tell the API of payload {str(payload)[:80]!r}; pass api=...",
                    data=str(payload)[:200],
                )
            parser = self.parser = parser_for(api, **self._options)
        return parser.feed_payload(payload, event_type)

    def close(self) -> list[BaseEvent]:
        """The stream ended: the remaining events, ending with the run end (none at all if
        no payload ever came and the API was left to detection)."""
        return [] if self.parser is None else self.parser.close()
