"""Fixtures of the run-store tests: a real ``redis-server`` (Debian package) on a free
127.0.0.1 port in a temporary directory, started once per session and stopped by its pid, and
the ``store`` fixture that runs each conformance test on every backend and event loop
(RedisStore is asyncio-only: on trio it raises, tested in test_redis.py)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamops.stores import MemoryStore, RunStore, SQLiteStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A redis-server this test session started: its port, directory and process."""

    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server; .ci/run does it)")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.dir),
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


CASES = [("memory", "asyncio"), ("memory", "trio"), ("sqlite", "asyncio"), ("sqlite", "trio"), ("redis", "asyncio")]


@pytest.fixture(params=CASES, ids=[f"{b}-{loop}" for b, loop in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(case: tuple[str, str]) -> str:
    return case[1]


@pytest.fixture
def make_store(case: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> object:
    """``make_store(**options)``: a fresh store of this case's backend (own file / key prefix)."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    url = request.getfixturevalue("redis_server").url if case[0] == "redis" else ""

    def make(**options: object) -> RunStore:
        kind = case[0]
        store: RunStore
        if kind == "memory":
            store = MemoryStore(**options)  # type: ignore[arg-type]
        elif kind == "sqlite":
            store = SQLiteStore(tmp_path / "runs.db", **options)  # type: ignore[arg-type]
        else:
            from streamops.stores import RedisStore

            store = RedisStore(url, prefix=prefix, **options)  # type: ignore[arg-type]
        return store

    return make


@pytest.fixture
async def store(make_store: object) -> AsyncIterator[RunStore]:
    s: RunStore = make_store()  # type: ignore[operator]
    async with s:
        yield s
