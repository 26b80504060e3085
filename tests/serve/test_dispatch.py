"""Agent workers over Redis: ``streamops serve --dispatch`` enqueues completions, ``streamops
worker`` processes take them from the consumer group (XREADGROUP / XAUTOCLAIM / XACK), run the
agent and publish its events into the RedisStore the server follows.

Real parts: a redis-server started here (streamops.testing.RedisServer), worker processes
started with ``python -m streamops worker``, the server on uvicorn on 127.0.0.1 (a thread), the
official openai client. The agent (tests/serve/_dispatch_agents.py) streams a text the test
knows, paced, so a run lasts long enough to kill its worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from streamops.errors import UnknownRunError
from streamops.events import BaseEvent, ErrorEvent, RunEnd, TextDelta
from streamops.serve.app import create_app
from streamops.serve.dispatch import RequestQueue
from streamops.stores import RedisStore
from streamops.testing import RedisServer
from tests.serve._dispatch_agents import expected_text, paced
from tests.serve.test_app import client, serve, text_of

ROOT = Path(__file__).resolve().parents[2]
PACED = "tests.serve._dispatch_agents:paced"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


class WorkerProc:
    """A ``streamops worker`` process; its stdout (one line per request) goes to a file."""

    def __init__(self, url: str, out: Path, *extra: str, agent: str | None = PACED) -> None:
        self.out = out
        cmd = [sys.executable, "-m", "streamops", "worker", "--store", url, *extra]
        if agent is not None:
            cmd += ["--agent", agent]
        with out.open("wb") as f:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "ready" not in self.text():
            assert self.proc.poll() is None, f"the worker exited: {self.text()}"
            assert time.monotonic() < deadline, "the worker did not get ready in 120 s"
            time.sleep(0.05)

    def text(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def runs(self) -> dict[str, str]:
        """run id -> outcome, from the lines ``run ID: OUTCOME``."""
        out = {}
        for line in self.text().splitlines():
            if line.startswith("run "):
                rid, _, outcome = line[4:].partition(": ")
                assert rid not in out, f"run {rid} twice in one worker"
                out[rid] = outcome
        return out

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        assert self.proc.wait(30) is not None


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.05)


def prompt(tag: str, n: int, delay: float) -> list[dict[str, Any]]:
    return [{"role": "user", "content": json.dumps({"tag": tag, "n": n, "delay": delay})}]


def stored(url: str, run_id: str) -> tuple[Any, list[tuple[str, BaseEvent]]]:
    async def read() -> tuple[Any, list[tuple[str, BaseEvent]]]:
        async with RedisStore(url) as store:
            return await store.info(run_id), await store.read(run_id)

    return anyio.run(read, backend="asyncio")


def test_20_runs_dispatched_to_two_workers_complete_exactly_once(redis: RedisServer, tmp_path: Path) -> None:
    workers = [WorkerProc(redis.url, tmp_path / f"w{i}.out", "--concurrency", "2") for i in range(2)]
    try:
        with serve(create_app(store=redis.url, dispatch=True, agent_factory=paced)) as base:
            c = client(base)

            def one(i: int) -> tuple[int, str, str]:
                raw = c.chat.completions.with_raw_response.create(
                    model="agent", messages=prompt(f"r{i}", 12, 0.02), stream=True
                )
                return i, raw.headers["x-streamops-run-id"], text_of(list(raw.parse()))

            with ThreadPoolExecutor(20) as pool:
                results = list(pool.map(one, range(20)))
            # the run log served from the store, resumed in the middle (any server process would do)
            _, rid0, _ = results[0]
            with httpx.stream("GET", f"{base}/runs/{rid0}/events", headers={"Last-Event-ID": f"{rid0}:4"}) as r:
                assert r.status_code == 200 and f"id: {rid0}:5" in r.read().decode()
    finally:
        for w in workers:
            w.stop()
    for i, _rid, text in results:
        assert text == expected_text(f"r{i}", 12)  # the full stream reached each client
    ran = [w.runs() for w in workers]
    assert all(ran), f"both workers took runs: {[len(r) for r in ran]}"
    run_ids = [rid for _, rid, _ in results]
    assert sorted(ran[0].keys() | ran[1].keys()) == sorted(run_ids)  # every run...
    assert not ran[0].keys() & ran[1].keys()  # ...by exactly one worker
    assert set(ran[0].values()) | set(ran[1].values()) == {"completed"}
    for i, rid, _ in results:
        info, entries = stored(redis.url, rid)
        assert (info.status, info.events) == ("completed", len(entries))
        assert [eid for eid, _ in entries] == [f"{rid}:{k}" for k in range(len(entries))]
        deltas = "".join(e.delta for _, e in entries if isinstance(e, TextDelta))
        assert deltas == expected_text(f"r{i}", 12)
        assert isinstance(entries[-1][1], RunEnd) and entries[-1][1].status == "completed"

    async def pending() -> int:
        q = RequestQueue(redis.url)
        try:
            return await q.pending()
        finally:
            await q.aclose()

    assert anyio.run(pending, backend="asyncio") == 0  # every request acknowledged


def test_a_killed_workers_run_is_taken_over_and_ended_failed_not_rerun(redis: RedisServer, tmp_path: Path) -> None:
    """kill -9 the worker running a request: another worker claims it after --min-idle; the run
    was started (its first events were sent), so it is not run again: it ends failed "producer
    lost" once the dead worker's lease lapsed, and the request is acknowledged."""
    opts = ("--min-idle", "1", "--lease", "1")
    first = WorkerProc(redis.url, tmp_path / "a.out", *opts)
    second: WorkerProc | None = None
    try:
        with serve(create_app(store=redis.url, dispatch=True, agent_factory=paced)) as base:
            body = {"model": "agent", "messages": prompt("long", 400, 0.02), "stream": True}
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as r:
                rid = r.headers["x-streamops-run-id"]
                lines = r.iter_lines()
                got = [next(lines) for _ in range(20)]  # the run is under way on the first worker
                second = WorkerProc(redis.url, tmp_path / "b.out", *opts)
                first.stop(signal.SIGKILL)
                t0 = time.monotonic()
                got += list(lines)
                took = time.monotonic() - t0
            assert took < 10  # lease 1 s, min idle 1 s: never a hang
            chunks = [json.loads(x[6:]) for x in got if x.startswith("data: {")]
            assert chunks[-1]["error"]["message"] == "producer lost"  # the client sees it failed
            assert [x for x in got if x][-1] == "data: [DONE]"
        wait_for(lambda: rid in second.runs(), 15)
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()
    outcome = second.runs()[rid]
    assert outcome.startswith("taken over, not re-run (failed: producer lost)"), outcome
    assert rid not in first.runs()
    info, entries = stored(redis.url, rid)
    assert (info.status, info.error) == ("failed", "producer lost")
    deltas = [e.delta for _, e in entries if isinstance(e, TextDelta)]
    assert 10 < len(deltas) < 400 and deltas == [f"long-{i} " for i in range(len(deltas))]  # once each, in order
    assert isinstance(entries[-2][1], ErrorEvent) and entries[-2][1].message == "producer lost"
    assert isinstance(entries[-1][1], RunEnd) and entries[-1][1].status == "failed"


