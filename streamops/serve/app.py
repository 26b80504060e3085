"""``streamops serve``: an OpenAI-compatible Chat Completions endpoint backed by an agent, with
the run's own event stream beside it.

:func:`create_app` builds a Starlette application::

    POST /v1/chat/completions    OpenAI Chat Completions (stream or not); header X-Streamops-Run-Id
    GET  /v1/models              the served models (OpenAI "List models"); /v1/models/{id} one
    GET  /runs/{run_id}/events   the run's streamops events as SSE (Last-Event-ID resume; 404 unknown)
    GET  /                       streamops/serve/static/index.html, or a placeholder page
    GET  /healthz                {"status": "ok", "model": ..., "runs": kept, "going": running, "max_runs": ...}
    POST /a2a                    the same agent over A2A (JSON-RPC: message/stream, message/send,
                                 tasks/get, tasks/cancel; see streamops.sinks.a2a)
    GET  /.well-known/agent-card.json   its A2A agent card

The A2A routes are there when the ``a2a-sdk`` package is installed (extra ``a2a``) and
``create_app(a2a=True)`` (the default). An A2A task runs the agent a completion would get,
built for :data:`A2A_REQUEST` (no client tools or sampling settings) on the message's text; a
local model is checked out of the pool for the task's run. A2A tasks are not in the run
registry (``tasks/get`` serves them).

Request (OpenAI API reference, "Create chat completion"): ``messages`` (required; roles
``system``, ``developer``, ``user``, ``assistant``, ``tool``, ``function``), ``model`` (one of
``GET /v1/models``: the model's own name, and ``local`` for the local model; absent or empty:
the served model; another name: ``404`` with code ``model_not_found``), ``stream``,
``stream_options.include_usage``, ``max_tokens`` /
``max_completion_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed`` (passed to the model
when its ``stream`` accepts them), ``tools`` (function tools: offered to the model, see below),
``n`` (only 1). Other fields are accepted and ignored. A body that is not JSON or not a valid
request gets ``400 {"error": {"message", "type": "invalid_request_error", "param", "code"}}``,
as OpenAI answers (also for JSON nested past 100 levels, ``NaN``, or an integer of more than
4,300 digits; a field out of its range names it in ``param``); a body past ``max_body_bytes``
gets 413, one slower than ``body_timeout`` 408 (see :func:`create_app`); a body sent as another
media type than JSON (``text/plain``...) gets 415, a wrong method 405, a server that is at its
run limit 503 (completions and A2A tasks count together), a prompt longer than the model's
context window ``400`` with code ``context_length_exceeded`` (streamed or not: a streamed
response starts once the run's first model call took the prompt, which the local model does
after checking it against its context window and before computing any token), all in the
same shape.

Responses: ``stream: true`` -> ``text/event-stream`` of ``chat.completion.chunk`` objects and
``data: [DONE]`` (see :mod:`streamops.sinks.openai` for the mapping, the non-OpenAI finish
reasons ``error``/``cancelled`` and the error chunk); ``stream: false`` -> one
``chat.completion`` object (``choices[0].message`` with ``content`` and ``tool_calls``,
``finish_reason``, ``usage``). Both carry ``X-Streamops-Run-Id``: the run's id for
``GET /runs/{run_id}/events``.

Tools: tool calls for tools the *client* declared in ``tools`` are the client's to execute, as
with any OpenAI endpoint: they are returned to the client and never executed here. The
client's tools are offered to the model (as :class:`~streamops.models.ToolSpec` s); when a step
asks for a tool the agent does not have, the run ends right after that step with
``RunEnd(status="completed", finish_reason="tool_calls")`` (the run log shows it; the agent's
own hooks see the run cancelled, since its consumer stopped). Tools the *agent* has (an
``agent_factory`` agent built with tools) run server-side as usual; their calls, results and
intermediate steps stay in the run log and are not sent as ``tool_calls`` to the client,
which receives the text of every step and the final finish reason.

Runs: every completion is one agent run owned by a :class:`~streamops.serve.runlog.RunRegistry`
(opened by the app's lifespan), so it keeps its events for ``GET /runs/{id}/events`` (the last
``max_runs`` runs, ``capacity`` events each). A client that disconnects from
``/v1/chat/completions`` cancels its run: the model request is closed (the provider sees the
connection closed; the local model stops within one token).

Models: ``model`` is ``None`` / ``"local"`` / ``"smollm2"`` (the default): a pool of ``workers``
:class:`~streamops.adapters.local.LocalModel` instances (SmolLM2-135M-Instruct, offline).
llama.cpp is not thread-safe, so one instance runs one generation at a time; the pool lets
``workers`` requests generate at once (each instance costs its memory, about 0.2 GB for
SmolLM2, and its threads: keep ``workers`` at or below the cores), and further requests wait
for a free instance. Any other string is resolved per request with
:func:`~streamops.adapters.models.resolve_model` (so ``"replay:a.sse,b.sse"`` replays from the first
body for every request, and a LiteLLM name makes one client per request); a
:class:`~streamops.models.Model` object is shared by all requests as it is.

Per request the agent is ``Agent(model, model_settings={"max_tokens": max_tokens or 256,
...})``; settings the model's ``stream`` does not accept are left out (a replay takes none).
``agent_factory(request)`` replaces that: it gets the :class:`ChatCompletionRequest` and returns
an :class:`~streamops.Agent` (a new one per request: the server wraps its model to offer the
client's tools).
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._stream import Stream
from ..adapters.models import resolve_model
from ..agent import Agent, AgentStream
from ..events import (
    BaseEvent,
    ErrorEvent,
    RunEnd,
    StepEnd,
    StepStart,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    derive,
)
from ..models import Model, ToolSpec
from ..operators.aggregate import Accumulator
from ..sinks.openai import ChunkEncoder, completion_object
from ._limits import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, BodyError, RunLimit, decode_json, read_body

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from ..stores import RunStore
    from .runlog import RunHandle, RunRegistry

__all__ = ["ChatCompletionRequest", "StreamOptions", "app_from_env", "create_app"]

DEFAULT_MAX_TOKENS = 256
"""``max_tokens`` when the request gives none (the local model would otherwise run to its
context window)."""

RUN_ID_HEADER = "X-Streamops-Run-Id"

TOKENS_CEILING = 2**31 - 1
"""The largest ``max_tokens`` a request may hold at all (a 32-bit signed int, what the model
back-ends take); ``create_app(max_output_tokens=...)`` sets the server's own, lower limit."""

