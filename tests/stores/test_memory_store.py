"""MemoryStore specifics: what it remembers is bounded by the runs it keeps (``ttl``), also
while a ``watch()`` is open (it once kept every started run's id in a list for watchers)."""

from __future__ import annotations

import gc
import tracemalloc

import anyio
import pytest

from streamops.events import RunEnd, RunStart
from streamops.stores import MemoryStore, RunInfo

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])]


async def _churn(store: MemoryStore, n: int, tag: str) -> None:
    """Start, append to, end ``n`` runs; each expires (ttl) soon after it ended."""
    for i in range(n):
        rid = f"{tag}-{i:06d}-" + "x" * 40
        await store.start(rid)
        await store.append(rid, [RunStart(run_id=rid), RunEnd(run_id=rid, seq=1)], first=0)
        await store.end(rid)
        if i % 500 == 0:
            await anyio.sleep(0.002)  # > ttl: earlier runs expire on the next access


async def test_memory_store_forgets_expired_runs_even_while_watched(anyio_backend: str) -> None:
    store = MemoryStore(ttl=0.001)
    seen: list[RunInfo] = []
    last = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def watcher() -> None:
            async for info in store.watch():
                seen.append(info)
                seen[:] = seen[-10:]  # the consumer keeps nothing: only the store may
                if info.run_id == f"more-{5999:06d}-" + "x" * 40:
                    last.set()

        tg.start_soon(watcher)
        await anyio.sleep(0.05)
        await _churn(store, 1000, "warm")
        await anyio.sleep(0.01)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await _churn(store, 6000, "more")  # 6,000 ids of ~50 bytes: ~0.4 MB if any list kept them
            await anyio.sleep(0.01)
            await store.runs()  # an access: the expired ones are dropped
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # the watcher saw the runs as they started, in order, the last one included
        with anyio.fail_after(5):
            await last.wait()
        tg.cancel_scope.cancel()
    assert len(await store.runs()) < 600
    assert grown < 100_000, f"MemoryStore grew {grown} bytes over 6,000 expired runs"


async def test_watch_gives_each_run_once_in_start_order_after_expiries(anyio_backend: str) -> None:
    store = MemoryStore(ttl=0.001)
    got: list[str] = []
    all_seen = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def watcher() -> None:
            async for info in store.watch(existing=True):
                got.append(info.run_id)
                if len(got) == 31:
                    all_seen.set()

        await store.start("old")  # running: listed as existing, then never again
        tg.start_soon(watcher)
        await anyio.sleep(0.05)
        for i in range(30):
            await store.start(f"r{i}")
            await store.end(f"r{i}")
            await anyio.sleep(0.002)
        with anyio.fail_after(5):
            await all_seen.wait()
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert got == ["old", *(f"r{i}" for i in range(30))]
