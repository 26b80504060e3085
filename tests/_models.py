"""Model doubles for the tests: the ``Model`` contract's ``stream`` signature written once.

A double subclasses :class:`FakeModel` and writes :meth:`FakeModel.respond`, an async generator
of the events of one model call; :meth:`FakeModel.called` (optional) runs when the agent makes
the call, before anything streams (where a double records what it was sent).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from streamops import (
    BaseEvent,
    RunEnd,
    RunStart,
    Stream,
    TextDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolSpec,
    Usage,
    UsageEvent,
)


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


class SlowModel(FakeModel):
    """A model double: streams ``words`` with a pause between them, optionally a tool call
    first; records when its stream was closed (the "provider request")."""

    name = "slow"

    def __init__(self, words: list[str], *, pause: float = 0.05, tool_call: tuple[str, str] | None = None) -> None:
        self.words = words
        self.pause = pause
        self.tool_call = tool_call
        self.closed = 0
        self.calls = 0

    def called(self, call: ModelCall) -> None:
        self.calls += 1

    async def respond(self, model_call: ModelCall) -> AsyncGenerator[BaseEvent, None]:
        call = self.tool_call if model_call.index == 0 else None
        env = model_call.env
        try:
            yield RunStart(model=self.name, **env)
            if call is not None:
                name, args = call
                yield ToolCallStart(call_id="c1", name=name, **env)
                yield ToolCallEnd(call_id="c1", name=name, arguments=args, **env)
                yield UsageEvent(usage=Usage(input_tokens=5, output_tokens=3), **env)
                yield RunEnd(finish_reason="tool_calls", raw_finish_reason="tool_calls", **env)
                return
            for w in self.words:
                await anyio.sleep(self.pause)
                yield TextDelta(delta=w, **env)
            yield UsageEvent(usage=Usage(input_tokens=5, output_tokens=len(self.words)), **env)
            yield RunEnd(finish_reason="stop", raw_finish_reason="stop", **env)
        finally:
            self.closed += 1