DEFAULT_MAX_OUTPUT_TOKENS = 131_072
"""The default ``max_output_tokens`` of :func:`create_app`: 128 Ki tokens, the largest output
limit of OpenAI's current models (``max_completion_tokens`` of the GPT-5 family)."""


class StreamOptions(BaseModel):
    """``stream_options`` of a Chat Completions request."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False
    """Send a last chunk with ``choices: []`` and ``usage``."""


class ChatCompletionRequest(BaseModel):
    """The fields of an OpenAI ``POST /v1/chat/completions`` body the server reads (others are
    accepted and ignored).

    Ranges (OpenAI API reference, "Create chat completion"): ``max_tokens`` and
    ``max_completion_tokens`` 1 to :data:`TOKENS_CEILING` (the server's ``max_output_tokens``
    bounds them further), ``temperature`` 0-2, ``top_p`` 0-1, ``n`` 1 (the only value served),
    ``stop`` a string or up to 4 strings, ``tools`` up to 128, ``seed`` a 64-bit signed integer.
    Out of range: :class:`pydantic.ValidationError` (the server answers 400)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    max_tokens: int | None = Field(default=None, ge=1, le=TOKENS_CEILING)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=TOKENS_CEILING)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = Field(default=None, max_length=4)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    n: int | None = Field(default=None, ge=1, le=1)

    @property
    def output_limit(self) -> int | None:
        """``max_completion_tokens``, else ``max_tokens`` (tokens), else ``None``."""
        return self.max_completion_tokens or self.max_tokens

    def tool_specs(self) -> list[ToolSpec]:
        """The function tools of ``tools`` as :class:`ToolSpec` s (other tool types skipped)."""
        out = []
        for t in self.tools or ():
            fn = t.get("function") if t.get("type", "function") == "function" else None
            if isinstance(fn, dict) and fn.get("name"):
                out.append(
                    ToolSpec(
                        name=str(fn["name"]),
                        description=str(fn.get("description") or ""),
                        parameters=fn.get("parameters") or {"type": "object", "properties": {}},
                    )
                )
        return out

    def chat_messages(self) -> list[dict[str, Any]]:
        """The messages, with list-of-text-parts ``content`` joined into one string (chat
        templates of local models take strings); other content is left as sent."""
        out = []
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in c):
                m = {**m, "content": "".join(str(p.get("text", "")) for p in c)}
            out.append(m)
        return out


# ---------------------------------------------------------------------------- models


