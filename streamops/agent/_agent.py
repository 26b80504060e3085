"""The agent and the stream of one of its runs."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._stream import Stream
from ..events import (
    BaseEvent,
    FinalOutput,
    PartialObject,
    RunEnd,
)
from ..operators.aggregate import Message
from ..operators.select import filter as filter_
from ..operators.select import of_type
from ..operators.transform import map as map_

if TYPE_CHECKING:
    from ..models import ChatMessage, Model
    from ..tools import Tool

from ._hooks import Hooks
from ._output import partial_type
from ._result import RunResult, result_of
from ._run import Control, Run

__all__ = ["Agent", "AgentStream"]


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
        self._controls: list[Control] = []
        super().__init__(Stream.defer(self._start))

    def _start(self) -> Stream[BaseEvent]:
        # Each iteration is a new run, with its own control (the last few are kept for
        # ``result_end``/``result_message``).
        control = Control()
        self._controls = [*self._controls[-3:], control]
        return Run(self._agent, list(self._messages), self._run_id, control).events()

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
    def result_messages(self) -> list[ChatMessage] | None:
        """The latest run's conversation, ``None`` before a run starts: the history given, the
        prompt, then each assistant message (with its tool calls) and tool result as the run
        added them (OpenAI-style dicts, see :mod:`streamops.models`; the agent's
        ``instructions`` not included). Pass it as ``history=`` to continue the conversation;
        :attr:`RunResult.messages` is the same list."""
        if not self._controls:
            return None
        system = 1 if self._agent.instructions else 0
        return [dict(m) for m in self._controls[-1].messages[system:]]

    def outputs(self) -> Stream[Any]:
        """The run's output as it grows, typed: a stream of one value per ``PartialObject``
        of the run, validated as :func:`partial_type` of the agent's ``output_type`` (a model
        with every field optional: ``PartialWeather(city="San Fra", temperature=None, ...)``;
        a snapshot pydantic cannot validate yet is skipped), then the ``FinalOutput``'s value
        validated as ``output_type`` itself. Without an ``output_type``: the JSON values as
        they are. Iterating it runs the agent (each iteration a new run), like iterating the
        stream; the other events are dropped (iterate the stream itself to see them).

        Marble (``output_type=W``)::

            stream:    PartialObject({c:"S"})  PartialObject({c:"SF",t:6})  FinalOutput({..})  RunEnd |
            outputs(): PartialW(c="S")         PartialW(c="SF", t=6)        W(..)              |
        """
        output_type = self._agent.output_type
        if output_type is None:
            return self | of_type(PartialObject, FinalOutput) | map_(lambda e: e.value)
        from pydantic import TypeAdapter, ValidationError

        partial = TypeAdapter(partial_type(output_type))
        final = TypeAdapter(output_type)

        def typed(e: PartialObject | FinalOutput) -> Any:
            if isinstance(e, FinalOutput):
                return final.validate_python(e.value)
            try:
                return partial.validate_python(e.value, experimental_allow_partial=True)
            except ValidationError:
                return _SKIP

        out: Stream[Any] = self | of_type(PartialObject, FinalOutput) | map_(typed) | filter_(lambda v: v is not _SKIP)
        return out

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
        from ..adapters.models import resolve_model
        from ..tools import Tool, tool

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
        result = result_of(events, self.output_type)
        messages = stream.result_messages
        if messages is not None:
            result.messages = messages
        return result

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool[Any]:
        """This agent as a tool another agent can call: the tool takes ``{"prompt": str}``,
        runs this agent on it and returns its output (the validated output as JSON data with an
        ``output_type``, else the final answer's text).

        The run streams inside the calling agent's stream as typed events of its own run (not
        ``ToolProgress`` blobs): every event keeps this run's ``run_id`` and ``seq``; the
        calling agent sets ``parent_run_id`` to its own run's id and prefixes ``agent`` with
        its name (``"planner/researcher"``; sub-runs of this run nest one level deeper). They
        come before the call's ``ToolResult``, live under a terminal that hosts tasks
        (``collect()``, ``iterate()``...). They are not folded into the calling run's message
        or :class:`RunResult` (see :func:`~streamops.of_agent` to pick them out); their usage is
        in their own ``RunEnd``, not in the calling run's.

        ``name`` defaults to this agent's name, ``description`` to its instructions.

        Raises:
            ValueError: the name is not a valid tool name (1 to 64 of ``[a-zA-Z0-9_-]``).
            RuntimeError: (from the tool, when called) the run did not complete (it failed,
                ran out of steps, was cancelled): the calling agent reports a ``ToolError``
                with this message; the run's own ``ErrorEvent``, if any, is in the stream.
        """
        from ..tools import Tool, ToolContext

        agent = self

        async def run_agent(prompt: str, ctx: ToolContext) -> Any:
            events: list[BaseEvent] = []
            async for ev in agent.stream(prompt):
                events.append(ev)
                ctx.emit(ev)
            result = result_of(events, agent.output_type)
            if result.status not in ("completed", "length"):
                err = result.message.error
                why = f": {err.message}" if err is not None else ""
                raise RuntimeError(f"agent {agent.name!r} run ended {result.status}{why}")
            return result.output

        doc = description or self.instructions or f"Ask the agent {self.name!r}."
        return Tool(
            run_agent,
            name=name if name is not None else self.name,
            description=doc,
            _localns={"ToolContext": ToolContext, "Any": Any},
        )

    def stream_sync(
        self, prompt: str | Sequence[Mapping[str, Any]], *, run_id: str | None = None
    ) -> Generator[BaseEvent, None, None]:
        """Iterate the run's events from synchronous code (see :meth:`Stream.iter_sync`)."""
        return self.stream(prompt, run_id=run_id).iter_sync()


_SKIP = object()
