"""Transforming operators: ``map``, ``scan``, ``tap``, ``restamp``.

``map`` with a synchronous function, ``scan`` and ``tap`` are fusable stages (one function call
per item, nothing buffered). ``map`` with an ``async def`` function awaits it item by item.
``restamp`` numbers events as they are pulled (with a :class:`Sequencer` that an operator
after it may share to number events it inserts); it is an async operator, not a stage, because
a fused stage numbers an item when it is pushed, which is not when it is pulled.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar, overload

from .._stream import End, Push, Stage, Stream
from ..events import BaseEvent, derive, deriver

__all__ = ["Sequencer", "map", "restamp", "scan", "tap"]

T = TypeVar("T")
U = TypeVar("U")
A = TypeVar("A")
E = TypeVar("E", bound=BaseEvent)


@overload
def map(fn: Callable[[T], Awaitable[U]]) -> Callable[[Stream[T]], Stream[U]]: ...  # type: ignore[overload-overlap]
@overload
def map(fn: Callable[[T], U]) -> Stage[T, U]: ...
def map(fn: Callable[[T], Any]) -> Stage[T, Any] | Callable[[Stream[T]], Stream[Any]]:
    """Replace each item by ``fn(item)``.

    With an ``async def`` function, each call is awaited before the next item is pulled (order
    kept, one call at a time); the result is then a regular, unfused operator.

    - Emits: ``fn(item)`` for each item, when the item arrives (when the call returns, for an
      async ``fn``).
    - Completes: when the upstream completes.
    - Fails: when the upstream fails or ``fn`` raises (re-raised as itself).
    - Cancels: when the downstream stops (an async call in flight is cancelled); buffers
      nothing.

    Marble: ``1 2 3 | map(x * 10)`` gives ``10 20 30``.
    """
    if inspect.iscoroutinefunction(fn):
        afn = fn

        async def gen(up: Stream[T]) -> AsyncGenerator[Any, None]:
            # Not ``up.iterate()``: that opens the terminal's task host, which must never be
            # held across this generator's ``yield`` (PEP 789); operators only close upstream.
            async with aclosing(up.__aiter__()) as it:
                async for x in it:
                    yield await afn(x)

        def op(up: Stream[T]) -> Stream[Any]:
            return Stream.defer(gen, up)

        return op

    def bind(down: Push, end: End) -> tuple[Push, End]:
        def push(x: Any) -> None:
            down(fn(x))

        return push, end

    def step() -> Callable[[Any], Any]:
        return fn  # the function itself is the step: one call per item, nothing around it

    return Stage(bind, f"map({getattr(fn, '__name__', 'fn')})", step=step)


def scan(fn: Callable[[A, T], A], initial: A) -> Stage[T, A]:
    """Fold items into an accumulator and emit the accumulator after each item.

    - Emits: ``acc = fn(acc, item)`` for each item, starting from ``initial`` (which itself is
      not emitted).
    - Completes: when the upstream completes.
    - Fails: when the upstream fails or ``fn`` raises.
    - Cancels: when the downstream stops; holds only the accumulator.

    Marble: ``1 2 3 | scan(add, 0)`` gives ``1 3 6``.
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        acc = initial

        def push(x: Any) -> None:
            nonlocal acc
            acc = fn(acc, x)
            down(acc)

        return push, end

    def step() -> Callable[[Any], Any]:
        acc = initial

        def step1(x: Any) -> Any:
            nonlocal acc
            acc = fn(acc, x)
            return acc

        return step1

    return Stage(bind, f"scan({getattr(fn, '__name__', 'fn')})", step=step)