class _ClientTools:
    """A model that offers the client's tools beside the agent's own."""

    def __init__(self, inner: Model, specs: Sequence[ToolSpec]) -> None:
        self.inner = inner
        self.name = inner.name
        self.specs = list(specs)

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[ToolSpec] = (),
        **kwargs: Any,
    ) -> Stream[BaseEvent]:
        return self.inner.stream(messages, tools=[*tools, *self.specs], **kwargs)


def _accepted(model: Model, wanted: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``wanted`` that ``model.stream`` takes as keywords (a ``**options:
    Unpack[StreamOptions]`` takes the common stream options only, no settings)."""
    try:
        params = inspect.signature(model.stream).parameters
    except (TypeError, ValueError):
        return {}
    var = [p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    if var and "StreamOptions" not in str(var[0].annotation):
        return wanted
    return {k: v for k, v in wanted.items() if k in params}


class _Pool:
    """``size`` local models; ``acquire`` waits for a free one."""

    def __init__(self, size: int) -> None:
        from ..adapters.models import LocalModel

        self.models: list[Any] = [LocalModel(seed=i) for i in range(size)]
        self._free = list(self.models)
        self._sem: Any = None

    async def open(self) -> None:
        import anyio
        import anyio.to_thread

        self._sem = anyio.Semaphore(len(self.models))
        for m in self.models:  # one at a time (the local model loads one at a time anyway)
            try:
                await anyio.to_thread.run_sync(m.load)
            except Exception:  # reported per request instead (ModelNotInstalledError...)
                break

    async def acquire(self) -> Any:
        await self._sem.acquire()
        return self._free.pop()

    def release(self, model: Any) -> None:
        self._free.append(model)
        self._sem.release()

    def close(self) -> None:
        for m in self.models:
            try:
                m.close()
            except Exception:
                pass


class _PooledModel:
    """A model that checks a local model out of the pool for each of its streams, and returns
    it when the stream ends (the agent of an A2A task is built before its run starts)."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.name: str = pool.models[0].name

    def stream(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[ToolSpec] = (), **kwargs: Any
    ) -> Stream[BaseEvent]:
        return Stream.defer(self._run, messages, tools, kwargs)

    async def _run(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec], kwargs: dict[str, Any]
    ) -> AsyncGenerator[BaseEvent, None]:
        model = await self.pool.acquire()
        try:
            inner = model.stream(messages, tools=tools, **_accepted(model, kwargs))
            async with aclosing(inner.__aiter__()) as it:
                async for ev in it:
                    yield ev
        finally:
            self.pool.release(model)


