"""One benchmark request against a target: an OpenAI-compatible endpoint over httpx, parsed
by streamops' own sans-IO SSE decoder and wire parsers, or a streamops model (local,
LiteLLM, replay) consumed as events. Each request feeds a :class:`~._metrics.Recorder`."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio

from streamops._stream import Stream
from streamops.errors import StreamFormatError, TruncatedStreamError
from streamops.events import BaseEvent, RunEnd
from streamops.sse import SSEDecoder

from ._metrics import Recorder, RequestTiming

if TYPE_CHECKING:
    import httpx

    from streamops.models import Model

__all__ = ["Pipeline", "RequestParams", "Target", "TokenCounter", "run_request"]

Pipeline = Callable[[Stream[BaseEvent]], Stream[BaseEvent]]
"""A user pipeline: a stream of events in, a stream of events out."""


@dataclass(slots=True, kw_only=True)
class Target:
    """What to benchmark.

    - ``kind="http"``: an OpenAI-compatible server at ``url`` (its ``/v1`` base), Chat
      Completions (``api="chat"``) or Responses (``api="responses"``), model ``model``,
      bearer ``api_key`` (default ``$OPENAI_API_KEY``).
    - ``kind="model"``: a streamops model as :func:`streamops.adapters.models.resolve_model` names it
      (``local``, a LiteLLM name such as ``anthropic/claude-...``), or ``replay`` with
      ``replay`` (a recorded ``.sse`` body) played with ``delay`` seconds between events.
    """

    kind: Literal["http", "model"]
    model: str
    url: str = ""
    api: Literal["chat", "responses"] = "chat"
    api_key: str | None = None
    replay: str | None = None
    delay: float = 0.0
    label: str = ""
    _model: Model | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.url or (f"replay:{Path(self.replay).name}" if self.replay else self.model)
        if self.api_key is None:
            self.api_key = os.environ.get("OPENAI_API_KEY")

    def resolve(self) -> Model:
        """The streamops model of a ``model`` target: made once, except a replay, made anew
        for each request (a :class:`~streamops.adapters.replay.ReplayModel` plays its body
        once)."""
        if self.replay is not None:
            from streamops.adapters.replay import ReplayModel

            replay: Model = ReplayModel([self.replay], delay=self.delay)
            return replay
        if self._model is None:
            from streamops.adapters.models import resolve_model

            model: Model = resolve_model(self.model)
            self._model = model
        return self._model


class TokenCounter:
    """Counts output tokens with ``count_tokens``' default encoding (``o200k_base``), for
    responses that report no usage. The encoding is loaded on first need, in a worker thread
    (it blocks for 0.5-2 s: on the event loop it would stall every stream in flight); calling
    the counter returns ``None`` when it cannot be loaded offline (no litellm/tiktoken)."""

    def __init__(self) -> None:
        self._count: Callable[[str], int] | None = None
        self._failed = False

    async def ready(self) -> None:
        """Load the encoding, once (in a worker thread)."""
        if self._count is None and not self._failed:
            from streamops.operators.tokens import load_encoding

            try:
                self._count = await anyio.to_thread.run_sync(load_encoding)
            except RuntimeError:
                self._failed = True

    def __call__(self, text: str) -> int | None:
        return None if self._count is None else self._count(text)


@dataclass(slots=True, kw_only=True)
class RequestParams:
    """Sampling parameters of every request: ``max_tokens`` (``None``: the server's default),
    ``temperature``, ``seed`` (``None``: not sent), ``timeout`` (seconds without a byte before
    a request fails with kind ``timeout``), ``total_timeout`` (seconds for the whole request)."""

    max_tokens: int | None = 128
    temperature: float | None = 0.0
    seed: int | None = None
    timeout: float = 30.0
    total_timeout: float = 600.0


def _body(target: Target, prompt: str, params: RequestParams) -> tuple[str, dict[str, Any]]:
    base = target.url.rstrip("/")
    body: dict[str, Any] = {"model": target.model, "stream": True}
    if target.api == "responses":
        body["input"] = prompt
        if params.max_tokens is not None:
            body["max_output_tokens"] = params.max_tokens
        path = "/responses"
    else:
        body["messages"] = [{"role": "user", "content": prompt}]
        body["stream_options"] = {"include_usage": True}
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.seed is not None:
            body["seed"] = params.seed
        path = "/chat/completions"
    if params.temperature is not None:
        body["temperature"] = params.temperature
    return base + path, body


def _classify(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, TruncatedStreamError):
        return "truncated"
    if isinstance(exc, StreamFormatError):
        return "malformed"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    if isinstance(exc, httpx.HTTPError):
        return "http"
    return type(exc).__name__


async def _open_ok(resp: httpx.Response, rec: Recorder) -> bool:
    """True when ``resp`` is a 200 event stream; else the failure is recorded in ``rec``."""
    if resp.status_code != 200:
        detail = (await resp.aread())[:300].decode("utf-8", "replace")
        rec.fail(f"http-{resp.status_code}", detail)
        return False
    ctype = resp.headers.get("content-type", "")
    if not ctype.startswith("text/event-stream"):
        detail = (await resp.aread())[:300].decode("utf-8", "replace")
        rec.fail("not-sse", f"content-type {ctype!r}: {detail}")
        return False
    return True


async def _sse_events(resp: httpx.Response, target: Target, rec: Recorder) -> AsyncGenerator[BaseEvent, None]:
    """The parsed events of an open event-stream response, feeding ``rec`` as bytes arrive
    (the caller holds the response open: no context is held here across a ``yield``).

    Raises:
        StreamFormatError: malformed input; TruncatedStreamError: no ``[DONE]``/final event.
    """
    from streamops.adapters import parser_for

    clock = time.perf_counter
    decoder = SSEDecoder()
    parser = parser_for("openai-responses" if target.api == "responses" else "openai-chat")
    async with aclosing(cast("AsyncGenerator[bytes, None]", resp.aiter_raw())) as received:
        async for raw in received:
            now = clock()
            for sse in decoder.feed(raw):
                if not sse.data:
                    continue
                events = parser.feed_json(None if sse.event == "message" else sse.event, sse.data)
                if events:
                    rec.feed(now, events)
                    for ev in events:
                        yield ev
            if parser.ended:
                return
    now = clock()
    for sse in decoder.flush():
        if sse.data:
            events = parser.feed_json(None if sse.event == "message" else sse.event, sse.data)
            rec.feed(now, events)
            for ev in events:
                yield ev
    events = parser.close()  # raises TruncatedStreamError without [DONE] / a final event
    rec.feed(clock(), events)
    for ev in events:
        yield ev


async def _model_events(target: Target, prompt: str, rec: Recorder) -> AsyncGenerator[BaseEvent, None]:
    model = target.resolve()
    clock = time.perf_counter
    async for ev in model.stream([{"role": "user", "content": prompt}]):
        rec.feed(clock(), (ev,))
        if isinstance(ev, RunEnd) and ev.status != "completed" and rec.timing.error is None:
            rec.fail("run-" + ev.status, f"finish reason {ev.raw_finish_reason!r}")
        yield ev


async def run_request(
    *,
    client: httpx.AsyncClient | None,
    target: Target,
    prompt: str,
    params: RequestParams,
    timing: RequestTiming,
    t0: float,
    count: Callable[[str], int | None] | None = None,
    pipeline: Pipeline | None = None,
    keep: list[BaseEvent] | None = None,
) -> RequestTiming:
    """Run one request; return its timing (never raises for a failed request: its ``error``
    says the kind). ``t0`` is its start on ``time.perf_counter``'s clock; ``count`` counts
    output tokens when usage is not reported; ``pipeline`` is applied to the parsed events
    and its added latency recorded; ``keep`` receives the raw events (for the pipeline's CPU
    measurement)."""
    rec = Recorder(timing, t0)
    clock = time.perf_counter
    last_raw = 0.0

    async def consume(source: Callable[[], AsyncGenerator[BaseEvent, None]]) -> None:
        async def raw() -> AsyncGenerator[BaseEvent, None]:
            nonlocal last_raw
            async with aclosing(source()) as gen:
                async for ev in gen:
                    last_raw = clock()
                    if keep is not None:
                        keep.append(ev)
                    yield ev

        if pipeline is None:
            async with aclosing(raw()) as events:
                async for _ in events:
                    pass
            return
        out_last = 0.0
        try:
            async for _ in pipeline(Stream.defer(raw)):
                out_last = clock()
        except (StreamFormatError, TimeoutError, OSError):
            raise
        except Exception as exc:
            import httpx

            if isinstance(exc, httpx.HTTPError) or rec.timing.error is not None:
                raise
            rec.fail("pipeline", f"{type(exc).__name__}: {exc}")
        if last_raw:
            timing.pipeline_s = max(out_last - last_raw, 0.0)

    try:
        with anyio.fail_after(params.total_timeout):
            if target.kind == "http":
                assert client is not None
                url, body = _body(target, prompt, params)
                headers = {"accept": "text/event-stream"}
                if target.api_key:
                    headers["authorization"] = f"Bearer {target.api_key}"
                async with client.stream("POST", url, json=body, headers=headers) as resp:
                    if await _open_ok(resp, rec):
                        await consume(lambda: _sse_events(resp, target, rec))
            else:
                await consume(lambda: _model_events(target, prompt, rec))
    except Exception as exc:
        rec.fail(_classify(exc), f"{type(exc).__name__}: {exc}")
    end = clock()
    if isinstance(count, TokenCounter) and rec.needs_count:
        await count.ready()
    return rec.finish(end, count)
