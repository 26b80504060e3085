"""Agent runs as streams: a model plus tools, every step streamed.

``Agent(model=..., tools=[...], instructions=..., output_type=...)``; ``agent.stream(prompt)``
is a :class:`AgentStream` of the whole run's events::

    RunStart
      StepStart(0)  deltas...  tool-call start/delta/end...  UsageEvent  StepEnd(0)
      ToolProgress...  ToolResult | ToolError  (one per call, as each finishes)
      StepStart(1)  deltas...  StepEnd(1)
      [ObjectDelta... PartialObject... FinalOutput]   (with an output_type)
    RunEnd(status, finish_reason, usage=total)

Every event carries the agent's ``run_id`` and ``agent`` name and a ``seq`` monotonic over the
whole run. The calls of one step run concurrently (sync tools in worker threads), each result
keyed by its ``call_id`` (made up, unique in the run, for a call the model gave no id).
``await agent.run(prompt)`` builds a :class:`RunResult` from the same stream;
``agent.stream_sync(prompt)`` iterates it from synchronous code.

Cancellation, three ways, one terminal event (``RunEnd(status="cancelled")`` with the usage
so far; ``stream.result_message`` is the partial output):

An exception from the model stream (a connection error, malformed wire data) ends the run
like a provider error: an ``ErrorEvent`` (``error_type`` = the exception's class name) and
``RunEnd(status="failed")``, after everything received before it.

- **stop consuming** (``break``, closing the stream, a client that went away): the model
  request and the running tools are cancelled and closed; the run end goes to the hooks and to
  ``stream.result_end`` (the consumer left, so it cannot receive it);
- **cancel now**: ``stream.cancel()``: the model request and the tools are cancelled at once;
  the stream ends with the run end;
- **cancel after the step**: ``stream.cancel_after_step()``: the current model call and its
  tools finish, then the stream ends with the run end.

Where the tool calls run: under a terminal that hosts tasks (``iterate()``, ``collect()``,
``run()``, ``to_list()``...) they are tasks of its task group, and their ``ToolProgress``/
``ToolResult``/``ToolError`` events reach the consumer live, as each call reports them. A bare
``async for event in agent.stream(prompt)`` works too (asyncio and trio): the calls of a step
still run concurrently, in a task group the run opens and closes within the step, but their
events arrive together once the step's last call has finished (no live progress), and a
``break`` cannot interrupt a step's tools (it takes effect at the next event). Use
``iterate()`` for live tool progress.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._host import TaskHostRequired, current_host
from ._stream import Stream
from .events import (
    BaseEvent,
    ErrorEvent,
    FinalOutput,
    ObjectDelta,
    PartialObject,
    RunEnd,
    RunStart,
    RunStatus,
    StepEnd,
    StepStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolError,
    ToolProgress,
    ToolResult,
    Usage,
)
from .operators.aggregate import Accumulator, Message

if TYPE_CHECKING:
    import anyio

    from .models import ChatMessage, Model
    from .tools import Tool

__all__ = ["Agent", "AgentStream", "Hooks", "RunResult"]

Hook = Callable[[Any], Awaitable[object] | object]


@dataclass(slots=True, kw_only=True)
class Hooks:
    """Callbacks for push-style users; each may be sync or async.

    A hook that raises does not stop the run: the error is reported as an
    ``ErrorEvent(error_type="hook_error")`` in the stream (and to ``on_error``, unless it is
    ``on_error`` itself that failed).
    """

    on_stream_start: Hook | None = None
    """Called with the ``RunStart`` event."""
    on_chunk: Hook | None = None
    """Called with every event, before the consumer gets it."""
    on_stream_end: Hook | None = None
    """Called with the ``RunEnd`` event, however the run ended (also when the consumer left)."""
    on_error: Hook | None = None
    """Called with every ``ErrorEvent`` and ``ToolError`` (provider errors, failed tools,
    failed hooks, output validation)."""


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


class _Control:
    """The verbs of one run in progress."""

    __slots__ = ("after_step", "cancelled", "end", "messages", "partial", "scope")

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self.after_step = False
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None
        self.end: RunEnd | None = None
        self.partial: Accumulator | None = None


class AgentStream(Stream[BaseEvent]):
    """The events of one agent run, with the cancellation verbs.

    Each iteration starts a new run (a new ``run_id``); :meth:`cancel` and
    :meth:`cancel_after_step` act on the run in progress; :attr:`result_end` holds the
    last run's ``RunEnd`` and :attr:`result_message` what it said, also when the consumer
    stopped early.
    """

    __slots__ = ("_agent", "_controls", "_messages", "_run_id")

    def __init__(self, agent: Agent, messages: list[ChatMessage], run_id: str | None) -> None:
        self._agent = agent
        self._messages = messages
        self._run_id = run_id
        self._controls: list[_Control] = []
        super().__init__(Stream.defer(self._start))

    def _start(self) -> AsyncGenerator[BaseEvent, None]:
        # Each iteration is a new run, with its own control (the last few are kept for
        # ``result_end``/``result_message``).
        control = _Control()
        self._controls = [*self._controls[-3:], control]
        return _Run(self._agent, list(self._messages), self._run_id, control).events()

    def cancel(self) -> None:
        """Cancel now: stop the model request and the running tools; the stream ends with
        ``RunEnd(status="cancelled")``. Call it from the event loop's thread."""
        for c in self._controls:
            c.cancelled = True
            if c.scope is not None:
                c.scope.cancel()

    def cancel_after_step(self) -> None:
        """Let the current step (model call and its tools) finish, then end the run with
        ``RunEnd(status="cancelled")``."""
        for c in self._controls:
            c.after_step = True

    @property
    def result_end(self) -> RunEnd | None:
        """The ``RunEnd`` of the latest run, once it ended (however it ended)."""
        for c in reversed(self._controls):
            if c.end is not None:
                return c.end
        return None

    @property
    def result_message(self) -> Message | None:
        """The latest run's output so far, folded from every event it emitted (text, reasoning,
        tool calls, usage, finish reason: see :class:`~streamops.Accumulator`), ``None`` before
        a run starts. After a cancellation or an early ``break`` it is the partial output:
        what the run had produced when it stopped, including events the consumer did not
        receive."""
        for c in reversed(self._controls):
            if c.partial is not None:
                return c.partial.message()
        return None


