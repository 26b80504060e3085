"""Provider adapters: wire data (raw SSE bytes or SDK stream objects) -> streamops events.

Installed as the subpackage ``streamops.adapters``. The entry points:

- :func:`parse_sse` turns raw SSE bytes (one ``bytes`` body, or any sync/async iterable of
  byte chunks, such as ``httpx.Response.aiter_raw()``) into a :class:`~streamops.Stream` of
  events; the API is detected from the stream itself unless ``api`` says it.
- :func:`parse_payloads` does the same for already-decoded payloads: the official SDKs' stream
  objects (``openai``, ``anthropic``, ``google-genai``) or plain dicts.
- :class:`SSEParser` is the sans-IO core of both (``feed(bytes)`` -> events, ``close()``).
- :func:`detect_api` names the API of a body.

Layout: ``_base`` (the parser base, :class:`ParserOptions`), one module a wire API (its
sans-IO parser and its thin ``parse_<api>_sse`` / ``parse_<api>_sdk`` functions), ``_sansio``
(parser choice and API detection: :class:`SSEParser`, ``PayloadParser``), ``_drive`` (the two
async drivers every entry point calls, and the per-SDK hooks table ``SDK_HOOKS``).

Supported APIs: ``openai-chat`` (OpenAI Chat Completions and every OpenAI-compatible
provider: Azure, Groq, DeepSeek, OpenRouter, Mistral, xAI, Z.ai, Hugging Face...),
``openai-responses``, ``anthropic`` (Messages), ``gemini`` (``streamGenerateContent``).
The local model and LiteLLM have their own modules (:mod:`streamops.adapters.local`,
:mod:`streamops.adapters.litellm`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Any, Literal, Unpack

from streamops._stream import Stream
from streamops.events import BaseEvent

from ._base import PARSERS, OnMalformed, ParserOptions, normalize_finish_reason
from ._drive import SSESource, drive_payloads, drive_sse
from ._framework import SubRuns
from ._sansio import API, APIS, SSEParser, detect_api, parser_for
from .anthropic import MessagesParser
from .gemini import GeminiParser
from .openai_chat import ChatCompletionsParser
from .openai_responses import ResponsesParser

# The one table of wire API -> sans-IO parser (``parser_for`` looks it up).
PARSERS.update({p.api: p for p in (ChatCompletionsParser, ResponsesParser, MessagesParser, GeminiParser)})

__all__ = [
    "API",
    "APIS",
    "OnMalformed",
    "ParserOptions",
    "SSEParser",
    "SubRuns",
    "detect_api",
    "from_run",
    "normalize_finish_reason",
    "parse_payloads",
    "parse_sse",
    "parse_sse_bytes",
    "parser_for",
]


def parse_sse_bytes(
    body: bytes, *, api: API | Literal["auto"] = "auto", **options: Unpack[ParserOptions]
) -> list[BaseEvent]:
    """Parse one whole SSE body into a list of events (see :class:`SSEParser` for errors)."""
    p = SSEParser(api, **options)
    return p.feed(body) + p.close()


def parse_sse(
    source: SSESource, *, api: API | Literal["auto"] = "auto", **options: Unpack[ParserOptions]
) -> Stream[BaseEvent]:
    """A stream of the events in raw SSE bytes.

    ``source`` is a whole body, or a sync or async iterable of byte chunks split anywhere
    (``httpx.Response.aiter_raw()``). A sync iterable other than a list, tuple or other
    in-memory container (a sync SDK stream, ``iter_raw()``, a generator) is read on a thread
    of its own, one ``next()`` per chunk, so a blocking read never blocks the event loop: that
    costs a thread hop per chunk (about 110 us on a shared 2-core VM, against 4 us per 64-byte
    chunk from a list), nothing next to a network read, but pass a list or an async iterable
    for data already in memory. ``options``: ``run_id``, ``agent``, ``keep_raw``,
    ``on_malformed`` (:class:`ParserOptions`). Once the run end is parsed, or when the stream
    stops early, the source is closed (``aclose()``), which closes the HTTP response.

    - Emits: each event as soon as the bytes completing it arrive.
    - Completes: after the run end.
    - Fails: with :class:`~streamops.errors.StreamFormatError` /
      :class:`~streamops.errors.TruncatedStreamError` on malformed input (after every event
      before it), unless ``on_malformed="event"``; with the source's own exception.
    """
    return Stream.defer(drive_sse, source, api, options)


def parse_payloads(
    source: Iterable[Any] | AsyncIterable[Any],
    *,
    api: API | Literal["auto"] = "auto",
    **options: Unpack[ParserOptions],
) -> Stream[BaseEvent]:
    """A stream of the events in already-decoded payloads: an official SDK's stream object
    (``async for chunk in client.chat.completions.create(..., stream=True)``, Anthropic's
    ``messages.create(..., stream=True)``, google-genai's ``generate_content_stream``) or dicts.

    SDK objects are turned into dicts with ``model_dump(mode="json", exclude_unset=True,
    by_alias=True)`` (pydantic SDKs) or ``to_dict()``. The API is detected from the first
    payload unless ``api`` says it. ``options`` as for :func:`parse_sse`. When the stream
    stops early the SDK stream is closed (``aclose()``/``close()``), which closes the
    provider's HTTP response.
    """
    return Stream.defer(drive_payloads, source, api, options, "generic")


def from_run(run: Any, *, sub_runs: SubRuns | None = None, **options: Unpack[ParserOptions]) -> Stream[BaseEvent]:
    """A stream of the events of an agent framework's run, the adapter picked from ``run``:

    - an OpenAI Agents SDK ``RunResultStreaming`` (``Runner.run_streamed(...)``) ->
      :func:`~streamops.adapters.openai_agents.from_openai_agents`;
    - a pydantic-ai ``agent.run_stream_events(...)`` (the context manager or the run it yields)
      -> :func:`~streamops.adapters.pydantic_ai.from_pydantic_ai`;
    - the iterator of a LangChain / LangGraph ``astream_events(..., version="v2")`` ->
      :func:`~streamops.adapters.langchain.from_langchain`;
    - the iterator of a LangGraph ``graph.astream(..., stream_mode=["messages", "updates",
      "custom"], subgraphs=True)`` -> :func:`~streamops.adapters.langchain.from_langgraph`.
    - the iterator of a hypertic agent's ``astream(query)`` ->
      :func:`~streamops.adapters.hypertic.from_hypertic`.

    ``options``: ``run_id``, ``agent``, ``parent_run_id``, ``keep_raw`` (:class:`ParserOptions`).
    ``sub_runs``: a :class:`SubRuns` wired to the run's agents used as tools (openai-agents and
    pydantic-ai), whose runs then stream inside this one as typed events of their own runs.

    Raises:
        TypeError: ``run`` is none of these (the message names the supported kinds); never a
            silent empty stream.
    """
    from .hypertic import from_hypertic, is_hypertic_stream
    from .langchain import from_langchain, from_langgraph, is_langchain_events, is_langgraph_stream
    from .openai_agents import from_openai_agents, is_openai_agents_run
    from .pydantic_ai import from_pydantic_ai, is_pydantic_ai_run

    if is_openai_agents_run(run):
        return from_openai_agents(run, sub_runs=sub_runs, **options)
    if is_pydantic_ai_run(run):
        return from_pydantic_ai(run, sub_runs=sub_runs, **options)
    if is_langchain_events(run):
        return from_langchain(run, **options)
    if is_langgraph_stream(run):
        return from_langgraph(run, **options)
    if is_hypertic_stream(run):
        return from_hypertic(run, **options)
    raise TypeError(
        f"from_run: cannot tell the framework of a {type(run).__module__}.{type(run).__qualname__}; supported: "
        "openai-agents Runner.run_streamed(...) (RunResultStreaming), pydantic-ai agent.run_stream_events(...), "
        'LangChain/LangGraph runnable.astream_events(..., version="v2"), LangGraph graph.astream(...), '
        "hypertic agent.astream(...)"
    )
