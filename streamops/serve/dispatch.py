"""Dispatching runs to agent workers over Redis: the request queue both sides share, and the
server's view of a run a worker produces.

- :class:`RequestQueue`: run requests in a Redis stream read by one consumer group
  (``XADD`` to enqueue; ``XREADGROUP`` to take, ``XAUTOCLAIM`` to take over what a dead
  worker held, ``XCLAIM ... JUSTID`` to say "still mine", ``XACK`` + ``XDEL`` when done) and
  the cancel flags a server raises for a worker.
- :class:`DispatchedRun`: what ``streamops serve --dispatch`` answers a completion with: it
  waits for a worker to start the run in the store and follows its events there.
- :func:`load_agent_factory`: ``"module:attr"`` -> the agent factory (``--agent``).

The worker itself is :mod:`streamops.serve.worker` (``streamops worker``). See
docs/distributed.md ("Agent workers") for the delivery rules.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import UnknownRunError
from ..events import BaseEvent, ErrorEvent, RunStart, StepStart
from ..stores.redis import _retry_transient

if TYPE_CHECKING:
    from ..stores import RunStore

__all__ = ["DispatchedRun", "Request", "RequestQueue", "load_agent_factory"]

T = TypeVar("T")


@dataclass(slots=True, kw_only=True, frozen=True)
class Request:
    """One run request taken from the queue.

    Attributes:
        entry_id: the Redis stream entry id (what :meth:`RequestQueue.ack` takes).
        run_id: the run the worker is to produce in the store, under this id.
        body: the request (``ChatCompletionRequest`` JSON), bytes as enqueued.
    """

    entry_id: str
    run_id: str
    body: bytes


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _requests(entries: Sequence[Any]) -> list[Request]:
    out = []
    for eid, fields in entries:
        if fields is None:  # deleted meanwhile (XAUTOCLAIM may return such ids): nothing to run
            continue
        out.append(Request(entry_id=_s(eid), run_id=_s(fields[b"run"]), body=bytes(fields[b"body"])))
    return out


class RequestQueue:
    """Run requests in a Redis stream, taken by the workers of one consumer group.

    Args:
        url: ``redis://HOST:PORT/DB`` (the run store's Redis, usually).
        prefix: key prefix (default ``"streamops:"``): the stream is ``{prefix}requests``, the
            group ``workers``, a cancel flag ``{prefix}cancel:{run_id}``.
        min_idle: seconds a taken request may go without its worker's heartbeat before another
            worker takes it over (``XAUTOCLAIM`` min idle time). A worker touches what it holds
            every ``min_idle / 3`` seconds, so only a dead (or stalled that long) worker loses
            its requests.
        retry_for: seconds a command is retried (backoff 50 ms doubling to 1 s) while Redis is
            unreachable before the error propagates.

    Delivery: a request is delivered to one worker at a time; it stays pending (in the group's
    pending entries list) until acknowledged, so a worker that dies with it loses nothing:
    after ``min_idle`` another worker claims it. asyncio only (redis-py's asyncio client).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "streamops:",
        min_idle: float = 30.0,
        retry_for: float = 30.0,
    ) -> None:
        if not min_idle > 0:
            raise ValueError(f"min_idle must be > 0 seconds, got {min_idle}")
        self.url = url
        self.prefix = prefix
        self.min_idle = min_idle
        self.retry_for = retry_for
        self.key = f"{prefix}requests"
        self.group = "workers"
        self._redis: Any = None
        self._claim_cursor = "0-0"
        self._group_ready = False

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(self.url)
        return self._redis

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        if self._redis is not None:
            r, self._redis = self._redis, None
            await r.aclose()

    async def _retry(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await _retry_transient(fn, self.retry_for)

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (from the stream's start, so
        requests enqueued before any worker existed are delivered). Idempotent."""
        import redis.exceptions

        r = self._client()

        async def create() -> None:
            try:
                await r.xgroup_create(self.key, self.group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self._retry(create)
        self._group_ready = True

    async def enqueue(self, run_id: str, body: bytes | str) -> str:
        """Add a run request; return its entry id. ``body``: the request's JSON."""
        if not self._group_ready:
            await self.ensure_group()
        r = self._client()
        data = body.encode() if isinstance(body, str) else body
        return _s(await self._retry(lambda: r.xadd(self.key, {"run": run_id, "body": data})))

    async def take(self, consumer: str, count: int = 1, *, block: float = 1.0) -> list[Request]:
        """Up to ``count`` new requests for ``consumer`` (``XREADGROUP ... >``), waiting up to
        ``block`` seconds for one; ``[]`` when none came."""
        r = self._client()
        got = await self._retry(
            lambda: r.xreadgroup(
                self.group, consumer, {self.key: ">"}, count=count, block=max(1, int(block * 1000))
            )
        )
        return _requests(got[0][1]) if got else []

    async def claim(self, consumer: str, count: int = 1) -> list[Request]:
        """Take over up to ``count`` requests pending longer than ``min_idle`` (their worker
        stopped touching them: it died), scanning the pending list from where the last call
        stopped (``XAUTOCLAIM``)."""
        r = self._client()
        ms = int(self.min_idle * 1000)
        out = await self._retry(
            lambda: r.xautoclaim(self.key, self.group, consumer, ms, start_id=self._claim_cursor, count=count)
        )
        self._claim_cursor = _s(out[0])
        return _requests(out[1])

    async def touch(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of requests ``consumer`` holds (``XCLAIM`` with min idle 0 and
        ``JUSTID``): the worker's heartbeat, so nobody claims a request it is still running."""
        if not entry_ids:
            return
        r = self._client()
        await self._retry(lambda: r.xclaim(self.key, self.group, consumer, 0, list(entry_ids), justid=True))

    async def ack(self, entry_id: str) -> None:
        """The request is done: acknowledge and delete it (the stream keeps only open requests)."""
        r = self._client()

        async def ack() -> None:
            async with r.pipeline(transaction=True) as p:
                p.xack(self.key, self.group, entry_id)
                p.xdel(self.key, entry_id)
                await p.execute()

        await self._retry(ack)

    async def cancel(self, run_id: str, *, keep: float = 3600.0) -> None:
        """Ask the worker of ``run_id`` (or the one that would take it) to cancel it; the flag
        is kept ``keep`` seconds."""
        r = self._client()
        await self._retry(lambda: r.set(f"{self.prefix}cancel:{run_id}", "1", ex=max(1, int(keep))))

    async def cancelled(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` were asked to cancel."""
        if not run_ids:
            return set()
        r = self._client()
        keys = [f"{self.prefix}cancel:{rid}" for rid in run_ids]
        flags = await self._retry(lambda: r.mget(keys))
        return {rid for rid, f in zip(run_ids, flags, strict=True) if f is not None}

    async def forget_dead(self, *, idle: float | None = None) -> list[str]:
        """Remove from the group the consumers that hold nothing and were not heard from for
        ``idle`` seconds (default ``10 * min_idle``): workers that died (their requests were
        taken over) or stopped. Return their names. A live worker is heard from at least every
        second (it reads), so it is never removed."""
        r = self._client()
        limit_ms = int((10 * self.min_idle if idle is None else idle) * 1000)
        consumers = await self._retry(lambda: r.xinfo_consumers(self.key, self.group))
        gone = []
        for c in consumers:
            if int(c["pending"]) == 0 and int(c["idle"]) > limit_ms:
                gone.append(_s(c["name"]))
        for name in gone:

            def delete(name: str = name) -> Awaitable[Any]:
                return r.xgroup_delconsumer(self.key, self.group, name)  # type: ignore[no-any-return]

            await self._retry(delete)
        return gone

    async def pending(self) -> int:
        """Requests taken and not yet acknowledged (all consumers)."""
        r = self._client()
        info = await self._retry(lambda: r.xpending(self.key, self.group))
        return int(info["pending"])

    @staticmethod
    def consumer_name() -> str:
        """A consumer name unique to this process: ``{host}-{pid}-{random}``."""
        return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class DispatchedRun:
    """A completion that a worker runs: the server's handle on it (``serve --dispatch``).

    :meth:`started` waits for the worker to start the run in the store; :attr:`opened` (its
    ``wait()``) reads the run until the model took the prompt (the first event after
    ``RunStart``/``StepStart``), noting a first :class:`ErrorEvent` in :attr:`error` (a prompt
    over the context window); :meth:`follow` yields the run's events from the start (those
    already read, then the store's live tail); :meth:`cancel` raises the run's cancel flag for
    its worker (unless the run was followed to its end) through ``spawn`` (a task starter).
    """

    def __init__(
        self, store: RunStore, queue: RequestQueue, run_id: str, spawn: Callable[..., object]
    ) -> None:
        self.store = store
        self.queue = queue
        self.run_id = run_id
        self.agent: Any = None
        self.error: ErrorEvent | None = None
        self.opened = _Opened(self)
        self._spawn = spawn
        self._head: list[tuple[str, BaseEvent]] = []
        self._ended = False
        self._cancelled = False

    async def started(self, within: float) -> bool:
        """Wait (polling, 10 ms growing to 50 ms) until the run is in the store; False when no
        worker started it within ``within`` seconds (its request is then cancelled)."""
        import anyio

        deadline = time.monotonic() + within
        delay = 0.01
        while True:
            try:
                await self.store.info(self.run_id)
                return True
            except UnknownRunError:
                pass
            if time.monotonic() + delay > deadline:
                await self.queue.cancel(self.run_id)
                return False
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    async def _open(self) -> None:
        async with aclosing(self.store.entries(self.run_id).__aiter__()) as it:
            async for eid, ev in it:
                self._head.append((eid, ev))
                if isinstance(ev, ErrorEvent):
                    self.error = ev
                    return
                if not isinstance(ev, (RunStart, StepStart)):
                    return
        self._ended = True

    async def follow(self, after: str | None = None) -> AsyncGenerator[BaseEvent, None]:
        """The run's events from its start (``after`` must be ``None``), then its live tail."""
        if after is not None:
            raise ValueError("DispatchedRun.follow() starts at the run's start (after=None)")
        last: str | None = None
        for eid, ev in self._head:
            last = eid
            yield ev
        async with aclosing(self.store.entries(self.run_id, last).__aiter__()) as it:
            async for _, ev in it:
                yield ev
        self._ended = True

    def cancel(self) -> None:
        """Ask the worker to cancel the run (no-op once it was followed to its end, or twice)."""
        if self._ended or self._cancelled:
            return
        self._cancelled = True
        self._spawn(self.queue.cancel, self.run_id)


class _Opened:
    """``opened`` of a :class:`DispatchedRun`: ``await wait()`` as an ``anyio.Event``'s."""

    def __init__(self, run: DispatchedRun) -> None:
        self._run = run
        self._done = False

    async def wait(self) -> None:
        if not self._done:
            await self._run._open()
            self._done = True


def load_agent_factory(spec: str) -> Callable[[Any], Any]:
    """The agent factory ``spec`` names: ``"package.module:attribute"`` (a callable taking the
    :class:`~streamops.serve.app.ChatCompletionRequest` and returning an
    :class:`~streamops.Agent`, as ``create_app(agent_factory=...)`` takes).

    Raises:
        ValueError: ``spec`` is not ``module:attribute``, the module or attribute is missing, or
            it is not callable.
    """
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"--agent needs module:attribute (e.g. myapp.agents:make_agent), got {spec!r}")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"cannot import {module!r} for --agent {spec!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module!r} has no attribute {attr!r} (--agent {spec!r})") from None
    if not callable(obj):
        raise ValueError(f"--agent {spec!r} is not callable")
    return obj  # type: ignore[no-any-return]