class Agent:
    """A model plus tools, run step by step as one stream of events.

    Args:
        model: a :class:`~streamops.models.Model`, a model string (``"local"``, an LiteLLM
            name such as ``"openai/gpt-4o"``, ``"replay:a.sse,b.sse"``), or ``None`` for the
            local SmolLM2 model (see :func:`~streamops.adapters.models.resolve_model`).
        tools: :class:`~streamops.tools.Tool` objects or plain functions (wrapped with
            :func:`~streamops.tools.tool`).
        instructions: the system message.
        output_type: a pydantic model (or any type pydantic validates): the final answer is
            parsed as JSON, streamed as ``ObjectDelta``/``PartialObject`` events and validated
            into ``FinalOutput``; a failure is an ``ErrorEvent(error_type="output_validation")``.
        name: the agent's name, stamped on every event as ``agent``.
        max_steps: model calls at most; a run that still wants tools after that ends with
            ``RunEnd(status="max_steps")``.
        tool_timeout: seconds a tool call may take when the tool sets no timeout of its own.
        hooks: see :class:`Hooks`.
        model_settings: model-specific keyword arguments for each ``model.stream(...)`` call
            (``max_tokens``, ``temperature``... as that model accepts them).

    Raises:
        ValueError: ``max_steps`` < 1.
    """

    def __init__(
        self,
        model: str | Model | None = None,
        *,
        tools: Sequence[Tool[Any] | Callable[..., Any]] = (),
        instructions: str | None = None,
        output_type: Any = None,
        name: str = "agent",
        max_steps: int = 8,
        tool_timeout: float | None = None,
        hooks: Hooks | None = None,
        model_settings: Mapping[str, Any] | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"Agent: max_steps must be >= 1, got {max_steps}")
        from .adapters.models import resolve_model
        from .tools import Tool, tool

        self.model: Model = resolve_model(model)
        self.tools: dict[str, Tool[Any]] = {}
        for t in tools:
            tt = t if isinstance(t, Tool) else tool(t)
            self.tools[tt.name] = tt
        self.instructions = instructions
        self.output_type = output_type
        self.name = name
        self.max_steps = max_steps
        self.tool_timeout = tool_timeout
        self.hooks = hooks or Hooks()
        self.model_settings: dict[str, Any] = dict(model_settings or {})

    def _messages(
        self, prompt: str | Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]] = ()
    ) -> list[ChatMessage]:
        msgs: list[ChatMessage] = []
        if self.instructions:
            msgs.append({"role": "system", "content": self.instructions})
        msgs.extend(dict(m) for m in history)
        if isinstance(prompt, str):
            msgs.append({"role": "user", "content": prompt})
        else:
            msgs.extend(dict(m) for m in prompt)
        return msgs

    def stream(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        run_id: str | None = None,
        history: Sequence[Mapping[str, Any]] = (),
    ) -> AgentStream:
        """The run's events as a lazy stream (nothing runs until it is iterated).

        ``prompt`` is the user's text, or a list of chat messages. ``history`` is the
        conversation so far (a previous :attr:`RunResult.messages`, or OpenAI-style chat
        message dicts), sent after the agent's ``instructions`` and before ``prompt``.
        """
        return AgentStream(self, self._messages(prompt, history), run_id)

    async def run(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        run_id: str | None = None,
        history: Sequence[Mapping[str, Any]] = (),
    ) -> RunResult:
        """Run to the end and return the :class:`RunResult` (built from the same stream).

        Raises:
            pydantic.ValidationError: never for the output itself (a failed validation is an
                ``ErrorEvent`` in :attr:`RunResult.events` and ``output`` is then the text).
        """
        stream = self.stream(prompt, run_id=run_id, history=history)
        events = await stream.collect()
        result = _result(events, self.output_type)
        if stream._controls:
            sent = stream._controls[-1].messages
            system = 1 if self.instructions else 0
            result.messages = [dict(m) for m in sent[system:]]
        return result

    def stream_sync(
        self, prompt: str | Sequence[Mapping[str, Any]], *, run_id: str | None = None
    ) -> Generator[BaseEvent, None, None]:
        """Iterate the run's events from synchronous code (see :meth:`Stream.iter_sync`)."""
        return self.stream(prompt, run_id=run_id).iter_sync()