class _Opening:
    """A model that reports its stream's first event (the model took the prompt) to ``opened``.

    The local model emits its first event once the prompt is tokenized and checked against the
    context window, before it computes any token; a provider once its request was accepted."""

    def __init__(self, inner: Model, opened: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.opened = opened

    def stream(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Stream[BaseEvent]:
        return Stream.defer(self._run, messages, kwargs)

    async def _run(
        self, messages: Sequence[Mapping[str, Any]], kwargs: dict[str, Any]
    ) -> AsyncGenerator[BaseEvent, None]:
        async with aclosing(self.inner.stream(messages, **kwargs).__aiter__()) as it:
            async for ev in it:
                if not isinstance(ev, ErrorEvent):
                    self.opened.set()
                yield ev


class _RunSource:
    """One completion's agent run: checks out a model (from the pool), builds the agent, and
    ends the run at the first step that calls a client tool.

    ``opened`` is set once the run's first model call took the prompt, or the run failed
    (``error``: its first :class:`ErrorEvent` before that), ended or stopped first: a streamed
    completion waits for it to answer a prompt over the context window with a 400."""

    def __init__(self, app_state: _State, request: ChatCompletionRequest, run_id: str) -> None:
        import anyio

        self.state = app_state
        self.request = request
        self.run_id = run_id
        self.agent: Agent | None = None
        self.agent_stream: AgentStream | None = None
        self.cancelled = False
        self._wait: Any = None
        self.opened = anyio.Event()
        self.error: ErrorEvent | None = None

    def cancel(self) -> None:
        """Cancel now: the agent's own cancel (it logs ``RunEnd(status="cancelled")``), or, while
        the run still waits for a free local model, stop waiting (the run then logs nothing)."""
        self.cancelled = True
        if self.agent_stream is not None:
            self.agent_stream.cancel()
        elif self._wait is not None:
            self._wait.cancel()

    async def _run(self) -> AsyncGenerator[BaseEvent, None]:
        import anyio

        st = self.state
        model: Any = None
        try:
            if st.pool is not None and st.agent_factory is None:
                with anyio.CancelScope() as self._wait:
                    if self.cancelled:
                        self._wait.cancel()
                    model = await st.pool.acquire()
                self._wait = None
                if model is None:
                    return
            agent = self.agent = st.make_agent(self.request, model)
            agent.model = _Opening(agent.model, self.opened)
            stream = self.agent_stream = agent.stream(self.request.chat_messages(), run_id=self.run_id)
            if self.cancelled:
                stream.cancel()
            last_seq = 0
            usage = Usage()
            client_calls = False
            async with aclosing(stream.__aiter__()) as it:
                async for ev in it:
                    if isinstance(ev, (ErrorEvent, RunEnd)) and not self.opened.is_set():
                        if isinstance(ev, ErrorEvent):
                            self.error = ev
                        self.opened.set()
                    last_seq = ev.seq
                    if isinstance(ev, (ToolCallStart, ToolCallEnd)) and ev.name and ev.name not in agent.tools:
                        client_calls = True
                    yield ev
                    if isinstance(ev, StepEnd):
                        usage = usage + (ev.usage or Usage())
                        if client_calls:
                            break
            if client_calls:
                # The client's tool calls are the client's to run: the run ends here (closing
                # the agent's stream above stopped it before it would run them).
                yield RunEnd(
                    run_id=self.run_id,
                    agent=agent.name,
                    seq=last_seq + 1,
                    status="completed",
                    finish_reason="tool_calls",
                    raw_finish_reason="tool_calls",
                    usage=usage,
                )
        finally:
            self.opened.set()
            if model is not None and st.pool is not None:
                st.pool.release(model)


class _RunStream(Stream[BaseEvent]):
    """The stream a registry runs: :meth:`cancel` is what ``RunHandle.cancel()`` calls first."""

    __slots__ = ("_run_source",)

    def __init__(self, source: _RunSource, store: RunStore | None = None, run_id: str = "") -> None:
        stream: Stream[BaseEvent] = Stream.defer(source._run)
        if store is not None:  # the run's events also go to the shared store, under run_id
            from ..stores import publish

            stream = stream | publish(store, run_id)
        super().__init__(stream._source, stream._stages)
        self._run_source = source

    def cancel(self) -> None:
        self._run_source.cancel()


class _State:
    """What the routes share (built by :func:`create_app`, opened by the lifespan)."""

    def __init__(
        self,
        model: str | Model | None,
        agent_factory: Callable[[ChatCompletionRequest], Agent] | None,
        workers: int,
        default_max_tokens: int,
    ) -> None:
        self.agent_factory = agent_factory
        self.default_max_tokens = default_max_tokens
        self.pool: _Pool | None = None
        self.spec: str | None = None
        self.shared: Model | None = None
        local = model is None or (isinstance(model, str) and model.strip().lower() in ("local", "smollm2"))
        if agent_factory is None and local:
            self.pool = _Pool(workers)
            self.model_name = self.pool.models[0].name
        elif isinstance(model, str):
            self.spec = model
            self.model_name = model.split(":", 1)[0] if model.lower().startswith("replay:") else model
            resolve_model(model)  # fail now on a bad spec (missing replay file...), not per request
        elif model is not None:
            self.shared = model
            self.model_name = model.name
        else:
            self.model_name = "agent"
        self.aliases: tuple[str, ...] = ("local",) if self.pool is not None else ()
        self.registry: RunRegistry | None = None

    @property
    def served(self) -> list[str]:
        """The model names a request may give (``GET /v1/models``)."""
        return [self.model_name, *(a for a in self.aliases if a != self.model_name)]

    def make_agent(self, request: ChatCompletionRequest, pooled: Model | None) -> Agent:
        specs = request.tool_specs()
        if self.agent_factory is not None:
            agent = self.agent_factory(request)
            if specs:
                agent.model = _ClientTools(agent.model, specs)
            return agent
        model: Model = pooled if pooled is not None else self.shared or resolve_model(self.spec)
        wanted: dict[str, Any] = {"max_tokens": request.output_limit or self.default_max_tokens}
        for k in ("temperature", "top_p", "stop", "seed"):
            v = getattr(request, k)
            if v is not None:
                wanted[k] = v
        settings = _accepted(model, wanted)
        return Agent(_ClientTools(model, specs) if specs else model, model_settings=settings)

    def a2a_agent(self) -> Agent:
        """The agent of one A2A task: built as for a completion with no client settings
        (:data:`A2A_REQUEST`); a local model is checked out of the pool for its run."""
        pooled = _PooledModel(self.pool) if self.pool is not None and self.agent_factory is None else None
        return self.make_agent(A2A_REQUEST.model_copy(deep=True), pooled)


# ---------------------------------------------------------------------------- routes


def _error(
    status: int,
    message: str,
    *,
    etype: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse(
        {"error": {"message": message, "type": etype, "param": param, "code": code}},
        status_code=status,
        headers=dict(headers) if headers else None,
    )


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
"""The message roles of the Chat Completions API."""

_CONTEXT_ERRORS = frozenset({"ContextWindowError", "context_length_exceeded"})
"""Error types (a run's ``ErrorEvent.error_type``) of a prompt longer than the context window."""


def _bad_role(messages: Sequence[Mapping[str, Any]]) -> Response | None:
    for i, m in enumerate(messages):
        role = m.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            return _error(
                400,
                f"messages[{i}].role: {role!r} is not one of {', '.join(sorted(_ROLES))}",
                param=f"messages.{i}.role",
            )
    return None


async def _left_before(request: Request, done: Callable[[], Awaitable[object]]) -> bool:
    """Await ``done()`` (e.g. an ``anyio.Event``'s ``wait``); ``True`` if the client went away
    first, which cancels ``done()`` (the request body was read: its next ASGI message is
    ``http.disconnect``, sent when the client goes away or once the response is complete).
    An error of ``done()`` propagates in a ``BaseExceptionGroup`` (anyio task group)."""
    import anyio

    left = False

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left = True
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        await done()
        tg.cancel_scope.cancel()
    return left


async def _client_events(handle: RunHandle, server_tools: Mapping[str, Any]) -> AsyncGenerator[BaseEvent, None]:
    """The run's events the client sees (followed from its start): tool calls of the agent's
    own tools left out."""
    hidden: set[str] = set()
    shown = False  # a tool call of the current step (or, at the run end, the last one) was sent
    async with aclosing(handle.follow(None)) as it:
        async for ev in it:
            if isinstance(ev, (ToolCallStart, ToolCallEnd)) and ev.name in server_tools:
                hidden.add(ev.call_id)
                continue
            if isinstance(ev, (ToolCallDelta, ToolCallStart, ToolCallEnd)):
                if ev.call_id in hidden:
                    continue
                shown = True
            elif isinstance(ev, StepStart):
                shown = False
            elif isinstance(ev, (StepEnd, RunEnd)) and ev.finish_reason == "tool_calls" and not shown:
                # Every call of the step was the server's own: to the client, no tool call was
                # asked for. A run that ran out of steps there was cut short by a limit.
                limited = isinstance(ev, RunEnd) and ev.status == "max_steps"
                ev = derive(ev, finish_reason="length" if limited else None)
            yield ev


def create_app(
    *,
    model: str | Model | None = None,
    agent_factory: Callable[[ChatCompletionRequest], Agent] | None = None,
    workers: int = 2,
    max_runs: int = 256,
    capacity: int = 10_000,
    heartbeat: float = 15.0,
    retry_ms: int = 1000,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    a2a: bool = True,
    store: RunStore | str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
    dispatch: bool = False,
    dispatch_timeout: float = 60.0,
) -> Starlette:
    """The OpenAI-compatible streamops server as a Starlette app (see the module docstring).

    Args:
        model: the model that answers: ``None``/``"local"`` (a pool of ``workers`` local
            SmolLM2 models), a model string resolved per request (``"replay:a.sse"``, a LiteLLM
            name), or a :class:`~streamops.models.Model` shared by all requests.
        agent_factory: builds the agent for a request instead (``model`` is then unused).
        workers: local model instances, i.e. local generations at once (>= 1).
        max_runs: runs whose events are kept for ``/runs/{id}/events`` (oldest ended first
            out), and the runs that may go at once, completions and A2A tasks together: past
            it a new completion gets 503 (OpenAI error shape, ``Retry-After: 1``), a new A2A
            ``message/stream``/``message/send`` HTTP 503 with a JSON-RPC error (code -32000).
        capacity: events kept per run.
        heartbeat: seconds between SSE comment heartbeats on ``/runs/{id}/events``.
        retry_ms: the SSE ``retry`` (reconnection delay, milliseconds) sent to event clients.
        default_max_tokens: ``max_tokens`` when a request gives none.
        store: a :class:`~streamops.stores.RunStore` (or its URL: ``memory:``, ``sqlite:PATH``,
            ``redis://HOST:PORT/DB``) that every completion's events are published into, under
            the run id; ``/runs/{id}/events`` is then served from it with the store's ids, so a
            client resumes with ``Last-Event-ID`` on any process sharing the store and after a
            restart. ``None``: runs live in this process's registry only.
        a2a: also serve the agent over A2A (``POST /a2a``, ``GET
            /.well-known/agent-card.json``) when the a2a-sdk package is installed.
        max_body_bytes: request body limit in bytes (default 4 MiB), on every route that
            reads a body; past it 413 (code ``body_too_large``). The body is read as it
            arrives and never held past the limit.
        body_timeout: seconds a client has to send a whole body (default 30; ``None``: no
            limit); past it 408 (code ``body_timeout``). Slow request *heads* are the
            HTTP server's to cut: see :func:`streamops.serve.head_timeout_protocol` (``streamops
            serve --head-timeout``).
        max_output_tokens: the largest ``max_tokens``/``max_completion_tokens`` a request may
            ask for (default 131,072); past it 400 with ``param`` naming the field.
        dispatch: enqueue each completion for an agent worker (``streamops worker``, see
            :mod:`streamops.serve.worker`) in the Redis of ``store`` (a
            :class:`~streamops.stores.RedisStore`) instead of running it here, and answer it by
            following its run in the store. The server loads no local model then;
            ``agent_factory`` (if any) is called only to learn which tools are the agent's own
            (their calls are not sent to the client). A2A tasks still run in this process.
        dispatch_timeout: seconds a dispatched completion waits for a worker to start its run
            before it is answered ``503`` (and its request cancelled).

    A body that is not JSON, holds an integer of more than 4,300 digits, ``NaN`` or
    ``Infinity``, or nests deeper than :data:`~streamops.serve._limits.MAX_JSON_DEPTH` (100)
    levels gets 400 (codes ``invalid_json``, ``nested_too_deep``) on the completion route and
    the JSON-RPC parse error (-32700) on ``/a2a``.
    Raises:
        ValueError: ``workers`` < 1, ``max_runs``/``max_body_bytes``/``max_output_tokens`` <
            1, ``body_timeout`` not positive, a bad model string, or ``dispatch`` without a Redis
            store.
        OSError: a ``replay:`` file cannot be read.
    """
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from ..sinks._asgi import EventStreamResponse, Write, encoder_producer
    from ..sinks.sse import SSE_HEADERS

    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers}")
    for name, value in (("max_body_bytes", max_body_bytes), ("max_output_tokens", max_output_tokens)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, not {value}")
    if body_timeout is not None and not body_timeout > 0:
        raise ValueError(f"body_timeout must be a positive number of seconds or None, not {body_timeout!r}")
    limit = RunLimit(max_runs, lambda: 0 if state.registry is None else state.registry.running)
    state = _State(model, agent_factory, workers, default_max_tokens)
    started = int(time.time())
    if isinstance(store, str):
        from ..stores import open_store

        store = open_store(store)
    run_store: RunStore | None = store
    queue: Any = None
    if dispatch:
        from ..stores.redis import RedisStore
        from .dispatch import RequestQueue

        if not isinstance(store, RedisStore):
            raise ValueError("dispatch needs a Redis run store (store='redis://HOST:PORT/DB'): the workers' queue")
        queue = RequestQueue(store.url, prefix=store.prefix)
    spawn: list[Any] = []  # the lifespan's task group's start_soon (dispatch: cancel flags)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import anyio

        from .runlog import RunRegistry

        if state.pool is not None and queue is None:
            await state.pool.open()
        async with RunRegistry(max_runs=max_runs, capacity=capacity) as registry, anyio.create_task_group() as tg:
            state.registry = registry
            spawn.append(tg.start_soon)
            try:
                yield
            finally:
                state.registry = None
                spawn.clear()
        if state.pool is not None:
            state.pool.close()
        if queue is not None:
            await queue.aclose()
        if run_store is not None:
            await run_store.aclose()

    async def chat_completions(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            return _error(415, f"the request body must be JSON (Content-Type: application/json), not {media}")
        try:
            body = decode_json(await read_body(request, max_bytes=max_body_bytes, seconds=body_timeout))
        except BodyError as exc:
            return _error(exc.status, str(exc), code=exc.code, headers={"Connection": "close"})
        try:
            req = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in e["loc"])
            return _error(400, f"{loc}: {e['msg']}", param=loc or None)
        for field in ("max_tokens", "max_completion_tokens"):
            asked = getattr(req, field)
            if asked is not None and asked > max_output_tokens:
                return _error(
                    400, f"{field}: at most {max_output_tokens} tokens on this server, not {asked}", param=field
                )
        bad = _bad_role(req.messages)
        if bad is not None:
            return bad
        if req.model and req.model not in state.served:
            return _model_not_found(req.model)
        registry = state.registry
        assert registry is not None, "the app's lifespan did not run"
        run_id = uuid.uuid4().hex
        source: Any
        handle: Any
        if queue is not None:  # a worker runs it: enqueue, then follow the run in the store
            from .dispatch import DispatchedRun

            assert run_store is not None
            source = handle = DispatchedRun(run_store, queue, run_id, spawn[0])
            if state.agent_factory is not None:
                source.agent = state.agent_factory(req)  # only its tools are looked at
            await queue.enqueue(run_id, req.model_dump_json(exclude_unset=True))
            if not await handle.started(dispatch_timeout):
                return _error(
                    503, f"no worker started the run within {dispatch_timeout:g} s", etype="server_error"
                )
        else:
            source = _RunSource(state, req, run_id)
            from .runlog import RunLimitError

            try:
                limit.check()  # completions and A2A tasks together
                handle = registry.start(_RunStream(source, run_store, run_id), run_id=run_id, on_disconnect="cancel")
            except RunLimitError as exc:  # max_runs runs are going
                return _error(
                    503, f"cannot start a run: {exc}", etype="server_error", headers={"Retry-After": "1"}
                )
        completion_id = f"chatcmpl-{run_id}"
        model_name = state.model_name
        headers = {RUN_ID_HEADER: run_id}

        def server_tools() -> Mapping[str, Any]:
            return source.agent.tools if source.agent is not None else {}

        if not req.stream:
            acc = Accumulator()

            async def collect() -> None:
                async with aclosing(_client_events(handle, _Lazy(server_tools))) as events:
                    async for ev in events:
                        acc.add(ev)

            try:
                left = await _left_before(request, collect)
            except BaseExceptionGroup as group:  # the run's own error, as the route raised it before
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            finally:  # the client left, or this handler was cancelled: stop the run (no-op once done)
                handle.cancel()
            if left:  # nobody to answer; the status is for the access log
                return Response(status_code=499, headers=headers)
            msg = acc.message()
            if msg.error is not None and not msg.text and not msg.tool_calls:
                if msg.error.type in _CONTEXT_ERRORS:  # the client's prompt is too long: its error
                    return _error(400, msg.error.message, param="messages", code="context_length_exceeded")
                return _error(502, f"{msg.error.type}: {msg.error.message}", etype="server_error")
            obj = completion_object(msg, model=model_name, completion_id=completion_id)
            return JSONResponse(obj, headers=headers)

        # Streamed: the status goes out with the first byte, so wait until the model took the
        # prompt (the local model: tokenized and checked against its context window, before
        # any token is computed), and answer a prompt over the window with OpenAI's 400.
        if await _left_before(request, source.opened.wait):
            handle.cancel()
            return Response(status_code=499, headers=headers)
        if source.error is not None and source.error.error_type in _CONTEXT_ERRORS:
            handle.cancel()
            return _error(400, source.error.message, param="messages", code="context_length_exceeded")
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        enc = ChunkEncoder(model=model_name, completion_id=completion_id, include_usage=include_usage)
        produce = encoder_producer(_client_events(handle, _Lazy(server_tools)), enc)

        async def produce_then_cancel(write: Write) -> None:
            try:
                await produce(write)
            finally:  # a client that left (or fell behind the log) stops the run; no-op once done
                handle.cancel()

        return EventStreamResponse(produce_then_cancel, headers={**SSE_HEADERS, **headers})

    async def run_events(request: Request) -> Response:
        from ..sinks.sse import sse_response
        from .runlog import UnknownRunError

        registry = state.registry
        assert registry is not None
        run_id = request.path_params["run_id"]
        if run_store is not None:  # 404/409 as below, from the shared store
            from ..stores.sse import store_sse_response

            return store_sse_response(run_store, run_id, heartbeat=heartbeat, retry_ms=retry_ms)
        try:
            handle = registry.get(run_id)
        except UnknownRunError as exc:
            return _error(404, str(exc), etype="not_found_error")
        # The response reads Last-Event-ID itself (a stale id gives 409 Conflict). A watcher
        # going away never cancels the run: only the completion's own client does.
        return sse_response(handle, heartbeat=heartbeat, retry_ms=retry_ms, on_disconnect="continue")

    def _model_not_found(name: str) -> Response:
        return _error(
            404,
            f"The model {name!r} does not exist or you do not have access to it (served: {', '.join(state.served)})",
            param="model",
            code="model_not_found",
        )

    def _model_object(name: str) -> dict[str, Any]:
        # OpenAI's model object; "created" is when this server started (seconds since the epoch)
        return {"id": name, "object": "model", "created": started, "owned_by": "streamops"}

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [_model_object(n) for n in state.served]})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model"]
        if name not in state.served:
            return _model_not_found(name)
        return JSONResponse(_model_object(name))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        from starlette.exceptions import HTTPException

        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = exc.headers if isinstance(exc, HTTPException) else None
        if status == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}", headers=headers)
        if status == 404:
            return _error(404, f"no route {request.url.path}", etype="not_found_error")
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return _error(status, str(detail), etype="server_error" if status >= 500 else "invalid_request_error")

    async def index(request: Request) -> Response:
        return HTMLResponse(_index_html())

    async def healthz(request: Request) -> Response:
        registry = state.registry
        return JSONResponse(
            {
                "status": "ok",
                "model": state.model_name,
                "runs": 0 if registry is None else len(registry),
                "going": limit.going,
                "max_runs": max_runs,
            }
        )

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/runs/{run_id}/events", run_events, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if a2a:
        routes += _a2a_routes(state, heartbeat, limit, max_body_bytes, body_timeout)
    from starlette.exceptions import HTTPException

    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_allowed})


