"""``RedisStore``: runs in Redis Streams (redis-py asyncio; Valkey works too): one stream per
run, shared by every process and machine that opens the same Redis."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import RedisNeedsAsyncioError, UnknownRunError
from ._base import LeaseLostError, RunInfo, RunState, RunStore, _check_gap, _Page

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisStore"]

T = TypeVar("T")


async def _retry_transient(fn: Callable[[], Awaitable[T]], retry_for: float) -> T:
    """Await ``fn()``, calling it again after a Redis ``ConnectionError``/``TimeoutError`` with
    exponential backoff (0.05 s doubling, capped at 1 s) for up to ``retry_for`` seconds; then
    the last error propagates. Shared by ``RedisStore`` and the serve floor's Redis queue."""
    import anyio
    import redis.exceptions

    deadline = time.monotonic() + retry_for
    delay = 0.05
    while True:
        try:
            return await fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            if time.monotonic() + delay > deadline:
                raise
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)

# KEYS: run hash, event stream, lease key. ARGV: first position, lease ms, max events (0: all),
# then the events' JSON. Atomic: a retried batch stores nothing twice (explicit ids 0-{pos+1}).
_APPEND = """
local st = redis.call('HMGET', KEYS[1], 'status', 'events', 'first')
if not st[1] then return {-1} end
if st[1] ~= 'running' then return {-2, st[1]} end
local stored, first, maxlen = tonumber(st[2]), tonumber(ARGV[1]), tonumber(ARGV[3])
if first > stored then return {-3, stored} end
local n = #ARGV - 3
for i = 1, n do
  local pos = first + i - 1
  if pos >= stored then redis.call('XADD', KEYS[2], '0-' .. (pos + 1), 'e', ARGV[i + 3]) end
end
local events = math.max(stored, first + n)
local kept = tonumber(st[3])
if maxlen > 0 and events - kept > maxlen then
  kept = events - maxlen
  redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. (kept + 1))
end
redis.call('HSET', KEYS[1], 'events', events, 'first', kept)
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return {events}
"""