def _result(events: list[BaseEvent], output_type: Any = None) -> RunResult:
    acc = Accumulator()
    last_text: list[str] = []
    output: Any = None
    has_output = False
    steps = 0
    for ev in events:
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


class _Mailbox:
    """Tool tasks put their events here; the run waits for them."""

    __slots__ = ("items", "pending", "waiter")

    def __init__(self) -> None:
        self.items: deque[BaseEvent] = deque()
        self.pending = 0
        self.waiter: anyio.Event | None = None

    def put(self, ev: BaseEvent) -> None:
        self.items.append(ev)
        w = self.waiter
        if w is not None:
            self.waiter = None
            w.set()


class _Run:
    """One run in progress: the loop behind :meth:`Agent.stream`."""

    def __init__(self, agent: Agent, messages: list[ChatMessage], run_id: str | None, control: _Control) -> None:
        self.agent = agent
        self.messages = messages
        self.run_id = run_id or uuid.uuid4().hex
        self.control = control
        control.messages = messages  # the conversation as it grows (RunResult.messages)
        self.open_step: Accumulator | None = None  # the step whose usage is not folded yet
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

    async def emit(self, ev: BaseEvent) -> list[BaseEvent]:
        """Fold ``ev`` and run its hooks; return ``ev`` plus any hook errors, to be yielded."""
        self.partial.add(ev)
        out = [ev]
        hooks = self.agent.hooks
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
        agent = self.agent
        ended = False
        try:
            for ev in await self.emit(self.make(RunStart, model=agent.model.name)):
                yield ev
            specs = [t.spec for t in agent.tools.values()]
            schema = _schema_of(agent.output_type)
            last: Message | None = None
            for step in range(agent.max_steps):
                if self.control.cancelled or self.control.after_step:
                    break
                for ev in await self.emit(self.make(StepStart, step=step)):
                    yield ev
                acc = self.open_step = Accumulator()
                parser = _OutputParser(agent.output_type) if agent.output_type is not None else None
                model_stream = agent.model.stream(
                    self.messages,
                    tools=specs,
                    output_schema=schema,
                    run_id=self.run_id,
                    agent=agent.name,
                    **agent.model_settings,
                )
                model_end: RunEnd | None = None
                call_ids = _CallIds(step)
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
                            model_end = ev
                            continue
                        for out in await self.emit(self.stamp(ev)):
                            yield out
                        if parser is not None and isinstance(ev, TextDelta):
                            for out in parser.feed(self, ev.delta):
                                for o in await self.emit(out):
                                    yield o
                if self.control.cancelled:
                    self.usage = self.usage + (acc.message().usage or Usage())  # the partial step's
                    self.open_step = None
                    break
                last = msg = acc.message()
                step_usage = msg.usage or Usage()
                self.usage = self.usage + step_usage
                self.open_step = None
                for ev in await self.emit(
                    self.make(
                        StepEnd,
                        step=step,
                        finish_reason=msg.finish_reason,
                        raw_finish_reason=msg.raw_finish_reason,
                        usage=step_usage,
                    )
                ):
                    yield ev
                if (model_end is not None and model_end.status == "failed") or msg.error is not None:
                    end = self.run_end("failed", msg)
                    ended = True
                    for ev in await self.emit(end):
                        yield ev
                    return
                calls = [c for c in msg.tool_calls if c.name]
                if calls:
                    self.messages.append(_assistant_message(msg))
                    # aclosing: a consumer that leaves (or a cancellation) closes the tool loop
                    # here, at once, not in the garbage collector's finalizer.
                    async with aclosing(self._run_tools(calls)) as tool_events:
                        async for ev in tool_events:
                            for out in await self.emit(ev):
                                yield out
                    if self.control.cancelled:
                        break
                    continue
                if parser is not None:
                    for out in parser.finish(self):
                        for o in await self.emit(out):
                            yield o
                self.messages.append(_assistant_message(msg))
                status: RunStatus = "length" if msg.finish_reason == "length" else "completed"
                ended = True
                for ev in await self.emit(self.run_end(status, msg)):
                    yield ev
                return
            cancelled = self.control.cancelled or self.control.after_step
            ended = True
            for ev in await self.emit(self.run_end("cancelled" if cancelled else "max_steps", last)):
                yield ev
        except Exception as exc:
            # The model stream (or the machinery around it) failed: the run ends like a
            # provider error, with an error event and a failed run end, keeping what came before.
            if ended:
                raise
            ended = True
            err = self.make(ErrorEvent, error_type=type(exc).__name__, message=str(exc) or repr(exc))
            for ev in await self.emit(err):
                yield ev
            for ev in await self.emit(self.run_end("failed")):
                yield ev
        finally:
            await self._stop_tools()
            if not ended and self.control.end is None:
                # The consumer left (or the run failed): record the end for the hooks and
                # ``stream.result_end``; nobody can receive it in the stream. Its usage is
                # the usage so far, the interrupted step's included.
                if self.open_step is not None:
                    self.usage = self.usage + (self.open_step.message().usage or Usage())
                    self.open_step = None
                end = self.run_end("cancelled")
                self.control.end = end
                import anyio

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

        box = _Mailbox()
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
        self, tg: Any, calls: list[Any], box: _Mailbox, results: dict[str, str]
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

    async def _tool_task(self, call: Any, box: _Mailbox, results: dict[str, str], scope: anyio.CancelScope) -> None:
        import anyio

        agent = self.agent
        call_id: str = call.id  # never empty: see _CallIds
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

                try:
                    if agent.tool_timeout is not None and tool.timeout is None:
                        with anyio.fail_after(agent.tool_timeout):
                            value = await tool.invoke(call.arguments, call_id=call_id, progress=progress)
                    else:
                        value = await tool.invoke(call.arguments, call_id=call_id, progress=progress)
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


