"""The :class:`RunStore` interface and what every backend shares (ids, resume rules, follow,
publish, leases). Backends implement a handful of private primitives; the public methods and
their errors are defined once here, so the three backends behave alike (one conformance suite).

Layering: stores sit on the serve floor (events <- core <- operators <- adapters/agent <- sinks
<- stores, serve, cli). They import the run-log errors of :mod:`streamops.sinks.resume` (the
SSE sink already maps them to 409/404) and never import serve or cli.
"""

from __future__ import annotations

import math
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import quote

from .._stream import Stream
from ..errors import GapError, LeaseLostError, ResumeUnavailableError, UnknownRunError
from ..events import BaseEvent, ErrorEvent, RunEnd, event_adapter, from_json, to_json
from ..sinks.resume import parse_event_id

if TYPE_CHECKING:
    import anyio

__all__ = [
    "Entry",
    "GapError",
    "LeaseLostError",
    "RunInfo",
    "RunState",
    "RunStore",
    "entry_id",
]

RunState: TypeAlias = Literal["running", "completed", "failed", "cancelled"]
"""A stored run's status: ``"running"`` until :meth:`RunStore.end` (or a lost lease) ends it."""

Entry: TypeAlias = tuple[str, BaseEvent]
"""``(id, event)``: the id is the SSE ``id:`` to send with the event and to resume after."""

PRODUCER_LOST = "producer lost"
"""The error of a run whose producer's lease expired (it died, or lost its store)."""

# Printable ASCII except "%" (the escape) and " ": the id fits an SSE id: line and an HTTP header.
_ID_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def entry_id(run_id: str, pos: int) -> str:
    """The id of the event at position ``pos`` (0-based) of the stored run ``run_id``:
    ``{run_id}:{pos}``, the run id percent-encoded (UTF-8) as in
    :func:`streamops.sinks.resume.event_id`, so :func:`~streamops.sinks.resume.parse_event_id`
    reads it back as ``(run_id, pos)``. Positions are the store's, not the events' ``seq``: an
    id is never given twice in a run, and any process can turn it back into a position."""
    return f"{quote(run_id, safe=_ID_SAFE)}:{pos}"


@dataclass(slots=True, kw_only=True, frozen=True)
class RunInfo:
    """What a store knows of one run.

    Attributes:
        run_id: the store's key of the run (the events may carry other run ids: a merged stream).
        agent: the agent name given when the run was started (``""`` when none).
        status: ``"running"``, or how it ended.
        started: when it started, seconds since the epoch.
        ended: when it ended, seconds since the epoch; ``None`` while running.
        events: events appended so far (evicted ones included).
        first: position of the oldest event still kept (``> 0`` once retention evicted some).
        error: why it failed (``"producer lost"`` after a lost lease), else ``None``.
    """

    run_id: str
    agent: str = ""
    status: RunState = "running"
    started: float = 0.0
    ended: float | None = None
    events: int = 0
    first: int = 0
    error: str | None = None

    @property
    def last_id(self) -> str | None:
        """The id of the last event appended (``None`` before the first)."""
        return entry_id(self.run_id, self.events - 1) if self.events else None


@dataclass(slots=True)
class _Page:
    """What one read returned: events from ``start`` on (``pos``, JSON bytes), and the run."""

    info: RunInfo
    start: int
    items: list[tuple[int, bytes]]


def _dump(event: BaseEvent) -> bytes:
    return to_json(event)


_codec_ready = False


async def _warm_codec() -> None:
    """Build the events' JSON codec (pydantic's ``TypeAdapter`` of the event union, built on
    first use) in a worker thread, once per process, before a store first turns an event into
    JSON or back: built on the event loop it blocked it for 0.15-0.35 s on an idle 2-core
    machine, seconds under load (the "first append stalls ~2 s" of a new publisher process)."""
    global _codec_ready
    if not _codec_ready:
        import anyio.to_thread

        await anyio.to_thread.run_sync(event_adapter)
        _codec_ready = True


def _load(data: bytes | str) -> BaseEvent:
    return from_json(data)


