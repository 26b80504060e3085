"""hypertic runs (``agent.astream(query)``) -> streamops events.

Source: the async iterator ``hypertic.agents.Agent.astream(...)`` returns, whose items are
hypertic's stream events (``hypertic.models.events``: ``ContentEvent``, ``ReasoningEvent``,
``ToolCallsEvent``, ``ToolOutputsEvent``, ``FinishReasonEvent``, ``ResponseCreatedEvent``,
``ResponseCompletedEvent``, ``StructuredOutputEvent``, ``MetadataEvent``), read by their
``type`` field. hypertic is not imported here.

Mapping (the hypertic event is each event's ``raw``):

- the first event -> :class:`RunStart`; one model call is one step: :class:`StepStart` at its
  first event, :class:`StepEnd` (with the call's ``finish_reason``) at the first event after
  its tool calls that is not part of it;
- ``content`` -> :class:`TextDelta` (``block_id`` = the step number as text); ``reasoning`` ->
  :class:`ReasoningDelta`;
- ``finish_reason`` -> the step's finish reason (normalized, the raw value kept);
- ``tool_calls`` (hypertic's accumulated OpenAI-style calls) -> :class:`ToolCallStart`,
  :class:`ToolCallDelta` (the whole arguments) and :class:`ToolCallEnd` per call, ids kept;
- ``tool_outputs`` (a dict keyed by tool *name*) -> :class:`ToolResult` per call of the last
  ``tool_calls``, matched by name (hypertic keeps one output per tool name: two calls of the
  same tool in one step both get the last output, as hypertic's own messages to the model do);
- ``response_completed`` -> :class:`UsageEvent` (that call's usage, not cumulative);
  ``response_created`` -> :class:`RawEvent`;
- ``structured_output`` -> :class:`FinalOutput` (the model object as JSON data); without one,
  the end of the run gives a :class:`FinalOutput` with the last step's text;
- ``metadata`` (hypertic's run summary, last) -> :class:`UsageEvent` (the run's token totals,
  cumulative) and, at the end, the :class:`RunEnd` (that usage, the last call's finish
  reason: hypertic's own summary always says ``"stop"``);
- an exception raised by the run (hypertic re-raises the OpenAI SDK's errors, and a failing
  tool's ``ToolExecutionError``, as a plain ``Exception`` whose message names the cause; a
  failing tool ends hypertic's run) -> :class:`ErrorEvent` (``error_type`` = the class name)
  and a failed :class:`RunEnd`, after every event before it.

What hypertic itself drops before the adapter sees it: whitespace-only text deltas (its
OpenAI chat model yields content only when ``content.strip()`` is not empty), tool-call
argument deltas (it yields each call whole), per-call usage on the chat model, and the usage
of a model call that asked for tools (it stops reading that response at its finish reason,
before the usage chunk that follows), so the run's usage is that of its last call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable
from typing import Any, ClassVar, Unpack

from streamops._stream import Stream
from streamops.events import (
    BaseEvent,
    FinalOutput,
    ReasoningDelta,
    TextDelta,
    ToolResult,
    Usage,
    UsageEvent,
)

from ._base import ParserOptions, normalize_finish_reason
from ._framework import FrameworkParser, agen_from, args_text, drive_framework

__all__ = ["HyperticParser", "from_hypertic", "is_hypertic_stream"]


class HyperticParser(FrameworkParser):
    """Sans-IO parser of a hypertic ``astream()`` (see the module docstring for the mapping):
    ``feed(event)`` -> events, ``fail(exc)``, ``close()``."""

    api: ClassVar[str] = "hypertic"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._finish: str | None = None  # this step's raw finish reason
        self._last_finish: str | None = None
        self._calls: list[tuple[str, str]] = []  # (call_id, name) of the last tool_calls
        self._text: list[str] = []  # the current step's text
        self._usage: Usage | None = None
        self._final = False
        self._block = "0"  # the current step's text block id

    def on_payload(self, event_type: str | None, ev: Any) -> None:
        """Map one hypertic stream event."""
        kind = getattr(ev, "type", None)
        if kind == "content" and self.in_step and self._think is None:
            # the hot path (one event per text delta): ASCII text needs none of emit()'s
            # checks (think tags off, no lone surrogate possible), so the delta is built here
            c = ev.content
            if c and c.isascii() and self._hi is None:
                self._text.append(c)
                self.out.append(
                    TextDelta(
                        run_id=self.run_id,
                        agent=self.agent,
                        parent_run_id=self.parent_run_id,
                        seq=self.seq,
                        ts=time.time(),
                        raw=ev if self.keep_raw else None,
                        delta=c,
                        block_id=self._block,
                    )
                )
                self.seq += 1
                return
        if not isinstance(kind, str):
            self.malformed(f"hypertic: not a hypertic stream event: {type(ev).__name__}", repr(ev)[:200])
            return
        self.start_once()
        if kind in ("content", "reasoning", "finish_reason", "response_created", "response_completed"):
            self._open(ev)
            if kind == "content":
                if ev.content:
                    self._text.append(ev.content)
                    self.emit(TextDelta, ev, delta=ev.content, block_id=self._block)
            elif kind == "reasoning":
                if ev.reasoning:
                    self.emit(ReasoningDelta, ev, delta=ev.reasoning, block_id=f"{self.step}:reasoning")
            elif kind == "finish_reason":
                self._finish = self._last_finish = ev.finish_reason
            elif kind == "response_completed":
                self.emit(UsageEvent, ev, usage=_usage(ev.usage), cumulative=False)
            else:
                self.unknown(kind, ev)
        elif kind == "tool_calls":
            self._open(ev)
            self._calls = []
            for k, tc in enumerate(ev.tool_calls):
                fn = tc.get("function") or {}
                call_id = str(tc.get("id") or f"{self.step}:{k}")
                name = str(fn.get("name") or "")
                self._calls.append((call_id, name))
                self.call_end(ev, call_id, name, args_text(fn.get("arguments")), k)
        elif kind == "tool_outputs":
            self._end_step(ev)
            outputs = ev.tool_outputs
            for call_id, name in self._calls:
                self.emit(ToolResult, ev, call_id=call_id, name=name, result=outputs.get(name))
            self._calls = []
        elif kind == "structured_output":
            self._end_step(ev)
            value = ev.structured_output
            dump = getattr(value, "model_dump", None)
            self._final = True
            self.emit(FinalOutput, ev, value=dump(mode="json") if dump is not None else value)
        elif kind == "metadata":
            self._end_step(ev)
            meta = ev.metadata
            self._usage = _usage(meta)
            self.emit(UsageEvent, ev, usage=self._usage, cumulative=True)
        else:
            self.unknown(kind, ev)

    def _open(self, ev: Any) -> None:
        if not self.in_step:
            self._text = []
            self._finish = None
            self.open_step(ev)
            self._block = str(self.step)

    def _end_step(self, ev: Any) -> None:
        self.close_step(ev, normalize_finish_reason(self._finish), self._finish)

    def on_close(self) -> None:
        """The stream ended: the last step's end, the final text output, the run end."""
        self._end_step(None)
        if not self._final and self._text:
            self.emit(FinalOutput, None, value="".join(self._text))
        self.end_run(status="completed", raw_finish_reason=self._last_finish, usage=self._usage)


