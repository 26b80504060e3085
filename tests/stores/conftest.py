"""Fixtures of the run-store tests: a real ``redis-server`` (Debian package) on a free
127.0.0.1 port in a temporary directory, started once per session and stopped by its pid, and
the ``store`` fixture that runs each conformance test on every backend and event loop
(RedisStore is asyncio-only: on trio it raises, tested in test_redis.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streamops.stores import MemoryStore, RunStore, SQLiteStore
from streamops.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


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
