"""Nested runs and handoffs for the protocol sinks (AG-UI, Vercel AI SDK, A2A, OpenAI chunks).

A stream may hold the events of runs nested in its run (an agent used as a tool streams its
own run, with its own ``run_id`` and ``parent_run_id`` = the outer run's) and
:class:`~streamops.events.AgentHandoff` events. The protocols have one run per stream and no
handoff event, so a protocol encoder passes each event through :meth:`Nesting.lower` first:

- the first event's ``run_id`` is the stream's run (the top run);
- a nested run's :class:`~streamops.events.RunStart` / :class:`~streamops.events.RunEnd` (an
  event whose ``parent_run_id`` is set and whose ``run_id`` is not the top run's) becomes a
  :class:`~streamops.events.CustomEvent` ``name="sub-run-start"`` / ``"sub-run-end"`` with
  ``data`` ``{"runId", "parentRunId", "agent"}`` (and ``"status"``, ``"finishReason"`` for the
  end), so it never starts or finishes the protocol's run; the nested run's other events
  (text, tool calls...) are encoded as they are, with their own ``agent``;
- an :class:`~streamops.events.AgentHandoff` becomes a ``CustomEvent`` ``name="agent-handoff"``
  with ``data`` ``{"fromAgent", "toAgent"}``.

Each protocol then encodes that ``CustomEvent`` as it encodes any custom event (AG-UI
``CUSTOM``, Vercel ``data-<name>``, A2A a custom progress status). An encoder that has no place
for a nested run's content (the OpenAI chunk encoder: its ``content`` is one assistant message)
asks :meth:`Nesting.nested` and leaves those events out.
"""

from __future__ import annotations

from typing import Any

from ..events import AgentHandoff, BaseEvent, CustomEvent, RunEnd, RunStart, envelope

__all__ = ["Nesting"]


class Nesting:
    """Tells the events of nested runs from those of a stream's own run (see the module
    docstring). One per encoded stream."""

    __slots__ = ("top",)

    def __init__(self) -> None:
        self.top: str | None = None
        """The stream's own run id (the first event's); ``None`` before the first event."""

    def nested(self, event: BaseEvent) -> bool:
        """True when ``event`` belongs to a run nested in the stream's run."""
        if self.top is None:
            self.top = event.run_id
            return False
        return bool(event.parent_run_id) and event.run_id != self.top

    def lower(self, event: BaseEvent) -> BaseEvent:
        """``event`` itself, or the :class:`CustomEvent` that stands for it in a protocol with
        one run per stream and no handoffs (a nested run's start or end, a handoff)."""
        nested = self.nested(event)
        if isinstance(event, AgentHandoff):
            return _custom(event, "agent-handoff", {"fromAgent": event.from_agent, "toAgent": event.to_agent})
        if nested and isinstance(event, (RunStart, RunEnd)):
            data: dict[str, Any] = {"runId": event.run_id, "parentRunId": event.parent_run_id, "agent": event.agent}
            if isinstance(event, RunEnd):
                data["status"] = event.status
                data["finishReason"] = event.finish_reason
                return _custom(event, "sub-run-end", data)
            return _custom(event, "sub-run-start", data)
        return event


def _custom(event: BaseEvent, name: str, data: dict[str, Any]) -> CustomEvent:
    return CustomEvent(**envelope(event), name=name, data=data)
