"""Sharing operators: ``share`` and ``tee``, several consumers of one source.

One *pump* task pulls the source (once, for everybody) and hands each item to every
subscriber's bounded buffer; what happens when a subscriber's buffer is full is the
slow-consumer policy. A bounded replay log lets a late subscriber start from a ``seq``.

Where the pump runs (PEP 789): in a task group owned by a context manager. Both operators are
async context managers: ``async with share(run) as hub:`` and ``async with tee(run, 2) as
(a, b):``. The block opens the task group and starts the pump; leaving it stops the pump,
closes the source and waits for both. Subscriptions are iterated inside the block (with any
terminal, or a bare ``async for``: the pump's task belongs to the block, not to them).
Subscribing to a hub whose block is not open, or starting to iterate a subscription after its
block has exited, raises :class:`~streamops.errors.TaskHostRequired`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, TypeVar

from .._host import TaskHostRequired
from .._stream import Stream, aclose_iterator
from ..errors import ReplayUnavailableError, SlowConsumerError, StreamClosedError
from ..events import BaseEvent, CustomEvent, ReasoningDelta, TextDelta, ToolCallDelta, envelope
from .combine import aclose_shielded

if TYPE_CHECKING:
    import anyio
    from anyio.abc import TaskGroup

__all__ = ["DROPPED_DELTAS", "ReplayUnavailableError", "Shared", "SlowConsumerError", "share", "tee"]

T = TypeVar("T")

Policy = Literal["block", "drop_deltas", "fail"]

DROPPED_DELTAS = "streamops.dropped-deltas"
"""``name`` of the :class:`~streamops.CustomEvent` a ``"drop_deltas"`` subscriber receives in
place of the deltas it missed. Its ``data``: ``{"count": n, "first_seq": a, "last_seq": b,
"kinds": [...], "block_ids": [...], "call_ids": [...]}``; its ``run_id``/``agent``/``seq`` are
those of the first dropped delta."""

_DELTAS = (TextDelta, ReasoningDelta, ToolCallDelta)

_GRACE_TURNS = 8
"""Event-loop turns a full ``drop_deltas``/``fail`` subscriber has to take an item, once no
other subscriber is busy, before it counts as slow (see ``Shared._catch_up``)."""


class _Gap:
    """Deltas a ``drop_deltas`` subscriber missed, in place in its buffer. Kinds and ids are
    kept in insertion-ordered dicts (used as sets): noting a delta is O(1), however many
    distinct call ids a gap covers (issue 13, item 10)."""

    __slots__ = ("block_ids", "call_ids", "count", "first", "kinds", "last")

    def __init__(self, first: Any) -> None:
        self.first = first
        self.last = first
        self.count = 1
        self.kinds: dict[str, None] = {first.kind: None}
        self.block_ids: dict[str, None] = {}
        self.call_ids: dict[str, None] = {}
        self._note(first)

    def _note(self, e: Any) -> None:
        self.kinds[e.kind] = None
        bid = getattr(e, "block_id", None)
        if bid is not None:
            self.block_ids[bid] = None
        cid = getattr(e, "call_id", None)
        if cid is not None:
            self.call_ids[cid] = None

    def add(self, e: Any) -> None:
        self.count += 1
        self.last = e
        self._note(e)

    def absorb(self, other: _Gap) -> None:
        self.count += other.count
        self.last = other.last
        self.kinds.update(other.kinds)
        self.block_ids.update(other.block_ids)
        self.call_ids.update(other.call_ids)

    def event(self) -> CustomEvent:
        first = self.first
        return CustomEvent(
            **envelope(first, ts=time.time(), raw=None),
            name=DROPPED_DELTAS,
            data={
                "count": self.count,
                "first_seq": first.seq,
                "last_seq": self.last.seq,
                "kinds": list(self.kinds),
                "block_ids": list(self.block_ids),
                "call_ids": list(self.call_ids),
            },
        )


def _set(event: anyio.Event | None) -> None:
    """Set ``event`` unless it is ``None``: wakes whoever waits on the event the caller takes
    off its slot (``_set(self.waiter); self.waiter = None``)."""
    if event is not None:
        event.set()


class _Sub:
    """One subscriber: its buffer, and its async iterator (not an async generator)."""

    __slots__ = ("error", "hub", "n", "q", "replay", "slow", "space", "stopped", "waiter")

    def __init__(self, hub: Shared[Any], replay: list[Any]) -> None:
        self.hub = hub
        self.q: deque[Any] = deque()
        self.n = 0  # items in q (gaps not counted)
        self.replay = deque(replay)
        self.waiter: anyio.Event | None = None
        self.space: anyio.Event | None = None
        self.error: BaseException | None = None
        self.stopped = False
        self.slow = False  # found slow (see Shared._catch_up) and has not yet reached its gap

    def __aiter__(self) -> _Sub:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self.replay:
                return self.replay.popleft()
            q = self.q
            if q:
                x = q.popleft()
                if type(x) is _Gap:
                    self.slow = False
                    return x.event()
                self.n -= 1
                space = self.space
                if space is not None:
                    self.space = None
                    space.set()
                return x
            error = self.error
            if error is not None:
                self.error = None
                self.stopped = True
                raise error
            if self.stopped:
                raise StopAsyncIteration
            hub = self.hub
            if hub._done:
                self.stopped = True
                if hub._error is not None:
                    raise hub._error
                raise StopAsyncIteration
            import anyio  # imported on use (only when waiting): `import streamops` stays light

            hub._wake_pump()  # it may be waiting to see whether another subscriber catches up
            waiter = self.waiter = anyio.Event()
            await waiter.wait()

    def wake(self) -> None:
        _set(self.waiter)
        _set(self.space)
        self.waiter = self.space = None

    async def aclose(self) -> None:
        """Unsubscribe; the last subscriber to close stops the pump and closes the source."""
        self.stopped = True
        self.q.clear()
        self.replay.clear()
        await self.hub._unsubscribe(self)


class _SubSource:
    __slots__ = ("_sub", "_used")

    def __init__(self, sub: _Sub) -> None:
        self._sub = sub
        self._used = False

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._used:
            raise StreamClosedError("a share()/tee() subscription can be iterated only once; subscribe() again")
        hub = self._sub.hub
        if not hub._open:
            raise _not_open(hub._name)
        self._used = True
        return self._sub


def _not_open(operator: str) -> TaskHostRequired:
    """:class:`TaskHostRequired` saying how to open the hub's block."""
    err = TaskHostRequired(operator)
    how = "async with share(source) as hub:" if operator == "share()" else "async with tee(source, n) as (a, b, ...):"
    err.args = (
        f"{operator} runs its pump in a task owned by its `async with` block, which is not open: "
        f"subscribe and iterate inside `{how}`",
    )
    return err


