"""A2A (Agent2Agent protocol) ``message/stream``: agent runs as A2A tasks over JSON-RPC + SSE.

The wire format is A2A protocol 0.3 (a2a-protocol.org, ``specification/json/a2a.json`` in
github.com/a2aproject/A2A): JSON-RPC 2.0 methods ``message/stream``, ``message/send``,
``tasks/get`` and ``tasks/cancel`` on one endpoint, each streamed event a JSON-RPC response
whose ``result`` is a ``Task``, a ``TaskStatusUpdateEvent`` or a ``TaskArtifactUpdateEvent``;
the agent card is served at ``/.well-known/agent-card.json``. Every object is built with the
pydantic models of the ``a2a-sdk`` package: ``a2a.compat.v0_3.types`` in a2a-sdk 1.x (which
speaks protocol 1.0 natively and keeps the 0.3 types for compatibility), ``a2a.types`` in
a2a-sdk 0.3.

Mapping (:class:`A2AEncoder`):

=====================================  ==================================================
streamops event                        A2A results
=====================================  ==================================================
first event (``RunStart``)             ``Task`` (status ``working``, the user message as
                                       history)
``TextDelta``, ``RefusalDelta``,       ``TaskArtifactUpdateEvent`` per delta: one artifact
``ReasoningDelta``                     per block (name ``text``, ``refusal`` or
                                       ``reasoning``), ``append`` false on its first chunk
                                       and true after; when the block ends (its
                                       ``BlockEnd``, see :mod:`streamops.operators.blocks`)
                                       an empty chunk with ``lastChunk: true``
``ToolCallEnd``, ``ToolResult``,       ``TaskStatusUpdateEvent`` (``working``, not final)
``ToolError``, ``ToolProgress``,       whose status message is a ``DataPart`` (``type``:
``CustomEvent``                        ``tool-call``, ``tool-result``...)
``FinalOutput``                        an ``output`` artifact with a ``DataPart``
``RunEnd``                             ``TaskStatusUpdateEvent`` ``final: true``, state
                                       ``completed`` / ``failed`` (message: the last
                                       error) / ``canceled``; metadata: streamops status,
                                       finish reason and usage
no run end (``close()``)               the same final status: ``failed`` if an
                                       ``ErrorEvent`` was encoded (a source that raised
                                       ends so), else ``canceled``
=====================================  ==================================================

Step events, tool-call fragments, usage, raw events and partial objects give no result.

:func:`streamops.serve.a2a.a2a_routes` serves an agent with this encoder: ``POST /a2a``
(JSON-RPC) and the agent card.

Requires the ``a2a-sdk`` package (extra ``a2a``); it is imported on first use.
"""

from __future__ import annotations

import importlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias

import streamops.events as ev

from .._stream import Stream
from .encoder import BlockEncoder, encoded

if TYPE_CHECKING:
    from a2a.compat.v0_3 import types as a2a_types

    Result: TypeAlias = "a2a_types.Task | a2a_types.TaskStatusUpdateEvent | a2a_types.TaskArtifactUpdateEvent"

__all__ = ["A2A_PROTOCOL_VERSION", "A2AEncoder", "a2a_types_module"]

A2A_PROTOCOL_VERSION = "0.3.0"
"""The A2A protocol version spoken here."""

_types: ModuleType | None = None


