"""Stores across real processes: a publisher killed with SIGKILL (its followers get every event
it stored, then a failed end within the lease, never a hang), SQLite runs that survive a
restart and are followed live from another process, redis-server killed and restarted (AOF)
under a live publisher, and RedisStore refusing trio with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import streamops as so
from streamops.events import ErrorEvent, RunEnd, RunStart, TextDelta
from streamops.stores import RedisNeedsAsyncioError, RedisStore, SQLiteStore
from streamops.testing import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def start_publisher(url: str, run_id: str, n: int, interval: float, lease: float = 10.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.stores._publisher", url, run_id, str(n), str(interval), str(lease)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    proc.stdout.close()  # it prints nothing more
    assert line == "ready"
    return proc


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_redis_store_on_trio_raises_a_clear_error(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    with pytest.raises(RedisNeedsAsyncioError, match="asyncio only"):
        await store.start("x")
    with pytest.raises(RedisNeedsAsyncioError):
        await store.follow("x").collect()


def _kill_publisher_case(url: str, anyio_backend: str) -> None:
    proc = start_publisher(url, "victim", 1000, 0.01, lease=1.0)

    async def follow() -> list[Any]:
        store = SQLiteStore(url[len("sqlite:") :], lease=1.0) if url.startswith("sqlite:") else RedisStore(url)
        async with store:
            got: list[Any] = []
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    got.extend(await store.follow("victim").collect())

                tg.start_soon(reader)
                with anyio.fail_after(10):  # a second follower: until 10 events are stored
                    await (store.follow("victim") | so.take(10)).collect()
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                t0 = time.monotonic()
                with anyio.fail_after(5):
                    await store.info("victim")
            assert time.monotonic() - t0 < 3.0  # the lease is 1 s
            stored = [e for _, e in await store.read("victim")]
            assert got == stored
            info = await store.info("victim")
            assert (info.status, info.error) == ("failed", "producer lost")
            return got

    got = anyio.run(follow, backend=anyio_backend)
    assert isinstance(got[0], RunStart)
    deltas = [e for e in got if isinstance(e, TextDelta)]
    assert len(deltas) > 5
    assert [e.delta for e in deltas] == [f"{i} " for i in range(len(deltas))]  # every one, in order
    assert isinstance(got[-2], ErrorEvent) and got[-2].message == "producer lost"
    assert isinstance(got[-1], RunEnd) and got[-1].status == "failed"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_kill_9_sqlite_publisher_followers_get_a_failed_end(tmp_path: Path, backend: str) -> None:
    _kill_publisher_case(f"sqlite:{tmp_path / 'runs.db'}", backend)


def test_kill_9_redis_publisher_followers_get_a_failed_end(redis_server: RedisServer) -> None:
    _kill_publisher_case(redis_server.url, "asyncio")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sqlite_runs_survive_a_restart_and_another_process_follows_live(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "runs.db"
    proc = start_publisher(f"sqlite:{path}", "live", 40, 0.01)

    async def main() -> list[Any]:
        async with SQLiteStore(path) as store:  # another process, following while it writes
            with anyio.fail_after(20):
                return await store.follow("live").collect()

    got = anyio.run(main, backend=backend)
    assert proc.wait(10) == 0
    assert [e.delta for e in got if isinstance(e, TextDelta)] == [f"{i} " for i in range(40)]

    async def reopen() -> None:  # "after a restart": a new store on the same file
        async with SQLiteStore(path) as store:
            info = await store.info("live")
            assert (info.status, info.events) == ("completed", 42)
            entries = await store.read("live", "live:10")
            assert [e for _, e in entries] == got[11:]

    anyio.run(reopen, backend=backend)


@pytest.mark.slow
def test_redis_killed_and_restarted_under_a_live_publisher(tmp_path: Path) -> None:
    """kill -9 redis-server (AOF on, appendfsync everysec) mid-run and restart it on the same
    port and directory: the publisher retries with backoff and goes on. No event is stored
    twice, and none is lost: what Redis lost (the writes of its last second before the kill,
    not yet fsynced) the publisher stores again from the events it keeps (``keep``; see
    test_store_loses_writes.py for the exact mechanism), so the run ends complete."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        proc = start_publisher(server.url, "r", 300, 0.01)
        time.sleep(1.5)  # > 1 s: the first events are fsynced to the AOF
        server.kill(signal.SIGKILL)
        time.sleep(0.3)
        server.start()
        rc = proc.wait(30)

        async def check() -> tuple[int, int]:
            async with RedisStore(server.url) as store:
                entries = await store.read("r")
                seqs = [e.seq for _, e in entries]
                assert seqs == list(range(len(seqs)))  # 0 duplicated, 0 missing, in order
                info = await store.info("r")
                return info.events, len(entries)

        events, stored = anyio.run(check, backend="asyncio")
        assert rc == 0
        assert events == stored == 302  # every event, once, whatever Redis lost
    finally:
        server.kill()
