"""The shared part of the agent-framework adapters (openai-agents, pydantic-ai, LangChain):
a sans-IO base that tracks steps, tool calls and sub-runs (agents used as tools), the
:class:`SubRuns` collector that hands a sub-run's framework objects to the adapter, and the one
async driver that reads a framework's stream, turns an exception raised mid-stream into a
typed :class:`ErrorEvent` (after every event before it) and closes the framework's run when the
consumer stops early.

Framework objects are never imported here: each adapter module imports its framework lazily.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import anyio

import streamops.events as ev

from ._base import ParserBase


def args_text(args: Any) -> str:
    """A tool call's arguments as JSON text (``None`` -> ``""``; a ``str`` as it is)."""
    if args is None:
        return ""
    if isinstance(args, str):
        return args
    return json.dumps(args, separators=(",", ":"), ensure_ascii=False, default=repr)


def join_path(base: str, name: str) -> str:
    """``base`` and ``name`` as one ``/``-separated agent path (an empty part is left out)."""
    return f"{base}/{name}" if base and name else base or name


def agen_from(obj: Any, marker: str) -> bool:
    """True when ``obj`` is an async generator whose code lives in a file whose path contains
    ``marker`` (e.g. ``"langgraph"``): how an adapter recognises its framework's stream without
    importing the framework."""
    code = getattr(obj, "ag_code", None)
    return code is not None and marker in code.co_filename


class SubRuns:
    """Collects the framework objects of runs started inside a parent run's tools (an agent
    used as a tool), for the parent's adapter to turn into typed events of their own run in
    the parent's stream: each sub-run gets its own ``run_id``, ``parent_run_id`` = the run of
    the agent whose tool call started it, ``agent`` = that agent's path plus the sub-agent's
    name (``"planner/researcher"``), and its own :class:`RunStart` ... :class:`RunEnd`, which
    ends just before the parent's :class:`ToolResult` for that call. Sub-runs of sub-runs nest
    the same way.

    Wire one collector to both ends:

    - OpenAI Agents SDK: ``researcher.as_tool("research", "...", on_stream=sub)`` (the SDK
      calls it with each ``AgentToolStreamEvent``), then
      ``from_openai_agents(Runner.run_streamed(planner, ...), sub_runs=sub)``;
    - pydantic-ai (delegation: a tool that runs another agent):
      ``await researcher.run(topic, usage=ctx.usage, event_stream_handler=sub.pydantic_ai(ctx))``
      inside the tool (``ctx`` is the tool's ``RunContext``), then
      ``from_pydantic_ai(planner.run_stream_events(...), sub_runs=sub)``.

    When they appear: the frameworks yield nothing of the parent run while its tool runs, so
    a sub-run's events are put in the stream when the parent's stream yields its next object
    (the tool's result), in the order the sub-runs produced them. Memory: the objects of
    sub-runs not yet read by the adapter (at most one tool step's worth).
    """

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: deque[tuple[str, str, Any]] = deque()
        """``(parent call id, sub-agent name, framework object)`` not yet read."""

    def __call__(self, payload: Any) -> None:
        """The OpenAI Agents SDK's ``on_stream`` callback of ``Agent.as_tool``: one
        ``AgentToolStreamEvent`` (``{"event", "agent", "tool_call"}``)."""
        call = payload.get("tool_call")
        call_id = str(getattr(call, "call_id", None) or "")
        name = str(getattr(payload.get("agent"), "name", None) or "")
        self.pending.append((call_id, name, payload["event"]))

    def pydantic_ai(self, ctx: Any) -> Callable[[Any, AsyncIterable[Any]], Awaitable[None]]:
        """A pydantic-ai ``event_stream_handler`` for an agent run from inside the tool whose
        ``RunContext`` is ``ctx`` (its ``tool_call_id`` ties the sub-run to the call)."""
        call_id = str(getattr(ctx, "tool_call_id", None) or "")

        async def handler(inner: Any, events: AsyncIterable[Any]) -> None:
            name = str(getattr(getattr(inner, "agent", None), "name", None) or "")
            async for event in events:
                self.pending.append((call_id, name, event))

        return handler


