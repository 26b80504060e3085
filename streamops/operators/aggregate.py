"""Aggregating operators: fold a run's events into its final message.

:class:`Accumulator` is the sans-IO core (``add(event)``, then ``.message()``);
:func:`accumulate` is the operator and :func:`assemble` the terminal built on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field, replace
from typing import Any

import streamops.events as ev

from .._stream import End, Push, Stage, Stream

__all__ = ["Accumulator", "ErrorInfo", "Message", "ToolCall", "accumulate", "assemble"]


@dataclass(slots=True, kw_only=True)
class ToolCall:
    """One tool call of the final message."""

    id: str | None
    """The call id (``call_...``, ``toolu_...``); ``None`` when the provider gave none."""
    name: str
    """The tool's name."""
    arguments: str
    """The arguments as one JSON text, exactly as the model streamed it."""
    index: int | None = None
    """Position of the call in the response, when the provider numbered it."""


@dataclass(slots=True, kw_only=True)
class ErrorInfo:
    """An error the stream reported."""

    type: str
    """The provider's error type or code."""
    message: str
    """Human-readable message."""


@dataclass(slots=True, kw_only=True)
class Message:
    """The final message of a run, folded from its events."""

    text: str = ""
    """All text deltas, concatenated in arrival order (whitespace kept)."""
    reasoning: str | None = None
    """All reasoning deltas concatenated; ``None`` when there were none."""
    refusal: str | None = None
    """All refusal deltas concatenated; ``None`` when there were none."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Tool calls in order of first appearance, keyed by ``call_id``."""
    tool_results: dict[str, ev.ToolResult | ev.ToolError] = field(default_factory=dict)
    """Tool results and tool errors keyed by ``call_id`` (agent runs)."""
    reasoning_signatures: list[str] = field(default_factory=list)
    """Signatures of reasoning blocks, in order."""
    redacted_reasoning: list[str] = field(default_factory=list)
    """Encrypted reasoning payloads, in order."""
    finish_reason: ev.FinishReason | None = None
    """Normalized finish reason of the last step/run end that gave one."""
    raw_finish_reason: str | None = None
    """The provider's own finish reason."""
    usage: ev.Usage | None = None
    """Usage: the run end's figure if it has one, else cumulative reports overlaid and
    incremental ones added."""
    error: ErrorInfo | None = None
    """The last error event, if any."""
    status: ev.RunStatus | None = None
    """The run end's status; ``None`` when the stream ended without a run end."""
    run_id: str = ""
    """The run's id."""
    agent: str = ""
    """The agent's name."""
    model: str | None = None
    """The model named by the run start."""
    response_id: str | None = None
    """The provider's response id."""

    def summary(self) -> dict[str, Any]:
        """The message as the JSON object ``streamops replay --summary`` prints."""
        u = self.usage or ev.Usage()
        return {
            "text": self.text,
            "reasoning": self.reasoning,
            "refusal": self.refusal,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "raw_finish_reason": self.raw_finish_reason,
            "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens},
            "error": None if self.error is None else {"type": self.error.type, "message": self.error.message},
        }