class Shared(Generic[T]):
    """A source shared by several subscribers; made by :func:`share`, used as
    ``async with share(source) as hub:``.

    ``hub.subscribe()`` returns a :class:`~streamops.Stream` of the items from now on (or
    from ``from_seq``, out of the replay log). The block runs the pump in its own task group;
    when it exits, the pump stops and the source is closed. Subscribing outside the block
    raises :class:`~streamops.errors.TaskHostRequired`.
    """

    def __init__(
        self,
        source: AsyncIterable[T],
        *,
        buffer: int,
        policy: Policy,
        replay: int,
        name: str = "share()",
        close_when_unsubscribed: bool = False,
    ) -> None:
        if buffer < 1:
            raise ValueError(f"share(): buffer must be >= 1, got {buffer}")
        if replay < 0:
            raise ValueError(f"share(): replay must be >= 0, got {replay}")
        if policy not in ("block", "drop_deltas", "fail"):
            raise ValueError(f"share(): policy must be 'block', 'drop_deltas' or 'fail', got {policy!r}")
        self._source = source
        self.buffer = buffer
        self.policy: Policy = policy
        self.replay = replay
        self._log: deque[tuple[int, Any]] = deque(maxlen=replay)
        self._pos = 0  # items produced so far
        self._last_seq: int | None = None
        self._subs: list[_Sub] = []
        self._started = False
        self._done = False  # the pump has finished (source ended, failed or was closed)
        self._error: BaseException | None = None
        self._closed = False  # the source was closed before its end (no more subscribers)
        self._scope: anyio.CancelScope | None = None
        self._finished: anyio.Event | None = None
        self._kick: anyio.Event | None = None  # set when a subscriber waits for items or leaves
        self._tg: TaskGroup | None = None
        self._open = False  # inside the `async with` block
        self._name = name
        self._close_when_unsubscribed = close_when_unsubscribed  # tee: nobody can subscribe later

    # ----------------------------------------------------------------------------- subscribing
    def subscribe(self, *, from_seq: int | None = None) -> Stream[T]:
        """A stream of the shared items: those produced from now on, or, with ``from_seq``,
        every logged item whose ``seq`` is ``>= from_seq`` first (an event's ``seq``; an item
        that is not an event counts by its position in the shared stream, from 0).

        Raises:
            ReplayUnavailableError: ``from_seq`` is older than the oldest logged item (and items
                have left the log, or there is no log).
            StreamClosedError: the hub's block has exited (or the hub was closed).
            TaskHostRequired: the hub's ``async with`` block was never entered.
        """
        if self._closed or (self._started and not self._open):
            raise StreamClosedError(f"this {self._name} hub was closed (its `async with` block exited, or aclose())")
        if not self._open:
            raise _not_open(self._name)
        replayed: list[Any] = []
        if from_seq is not None:
            log = self._log
            evicted = self._pos > len(log)
            oldest = log[0][0] if log else None
            if evicted and from_seq < (oldest if oldest is not None else (self._last_seq or 0) + 1):
                raise ReplayUnavailableError(from_seq, oldest)
            replayed = [x for seq, x in log if seq >= from_seq]
        sub = _Sub(self, replayed)
        if not self._done:
            self._subs = [*self._subs, sub]
        return Stream(_SubSource(sub))

    # ----------------------------------------------------------------------------- lifetime
    async def __aenter__(self) -> Shared[T]:
        import anyio  # imported on use: `import streamops` stays light

        if self._started:
            raise StreamClosedError(
                f"a {self._name} hub can be entered only once, and not after aclose(); call {self._name} again"
            )
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._started = self._open = True
        self._finished = anyio.Event()
        tg.start_soon(self._pump, name=f"streamops {self._name} pump")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        """Stop the pump, close the source, then exit the task group with the block's own
        exception (so it cancels and reports as for an error exit); ``True`` only if the task
        group handled it (its own cancellation)."""
        tg = self._tg
        self._tg = None
        self._open = False
        try:
            await self.aclose()
        except BaseException as close_exc:
            if tg is not None:
                await _exit_task_group(tg, close_exc)
            raise
        if tg is None:
            return False
        return await _exit_task_group(tg, exc)

    async def aclose(self) -> None:
        """Stop the pump and close the source now; subscribers get what they hold, then end."""
        import anyio  # imported on use: `import streamops` stays light

        if not self._started:
            self._started = self._done = self._closed = True
            if isinstance(self._source, AsyncIterator):
                await aclose_iterator(self._source)
            return
        if not self._done:
            self._closed = True
            if self._scope is not None:
                self._scope.cancel()
        if self._finished is not None:
            with anyio.CancelScope(shield=True):
                await self._finished.wait()

    async def _unsubscribe(self, sub: _Sub) -> None:
        if sub in self._subs:
            self._subs = [s for s in self._subs if s is not sub]  # rebind: the pump may be iterating
            sub.wake()
            self._wake_pump()
        if not self._subs and self._close_when_unsubscribed and self._started and not self._done:
            await self.aclose()

    def _wake_pump(self) -> None:
        _set(self._kick)
        self._kick = None

    # ----------------------------------------------------------------------------- the pump
    async def _pump(self) -> None:
        import anyio  # imported on use: `import streamops` stays light
        from anyio.lowlevel import checkpoint

        it: AsyncIterator[Any] | None = None
        log = self._log if self.replay else None
        buffer = self.buffer
        policy = self.policy
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                try:
                    it = self._source.__aiter__()
                    if self._closed:
                        return
                    async for x in it:
                        pos = self._pos
                        self._pos = pos + 1
                        seq = x.seq if isinstance(x, BaseEvent) else pos
                        self._last_seq = seq
                        if log is not None:
                            log.append((seq, x))
                        subs = self._subs
                        if not subs:
                            # Nobody to wait for: yield to the loop anyway, or a source that
                            # never awaits would spin here and starve the block's own exit.
                            await checkpoint()
                        for sub in subs:
                            if sub.n >= buffer and policy != "block":
                                await self._catch_up(sub)
                                if sub not in self._subs:
                                    continue
                            if sub.n < buffer:
                                sub.q.append(x)
                                sub.n += 1
                                waiter = sub.waiter
                                if waiter is not None:
                                    sub.waiter = None
                                    waiter.set()
                            elif policy == "block":
                                await self._wait_space(sub, x)
                            elif policy == "fail":
                                sub.error = SlowConsumerError(buffer)
                                self._subs = [s for s in self._subs if s is not sub]
                                sub.wake()
                            else:
                                await self._drop(sub, x)
                except Exception as exc:
                    self._error = exc
                finally:
                    if it is not None:
                        failed = await aclose_shielded(it)
                        if failed is not None and self._error is None and not self._closed:
                            self._error = failed
        finally:
            self._done = True
            for sub in self._subs:
                sub.wake()
            if self._finished is not None:
                self._finished.set()

    async def _catch_up(self, sub: _Sub) -> None:
        """Give a full subscriber the chance to catch up before the slow-consumer policy
        applies: a burst (a source that yields many items without awaiting) fills every
        buffer at once, and a subscriber that keeps up must not lose anything to it.

        Returns when ``sub`` has room, has left, or is *slow*: some other subscriber has taken
        everything and waits for the next item (or there is no other subscriber), and ``sub``
        took nothing while the pump yielded to the event loop :data:`_GRACE_TURNS` times; it
        stays slow (no new grace) until it takes the gap its drops made. While every other
        subscriber is busy too, the pump waits (as ``"block"`` does)."""
        import anyio  # imported on use: `import streamops` stays light
        from anyio.lowlevel import checkpoint

        if sub.slow:  # still behind its last gap: no new grace per item
            return
        turns = 0
        while sub.n >= self.buffer and sub in self._subs:
            others = [s for s in self._subs if s is not sub]
            if others and all(s.waiter is None for s in others):
                kick = sub.space = self._kick = anyio.Event()
                await kick.wait()
                turns = 0
                continue
            if turns >= _GRACE_TURNS:
                sub.slow = True
                return
            turns += 1
            await checkpoint()

    async def _wait_space(self, sub: _Sub, x: Any) -> None:
        import anyio  # imported on use: `import streamops` stays light

        while sub.n >= self.buffer and sub in self._subs:
            space = sub.space = anyio.Event()
            await space.wait()
        if sub in self._subs:
            sub.q.append(x)
            sub.n += 1
            sub.wake()

    async def _drop(self, sub: _Sub, x: Any) -> None:
        q = sub.q
        if isinstance(x, _DELTAS):
            if q and type(q[-1]) is _Gap:
                q[-1].add(x)
            else:
                q.append(_Gap(x))
            return
        # A non-delta is never dropped: make room by turning the oldest buffered delta into a gap.
        for i, y in enumerate(q):
            if isinstance(y, _DELTAS):
                gap = _Gap(y)
                if i + 1 < len(q) and type(q[i + 1]) is _Gap:
                    gap.absorb(q[i + 1])
                    del q[i + 1]
                if i > 0 and type(q[i - 1]) is _Gap:
                    q[i - 1].absorb(gap)
                    del q[i]
                else:
                    q[i] = gap
                sub.n -= 1
                q.append(x)
                sub.n += 1
                sub.wake()
                return
        await self._wait_space(sub, x)


