"""Selecting operators: ``of_type``, ``of_agent``, ``filter``, ``take``, ``take_until``.

All are fusable :class:`~streamops.Stage` objects: they cost one function call per item and
buffer nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from .._stream import SKIP, End, Push, Stage, StageComplete
from ..events import EVENT_KINDS, BaseEvent

__all__ = ["filter", "of_agent", "of_type", "take", "take_until"]

T = TypeVar("T")
E = TypeVar("E")


@overload
def of_type(cls: type[E], /) -> Stage[Any, E]: ...
@overload
def of_type(*kinds: type[Any] | str) -> Stage[Any, Any]: ...
def of_type(*kinds: type[Any] | str) -> Stage[Any, Any]:
    """Keep the items that are instances of the given classes or events of the given kinds.

    ``of_type(TextDelta, "tool-call-end")`` keeps text deltas and tool-call ends. A kind string
    is an event's ``kind`` (see :data:`streamops.events.EVENT_KINDS`).

    - Emits: each matching item, unchanged, when it arrives.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails.
    - Cancels: when the downstream stops; buffers nothing.

    Marble: ``T1 U T2 | of_type(T)`` gives ``T1 T2``.

    Raises:
        ValueError: a kind string names no event kind.
    """
    classes: list[type[Any]] = []
    for k in kinds:
        if isinstance(k, str):
            if k not in EVENT_KINDS:
                raise ValueError(f"of_type(): unknown event kind {k!r}; known: {sorted(EVENT_KINDS)}")
            classes.append(EVENT_KINDS[k])
        else:
            classes.append(k)
    types = tuple(classes)
    single = types[0] if len(types) == 1 else None

    def bind(down: Push, end: End) -> tuple[Push, End]:
        if single is not None:
            cls = single

            def push1(x: Any) -> None:
                if isinstance(x, cls):
                    down(x)

            return push1, end

        def push(x: Any) -> None:
            if isinstance(x, types):
                down(x)

        return push, end

    def step() -> Callable[[Any], Any]:
        if single is not None:
            cls = single

            def step1(x: Any) -> Any:
                return x if isinstance(x, cls) else SKIP

            return step1

        def step_n(x: Any) -> Any:
            return x if isinstance(x, types) else SKIP

        return step_n

    names = ",".join(t if isinstance(t, str) else t.__name__ for t in kinds)
    return Stage(bind, f"of_type({names})", step=step)


def of_agent(path: str | tuple[str, ...], /, *, nested: bool = True) -> Stage[Any, BaseEvent]:
    """Keep the events of one agent: those whose envelope ``agent`` path is ``path``, and with
    ``nested`` (the default) those of the agents it runs (sub-agents, agents used as tools,
    handoff targets named under it, LangGraph subgraphs), whose path starts with ``path``.

    ``path`` is a ``/``-separated path as in :attr:`~streamops.events.BaseEvent.agent`
    (``"planner/researcher"``) or a tuple of names (``("planner", "researcher")``). Paths are
    compared name by name: ``of_agent("plan")`` does not keep ``"planner"``'s events. Items
    that are not events are dropped.

    - Emits: each matching event, unchanged, when it arrives.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails.
    - Cancels: when the downstream stops; buffers nothing.

    Marble: ``a a/b c a/b/d | of_agent("a")`` gives ``a a/b a/b/d``; with ``nested=False``,
    ``a``.

    Raises:
        ValueError: ``path`` is empty, or has an empty name (``"a//b"``, ``("a", "")``).
    """
    names = tuple(path.split("/")) if isinstance(path, str) else tuple(path)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"of_agent(): a path of one or more non-empty agent names is needed, got {path!r}")
    exact = "/".join(names)
    prefix = exact + "/"

    if nested:

        def keep(x: Any) -> bool:
            if not isinstance(x, BaseEvent):
                return False
            a = x.agent
            return a == exact or a.startswith(prefix)

    else:

        def keep(x: Any) -> bool:
            return isinstance(x, BaseEvent) and x.agent == exact

    return _kept(keep, f"of_agent({exact!r}{'' if nested else ', nested=False'})")


def filter(predicate: Callable[[T], object]) -> Stage[T, T]:
    """Keep the items for which ``predicate(item)`` is true.

    - Emits: each item whose predicate is true, when it arrives.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails, or the predicate raises (items already emitted stay
      emitted; the exception is re-raised as itself).
    - Cancels: when the downstream stops; buffers nothing.

    Marble: ``1 2 3 4 | filter(even)`` gives ``2 4``.
    """

    return _kept(predicate, f"filter({getattr(predicate, '__name__', 'predicate')})")


def _kept(predicate: Callable[[Any], object], name: str) -> Stage[Any, Any]:
    """The stage of :func:`filter` and :func:`of_agent`: the items for which ``predicate`` is true."""

    def bind(down: Push, end: End) -> tuple[Push, End]:
        def push(x: Any) -> None:
            if predicate(x):
                down(x)

        return push, end

    def step() -> Callable[[Any], Any]:
        def step1(x: Any) -> Any:
            return x if predicate(x) else SKIP

        return step1

    return Stage(bind, name, step=step)


def take(n: int) -> Stage[T, T]:
    """Emit the first ``n`` items, then complete and close the upstream.

    - Emits: each of the first ``n`` items, when it arrives.
    - Completes: right after the ``n``-th item (the upstream is closed at once, not drained),
      or when the upstream completes first. ``take(0)`` completes without pulling at all.
    - Fails: when the upstream fails before the ``n``-th item.
    - Cancels: when the downstream stops; buffers nothing.

    Marble: ``a b c d | take(2)`` gives ``a b|``.

    Raises:
        ValueError: ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"take(): n must be >= 0, got {n}")

    def bind(down: Push, end: End) -> tuple[Push, End]:
        remaining = n
        if remaining == 0:
            end()
            raise StageComplete

        def push(x: Any) -> None:
            nonlocal remaining
            remaining -= 1
            down(x)
            if remaining == 0:
                end()
                raise StageComplete

        return push, end

    return Stage(bind, f"take({n})")


def take_until(predicate: Callable[[T], object], *, inclusive: bool = True) -> Stage[T, T]:
    """Emit items until one satisfies ``predicate``, then complete and close the upstream.

    The usual use is cutting a stream at the end of a run:
    ``take_until(lambda e: isinstance(e, RunEnd))``.

    - Emits: each item up to the first that satisfies the predicate; that item too when
      ``inclusive`` (the default).
    - Completes: right after that item (the upstream is closed at once), or when the upstream
      completes.
    - Fails: when the upstream fails first, or the predicate raises.
    - Cancels: when the downstream stops; buffers nothing.

    Marble: ``a b E c | take_until(is_E)`` gives ``a b E|``; with ``inclusive=False``, ``a b|``.
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        def push(x: Any) -> None:
            if predicate(x):
                if inclusive:
                    down(x)
                end()
                raise StageComplete
            down(x)

        return push, end

    return Stage(bind, f"take_until({getattr(predicate, '__name__', 'predicate')})")