def test_a_request_whose_worker_died_before_starting_it_is_run_again(redis: RedisServer, tmp_path: Path) -> None:
    """A worker took the request (XREADGROUP) and died before starting its run: nobody saw
    anything of it, so the worker that claims it (XAUTOCLAIM after --min-idle) runs it in full."""
    body = json.dumps({"model": "agent", "messages": prompt("again", 5, 0.0)})

    async def ghost_takes_it() -> None:
        q = RequestQueue(redis.url)
        try:
            await q.enqueue("ghost-run", body)
            taken = await q.take("ghost-worker", 1, block=1.0)  # ...and never acknowledges it
            assert [t.run_id for t in taken] == ["ghost-run"]
        finally:
            await q.aclose()

    anyio.run(ghost_takes_it, backend="asyncio")
    worker = WorkerProc(redis.url, tmp_path / "w.out", "--min-idle", "0.5")
    try:
        wait_for(lambda: "ghost-run" in worker.runs(), 15)
    finally:
        worker.stop()
    assert worker.runs()["ghost-run"] == "completed"
    info, entries = stored(redis.url, "ghost-run")
    assert info.status == "completed"
    assert "".join(e.delta for _, e in entries if isinstance(e, TextDelta)) == expected_text("again", 5)


def test_dispatch_needs_a_redis_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Redis run store"):
        create_app(store=f"sqlite:{tmp_path / 'r.db'}", dispatch=True, agent_factory=paced)
    r = subprocess.run(
        [sys.executable, "-m", "streamops", "worker", "--store", "sqlite:x.db"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "redis://" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "streamops", "worker", "--store", "redis://127.0.0.1:1/0", "--agent", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "module:attribute" in r.stderr


def test_a_client_leaving_a_dispatched_completion_cancels_its_run_on_the_worker(
    redis: RedisServer, tmp_path: Path
) -> None:
    worker = WorkerProc(redis.url, tmp_path / "w.out")
    try:
        with serve(create_app(store=redis.url, dispatch=True, agent_factory=paced)) as base:
            body = {"model": "agent", "messages": prompt("bye", 1000, 0.01), "stream": True}
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as r:
                rid = r.headers["x-streamops-run-id"]
                lines = r.iter_lines()
                for _ in range(10):
                    next(lines)
            # the client left after a few chunks: the server raises the run's cancel flag
            wait_for(lambda: rid in worker.runs(), 15)
    finally:
        worker.stop()
    info, entries = stored(redis.url, rid)
    end = entries[-1][1]
    assert isinstance(end, RunEnd) and end.status == "cancelled"
    assert info.status != "running"
    assert len([e for _, e in entries if isinstance(e, TextDelta)]) < 900  # stopped well before the end


@pytest.mark.slow
def test_serve_processes_2_dispatch_and_two_local_model_workers_serve_20_runs(
    redis: RedisServer, tmp_path: Path
) -> None:
    """The issue's end-to-end case: ``streamops serve --store redis://... --processes 2
    --dispatch`` plus two ``streamops worker`` processes on the local model (SmolLM2) serve 20
    concurrent completions; each run's events resume on either server process."""
    import random
    import socket

    from streamops.events import from_json
    from streamops.sse import SSEDecoder
    from tests.serve.test_app import fold

    workers = [WorkerProc(redis.url, tmp_path / f"w{i}.out", "--max-tokens", "6", agent=None) for i in range(2)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamops", "serve", "--port", str(port), "--store", redis.url]
    cmd += ["--processes", "2", "--dispatch", "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60)
        c = client(base)

        def one(i: int) -> tuple[str, str]:
            raw = c.chat.completions.with_raw_response.create(
                model="local", messages=[{"role": "user", "content": f"Say a number: {i}"}], stream=True, max_tokens=6
            )
            return raw.headers["x-streamops-run-id"], text_of(list(raw.parse()))

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(one, range(20)))
        rng = random.Random(3)
        for rid, text in results:
            with httpx.Client() as fresh:
                r = fresh.get(f"{base}/runs/{rid}/events", timeout=30)
            d = SSEDecoder()
            full = [(e.id, e.data) for e in d.feed(r.content) + d.flush() if e.data]
            assert text and fold([from_json(x) for _, x in full]).text == text  # the client got the whole run
            cut = rng.randrange(len(full))
            with httpx.Client() as fresh:  # a new connection: either server process answers
                r = fresh.get(f"{base}/runs/{rid}/events", headers={"Last-Event-ID": full[cut][0]}, timeout=30)
            d = SSEDecoder()
            assert [(e.id, e.data) for e in d.feed(r.content) + d.flush() if e.data] == full[cut + 1 :]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        for w in workers:
            w.stop()
    ran = [w.runs() for w in workers]
    assert sorted([*ran[0], *ran[1]]) == sorted(rid for rid, _ in results)  # each run once, by one worker
    assert set(ran[0].values()) | set(ran[1].values()) == {"completed"}


def test_sigterm_drains_a_worker_its_runs_finish_and_it_takes_no_more(redis: RedisServer, tmp_path: Path) -> None:
    worker = WorkerProc(redis.url, tmp_path / "w.out")
    body = json.dumps({"model": "agent", "messages": prompt("drain", 40, 0.05)})
    later = json.dumps({"model": "agent", "messages": prompt("later", 3, 0.0)})

    async def scenario() -> tuple[Any, list[tuple[str, BaseEvent]], int, bool]:
        q = RequestQueue(redis.url)
        try:
            async with RedisStore(redis.url) as store:
                await q.enqueue("drain-run", body)
                with anyio.fail_after(20):
                    while not await _exists(store, "drain-run"):  # noqa: ASYNC110 (another process's run)
                        await anyio.sleep(0.02)
                os.kill(worker.proc.pid, signal.SIGTERM)  # mid-run: ~2 s of it left
                await anyio.sleep(0.3)
                await q.enqueue("later-run", later)  # after the signal: this worker must not take it
                with anyio.fail_after(30):
                    entries = [x async for x in store.entries("drain-run")]
                rc = await anyio.to_thread.run_sync(lambda: worker.proc.wait(30))
                return await store.info("drain-run"), entries, rc, await _exists(store, "later-run")
        finally:
            await q.aclose()

    try:
        info, entries, rc, later_started = anyio.run(scenario, backend="asyncio")
    finally:
        worker.stop(signal.SIGKILL)
    assert rc == 0
    assert info.status == "completed"
    assert "".join(e.delta for _, e in entries if isinstance(e, TextDelta)) == expected_text("drain", 40)
    assert worker.runs() == {"drain-run": "completed"}
    assert not later_started


async def _exists(store: RedisStore, run_id: str) -> bool:
    try:
        await store.info(run_id)
        return True
    except UnknownRunError:
        return False


def test_the_queue_forgets_dead_consumers_that_hold_nothing(redis: RedisServer) -> None:
    async def main() -> None:
        q = RequestQueue(redis.url, prefix="fd:", min_idle=0.1)  # forgets after 10 x 0.1 s
        try:
            await q.enqueue("a", "{}")
            await q.enqueue("b", "{}")
            (a,) = await q.take("done-worker", 1)
            assert [r.run_id for r in await q.take("holding-worker", 1)] == ["b"]
            await q.ack(a.entry_id)
            assert await q.forget_dead() == []  # both heard from just now
            await anyio.sleep(1.2)
            assert await q.forget_dead() == ["done-worker"]  # the other still holds b
            assert [r.run_id for r in await q.claim("live", 5)] == ["b"]  # taken over...
            await anyio.sleep(1.2)
            assert await q.forget_dead() == ["holding-worker"]  # ...then it holds nothing
            assert await q.pending() == 1
        finally:
            await q.aclose()

    anyio.run(main, backend="asyncio")
