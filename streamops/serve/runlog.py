"""Run logs and the run registry: what lets a client that went away come back and resume.

Event ids, :class:`~streamops.sinks.resume.ResumeUnavailableError` and the interface a
resuming response follows (:class:`~streamops.sinks.resume.ResumableRun`) live in
:mod:`streamops.sinks.resume`; this module implements them in memory.

- :class:`RunLog`: a bounded in-memory log of one run's events, in the order they were
  produced. :meth:`RunLog.after` returns exactly the events after a given event id (the SSE
  ``Last-Event-ID``): none lost, none twice, or :class:`ResumeUnavailableError` when that can
  no longer be promised. :meth:`RunLog.follow` replays them, then tails the live run.
- :class:`RunRegistry`: runs streams in the background, each writing into its own
  :class:`RunLog`, inside a task group owned by an ``async with registry:`` block (a server's
  lifespan opens it); :meth:`RunRegistry.get` finds a run again by its id, and
  :class:`RunHandle` follows or cancels it.

Event ids are unique within a log (and within one SSE body), whatever the stream holds:

- ``{run_id}:{seq}`` for an event whose ``seq`` is greater than that of every earlier event of
  its run (the usual case: :func:`event_id`);
- ``{run_id}:{seq}.{n}`` for any other event, ``n`` being its position in the log (0-based:
  the number of events appended before it). Operators legitimately repeat a seq: ``smooth()``
  splits one delta into several chunks that keep its seq, ``count_tokens()`` inserts an
  estimated ``UsageEvent`` carrying the seq of the event after it; a merged stream of several
  runs (``--agents N``) interleaves runs, each with its own seqs.

A plain id is given once per ``(run_id, seq)`` (later events of that seq are not "greater"), a
suffixed one once per position, and the two forms never look alike: no id is ever given twice
by one log, evicted ones included, with memory for one seq per run. The run id is
percent-encoded (UTF-8, RFC 3986 style) so that the id is printable ASCII without spaces: it
can never break out of an SSE ``id:`` line (no CR, LF or NUL), and it survives the trip back in
an HTTP ``Last-Event-ID`` header unchanged. :func:`parse_event_id` reads both forms.
:meth:`RunLog.id_of` tells the id the log gave an event it yields; :meth:`RunLog.entries`
returns ``(id, event)`` pairs.

Everything here runs on asyncio and trio (anyio).
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from itertools import islice
from typing import TYPE_CHECKING

from ..errors import ResumeUnavailableError, RunLimitError, StreamClosedError, UnknownRunError
from ..events import BaseEvent, RunEnd
from ..operators.errors import errors_as_events
from ..sinks.resume import DisconnectPolicy, EventIds, parse_event_id

if TYPE_CHECKING:
    from types import TracebackType

    import anyio
    from anyio.abc import TaskGroup

    from .._stream import Stream

__all__ = ["RunHandle", "RunLimitError", "RunLog", "RunRegistry", "UnknownRunError"]


class RunLog:
    """A bounded in-memory log of one run's events, for resuming clients.

    Args:
        capacity: events kept, at most; the oldest are evicted first. Must be >= 1.
        auto_close: close the log by itself once every run seen in it has sent its
            ``RunEnd`` (a :class:`RunRegistry` passes ``False`` and closes the log when the
            stream ends instead, so a merged stream whose next agent has not started yet is not
            cut short).

    Events are kept in arrival order, each under the unique id the log gave it (see the module
    docstring: ``{run_id}:{seq}``, or ``{run_id}:{seq}.{n}`` for a repeated seq);
    :meth:`id_of` tells it. Not thread-safe: use it from one event loop's thread.
    """

    __slots__ = (
        "_auto_close",
        "_capacity",
        "_closed",
        "_ended",
        "_entries",
        "_first",
        "_ids",
        "_index",
        "_runs",
        "_waiter",
        "_where",
    )

    def __init__(self, capacity: int = 10_000, *, auto_close: bool = True) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._auto_close = auto_close
        self._entries: deque[tuple[str, BaseEvent]] = deque()  # (id, event), oldest first
        self._first = 0  # absolute position of self._entries[0]
        self._ids = EventIds()
        self._index: dict[str, int] = {}  # id -> absolute position, of the retained events
        self._where: dict[int, str] = {}  # id() of a retained event object -> its event id
        self._runs: set[str] = set()
        self._ended: set[str] = set()
        self._closed = False
        self._waiter: anyio.Event | None = None

    # ------------------------------------------------------------------------------ writing
    @property
    def capacity(self) -> int:
        """Events kept, at most."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """True once the run has ended (its ``RunEnd`` was appended, or :meth:`close`)."""
        return self._closed

    @property
    def evicted(self) -> int:
        """How many events were evicted from the front so far."""
        return self._first

    def __len__(self) -> int:
        """Events currently kept."""
        return len(self._entries)

    def append(self, event: BaseEvent) -> str:
        """Add the next event; evict the oldest beyond :attr:`capacity`; wake the followers.

        Returns the id the log gave the event. An event object that is already in the log
        (appended twice) is kept as a shallow copy, so that each object the log yields has
        one id (:meth:`id_of`).

        Raises:
            StreamClosedError: the log is closed.
        """
        if self._closed:
            raise StreamClosedError("the run log is closed: the run has ended")
        if id(event) in self._where:
            event = copy.copy(event)
        eid = self._ids.next_id(event)
        self._index[eid] = self._first + len(self._entries)
        self._where[id(event)] = eid
        self._entries.append((eid, event))
        self._runs.add(event.run_id)
        if len(self._entries) > self._capacity:
            old_id, old = self._entries.popleft()
            self._first += 1
            del self._index[old_id]
            del self._where[id(old)]
        if isinstance(event, RunEnd):
            self._ended.add(event.run_id)
            if self._auto_close and self._ended >= self._runs:
                self._closed = True
        self._wake()
        return eid

    def close(self) -> None:
        """Mark the run as ended: followers get what is left, then stop. Idempotent."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None

    # ------------------------------------------------------------------------------ reading
    def id_of(self, event: BaseEvent) -> str:
        """The id the log gave ``event``, an event object it holds (one that :meth:`after`,
        :meth:`follow` or :meth:`entries` returned). This is the id to send with it (SSE
        ``id:``) and to resume after. Ask at once, before the next ``await``: an event evicted
        meanwhile has none.

        Raises:
            ResumeUnavailableError: ``event`` is not in the log (evicted, or never appended:
                an equal event is not enough, it must be the object the log returned).
        """
        eid = self._where.get(id(event))
        if eid is None:
            raise ResumeUnavailableError(
                f"this {type(event).__name__} is not in the run's log (evicted: capacity "
                f"{self._capacity} events), so it has no id to resume after",
                None,
            )
        return eid

    def _start(self, last_event_id: str | None) -> int:
        """The absolute position of the first event after ``last_event_id``."""
        if not last_event_id:
            if self._first:
                raise ResumeUnavailableError(
                    f"the first {self._first} events of this run were evicted from its log "
                    f"(capacity {self._capacity}): it cannot be replayed from the start",
                    last_event_id,
                )
            return 0
        pos = self._index.get(last_event_id)
        if pos is None:
            try:
                run, _ = parse_event_id(last_event_id)
            except ValueError:
                raise ResumeUnavailableError(
                    f"Last-Event-ID {last_event_id!r} is not a streamops event id", last_event_id
                ) from None
            if run not in self._runs:
                raise ResumeUnavailableError(f"Last-Event-ID {last_event_id!r} belongs to another run", last_event_id)
            raise ResumeUnavailableError(
                f"Last-Event-ID {last_event_id!r} is no longer in this run's log (evicted: capacity "
                f"{self._capacity} events), or was never sent",
                last_event_id,
            )
        return pos + 1

    def _tail(self, start: int) -> list[tuple[str, BaseEvent]]:
        """The retained entries from absolute position ``start`` on, copying only those."""
        skip = start - self._first
        keep = len(self._entries) - skip
        if keep <= skip:  # nearer the end: walk back from it
            tail = list(islice(reversed(self._entries), keep))
            tail.reverse()
            return tail
        return list(islice(self._entries, skip, None))

    def after(self, last_event_id: str | None) -> list[BaseEvent]:
        """The events after ``last_event_id`` (all of them when it is ``None`` or ``""``), in order.

        Raises:
            ResumeUnavailableError: the id was evicted, belongs to another run, or is
                malformed; or, with no id, the start of the run was evicted.
        """
        return [event for _, event in self._tail(self._start(last_event_id))]

    def entries(self, last_event_id: str | None = None) -> list[tuple[str, BaseEvent]]:
        """As :meth:`after`, with each event's id: ``(id, event)`` pairs, in order.

        Raises:
            ResumeUnavailableError: as :meth:`after`.
        """
        return self._tail(self._start(last_event_id))

    def check(self, last_event_id: str | None) -> None:
        """Raise :class:`ResumeUnavailableError` now if :meth:`after` would raise it."""
        self._start(last_event_id)

    async def follow(self, last_event_id: str | None = None) -> AsyncIterator[BaseEvent]:
        """Replay the events after ``last_event_id``, then yield new ones as they are appended,
        until the log is closed. :meth:`id_of` gives the id of each event yielded.

        Raises:
            ResumeUnavailableError: as :meth:`after` (on the first iteration), or later if this
                follower fell more than :attr:`capacity` events behind.
        """
        import anyio

        pos = self._start(last_event_id)
        last_id = last_event_id
        while True:
            if pos < self._first:
                raise ResumeUnavailableError(
                    f"this follower fell {self._first - pos} events behind the log's capacity "
                    f"({self._capacity}); resume with the last id it received",
                    last_id,
                )
            entries = self._entries
            while pos < self._first + len(entries):
                last_id, event = entries[pos - self._first]
                pos += 1
                yield event
                if pos < self._first:
                    break
            else:
                if self._closed:
                    return
                if self._waiter is None:
                    self._waiter = anyio.Event()
                await self._waiter.wait()