class _CallIds:
    """Gives every tool call of one step a unique, non-empty ``call_id``.

    A model may stream a tool call without an id (the adapters make one up for providers that
    give none, a custom :class:`~streamops.models.Model` may not). Such a call's events get
    ``call-{step}-{n}``: an event without an id belongs to the call with the same ``index``,
    else (no ``index``) to the call still open (started, not yet ended), else it starts a new
    call. The id is set on the events themselves, before anything else sees them, so the
    consumer, the step's accumulator, the ``ToolResult``/``ToolError``/``ToolProgress`` events
    and the tool messages sent back to the model all pair on the same id; two calls of the same
    tool in one step never share one.
    """

    __slots__ = ("by_index", "n", "open", "seen", "step")

    def __init__(self, step: int) -> None:
        self.step = step
        self.n = 0
        self.by_index: dict[int, str] = {}
        self.open: str | None = None  # the call started last and not ended yet
        self.seen: set[str] = set()

    def fix(self, ev: BaseEvent) -> None:
        """Give ``ev`` (a tool-call start/delta/end) its call's id if it has none."""
        if not isinstance(ev, (ToolCallStart, ToolCallDelta, ToolCallEnd)):
            return
        cid = ev.call_id
        index = ev.index
        if cid:
            self.seen.add(cid)
            if index is not None:
                self.by_index.setdefault(index, cid)
        elif index is not None and index in self.by_index:
            cid = self.by_index[index]
        elif index is None and self.open is not None and not isinstance(ev, ToolCallStart):
            cid = self.open
        else:
            cid = self._new()
            if index is not None:
                self.by_index[index] = cid
        ev.call_id = cid
        if isinstance(ev, ToolCallStart):
            self.open = cid
        elif isinstance(ev, ToolCallEnd) and self.open == cid:
            self.open = None

    def _new(self) -> str:
        while True:
            cid = f"call-{self.step}-{self.n}"
            self.n += 1
            if cid not in self.seen:
                self.seen.add(cid)
                return cid


