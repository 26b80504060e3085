"""AG-UI (Agent User Interaction protocol) events, built with the protocol's own models.

AG-UI (docs.ag-ui.com; Python package ``ag-ui-protocol``, module ``ag_ui.core``, whose models
are generated from the protocol's ``spec/1.0/schema.json``) streams typed events over SSE,
each ``data: {json}`` with camelCase fields. Every event here is constructed through the
package's pydantic models, so a field the protocol does not have, or a missing one, fails
at once. ``ag_ui.encoder.EventEncoder`` frames them (:meth:`AGUIEncoder.sse`).

Mapping (the open text or reasoning message is ended before any other event is sent, so
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
                                       call gives nothing: one start per call)
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
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from .._stream import Stream, aclose_iterator
from ..events import (
    BaseEvent,
    CustomEvent,
    ErrorEvent,
    FinalOutput,
    PartialObject,
    RawEvent,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RefusalDelta,
    RunEnd,
    RunStart,
    StepEnd,
    StepStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolError,
    ToolProgress,
    ToolResult,
    _utf8,
)
from ..events import _json_text as _model_json
from ..operators.errors import errors_as_events
from ._nesting import Nesting

if TYPE_CHECKING:
    from ag_ui.core import BaseEvent as AGUIEvent
    from starlette.responses import StreamingResponse

    from .resume import DisconnectPolicy

__all__ = ["AGUIEncoder", "agui_response"]


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=repr)


class AGUIEncoder:
    """Turns streamops events into ``ag_ui.core`` events (sans-IO, one run per encoder).

    Args:
        thread_id: the AG-UI thread (conversation) id; default a fresh uuid.
        run_id: the AG-UI run id; default the ``RunStart`` event's run id (or a fresh uuid).
    """

    def __init__(self, *, thread_id: str | None = None, run_id: str | None = None) -> None:
        self.thread_id = thread_id or uuid.uuid4().hex
        self.run_id = run_id
        self._started = False
        self._finished = False
        self._open: tuple[str, str, str | None] | None = None  # (kind, message id, source block id)
        self._last_reasoning: dict[str | None, str] = {}  # source block id -> reasoning message id
        self._messages = 0
        self._step: int | None = None
        self._calls: set[str] = set()
        self._last_error: ErrorEvent | None = None
        self._output: Any = None
        self._has_output = False
        self._nesting = Nesting()

    def _id(self, kind: str) -> str:
        mid = f"{self.run_id}-{kind}-{self._messages}"
        self._messages += 1
        return mid

    # ---------------------------------------------------------------- messages
    def _close(self, out: list[AGUIEvent]) -> None:
        from ag_ui.core import ReasoningEndEvent, ReasoningMessageEndEvent, TextMessageEndEvent

        if self._open is None:
            return
        kind, mid, _ = self._open
        self._open = None
        if kind == "text":
            out.append(TextMessageEndEvent(message_id=mid))
        else:
            out.append(ReasoningMessageEndEvent(message_id=mid))
            out.append(ReasoningEndEvent(message_id=mid))

    def _message(self, out: list[AGUIEvent], kind: str, source: str | None) -> str:
        from ag_ui.core import ReasoningMessageStartEvent, ReasoningStartEvent, TextMessageStartEvent

        if self._open is not None and self._open[0] == kind and self._open[2] == source:
            return self._open[1]
        self._close(out)
        mid = self._id(kind)
        self._open = (kind, mid, source)
        if kind == "text":
            out.append(TextMessageStartEvent(message_id=mid, role="assistant"))
        else:
            self._last_reasoning[source] = mid
            out.append(ReasoningStartEvent(message_id=mid))
            out.append(ReasoningMessageStartEvent(message_id=mid, role="reasoning"))
        return mid

    def _ensure_start(self, out: list[AGUIEvent], run_id: str) -> None:
        from ag_ui.core import RunStartedEvent

        if not self._started:
            self._started = True
            if self.run_id is None:
                self.run_id = run_id or uuid.uuid4().hex
            out.append(RunStartedEvent(thread_id=self.thread_id, run_id=self.run_id))

    # ---------------------------------------------------------------- encoding
    def encode(self, event: BaseEvent) -> list[AGUIEvent]:
        """The AG-UI events for one streamops event (possibly none); nothing after the run end.
        A nested run's start and end and a handoff are ``CUSTOM`` events
        (:mod:`streamops.sinks._nesting`)."""
        event = self._nesting.lower(event)
        from ag_ui.core import (
            CustomEvent as AGCustom,
        )
        from ag_ui.core import (
            RawEvent as AGRaw,
        )
        from ag_ui.core import (
            ReasoningEncryptedValueEvent,
            ReasoningMessageContentEvent,
            StateSnapshotEvent,
            StepFinishedEvent,
            StepStartedEvent,
            TextMessageContentEvent,
            ToolCallArgsEvent,
            ToolCallEndEvent,
            ToolCallResultEvent,
            ToolCallStartEvent,
        )

        out: list[AGUIEvent] = []
        if self._finished:
            return out
        self._ensure_start(out, event.run_id)
        if isinstance(event, RunStart):
            return out
        if isinstance(event, (TextDelta, RefusalDelta)):
            if event.delta:
                source = event.block_id if isinstance(event, TextDelta) else f"refusal:{event.block_id}"
                mid = self._message(out, "text", source)
                out.append(TextMessageContentEvent(message_id=mid, delta=event.delta))
        elif isinstance(event, ReasoningDelta):
            if event.delta:
                mid = self._message(out, "reasoning", event.block_id)
                out.append(ReasoningMessageContentEvent(message_id=mid, delta=event.delta))
        elif isinstance(event, (ReasoningSignature, RedactedReasoning)):
            self._close(out)
            value = event.signature if isinstance(event, ReasoningSignature) else event.data
            mid = self._last_reasoning.get(event.block_id) or self._id("reasoning")
            out.append(ReasoningEncryptedValueEvent(subtype="message", entity_id=mid, encrypted_value=value))
        elif isinstance(event, StepStart):
            self._close(out)
            if self._step is not None:
                out.append(StepFinishedEvent(step_name=f"step-{self._step}"))
            self._step = event.step
            out.append(StepStartedEvent(step_name=f"step-{event.step}"))
        elif isinstance(event, StepEnd):
            self._close(out)
            if self._step is not None:
                out.append(StepFinishedEvent(step_name=f"step-{self._step}"))
                self._step = None
        elif isinstance(event, ToolCallStart):
            self._close(out)
            if event.call_id not in self._calls:  # a repeated start of an open call: nothing
                self._calls.add(event.call_id)
                out.append(ToolCallStartEvent(tool_call_id=event.call_id, tool_call_name=event.name))
        elif isinstance(event, ToolCallDelta):
            self._close(out)
            if event.call_id in self._calls and event.delta:
                out.append(ToolCallArgsEvent(tool_call_id=event.call_id, delta=event.delta))
        elif isinstance(event, ToolCallEnd):
            self._close(out)
            if event.call_id not in self._calls:
                out.append(ToolCallStartEvent(tool_call_id=event.call_id, tool_call_name=event.name))
                if event.arguments:
                    out.append(ToolCallArgsEvent(tool_call_id=event.call_id, delta=event.arguments))
            else:
                self._calls.discard(event.call_id)
            out.append(ToolCallEndEvent(tool_call_id=event.call_id))
        elif isinstance(event, ToolResult):
            self._close(out)
            out.append(
                ToolCallResultEvent(
                    message_id=self._id("tool"),
                    tool_call_id=event.call_id,
                    content=_json_text(event.result),
                    role="tool",
                )
            )
        elif isinstance(event, ToolError):
            self._close(out)
            content = json.dumps({"error": event.message, "errorType": event.error_type}, ensure_ascii=False)
            out.append(
                ToolCallResultEvent(
                    message_id=self._id("tool"), tool_call_id=event.call_id, content=content, role="tool"
                )
            )
        elif isinstance(event, ToolProgress):
            self._close(out)
            progress = {"toolCallId": event.call_id, "toolName": event.name, "data": event.data}
            out.append(AGCustom(name="tool-progress", value=progress))
        elif isinstance(event, CustomEvent):
            self._close(out)
            out.append(AGCustom(name=event.name, value=event.data))
        elif isinstance(event, RawEvent):
            self._close(out)
            out.append(AGRaw(event=event.data, source=event.event_type))
        elif isinstance(event, (PartialObject, FinalOutput)):
            self._close(out)
            if isinstance(event, FinalOutput):
                self._output, self._has_output = event.value, True
            out.append(StateSnapshotEvent(snapshot={"output": event.value}))
        elif isinstance(event, ErrorEvent):
            self._close(out)
            self._last_error = event
            error = {"errorType": event.error_type, "message": event.message, "code": event.code}
            out.append(AGCustom(name="error", value=error))
        elif isinstance(event, RunEnd):
            out += self._end(event)
        return out

    def _end(self, event: RunEnd | None) -> list[AGUIEvent]:
        from ag_ui.core import (
            RunErrorEvent,
            RunFinishedCancelledOutcome,
            RunFinishedEvent,
            RunFinishedSuccessOutcome,
            StepFinishedEvent,
            TokenUsage,
            ToolCallEndEvent,
        )

        out: list[AGUIEvent] = []
        self._ensure_start(out, "")
        self._close(out)
        for call_id in sorted(self._calls):  # calls the model never finished (a cut-off stream)
            out.append(ToolCallEndEvent(tool_call_id=call_id))
        self._calls.clear()
        if self._step is not None:
            out.append(StepFinishedEvent(step_name=f"step-{self._step}"))
            self._step = None
        self._finished = True
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
            return out
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
        return out

    def close(self) -> list[AGUIEvent]:
        """Events that end a run which stopped without a ``RunEnd``: ``RUN_ERROR`` (message
        and code from the last ``ErrorEvent``) when an error was encoded, as when the source
        failed, else ``RUN_FINISHED`` with outcome ``cancelled``; nothing if the run end was
        encoded."""
        if self._finished:
            return []
        return self._end(None)

    # ---------------------------------------------------------------- framing
    @staticmethod
    def sse(event: AGUIEvent) -> bytes:
        """One event as SSE, framed by ``ag_ui.encoder.EventEncoder`` (``data: {json}``)."""
        from ag_ui.encoder import EventEncoder

        try:
            return _utf8(EventEncoder().encode(event))
        except ValueError:  # a lone surrogate in a string: written as U+FFFD
            return b"data: " + _utf8(_model_json(event, by_alias=True, exclude_none=True)) + b"\n\n"

    def encode_sse(self, event: BaseEvent) -> bytes:
        """The AG-UI events of one streamops event, each framed by :meth:`sse`, concatenated
        (``b""`` for none)."""
        return b"".join(map(self.sse, self.encode(event)))

    def close_sse(self) -> bytes:
        """:meth:`close`'s events framed (``b""`` if the run end was encoded)."""
        return b"".join(map(self.sse, self.close()))

    async def encode_stream(self, stream: AsyncIterable[BaseEvent]) -> AsyncIterator[bytes]:
        """The whole SSE body for ``stream`` (closed with :meth:`close` if it had no run end).

        If ``stream`` raises (an ``Exception``), the body ends as :func:`agui_response` ends it:
        the ``CUSTOM`` ``error`` event of the ``ErrorEvent`` for the failure
        (:func:`~streamops.operators.errors.error_event`), then :meth:`close`'s events (ending with
        ``RUN_ERROR``); then the exception is re-raised. ``stream`` is always closed (``aclose()`` of its iterator, when
        it has one): at its end, on its failure, and when this generator is closed early
        (``break`` then ``aclose()``, or cancellation). Iterate it inside the terminal that
        hosts ``stream`` when the stream runs tasks (an agent run).
        """
        it = aiter(Stream.from_async_iterable(stream) | errors_as_events(reraise=True))
        failure: Exception | None = None
        try:
            async for event in it:
                for ev in self.encode(event):
                    yield self.sse(ev)
        except Exception as exc:  # the stream failed: its ErrorEvent was encoded
            failure = exc
        finally:
            await aclose_iterator(it)
        for ev in self.close():
            yield self.sse(ev)
        if failure is not None:
            raise failure


def agui_response(
    stream: AsyncIterable[BaseEvent],
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
    from ._asgi import EventStreamResponse, stream_producer
    from .sse import SSE_HEADERS

    encoder = AGUIEncoder(thread_id=thread_id, run_id=run_id)
    return EventStreamResponse(
        stream_producer(stream, encoder.encode_sse, finish=encoder.close_sse),
        headers=dict(SSE_HEADERS),
        heartbeat_interval=heartbeat,
        on_disconnect=on_disconnect,
    )