class RunStore(ABC):
    """Where runs' events outlive the stream that produced them: append, resume, follow, list.

    One interface, three backends: :class:`~streamops.stores.MemoryStore` (one process),
    :class:`~streamops.stores.SQLiteStore` (one machine, durable),
    :class:`~streamops.stores.RedisStore` (many machines). All pass one conformance suite.

    Ids: the event at position ``n`` (0-based) of run ``r`` has the id ``{r}:{n}``
    (:func:`entry_id`); it is the SSE ``id:``, and :meth:`read`/:meth:`follow` resume after it,
    in any process that opens the same store.

    Args (common to every backend):
        max_events: events kept per run, at most; the oldest are evicted (a resume from before
            them raises :class:`~streamops.sinks.resume.ResumeUnavailableError`). ``None``: all.
        ttl: seconds a finished run is kept after it ended; ``None``: forever.
        lease: seconds a publisher's lease lasts without a heartbeat (it renews every third of
            it); when it lapses, the first follower to notice ends the run failed
            (``"producer lost"``), so no follower waits forever for a dead producer.

    Use it as an async context manager (``async with SQLiteStore(path) as store:``), or call
    :meth:`aclose` when done.
    """

    def __init__(self, *, max_events: int | None = None, ttl: float | None = None, lease: float = 10.0) -> None:
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events must be >= 1 or None, got {max_events}")
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds or None, got {ttl}")
        if not (lease > 0 and math.isfinite(lease)):
            raise ValueError(f"lease must be a finite number of seconds > 0, got {lease}")
        self.max_events = max_events
        self.ttl = ttl
        self.lease = lease
        self._next_expiry = 0.0

    def _expiry_due(self, now: float) -> bool:
        """Whether to look for runs past their ``ttl`` now: at most every ``ttl / 10`` seconds
        (and 1 s), so reads and appends do not scan every run each time."""
        if self.ttl is None or now < self._next_expiry:
            return False
        self._next_expiry = now + min(self.ttl / 10, 1.0)
        return True

    # ------------------------------------------------------------------------ primitives
    @abstractmethod
    async def _create(self, run_id: str, agent: str, now: float) -> RunInfo: ...

    @abstractmethod
    async def _append(self, run_id: str, first: int, data: list[bytes]) -> int: ...

    @abstractmethod
    async def _end(self, run_id: str, status: RunState, error: str | None, now: float) -> bool: ...

    @abstractmethod
    async def _info(self, run_id: str) -> RunInfo | None: ...

    @abstractmethod
    async def _list(self) -> list[RunInfo]: ...

    @abstractmethod
    async def _read(self, run_id: str, start: int, limit: int) -> _Page | None: ...

    @abstractmethod
    async def _wait(self, run_id: str, pos: int, wait_s: float) -> None:
        """Return when the run may have events at ``pos`` or beyond, or has ended, or after
        ``wait_s`` seconds (whichever is first). Spurious returns are fine."""

    @abstractmethod
    async def _renew(self, run_id: str) -> None: ...

    @abstractmethod
    async def _lease_alive(self, info: RunInfo) -> bool: ...

    @abstractmethod
    async def _wait_new_run(self, cursor: Any, wait_s: float) -> tuple[Any, list[RunInfo]]:
        """Runs started after ``cursor`` (``None``: from now on), and the next cursor."""

    async def aclose(self) -> None:
        """Release the store's connections. Idempotent."""
        return None

    async def __aenter__(self) -> RunStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------ writing
    async def start(self, run_id: str | None = None, *, agent: str = "") -> RunInfo:
        """Create a run (status ``"running"``, its lease taken now) and return it.

        ``run_id``: the key; a random hex id when ``None``.

        Raises:
            ValueError: a run with this id is already stored.
        """
        rid = uuid.uuid4().hex if run_id is None else run_id
        if not rid:
            raise ValueError("run_id must not be empty")
        await _warm_codec()
        return await self._create(rid, agent, time.time())

    async def append(self, run_id: str, events: Sequence[BaseEvent], *, first: int) -> list[str]:
        """Store ``events`` at positions ``first``, ``first + 1``...; return their ids.

        Idempotent: positions already stored are left as they are, so a publisher that retries
        a batch after a lost reply writes nothing twice. Appending also renews the lease.

        Raises:
            UnknownRunError: no such run (never started, or expired).
            LeaseLostError: the run is no longer running.
            GapError: ``first`` leaves a gap after the last stored position (a ``ValueError``).
        """
        if not events:
            return []
        if not _codec_ready:
            await _warm_codec()
        data = [_dump(e) for e in events]
        await self._append(run_id, first, data)
        head = entry_id(run_id, 0)[:-1]  # "{run_id}:" percent-encoded once per batch
        return [f"{head}{first + i}" for i in range(len(events))]

    async def end(self, run_id: str, status: RunState = "completed", *, error: str | None = None) -> bool:
        """Mark the run ended (followers stop after its last event) and start its TTL.

        Returns False when it had already ended (its first end stands).

        Raises:
            UnknownRunError: no such run.
            ValueError: ``status`` is ``"running"``.
        """
        if status == "running":
            raise ValueError("end() needs a final status, not 'running'")
        return await self._end(run_id, status, error, time.time())

    async def publish(
        self,
        events: AsyncIterable[BaseEvent],
        run_id: str | None = None,
        *,
        agent: str = "",
        max_batch: int = 512,
        buffer: int = 4096,
        keep: int = 4096,
    ) -> RunInfo:
        """Run ``events`` into a new stored run and end it; return the ended run.

        Batching: one task pulls the stream into a buffer of ``buffer`` events (backpressure
        beyond it), another appends whatever has arrived, up to ``max_batch`` events per append,
        as soon as the previous append returned: one event waits at most one append, and a
        fast stream is written in large batches. A third renews the lease every ``lease / 3``.

        The run ends ``"completed"``; ``"failed"`` (error: the exception's repr) when the
        stream raises (an ``ErrorEvent`` is appended first, and the exception propagates);
        ``"cancelled"`` when cancelled. ``keep``: events held after they were stored, to store
        them again if the store loses them (see :func:`streamops.stores.publish`, the operator).

        Raises:
            ValueError: ``run_id`` is taken. LeaseLostError: the run was ended under it.
        """
        from .publish import publish

        started: list[RunInfo] = []
        stream = Stream.from_async_iterable(events) | publish(
            self, run_id, agent=agent, max_batch=max_batch, buffer=buffer, keep=keep, on_start=started.append
        )
        async with stream.iterate() as it:
            async for _ in it:
                pass
        return await self.info(started[0].run_id)

    # ------------------------------------------------------------------------ reading
    async def info(self, run_id: str) -> RunInfo:
        """The run.

        Raises:
            UnknownRunError: no such run (never started, or expired by ``ttl``).
        """
        info = await self._info(run_id)
        if info is None:
            raise UnknownRunError(run_id)
        return info

    async def runs(self) -> list[RunInfo]:
        """Every run kept, oldest first (runs past their ``ttl`` are dropped first)."""
        return sorted(await self._list(), key=lambda r: (r.started, r.run_id))

    def _position(self, info: RunInfo, after: str | None) -> int:
        """The position of the first event after ``after``, checked against the run."""
        if not after:
            if info.first:
                raise ResumeUnavailableError(
                    f"the first {info.first} events of run {info.run_id!r} were evicted (max_events "
                    f"{self.max_events}): it cannot be replayed from the start",
                    after,
                )
            return 0
        try:
            run, pos = parse_event_id(after)
        except ValueError:
            raise ResumeUnavailableError(f"Last-Event-ID {after!r} is not a streamops event id", after) from None
        if pos < 0 or after != entry_id(run, pos):
            raise ResumeUnavailableError(f"Last-Event-ID {after!r} is not an id of this store", after)
        if run != info.run_id:
            raise ResumeUnavailableError(f"Last-Event-ID {after!r} belongs to another run", after)
        if pos >= info.events:
            raise ResumeUnavailableError(f"Last-Event-ID {after!r} was never sent in run {run!r}", after)
        if pos + 1 < info.first:
            raise ResumeUnavailableError(
                f"Last-Event-ID {after!r} is no longer stored (evicted: max_events {self.max_events})", after
            )
        return pos + 1

    async def read(self, run_id: str, after: str | None = None, *, limit: int | None = None) -> list[Entry]:
        """The stored events after ``after`` (from the start when ``None``/``""``), with ids.

        Raises:
            UnknownRunError: no such run.
            ResumeUnavailableError: ``after`` is malformed, of another run, never sent, or evicted
                (or, with none, the run's start was evicted): the SSE sink's 409.
        """
        info = await self.info(run_id)
        pos = self._position(info, after)
        await _warm_codec()
        page = await self._read(run_id, pos, limit if limit is not None else 1 << 62)
        if page is None:
            raise UnknownRunError(run_id)
        return self._entries(page, pos, after)

    def _entries(self, page: _Page, pos: int, after: str | None) -> list[Entry]:
        if page.items and page.items[0][0] != pos:
            raise ResumeUnavailableError(
                f"events after {after!r} of run {page.info.run_id!r} were evicted while reading", after
            )
        rid = page.info.run_id
        return [(entry_id(rid, p), _load(d)) for p, d in page.items]

    def entries(self, run_id: str, after: str | None = None) -> Stream[Entry]:
        """A stream of ``(id, event)``: the stored events after ``after``, then the live tail
        until the run ends.

        Emits each stored event once, in order; completes after the last event of an ended run
        (a run whose producer's lease lapsed is ended failed first: it gets an ``ErrorEvent``
        and a failed ``RunEnd``); fails with ``UnknownRunError``/``ResumeUnavailableError`` as
        :meth:`read` (also later, if retention evicts events this follower had not read yet);
        cancelling it stops the reads. Buffering: one page of at most 1,000 events.

        ``--a-b-|`` stored with ids ``r:0 r:1``: ``entries("r", after="r:0")`` gives ``(r:1, b)``.
        """
        return Stream.defer(_follow, self, run_id, after, True)

    def follow(self, run_id: str, after: str | None = None) -> Stream[BaseEvent]:
        """The events of :meth:`entries`, without their ids."""
        return Stream.defer(_follow, self, run_id, after, False)

    def watch(self, *, existing: bool = False) -> Stream[RunInfo]:
        """A stream of runs as they start (with ``existing``, first the running ones), never
        completing by itself: close it to stop. Emits each run once, in start order per
        backend cursor; fails when the store does; cancelling stops the wait."""
        return Stream.defer(_watch, self, existing)

    async def _lost(self, info: RunInfo) -> None:
        """The run's producer lease lapsed: append ErrorEvent + failed RunEnd, end it failed."""
        events = [
            ErrorEvent(
                run_id=info.run_id, agent=info.agent, seq=info.events, error_type="ProducerLost", message=PRODUCER_LOST
            ),
            RunEnd(run_id=info.run_id, agent=info.agent, seq=info.events + 1, status="failed"),
        ]
        try:
            await self._append(info.run_id, info.events, [_dump(e) for e in events])
        except (LeaseLostError, ValueError):
            return  # someone else ended it, or the producer appended meanwhile: look again
        await self._end(info.run_id, "failed", PRODUCER_LOST, time.time())


