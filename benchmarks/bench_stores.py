"""Run stores: publish throughput per store (batched ``publish()`` vs one awaited append per
event, the naive baseline of hand-written code and Vercel's resumable-stream), and
producer-process -> Redis -> consumer latency at 1,000 events/s.

Run::

    python benchmarks/bench_stores.py [--quick]

Redis: Debian's ``redis-server``, started here on a free 127.0.0.1 port in a temporary
directory (``--save "" --appendonly yes``, appendfsync everysec) and stopped by pid. Without
redis-server the Redis contenders are left out (said so in the output).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import Case, CaseResult, ContenderResult, Target, verdict  # noqa: E402

import streamops as so  # noqa: E402
from streamops.events import BaseEvent, RunEnd, RunStart, TextDelta  # noqa: E402
from streamops.stores import MemoryStore, RedisStore, RunStore, SQLiteStore  # noqa: E402
from streamops.testing import RedisServer  # noqa: E402


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A redis-server of our own (streamops.testing.RedisServer): yields its URL (``None`` when
    redis-server is missing)."""
    if not RedisServer.installed():
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp, RedisServer(tmp) as server:
        yield server.url


def make_events(run: str, n: int) -> list[BaseEvent]:
    out: list[BaseEvent] = [RunStart(run_id=run)]
    out += [TextDelta(run_id=run, seq=i + 1, delta=f"tok{i} ") for i in range(n - 2)]
    out.append(RunEnd(run_id=run, seq=n - 1))
    return out


def throughput_case(n: int, redis_url: str | None, tmp: Path) -> Case:
    events = make_events("bench", n)
    ids = itertools.count()
    case = Case(f"stores: publish {n:,} events", items=n, baseline="redis naive" if redis_url else "sqlite naive")

    def store_of(kind: str) -> RunStore:
        if kind == "memory":
            return MemoryStore()
        if kind == "sqlite":
            return SQLiteStore(tmp / "bench.db")
        assert redis_url is not None
        return RedisStore(redis_url, prefix="bench:")

    def batched(kind: str) -> Any:
        async def run() -> int:
            async with store_of(kind) as store:
                info = await store.publish(so.Stream.from_iterable(events), f"b{next(ids)}")
                return info.events

        return run

    def naive(kind: str) -> Any:
        async def run() -> int:
            async with store_of(kind) as store:
                rid = f"n{next(ids)}"
                await store.start(rid)
                for i, e in enumerate(events):
                    await store.append(rid, [e], first=i)
                await store.end(rid)
                return (await store.info(rid)).events

        return run

    if redis_url:
        case.add("redis naive", naive("redis"), note="one awaited append (one round trip) per event")
        case.add("redis batched", batched("redis"), note="publish(): one Lua XADD script per batch")
    case.add("sqlite naive", naive("sqlite"), note="one transaction per event")
    case.add("sqlite batched", batched("sqlite"), note="publish(): one transaction per batch, in a thread")
    case.add("memory batched", batched("memory"), note="publish() into MemoryStore")
    return case


PRODUCER = """
import sys, time, anyio
from streamops.events import RunEnd, RunStart, TextDelta
from streamops.stores import RedisStore
url, run, n, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
async def events():
    yield RunStart(run_id=run)
    t0 = time.monotonic()
    for i in range(n):
        await anyio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        yield TextDelta(run_id=run, seq=i + 1, delta="x")  # ts = time.time() at creation
    yield RunEnd(run_id=run, seq=n + 1)
async def main():
    async with RedisStore(url, prefix="lat:") as store:
        await store.publish(events(), run)
anyio.run(main, backend="asyncio")
"""


async def _latencies(url: str, n: int, rate: float, run: str) -> list[float]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PRODUCER, url, run, str(n), str(rate))
    lat: list[float] = []
    try:
        async with RedisStore(url, prefix="lat:") as store:
            while True:
                try:
                    await store.info(run)
                    break
                except LookupError:
                    await asyncio.sleep(0.005)
            async for e in store.follow(run):
                if isinstance(e, TextDelta):
                    lat.append(time.time() - e.ts)
    finally:
        await proc.wait()
    return lat


def run(
    quick: bool = False, *, n: int | None = None, rounds: int | None = None, latency_n: int | None = None
) -> list[CaseResult]:
    """The stores case, printed; returns its results with the targets attached."""
    n = n or (5_000 if quick else 50_000)
    rounds = rounds or (3 if quick else 5)
    latency_n = latency_n or (500 if quick else 3_000)
    out: list[CaseResult] = []
    with redis_server() as url, tempfile.TemporaryDirectory() as tmp:
        if url is None:
            print("redis-server not installed: Redis contenders left out (apt-get install redis-server)")
        result = throughput_case(n, url, Path(tmp)).run(rounds=rounds, warmup=1, clock="wall")
        print(result.table())
        for c in result.contenders:
            print(f"  {c.name}: {1e9 / c.median:,.0f} events/s")
        if url is not None:
            rate = 1e9 / result["redis batched"].median
            speedup = result.ratio("redis naive", to="redis batched")
            result.targets.append(Target("stores: Redis batched publish", rate / 1000, 50, ">=", unit="k ev/s"))
            result.targets.append(Target("stores: Redis batched / naive (times faster)", speedup, 10, ">="))
        sqlite_rate = 1e9 / result["sqlite batched"].median
        result.targets.append(Target("stores: SQLite batched publish", sqlite_rate / 1000, 100, ">=", unit="k ev/s"))
        for t in result.targets:
            print("  " + t.line())
        out.append(result)

        if url is not None:
            lat = asyncio.run(_latencies(url, latency_n, 1000.0, "lat-run"))
            lat_ms = sorted(x * 1000 for x in lat)
            p50 = statistics.median(lat_ms)
            p99 = lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))]
            print(
                f"\nproducer process -> Redis -> consumer, {latency_n:,} events at 1,000/s: "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat_ms[-1]:.2f} ms ({verdict(p99 <= 5)} p99 <= 5 ms)"
            )
            lres = CaseResult(
                "stores: producer -> Redis -> consumer latency at 1,000 events/s",
                items=len(lat),
                rounds=1,
                baseline=None,
                clock="wall",
                unit="event",
            )
            lres.contenders.append(
                ContenderResult(
                    "redis follow", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", [p50 * 1e6], [p50 * 1e6], len(lat)
                )
            )
            lres.targets.append(Target("stores: latency p99 at 1,000 ev/s", p99, 5, "<=", unit=" ms"))
            lres.info.update({"p50_ms": p50, "p99_ms": p99, "max_ms": lat_ms[-1], "events": len(lat)})
            out.append(lres)
    return out


if __name__ == "__main__":
    run("--quick" in sys.argv)