def tap(fn: Callable[[T], object]) -> Stage[T, T]:
    """Call ``fn(item)`` for its side effect and pass the item on unchanged.

    - Emits: each item, right after ``fn`` returned.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails or ``fn`` raises.
    - Cancels: when the downstream stops; buffers nothing.

    Marble: ``a b | tap(print)`` gives ``a b`` (and prints both).
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        def push(x: Any) -> None:
            fn(x)
            down(x)

        return push, end

    def step() -> Callable[[Any], Any]:
        def step1(x: Any) -> Any:
            fn(x)
            return x

        return step1

    return Stage(bind, f"tap({getattr(fn, '__name__', 'fn')})", step=step)


_SEQ_COPIERS: dict[type[Any], Callable[[Any, int], Any]] = {}
"""``deriver(cls, "seq")`` per event class, for :meth:`Sequencer.stamp`."""


class Sequencer:
    """Numbers the events of one run (sans-IO): :meth:`stamp` gives each event the next ``seq``
    (from ``start``) and, when given, this ``run_id`` and ``agent``.

    :func:`restamp` is its operator. Share one sequencer between ``restamp`` and an operator
    after it that inserts events of its own so that every event of the run has a unique,
    monotonic seq (the agent's hooks operator does both itself: it numbers each event of the
    run as it pulls it and the ``ErrorEvent`` it inserts after an event a hook failed on).
    """

    __slots__ = ("agent", "next", "run_id")

    def __init__(self, *, run_id: str | None = None, agent: str | None = None, start: int = 0) -> None:
        self.run_id = run_id
        self.agent = agent
        self.next = start
        """The seq the next event gets."""

    def stamp(self, event: E) -> E:
        """``event`` with the next seq (and this run id and agent): ``event`` itself when it
        has them already, else a copy (:func:`~streamops.events.derive`; events are never
        changed in place)."""
        n = self.next
        self.next = n + 1
        run_id = self.run_id
        agent = self.agent
        if (run_id is None or event.run_id == run_id) and (agent is None or event.agent == agent):
            if event.seq == n:
                return event
            # The common case (an event of the run numbered by its source): half a derive(),
            # its copier looked up by class alone (``deriver``'s own cache keys on the names too).
            cls = event.__class__
            copy = _SEQ_COPIERS.get(cls)
            if copy is None:
                copy = _SEQ_COPIERS[cls] = deriver(cls, "seq")
            return copy(event, n)  # type: ignore[no-any-return]
        return derive(
            event,
            seq=n,
            run_id=event.run_id if run_id is None else run_id,
            agent=event.agent if agent is None else agent,
        )

    def make(self, cls: type[E], /, **fields: Any) -> E:
        """A new event of ``cls`` numbered next (``fields`` as for the class)."""
        return self.stamp(cls(**fields))


def restamp(
    sequencer: Sequencer | None = None, *, run_id: str | None = None, agent: str | None = None
) -> Callable[[Stream[Any]], Stream[Any]]:
    """Renumber the events that pass: ``seq`` 0, 1, 2... (one sequence over the whole stream),
    and set ``run_id``/``agent`` when given.

    For a stream assembled from several sources that each count from 0 (the model calls of an
    agent run, with events the run inserts between them) or an operator that inserts events
    carrying its source's seq (``structured``): afterwards every event has a unique, monotonic
    seq. ``sequencer`` (default: a new one per iteration, from ``run_id``/``agent``) does the
    numbering; pass your own to go on numbering events inserted after this operator.

    - Emits: each upstream event, numbered (a copy, or itself when already numbered so), when
      the downstream pulls it: an event is numbered at the moment it is pulled, not before, so
      an operator after ``restamp`` that shares its ``sequencer`` numbers its own events in
      stream order. Non-events pass unchanged.

      Not a fused :class:`~streamops.Stage`: a stage numbers an item when it is pushed, and
      a fused stage before it that emits several items for one input (``structured``: a text
      delta, then its ``ObjectDelta``) or at the end would have them all numbered before the
      first is pulled; an error inserted after the first would then get a higher seq than the
      item after it (see docs/decisions.md).
    - Completes: when the upstream completes.
    - Fails: when the upstream fails.
    - Cancels: when the downstream stops (the upstream is closed). Buffers nothing.

    Marble: (``x@n``: event ``x`` with seq ``n``) ``a@4 b@0 c@0 | restamp()`` gives
    ``a@0 b@1 c@2``.
    """

    async def gen(up: Stream[Any]) -> AsyncGenerator[Any, None]:
        seq = sequencer if sequencer is not None else Sequencer(run_id=run_id, agent=agent)
        stamp = seq.stamp
        async with aclosing(up.__aiter__()) as it:
            async for x in it:
                yield stamp(x) if isinstance(x, BaseEvent) else x

    def op(up: Stream[Any]) -> Stream[Any]:
        return Stream.defer(gen, up)

    return op