A2A_REQUEST = ChatCompletionRequest(messages=[{"role": "user", "content": ""}])
"""The request an A2A task's agent is built for (``agent_factory`` is called with it): no
client tools, no sampling settings (the run's input is the A2A message's text)."""


def _a2a_routes(
    state: _State, heartbeat: float, limit: RunLimit, max_body_bytes: int, body_timeout: float | None
) -> list[Route]:
    """The A2A routes serving the app's agent, or none without the a2a-sdk package."""
    from .a2a import a2a_routes

    try:
        return a2a_routes(
            state.a2a_agent,
            name=f"streamops ({state.model_name})",
            heartbeat=heartbeat,
            run_limit=limit,
            max_body_bytes=max_body_bytes,
            body_timeout=body_timeout,
        )
    except ImportError:
        return []


class _Lazy(Mapping[str, Any]):
    """A mapping read through a function at each lookup (the agent exists once the run starts)."""

    def __init__(self, fn: Callable[[], Mapping[str, Any]]) -> None:
        self._fn = fn

    def __getitem__(self, key: str) -> Any:
        return self._fn()[key]

    def __iter__(self) -> Any:
        return iter(self._fn())

    def __len__(self) -> int:
        return len(self._fn())

    def __contains__(self, key: object) -> bool:
        return key in self._fn()


