"""Time operators: ``timeout``, ``batch``, ``debounce``, ``throttle``.

Operators that watch the clock pull their upstream through a pump task (see
:mod:`streamops._pump`): waiting for the next item with a deadline never cancels the pull in
flight, so a deadline that passes loses no pending item. The pump task lives in the task group
of the terminal that pulls the stream (``iterate()``, ``collect()``, ``run()``...), never in
the operator's own async generator; a bare ``async for`` raises ``TaskHostRequired``.

Times are in seconds, read from ``anyio.current_time()`` (the event loop's clock), so the
operators run under a virtual clock in tests (:mod:`streamops.testing`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, Literal, TypeVar, overload

import streamops.events as ev

from .._pump import TIMED_OUT, Pump, pump_timed
from .._stream import End, Push, Stage, Stream
from ..errors import (
    FirstEventTimeout,
    IdleTimeout,
    StepTimeout,
    StreamTimeout,
    ToolTimeout,
    TotalTimeout,
)

__all__ = ["batch", "debounce", "throttle", "timeout"]

T = TypeVar("T")


_CONTENT_EVENTS = (
    ev.TextDelta,
    ev.ReasoningDelta,
    ev.RedactedReasoning,
    ev.RefusalDelta,
    ev.ToolCallStart,
    ev.ToolCallDelta,
)


def _is_content(item: object) -> bool:
    """Whether ``item`` is model output for ``timeout(first=...)``: a text, reasoning,
    refusal or tool-call delta (or tool-call start), or any item that is not an event.

    Lifecycle and bookkeeping events (``run-start``, ``step-start``, ``usage``, ``error``,
    ``custom``, ``raw``...) are not content: a model that says nothing still emits them.
    """
    return isinstance(item, _CONTENT_EVENTS) or not isinstance(item, ev.BaseEvent)


def _any_item(item: object) -> bool:
    return True


def _positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")


def timeout(
    *,
    first: float | None = None,
    idle: float | None = None,
    total: float | None = None,
    step: float | None = None,
    tool: float | None = None,
    first_counts: Literal["content", "any"] | Callable[[Any], bool] = "content",
) -> Callable[[Stream[T]], Stream[T]]:
    """Fail the stream when a time limit passes; each limit raises its own error.

    Limits, in seconds, counted from when the consumer starts pulling:

    - ``first``: until the first item that ``first_counts`` accepts
      (:class:`~streamops.errors.FirstEventTimeout`). By default (``"content"``) that is
      the first text, reasoning, refusal or tool-call delta (or any item that is not an
      event): the ``run-start``/``step-start`` events an agent emits
      before its model says anything do not count, so a silent model fails. ``"any"`` counts
      every item; a callable ``item -> bool`` chooses;
    - ``idle``: between consecutive items (of any kind), and until the first one when
      ``first`` is not given; when ``first`` is given, ``idle`` starts once the first
      counted item has arrived (:class:`~streamops.errors.IdleTimeout`);
    - ``total``: for the whole stream (:class:`~streamops.errors.TotalTimeout`);
    - ``step``: from a ``step-start`` event to its ``step-end``
      (:class:`~streamops.errors.StepTimeout`);
    - ``tool``: from a ``tool-call-end`` (the call is issued) to the ``tool-result`` or
      ``tool-error`` with its ``call_id`` (:class:`~streamops.errors.ToolTimeout`).

    All subclass :class:`~streamops.errors.StreamTimeout` and ``TimeoutError``, and carry
    ``limit`` and ``seconds``.

    - Emits: each item, unchanged, as soon as it arrives.
    - Completes: when the upstream completes.
    - Fails: with the timeout error of the first limit that passes (the source is closed
      before it is raised), or with the upstream's error.
    - Cancels: when the downstream stops; the pump task is cancelled and the source closed.
    - Buffers: one item pulled ahead by the pump; an item in flight when a limit passes is
      not lost by the pull (the stream fails, but the source was not cancelled mid-item).

    Marble: ``a --(idle 2s)-- b | timeout(idle=1)`` gives ``a`` then ``IdleTimeout`` at 1 s
    after ``a``; ``run-start step-start --(3s)-- text | timeout(first=2)`` gives
    ``run-start step-start`` then ``FirstEventTimeout`` at 2 s.

    Raises:
        ValueError: a limit is not a positive number, no limit is given, or ``first_counts``
            is neither ``"content"``, ``"any"`` nor callable.
    """
    counts: Callable[[Any], bool]
    if first_counts == "content":
        counts = _is_content
    elif first_counts == "any":
        counts = _any_item
    elif callable(first_counts):
        counts = first_counts
    else:
        raise ValueError(f"first_counts must be 'content', 'any' or a callable, got {first_counts!r}")
    limits = {"first": first, "idle": idle, "total": total, "step": step, "tool": tool}
    for name, value in limits.items():
        _positive(name, value)
    if all(v is None for v in limits.values()):
        raise ValueError("timeout(): give at least one limit (first, idle, total, step, tool)")
    errors: dict[str, type[StreamTimeout]] = {
        "first": FirstEventTimeout,
        "idle": IdleTimeout,
        "total": TotalTimeout,
        "step": StepTimeout,
        "tool": ToolTimeout,
    }

    async def gen(up: Stream[T]) -> AsyncGenerator[T, None]:
        import anyio

        pump: Pump[T] = Pump(up, "timeout()")
        pump.start()
        try:
            start = anyio.current_time()
            last: float | None = None
            counted = first is None  # the first counted item has arrived (or no first limit)
            step_started: float | None = None
            calls: dict[str, float] = {}
            while True:
                # the earliest of the limits that apply now: (deadline in seconds, limit, detail)
                soonest: tuple[float, str, str] | None = None
                if not counted:
                    assert first is not None
                    soonest = (start + first, "first", "")
                if idle is not None and counted:
                    at = (start if last is None else last) + idle
                    if soonest is None or at < soonest[0]:
                        soonest = (at, "idle", "")
                if total is not None and (soonest is None or start + total < soonest[0]):
                    soonest = (start + total, "total", "")
                if step is not None and step_started is not None:
                    at = step_started + step
                    if soonest is None or at < soonest[0]:
                        soonest = (at, "step", "")
                if tool is not None and calls:
                    call_id, issued = min(calls.items(), key=_second)
                    if soonest is None or issued + tool < soonest[0]:
                        soonest = (issued + tool, "tool", f"call_id {call_id!r}")
                deadline = None if soonest is None else soonest[0]
                try:
                    x = await pump.get(deadline)
                except StopAsyncIteration:
                    return
                if x is TIMED_OUT:
                    await pump.aclose()
                    assert soonest is not None
                    _, limit, detail = soonest
                    seconds = limits[limit]
                    assert seconds is not None
                    raise errors[limit](seconds, detail)
                now = anyio.current_time()
                last = now
                if not counted and counts(x):
                    counted = True
                if step is not None:
                    if isinstance(x, ev.StepStart):
                        step_started = now
                    elif isinstance(x, ev.StepEnd):
                        step_started = None
                if tool is not None:
                    if isinstance(x, ev.ToolCallEnd):
                        calls[x.call_id] = now
                    elif isinstance(x, (ev.ToolResult, ev.ToolError)):
                        calls.pop(x.call_id, None)
                yield x  # type: ignore[misc]
        finally:
            await pump.aclose()

    def op(up: Stream[T]) -> Stream[T]:
        return Stream.defer(gen, up)

    return op


def _group(item: object) -> tuple[str, str] | None:
    """The batch an item joins: its run (``run_id``, ``agent``) for an event, the one shared
    group (``None``) for any other item."""
    if isinstance(item, ev.BaseEvent):
        return (item.run_id, item.agent)
    return None


@overload
def batch(count: int, *, within: None = None) -> Stage[T, list[T]]: ...
@overload
def batch(count: int | None = None, *, within: float) -> Callable[[Stream[T]], Stream[list[T]]]: ...
def batch(
    count: int | None = None, *, within: float | None = None
) -> Stage[T, list[T]] | Callable[[Stream[T]], Stream[list[T]]]:
    """Group items into lists of up to ``count`` items, or of what arrived ``within`` seconds.

    Events are batched per run: each run (``run_id``, ``agent``) of a merged stream has its
    own pending batch, so a batch never mixes runs and batching a merged stream gives, run by
    run, the batches that batching each run alone gives. Items that are not events share one
    group of their own.

    - Emits: a run's batch when it holds ``count`` items, or ``within`` seconds after its
      first item arrived, whichever is first (each run's count and time limit are its own);
      never an empty list. The items of a batch keep their arrival order.
    - Completes: when the upstream completes, after emitting every pending batch, in the
      order their first items arrived.
    - Fails: when the upstream fails, after emitting every pending batch (same order).
    - Cancels: when the downstream stops (the pending batches are dropped with the stream).
    - Buffers: up to ``count`` items per run (unbounded by count when only ``within`` is
      given).

    Without ``within`` it is a fusable stage; with it, it runs a pump task.

    Marble: ``a b c d e | batch(2)`` gives ``[a,b] [c,d] [e]``. With two merged runs,
    ``a1 b1 a2 a3 b2 | batch(2)`` (letter: run) gives ``[a1,a2] [b1,b2] [a3]``.

    Raises:
        ValueError: neither limit given, ``count`` < 1, or ``within`` <= 0.
    """
    if count is None and within is None:
        raise ValueError("batch(): give count, within, or both")
    if count is not None and count < 1:
        raise ValueError(f"batch(): count must be >= 1, got {count}")
    _positive("within", within)
    if within is None:
        assert count is not None
        size = count

        def bind(down: Push, end: End) -> tuple[Push, End]:
            # pending batches by group; dict order is the order of their first items
            groups: dict[tuple[str, str] | None, list[Any]] = {}

            def push(x: Any) -> None:
                key = _group(x)
                held = groups.get(key)
                if held is None:
                    held = groups[key] = []
                held.append(x)
                if len(held) >= size:
                    del groups[key]
                    down(held)

            def flush() -> None:
                while groups:
                    down(groups.pop(next(iter(groups))))
                end()

            return push, flush

        return Stage(bind, f"batch({count})")

    window = within

    async def gen(up: Stream[T]) -> AsyncGenerator[list[T], None]:
        import anyio

        pump: Pump[T] = Pump(up, "batch()")
        pump.start()
        # pending batches by group: (deadline, items). Dict order is the order of their first
        # items, which is also deadline order: the first entry is always the soonest due.
        groups: dict[tuple[str, str] | None, tuple[float, list[T]]] = {}
        try:
            while True:
                deadline = next(iter(groups.values()))[0] if groups else None
                try:
                    x = await pump.get(deadline)
                except StopAsyncIteration:
                    break
                except Exception:
                    while groups:
                        yield groups.pop(next(iter(groups)))[1]
                    raise
                if x is TIMED_OUT:
                    # the soonest batch is due; so is any other whose deadline has passed
                    yield groups.pop(next(iter(groups)))[1]
                    now = anyio.current_time()
                    while groups:
                        key = next(iter(groups))
                        if groups[key][0] > now:
                            break
                        yield groups.pop(key)[1]
                    continue
                key = _group(x)
                got = groups.get(key)
                if got is None:
                    got = groups[key] = (anyio.current_time() + window, [])
                held = got[1]
                held.append(x)  # type: ignore[arg-type]
                if count is not None and len(held) >= count:
                    del groups[key]
                    yield held
            while groups:
                yield groups.pop(next(iter(groups)))[1]
        finally:
            await pump.aclose()

    def op(up: Stream[T]) -> Stream[list[T]]:
        return Stream.defer(gen, up)

    return op


def debounce(seconds: float) -> Callable[[Stream[T]], Stream[T]]:
    """Emit an item only once ``seconds`` pass without a newer one; newer items replace it.

    Use it for "settled" values (the latest partial object, a search-as-you-type query), not
    for deltas: the replaced items are dropped.

    - Emits: the latest item, ``seconds`` after it arrived, if no newer item arrived since.
    - Completes: when the upstream completes, after emitting the pending item at once.
    - Fails: when the upstream fails, after emitting the pending item.
    - Cancels: when the downstream stops; the pump task is cancelled and the source closed.
    - Buffers: one pending item.

    Marble: ``a b -(1s)- c |`` with ``debounce(0.5)`` gives ``b`` (0.5 s after b) ``c`` (at end).

    Raises:
        ValueError: ``seconds`` <= 0.
    """
    _positive("seconds", seconds)

    def arrive(now: float, holding: bool) -> float | None:
        return now + seconds  # hold the newest item, the quiet period starts again

    return _latest_gate("debounce()", lambda: (arrive, _ignore))


def throttle(seconds: float) -> Callable[[Stream[T]], Stream[T]]:
    """Emit at most one item per ``seconds``: the first at once, then the latest of each window.

    Items that arrive inside a window replace each other; the last one is emitted when the
    window closes (trailing edge), so the final value is never lost. Use it to cap UI redraws
    of snapshots (``scan`` output), not on deltas, whose replaced items would be dropped.

    - Emits: an item at once if ``seconds`` passed since the last emission; otherwise the
      latest item when the window closes.
    - Completes: when the upstream completes, after emitting the pending item at once.
    - Fails: when the upstream fails, after emitting the pending item.
    - Cancels: when the downstream stops; the pump task is cancelled and the source closed.
    - Buffers: one pending item.

    Marble: ``a b c`` arriving together with ``throttle(1)`` gives ``a`` at once, ``c`` 1 s
    later.

    Raises:
        ValueError: ``seconds`` <= 0.
    """
    _positive("seconds", seconds)

    def policy() -> tuple[Callable[[float, bool], float | None], Callable[[float], None]]:
        last: list[float] = []  # the time of the last emission, per iteration

        def arrive(now: float, holding: bool) -> float | None:
            if not holding and (not last or now - last[0] >= seconds):
                last[:] = [now]
                return None  # emit at once: the window is open
            return last[0] + seconds  # hold it until the window closes

        def fired(now: float) -> None:
            last[:] = [now]

        return arrive, fired

    return _latest_gate("throttle()", policy)


def _second(kv: tuple[str, float]) -> float:
    return kv[1]


def _ignore(now: float) -> None:
    pass


def _latest_gate(
    name: str, policy: Callable[[], tuple[Callable[[float, bool], float | None], Callable[[float], None]]]
) -> Callable[[Stream[T]], Stream[T]]:
    """``debounce`` and ``throttle``: one pending item, replaced by newer ones (the loop is
    :func:`streamops._pump.pump_timed`).

    ``policy()`` (called per iteration, for fresh state) gives ``arrive(now, holding)``, which
    returns ``None`` to emit an arriving item at once or the deadline (seconds, the clock of
    ``anyio.current_time()``) until which to hold it, and ``fired(now)``, told when a held item
    is emitted at its deadline. A pending item is emitted at once when the upstream ends or
    fails (before the error is re-raised)."""

    def bind(out: list[T]) -> tuple[Callable[[Any], float | None], Callable[[], None]]:
        import anyio

        arrive, fired = policy()
        pending: list[T] = []  # the item held until its deadline
        deadline: float | None = None

        def step(x: Any) -> float | None:
            nonlocal deadline
            now = anyio.current_time()
            if x is TIMED_OUT:
                deadline = None
                fired(now)
                out.append(pending.pop())
            elif (hold := arrive(now, bool(pending))) is None:
                out.append(x)
            else:
                pending[:] = [x]
                deadline = hold
            return deadline

        def finish() -> None:
            out.extend(pending)

        return step, finish

    def op(up: Stream[T]) -> Stream[T]:
        return Stream.defer(pump_timed, up, name, bind)

    return op
