"""LiteLLM (``litellm.acompletion(..., stream=True)``, 100+ providers) -> streamops events.

LiteLLM normalizes every provider's stream to OpenAI ``chat.completion.chunk`` objects
(``ModelResponseStream``), so each chunk is ``model_dump()``-ed and fed to the Chat
Completions parser (:class:`~streamops.adapters.openai_chat.ChatCompletionsParser`): the
mapping (text, reasoning, refusal, tool calls by index, finish reason, usage chunk, errors) is
the one documented there.

Two entry points:

- :func:`parse_litellm` parses a stream object you already have::

      resp = await litellm.acompletion(model="openai/gpt-4o", messages=msgs, stream=True)
      async for event in parse_litellm(resp): ...

- :func:`litellm_stream` is a lazy :class:`~streamops.Stream` that calls ``acompletion`` when
  it is iterated (each iteration is a new request)::

      async for event in litellm_stream("openai/gpt-4o", msgs, stream_options={"include_usage": True}): ...

What LiteLLM does to the stream (measured on the recorded OpenAI-compatible bodies in
``shared/fixtures/recorded``, served over local HTTP to ``litellm.acompletion``):

- the chunks' ``model`` is the model name you asked for (``gpt-4o``), not the provider's
  (``gpt-4o-2024-08-06``), so ``RunStart.model`` is that name;
- usage arrives only with ``stream_options={"include_usage": True}``; when the provider sends
  no usage LiteLLM then counts tokens itself, and the parser reports those figures as usage
  (``source="provider"``) like any other;
- ``delta.refusal`` is dropped (a refusal gives no text and no refusal);
- an error inside the stream (an ``error`` chunk, an ``event: error`` frame) makes LiteLLM
  raise ``litellm.MidStreamFallbackError``; when the provider's error object is in the
  exception chain it becomes an :class:`~streamops.events.ErrorEvent` and a failed run end, as
  on the raw SSE path (anything else in that chunk, such as its usage, is lost); other
  exceptions (connection errors, HTTP status errors) propagate.

LiteLLM is imported on first use, never at import time (importing it takes 3 s or more), with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first (unless already set) so it never fetches its
price table. It runs on asyncio only: LiteLLM schedules its logging callbacks with
``asyncio.create_task``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Unpack

import anyio.to_thread

from streamops._stream import Stream
from streamops.errors import LiteLLMNotInstalledError
from streamops.events import Event

from ._base import OnMalformed, ParserOptions
from ._drive import close_quietly, drive_payloads

__all__ = ["LiteLLMNotInstalledError", "import_litellm", "litellm_stream", "parse_litellm"]

_COST_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"


def import_litellm() -> Any:
    """Import and return the ``litellm`` module, after setting
    ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (unless set) so it never fetches its price table.

    Blocks for the import time (3 s or more the first time; then free). The module is returned
    untyped: LiteLLM's own annotations are too large for strict checking to be useful here.

    Raises:
        LiteLLMNotInstalledError: ``litellm`` is not installed.
    """
    os.environ.setdefault(_COST_MAP_ENV, "True")
    try:
        return importlib.import_module("litellm")
    except ImportError as exc:
        raise LiteLLMNotInstalledError(f'litellm is not installed: pip install "streamops[litellm]" ({exc})') from exc


def parse_litellm(stream: AsyncIterable[Any], **options: Unpack[ParserOptions]) -> AsyncGenerator[Event, None]:
    """Parse the stream ``litellm.acompletion(..., stream=True)`` returned
    (``CustomStreamWrapper``, an async iterable of ``ModelResponseStream`` chunks) into events.

    ``options`` go to :class:`~streamops.adapters.openai_chat.ChatCompletionsParser`:
    ``run_id``, ``agent``, ``keep_raw`` (each chunk's dict in the events' ``raw``),
    ``on_malformed``, ``think_tags``.

    Emits: ``RunStart``, then the deltas, ``UsageEvent`` (if LiteLLM passes usage), and
    ``RunEnd`` with the finish reason (see the module docstring for what LiteLLM changes).
    The LiteLLM stream is closed in ``finally`` (shielded from cancellation, at most a few
    seconds), also when the consumer stops early or is cancelled, so the HTTP response is
    closed and the provider sees the disconnect.

    Raises:
        Whatever LiteLLM raises other than an in-stream provider error (connection errors,
        HTTP status errors, ``litellm.Timeout``...); an in-stream provider error (an
        ``openai.APIError`` anywhere in the exception's chain) becomes an ``ErrorEvent`` and a
        failed run end instead;
        :class:`~streamops.errors.TruncatedStreamError`: the stream ended with no finish reason
        (with ``on_malformed="raise"``, the default).
    """
    return drive_payloads(stream, "openai-chat", options, "litellm")


def litellm_stream(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    run_id: str | None = None,
    agent: str = "",
    keep_raw: bool = True,
    on_malformed: OnMalformed = "raise",
    think_tags: bool = False,
    **kwargs: Any,
) -> Stream[Event]:
    """A lazy stream of the events of ``litellm.acompletion(model=model, messages=messages,
    stream=True, **kwargs)``.

    Nothing happens until the stream is iterated; each iteration imports LiteLLM if needed (in
    a worker thread, so the event loop is not blocked for the seconds it takes), sends a new
    request and parses it with :func:`parse_litellm`. ``kwargs`` go to ``acompletion``
    (``api_base``, ``api_key``, ``temperature``, ``tools``, ``stream_options={"include_usage":
    True}`` for usage...); ``stream=True`` is forced. ``run_id``, ``agent``, ``keep_raw``,
    ``on_malformed`` and ``think_tags`` (split inline ``<think>...</think>`` reasoning into
    reasoning deltas, for models that write it in the text) go to the parser.

    Raises (while iterating): :class:`LiteLLMNotInstalledError`; whatever ``acompletion``
    raises before the stream starts (authentication, bad request, connection errors); what
    :func:`parse_litellm` raises.
    """
    request = {"model": model, "messages": [dict(m) for m in messages], **kwargs, "stream": True}
    options: ParserOptions = {
        "run_id": run_id,
        "agent": agent,
        "keep_raw": keep_raw,
        "on_malformed": on_malformed,
        "think_tags": think_tags,
    }
    return Stream(_LiteLLMSource(request, options))


class _LiteLLMSource:
    """Re-iterable source: each ``__aiter__`` sends a new request."""

    __slots__ = ("_options", "_request")

    def __init__(self, request: dict[str, Any], options: ParserOptions) -> None:
        self._request = request
        self._options = options

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        return _run(self._request, self._options)


async def _run(request: dict[str, Any], options: ParserOptions) -> AsyncGenerator[Event, None]:
    litellm = await anyio.to_thread.run_sync(import_litellm)
    response = await litellm.acompletion(**request)
    try:
        async with aclosing(parse_litellm(response, **options)) as events:
            async for ev in events:
                yield ev
    finally:
        # parse_litellm closes the response; this covers a cancellation that lands between
        # acompletion returning and the parser starting.
        await close_quietly(response)
