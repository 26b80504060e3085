"""Benchmark: ``streamops.merge`` against a hand-written asyncio.Queue merge and aiostream.

Case 1: a 100-way merge of 1,000,000 items (10,000 per source; ``--quick``: 100 x 1,000).
Contenders, interleaved in one process (``benchmarks/_harness.py``):

- ``asyncio.Queue`` (the baseline): one task per source doing ``await q.put(x)`` into one
  unbounded queue, the consumer doing ``await q.get()``;
- ``streamops merge``: ``async with merge(*sources).iterate() as it: async for x in it`` (the
  default ``buffer=16`` per source);
- ``streamops merge buffer=1``: strict one-item hand-off per source (a task switch per item);
- ``aiostream merge``: ``aiostream.stream.merge`` (GPL; a peer here, never imported by
  streamops).

Case 2: 10,000 concurrent sources merged: memory per idle source (tracemalloc, every source
task started and waiting for its first item) and throughput once they all produce.

Targets (the issue): within 1.5x of the queue merge; at least 10x faster than aiostream; under
8 KiB per idle source. Prints PASS/FAIL; never fails with an assert.

    python benchmarks/bench_merge.py            # full: a few minutes
    python benchmarks/bench_merge.py --quick    # under ~30 s
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncGenerator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness
from _harness import Case, CaseResult, ContenderResult, Target, verdict, write_json

from streamops.operators.combine import merge


async def source(n: int) -> AsyncGenerator[int, None]:
    for i in range(n):
        yield i


def contenders(n_sources: int, per_source: int) -> Case:
    total = n_sources * per_source
    case = Case(f"merge: {n_sources} sources x {per_source:,} items", items=total, baseline="asyncio.Queue")

    async def queue_merge() -> int:
        q: asyncio.Queue[object] = asyncio.Queue()
        done = object()

        async def pump(k: int) -> None:
            async for x in source(per_source):
                await q.put(x)
            await q.put(done)

        tasks = [asyncio.create_task(pump(k)) for k in range(n_sources)]
        count = 0
        left = n_sources
        while left:
            x = await q.get()
            if x is done:
                left -= 1
            else:
                count += 1
        await asyncio.gather(*tasks)
        return count

    async def streamops_merge() -> int:
        count = 0
        async with merge(*[source(per_source) for _ in range(n_sources)]).iterate() as it:
            async for _ in it:
                count += 1
        return count

    async def streamops_merge_1() -> int:
        count = 0
        async with merge(*[source(per_source) for _ in range(n_sources)], buffer=1).iterate() as it:
            async for _ in it:
                count += 1
        return count

    case.add("asyncio.Queue", queue_merge, note="one task per source, one unbounded queue")
    case.add("streamops merge", streamops_merge, note="buffer=16 per source (default)")
    case.add("streamops merge b=1", streamops_merge_1, note="buffer=1: a task switch per item")
    try:
        from aiostream import stream as aiostream_stream

        async def aiostream_merge() -> int:
            count = 0
            xs = aiostream_stream.merge(*[source(per_source) for _ in range(n_sources)])
            async with xs.stream() as it:
                async for _ in it:
                    count += 1
            return count

        case.add("aiostream merge", aiostream_merge, note="aiostream.stream.merge (GPL peer)")
    except ImportError:
        print("aiostream not installed: pip install aiostream (benchmark peer only)")
    return case


async def many_sources(n: int, per_source: int) -> tuple[float, float, int]:
    """(bytes per idle source, ns per item, items) for ``n`` concurrent sources."""
    gate = asyncio.Event()

    async def idle_source() -> AsyncGenerator[int, None]:
        await gate.wait()
        for i in range(per_source):
            yield i

    sources = [idle_source() for _ in range(n)]
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    count = 0
    t0 = 0.0
    async with merge(*sources).iterate() as it:
        consumer = asyncio.ensure_future(it.__anext__())
        for _ in range(5):  # let every source task start and block on the gate
            await asyncio.sleep(0)
        now, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        per_source_bytes = (now - base) / n
        t0 = time.perf_counter()
        gate.set()
        await consumer
        count = 1
        async for _ in it:
            count += 1
    dt = time.perf_counter() - t0
    return per_source_bytes, dt * 1e9 / count, count


def run_merge(
    quick: bool = False, *, per_source: int | None = None, rounds: int | None = None, progress: bool = False
) -> list[CaseResult]:
    """Case 1 (100-way merge), printed; returns its result with the targets attached."""
    n_sources = 100
    per_source = per_source or (1_000 if quick else 10_000)
    rounds = rounds or (3 if quick else 5)

    case = contenders(n_sources, per_source)
    result = case.run(rounds=rounds, warmup=1, progress=progress)
    print(result.table())
    ok_equal, msg = result.check_equal()
    print(("ok: " if ok_equal else "") + msg)

    checks: dict[str, bool] = {}
    ratio_q = result.ratio("streamops merge")
    checks["within 1.5x of asyncio.Queue merge"] = ratio_q <= 1.5
    print(f"  streamops / asyncio.Queue = {ratio_q:.2f}x (target <= 1.5x): {verdict(ratio_q <= 1.5)}")
    result.targets.append(Target("merge: streamops / asyncio.Queue merge", ratio_q, 1.5, "<="))
    try:
        ratio_aio = result.ratio("aiostream merge", to="streamops merge")
        checks["10x faster than aiostream"] = ratio_aio >= 10
        print(f"  aiostream / streamops = {ratio_aio:.1f}x (target >= 10x): {verdict(ratio_aio >= 10)}")
        result.targets.append(Target("merge: aiostream / streamops (times faster)", ratio_aio, 10, ">="))
    except KeyError:
        pass
    result.info["checks"] = checks
    result.info["results_equal"] = ok_equal
    return [result]


def run_sources(quick: bool = False, *, n: int = 10_000, per: int | None = None, rounds: int = 1) -> list[CaseResult]:
    """Case 2 (``n`` concurrent sources), printed: memory per idle source and throughput once
    released, ``rounds`` times (the memory figure is the median); as a result whose one
    contender is the throughput, with the memory target attached."""
    per = per or (5 if quick else 20)
    mems: list[float] = []
    nss: list[float] = []
    items = 0
    for _ in range(rounds):
        bytes_per, ns_item, items = asyncio.run(many_sources(n, per))
        mems.append(bytes_per)
        nss.append(ns_item)
        if _harness.ROUND_HOOK is not None:
            _harness.ROUND_HOOK(f"merge: {n:,} sources", len(mems), rounds)
    bytes_per = statistics.median(mems)
    ns_item = statistics.median(nss)
    print(f"\nmerge: {n:,} concurrent sources x {per} items")
    print(
        f"  memory per idle source: {bytes_per / 1024:.2f} KiB (tracemalloc; target < 8 KiB): "
        f"{verdict(bytes_per < 8192)}"
    )
    print(f"  throughput once released: {ns_item:.0f} ns/item ({items:,} items, {1e9 / ns_item:,.0f} items/s)")
    result = CaseResult(
        f"merge: {n:,} concurrent sources x {per} items", items=items, rounds=rounds, baseline=None, clock="wall"
    )
    result.contenders.append(
        ContenderResult("streamops merge", f"{bytes_per / 1024:.2f} KiB per idle source (tracemalloc)", nss, nss, items)
    )
    result.targets.append(Target("sources: memory per idle source", bytes_per / 1024, 8, "<", unit=" KiB"))
    result.info.update({"idle_source_bytes": bytes_per, "idle_source_bytes_rounds": mems, "sources": n})
    return [result]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller run, under ~30 s")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    [result] = run_merge(args.quick, progress=not args.quick)
    checks: dict[str, bool] = dict(result.info["checks"])
    [many] = run_sources(args.quick)
    bytes_per = many.info["idle_source_bytes"]
    checks["under 8 KiB per idle source"] = bytes_per < 8192
    print("\nsummary: " + ", ".join(f"{k}: {verdict(v)}" for k, v in checks.items()))
    if args.json:
        write_json(
            args.json,
            [result],
            {
                "checks": checks,
                "idle_source_bytes": bytes_per,
                "many_sources_ns_per_item": many["streamops merge"].median,
            },
        )


if __name__ == "__main__":
    main()