def a2a_types_module() -> ModuleType:
    """The a2a-sdk module holding the protocol 0.3 pydantic models (imported on first call).

    Raises:
        ImportError: a2a-sdk is not installed (``pip install 'streamops[a2a]'``).
    """
    global _types
    if _types is None:
        try:
            _types = importlib.import_module("a2a.compat.v0_3.types")  # a2a-sdk >= 1.0
        except ImportError:
            _types = importlib.import_module("a2a.types")  # a2a-sdk 0.3
    return _types


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _data(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


class A2AEncoder(BlockEncoder["Result"]):
    """Turns streamops events into A2A ``message/stream`` results (sans-IO, one task).

    Text, refusal and reasoning artifacts open and close at the block events of
    :class:`~streamops.operators.blocks.BlockSplitter` (the rule of
    :func:`~streamops.operators.blocks.blocks`), fed every event.

    Args:
        task_id: the task's id; default a fresh uuid.
        context_id: the conversation's id; default a fresh uuid.
        user_message: the ``Message`` that started the task, kept as the task's history.
        request_id: the JSON-RPC request id the frames answer (:meth:`frame`).

    Attributes:
        finished: the final status has been encoded.
    """

    def __init__(
        self,
        task_id: str | None = None,
        context_id: str | None = None,
        *,
        user_message: a2a_types.Message | None = None,
        request_id: str | int | None = None,
    ) -> None:
        super().__init__()
        self.t = a2a_types_module()
        self.task_id = task_id or uuid.uuid4().hex
        self.context_id = context_id or uuid.uuid4().hex
        self.user_message = user_message
        self._started = False
        self._status: a2a_types.TaskStatus = self.t.TaskStatus(state=self.t.TaskState.submitted, timestamp=_now())
        self.request_id = request_id
        self._open: dict[tuple[str, str], list[Any]] = {}  # (run id, agent) -> [artifact id, name, chunks sent]
        self._artifacts: OrderedDict[str, tuple[str, list[Any]]] = OrderedDict()  # id -> (name, parts)
        self._n = 0
        self._last_error: ev.ErrorEvent | None = None

    # ---------------------------------------------------------------- task snapshot
    @property
    def task(self) -> a2a_types.Task:
        """The task as it stands: status, artifacts (chunks joined), history."""
        t = self.t
        artifacts = []
        for aid, (name, parts) in self._artifacts.items():
            text = "".join(p.text for p in parts if getattr(p, "kind", None) == "text")
            data = [p for p in parts if getattr(p, "kind", None) == "data"]
            out_parts = [t.Part(root=p) for p in data] if data else [t.Part(root=t.TextPart(text=text))]
            artifacts.append(t.Artifact(artifact_id=aid, name=name, parts=out_parts))
        return t.Task(  # type: ignore[no-any-return]
            id=self.task_id,
            context_id=self.context_id,
            status=self._status,
            artifacts=artifacts or None,
            history=[self.user_message] if self.user_message is not None else None,
        )

    # ---------------------------------------------------------------- helpers
    def _status_update(self, state: Any, *, final: bool, message: Any = None, metadata: Any = None) -> Any:
        self._status = self.t.TaskStatus(state=state, message=message, timestamp=_now())
        return self.t.TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, status=self._status, final=final, metadata=metadata
        )

    def _agent_message(self, part: Any) -> Any:
        return self.t.Message(
            role=self.t.Role.agent,
            parts=[self.t.Part(root=part)],
            message_id=uuid.uuid4().hex,
            task_id=self.task_id,
            context_id=self.context_id,
        )

    def _progress(self, data: dict[str, Any]) -> Any:
        msg = self._agent_message(self.t.DataPart(data=data))
        return self._status_update(self.t.TaskState.working, final=False, message=msg)

    def _tool_progress(
        self, kind: str, event: ev.ToolCallEnd | ev.ToolResult | ev.ToolError | ev.ToolProgress, **fields: Any
    ) -> Any:
        """A working status whose message is the ``DataPart`` of one tool call's news."""
        return self._progress({"type": kind, "toolCallId": event.call_id, "toolName": event.name, **fields})

    def _chunk(self, aid: str, name: str, part: Any, *, append: bool, last: bool) -> Any:
        self._artifacts.setdefault(aid, (name, []))[1].append(part)
        return self.t.TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            artifact=self.t.Artifact(artifact_id=aid, name=name, parts=[self.t.Part(root=part)]),
            append=append,
            last_chunk=last,
        )

    def _begin(self, run_id: str) -> None:
        if not self._started:
            self._started = True
            self._status = self.t.TaskStatus(state=self.t.TaskState.working, timestamp=_now())
            self._out.append(self.task)

    # ---------------------------------------------------------------- encoding
    def _one(self, event: ev.BaseEvent) -> None:
        out = self._out
        if isinstance(event, (ev.TextDelta, ev.RefusalDelta, ev.ReasoningDelta)):
            o = self._open[event.run_id, event.agent]
            out.append(self._chunk(o[0], o[1], self.t.TextPart(text=event.delta), append=o[2] > 0, last=False))
            o[2] += 1
        elif isinstance(event, ev.BlockStart):
            if event.block != "tool-call":
                self._open[event.run_id, event.agent] = [f"{self.task_id}-{event.block}-{self._n}", event.block, 0]
                self._n += 1
        elif isinstance(event, ev.BlockEnd):
            if event.block != "tool-call":
                aid, name, sent = self._open.pop((event.run_id, event.agent))
                if sent:
                    out.append(self._chunk(aid, name, self.t.TextPart(text=""), append=True, last=True))
        elif isinstance(event, ev.ToolCallEnd):
            out.append(self._tool_progress("tool-call", event, arguments=event.arguments))
        elif isinstance(event, ev.ToolResult):
            out.append(self._tool_progress("tool-result", event, result=event.result))
        elif isinstance(event, ev.ToolError):
            out.append(self._tool_progress("tool-error", event, errorType=event.error_type, message=event.message))
        elif isinstance(event, ev.ToolProgress):
            out.append(self._tool_progress("tool-progress", event, data=event.data))
        elif isinstance(event, ev.CustomEvent):
            out.append(self._progress({"type": "custom", "name": event.name, "data": event.data}))
        elif isinstance(event, ev.FinalOutput):
            aid = f"{self.task_id}-output"
            out.append(self._chunk(aid, "output", self.t.DataPart(data=_data(event.value)), append=False, last=True))
        elif isinstance(event, ev.ErrorEvent):
            self._last_error = event
        elif isinstance(event, ev.RunEnd):
            self._end(event)

    def _end(self, event: ev.RunEnd | None) -> None:
        t = self.t
        self.finished = True
        if event is not None:
            status: str = event.status
        else:
            status = "failed" if self._last_error is not None else "cancelled"
        message = None
        if status == "cancelled":
            state = t.TaskState.canceled
        elif status == "failed":
            state = t.TaskState.failed
            err = self._last_error
            text = f"{err.error_type}: {err.message}" if err is not None else "the run failed"
            message = self._agent_message(t.TextPart(text=text))
        else:
            state = t.TaskState.completed
        meta: dict[str, Any] = {"status": status}
        if event is not None:
            if event.finish_reason is not None:
                meta["finishReason"] = event.finish_reason
            if event.usage is not None:
                u = event.usage
                meta["usage"] = {
                    k: v
                    for k, v in {
                        "inputTokens": u.input_tokens,
                        "outputTokens": u.output_tokens,
                        "reasoningTokens": u.reasoning_tokens,
                        "cacheReadTokens": u.cache_read_tokens,
                        "cacheWriteTokens": u.cache_write_tokens,
                    }.items()
                    if v is not None
                }
        self._out.append(self._status_update(state, final=True, message=message, metadata={"streamops": meta}))

    # ---------------------------------------------------------------- framing
    def response(self, result: Result, request_id: str | int | None) -> a2a_types.SendStreamingMessageSuccessResponse:
        """``result`` as the JSON-RPC response to request ``request_id``."""
        return self.t.SendStreamingMessageSuccessResponse(id=request_id, result=result)  # type: ignore[no-any-return]

    def sse(self, result: Result, request_id: str | int | None) -> bytes:
        """``result`` as one SSE message answering request ``request_id``:
        ``data: {JSON-RPC response}``.

        Data that pydantic cannot serialise (a plain object in a tool result or a custom
        event's data) is written as its ``repr()``, as the SSE and NDJSON sinks write it
        (:func:`~streamops.events.to_json`); NaN and infinities are written as ``null``.
        """
        body = ev.model_json(self.response(result, request_id), by_alias=True, exclude_none=True, fallback=repr)
        return b"data: " + ev.utf8(body) + b"\n\n"

    def frame(self, item: Result) -> bytes:
        """:meth:`sse` answering :attr:`request_id`."""
        return self.sse(item, self.request_id)

    def encode_stream(self, stream: AsyncIterable[ev.BaseEvent], request_id: str | int | None) -> Stream[bytes]:
        """The SSE body of a ``message/stream`` response to ``request_id`` for ``stream``
        (:func:`~streamops.sinks.encoder.encoded`; ended with :meth:`close` if it had no run
        end).

        If ``stream`` raises (an ``Exception``), the ``ErrorEvent`` for the failure
        (:func:`~streamops.operators.errors.error_event`) is encoded and the task ends with the
        final status ``failed`` (its message: the error), unless a final status was already
        sent; then the exception is re-raised. ``stream`` is always closed.
        """
        self.request_id = request_id
        return encoded(stream, self)
