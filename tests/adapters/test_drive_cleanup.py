"""The driver's cleanup and sync sources (``adapters/_drive.py``): every close is attempted even
when one raises; a sync iterable that is not in memory is read in worker threads, so a blocking
read does not block the event loop, and a cancelled read closes the iterator in its thread."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from streamops.adapters import _drive, parse_payloads, parse_sse
from streamops.adapters._drive import close_quietly

pytestmark = pytest.mark.anyio

CHAT = [
    b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n',
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n',
    b"data: [DONE]\n\n",
]
PAYLOADS = [
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "hi"}}],
    },
    {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]


# --------------------------------------------------------------------------- close_quietly
class Closeable:
    """A resource whose close (sync or async, via ``close`` or ``aclose``) records itself in
    ``log`` and then raises ``error`` if given."""

    def __init__(self, name: str, log: list[str], *, kind: str = "close", error: Exception | None = None) -> None:
        self.name = name
        self.log = log
        self.error = error
        if kind == "aclose":
            self.aclose = self._async_close
        elif kind == "async close":
            self.close = self._async_close
        else:
            self.close = self._sync_close

    def _sync_close(self) -> None:
        self.log.append(self.name)
        if self.error is not None:
            raise self.error

    async def _async_close(self) -> None:
        await anyio.lowlevel.checkpoint()
        self._sync_close()


async def test_close_quietly_attempts_every_close_and_reraises_the_first_error() -> None:
    log: list[str] = []
    response = Closeable("response", log, kind="aclose", error=OSError("response close failed"))
    sdk_stream = Closeable("sdk", log, kind="close", error=RuntimeError("sdk close failed"))
    client = Closeable("client", log, kind="async close")
    other = Closeable("other", log)
    with pytest.raises(OSError, match="response close failed") as info:
        await close_quietly(response, None, sdk_stream, client, other)
    assert log == ["response", "sdk", "client", "other"]
    notes = getattr(info.value, "__notes__", [])
    assert any("RuntimeError: sdk close failed" in n for n in notes)


async def test_close_quietly_without_errors_closes_everything() -> None:
    log: list[str] = []
    await close_quietly(Closeable("a", log, kind="aclose"), Closeable("b", log), object(), None)
    assert log == ["a", "b"]


class FailingIteratorSDKStream:
    """An ``AsyncStream``-like object: its iterator's ``aclose()`` raises; its internal
    generator (``_iterator``) and the object itself must still be closed."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.log: list[str] = []
        self._iterator = self._inner()

    async def _inner(self) -> AsyncGenerator[Any, None]:
        try:
            for item in self.items:
                yield item
        finally:
            self.log.append("inner")

    def __aiter__(self) -> AsyncIterator[Any]:
        return _FailingIterator(self)

    async def close(self) -> None:
        self.log.append("source")


class _FailingIterator:
    def __init__(self, stream: FailingIteratorSDKStream) -> None:
        self.stream = stream

    def __aiter__(self) -> _FailingIterator:
        return self

    async def __anext__(self) -> Any:
        return await self.stream._iterator.__anext__()

    async def aclose(self) -> None:
        self.stream.log.append("iterator")
        raise OSError("connection reset while closing")


async def test_the_driver_closes_the_sdk_generator_and_the_source_when_the_iterator_close_raises() -> None:
    stream = FailingIteratorSDKStream(PAYLOADS)
    with pytest.raises(OSError, match="connection reset while closing"):
        await parse_payloads(stream).first()  # stops early: the SDK generator is not exhausted
    assert stream.log == ["iterator", "inner", "source"]


# --------------------------------------------------------------------------- sync sources
class BlockingChunks:
    """A sync iterable of byte chunks like ``httpx``'s ``iter_raw()`` over a slow socket: the
    read of chunk ``block_at`` blocks (the thread, like a socket read) until ``release``."""

    def __init__(self, chunks: list[bytes], block_at: int) -> None:
        self.chunks = chunks
        self.block_at = block_at
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.closed = threading.Event()
        self.reads = 0
        self.read_threads: set[int] = set()
        self.closed_in: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self._gen()

    def _gen(self) -> Iterator[bytes]:
        try:
            for i, chunk in enumerate(self.chunks):
                self.reads += 1
                self.read_threads.add(threading.get_ident())
                if i == self.block_at:
                    self.blocked.set()
                    if not self.release.wait(3):
                        raise TimeoutError("the read was never released: the event loop was blocked")
                yield chunk
        finally:
            self.closed_in = threading.get_ident()
            self.closed.set()