def share(
    source: AsyncIterable[T],
    *,
    buffer: int = 64,
    policy: Policy = "block",
    replay: int = 0,
) -> Shared[T]:
    """Share one source among several consumers: each subscriber gets every item, the source
    is pulled once.

    ``async with share(run, replay=1000) as hub:`` then, inside the block,
    ``hub.subscribe()`` gives a stream (each subscription is iterated once; ``subscribe()``
    again for another consumer). The block owns the pump's task: it starts the pump on entry
    and, on exit, stops it and closes the source.

    - Emits: to each subscriber, every item the source produces after it subscribed (after
      the replayed ones, with ``from_seq``), in order.
    - Completes: each subscriber when the source completes (after its buffered items).
    - Fails: each subscriber, after its buffered items, with the source's exception (the same
      object); a ``policy="fail"`` subscriber that falls behind with
      :class:`SlowConsumerError`; ``subscribe(from_seq=...)`` with
      :class:`ReplayUnavailableError` when the log no longer holds that ``seq``;
      ``subscribe()`` before the block is entered, or iterating a subscription first after it
      exited, with :class:`~streamops.errors.TaskHostRequired`.
    - Cancels: the source is closed when the ``async with`` block exits (or on
      ``hub.aclose()``); subscribers then get what they hold, then end. One subscriber closing
      only unsubscribes it; the source goes on (a later subscriber may still replay it).
    - Buffers: up to ``buffer`` items per subscriber (default 64), and the last ``replay``
      items for late subscribers (default 0: no replay). When a subscriber's buffer is full,
      ``policy`` decides. ``"drop_deltas"`` and ``"fail"`` apply only to a subscriber that is
      behind while the others progress: one that takes nothing for a few event-loop turns
      while another subscriber has taken everything and waits (or while it is alone). A
      burst (a source yielding many items without awaiting) that every subscriber keeps up
      with loses nothing; while all subscribers are busy, the pump waits as with ``"block"``:

      - ``"block"`` (default): the pump waits for it, so the source runs at the pace of the
        slowest subscriber (a subscriber that never pulls stops everyone once its buffer fills);
      - ``"drop_deltas"``: a ``TextDelta``/``ReasoningDelta``/``ToolCallDelta`` is dropped for
        that subscriber only; any other event (tool calls and results, errors, usage, the run's
        end) is kept, making room by dropping the oldest buffered delta, or waiting if there is
        none. The subscriber learns what it missed from a ``CustomEvent`` named
        :data:`DROPPED_DELTAS` at the place of the gap (``data["count"]``, the ``seq`` range,
        the kinds and block/call ids), so it can re-fetch or mark the text as incomplete;
      - ``"fail"``: that subscriber gets :class:`SlowConsumerError` after its buffered items;
        the others go on.

    Marble: ``a b c`` shared by two subscribers gives each ``a b c``; with ``drop_deltas``
    and a stalled subscriber, ``t1 t2 t3 END`` may reach it as ``t1 <dropped 2> END``.

    Raises:
        ValueError: ``buffer`` < 1, ``replay`` < 0, or an unknown ``policy``.
    """
    return Shared(source, buffer=buffer, policy=policy, replay=replay)