# KEYS: run hash, lease key, runs index, starts stream. ARGV: run id, agent, started, lease ms.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'agent', ARGV[2], 'started', ARGV[3], 'events', 0, 'first', 0)
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'run', ARGV[1])
return 1
"""

# KEYS: run hash, event stream, lease key. ARGV: status, error, ended, ttl ms (0: none).
# The end marker (an entry with no 'e' field) wakes followers blocked in XREAD.
_END = """
local st = redis.call('HMGET', KEYS[1], 'status', 'events')
if not st[1] then return -1 end
if st[1] ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'error', ARGV[2], 'ended', ARGV[3])
redis.call('XADD', KEYS[2], '0-' .. (tonumber(st[2]) + 1), 'end', '1')
redis.call('DEL', KEYS[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
"""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _info(run_id: str, h: list[Any]) -> RunInfo | None:
    """``h``: HMGET of agent, status, started, ended, error, events, first."""
    if h[1] is None:
        return None
    return RunInfo(
        run_id=run_id,
        agent=_s(h[0] or b""),
        status=_s(h[1]),  # type: ignore[arg-type]
        started=float(h[2]),
        ended=float(h[3]) if h[3] else None,
        error=_s(h[4]) if h[4] else None,
        events=int(h[5] or 0),
        first=int(h[6] or 0),
    )


_FIELDS = ("agent", "status", "started", "ended", "error", "events", "first")


class RedisStore(RunStore):
    """Runs in Redis Streams: the distributed store.

    Args:
        url: ``redis://HOST:PORT/DB`` (or ``rediss://``, ``unix://``).
        prefix: prepended to every key this store writes (default ``"streamops:"``).
        max_events, ttl, lease: as :class:`~streamops.stores.RunStore`. ``max_events`` trims
            each run's stream exactly (``XTRIM MINID``), ``ttl`` is ``PEXPIRE`` on the run's keys
            once it ended, the lease is a key with ``PX`` renewed by every append and heartbeat
            (Redis's clock decides when it lapsed).
        retry_for: seconds a command is retried (backoff 50 ms doubling to 1 s) while Redis is
            unreachable (restarting) before the error propagates.

    Keys per run ``R``: ``{prefix}run:R`` (hash: agent, status, started, ended, error, events,
    first), ``{prefix}ev:R`` (stream; the event at position ``n`` is entry ``0-{n+1}``, field
    ``e`` its JSON; an entry without ``e`` marks the end), ``{prefix}lease:R``; and for all runs
    ``{prefix}runs`` (sorted set by start time) and ``{prefix}starts`` (stream of run ids, for
    :meth:`watch`). Appends are one Lua script per batch: atomic and idempotent.

    asyncio only: on trio every call raises :class:`RedisNeedsAsyncioError`.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "streamops:",
        max_events: int | None = None,
        ttl: float | None = None,
        lease: float = 10.0,
        retry_for: float = 30.0,
    ) -> None:
        super().__init__(max_events=max_events, ttl=ttl, lease=lease)
        self.url = url
        self.prefix = prefix
        self.retry_for = retry_for
        self._redis: redis.asyncio.Redis | None = None
        self._create_script: Any = None
        self._append_script: Any = None
        self._end_script: Any = None

    def _client(self) -> Any:  # redis.asyncio.Redis: its stubs type replies loosely
        import sniffio

        lib = sniffio.current_async_library()
        if lib != "asyncio":
            raise RedisNeedsAsyncioError(lib)
        if self._redis is None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(self.url)
            self._create_script = self._redis.register_script(_CREATE)
            self._append_script = self._redis.register_script(_APPEND)
            self._end_script = self._redis.register_script(_END)
        return self._redis

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        if self._redis is not None:
            r, self._redis = self._redis, None
            await r.aclose()

    def _keys(self, run_id: str) -> list[str]:
        p = self.prefix
        return [f"{p}run:{run_id}", f"{p}ev:{run_id}", f"{p}lease:{run_id}"]

    async def _retry(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await _retry_transient(fn, self.retry_for)

    async def _create(self, run_id: str, agent: str, now: float) -> RunInfo:
        self._client()
        run, _, lease = self._keys(run_id)
        keys = [run, lease, f"{self.prefix}runs", f"{self.prefix}starts"]
        args = [run_id, agent, repr(now), int(self.lease * 1000)]
        if not await self._retry(lambda: self._create_script(keys=keys, args=args)):
            raise ValueError(f"a run with id {run_id!r} is already stored")
        return RunInfo(run_id=run_id, agent=agent, started=now)

    async def _append(self, run_id: str, first: int, data: list[bytes]) -> int:
        self._client()
        keys = self._keys(run_id)
        args: list[Any] = [first, int(self.lease * 1000), self.max_events or 0, *data]
        out = await self._retry(lambda: self._append_script(keys=keys, args=args))
        code = int(out[0])
        if code == -1:
            raise UnknownRunError(run_id)
        if code == -2:
            raise LeaseLostError(run_id, _s(out[1]))
        if code == -3:
            _check_gap(run_id, first, int(out[1]))
        return code

    async def _end(self, run_id: str, status: RunState, error: str | None, now: float) -> bool:
        self._client()
        ttl = 0 if self.ttl is None else max(1, round(self.ttl * 1000))
        args = [status, error or "", repr(now), ttl]
        out = int(await self._retry(lambda: self._end_script(keys=self._keys(run_id), args=args)))
        if out == -1:
            raise UnknownRunError(run_id)
        return out == 1

    async def _info(self, run_id: str) -> RunInfo | None:
        r = self._client()
        h = await self._retry(lambda: r.hmget(self._keys(run_id)[0], _FIELDS))
        return _info(run_id, h)

    async def _list(self) -> list[RunInfo]:
        r = self._client()
        index = f"{self.prefix}runs"
        ids = [_s(x) for x in await self._retry(lambda: r.zrange(index, 0, -1))]

        async def get() -> list[Any]:
            async with r.pipeline(transaction=False) as p:
                for rid in ids:
                    p.hmget(self._keys(rid)[0], _FIELDS)
                return list(await p.execute())

        rows = await self._retry(get)
        out, gone = [], []
        for rid, h in zip(ids, rows, strict=True):
            info = _info(rid, h)
            if info is None:
                gone.append(rid)  # expired by its ttl
            else:
                out.append(info)
        if gone:
            await self._retry(lambda: r.zrem(index, *gone))
        return out

    async def _read(self, run_id: str, start: int, limit: int) -> _Page | None:
        r = self._client()
        run, ev, _ = self._keys(run_id)

        async def read() -> list[Any]:
            async with r.pipeline(transaction=True) as p:
                p.hmget(run, _FIELDS)
                p.xrange(ev, min=f"0-{start + 1}", max="+", count=min(limit, 1 << 31))
                return list(await p.execute())

        h, entries = await self._retry(read)
        info = _info(run_id, h)
        if info is None:
            return None
        items = []
        for eid, fields in entries:
            data = fields.get(b"e")
            if data is not None:
                items.append((int(_s(eid).partition("-")[2]) - 1, data))
        return _Page(info=info, start=start, items=items)

    async def _wait(self, run_id: str, pos: int, wait_s: float) -> None:
        r = self._client()
        ev = self._keys(run_id)[1]
        await self._retry(lambda: r.xread({ev: f"0-{pos}"}, count=1, block=max(1, int(wait_s * 1000))))

    async def _renew(self, run_id: str) -> None:
        r = self._client()
        lease = self._keys(run_id)[2]
        await self._retry(lambda: r.set(lease, "1", px=int(self.lease * 1000), xx=False))

    async def _lease_alive(self, info: RunInfo) -> bool:
        r = self._client()
        return bool(await self._retry(lambda: r.exists(self._keys(info.run_id)[2])))

    async def _wait_new_run(self, cursor: Any, wait_s: float) -> tuple[Any, list[RunInfo]]:
        r = self._client()
        starts = f"{self.prefix}starts"
        if cursor is None:
            last = await self._retry(lambda: r.xrevrange(starts, count=1))
            return (_s(last[0][0]) if last else "0-0"), []
        got = await self._retry(lambda: r.xread({starts: cursor}, count=100, block=max(1, int(wait_s * 1000))))
        if not got:
            return cursor, []
        infos = []
        for eid, fields in got[0][1]:
            cursor = _s(eid)
            info = await self._info(_s(fields[b"run"]))
            if info is not None:
                infos.append(info)
        return cursor, infos
