"""``python -m tests.stores._first_append PATH BACKEND``: a fresh process publishes one run into
the SQLite file PATH and prints JSON: for each build of the events' JSON codec (pydantic's
TypeAdapter of the event union) whether it ran on the event loop's thread, and every SQL
statement its connection ran."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from typing import Any

import anyio

import streamops.events as ev
import streamops.stores._base as base

builds: list[bool] = []
statements: list[str] = []
_orig_adapter = ev.event_adapter
_orig_connect = sqlite3.connect


def recording_adapter() -> Any:
    if ev._adapter is None:
        builds.append(threading.current_thread() is threading.main_thread())
    return _orig_adapter()


def tracing_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    conn = _orig_connect(*args, **kwargs)
    conn.set_trace_callback(statements.append)
    return conn


ev.event_adapter = recording_adapter  # type: ignore[assignment]  # to_json's look-up
base.event_adapter = recording_adapter  # type: ignore[assignment]  # the stores' warm-up
sqlite3.connect = tracing_connect  # type: ignore[assignment]


async def main(path: str) -> None:
    from streamops import Stream
    from streamops.stores import SQLiteStore

    events = [ev.RunStart(run_id="p"), ev.TextDelta(run_id="p", seq=1, delta="hi"), ev.RunEnd(run_id="p", seq=2)]
    async with SQLiteStore(path) as store:
        info = await store.publish(Stream.from_iterable(events), "second")
        assert info.events == 3 and len(await store.read("second")) == 3


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], backend=sys.argv[2])
    print(json.dumps({"builds_on_loop_thread": builds, "statements": statements}))
