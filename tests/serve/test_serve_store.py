"""``create_app(store=...)`` / ``streamops serve --store``: completions are published into a
shared run store and ``/runs/{id}/events`` is served from it, so ``Last-Event-ID`` resumes on
another server and after a restart. Two uvicorn servers (threads, each with its own event loop
and its own SQLiteStore on one file: what two worker processes do), real HTTP on 127.0.0.1."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamops.events import BaseEvent, from_json
from streamops.serve import create_app
from streamops.sse import SSEDecoder
from tests._http import wait_healthy
from tests.serve.test_app import LONG, client, serve, stream_completion, text_of


def get_events(base: str, run_id: str, last_event_id: str | None = None) -> tuple[int, list[tuple[str, BaseEvent]]]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with httpx.stream("GET", f"{base}/runs/{run_id}/events", headers=headers, timeout=30) as r:
        body = r.read()
        if r.status_code != 200:
            return r.status_code, []
    d = SSEDecoder()
    return 200, [(e.id, from_json(e.data)) for e in d.feed(body) + d.flush() if e.data]


def kinds(entries: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(e.kind, getattr(e, "delta", None)) for _, e in entries]


@pytest.mark.parametrize("cuts", [20, pytest.param(200, marks=pytest.mark.slow)])
def test_resume_on_another_server_and_after_a_restart(tmp_path: Path, cuts: int) -> None:
    url = f"sqlite:{tmp_path / 'runs.db'}"
    spec = f"replay:{LONG}"
    with serve(create_app(model=spec, store=url)) as a, serve(create_app(model=spec, store=url)) as b:
        run_id, chunks = stream_completion(client(a))
        assert text_of(chunks)
        status, full = get_events(b, run_id)  # the other server
        assert status == 200 and len(full) > 50
        assert [eid for eid, _ in full] == [f"{run_id}:{i}" for i in range(len(full))]
        rng = random.Random(11)
        for cut in [rng.randrange(len(full)) for _ in range(cuts)]:  # random cut points, alternating servers
            base = a if cut % 2 else b
            status, rest = get_events(base, run_id, full[cut][0])
            assert status == 200
            assert kinds(full[: cut + 1]) + kinds(rest) == kinds(full)
        # bad input: typed statuses, never a 500
        assert get_events(b, run_id, "garbage")[0] == 409
        assert get_events(b, run_id, "other:3")[0] == 409
        assert get_events(b, run_id, f"{run_id}:{len(full) + 5}")[0] == 409
        assert get_events(b, "no-such-run")[0] == 404
    with serve(create_app(model=spec, store=url)) as c:  # "after a restart": a new server, same file
        status, rest = get_events(c, run_id, full[9][0])
        assert status == 200 and kinds(rest) == kinds(full[10:])


@pytest.mark.slow
def test_serve_processes_2_with_a_shared_store(tmp_path: Path) -> None:
    """``streamops serve --processes 2 --store sqlite:...``: real uvicorn worker processes; a
    completion on one, resumes on whichever process the kernel hands each connection to."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamops", "serve", "--port", str(port), "--model", f"replay:{LONG}"]
    cmd += ["--store", f"sqlite:{tmp_path / 'runs.db'}", "--processes", "2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        wait_healthy(proc, base, timeout=60, what="serve --processes 2")
        run_id, chunks = stream_completion(client(base))
        assert text_of(chunks)
        status, full = get_events(base, run_id)
        assert status == 200 and len(full) > 50
        rng = random.Random(5)
        for cut in [rng.randrange(len(full)) for _ in range(40)]:
            with httpx.Client() as fresh:  # a new connection each time: either process answers
                headers = {"Last-Event-ID": full[cut][0]}
                r = fresh.get(f"{base}/runs/{run_id}/events", headers=headers, timeout=30)
            assert r.status_code == 200
            d = SSEDecoder()
            rest = [(e.id, from_json(e.data)) for e in d.feed(r.content) + d.flush() if e.data]
            assert kinds(full[: cut + 1]) + kinds(rest) == kinds(full)
        assert get_events(base, run_id, "garbage")[0] == 409
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