async def test_a_blocking_sync_source_does_not_block_the_event_loop() -> None:
    source = BlockingChunks(CHAT, block_at=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        assert await anyio.to_thread.run_sync(source.blocked.wait, 5)  # a threading.Event
        for _ in range(3):  # the loop runs while the read is blocked
            await anyio.sleep(0.01)
            ticks += 1
        source.release.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            events = await parse_sse(source, api="openai-chat").collect()
    assert ticks == 3
    assert [type(e).__name__ for e in events][-1] == "RunEnd"
    assert "".join(getattr(e, "delta", "") for e in events) == "hi there"
    assert threading.get_ident() not in source.read_threads  # every next() ran in a worker thread
    assert source.closed.is_set()


async def test_cancelling_a_blocked_read_returns_at_once_and_the_thread_closes_the_iterator() -> None:
    source = BlockingChunks(CHAT, block_at=1)
    seen: list[str] = []
    start = time.monotonic()
    with anyio.move_on_after(0.1) as scope:
        async for ev in parse_sse(source, api="openai-chat"):
            seen.append(type(ev).__name__)
    assert scope.cancelled_caught
    assert time.monotonic() - start < 2  # not held by the blocked read
    assert seen == ["RunStart", "TextDelta"]
    assert source.blocked.is_set()
    assert not source.closed.is_set()  # the thread is still inside next(): it cannot be closed yet
    source.release.set()
    closed = await anyio.to_thread.run_sync(source.closed.wait, 3)
    assert closed
    assert source.closed_in != threading.get_ident()  # closed by the reading thread, when next() returned
    assert source.reads == 2  # the iteration stopped at the item the blocked read returned


async def test_in_memory_sync_sources_are_read_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_threads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an in-memory source must not be read on a thread")

    monkeypatch.setattr(_drive, "OwnerThread", no_threads)
    assert (await parse_sse(CHAT, api="openai-chat").collect())[-1].kind == "run-end"  # type: ignore[attr-defined]
    assert (await parse_sse(b"".join(CHAT)).collect())[-1].kind == "run-end"  # type: ignore[attr-defined]
    assert (await parse_payloads(tuple(PAYLOADS)).collect())[-1].kind == "run-end"  # type: ignore[attr-defined]


CV: contextvars.ContextVar[str | None] = contextvars.ContextVar("CV", default=None)


async def test_a_sync_source_keeps_its_thread_and_context_across_reads() -> None:
    """Every ``next()`` of a sync source runs on the same thread and in the same context, so a
    context variable set in one read (a tracing span) is seen by the next and can be reset."""
    seen: list[tuple[int, str | None]] = []
    reset: list[bool] = []

    def chunks() -> Iterator[bytes]:
        token = CV.set("in-source")
        try:
            for chunk in CHAT:
                seen.append((threading.get_ident(), CV.get()))
                yield chunk
        finally:
            CV.reset(token)  # raises ValueError in another context
            reset.append(True)

    events = await parse_sse(chunks(), api="openai-chat").collect()
    assert events[-1].kind == "run-end"  # type: ignore[attr-defined]
    assert len({ident for ident, _ in seen}) == 1
    assert seen[0][0] != threading.get_ident()
    assert [value for _, value in seen] == ["in-source"] * len(CHAT)
    assert reset == [True]
    assert CV.get() is None  # the caller's context was never touched


class StalledResponse:
    """A sync HTTP-response-like source: its first chunk, then a read that blocks until
    ``close()`` (as closing an HTTP response aborts a blocking read)."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield CHAT[0]
        self.closed.wait(5)

    def close(self) -> None:
        self.closed.set()


async def test_a_consumer_cancelled_during_a_blocked_read_closes_the_source_at_once() -> None:
    source = StalledResponse()
    with anyio.move_on_after(0.2) as scope:
        async for _ in parse_sse(source, api="openai-chat"):
            pass
    assert scope.cancelled_caught
    assert source.closed.is_set()  # at once, not when the stalled upstream sends again
