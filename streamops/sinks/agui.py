"""AG-UI (Agent User Interaction protocol) events, built with the protocol's own models.

AG-UI (docs.ag-ui.com; Python package ``ag-ui-protocol``, module ``ag_ui.core``, whose models
are generated from the protocol's ``spec/1.0/schema.json``) streams typed events over SSE,
each ``data: {json}`` with camelCase fields. Every event here is constructed through the
package's pydantic models, so a field the protocol does not have, or a missing one, fails
at once. ``ag_ui.encoder.EventEncoder`` frames them (:meth:`AGUIEncoder.sse`).

Mapping (messages and tool calls start and end at the block events, ``BlockStart`` /
``BlockEnd``, derived from the events by :class:`~streamops.operators.blocks.BlockSplitter`: the
open text or reasoning message of a run is ended before any other event of it is sent, so its
messages never interleave; that is what the protocol's event verifier requires):

=====================================  ==================================================
streamops event                        AG-UI events
=====================================  ==================================================
``RunStart``                           ``RUN_STARTED`` (``threadId``, ``runId``)
``StepStart`` / ``StepEnd``            ``STEP_STARTED`` / ``STEP_FINISHED``
                                       (``stepName``: ``step-<n>``)
``TextDelta``, ``RefusalDelta``        ``TEXT_MESSAGE_START`` (role ``assistant``) +
                                       ``TEXT_MESSAGE_CONTENT`` (+ ``TEXT_MESSAGE_END``)
``ReasoningDelta``                     ``REASONING_START`` + ``REASONING_MESSAGE_START`` +
                                       ``REASONING_MESSAGE_CONTENT`` (+ both ends)
``ReasoningSignature``,                ``REASONING_ENCRYPTED_VALUE`` (subtype ``message``,
``RedactedReasoning``                  the reasoning message's id)
``ToolCallStart`` / ``Delta`` / ``End``  ``TOOL_CALL_START`` / ``TOOL_CALL_ARGS`` /
                                       ``TOOL_CALL_END`` (a repeated start of an open
                                       call gives nothing: one start per call; an end
                                       whose call sent no argument deltas sends its
                                       arguments as one ``TOOL_CALL_ARGS``)
``ToolResult`` / ``ToolError``         ``TOOL_CALL_RESULT`` (role ``tool``; content: the
                                       result as JSON text, or ``{"error": ...}``)
``ToolProgress``                       ``CUSTOM`` ``tool-progress``
``CustomEvent``                        ``CUSTOM`` (same name and value)
``RawEvent``                           ``RAW`` (``event``: the payload, ``source``: its type)
``PartialObject`` / ``FinalOutput``    ``STATE_SNAPSHOT`` (``{"output": value}``)
``ErrorEvent``                         ``CUSTOM`` ``error`` (kept for the run's end)
``RunEnd``                             ``RUN_FINISHED`` (outcome ``success``, or
                                       ``cancelled``; ``result``: the final output;
                                       ``usage``), or ``RUN_ERROR`` for a failed run
no run end (``close()``)               ``RUN_ERROR`` if an ``ErrorEvent`` was encoded (a
                                       source that raised ends so), else ``RUN_FINISHED``
                                       (outcome ``cancelled``)
=====================================  ==================================================

A run ends with exactly one of ``RUN_FINISHED`` and ``RUN_ERROR``: the protocol ends a failed
run with ``RUN_ERROR``, never with ``RUN_FINISHED``.

Empty text and reasoning deltas are dropped (``*_CONTENT`` deltas must not be empty in the
protocol's TypeScript schema). ``UsageEvent`` and ``ObjectDelta`` give no event: usage
arrives with ``RUN_FINISHED``, the state snapshots carry what the object deltas say.

Requires the ``ag-ui-protocol`` package (extra ``agui``); it is imported on first use.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

import streamops.events as ev

from .._stream import Stream
from .encoder import BlockEncoder, encoded

if TYPE_CHECKING:
    from ag_ui.core import BaseEvent as AGUIEvent
    from starlette.responses import StreamingResponse

    from .resume import DisconnectPolicy

__all__ = ["AGUIEncoder", "agui_response"]


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=repr)


class AGUIEncoder(BlockEncoder["AGUIEvent"]):
    """Turns streamops events into ``ag_ui.core`` events (sans-IO, one run per encoder).

    Messages and tool calls open and close at the block events of
    :class:`~streamops.operators.blocks.BlockSplitter` (the rule of
    :func:`~streamops.operators.blocks.blocks`), fed every event.

    Args:
        thread_id: the AG-UI thread (conversation) id; default a fresh uuid.
        run_id: the AG-UI run id; default the ``RunStart`` event's run id (or a fresh uuid).
    """

    def __init__(self, *, thread_id: str | None = None, run_id: str | None = None) -> None:
        super().__init__()
        self.thread_id = thread_id or uuid.uuid4().hex
        self.run_id = run_id
        self._started = False
        self._ids: dict[tuple[str, str], str] = {}  # (run id, agent) -> its open message's id
        self._last_reasoning: dict[str | None, str] = {}  # source block id -> reasoning message id
        self._messages = 0
        self._step: int | None = None
        self._calls: set[str] = set()  # open calls
        self._args_sent: set[str] = set()  # open calls that sent arguments
        self._last_error: ev.ErrorEvent | None = None
        self._output: Any = None
        self._has_output = False

    def _id(self, kind: str) -> str:
        mid = f"{self.run_id}-{kind}-{self._messages}"
        self._messages += 1
        return mid

    def _begin(self, run_id: str) -> None:
        from ag_ui.core import RunStartedEvent

        if not self._started:
            self._started = True
            if self.run_id is None:
                self.run_id = run_id or uuid.uuid4().hex
            self._out.append(RunStartedEvent(thread_id=self.thread_id, run_id=self.run_id))

    # ---------------------------------------------------------------- encoding
    def _block(self, event: ev.BlockStart | ev.BlockEnd) -> None:
        from ag_ui.core import (
            ReasoningEndEvent,
            ReasoningMessageEndEvent,
            ReasoningMessageStartEvent,
            ReasoningStartEvent,
            TextMessageEndEvent,
            TextMessageStartEvent,
            ToolCallEndEvent,
            ToolCallStartEvent,
        )

        out = self._out
        key = (event.run_id, event.agent)
        if event.block == "tool-call":
            assert event.call_id is not None
            if isinstance(event, ev.BlockStart):
                self._calls.add(event.call_id)
                out.append(ToolCallStartEvent(tool_call_id=event.call_id, tool_call_name=event.name or ""))
            else:
                self._calls.discard(event.call_id)
                self._args_sent.discard(event.call_id)
                out.append(ToolCallEndEvent(tool_call_id=event.call_id))
        elif event.block == "reasoning":
            if isinstance(event, ev.BlockStart):
                mid = self._ids[key] = self._last_reasoning[event.block_id] = self._id("reasoning")
                out.append(ReasoningStartEvent(message_id=mid))
                out.append(ReasoningMessageStartEvent(message_id=mid, role="reasoning"))
            else:
                mid = self._ids.pop(key)
                out.append(ReasoningMessageEndEvent(message_id=mid))
                out.append(ReasoningEndEvent(message_id=mid))
        elif isinstance(event, ev.BlockStart):
            mid = self._ids[key] = self._id("text")
            out.append(TextMessageStartEvent(message_id=mid, role="assistant"))
        else:
            out.append(TextMessageEndEvent(message_id=self._ids.pop(key)))

    def _one(self, event: ev.BaseEvent) -> None:
        from ag_ui.core import CustomEvent as AGCustom
        from ag_ui.core import RawEvent as AGRaw
        from ag_ui.core import (
            ReasoningEncryptedValueEvent,
            ReasoningMessageContentEvent,
            StateSnapshotEvent,
            StepFinishedEvent,
            StepStartedEvent,
            TextMessageContentEvent,
            ToolCallArgsEvent,
            ToolCallResultEvent,
        )

        out = self._out
        if isinstance(event, (ev.TextDelta, ev.RefusalDelta)):
            if event.delta:  # *_CONTENT deltas must not be empty
                mid = self._ids[event.run_id, event.agent]
                out.append(TextMessageContentEvent(message_id=mid, delta=event.delta))
        elif isinstance(event, ev.ReasoningDelta):
            if event.delta:
                mid = self._ids[event.run_id, event.agent]
                out.append(ReasoningMessageContentEvent(message_id=mid, delta=event.delta))
        elif isinstance(event, (ev.BlockStart, ev.BlockEnd)):
            self._block(event)
        elif isinstance(event, (ev.ReasoningSignature, ev.RedactedReasoning)):
            value = event.signature if isinstance(event, ev.ReasoningSignature) else event.data
            mid = self._last_reasoning.get(event.block_id) or self._id("reasoning")
            out.append(ReasoningEncryptedValueEvent(subtype="message", entity_id=mid, encrypted_value=value))
        elif isinstance(event, ev.StepStart):
            if self._step is not None:
                out.append(StepFinishedEvent(step_name=f"step-{self._step}"))
            self._step = event.step
            out.append(StepStartedEvent(step_name=f"step-{event.step}"))
        elif isinstance(event, ev.StepEnd):
            if self._step is not None:
                out.append(StepFinishedEvent(step_name=f"step-{self._step}"))
                self._step = None
        elif isinstance(event, ev.ToolCallDelta):
            if event.call_id in self._calls and event.delta:
                self._args_sent.add(event.call_id)
                out.append(ToolCallArgsEvent(tool_call_id=event.call_id, delta=event.delta))
        elif isinstance(event, ev.ToolCallEnd):
            if event.call_id not in self._args_sent and event.arguments:
                out.append(ToolCallArgsEvent(tool_call_id=event.call_id, delta=event.arguments))
        elif isinstance(event, ev.ToolResult):
            out.append(
                ToolCallResultEvent(
                    message_id=self._id("tool"),
                    tool_call_id=event.call_id,
                    content=_json_text(event.result),
                    role="tool",
                )
            )
        elif isinstance(event, ev.ToolError):
            content = json.dumps({"error": event.message, "errorType": event.error_type}, ensure_ascii=False)
            out.append(
                ToolCallResultEvent(
                    message_id=self._id("tool"), tool_call_id=event.call_id, content=content, role="tool"
                )
            )
        elif isinstance(event, ev.ToolProgress):
            progress = {"toolCallId": event.call_id, "toolName": event.name, "data": event.data}
            out.append(AGCustom(name="tool-progress", value=progress))
        elif isinstance(event, ev.CustomEvent):
            out.append(AGCustom(name=event.name, value=event.data))
        elif isinstance(event, ev.RawEvent):
            out.append(AGRaw(event=event.data, source=event.event_type))
        elif isinstance(event, (ev.PartialObject, ev.FinalOutput)):
            if isinstance(event, ev.FinalOutput):
                self._output, self._has_output = event.value, True
            out.append(StateSnapshotEvent(snapshot={"output": event.value}))
        elif isinstance(event, ev.ErrorEvent):
            self._last_error = event
            error = {"errorType": event.error_type, "message": event.message, "code": event.code}
            out.append(AGCustom(name="error", value=error))
        elif isinstance(event, ev.RunEnd):
            self._end(event)

    def _end(self, event: ev.RunEnd | None) -> None:
        from ag_ui.core import (
            RunErrorEvent,
            RunFinishedCancelledOutcome,
            RunFinishedEvent,
            RunFinishedSuccessOutcome,
            StepFinishedEvent,
            TokenUsage,
        )

        out = self._out
        if self._step is not None:
            out.append(StepFinishedEvent(step_name=f"step-{self._step}"))
            self._step = None
        self.finished = True
        assert self.run_id is not None
        usage = None
        if event is not None and event.usage is not None:
            u = event.usage
            usage = [
                TokenUsage(
                    input_tokens=u.input_tokens,
                    output_tokens=u.output_tokens,
                    total_tokens=u.total_tokens,
                    reasoning_tokens=u.reasoning_tokens,
                    cached_input_tokens=u.cache_read_tokens,
                    cache_write_input_tokens=u.cache_write_tokens,
                )
            ]
        if (event is None and self._last_error is not None) or (event is not None and event.status == "failed"):
            err = self._last_error
            out.append(
                RunErrorEvent(
                    message=err.message if err is not None else "the run failed",
                    code=err.error_type if err is not None else None,
                    usage=usage,
                )
            )
            return
        outcome: RunFinishedSuccessOutcome | RunFinishedCancelledOutcome
        if event is None or event.status == "cancelled":
            outcome = RunFinishedCancelledOutcome()
        else:
            outcome = RunFinishedSuccessOutcome()
        out.append(
            RunFinishedEvent(
                thread_id=self.thread_id,
                run_id=self.run_id,
                outcome=outcome,
                result=self._output if self._has_output else None,
                usage=usage,
            )
        )

    # ---------------------------------------------------------------- framing
    @staticmethod
    def frame(item: AGUIEvent) -> bytes:
        """One event as SSE, framed by ``ag_ui.encoder.EventEncoder`` (``data: {json}``)."""
        from ag_ui.encoder import EventEncoder

        try:
            return ev.utf8(EventEncoder().encode(item))
        except ValueError:  # a lone surrogate in a string: written as U+FFFD
            return b"data: " + ev.utf8(ev.model_json(item, by_alias=True, exclude_none=True)) + b"\n\n"

    def encode_stream(self, stream: AsyncIterable[ev.BaseEvent]) -> Stream[bytes]:
        """The whole SSE body for ``stream`` (:func:`~streamops.sinks.encoder.encoded`; closed
        with :meth:`close` if it had no run end). If ``stream`` raises, the ``CUSTOM`` ``error``
        event of its ``ErrorEvent`` and :meth:`close`'s events (ending with ``RUN_ERROR``), then
        the exception. ``stream`` is always closed."""
        return encoded(stream, self)


def agui_response(
    stream: AsyncIterable[ev.BaseEvent],
    *,
    thread_id: str | None = None,
    run_id: str | None = None,
    heartbeat: float | None = None,
    on_disconnect: DisconnectPolicy = "cancel",
) -> StreamingResponse:
    """A Starlette response streaming ``stream`` as AG-UI events over SSE.

    A :class:`~streamops.Stream` (an agent run included) is iterated inside its own terminal.
    When the client goes away, ``on_disconnect="cancel"`` closes the stream at once (cancelling
    the run); ``"continue"`` iterates it to its end, discarding the events. If the stream
    raises, a ``CUSTOM`` ``error`` event and ``RUN_ERROR`` follow. ``heartbeat``: seconds of
    silence after which an SSE comment line is sent (``None``: never).

    Raises:
        ValueError: ``heartbeat`` is not positive, or ``on_disconnect`` is not
            ``"cancel"``/``"continue"``.
    """
    from ._asgi import encoder_response
    from .sse import SSE_HEADERS

    return encoder_response(
        stream,
        AGUIEncoder(thread_id=thread_id, run_id=run_id),
        headers=dict(SSE_HEADERS),
        heartbeat_interval=heartbeat,
        on_disconnect=on_disconnect,
    )