class RunHandle:
    """A run in a :class:`RunRegistry`: follow it, cancel it, wait for it.

    Attributes:
        run_id: the registry's id of the run.
        log: its :class:`RunLog`.
        on_disconnect: the policy it was started with (see :func:`~streamops.sinks.sse.sse_response`).
        stream: the stream being run.
    """

    __slots__ = (
        "_cancel_requested",
        "_done",
        "_exception",
        "_followers",
        "_registry",
        "_scope",
        "log",
        "on_disconnect",
        "run_id",
        "stream",
    )

    def __init__(
        self,
        registry: RunRegistry,
        stream: Stream[BaseEvent],
        run_id: str,
        log: RunLog,
        on_disconnect: DisconnectPolicy,
    ) -> None:
        import anyio

        self._registry = registry
        self.stream = stream
        self.run_id = run_id
        self.log = log
        self.on_disconnect: DisconnectPolicy = on_disconnect
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False
        self._done = anyio.Event()
        self._exception: BaseException | None = None
        self._followers = 0

    @property
    def done(self) -> bool:
        """True once the run's stream has ended (completed, failed or cancelled)."""
        return self._done.is_set()

    @property
    def exception(self) -> BaseException | None:
        """The exception the stream raised, if it failed (an ``ErrorEvent`` was logged for it)."""
        return self._exception

    @property
    def followers(self) -> int:
        """How many :meth:`follow` iterators are attached right now."""
        return self._followers

    async def follow(self, last_event_id: str | None = None) -> AsyncGenerator[BaseEvent, None]:
        """Replay the run's events after ``last_event_id``, then tail it live until it ends.
        ``handle.log.id_of(event)`` is the id of an event yielded (see :meth:`RunLog.id_of`).

        Raises:
            ResumeUnavailableError: see :meth:`RunLog.follow`.
        """
        self._followers += 1
        try:
            async for event in self.log.follow(last_event_id):
                yield event
        finally:
            self._followers -= 1

    def cancel(self, *, grace: float = 5.0) -> None:
        """Cancel the run. Call it from the event loop's thread.

        A stream with its own ``cancel()`` (an :class:`~streamops.agent.AgentStream`) is asked
        first, so the agent logs its ``RunEnd(status="cancelled")``; if it has not ended after
        ``grace`` seconds its task is cancelled. Any other stream's task is cancelled at once,
        which closes the stream and its provider request. Idempotent; does nothing once done.
        """
        import anyio

        if self.done:
            return
        self._cancel_requested = True
        polite = getattr(self.stream, "cancel", None)
        scope = self._scope
        if callable(polite):
            polite()
            if scope is not None:
                scope.deadline = min(scope.deadline, anyio.current_time() + grace)
        elif scope is not None:
            scope.cancel()

    async def wait(self) -> None:
        """Wait until the run has ended."""
        await self._done.wait()

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<RunHandle {self.run_id!r} {state}, {len(self.log)} events>"

    async def _pump(self) -> None:
        import anyio

        log = self.log
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:  # cancelled before it started: never start it
                    return
                try:
                    async with (self.stream | errors_as_events(reraise=True)).iterate() as it:
                        async for event in it:
                            log.append(event)
                except Exception as exc:  # the stream failed: its ErrorEvent is logged
                    self._exception = exc
        finally:
            self._scope = None
            log.close()
            self._done.set()
            self._registry._finished(self)


