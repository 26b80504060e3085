"""``run_tools``: the operator that runs the tool calls a model response asked for."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .._host import TaskHostRequired, current_host
from .._stream import Stream
from ..events import BaseEvent, ErrorEvent, RunEnd, ToolError, ToolProgress, ToolResult, derive, envelope
from ..operators.aggregate import Accumulator, Message, ToolCall

if TYPE_CHECKING:
    import anyio

    from ..tools import Tool

from ._calls import TOOL_CALL_EVENTS, Mailbox

__all__ = ["ToolControl", "result_text", "run_tools"]


class ToolControl(Protocol):
    """What :func:`run_tools` reads of a run in progress to cancel it now (the agent's run
    control): ``cancelled`` (cancel now was asked), and ``scope``, where the operator puts the
    cancel scope of its waits so that a cancel now interrupts them at once."""

    cancelled: bool
    scope: anyio.CancelScope | None


def result_text(event: ToolResult | ToolError) -> str:
    """The text a tool call's result (or error) is sent back to the model as: a string result
    as is, other JSON data as JSON text, an error as its message."""
    if isinstance(event, ToolError):
        return event.message
    value = event.result
    return value if isinstance(value, str) else json.dumps(value, default=str)


def run_tools(
    tools: Mapping[str, Tool[Any]],
    *,
    timeout: float | None = None,
    control: ToolControl | None = None,
    when: Callable[[Message], bool] | None = None,
) -> Callable[[Stream[BaseEvent]], Stream[BaseEvent]]:
    """Run the tool calls of a model response, concurrently, once the response has ended.

    ``model.stream(...) | run_tools(tools)``: the upstream is one model response (or one agent
    step); its tool calls (folded with :class:`~streamops.operators.Accumulator`: each call
    with a name, with its ``call_id`` and whole ``arguments``) are looked up by name in
    ``tools`` and run together, sync tools in worker threads. ``timeout`` (seconds) bounds a
    call of a tool that sets no timeout of its own. ``control`` (the agent's run control)
    lets a cancel now stop the calls. ``when`` (called with the response's folded message
    once it ended) can veto running its calls (the agent: not after a cancel now that cut the
    model call short).

    - Emits: every upstream event, unchanged, as it arrives; when the upstream completes, for
      each call its ``ToolProgress`` events and then one ``ToolResult`` or ``ToolError``
      (``error_type`` ``"UnknownTool"``, ``"TimeoutError"``, or the exception's class name;
      see :func:`result_text` for what goes back to the model), keyed by ``call_id``, in the
      order the calls report them: live under a terminal that hosts tasks (``iterate()``,
      ``collect()``...), together once the last call finished in a bare ``async for`` (no task
      group is held across a ``yield``: PEP 789). Each carries the envelope of the response's
      last event (its own ``ts``, no ``raw``) and the next seqs after it. No call runs when
      the response reported an error (an ``ErrorEvent``, a failed ``RunEnd``) or ``when``
      said no; the calls of a response cancelled now (``control``) after it ended start and
      are cancelled at once.
    - Completes: when every call has reported.
    - Fails: when the upstream fails (no call runs); a failing tool never fails the stream (it
      is a ``ToolError``).
    - Cancels: when the downstream stops, or on ``control``'s cancel now: the running calls
      are cancelled and awaited (shielded) before the operator returns.
    - Buffers: the response's fold (text, calls) and the calls' events not yet pulled.

    Marble: (``C`` a call of ``add`` ending in the response, ``R`` its result)::

        S t C E |  | run_tools({"add": add})  ->  S t C E R |
    """

    def op(up: Stream[BaseEvent]) -> Stream[BaseEvent]:
        return Stream.defer(_run_tools, up, tools, timeout, control, when)

    return op


async def _run_tools(
    up: Stream[BaseEvent],
    tools: Mapping[str, Tool[Any]],
    tool_timeout: float | None,
    control: ToolControl | None,
    when: Callable[[Message], bool] | None,
) -> AsyncGenerator[BaseEvent, None]:
    acc = Accumulator()
    last: BaseEvent | None = None
    async with aclosing(up.__aiter__()) as it:
        async for ev in it:
            if isinstance(ev, _FOLDED):  # what decides the calls; text and usage do not
                acc.add(ev)
            last = ev
            yield ev
    if last is None:
        return
    msg = acc.message()
    if msg.error is not None or msg.status == "failed" or (when is not None and not when(msg)):
        return
    calls = [c for c in msg.tool_calls if c.name]
    if not calls:
        return
    async with aclosing(_Calls(tools, tool_timeout, control, calls, last).events()) as evs:
        async for ev in evs:
            yield ev


_FOLDED = (*TOOL_CALL_EVENTS, ErrorEvent, RunEnd)
"""The events :func:`run_tools` folds: the calls, and what says the response failed."""


@dataclass(slots=True, eq=False)
class _Calls:
    """The calls of one response in progress: their tasks, cancel scopes and mailbox."""

    tools: Mapping[str, Tool[Any]]
    timeout: float | None
    control: ToolControl | None
    calls: list[ToolCall]
    last: BaseEvent
    """The response's last event: the envelope of the events the calls give."""
    seq: int = field(init=False)
    """The ``seq`` of the last event made (starts at ``last.seq``)."""
    box: Mailbox = field(init=False, default_factory=Mailbox)
    scopes: list[anyio.CancelScope] = field(init=False, default_factory=list)
    done: anyio.Event | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.seq = self.last.seq

    def make(self, cls: type[BaseEvent], **fields: Any) -> Any:
        self.seq += 1
        return cls(**envelope(self.last, seq=self.seq, ts=time.time(), raw=None), **fields)

    def nest(self, ev: BaseEvent) -> BaseEvent:
        """An event of a run a tool call started (:meth:`ToolContext.emit
        <streamops.tools.ToolContext.emit>`), nested under the calling run: ``agent`` prefixed
        with the calling agent's path, ``parent_run_id`` the calling run's (unless it already
        names the sub-run's own parent); its own ``run_id`` and ``seq`` kept."""
        name = self.last.agent
        return derive(
            ev,
            agent=f"{name}/{ev.agent}" if name and ev.agent else name or ev.agent,
            parent_run_id=ev.parent_run_id or self.last.run_id,
        )

    def _set_scope(self, scope: anyio.CancelScope | None) -> bool:
        """Publish ``scope`` for a cancel now; ``True`` if one was asked already."""
        c = self.control
        if c is None:
            return False
        c.scope = scope
        return c.cancelled

    async def events(self) -> AsyncGenerator[BaseEvent, None]:
        import anyio

        box = self.box
        self.done = anyio.Event()
        box.pending = len(self.calls)
        try:
            tg = current_host("Agent.stream()")
        except TaskHostRequired:
            # A bare ``async for``: no terminal hosts tasks. The calls still run concurrently,
            # in a task group of our own that is closed before anything is yielded (PEP 789: no
            # task group across a yield); their events come out together once the last call
            # has finished.
            with anyio.CancelScope() as outer:
                if self._set_scope(outer):
                    outer.cancel()
                async with anyio.create_task_group() as own:
                    for call in self.calls:
                        scope = anyio.CancelScope()
                        self.scopes.append(scope)
                        own.start_soon(self._task, call, scope)
            self._set_scope(None)
            while box.items:
                yield box.items.popleft()
            return
        for call in self.calls:
            # The scope exists before the task starts, so stopping the calls cancels a task
            # that has not started yet too.
            scope = anyio.CancelScope()
            self.scopes.append(scope)
            tg.start_soon(self._task, call, scope)
        try:
            while box.pending or box.items:
                while box.items:
                    yield box.items.popleft()
                if not box.pending:
                    break
                w = box.waiter = anyio.Event()
                with anyio.CancelScope() as wait:
                    if self._set_scope(wait):
                        wait.cancel()
                    await w.wait()
                self._set_scope(None)
                if wait.cancelled_caught:
                    return
        finally:
            if box.pending:
                # Cancelled now, or closed early (the consumer left): the calls stop with the
                # generator, and are awaited (shielded) before it returns.
                self._set_scope(None)
                await self._stop()

    async def _task(self, call: ToolCall, scope: anyio.CancelScope) -> None:
        import anyio

        box = self.box
        call_id: str = call.id or ""  # never empty from the agent: see CallIds
        name = call.name
        try:
            with scope:
                tool = self.tools.get(name)
                if tool is None:
                    msg = f"unknown tool {name!r}; available: {', '.join(self.tools) or 'none'}"
                    box.put(self.make(ToolError, call_id=call_id, name=name, message=msg, error_type="UnknownTool"))
                    return

                def progress(data: Any) -> None:
                    box.put(self.make(ToolProgress, call_id=call_id, name=name, data=data))

                def sub_event(ev: BaseEvent) -> None:
                    box.put(self.nest(ev))

                try:
                    if self.timeout is not None and tool.timeout is None:
                        with anyio.fail_after(self.timeout):
                            value = await tool.invoke(
                                call.arguments, call_id=call_id, progress=progress, events=sub_event
                            )
                    else:
                        value = await tool.invoke(call.arguments, call_id=call_id, progress=progress, events=sub_event)
                except TimeoutError as exc:
                    text = str(exc) or f"tool {name!r} timed out after {self.timeout} s"
                    box.put(self.make(ToolError, call_id=call_id, name=name, message=text, error_type="TimeoutError"))
                except Exception as exc:
                    text = f"{type(exc).__name__}: {exc}"
                    box.put(
                        self.make(ToolError, call_id=call_id, name=name, message=text, error_type=type(exc).__name__)
                    )
                else:
                    box.put(self.make(ToolResult, call_id=call_id, name=name, result=value))
        finally:
            box.pending -= 1
            if box.waiter is not None:
                w, box.waiter = box.waiter, None
                w.set()
            if self.done is not None and box.pending == 0:
                self.done.set()

    async def _stop(self) -> None:
        import anyio

        for scope in self.scopes:
            scope.cancel()
        if self.done is not None:
            with anyio.CancelScope(shield=True):
                await self.done.wait()
