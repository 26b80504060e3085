"""What :meth:`Agent.run <streamops.agent.Agent.run>` returns, built from the run's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import (
    BaseEvent,
    FinalOutput,
    RunStatus,
    StepStart,
    TextDelta,
    Usage,
)
from ..operators.aggregate import Accumulator, Message

if TYPE_CHECKING:
    from ..models import ChatMessage


__all__ = ["RunResult", "result_of"]


@dataclass(slots=True, kw_only=True)
class RunResult:
    """What :meth:`Agent.run` returns."""

    output: Any
    """The validated output object with an ``output_type``, else the final answer's text."""
    text: str
    """The text of the last step (the final answer)."""
    message: Message
    """The whole run folded: all text, reasoning, tool calls and results (keyed by call id)."""
    status: RunStatus
    """How the run ended."""
    usage: Usage
    """Total usage over all steps."""
    steps: int
    """Model calls made."""
    events: list[BaseEvent] = field(default_factory=list, repr=False)
    """Every event of the run, in order."""
    messages: list[ChatMessage] = field(default_factory=list, repr=False)
    """The conversation after this run, provider-neutral (OpenAI-style chat message dicts, see
    :mod:`streamops.models`; the agent's ``instructions`` not included): the history given,
    the prompt, each step's assistant message (with its tool calls), the tool results, and
    the final answer. Pass it as ``history=`` to continue the conversation."""


def result_of(events: list[BaseEvent], output_type: Any = None) -> RunResult:
    acc = Accumulator()
    last_text: list[str] = []
    output: Any = None
    has_output = False
    steps = 0
    own = events[0].run_id if events else ""
    for ev in events:
        if ev.run_id != own:  # a sub-run's event (an agent used as a tool): kept in events only
            continue
        acc.add(ev)
        if isinstance(ev, StepStart):
            last_text = []
            steps += 1
        elif isinstance(ev, TextDelta):
            last_text.append(ev.delta)
        elif isinstance(ev, FinalOutput):
            output, has_output = ev.value, True
    msg = acc.message()
    text = "".join(last_text)
    if has_output and output_type is not None:
        # FinalOutput carries JSON data (events stay serialisable); the result carries the
        # validated instance (it validated once already, so this cannot fail).
        from pydantic import TypeAdapter

        output = TypeAdapter(output_type).validate_python(output)
    return RunResult(
        output=output if has_output else text,
        text=text,
        message=msg,
        status=msg.status or "cancelled",
        usage=msg.usage or Usage(),
        steps=steps,
        events=events,
    )
