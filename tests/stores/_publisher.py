"""A publisher process for the multi-process store tests:
``python -m tests.stores._publisher URL RUN_ID N INTERVAL [LEASE]`` publishes N text deltas into
run RUN_ID of the store at URL, one every INTERVAL seconds, printing ``ready`` once the run
exists. asyncio (RedisStore is asyncio-only)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import anyio

from streamops.events import BaseEvent, RunEnd, RunStart, TextDelta
from streamops.stores import open_store


async def main(url: str, run_id: str, n: int, interval: float, lease: float) -> None:
    async def events() -> AsyncIterator[BaseEvent]:
        yield RunStart(run_id=run_id, seq=0)
        print("ready", flush=True)
        for i in range(n):
            await anyio.sleep(interval)
            yield TextDelta(run_id=run_id, seq=i + 1, delta=f"{i} ")
        yield RunEnd(run_id=run_id, seq=n + 1)

    async with open_store(url, lease=lease) as store:
        await store.publish(events(), run_id, max_batch=64)


if __name__ == "__main__":
    url, run_id, n, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    lease = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
    anyio.run(main, url, run_id, n, interval, lease, backend="asyncio")