SERVE_ENV = "STREAMOPS_SERVE_OPTIONS"
"""The environment variable through which ``streamops serve --processes N`` passes the options
of :func:`create_app` (JSON: ``model``, ``workers``, ``default_max_tokens``, ``store``,
``dispatch``, and ``agent``: an agent factory's ``module:attribute``) to each
uvicorn worker process, which builds its app with :func:`app_from_env`."""


def app_from_env() -> Starlette:
    """The app of one uvicorn worker process (``uvicorn --factory``): :func:`create_app` with
    the JSON options in ``$STREAMOPS_SERVE_OPTIONS``.

    Raises:
        RuntimeError: the variable is not set. ValueError, OSError: as :func:`create_app`.
    """
    import os

    raw = os.environ.get(SERVE_ENV)
    if raw is None:
        raise RuntimeError(f"app_from_env() needs ${SERVE_ENV} (set by `streamops serve --processes N`)")
    options = json.loads(raw)
    agent = options.pop("agent", None)
    if agent:  # "module:attribute" of an agent factory (serve --agent)
        from .dispatch import load_agent_factory

        options["agent_factory"] = load_agent_factory(agent)
    return create_app(**options)


def _index_html() -> str:
    from importlib.resources import files

    try:
        return (files("streamops.serve") / "static" / "index.html").read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, OSError):
        return _PLACEHOLDER


_PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamops</title></head>
<body><h1>streamops</h1>
<p>OpenAI-compatible endpoint: <code>POST /v1/chat/completions</code>.
A run's events: <code>GET /runs/{run_id}/events</code> (the id is in the
<code>X-Streamops-Run-Id</code> response header).</p></body></html>
"""
