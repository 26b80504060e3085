"""Model doubles for the tests: the ``Model`` contract's ``stream`` signature written once.

A double subclasses :class:`FakeModel` and writes :meth:`FakeModel.respond`, an async generator
of the events of one model call; :meth:`FakeModel.called` (optional) runs when the agent makes
the call, before anything streams (where a double records what it was sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamops import BaseEvent, Stream, ToolSpec


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelCall:
    """One call of a model double: what the agent sent, and the events' envelope."""

    index: int
    """0 for the double's first call, then 1, 2, ..."""
    messages: list[dict[str, Any]]
    tools: list[ToolSpec]
    output_schema: Mapping[str, Any] | None
    env: dict[str, Any]
    """``run_id`` and ``agent``: pass as ``**call.env`` to every event."""


class FakeModel:
    """Base of the tests' hand-written models (see the module docstring)."""

    name = "fake"
    _count = 0

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        agent: str = "",
    ) -> Stream[BaseEvent]:
        index, self._count = self._count, self._count + 1
        call = ModelCall(
            index=index,
            messages=[dict(m) for m in messages],
            tools=list(tools),
            output_schema=output_schema,
            env={"run_id": run_id or "", "agent": agent},
        )
        self.called(call)
        return Stream.defer(self.respond, call)

    def called(self, call: ModelCall) -> None:
        """Runs when the call is made (nothing has streamed yet)."""

    def respond(self, call: ModelCall) -> AsyncIterator[BaseEvent]:
        """The events of one call, streamed anew on each iteration of the returned stream."""
        raise NotImplementedError
