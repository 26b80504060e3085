"""The sync bridge: ``to_list()`` and ``iter_sync()`` from plain synchronous code.

These are plain sync tests: the bridge runs its own event loop in a worker thread.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import AsyncGenerator, Iterator

import pytest

from streamops import Stream, map, take
from tests._util import Boom, Probe

BACKENDS = ["asyncio", "trio"]


def _other_threads(before: set[threading.Thread]) -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t not in before and t.is_alive()}


def assert_no_new_thread(before: set[threading.Thread], wait: float = 5.0) -> None:
    """Every thread started since ``before`` ends (a short join wait is allowed)."""
    deadline = time.monotonic() + wait
    for t in _other_threads(before):
        t.join(max(0.0, deadline - time.monotonic()))
    assert _other_threads(before) == set()


@pytest.fixture
def threads_before() -> Iterator[set[threading.Thread]]:
    before = set(threading.enumerate())
    yield before
    assert_no_new_thread(before)


class SyncFlag:
    """An infinite source whose ``finally`` sets a thread-safe flag."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.pulled = 0

    async def gen(self) -> AsyncGenerator[int, None]:
        try:
            i = 0
            while True:
                self.pulled += 1
                yield i
                i += 1
        finally:
            self.closed.set()

    def stream(self) -> Stream[int]:
        return Stream.from_async_iterable(self.gen())


@pytest.mark.parametrize("backend", BACKENDS)
def test_to_list(backend: str, threads_before: set[threading.Thread]) -> None:
    s = Stream.from_iterable(range(5)) | map(lambda x: x * x)
    assert s.to_list(backend=backend) == [0, 1, 4, 9, 16]
    assert s.to_list(backend=backend) == [0, 1, 4, 9, 16]


@pytest.mark.parametrize("backend", BACKENDS)
def test_to_list_with_async_map_and_take(backend: str, threads_before: set[threading.Thread]) -> None:
    async def inc(x: int) -> int:
        return x + 1

    flag = SyncFlag()
    assert (flag.stream() | map(inc) | take(3)).to_list(backend=backend) == [1, 2, 3]
    assert flag.closed.is_set()


@pytest.mark.parametrize("backend", BACKENDS)
def test_to_list_raises_the_source_error(backend: str, threads_before: set[threading.Thread]) -> None:
    probe = Probe([1, 2], raise_at=2)
    with pytest.raises(Boom) as info:
        probe.stream().to_list(backend=backend)
    assert info.value is probe.error
    assert probe.closed


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_sync_yields_every_item(backend: str, threads_before: set[threading.Thread]) -> None:
    s = Stream.from_iterable("abc") | map(str.upper)
    assert list(s.iter_sync(backend=backend)) == ["A", "B", "C"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_sync_raises_the_source_error_after_the_items(backend: str, threads_before: set[threading.Thread]) -> None:
    probe = Probe(["x", "y"], raise_at=2)
    got: list[str] = []
    with pytest.raises(Boom) as info:
        for x in probe.stream().iter_sync(backend=backend):
            got.append(x)
    assert got == ["x", "y"]
    assert info.value is probe.error
    assert probe.closed


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_sync_break_closes_source_and_thread(backend: str, threads_before: set[threading.Thread]) -> None:
    flag = SyncFlag()
    got: list[int] = []
    for x in flag.stream().iter_sync(backend=backend):
        got.append(x)
        if x == 3:
            break
    # the generator was dropped at the break (CPython refcounting) and closed
    assert flag.closed.wait(5)
    assert got == [0, 1, 2, 3]
    assert_no_new_thread(threads_before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_sync_close_closes_source_and_thread(backend: str, threads_before: set[threading.Thread]) -> None:
    flag = SyncFlag()
    it = flag.stream().iter_sync(backend=backend)
    assert next(it) == 0
    assert next(it) == 1
    assert not flag.closed.is_set()
    it.close()
    assert flag.closed.is_set()  # closed by the time close() returns
    assert_no_new_thread(threads_before)
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_sync_del_and_gc_close_source_and_thread(backend: str, threads_before: set[threading.Thread]) -> None:
    flag = SyncFlag()
    it = flag.stream().iter_sync(backend=backend)
    assert next(it) == 0
    del it
    gc.collect()
    assert flag.closed.wait(5)
    assert_no_new_thread(threads_before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_sync_exception_in_the_loop_body_closes(backend: str, threads_before: set[threading.Thread]) -> None:
    flag = SyncFlag()
    with pytest.raises(Boom):
        for x in flag.stream().iter_sync(backend=backend):
            if x == 2:
                raise Boom("consumer")
    assert flag.closed.wait(5)
    assert_no_new_thread(threads_before)


def test_iter_sync_not_started_starts_no_thread(threads_before: set[threading.Thread]) -> None:
    flag = SyncFlag()
    it = flag.stream().iter_sync()
    assert _other_threads(threads_before) == set()
    del it
    gc.collect()
    assert flag.pulled == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_iter_sync_does_not_run_far_ahead(backend: str, threads_before: set[threading.Thread]) -> None:
    # pull-based through the bridge too: the source is at most a couple of items ahead
    flag = SyncFlag()
    it = flag.stream().iter_sync(backend=backend)
    try:
        for expected in range(5):
            assert next(it) == expected
            time.sleep(0.01)
            assert flag.pulled <= expected + 2
    finally:
        it.close()
    assert flag.closed.is_set()