class FrameworkParser(ParserBase):
    """Sans-IO base of the framework adapters: ``feed(obj)`` maps one framework stream object
    to events (``on_payload(None, obj)``), ``fail(exc)`` reports an exception raised by the
    framework, ``close()`` ends the run. Step and tool-call bookkeeping lives here:
    :meth:`open_step` / :meth:`close_step` emit :class:`StepStart` / :class:`StepEnd` once per
    step, :meth:`call_start` / :meth:`call_delta` / :meth:`call_end` emit a tool call's events
    at most once each (a call already ended is never ended again)."""

    api: ClassVar[str] = "framework"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.started = False
        self.step = -1
        self.in_step = False
        self.calls_started: set[str] = set()
        self.calls_ended: set[str] = set()
        self.call_parts: dict[str, list[str]] = {}
        self.call_names: dict[str, str] = {}
        self.base_agent = self.agent
        self.started_agent = False
        """The path the agents of this run are named under (handoffs replace the last name)."""
        self.children: dict[str, FrameworkParser] = {}
        """Open sub-runs, by the id of the tool call that started each."""

    def start_once(self, raw: Any = None) -> None:
        """Emit the run's :class:`RunStart` unless it was emitted (a framework stream tells no
        model or response id at its start)."""
        if not self.started:
            self.started = True
            self.start_run(raw, None, None, "model", "run_id")

    def feed(self, obj: Any) -> list[ev.BaseEvent]:
        """Map one object of the framework's stream; return the new events."""
        return self.feed_payload(obj)

    # ---------------------------------------------------------------- steps
    def open_step(self, raw: Any = None) -> None:
        """Start the next step unless one is open."""
        if not self.in_step:
            self.step += 1
            self.in_step = True
            self.emit(ev.StepStart, raw, step=self.step)

    def close_step(self, raw: Any = None, finish_reason: Any = None, raw_finish_reason: str | None = None) -> None:
        """End the open step, if any."""
        if self.in_step:
            self.in_step = False
            self.emit(ev.StepEnd, raw, step=self.step, finish_reason=finish_reason, raw_finish_reason=raw_finish_reason)

    # ---------------------------------------------------------------- tool calls
    def call_start(self, raw: Any, call_id: str, name: str, index: int | None = None) -> None:
        """Emit the call's :class:`ToolCallStart` once."""
        if call_id not in self.calls_started:
            self.calls_started.add(call_id)
            self.call_parts[call_id] = []
            self.call_names[call_id] = name
            self.emit(ev.ToolCallStart, raw, call_id=call_id, name=name, index=index)

    def call_delta(self, raw: Any, call_id: str, delta: str, index: int | None = None) -> None:
        """Emit a :class:`ToolCallDelta` (an empty delta is skipped)."""
        if delta and call_id not in self.calls_ended:
            self.call_parts.setdefault(call_id, []).append(delta)
            self.emit(ev.ToolCallDelta, raw, call_id=call_id, delta=delta, index=index)

    def call_end(self, raw: Any, call_id: str, name: str, arguments: str | None, index: int | None = None) -> None:
        """Emit the call's :class:`ToolCallEnd` once (its start first if it was never
        streamed); ``arguments=None`` means "the deltas seen"."""
        if call_id in self.calls_ended:
            return
        if call_id not in self.calls_started:
            self.call_start(raw, call_id, name, index)
            if arguments:
                self.call_delta(raw, call_id, arguments, index)
        if arguments is None:
            arguments = "".join(self.call_parts.get(call_id, ()))
        name = name or self.call_names.get(call_id, "")
        self.calls_ended.add(call_id)
        self.emit(ev.ToolCallEnd, raw, call_id=call_id, name=name, arguments=arguments, index=index)

    # ---------------------------------------------------------------- handoffs
    def switch_agent(self, raw: Any, name: str) -> None:
        """The run's agent is now ``name`` (a handoff, or the run's first agent): an
        :class:`AgentHandoff` (from the current path to the new one, under
        :attr:`base_agent`); events after it carry the new path. Nothing when it is the same."""
        to = join_path(self.base_agent, name)
        if to != self.agent or not self.started_agent:
            self.emit(ev.AgentHandoff, raw, from_agent=self.agent if self.started_agent else "", to_agent=to)
            self.agent = to
            self.started_agent = True

    # ---------------------------------------------------------------- sub-runs
    def feed_sub(self, call_id: str, name: str, obj: Any) -> list[ev.BaseEvent]:
        """One framework object of the sub-run started by tool call ``call_id`` (of this run or
        of any of its sub-runs) with agent ``name``: the sub-run's new events (its run start
        first, when new)."""
        owner = self._owner(call_id) or self
        child = owner.children.get(call_id)
        if child is None:
            child = owner.children[call_id] = type(self)(
                agent=join_path(owner.agent, name),
                parent_run_id=owner.run_id,
                keep_raw=self.keep_raw,
                on_malformed=self.on_malformed,
            )
            child.base_agent = owner.agent
        return child.feed(obj)

    def _owner(self, call_id: str) -> FrameworkParser | None:
        if call_id in self.calls_started:
            return self
        for child in self.children.values():
            found = child._owner(call_id)
            if found is not None:
                return found
        return None

    def end_sub_run(self, call_id: str) -> None:
        """The tool call ``call_id`` returned: end the sub-run it started, if any (its run end,
        before the call's result)."""
        child = self.children.pop(call_id, None)
        if child is not None:
            self.out.extend(child.close())

    def end_sub_runs(self) -> None:
        """This run ends: sub-runs still open end cancelled (their tool never returned)."""
        for call_id in list(self.children):
            child = self.children.pop(call_id)
            child.out = []
            child.end_sub_runs()
            child.close_step()
            child.end_run(status="cancelled", finish_reason="cancelled")
            self.out.extend(child.out)

    # ---------------------------------------------------------------- errors and end
    def fail(self, exc: BaseException) -> list[ev.BaseEvent]:
        """The framework raised ``exc`` mid-run: an :class:`ErrorEvent` (``error_type`` = the
        exception's class name, ``raw`` = the exception), then the failed run end (sub-runs
        still open end cancelled first)."""
        self.out = []
        self.end_sub_runs()
        if not self.ended:
            self.start_once()
            self.close_step()
            self.emit(ev.ErrorEvent, exc, error_type=type(exc).__name__, message=str(exc) or type(exc).__name__)
            self.end_run(status="failed", finish_reason="error")
        return self.out

    def on_close(self) -> None:
        """The framework's stream ended: close the open step and end the run (completed)."""
        self.end_sub_runs()
        self.close_step()
        self.end_run(status="completed")


