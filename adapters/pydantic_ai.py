"""pydantic-ai runs -> streamops events.

Source: ``agent.run_stream_events(...)`` (entered, or the context manager itself), or any
async iterable of pydantic-ai's ``AgentStreamEvent`` / ``AgentRunResultEvent`` objects (the
events an ``event_stream_handler`` receives, or ``node.stream()`` events of ``agent.iter()``).
pydantic-ai is imported lazily, only to read its classes.

Mapping (the pydantic-ai object is each event's ``raw``):

- the first event -> :class:`RunStart`; a model response (its ``PartStartEvent`` /
  ``PartDeltaEvent`` / ``PartEndEvent`` / ``FinalResultEvent``) is one step:
  :class:`StepStart` before its first part, :class:`StepEnd` at the first event that is not
  a part of it (tool execution, the result);
- ``TextPart`` content and ``TextPartDelta`` -> :class:`TextDelta` (``block_id`` =
  ``"<step>:<part index>"``); ``ThinkingPart`` / ``ThinkingPartDelta`` -> :class:`ReasoningDelta`,
  a thinking signature -> :class:`ReasoningSignature` at the part's end;
- ``ToolCallPart`` -> :class:`ToolCallStart` (``call_id`` = ``tool_call_id``) and its
  arguments as a :class:`ToolCallDelta`; ``ToolCallPartDelta.args_delta`` ->
  :class:`ToolCallDelta`; the part's ``PartEndEvent`` -> :class:`ToolCallEnd` (the whole
  arguments as streamed, else as pydantic-ai's JSON text);
- ``FunctionToolResultEvent`` whose part's ``outcome`` is ``"success"`` -> :class:`ToolResult`;
  any other outcome (``"retried"``: the tool raised ``ModelRetry`` or its arguments failed
  validation; ``"failed"``, ``"denied"``, ``"interrupted"``), or a ``RetryPromptPart`` ->
  :class:`ToolError` (``error_type`` = the outcome);
- ``AgentRunResultEvent`` -> :class:`UsageEvent` (the run's ``RunUsage``, cumulative),
  :class:`FinalOutput` (the run's output: text or the structured output object) and
  :class:`RunEnd` (``raw_finish_reason`` = the last ``ModelResponse.finish_reason``);
- ``FunctionToolCallEvent`` adds nothing to the streamed call (it is kept only when the call
  was not streamed); ``FinalResultEvent`` and every other event -> :class:`RawEvent`
  (``event_type`` = the class name), never dropped;
- with ``sub_runs=`` (a :class:`~streamops.adapters.SubRuns` whose ``pydantic_ai(ctx)``
  handler a tool gives to the agent it runs: ``event_stream_handler=sub.pydantic_ai(ctx)``):
  that agent's run streams inside this one, mapped as above, with its own ``run_id``,
  ``parent_run_id`` = this run's, ``agent`` = ``"<this agent>/<its name>"``, and its run end
  just before the call's :class:`ToolResult` (its usage: the events pydantic-ai's handler
  gets carry none, so its :class:`RunEnd` has none; with ``usage=ctx.usage`` the parent's
  usage includes it);
- an exception raised by the run -> :class:`ErrorEvent` (``error_type`` = the exception's
  class name) and a failed :class:`RunEnd`, after every event before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from contextlib import AbstractAsyncContextManager, aclosing
from typing import Any, ClassVar, Unpack

import anyio

import streamops.events as ev
from streamops._stream import Stream

from ._base import ParserOptions
from ._framework import FrameworkParser, SubRuns, args_text, drive_framework

__all__ = ["PydanticAIParser", "from_pydantic_ai", "is_pydantic_ai_run"]

_PART_EVENTS = frozenset({"PartStartEvent", "PartDeltaEvent", "PartEndEvent", "FinalResultEvent"})
_FINISH = {"tool_call": "tool_calls"}


class PydanticAIParser(FrameworkParser):
    """Sans-IO parser of a pydantic-ai event stream (see the module docstring for the
    mapping): ``feed(event)`` -> events, ``fail(exc)``, ``close()``. Options as
    :class:`ParserOptions`."""

    api: ClassVar[str] = "pydantic-ai"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._parts: dict[int, tuple[str, str, str]] = {}  # index -> (kind, call_id / block_id, name)

    def on_payload(self, event_type: str | None, event: Any) -> None:
        """Map one pydantic-ai event."""
        self.start_once()
        name = type(event).__name__
        if name in _PART_EVENTS:
            self.open_step(event)
            if name == "PartStartEvent":
                self._part_start(event)
            elif name == "PartDeltaEvent":
                self._part_delta(event)
            elif name == "PartEndEvent":
                self._part_end(event)
            else:
                self.unknown("FinalResultEvent", event)
            return
        self.close_step(event)
        if name == "FunctionToolCallEvent":
            part = event.part
            self.call_end(event, part.tool_call_id, part.tool_name, part.args_as_json_str())
        elif name == "FunctionToolResultEvent":
            self._tool_result(event)
        elif name == "AgentRunResultEvent":
            self._result(event)
        else:
            self.unknown(name, event)

    def _part_start(self, event: Any) -> None:
        part = event.part
        kind = type(part).__name__
        index: int = event.index
        if kind == "TextPart":
            bid = f"{self.step}:{index}"
            self._parts[index] = ("text", bid, "")
            if part.content:
                self.emit(ev.TextDelta, event, delta=part.content, block_id=bid)
        elif kind == "ThinkingPart":
            bid = f"{self.step}:{index}"
            self._parts[index] = ("thinking", bid, "")
            if part.content:
                self.emit(ev.ReasoningDelta, event, delta=part.content, block_id=bid)
        elif kind == "ToolCallPart":
            self._parts[index] = ("tool", part.tool_call_id, part.tool_name)
            self.call_start(event, part.tool_call_id, part.tool_name, index)
            self.call_delta(event, part.tool_call_id, args_text(part.args), index)
        else:
            self._parts[index] = ("other", "", "")
            self.unknown("PartStartEvent", event)

    def _part_delta(self, event: Any) -> None:
        d = event.delta
        kind = type(d).__name__
        info = self._parts.get(event.index)
        if kind == "TextPartDelta" and info is not None:
            if d.content_delta:
                self.emit(ev.TextDelta, event, delta=d.content_delta, block_id=info[1])
        elif kind == "ThinkingPartDelta" and info is not None:
            if d.content_delta:
                self.emit(ev.ReasoningDelta, event, delta=d.content_delta, block_id=info[1])
        elif kind == "ToolCallPartDelta" and info is not None and info[0] == "tool":
            self.call_delta(event, info[1], args_text(d.args_delta), event.index)
        else:
            self.unknown("PartDeltaEvent", event)

    def _part_end(self, event: Any) -> None:
        part = event.part
        kind = type(part).__name__
        info = self._parts.pop(event.index, None)
        if kind == "ToolCallPart":
            streamed = bool(self.call_parts.get(part.tool_call_id))
            args = None if streamed else part.args_as_json_str()
            self.call_end(event, part.tool_call_id, part.tool_name, args, event.index)
        elif kind == "ThinkingPart" and part.signature:
            bid = info[1] if info is not None else f"{self.step}:{event.index}"
            self.emit(ev.ReasoningSignature, event, signature=part.signature, block_id=bid)

    def _tool_result(self, event: Any) -> None:
        part = getattr(event, "part", None) or event.result
        outcome = getattr(part, "outcome", "success")
        self.end_sub_run(str(part.tool_call_id))
        if type(part).__name__ == "RetryPromptPart" or outcome != "success":
            content = part.content
            message = content if isinstance(content, str) else args_text(content)
            error_type = "retried" if outcome == "success" else outcome
            name = part.tool_name or ""
            self.emit(ev.ToolError, event, call_id=part.tool_call_id, name=name, message=message, error_type=error_type)
        else:
            self.emit(ev.ToolResult, event, call_id=part.tool_call_id, name=part.tool_name, result=part.content)

    def _result(self, event: Any) -> None:
        result = event.result
        u = result.usage
        details = getattr(u, "details", None) or {}
        usage = ev.Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            reasoning_tokens=details.get("reasoning_tokens"),
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
        )
        self.emit(ev.UsageEvent, u, usage=usage)
        self.emit(ev.FinalOutput, event, value=result.output)
        raw_finish: str | None = None
        for msg in reversed(result.all_messages()):
            if type(msg).__name__ == "ModelResponse":
                raw_finish = msg.finish_reason
                break
        finish = _FINISH.get(raw_finish, raw_finish) if raw_finish is not None else None
        self.end_run(raw_finish_reason=raw_finish, finish_reason=finish, usage=usage, raw=event)  # type: ignore[arg-type]


def is_pydantic_ai_run(obj: Any) -> bool:
    """True for what :func:`from_pydantic_ai` takes: ``run_stream_events()``'s context
    manager or the run it yields (checked by class module, without importing pydantic-ai)."""
    return type(obj).__module__.startswith("pydantic_ai")


def from_pydantic_ai(
    run: Any, *, sub_runs: SubRuns | None = None, **options: Unpack[ParserOptions]
) -> Stream[ev.BaseEvent]:
    """A stream of the events of a pydantic-ai run.

    ``run`` is ``agent.run_stream_events(prompt, ...)`` (the context manager: the stream
    enters and exits it), the ``AgentRunEvents`` it yields, or any async iterable of
    pydantic-ai events. ``options``: ``run_id``, ``agent``, ``parent_run_id``, ``keep_raw``
    (:class:`ParserOptions`). ``sub_runs``: the :class:`~streamops.adapters.SubRuns` whose
    ``pydantic_ai(ctx)`` handler the run's tools give to the agents they run, whose runs then
    stream inside this one (see the module docstring).

    Emits, completes and fails as every framework adapter (docs/frameworks.md), and with
    ``TypeError`` at the first pull if ``run`` is none of the above. Cancels: stopping early
    cancels the pydantic-ai run (``cancel()``, then ``aclose()``).
    """
    return Stream.defer(_drive, run, options, sub_runs)


async def _drive(run: Any, options: ParserOptions, sub_runs: SubRuns | None) -> Any:
    parser = PydanticAIParser(**options)
    # ``run_stream_events()``'s context manager starts the run as a task of its own (an
    # asyncio task, not a cancel scope or task group of ours), so entering it here and
    # leaving it when this generator closes holds no scope across a yield (PEP 789).
    cm: Any = None
    if isinstance(run, AbstractAsyncContextManager) and not isinstance(run, AsyncIterable):
        cm = run
        run = await cm.__aenter__()
    try:
        if not isinstance(run, AsyncIterable):
            raise TypeError(f"from_pydantic_ai: expected a pydantic-ai run or event stream, got {type(run).__name__}")
        cancel = getattr(run, "cancel", None)

        async def _cancel() -> None:
            if cancel is not None:
                r = cancel()
                if hasattr(r, "__await__"):
                    await r

        async with aclosing(drive_framework(parser, run, _cancel, sub_runs)) as events:
            async for event in events:
                yield event
    finally:
        if cm is not None:
            with anyio.CancelScope(shield=True):
                await cm.__aexit__(None, None, None)
