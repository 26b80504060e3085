"""Provider adapters: wire data (raw SSE bytes or SDK stream objects) -> streamops events.

Installed as the subpackage ``streamops.adapters``. The entry points:

- :func:`parse_sse` turns raw SSE bytes (one ``bytes`` body, or any sync/async iterable of
  byte chunks, such as ``httpx.Response.aiter_raw()``) into a :class:`~streamops.Stream` of
  events; the API is detected from the stream itself unless ``api`` says it.
- :func:`parse_payloads` does the same for already-decoded payloads: the official SDKs' stream
  objects (``openai``, ``anthropic``, ``google-genai``) or plain dicts.
- :class:`SSEParser` is the sans-IO core of both (``feed(bytes)`` -> events, ``close()``).
- :func:`detect_api` names the API of a body.

Supported APIs: ``openai-chat`` (OpenAI Chat Completions and every OpenAI-compatible
provider: Azure, Groq, DeepSeek, OpenRouter, Mistral, xAI, Z.ai, Hugging Face...),
``openai-responses``, ``anthropic`` (Messages), ``gemini`` (``streamGenerateContent``).
The local model and LiteLLM have their own modules (:mod:`streamops.adapters.local`,
:mod:`streamops.adapters.litellm`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any, Literal, TypeAlias

from streamops._stream import Stream, _GenSource
from streamops.errors import StreamFormatError
from streamops.events import BaseEvent
from streamops.sse import SSEDecoder, SSEEvent

from ._base import OnMalformed, ParserBase, normalize_finish_reason

__all__ = [
    "API",
    "APIS",
    "SSEParser",
    "detect_api",
    "normalize_finish_reason",
    "parse_payloads",
    "parse_sse",
    "parse_sse_bytes",
    "parser_for",
]

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


def parser_for(
    api: API,
    *,
    run_id: str | None = None,
    agent: str = "",
    keep_raw: bool = True,
    on_malformed: OnMalformed = "raise",
) -> ParserBase:
    """A fresh sans-IO parser for ``api``.

    Raises:
        ValueError: ``api`` is not one of :data:`APIS`.
    """
    kw: dict[str, Any] = {"run_id": run_id, "agent": agent, "keep_raw": keep_raw, "on_malformed": on_malformed}
    if api == "openai-chat":
        from .openai_chat import ChatCompletionsParser

        return ChatCompletionsParser(**kw)
    if api == "openai-responses":
        from .openai_responses import ResponsesParser

        return ResponsesParser(**kw)
    if api == "anthropic":
        from .anthropic import MessagesParser

        return MessagesParser(**kw)
    if api == "gemini":
        from .gemini import GeminiParser

        return GeminiParser(**kw)
    raise ValueError(f"unknown api {api!r}; expected one of {', '.join(APIS)}")


def _detect_one(event_type: str | None, payload: Any) -> API | None:
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
    and replayed to the parser (a body that opens with an ``error`` event waits for the next).

    Raises (from ``feed``/``close``, after everything before the bad input was returned):
        StreamFormatError: the body holds no SSE event with data, or its API cannot be told;
            or a parser found malformed input (see ``on_malformed``).
        TruncatedStreamError: the body ended before the provider said it was done.
    """

    def __init__(
        self,
        api: API | Literal["auto"] = "auto",
        *,
        run_id: str | None = None,
        agent: str = "",
        keep_raw: bool = True,
        on_malformed: OnMalformed = "raise",
    ) -> None:
        self._decoder = SSEDecoder()
        self._kw: dict[str, Any] = {
            "run_id": run_id,
            "agent": agent,
            "keep_raw": keep_raw,
            "on_malformed": on_malformed,
        }
        self.parser: ParserBase | None = None if api == "auto" else parser_for(api, **self._kw)
        self._pending: list[SSEEvent] = []

    @property
    def api(self) -> str | None:
        """The API in use, once known."""
        return None if self.parser is None else self.parser.api

    def feed(self, chunk: bytes) -> list[BaseEvent]:
        """Feed raw bytes (any split); return the events they completed."""
        return self._route(self._decoder.feed(chunk))

    def close(self) -> list[BaseEvent]:
        """The body ended: return the remaining events, ending with the run end."""
        out = self._route(self._decoder.flush())
        if self.parser is None:
            self._decide_late()
        assert self.parser is not None
        for sse in self._pending:
            out.extend(self._feed_parser(self.parser, sse))
        self._pending.clear()
        out.extend(self.parser.close())
        return out

    def _route(self, events: list[SSEEvent]) -> list[BaseEvent]:
        parser = self.parser
        if parser is None:
            self._pending.extend(events)
            api = self._detect()
            if api is None:
                return []
            parser = self.parser = parser_for(api, **self._kw)
            events = self._pending
            self._pending = []
        if len(events) == 1:
            return self._feed_parser(parser, events[0])
        out: list[BaseEvent] = []
        for sse in events:
            out.extend(self._feed_parser(parser, sse))
        return out

    @staticmethod
    def _feed_parser(parser: ParserBase, sse: SSEEvent) -> list[BaseEvent]:
        name = sse.event
        return parser.feed_json(None if name == "message" else name, sse.data)

    def _detect(self) -> API | None:
        for sse in self._pending:
            name = None if sse.event == "message" else sse.event
            if name is not None and _detect_one(name, None) is not None:
                return _detect_one(name, None)
            try:
                payload = json.loads(sse.data)
            except ValueError:
                continue
            api = _detect_one(name, payload)
            if api is not None:
                return api
        return None

    def _decide_late(self) -> None:
        if not any(sse.data for sse in self._pending):
            raise StreamFormatError("not an event stream: the body holds no SSE event with data")
        # Only ambiguous events (an error payload, [DONE]): the chat parser reports them.
        self.parser = parser_for("openai-chat", **self._kw)


