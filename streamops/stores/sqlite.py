"""``SQLiteStore``: runs in one SQLite file (stdlib ``sqlite3``, WAL mode): durable across
restarts, readable live by other processes on the same machine."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import UnknownRunError
from ._base import LeaseLostError, RunInfo, RunState, RunStore, _check_gap, _Page, _sleep_or

if TYPE_CHECKING:
    import anyio

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    error TEXT,
    events INTEGER NOT NULL DEFAULT 0,
    first INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, pos)
) WITHOUT ROWID;
"""
_COLS = "run_id, agent, status, started, ended, events, first, error"


def _one(cursor: sqlite3.Cursor) -> Any:
    """The first row or ``None``, the cursor exhausted: a half-read cursor would keep its read
    transaction open, and with it a stale snapshot of the file."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _info(row: tuple[Any, ...]) -> RunInfo:
    return RunInfo(
        run_id=row[0],
        agent=row[1],
        status=row[2],
        started=row[3],
        ended=row[4],
        events=row[5],
        first=row[6],
        error=row[7],
    )


class SQLiteStore(RunStore):
    """Runs in an SQLite database file: the embedded, durable store.

    Args:
        path: the database file (created with its tables if missing). ``max_events``, ``ttl``,
            ``lease``: as :class:`~streamops.stores.RunStore`.
        poll_interval: seconds between looks at the file while following a run that another
            process writes (a writer in this process wakes its followers at once).

    The file is in WAL mode with ``synchronous=NORMAL``: readers never block the writer, and a
    committed append survives a process crash (a power loss may lose the last transactions,
    SQLite's documented trade-off for WAL+NORMAL). Every database call runs in a worker thread
    (``anyio.to_thread``), one at a time per store, so the event loop never waits on the disk;
    one append of a batch is one transaction. Leases use the machine's wall clock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_events: int | None = None,
        ttl: float | None = None,
        lease: float = 10.0,
        poll_interval: float = 0.02,
    ) -> None:
        super().__init__(max_events=max_events, ttl=ttl, lease=lease)
        self.path = os.fspath(path)
        self.poll_interval = poll_interval
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._waiters: dict[str, anyio.Event] = {}
        self._new_run: anyio.Event | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        # Schema and WAL mode are set once per file: both take a write lock, which a live
        # writer in another process would otherwise wait for (SQLite's busy wait sleeps in
        # steps of up to a second).
        if _one(conn.execute("PRAGMA journal_mode"))[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if _one(conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'")) is None:
            conn.executescript(_SCHEMA)
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        import anyio

        def call() -> T:
            with self._lock:
                if self._conn is None:
                    self._conn = self._connect()
                return fn(self._conn)

        return await anyio.to_thread.run_sync(call)

    async def aclose(self) -> None:
        """Close the database connection (a later call opens it again). Idempotent."""

        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        import anyio

        await anyio.to_thread.run_sync(close)

    def _expire(self, conn: sqlite3.Connection, now: float) -> None:
        if self.ttl is None or not self._expiry_due(now):
            return
        limit = now - self.ttl
        gone = [r for (r,) in conn.execute("SELECT run_id FROM runs WHERE ended IS NOT NULL AND ended < ?", (limit,))]
        if gone:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for rid in gone:
                    conn.execute("DELETE FROM events WHERE run_id = ?", (rid,))
                    conn.execute("DELETE FROM runs WHERE run_id = ?", (rid,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _wake(self, run_id: str) -> None:
        w = self._waiters.pop(run_id, None)
        if w is not None:
            w.set()

    async def _create(self, run_id: str, agent: str, now: float) -> RunInfo:
        def create(conn: sqlite3.Connection) -> None:
            self._expire(conn, now)
            try:
                conn.execute(
                    "INSERT INTO runs (run_id, agent, status, started, lease_until) VALUES (?, ?, 'running', ?, ?)",
                    (run_id, agent, now, now + self.lease),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"a run with id {run_id!r} is already stored") from None

        await self._run(create)
        if self._new_run is not None:
            self._new_run.set()
            self._new_run = None
        return RunInfo(run_id=run_id, agent=agent, started=now)

    async def _append(self, run_id: str, first: int, data: list[bytes]) -> int:
        max_events = self.max_events
        lease = self.lease

        def append(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = _one(conn.execute("SELECT status, events, first FROM runs WHERE run_id = ?", (run_id,)))
                if row is None:
                    raise UnknownRunError(run_id)
                status, stored, kept = row
                if status != "running":
                    raise LeaseLostError(run_id, status)
                _check_gap(run_id, first, stored)
                skip = stored - first
                events = stored
                if skip < len(data):
                    conn.executemany(
                        "INSERT OR IGNORE INTO events (run_id, pos, data) VALUES (?, ?, ?)",
                        [(run_id, first + i, data[i]) for i in range(skip, len(data))],
                    )
                    events = first + len(data)
                    if max_events is not None and events - kept > max_events:
                        kept = events - max_events
                        conn.execute("DELETE FROM events WHERE run_id = ? AND pos < ?", (run_id, kept))
                conn.execute(
                    "UPDATE runs SET events = ?, first = ?, lease_until = ? WHERE run_id = ?",
                    (events, kept, time.time() + lease, run_id),
                )
                conn.execute("COMMIT")
                return int(events)
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        n = await self._run(append)
        self._wake(run_id)
        return n

    async def _end(self, run_id: str, status: RunState, error: str | None, now: float) -> bool:
        def end(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE runs SET status = ?, error = ?, ended = ? WHERE run_id = ? AND status = 'running'",
                (status, error, now, run_id),
            )
            if cur.rowcount:
                return True
            if _one(conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,))) is None:
                raise UnknownRunError(run_id)
            return False

        done = await self._run(end)
        self._wake(run_id)
        return done

    async def _info(self, run_id: str) -> RunInfo | None:
        def get(conn: sqlite3.Connection) -> RunInfo | None:
            self._expire(conn, time.time())
            row = _one(conn.execute(f"SELECT {_COLS} FROM runs WHERE run_id = ?", (run_id,)))
            return None if row is None else _info(row)

        return await self._run(get)

    async def _list(self) -> list[RunInfo]:
        def get(conn: sqlite3.Connection) -> list[RunInfo]:
            self._expire(conn, time.time())
            return [_info(row) for row in conn.execute(f"SELECT {_COLS} FROM runs ORDER BY seq")]

        return await self._run(get)

    async def _read(self, run_id: str, start: int, limit: int) -> _Page | None:
        def read(conn: sqlite3.Connection) -> _Page | None:
            conn.execute("BEGIN")  # one snapshot for the run and its events
            try:
                row = _one(conn.execute(f"SELECT {_COLS} FROM runs WHERE run_id = ?", (run_id,)))
                if row is None:
                    return None
                items = conn.execute(
                    "SELECT pos, data FROM events WHERE run_id = ? AND pos >= ? ORDER BY pos LIMIT ?",
                    (run_id, start, min(limit, 1 << 62)),
                ).fetchall()
                return _Page(info=_info(row), start=start, items=[(p, bytes(d)) for p, d in items])
            finally:
                conn.execute("COMMIT")

        return await self._run(read)

    async def _wait(self, run_id: str, pos: int, wait_s: float) -> None:
        import anyio

        w = self._waiters.get(run_id)
        if w is None:
            w = self._waiters[run_id] = anyio.Event()
        await _sleep_or(w, min(wait_s, self.poll_interval))

    async def _renew(self, run_id: str) -> None:
        def renew(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE runs SET lease_until = ? WHERE run_id = ?", (time.time() + self.lease, run_id))

        await self._run(renew)

    async def _lease_alive(self, info: RunInfo) -> bool:
        def get(conn: sqlite3.Connection) -> bool:
            row = _one(conn.execute("SELECT lease_until FROM runs WHERE run_id = ?", (info.run_id,)))
            return row is None or time.time() < row[0]

        return await self._run(get)

    async def _wait_new_run(self, cursor: Any, wait_s: float) -> tuple[Any, list[RunInfo]]:
        import anyio

        def top(conn: sqlite3.Connection) -> int:
            return int(_one(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs"))[0])

        def newer(conn: sqlite3.Connection) -> tuple[int, list[RunInfo]]:
            rows = conn.execute(f"SELECT seq, {_COLS} FROM runs WHERE seq > ? ORDER BY seq", (cursor,)).fetchall()
            return (rows[-1][0] if rows else cursor), [_info(r[1:]) for r in rows]

        if cursor is None:
            return await self._run(top), []
        deadline = anyio.current_time() + wait_s
        while True:
            nxt, infos = await self._run(newer)
            left = deadline - anyio.current_time()
            if infos or left <= 0:
                return nxt, infos
            if self._new_run is None:
                self._new_run = anyio.Event()
            await _sleep_or(self._new_run, min(left, self.poll_interval * 5))
