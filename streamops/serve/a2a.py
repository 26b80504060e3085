"""A2A routes: an agent served as A2A tasks (protocol 0.3, JSON-RPC 2.0 + SSE).

``POST /a2a`` takes ``message/stream``, ``message/send``, ``tasks/get`` and ``tasks/cancel``;
``GET /.well-known/agent-card.json`` returns the agent card. Each task's events are encoded by
:class:`streamops.sinks.a2a.A2AEncoder` (the wire mapping is documented there). A
``tasks/cancel`` cancels the running :class:`~streamops.agent.AgentStream` (``cancel()``), and
the task's stream ends with the ``canceled`` final status.

Requires the ``a2a-sdk`` package (extra ``a2a``) and starlette (extra ``server``); both are
imported on first use.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events import RunEnd
from ..sinks.a2a import A2A_PROTOCOL_VERSION, A2AEncoder, a2a_types_module
from ._limits import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES, BodyError, RunLimit, decode_json, read_body
from .runlog import RunLimitError

if TYPE_CHECKING:
    import anyio
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from ..agent import Agent, AgentStream

__all__ = ["a2a_routes"]


class _Entry:
    """One task: its run, its encoder (the task as it stands), and what ends it."""

    __slots__ = ("done", "encoder", "release", "stream")

    def __init__(self, stream: AgentStream, encoder: A2AEncoder, release: Callable[[], None]) -> None:
        import anyio as _anyio

        self.stream = stream
        self.encoder = encoder
        self.done: anyio.Event = _anyio.Event()
        self.release = release
        """Gives the task's place under the run limit back (idempotent)."""

    def finish(self) -> None:
        """The task's body is over (however it ended): a task whose final status was not
        encoded (the client left, so the run was cancelled) records how its run ended; then
        the place under the run limit is given back and ``tasks/cancel`` stops waiting."""
        try:
            if not self.encoder.finished:
                self.encoder.encode(self.stream.result_end or RunEnd(status="cancelled"))
        finally:
            self.done.set()
            self.release()


class _RpcError(Exception):
    def __init__(self, error: Any) -> None:
        super().__init__(error.message)
        self.error = error


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    from starlette.responses import Response

    # ensure_ascii: a lone surrogate (in an id a client sent) is written as an escape, never
    # a UnicodeEncodeError
    return Response(json.dumps(data), status_code=status, media_type="application/json", headers=headers)


SERVER_BUSY = -32000
"""The JSON-RPC error code of a task refused because the run limit is reached (-32000 is the
first of JSON-RPC 2.0's "implementation-defined server errors", -32000 to -32099; A2A
defines none for it). Sent with HTTP 503 and ``Retry-After: 1``."""