def parse_sse_bytes(body: bytes, *, api: API | Literal["auto"] = "auto", **kwargs: Any) -> list[BaseEvent]:
    """Parse one whole SSE body into a list of events (see :class:`SSEParser` for errors)."""
    p = SSEParser(api, **kwargs)
    return p.feed(body) + p.close()


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


def parse_sse(
    source: bytes | Iterable[bytes] | AsyncIterable[bytes],
    *,
    api: API | Literal["auto"] = "auto",
    run_id: str | None = None,
    agent: str = "",
    keep_raw: bool = True,
    on_malformed: OnMalformed = "raise",
) -> Stream[BaseEvent]:
    """A stream of the events in raw SSE bytes.

    ``source`` is a whole body, or a sync or async iterable of byte chunks split anywhere
    (``httpx.Response.aiter_raw()``). When the stream stops early, the source is closed
    (``aclose()``), which closes the HTTP response.

    - Emits: each event as soon as the bytes completing it arrive.
    - Completes: after the run end, when the body ends.
    - Fails: with :class:`~streamops.errors.StreamFormatError` /
      :class:`~streamops.errors.TruncatedStreamError` on malformed input (after every event
      before it), unless ``on_malformed="event"``; with the source's own exception.
    """
    kw: dict[str, Any] = {"run_id": run_id, "agent": agent, "keep_raw": keep_raw, "on_malformed": on_malformed}
    return Stream(_GenSource(_drive_sse, source, api, kw))


async def _drive_sse(
    source: bytes | Iterable[bytes] | AsyncIterable[bytes], api: API | Literal["auto"], kw: dict[str, Any]
) -> AsyncGenerator[BaseEvent, None]:
    parser = SSEParser(api, **kw)
    if isinstance(source, (bytes, bytearray, memoryview)):
        for ev in parser.feed(bytes(source)):
            yield ev
    elif isinstance(source, AsyncIterable):
        it = source.__aiter__()
        try:
            async for chunk in it:
                for ev in parser.feed(chunk):
                    yield ev
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        for chunk in source:
            for ev in parser.feed(chunk):
                yield ev
    for ev in parser.close():
        yield ev


def _as_dict(obj: Any) -> Any:
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json", exclude_unset=True, by_alias=True)
    to_dict = getattr(obj, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    return obj


def parse_payloads(
    source: Iterable[Any] | AsyncIterable[Any],
    *,
    api: API | Literal["auto"] = "auto",
    run_id: str | None = None,
    agent: str = "",
    keep_raw: bool = True,
    on_malformed: OnMalformed = "raise",
) -> Stream[BaseEvent]:
    """A stream of the events in already-decoded payloads: an official SDK's stream object
    (``async for chunk in client.chat.completions.create(..., stream=True)``, Anthropic's
    ``messages.create(..., stream=True)``, google-genai's ``generate_content_stream``) or dicts.

    SDK objects are turned into dicts with ``model_dump(mode="json", exclude_unset=True,
    by_alias=True)`` (pydantic SDKs) or ``to_dict()``. The API is detected from the first
    payload unless ``api`` says it. When the stream stops early the SDK stream is closed
    (``aclose()``/``close()``), which closes the provider's HTTP response.
    """
    kw: dict[str, Any] = {"run_id": run_id, "agent": agent, "keep_raw": keep_raw, "on_malformed": on_malformed}
    return Stream(_GenSource(_drive_payloads, source, api, kw))


async def _drive_payloads(
    source: Iterable[Any] | AsyncIterable[Any], api: API | Literal["auto"], kw: dict[str, Any]
) -> AsyncGenerator[BaseEvent, None]:
    parser: ParserBase | None = None if api == "auto" else parser_for(api, **kw)

    def feed(obj: Any) -> list[BaseEvent]:
        nonlocal parser
        payload = _as_dict(obj)
        if parser is None:
            found = _detect_one(None, payload)
            if found is None:
                raise StreamFormatError(
                    f"cannot tell the API of payload {str(payload)[:80]!r}; pass api=...",
                    data=str(payload)[:200],
                )
            parser = parser_for(found, **kw)
        ptype = payload.get("type") if isinstance(payload, dict) else None
        return parser.feed_payload(payload, ptype if isinstance(ptype, str) else None)

    try:
        if isinstance(source, AsyncIterable):
            async for obj in source:
                for ev in feed(obj):
                    yield ev
        else:
            for obj in source:
                for ev in feed(obj):
                    yield ev
        if parser is not None:
            for ev in parser.close():
                yield ev
    finally:
        close = getattr(source, "aclose", None) or getattr(source, "close", None)
        if close is not None:
            r = close()
            if hasattr(r, "__await__"):
                await r