def _assistant_message(msg: Message) -> ChatMessage:
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
        for c in msg.tool_calls
        if c.name
    ]
    out: ChatMessage = {"role": "assistant", "content": msg.text or None}
    if calls:
        out["tool_calls"] = calls
    return out


def _schema_of(output_type: Any) -> dict[str, Any] | None:
    if output_type is None:
        return None
    from pydantic import TypeAdapter

    return TypeAdapter(output_type).json_schema()


class _OutputParser:
    """Streams the final answer's JSON as object deltas and validates it at the end."""

    def __init__(self, output_type: Any) -> None:
        from .jsonstream import JsonStreamParser

        self.output_type = output_type
        self.parser = JsonStreamParser()
        self.text: list[str] = []
        self.error: str | None = None

    def feed(self, run: _Run, text: str) -> list[BaseEvent]:
        self.text.append(text)
        if self.error is not None:
            return []
        from .jsonstream import JsonStreamError

        try:
            events = self.parser.feed(text)
        except JsonStreamError as exc:
            self.error = str(exc)
            return []
        return self._convert(run, events)

    def _convert(self, run: _Run, events: list[Any]) -> list[BaseEvent]:
        from .jsonstream import JsonDelta

        out: list[BaseEvent] = []
        for e in events:
            if isinstance(e, JsonDelta):
                out.append(run.make(ObjectDelta, json_path=e.path, delta=e.delta))
            else:
                out.append(run.make(PartialObject, value=self.parser.partial))
        return out

    def finish(self, run: _Run) -> list[BaseEvent]:
        from pydantic import TypeAdapter, ValidationError

        from .jsonstream import JsonStreamError

        out: list[BaseEvent] = []
        if self.error is None:
            try:
                out += self._convert(run, self.parser.close())
            except JsonStreamError as exc:
                self.error = str(exc)
        if self.error is not None:
            out.append(run.make(ErrorEvent, error_type="output_json", message=self.error))
            return out
        adapter = TypeAdapter(self.output_type)
        try:
            value = adapter.validate_python(self.parser.partial)
        except ValidationError as exc:
            out.append(run.make(ErrorEvent, error_type="output_validation", message=str(exc)))
            return out
        out.append(run.make(FinalOutput, value=adapter.dump_python(value, mode="json")))
        return out

