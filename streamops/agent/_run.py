"""One agent run in progress: the step loop, hooks, cancellation and tool scheduling."""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from .._host import TaskHostRequired, current_host
from ..events import (
    BaseEvent,
    ErrorEvent,
    RunEnd,
    RunStart,
    RunStatus,
    StepEnd,
    StepStart,
    TextDelta,
    ToolError,
    ToolProgress,
    ToolResult,
    Usage,
    derive,
)
from ..operators.aggregate import Accumulator, Message

if TYPE_CHECKING:
    import anyio

    from ..models import ChatMessage

from ._calls import CallIds, Mailbox, assistant_message
from ._output import OutputParser, schema_of

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ["Control", "Run"]


class Control:
    """The verbs of one run in progress."""

    __slots__ = ("after_step", "cancelled", "end", "messages", "partial", "scope")

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self.after_step = False
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None
        self.end: RunEnd | None = None
        self.partial: Accumulator | None = None


class Run:
    """One run in progress: the loop behind :meth:`Agent.stream`."""

    def __init__(self, agent: Agent, messages: list[ChatMessage], run_id: str | None, control: Control) -> None:
        self.agent = agent
        self.messages = messages
        self.run_id = run_id or uuid.uuid4().hex
        self.control = control
        control.messages = messages  # the conversation as it grows (RunResult.messages)
        self.open_step: Accumulator | None = None  # the step whose usage is not folded yet
        self.specs = [t.spec for t in agent.tools.values()]
        self.schema = schema_of(agent.output_type)
        self.parser: OutputParser | None = None  # the current step's
        self.step_message: Message | None = None  # the finished step's folded output
        self.step_failed = False  # the model's own run end said "failed"
        self.outcome: tuple[RunStatus, Message | None] = ("cancelled", None)  # set by _steps
        self.ended = False  # the RunEnd was emitted (or an error is on its way out)
        self.seq = 0
        self.usage = Usage()
        self.partial = control.partial = Accumulator()
        self.tool_scopes: list[anyio.CancelScope] = []
        self.tools_done: anyio.Event | None = None

    # ------------------------------------------------------------------ events and hooks
    def make(self, cls: type[BaseEvent], **fields: Any) -> Any:
        ev = cls(run_id=self.run_id, agent=self.agent.name, seq=self.seq, **fields)
        self.seq += 1
        return ev

    def stamp(self, ev: BaseEvent) -> BaseEvent:
        # Model events are built for this run (run_id and agent given to the model); only
        # the step-local seq is renumbered. They are fresh objects nobody else holds.
        ev.seq = self.seq
        ev.run_id = self.run_id
        ev.agent = self.agent.name
        self.seq += 1
        return ev

    async def call_hook(self, name: str, arg: Any) -> list[BaseEvent]:
        """Call one hook; return the error events it caused (none if it succeeded)."""
        hook = getattr(self.agent.hooks, name)
        if hook is None:
            return []
        try:
            r = hook(arg)
            if inspect.isawaitable(r):
                await r
        except Exception as exc:
            err = self.make(ErrorEvent, error_type="hook_error", message=f"{name} raised {type(exc).__name__}: {exc}")
            out = [err]
            if name != "on_error":
                out += await self.call_hook("on_error", err)
            return out
        return []

    def nested(self, ev: BaseEvent) -> BaseEvent:
        """An event of a run a tool call started (:meth:`ToolContext.emit`), nested under this
        run: ``agent`` prefixed with this agent's name, ``parent_run_id`` this run's (unless it
        already names the sub-run's own parent)."""
        name = self.agent.name
        return derive(
            ev,
            agent=f"{name}/{ev.agent}" if name and ev.agent else name or ev.agent,
            parent_run_id=ev.parent_run_id or self.run_id,
        )

    async def emit(self, ev: BaseEvent) -> list[BaseEvent]:
        """Fold ``ev`` and run its hooks; return ``ev`` plus any hook errors, to be yielded.
        An event of another run (a sub-run's, see :meth:`nested`) is only passed to
        ``on_chunk``: it is not folded into this run's message and starts or ends nothing."""
        out = [ev]
        hooks = self.agent.hooks
        if ev.run_id != self.run_id:
            if hooks.on_chunk is not None:
                out += await self.call_hook("on_chunk", ev)
            return out
        self.partial.add(ev)
        if hooks.on_chunk is not None:
            out += await self.call_hook("on_chunk", ev)
        if isinstance(ev, RunStart):
            out += await self.call_hook("on_stream_start", ev)
        elif isinstance(ev, (ErrorEvent, ToolError)):
            out += await self.call_hook("on_error", ev)
        elif isinstance(ev, RunEnd):
            self.control.end = ev
            out += await self.call_hook("on_stream_end", ev)
        for extra in out[1:]:
            self.partial.add(extra)
        return out

    def run_end(self, status: RunStatus, message: Message | None = None) -> RunEnd:
        m = message
        finish = m.finish_reason if m is not None else None
        if status == "cancelled":
            finish = "cancelled"
        elif status == "failed":
            finish = "error"
        return self.make(  # type: ignore[no-any-return]
            RunEnd,
            status=status,
            finish_reason=finish,
            raw_finish_reason=m.raw_finish_reason if m is not None else None,
            usage=self.usage,
        )

    # ------------------------------------------------------------------ the loop
    async def events(self) -> AsyncGenerator[BaseEvent, None]:
        """The run: ``RunStart``, the steps (:meth:`_steps`), then one ``RunEnd``. An exception
        (from the model stream or the machinery around it) ends the run like a provider error:
        an ``ErrorEvent`` and a failed ``RunEnd``, after everything before it. When the
        consumer leaves, the run end goes to the hooks and ``result_end`` (:meth:`_left`)."""
        try:
            for ev in await self.emit(self.make(RunStart, model=self.agent.model.name)):
                yield ev
            async with aclosing(self._steps()) as steps:
                async for ev in steps:
                    yield ev
            status, msg = self.outcome
            self.ended = True
            for ev in await self.emit(self.run_end(status, msg)):
                yield ev
        except Exception as exc:
            if self.ended:
                raise
            self.ended = True
            err = self.make(ErrorEvent, error_type=type(exc).__name__, message=str(exc) or repr(exc))
            for ev in await self.emit(err):
                yield ev
            for ev in await self.emit(self.run_end("failed")):
                yield ev
        finally:
            await self._stop_tools()
            if not self.ended and self.control.end is None:
                await self._left()

    async def _steps(self) -> AsyncGenerator[BaseEvent, None]:
        """Model calls, each followed by its tool calls, until one decides the run's end: sets
        :attr:`outcome` to the ``RunEnd``'s status and the message it reports."""
        agent = self.agent
        control = self.control
        last: Message | None = None
        for step in range(agent.max_steps):
            if control.cancelled or control.after_step:
                break
            async with aclosing(self._model_call(step)) as model_events:
                async for ev in model_events:
                    yield ev
            msg = self.step_message
            if msg is None:  # cancelled now, during the model call
                break
            last = msg
            if self.step_failed or msg.error is not None:
                self.outcome = ("failed", msg)
                return
            calls = [c for c in msg.tool_calls if c.name]
            if calls:
                self.messages.append(assistant_message(msg))
                # aclosing: a consumer that leaves (or a cancellation) closes the tool loop
                # here, at once, not in the garbage collector's finalizer.
                async with aclosing(self._run_tools(calls)) as tool_events:
                    async for ev in tool_events:
                        for out in await self.emit(ev):
                            yield out
                if control.cancelled:
                    break
                continue
            if self.parser is not None:
                for out in self.parser.finish(self):
                    for o in await self.emit(out):
                        yield o
            self.messages.append(assistant_message(msg))
            self.outcome = ("length" if msg.finish_reason == "length" else "completed", msg)
            return
        self.outcome = ("cancelled" if control.cancelled or control.after_step else "max_steps", last)

    async def _model_call(self, step: int) -> AsyncGenerator[BaseEvent, None]:
        """One step's model call: ``StepStart``, the model's events (renumbered into the run,
        tool calls given ids, the output's JSON events after each text delta), ``StepEnd``.
        Sets :attr:`step_message` (``None`` when cancelled now) and :attr:`step_failed`."""
        agent = self.agent
        self.step_message = None
        self.step_failed = False
        for ev in await self.emit(self.make(StepStart, step=step)):
            yield ev
        acc = self.open_step = Accumulator()
        parser = self.parser = OutputParser(agent.output_type) if agent.output_type is not None else None
        model_stream = agent.model.stream(
            self.messages,
            tools=self.specs,
            output_schema=self.schema,
            run_id=self.run_id,
            agent=agent.name,
            **agent.model_settings,
        )
        call_ids = CallIds(step)
        async with aclosing(model_stream.__aiter__()) as it:
            while True:
                ev_or_none = await self._next(it)
                if ev_or_none is None:
                    break
                ev = ev_or_none
                call_ids.fix(ev)
                acc.add(ev)
                if isinstance(ev, RunStart):
                    continue
                if isinstance(ev, RunEnd):
                    self.step_failed = ev.status == "failed"
                    continue
                for out in await self.emit(self.stamp(ev)):
                    yield out
                if parser is not None and isinstance(ev, TextDelta):
                    for out in parser.feed(self, ev.delta):
                        for o in await self.emit(out):
                            yield o
        self.open_step = None
        msg = acc.message()
        usage = msg.usage or Usage()
        self.usage = self.usage + usage  # the partial step's too, when cancelled now
        if self.control.cancelled:
            return
        for ev in await self.emit(
            self.make(
                StepEnd,
                step=step,
                finish_reason=msg.finish_reason,
                raw_finish_reason=msg.raw_finish_reason,
                usage=usage,
            )
        ):
            yield ev
        self.step_message = msg

    async def _left(self) -> None:
        """The consumer left (or the run failed past its end): record the run end for the
        hooks and ``stream.result_end``; nobody can receive it in the stream. Its usage is
        the usage so far, the interrupted step's included."""
        import anyio

        if self.open_step is not None:
            self.usage = self.usage + (self.open_step.message().usage or Usage())
            self.open_step = None
        end = self.run_end("cancelled")
        self.control.end = end
        with anyio.CancelScope(shield=True):
            await self.call_hook("on_stream_end", end)

    async def _next(self, it: Any) -> BaseEvent | None:
        """The model stream's next event, or ``None`` at its end or when cancelled now."""
        import anyio

        with anyio.CancelScope() as scope:
            self.control.scope = scope
            if self.control.cancelled:
                scope.cancel()
            try:
                ev: BaseEvent = await it.__anext__()
            except StopAsyncIteration:
                return None
            finally:
                self.control.scope = None
        if scope.cancelled_caught:
            return None
        return ev

    # ------------------------------------------------------------------ tools
    async def _run_tools(self, calls: list[Any]) -> AsyncGenerator[BaseEvent, None]:
        import anyio

        box = Mailbox()
        results: dict[str, str] = {}
        self.tools_done = anyio.Event()
        box.pending = len(calls)
        try:
            tg = current_host("Agent.stream()")
        except TaskHostRequired:
            # A bare ``async for``: no terminal hosts tasks. The step's calls still run
            # concurrently, in a task group of the run's own that is closed before anything is
            # yielded (PEP 789: no task group across a yield); their events (progress, results)
            # come out together once the last call has finished.
            with anyio.CancelScope() as outer:
                self.control.scope = outer
                if self.control.cancelled:
                    outer.cancel()
                async with anyio.create_task_group() as own:
                    for call in calls:
                        scope = anyio.CancelScope()
                        self.tool_scopes.append(scope)
                        own.start_soon(self._tool_task, call, box, results, scope)
            self.control.scope = None
            while box.items:
                yield box.items.popleft()
            if outer.cancelled_caught:
                return
        else:
            async with aclosing(self._hosted_tools(tg, calls, box, results)) as evs:
                async for ev in evs:
                    yield ev
            if self.control.cancelled:
                return
        for call in calls:
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": results.get(call.id, "")})

    async def _hosted_tools(
        self, tg: Any, calls: list[Any], box: Mailbox, results: dict[str, str]
    ) -> AsyncGenerator[BaseEvent, None]:
        """Run the step's calls as tasks of the terminal's task group; yield their events live,
        as each call reports them."""
        import anyio

        for call in calls:
            # The scope exists before the task starts, so stopping the tools cancels a task
            # that has not started yet too.
            scope = anyio.CancelScope()
            self.tool_scopes.append(scope)
            tg.start_soon(self._tool_task, call, box, results, scope)
        try:
            while box.pending or box.items:
                while box.items:
                    yield box.items.popleft()
                if not box.pending:
                    break
                w = box.waiter = anyio.Event()
                with anyio.CancelScope() as scope:
                    self.control.scope = scope
                    if self.control.cancelled:
                        scope.cancel()
                    await w.wait()
                self.control.scope = None
                if scope.cancelled_caught:
                    return
        finally:
            if box.pending:
                # Cancelled now, or closed early (the consumer left): this step's tools stop
                # with the generator, and are awaited (shielded) before it returns.
                self.control.scope = None
                await self._stop_tools()

    async def _tool_task(self, call: Any, box: Mailbox, results: dict[str, str], scope: anyio.CancelScope) -> None:
        import anyio

        agent = self.agent
        call_id: str = call.id  # never empty: see CallIds
        try:
            with scope:
                tool = agent.tools.get(call.name)
                if tool is None:
                    msg = f"unknown tool {call.name!r}; available: {', '.join(agent.tools) or 'none'}"
                    results[call_id] = msg
                    box.put(
                        self.make(ToolError, call_id=call_id, name=call.name, message=msg, error_type="UnknownTool")
                    )
                    return

                def progress(data: Any) -> None:
                    box.put(self.make(ToolProgress, call_id=call_id, name=call.name, data=data))

                def sub_event(ev: BaseEvent) -> None:
                    box.put(self.nested(ev))

                try:
                    if agent.tool_timeout is not None and tool.timeout is None:
                        with anyio.fail_after(agent.tool_timeout):
                            value = await tool.invoke(
                                call.arguments, call_id=call_id, progress=progress, events=sub_event
                            )
                    else:
                        value = await tool.invoke(call.arguments, call_id=call_id, progress=progress, events=sub_event)
                except TimeoutError as exc:
                    text = str(exc) or f"tool {call.name!r} timed out after {agent.tool_timeout} s"
                    results[call_id] = text
                    box.put(
                        self.make(ToolError, call_id=call_id, name=call.name, message=text, error_type="TimeoutError")
                    )
                except Exception as exc:
                    text = f"{type(exc).__name__}: {exc}"
                    results[call_id] = text
                    box.put(
                        self.make(
                            ToolError, call_id=call_id, name=call.name, message=text, error_type=type(exc).__name__
                        )
                    )
                else:
                    results[call_id] = value if isinstance(value, str) else json.dumps(value, default=str)
                    box.put(self.make(ToolResult, call_id=call_id, name=call.name, result=value))
        finally:
            box.pending -= 1
            if box.waiter is not None:
                w, box.waiter = box.waiter, None
                w.set()
            if self.tools_done is not None and box.pending == 0:
                self.tools_done.set()

    async def _stop_tools(self) -> None:
        import anyio

        for scope in self.tool_scopes:
            scope.cancel()
        if self.tools_done is not None:
            with anyio.CancelScope(shield=True):
                await self.tools_done.wait()