class Accumulator:
    """Folds events into a :class:`Message` (sans-IO: no awaiting, no time).

    ``add(event)`` takes any event; events of kinds it does not fold are ignored. The result
    does not depend on how text or arguments were split into deltas.
    """

    __slots__ = (
        "_calls",
        "_end_usage",
        "_msg",
        "_reasoning",
        "_refusal",
        "_text",
        "_usage",
    )

    def __init__(self) -> None:
        self._msg = Message()
        self._text: list[str] = []
        self._reasoning: list[str] | None = None
        self._refusal: list[str] | None = None
        self._calls: dict[str, tuple[ToolCall, list[str]]] = {}
        self._usage: ev.Usage | None = None
        self._end_usage: ev.Usage | None = None

    def add(self, event: Any) -> None:
        """Fold one event in."""
        m = self._msg
        if isinstance(event, ev.TextDelta):
            self._text.append(event.delta)
        elif isinstance(event, ev.ToolCallDelta):
            self._call(event.call_id, "", event.index)[1].append(event.delta)
        elif isinstance(event, ev.ReasoningDelta):
            if self._reasoning is None:
                self._reasoning = []
            self._reasoning.append(event.delta)
        elif isinstance(event, ev.ToolCallStart):
            call = self._call(event.call_id, event.name, event.index)[0]
            if event.name:
                call.name = event.name
        elif isinstance(event, ev.ToolCallEnd):
            call, parts = self._call(event.call_id, event.name, event.index)
            if event.name:
                call.name = event.name
            parts[:] = [event.arguments]
        elif isinstance(event, ev.RefusalDelta):
            if self._refusal is None:
                self._refusal = []
            self._refusal.append(event.delta)
        elif isinstance(event, ev.UsageEvent):
            self._usage = event.folded(self._usage)
        elif isinstance(event, (ev.ToolResult, ev.ToolError)):
            m.tool_results[event.call_id] = event
        elif isinstance(event, ev.ReasoningSignature):
            m.reasoning_signatures.append(event.signature)
        elif isinstance(event, ev.RedactedReasoning):
            m.redacted_reasoning.append(event.data)
        elif isinstance(event, ev.ErrorEvent):
            m.error = ErrorInfo(type=event.error_type, message=event.message)
        elif isinstance(event, ev.StepEnd):
            if event.finish_reason is not None:
                m.finish_reason = event.finish_reason
            if event.raw_finish_reason is not None:
                m.raw_finish_reason = event.raw_finish_reason
        elif isinstance(event, ev.RunStart):
            m.run_id = event.run_id
            m.agent = event.agent
            m.model = event.model
            m.response_id = event.response_id
        elif isinstance(event, ev.RunEnd):
            m.status = event.status
            if event.finish_reason is not None:
                m.finish_reason = event.finish_reason
            if event.raw_finish_reason is not None:
                m.raw_finish_reason = event.raw_finish_reason
            if event.usage is not None:
                self._end_usage = event.usage
        if isinstance(event, ev.BaseEvent) and not m.run_id:
            m.run_id = event.run_id
            m.agent = event.agent

    def _call(self, call_id: str, name: str, index: int | None) -> tuple[ToolCall, list[str]]:
        entry = self._calls.get(call_id)
        if entry is None:
            entry = (ToolCall(id=call_id or None, name=name, arguments="", index=index), [])
            self._calls[call_id] = entry
        return entry

    def message(self) -> Message:
        """The message folded so far (a new object each call; the accumulator goes on)."""
        m = self._msg
        calls = []
        for call, parts in self._calls.values():
            calls.append(ToolCall(id=call.id, name=call.name, arguments="".join(parts), index=call.index))
        usage = self._usage
        if self._end_usage is not None:
            usage = self._end_usage if usage is None else usage.merged(self._end_usage)
        return replace(
            m,
            text="".join(self._text),
            reasoning=None if self._reasoning is None else "".join(self._reasoning),
            refusal=None if self._refusal is None else "".join(self._refusal),
            tool_calls=calls,
            tool_results=dict(m.tool_results),
            reasoning_signatures=list(m.reasoning_signatures),
            redacted_reasoning=list(m.redacted_reasoning),
            usage=usage,
        )


def accumulate() -> Stage[Any, Message]:
    """Fold each run's events into its final :class:`Message`.

    Runs are told apart by ``run_id`` (a merged stream of several agents gives one message per
    run); events with no run id (``""``) by ``agent``.

    - Emits: a run's message when its :class:`~streamops.events.RunEnd` arrives; at the end of
      the stream (or when the upstream fails), the message of every run that had no run end
      yet, in order of first appearance.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails, after emitting the partial messages.
    - Cancels: when the downstream stops; holds one accumulator per open run.

    Marble: ``start "Hel" "lo" end | accumulate()`` gives ``Message(text="Hello")``.
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        runs: dict[tuple[str, str], Accumulator] = {}

        def push(x: Any) -> None:
            key = ((x.run_id, "") if x.run_id else ("", x.agent)) if isinstance(x, ev.BaseEvent) else ("", "")
            acc = runs.get(key)
            if acc is None:
                acc = runs[key] = Accumulator()
            acc.add(x)
            if isinstance(x, ev.RunEnd):
                del runs[key]
                down(acc.message())

        def flush() -> None:
            for acc in runs.values():
                down(acc.message())
            runs.clear()
            end()

        return push, flush

    return Stage(bind, "accumulate")


async def assemble(source: AsyncIterable[Any]) -> Message:
    """Run ``source`` to its end and return its events folded into one :class:`Message`.

    For a stream of one run. The events of runs nested in it (a sub-run: an event with a
    ``parent_run_id`` whose ``run_id`` is not the first event's, such as an agent used as a
    tool) are not folded in: the message is the outer run's answer (:func:`accumulate` gives
    one message per run, sub-runs included). The source is closed when this returns or fails;
    an exception from the source propagates (use :func:`accumulate` to get the partial
    message first).
    """
    acc = Accumulator()
    first: str | None = None
    async with Stream.from_async_iterable(source).iterate() as it:
        async for event in it:
            if isinstance(event, ev.BaseEvent):
                if first is None:
                    first = event.run_id
                elif event.parent_run_id and event.run_id != first:
                    continue
            acc.add(event)
    return acc.message()
