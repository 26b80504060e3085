"""The hooks of an agent run: callbacks for push-style users, and the operator that calls them."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from .._stream import Stream
from ..events import BaseEvent, ErrorEvent, RunEnd, RunStart, ToolError
from ..operators.transform import Sequencer

__all__ = ["Hook", "Hooks", "call_hook", "call_hooks"]


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


async def call_hook(hooks: Hooks, name: str, arg: Any, make_error: Callable[[str], ErrorEvent]) -> list[ErrorEvent]:
    """Call hook ``name`` with ``arg``; return the error events it caused (none if it
    succeeded; a failed hook other than ``on_error`` is reported to ``on_error`` too)."""
    hook = getattr(hooks, name)
    if hook is None:
        return []
    try:
        r = hook(arg)
        if inspect.isawaitable(r):
            await r
    except Exception as exc:
        err = make_error(f"{name} raised {type(exc).__name__}: {exc}")
        out = [err]
        if name != "on_error":
            out += await call_hook(hooks, "on_error", err, make_error)
        return out
    return []


def call_hooks(
    hooks: Hooks,
    sequencer: Sequencer,
    *,
    fold: Callable[[BaseEvent], object],
    on_end: Callable[[RunEnd], object],
    left: Callable[[], Awaitable[None]],
) -> Callable[[Stream[BaseEvent]], Stream[BaseEvent]]:
    """The last operator of an agent run: number every event of the run with ``sequencer``
    (:meth:`Sequencer.stamp <streamops.operators.Sequencer.stamp>`: the run's id and agent, the
    next seq) as it is pulled, ``fold`` it (the run's partial output), then call its hooks;
    the events of runs nested in it (an agent used as a tool: they carry a ``parent_run_id``)
    pass as they are, unnumbered, unfolded and without hooks. A hook that raises becomes an
    ``ErrorEvent(error_type="hook_error")`` right after the event, numbered by the same
    ``sequencer``, so the seqs of the run are unique and monotonic in stream order. (This is
    :func:`restamp <streamops.operators.restamp>` fused in: numbering and inserting in one
    place; see docs/decisions.md.)

    - Emits: each upstream event, numbered, once its hooks returned (``on_chunk`` for every
      event, then ``on_stream_start`` for the ``RunStart``, ``on_error`` for an ``ErrorEvent``
      or ``ToolError``, ``on_stream_end`` for the ``RunEnd``, which also goes to ``on_end``),
      then the error events of the hooks that failed.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails (a hook never fails the stream).
    - Cancels: when the downstream stops (or a cancellation) before the ``RunEnd`` passed:
      ``left()`` is awaited, shielded (it reports the run's end to ``on_stream_end`` and
      ``on_end``; nobody can receive it in the stream).

    Marble: (``x@n``: event ``x`` with seq ``n``; ``on_chunk`` raises on ``b``; ``H`` its
    error event)::

        S@0 a@0 b@0 E@9 |  | call_hooks(...)  ->  S@0 a@1 b@2 H@3 E@4 |
    """

    def make_error(message: str) -> ErrorEvent:
        return sequencer.make(ErrorEvent, error_type="hook_error", message=message)

    async def emit(ev: BaseEvent) -> list[BaseEvent]:
        fold(ev)
        out: list[BaseEvent] = [ev]
        if hooks.on_chunk is not None:
            out += await call_hook(hooks, "on_chunk", ev, make_error)
        if isinstance(ev, RunStart):
            out += await call_hook(hooks, "on_stream_start", ev, make_error)
        elif isinstance(ev, (ErrorEvent, ToolError)):
            out += await call_hook(hooks, "on_error", ev, make_error)
        elif isinstance(ev, RunEnd):
            on_end(ev)
            out += await call_hook(hooks, "on_stream_end", ev, make_error)
        for extra in out[1:]:
            fold(extra)
        return out

    quiet = hooks.on_chunk is None and hooks.on_error is None and hooks.on_stream_start is None
    stamp = sequencer.stamp

    async def gen(up: Stream[BaseEvent]) -> AsyncGenerator[BaseEvent, None]:
        ended = False
        try:
            async with aclosing(up.__aiter__()) as it:
                async for ev in it:
                    if ev.parent_run_id:  # a nested run's event (an agent used as a tool): not this run's
                        yield ev
                        continue
                    ev = stamp(ev)  # numbered now, when pulled: after the errors inserted before it
                    if isinstance(ev, RunEnd):
                        ended = True
                    elif quiet:  # no hook to call for this event: the fast path
                        fold(ev)
                        yield ev
                        continue
                    for out in await emit(ev):
                        yield out
        finally:
            if not ended:
                await left()

    def op(up: Stream[BaseEvent]) -> Stream[BaseEvent]:
        return Stream.defer(gen, up)

    return op