async def drive_framework(
    parser: FrameworkParser,
    source: AsyncIterable[Any],
    cancel: Callable[[], Awaitable[None]] | None = None,
    sub_runs: SubRuns | None = None,
) -> AsyncGenerator[ev.BaseEvent, None]:
    """The events of a framework's stream: each object fed to ``parser``; an ``Exception``
    raised by the framework becomes an :class:`ErrorEvent` and a failed :class:`RunEnd`
    (events before it are kept); then ``parser.close()``. An exception of the parser itself
    (:class:`~streamops.errors.StreamFormatError` on malformed input) propagates. When the consumer stops before the
    end (``aclose()``, ``break``, cancellation), ``cancel()`` is awaited, which cancels the
    framework's run (and so closes its HTTP request). With ``sub_runs``, the objects of
    sub-runs it collected are fed (:meth:`FrameworkParser.feed_sub`) before each object of
    the stream and before its end."""
    it: AsyncIterator[Any] = aiter(source)
    done = False
    pending = sub_runs.pending if sub_runs is not None else None
    try:
        while True:
            try:
                obj = await anext(it)
            except StopAsyncIteration:
                break
            except Exception as exc:
                while pending:
                    for event in parser.feed_sub(*pending.popleft()):
                        yield event
                for event in parser.fail(exc):
                    yield event
                break
            while pending:
                for event in parser.feed_sub(*pending.popleft()):
                    yield event
            for event in parser.feed(obj):
                yield event
        while pending:
            for event in parser.feed_sub(*pending.popleft()):
                yield event
        for event in parser.close():
            yield event
        done = True
    finally:
        with anyio.CancelScope(shield=True):
            if not done and cancel is not None:
                await cancel()
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