async def _follow(store: RunStore, run_id: str, after: str | None, ids: bool) -> AsyncGenerator[Any, None]:
    """The stream of :meth:`RunStore.entries` (``ids``: ``(id, event)`` pairs) and
    :meth:`RunStore.follow` (events): a fresh follow for each iteration."""
    info = await store.info(run_id)
    pos = store._position(info, after)
    await _warm_codec()
    wait = min(store.lease / 3, 1.0)
    waited = False  # the last wait brought nothing: time to look at the lease
    while True:
        page = await store._read(run_id, pos, 1000)
        if page is None:
            raise UnknownRunError(run_id)
        entries = store._entries(page, pos, after)
        if entries:
            for eid, event in entries:
                yield (eid, event) if ids else event
            pos += len(entries)
            after = entries[-1][0]
            waited = False
            continue
        info = page.info
        if pos < info.events:  # nothing from pos on, yet events there: evicted meanwhile
            raise ResumeUnavailableError(
                f"this follower fell behind run {run_id!r}'s retention (max_events {store.max_events}); "
                "resume with the last id it received",
                after,
            )
        if info.status != "running":
            return
        if waited and not await store._lease_alive(info):
            await store._lost(info)
            continue
        await store._wait(run_id, pos, wait)
        waited = True


async def _watch(store: RunStore, existing: bool) -> AsyncGenerator[RunInfo, None]:
    """The stream of :meth:`RunStore.watch`: a fresh cursor for each iteration."""
    # Each backend's cursor gives a run once; only the runs listed as existing may come
    # again (started between taking the cursor and listing them): remember just those,
    # and forget each when the cursor brings it, so a long watch remembers nothing more.
    listed: set[str] = set()
    cursor, _ = await store._wait_new_run(None, 0)
    if existing:
        for info in await store.runs():
            if info.status == "running":
                listed.add(info.run_id)
                yield info
    while True:
        cursor, infos = await store._wait_new_run(cursor, 1.0)
        for info in infos:
            if info.run_id in listed:
                listed.discard(info.run_id)
            else:
                yield info


def _check_gap(run_id: str, first: int, stored: int) -> None:
    if first > stored:
        raise GapError(run_id, first, stored)


async def _sleep_or(event: anyio.Event, wait_s: float) -> None:
    import anyio

    with anyio.move_on_after(wait_s):
        await event.wait()