def _usage(data: Any) -> Usage:
    d = data if isinstance(data, dict) else {}
    i, o = d.get("input_tokens"), d.get("output_tokens")
    return Usage(input_tokens=i if type(i) is int else None, output_tokens=o if type(o) is int else None)


def is_hypertic_stream(obj: Any) -> bool:
    """True for the async iterator a hypertic agent's ``astream()`` returns (checked by the
    module of its code, without importing hypertic)."""
    return agen_from(obj, "hypertic")


def from_hypertic(stream: AsyncIterable[Any], **options: Unpack[ParserOptions]) -> Stream[BaseEvent]:
    """A stream of the events of a hypertic run, from ``agent.astream(query)`` (see the module
    docstring for the mapping). ``options``: ``run_id``, ``agent``, ``parent_run_id``,
    ``keep_raw``, ``on_malformed`` (:class:`ParserOptions`).

    Emits, completes and fails as every framework adapter (docs/frameworks.md); malformed
    input is an item that is not a hypertic event. Cancels: stopping early closes the iterator
    (``aclose()``), which closes hypertic's model stream and its HTTP response.
    """
    return Stream.defer(_drive, stream, options)


def _drive(stream: AsyncIterable[Any], options: ParserOptions) -> Any:
    return drive_framework(HyperticParser(**options), stream)