def _require_event_loop_thread(what: str) -> None:
    import anyio

    try:
        anyio.get_current_task()
    except Exception:
        raise RuntimeError(
            f"{what} must be called from the event loop's thread (in starlette, from an "
            "`async def` endpoint: a plain `def` endpoint runs in a worker thread)"
        ) from None


class RunRegistry:
    """Runs streams in the background and finds them again by id, for resumable endpoints.

    Args:
        max_runs: runs kept, running or finished; to start another, the oldest finished runs
            are evicted (running ones never are), and when all ``max_runs`` are running,
            :meth:`start` raises :class:`RunLimitError`. Must be >= 1.
        capacity: events kept per run (see :class:`RunLog`).

    Use it as an async context manager; the block owns the runs' tasks (structured
    concurrency): leaving it cancels the runs still going and waits for them. With starlette::

        registry = RunRegistry()

        @asynccontextmanager
        async def lifespan(app):
            async with registry:
                yield

    Not thread-safe: use it from the event loop's thread.
    """

    def __init__(self, max_runs: int = 100, capacity: int = 10_000) -> None:
        if max_runs < 1:
            raise ValueError(f"max_runs must be >= 1, got {max_runs}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.max_runs = max_runs
        self.capacity = capacity
        self._runs: dict[str, RunHandle] = {}
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> RunRegistry:
        import anyio

        if self._tg is not None:
            raise RuntimeError("this RunRegistry is already open")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        self._tg = None
        tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    def start(
        self,
        stream: Stream[BaseEvent],
        *,
        run_id: str | None = None,
        on_disconnect: DisconnectPolicy = "cancel",
    ) -> RunHandle:
        """Start running ``stream`` in the background, logging its events; return its handle.

        ``run_id`` is the registry's key for the run (a random hex id when ``None``); it need
        not equal the events' own ``run_id``. ``on_disconnect`` is the run's policy when a
        following client goes away (see :func:`~streamops.sinks.sse.sse_response`).

        If the stream raises, an ``ErrorEvent`` (``error_type`` the exception's class name) is
        logged and the handle's :attr:`~RunHandle.exception` holds the exception.

        Raises:
            RuntimeError: the registry is not open (``async with registry:``), or this is not
                the event loop's thread (a sync starlette endpoint runs in a worker thread:
                make it ``async def``).
            ValueError: a run with this id is still in the registry, or ``on_disconnect`` is
                not ``"cancel"`` or ``"continue"``.
            RunLimitError: ``max_runs`` runs are in the registry and all still running.
        """
        if self._tg is None:
            raise RuntimeError("RunRegistry.start() needs an open registry: `async with registry: ...`")
        _require_event_loop_thread("RunRegistry.start()")
        if on_disconnect not in ("cancel", "continue"):
            raise ValueError(f"on_disconnect must be 'cancel' or 'continue', got {on_disconnect!r}")
        if run_id is None:
            run_id = uuid.uuid4().hex
        elif run_id in self._runs:
            raise ValueError(f"a run with id {run_id!r} is already in the registry")
        self._evict(room=1)
        if len(self._runs) >= self.max_runs:
            raise RunLimitError(self.max_runs)
        handle = RunHandle(self, stream, run_id, RunLog(self.capacity, auto_close=False), on_disconnect)
        self._runs[run_id] = handle
        self._tg.start_soon(handle._pump, name=f"streamops run {run_id}")
        return handle

    def get(self, run_id: str) -> RunHandle:
        """The run with this id.

        Raises:
            UnknownRunError: no such run (never started, or evicted); a ``KeyError``.
        """
        try:
            return self._runs[run_id]
        except KeyError:
            raise UnknownRunError(run_id) from None

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def __len__(self) -> int:
        return len(self._runs)

    def runs(self) -> list[RunHandle]:
        """The runs kept, oldest first."""
        return list(self._runs.values())

    @property
    def running(self) -> int:
        """How many of the runs kept are still running."""
        return sum(1 for h in self._runs.values() if not h.done)

    def _finished(self, handle: RunHandle) -> None:
        self._evict()

    def _evict(self, room: int = 0) -> None:
        """Evict the oldest finished runs until ``room`` more fit under ``max_runs`` (or none
        finished is left)."""
        excess = len(self._runs) + room - self.max_runs
        if excess <= 0:
            return
        for rid in [rid for rid, h in self._runs.items() if h.done][:excess]:
            del self._runs[rid]
