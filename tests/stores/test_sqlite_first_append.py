"""Issue 11: "a SQLite publisher's first append can stall ~2 s while another process has the
file open". The cause was not SQLite: the first append of a process turned its first event
into JSON, which builds pydantic's TypeAdapter of the event union (0.15-0.35 s on an idle
2-core machine, seconds under load) on the event loop's thread, blocking the loop. SQLite's
side was checked too: the busy handler waits in small steps (a 50 ms lock is waited ~54 ms),
and a connection to a file already in WAL mode with its tables takes no write lock.

Asserted as mechanisms, in a fresh process (the codec is built once per process) while this
process has the file open: the codec is built in a worker thread, never on the loop's thread;
the second process's connection issues no ``PRAGMA journal_mode=WAL`` and no ``CREATE``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

import streamops as so
from streamops.events import RunEnd, RunStart
from streamops.stores import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_first_append_of_a_process_builds_the_codec_off_the_loop_and_takes_no_schema_lock(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "runs.db"

    async def other_process_has_it_open() -> dict[str, object]:
        async with SQLiteStore(path) as store:  # creates the file: WAL, tables
            await store.publish(so.Stream.from_iterable([RunStart(run_id="a"), RunEnd(run_id="a", seq=1)]), "first")
            await store.start("held")  # a live run; this connection stays open meanwhile
            with anyio.fail_after(60):
                out = await anyio.run_process(
                    [sys.executable, "-m", "tests.stores._first_append", str(path), backend], cwd=ROOT, check=False
                )
            assert out.returncode == 0, out.stderr.decode()
            assert [r.run_id for r in await store.runs()] == ["first", "held", "second"]
            return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))

    report = anyio.run(other_process_has_it_open, backend=backend)
    assert report["builds_on_loop_thread"] == [False]  # built once, in a worker thread
    statements = [str(s) for s in report["statements"]]  # type: ignore[attr-defined]
    assert any("INSERT OR IGNORE INTO events" in s for s in statements)  # it did append
    assert not [s for s in statements if "journal_mode=" in s.replace(" ", "").lower() or "CREATE" in s.upper()]
