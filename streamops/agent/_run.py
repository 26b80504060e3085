"""One agent run in progress, as a pipeline of operators.

::

    Stream.defer(steps)                      RunStart, the steps, RunEnd (the step loop below)
      | errors_as_events() | _failed_end     an exception: ErrorEvent, then a failed RunEnd
      | structured(output_type, ...)         with an output_type: ObjectDelta... FinalOutput
      | call_hooks(hooks, sequencer, ...)    one run id, agent and seq sequence for the run
                                             (restamp fused in), the hooks, the partial
                                             output, a consumer that left

and each step (one model call and the tool calls it asks for)::

    StepStart, model.stream(...) | own run id | call ids | fold, StepEnd   | run_tools(tools)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from .._stream import End, Push, Stage, Stream
from ..events import (
    BaseEvent,
    ErrorEvent,
    RunEnd,
    RunStart,
    RunStatus,
    StepEnd,
    StepStart,
    ToolError,
    ToolResult,
    Usage,
    derive,
)
from ..operators.aggregate import Accumulator, Message
from ..operators.errors import errors_as_events
from ..operators.structured import structured
from ..operators.transform import Sequencer, tap
from ..operators.transform import map as map_

if TYPE_CHECKING:
    import anyio

    from ..models import ChatMessage

from ._calls import CallIds, assistant_message
from ._hooks import call_hook, call_hooks
from ._output import schema_of
from ._tools import result_text, run_tools

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ["Control", "Run"]


_OUTPUT_STATUSES: tuple[RunStatus, ...] = ("completed", "length")
"""The run ends whose last step's text is the answer to validate (see ``structured``'s
``finish_on``)."""


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
    """One run in progress: the pipeline behind :meth:`Agent.stream`."""

    def __init__(self, agent: Agent, messages: list[ChatMessage], run_id: str | None, control: Control) -> None:
        self.agent = agent
        self.messages = messages
        self.run_id = run_id or uuid.uuid4().hex
        self.control = control
        control.messages = messages  # the conversation as it grows (RunResult.messages)
        self.open_step: Accumulator | None = None  # the step whose usage is not folded yet
        self.specs = [t.spec for t in agent.tools.values()]
        self.schema = schema_of(agent.output_type)
        self.step_message: Message | None = None  # the finished step's folded output
        self.step_failed = False  # the model's own run end said "failed"
        self.usage = Usage()
        self.sequencer = Sequencer(run_id=self.run_id, agent=agent.name)
        self.partial = control.partial = Accumulator()

    def event(self, cls: type[BaseEvent], **fields: Any) -> Any:
        """A new event of this run (numbered by the pipeline's ``call_hooks``)."""
        return cls(run_id=self.run_id, agent=self.agent.name, **fields)

    def run_end(self, status: RunStatus, message: Message | None = None) -> RunEnd:
        m = message
        finish = m.finish_reason if m is not None else None
        if status == "cancelled":
            finish = "cancelled"
        elif status == "failed":
            finish = "error"
        return self.event(  # type: ignore[no-any-return]
            RunEnd,
            status=status,
            finish_reason=finish,
            raw_finish_reason=m.raw_finish_reason if m is not None else None,
            usage=self.usage,
        )

    # ------------------------------------------------------------------ the pipeline
    def events(self) -> Stream[BaseEvent]:
        """The run: ``RunStart``, the steps (:meth:`_steps`), then one ``RunEnd``. An exception
        (from the model stream or the machinery around it) ends the run like a provider error:
        an ``ErrorEvent`` and a failed ``RunEnd``, after everything before it. When the
        consumer leaves, the run end goes to the hooks and ``result_end`` (:meth:`_left`)."""
        agent = self.agent
        out: Stream[BaseEvent] = Stream.defer(self._steps) | errors_as_events() | Stage(self._failed_end, "failed_end")
        if agent.output_type is not None:
            out = out | structured(
                agent.output_type, keep_text=True, json_errors="at_end", finish_on=_OUTPUT_STATUSES, nested=False
            )
        return out | call_hooks(agent.hooks, self.sequencer, fold=self.partial.add, on_end=self._ended, left=self._left)

    def _failed_end(self, down: Push, end: End) -> tuple[Push, End]:
        # After errors_as_events: a stream that ends without its RunEnd ended on an error.
        ended = False

        def push(e: Any) -> None:
            nonlocal ended
            if isinstance(e, RunEnd) and not e.parent_run_id:  # a nested run's end is not this run's
                ended = True
            down(e)

        def end_() -> None:
            if not ended:
                down(self.run_end("failed"))
            end()

        return push, end_

    def _own(self, ev: BaseEvent) -> BaseEvent:
        # The model was given this run's id and agent name; one that ignores them gets its
        # events relabelled (structured() keeps its state per run id). Seqs are the run's
        # call_hooks' job.
        if ev.run_id == self.run_id and ev.agent == self.agent.name:
            return ev
        return derive(ev, run_id=self.run_id, agent=self.agent.name)

    def _step_ended(self, _: Message) -> bool:
        return self.step_message is not None  # not cut short by a cancel now

    def _ended(self, end: RunEnd) -> None:
        self.control.end = end

    async def _steps(self) -> AsyncGenerator[BaseEvent, None]:
        """Model calls, each followed by its tool calls, until one decides the run's end."""
        agent = self.agent
        control = self.control
        yield self.event(RunStart, model=agent.model.name)
        last: Message | None = None
        status: RunStatus = "max_steps"
        for step in range(agent.max_steps):
            if control.cancelled or control.after_step:
                status = "cancelled"
                break
            results: dict[str, str] = {}
            step_events = Stream.defer(self._model_call, step) | run_tools(
                agent.tools, timeout=agent.tool_timeout, control=control, when=self._step_ended
            )
            # aclosing: a consumer that leaves (or a cancellation) closes the step, its tools
            # included, here, at once, not in the garbage collector's finalizer.
            async with aclosing(step_events.__aiter__()) as it:
                async for ev in it:
                    if ev.parent_run_id:  # a run a tool started (an agent used as a tool): passed on
                        yield ev
                        continue
                    if isinstance(ev, (ToolResult, ToolError)):
                        results[ev.call_id] = result_text(ev)
                    elif isinstance(ev, (RunStart, RunEnd)):
                        continue  # the model's own: the run has one of each
                    yield ev
            msg = self.step_message
            if msg is None:  # cancelled now, during the model call
                status = "cancelled"
                break
            last = msg
            if self.step_failed or msg.error is not None:
                status = "failed"
                break
            calls = [c for c in msg.tool_calls if c.name]
            if not calls:
                status = "length" if msg.finish_reason == "length" else "completed"
                break
            if control.cancelled:
                status = "cancelled"
                break
            for call in calls:
                content = results.get(call.id or "", "")
                self.messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        else:
            if control.cancelled or control.after_step:
                status = "cancelled"
        yield self.run_end(status, last)

    async def _model_call(self, step: int) -> AsyncGenerator[BaseEvent, None]:
        """One step's model call: ``StepStart``, the model's events (its own run id and agent
        given, tool calls given ids, usage folded), ``StepEnd``. Sets :attr:`step_message`
        (``None`` when cancelled now) and :attr:`step_failed`; adds the step's assistant
        message to the conversation."""
        agent = self.agent
        self.step_message = None
        self.step_failed = False
        yield self.event(StepStart, step=step)
        acc = self.open_step = Accumulator()
        model_stream = (
            agent.model.stream(
                self.messages,
                tools=self.specs,
                output_schema=self.schema,
                run_id=self.run_id,
                agent=agent.name,
                **agent.model_settings,
            )
            | map_(self._own)
            | map_(CallIds(step).fix)
            | tap(acc.add)  # the step's fold: its message, usage and status
        )
        # The event loop's own cancel scope class, looked up once per call, not once per event
        # (``anyio.CancelScope()`` finds the running backend each time it is called).
        import anyio

        scope_type = type(anyio.CancelScope())
        async with aclosing(model_stream.__aiter__()) as it:
            while (ev := await self._next(it, scope_type)) is not None:
                yield ev
        self.open_step = None
        msg = acc.message()
        self.step_failed = msg.status == "failed"  # the model's own run end said so
        usage = msg.usage or Usage()
        self.usage = self.usage + usage  # the partial step's too, when cancelled now
        if self.control.cancelled:
            return
        yield self.event(
            StepEnd,
            step=step,
            finish_reason=msg.finish_reason,
            raw_finish_reason=msg.raw_finish_reason,
            usage=usage,
        )
        self.step_message = msg
        if not (self.step_failed or msg.error is not None):
            self.messages.append(assistant_message(msg))

    async def _left(self) -> None:
        """The consumer left (or the run failed past its end): record the run end for the
        hooks and ``stream.result_end``; nobody can receive it in the stream. Its usage is
        the usage so far, the interrupted step's included."""
        import anyio

        if self.control.end is not None:
            return
        if self.open_step is not None:
            self.usage = self.usage + (self.open_step.message().usage or Usage())
            self.open_step = None
        end = self.sequencer.stamp(self.run_end("cancelled"))
        self.control.end = end
        with anyio.CancelScope(shield=True):
            await call_hook(self.agent.hooks, "on_stream_end", end, self._hook_error)

    def _hook_error(self, message: str) -> ErrorEvent:
        return self.sequencer.make(ErrorEvent, error_type="hook_error", message=message)

    async def _next(self, it: Any, scope_type: type[anyio.CancelScope]) -> BaseEvent | None:
        """The model stream's next event, or ``None`` at its end or when cancelled now;
        ``scope_type`` is the running backend's ``anyio.CancelScope`` class."""
        with scope_type() as scope:
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