async def _exit_task_group(tg: TaskGroup, exc: BaseException | None) -> bool:
    """``tg.__aexit__`` with ``exc`` (the exception leaving the block, or ``None``): what it
    returns (``True``: it handled ``exc``). A task group reports the block's exception wrapped
    in an exception group (or raises it again); when that is nothing but ``exc`` itself,
    ``False`` is returned instead, so ``exc`` propagates unchanged (same object, not wrapped).
    Anything else the task group raises (a failed task) propagates."""
    try:
        if exc is None:
            handled = await tg.__aexit__(None, None, None)
        else:
            handled = await tg.__aexit__(type(exc), exc, exc.__traceback__)
    except BaseException as raised:
        if exc is not None and (raised is exc or (isinstance(raised, BaseExceptionGroup) and _only(raised, exc))):
            return False
        raise
    return bool(handled)


def _only(group: BaseExceptionGroup[BaseException], exc: BaseException) -> bool:
    """Whether every leaf of ``group`` is ``exc``."""
    return all(e is exc or (isinstance(e, BaseExceptionGroup) and _only(e, exc)) for e in group.exceptions)


class _Tee(Generic[T]):
    """What :func:`tee` returns: ``async with tee(run, 2) as (a, b):``."""

    __slots__ = ("_hub", "_n")

    def __init__(self, hub: Shared[T], n: int) -> None:
        self._hub = hub
        self._n = n

    async def __aenter__(self) -> tuple[Stream[T], ...]:
        hub = await self._hub.__aenter__()
        return tuple(hub.subscribe() for _ in range(self._n))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return await self._hub.__aexit__(exc_type, exc, tb)

    def __iter__(self) -> Iterator[Any]:
        return self._unpacked()

    def _unpacked(self) -> NoReturn:
        raise TypeError("tee() is an async context manager: `async with tee(source, n) as (a, b, ...):`")


