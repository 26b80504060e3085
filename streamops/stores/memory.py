"""``MemoryStore``: runs kept in this process's memory (the behaviour of ``RunLog``/``RunRegistry``
behind the :class:`~streamops.stores.RunStore` interface). Gone when the process exits."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..errors import UnknownRunError
from ._base import LeaseLostError, RunInfo, RunState, RunStore, _check_gap, _Page, _sleep_or

if TYPE_CHECKING:
    import anyio

__all__ = ["MemoryStore"]


class _Run:
    __slots__ = ("data", "info", "lease_until", "number", "waiter")

    def __init__(self, info: RunInfo, lease_until: float, number: int) -> None:
        self.info = info
        self.number = number  # 1 for the store's first run, 2 for the next...: watch()'s cursor
        self.data: deque[bytes] = deque()
        self.lease_until = lease_until
        self.waiter: anyio.Event | None = None

    def wake(self) -> None:
        if self.waiter is not None:
            self.waiter.set()
            self.waiter = None


class MemoryStore(RunStore):
    """Runs in this process's memory: the default store, nothing to set up, nothing durable.

    Args: ``max_events``, ``ttl``, ``lease`` as :class:`~streamops.stores.RunStore`. Events are
    kept as their JSON bytes (what the other backends store), so every backend yields equal,
    independent copies. Use it from one event loop's thread.
    """

    def __init__(self, *, max_events: int | None = None, ttl: float | None = None, lease: float = 10.0) -> None:
        super().__init__(max_events=max_events, ttl=ttl, lease=lease)
        self._runs: dict[str, _Run] = {}  # in start order (dicts keep insertion order): watch() reads it
        self._started = 0  # runs started so far
        self._new_run: anyio.Event | None = None

    def _expire(self, now: float) -> None:
        if self.ttl is None or not self._expiry_due(now):
            return
        limit = now - self.ttl
        gone = [rid for rid, r in self._runs.items() if r.info.ended is not None and r.info.ended < limit]
        for rid in gone:
            del self._runs[rid]

    def _get(self, run_id: str) -> _Run:
        self._expire(time.time())
        run = self._runs.get(run_id)
        if run is None:
            raise UnknownRunError(run_id)
        return run

    async def _create(self, run_id: str, agent: str, now: float) -> RunInfo:
        self._expire(now)
        if run_id in self._runs:
            raise ValueError(f"a run with id {run_id!r} is already stored")
        info = RunInfo(run_id=run_id, agent=agent, started=now)
        self._started += 1
        self._runs[run_id] = _Run(info, time.monotonic() + self.lease, self._started)
        if self._new_run is not None:
            self._new_run.set()
            self._new_run = None
        return info

    async def _append(self, run_id: str, first: int, data: list[bytes]) -> int:
        run = self._get(run_id)
        info = run.info
        if info.status != "running":
            raise LeaseLostError(run_id, info.status)
        _check_gap(run_id, first, info.events)
        new = data[info.events - first :]
        run.lease_until = time.monotonic() + self.lease
        if not new:
            return info.events
        run.data.extend(new)
        events = info.events + len(new)
        first_kept = info.first
        if self.max_events is not None:
            while len(run.data) > self.max_events:
                run.data.popleft()
                first_kept += 1
        run.info = replace(info, events=events, first=first_kept)
        run.wake()
        return events

    async def _end(self, run_id: str, status: RunState, error: str | None, now: float) -> bool:
        run = self._get(run_id)
        if run.info.status != "running":
            return False
        run.info = replace(run.info, status=status, error=error, ended=now)
        run.wake()
        return True

    async def _info(self, run_id: str) -> RunInfo | None:
        try:
            return self._get(run_id).info
        except UnknownRunError:
            return None

    async def _list(self) -> list[RunInfo]:
        self._expire(time.time())
        return [r.info for r in self._runs.values()]

    async def _read(self, run_id: str, start: int, limit: int) -> _Page | None:
        run = self._runs.get(run_id)
        if run is None:
            return None
        info = run.info
        skip = max(start - info.first, 0)
        items = [(info.first + skip + i, d) for i, d in enumerate(islice(run.data, skip, skip + limit))]
        return _Page(info=info, start=start, items=items)

    async def _wait(self, run_id: str, pos: int, wait_s: float) -> None:
        import anyio

        run = self._runs.get(run_id)
        if run is None or run.info.events > pos or run.info.status != "running":
            return
        if run.waiter is None:
            run.waiter = anyio.Event()
        await _sleep_or(run.waiter, wait_s)

    async def _renew(self, run_id: str) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            run.lease_until = time.monotonic() + self.lease

    async def _lease_alive(self, info: RunInfo) -> bool:
        run = self._runs.get(info.run_id)
        return run is None or time.monotonic() < run.lease_until

    async def _wait_new_run(self, cursor: Any, wait_s: float) -> tuple[Any, list[RunInfo]]:
        import anyio

        # The cursor is the number of the last run seen; the runs started after it are the tail
        # of ``_runs`` (kept in start order), so nothing but the kept runs is remembered.
        start = self._started if cursor is None else int(cursor)
        if start >= self._started and wait_s > 0:
            if self._new_run is None:
                self._new_run = anyio.Event()
            await _sleep_or(self._new_run, wait_s)
        new: list[RunInfo] = []
        for run in reversed(self._runs.values()):
            if run.number <= start:
                break
            new.append(run.info)
        new.reverse()
        return self._started, new