def a2a_routes(
    agent_factory: Callable[[], Agent],
    *,
    path: str = "/a2a",
    name: str = "streamops agent",
    description: str = "An agent run by streamops, streamed over A2A.",
    version: str = "0.1.0",
    max_tasks: int = 1000,
    cancel_timeout: float = 10.0,
    heartbeat: float | None = None,
    run_limit: RunLimit | int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
) -> list[Route]:
    """Starlette routes serving an agent over A2A (protocol 0.3, JSON-RPC transport).

    - ``POST {path}``: JSON-RPC 2.0. ``message/stream`` runs ``agent_factory()`` on the
      message's text and streams the task (SSE, one JSON-RPC response per event);
      ``message/send`` runs it to the end and returns the final task; ``tasks/get`` returns a
      task as it stands; ``tasks/cancel`` cancels a running task (``AgentStream.cancel()``),
      waits up to ``cancel_timeout`` seconds for its run to end and returns it (state
      ``canceled``).
    - ``GET /.well-known/agent-card.json``: the agent card (``url``: this server's ``path``).

    ``agent_factory`` is called once per task (agents with stateful models, such as
    :class:`~streamops.adapters.replay.ReplayModel`, need a fresh one each time). The
    latest ``max_tasks`` tasks are kept for ``tasks/get``. A task's events are written by the
    driver of every streamed sink (:func:`streamops.sinks._asgi.encoder_response`, for
    ``message/send`` its producer with nothing sent): a run that raises ends the task with
    one ``failed`` status after what it sent, and a client that disconnects from a stream
    cancels its run; the task's place under ``run_limit`` is given back once its body is
    over. ``heartbeat``: seconds of silence after which a stream sends an SSE comment line
    (``None``: never).

    Limits: ``run_limit`` (a :class:`~streamops.serve.RunLimit` shared with other
    routes, as :func:`~streamops.serve.app.create_app` passes, or a number of tasks; ``None``:
    none) bounds the tasks running at once: past it ``message/stream`` and ``message/send``
    get HTTP 503 with the JSON-RPC error :data:`SERVER_BUSY`. A body larger than
    ``max_body_bytes`` (default 4 MiB) gets HTTP 413 and one slower than ``body_timeout``
    seconds HTTP 408, both with the JSON-RPC "invalid request" error (-32600, id null); a body
    that is not JSON, or nests deeper than 100 levels, the parse error (-32700).

    Raises:
        ImportError: a2a-sdk is not installed.
        ValueError: ``heartbeat`` is not positive.
    """
    from starlette.routing import Route

    from ..sinks._asgi import check_heartbeat

    check_heartbeat(heartbeat)
    t = a2a_types_module()
    limit = RunLimit(run_limit) if isinstance(run_limit, int) else run_limit
    tasks: OrderedDict[str, _Entry] = OrderedDict()

    def error_response(req_id: Any, error: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = t.JSONRPCErrorResponse(id=req_id, error=error).model_dump(mode="json", by_alias=True, exclude_none=True)
        body.setdefault("id", None)  # JSON-RPC 2.0: an error response always has an id, null if unknown
        return _json(body, status, headers)

    def validate(model: Any, data: Any) -> Any:
        from pydantic import ValidationError

        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise _RpcError(
                t.InvalidParamsError(message=f"invalid params: {exc.errors(include_url=False)[:3]}")
            ) from exc

    def entry_for(task_id: str) -> _Entry:
        entry = tasks.get(task_id)
        if entry is None:
            raise _RpcError(t.TaskNotFoundError())
        return entry

    def start(req: Any, encoder_class: type[A2AEncoder] = A2AEncoder) -> _Entry:
        msg = req.params.message
        text = "\n".join(p.root.text for p in msg.parts if getattr(p.root, "kind", None) == "text")
        if not text:
            raise _RpcError(t.InvalidParamsError(message="the message has no text part"))
        try:
            release = limit.acquire() if limit is not None else _nothing
        except RunLimitError as exc:
            raise _RpcError(t.JSONRPCError(code=SERVER_BUSY, message=f"cannot start a task: {exc}")) from exc
        try:
            encoder = encoder_class(context_id=msg.context_id, user_message=msg, request_id=req.id)
            entry = _Entry(agent_factory().stream(text), encoder, release)
        except BaseException:
            release()
            raise
        tasks[encoder.task_id] = entry
        while len(tasks) > max_tasks:
            tasks.popitem(last=False)
        return entry

    async def message_stream(req: Any) -> Any:
        from ..sinks._asgi import encoder_response
        from ..sinks.sse import SSE_HEADERS

        entry = start(req)
        # The one driver of every sink: each event's results, the failed status once if the
        # run or the encoder raised, the run closed (cancelled when the client leaves).
        return encoder_response(
            entry.stream, entry.encoder, headers=dict(SSE_HEADERS), heartbeat_interval=heartbeat, on_end=entry.finish
        )

    async def message_send(req: Any) -> Response:
        from ..sinks._asgi import encoder_producer

        entry = start(req, _TaskOnly)
        try:  # the same driver and encoder, no frames: the reply is the task as it ends
            await encoder_producer(entry.stream, entry.encoder)(_discard)
        finally:
            entry.finish()
        return _json(
            t.SendMessageSuccessResponse(id=req.id, result=entry.encoder.task).model_dump(
                mode="json", by_alias=True, exclude_none=True, fallback=repr
            )
        )

    async def tasks_get(req: Any) -> Response:
        entry = entry_for(req.params.id)
        task = entry.encoder.task
        n = req.params.history_length
        if n is not None and task.history is not None:
            task.history = task.history[-n:] if n > 0 else []
        return _json(
            t.GetTaskSuccessResponse(id=req.id, result=task).model_dump(
                mode="json", by_alias=True, exclude_none=True, fallback=repr
            )
        )

    async def tasks_cancel(req: Any) -> Response:
        import anyio

        entry = entry_for(req.params.id)
        if entry.encoder.finished or entry.done.is_set():
            raise _RpcError(t.TaskNotCancelableError())
        entry.stream.cancel()
        with anyio.move_on_after(cancel_timeout):
            await entry.done.wait()
        return _json(
            t.CancelTaskSuccessResponse(id=req.id, result=entry.encoder.task).model_dump(
                mode="json", by_alias=True, exclude_none=True, fallback=repr
            )
        )

    methods: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "message/stream": (t.SendStreamingMessageRequest, message_stream),
        "message/send": (t.SendMessageRequest, message_send),
        "tasks/get": (t.GetTaskRequest, tasks_get),
        "tasks/cancel": (t.CancelTaskRequest, tasks_cancel),
    }

    async def endpoint(request: Request) -> Response:
        try:
            data = decode_json(await read_body(request, max_bytes=max_body_bytes, seconds=body_timeout))
        except BodyError as exc:
            if exc.status == 400:  # not JSON, or nested too deep
                return error_response(None, t.JSONParseError(message=f"Parse error: {exc}"))
            return error_response(None, t.InvalidRequestError(message=str(exc)), exc.status, {"Connection": "close"})
        req_id = data.get("id") if isinstance(data, dict) else None
        if not (req_id is None or isinstance(req_id, str) or type(req_id) is int):
            # JSON-RPC 2.0: an id is a string, a number or null; a list, an object, a bool or
            # a float (1e999 decodes as inf) cannot be echoed: "invalid request", id null.
            return error_response(None, t.InvalidRequestError())
        if not isinstance(data, dict) or data.get("jsonrpc") != "2.0" or not isinstance(data.get("method"), str):
            return error_response(req_id, t.InvalidRequestError())
        method = methods.get(data["method"])
        if method is None:
            return error_response(req_id, t.MethodNotFoundError())
        model, handler = method
        try:
            return await handler(validate(model, data))  # type: ignore[no-any-return]
        except _RpcError as exc:
            if exc.error.code == SERVER_BUSY:
                return error_response(req_id, exc.error, 503, {"Retry-After": "1"})
            return error_response(req_id, exc.error)

    async def agent_card(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        card = t.AgentCard(
            name=name,
            description=description,
            url=base + path,
            version=version,
            protocol_version=A2A_PROTOCOL_VERSION,
            preferred_transport="JSONRPC",
            capabilities=t.AgentCapabilities(streaming=True, push_notifications=False),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain", "application/json"],
            skills=[
                t.AgentSkill(
                    id="chat",
                    name="chat",
                    description="Answers a text message, streaming its reasoning, tool calls and answer.",
                    tags=["chat"],
                )
            ],
        )
        return _json(card.model_dump(mode="json", by_alias=True, exclude_none=True))

    return [
        Route(path, endpoint, methods=["POST"], name="a2a"),
        Route("/.well-known/agent-card.json", agent_card, methods=["GET"], name="a2a_agent_card"),
    ]


def _nothing() -> None:
    """The release function of a task under no run limit."""


async def _discard(frames: bytes) -> None:
    """The write of ``message/send``'s driver: nothing is sent before the reply."""


class _TaskOnly(A2AEncoder):
    """The encoder of ``message/send``: the task's state as :class:`A2AEncoder` keeps it,
    without framing the results nobody receives (no JSON per event; a progress status the
    reply never holds cannot fail it)."""

    def frame(self, item: Any) -> bytes:
        return b""