def tee(
    source: AsyncIterable[T],
    n: int = 2,
    *,
    buffer: int = 64,
    policy: Policy = "block",
) -> AbstractAsyncContextManager[tuple[Stream[T], ...]]:
    """Split one source into ``n`` streams that each get every item:
    ``async with tee(run, 2) as (a, b): ...``.

    The block owns the pump's task (like :func:`share`'s) and the ``n`` branches exist from
    its start, so none misses an item; iterate them inside the block. This is
    ``share(source, buffer=buffer, policy=policy)`` subscribed ``n`` times; see :func:`share`
    for the slow-consumer policies.

    - Emits: every item to every branch, in order.
    - Completes: each branch when the source completes.
    - Fails: each branch with the source's exception; a ``policy="fail"`` branch that falls
      ``buffer`` items behind with :class:`SlowConsumerError`; a branch first iterated after
      the block exited with :class:`~streamops.errors.TaskHostRequired`.
    - Cancels: the source is closed when every branch has closed, or when the block exits
      (branches then get what they hold, then end).
    - Buffers: up to ``buffer`` items per branch (default 64). With ``policy="block"`` the
      branches must be consumed concurrently (a branch nobody reads stops the others once
      ``buffer`` items are waiting in it).

    Marble: ``a b c | tee(2)`` gives ``a b c`` and ``a b c``.

    Raises:
        ValueError: ``n`` < 1 (and see :func:`share`).
    """
    if n < 1:
        raise ValueError(f"tee(): n must be >= 1, got {n}")
    hub = Shared(source, buffer=buffer, policy=policy, replay=0, name="tee()", close_when_unsubscribed=True)
    return _Tee(hub, n)
