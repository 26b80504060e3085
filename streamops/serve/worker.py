"""Agent workers: ``streamops worker`` takes run requests from a Redis consumer group, runs the
agent (built as ``streamops serve`` builds it: the local model by default, any model string, or
an ``agent_factory``) and publishes its events into the run store, where the server that
enqueued the request (``serve --dispatch``) and any other follower read them.

Taking over from a dead worker (the rule, and why): a request a worker held without touching it
for ``min_idle`` seconds is claimed by another worker (``XAUTOCLAIM``). If its run is not in
the store, nobody saw anything of it: the request is run again, from scratch. If the run is in
the store, the dead worker started it and followers may have received its first events under
the ids ``run:0``, ``run:1``...: running the agent again would give a different answer (sampling,
tools with side effects, time) that could only be stored after those events, or under the same
ids, breaking "one id, one event". So such a run is never re-run: the new worker follows it
until its producer lease lapses and the run is ended ``failed`` ("producer lost", the store's
lease rule), then acknowledges the request. The client sees a failed run and may send its
request again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from .._stream import Stream
from ..errors import UnknownRunError
from ..events import ErrorEvent, RunEnd
from .app import DEFAULT_MAX_TOKENS, ChatCompletionRequest, _RunSource, _State
from .dispatch import Request, RequestQueue

if TYPE_CHECKING:
    from ..agent import Agent
    from ..stores import RunStore

__all__ = ["Worker"]


class Worker:
    """Runs the requests of a :class:`~streamops.serve.dispatch.RequestQueue` into a run store.

    Args:
        store: where each run's events are published (under the request's run id).
        queue: the request queue (its ``min_idle`` decides when a dead worker's request is
            taken over).
        model, agent_factory, workers, default_max_tokens: the agent, as
            :func:`~streamops.serve.app.create_app` takes them (``workers``: local model
            instances).
        concurrency: requests run at once (default: ``workers``).
        name: this worker's consumer name (default: host-pid-random).
        log: where one line per request goes (``run ID: completed``...); ``None``: nowhere.

    :meth:`run` works until cancelled.
    """

    def __init__(
        self,
        store: RunStore,
        queue: RequestQueue,
        *,
        model: Any = None,
        agent_factory: Callable[[ChatCompletionRequest], Agent] | None = None,
        workers: int = 1,
        concurrency: int | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        name: str | None = None,
        log: TextIO | None = sys.stdout,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers}")
        self.store = store
        self.queue = queue
        self.state = _State(model, agent_factory, workers, default_max_tokens)
        self.concurrency = concurrency or workers
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {self.concurrency}")
        self.name = name or RequestQueue.consumer_name()
        self.log = log
        self._held: dict[str, Request] = {}  # entry id -> request this worker runs
        self._sources: dict[str, _RunSource] = {}  # run id -> its run, for cancel flags
        self._stopping: Any = None  # anyio.Event: stop() was called
        self._drained: Any = None  # anyio.Event: stopping, and nothing held any more

    def _say(self, line: str) -> None:
        if self.log is not None:
            print(line, file=self.log, flush=True)

    def stop(self) -> None:
        """Drain: take no more requests, finish (and acknowledge) the ones running, then let
        :meth:`run` return. Cancelling :meth:`run` instead stops at once: the runs under way end
        ``cancelled`` and their requests stay pending until another worker takes them over
        (not re-run: their runs are in the store). Idempotent; a no-op before :meth:`run`."""
        if self._stopping is not None:
            self._stopping.set()
            if not self._held:
                self._drained.set()

    async def run(self, *, ready: Callable[[], object] | None = None) -> None:
        """Load the model(s), join the group, call ``ready()``, then take, run and acknowledge
        requests until :meth:`stop` (returns once the runs under way finished) or until
        cancelled: new ones (``XREADGROUP``), and every ``min_idle / 2`` seconds the ones dead
        workers held (``XAUTOCLAIM``). Touches what it holds (and looks for cancel flags) every
        ``min(min_idle / 3, 0.5)`` seconds."""
        import anyio

        queue = self.queue
        self._stopping = stopping = anyio.Event()
        self._drained = anyio.Event()
        if self.state.pool is not None:
            await self.state.pool.open()
        try:
            await queue.ensure_group()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat)
                slots = anyio.Semaphore(self.concurrency)
                claim_every = queue.min_idle / 2
                next_claim = 0.0
                if ready is not None:
                    ready()
                while not stopping.is_set():
                    await slots.acquire()
                    if stopping.is_set():
                        slots.release()
                        break
                    try:
                        got: list[Request] = []
                        if anyio.current_time() >= next_claim:
                            got = await queue.claim(self.name, 1)
                            if not got:
                                next_claim = anyio.current_time() + claim_every
                                await queue.forget_dead()
                        if not got:
                            got = await queue.take(self.name, 1, block=min(1.0, claim_every))
                    except BaseException:
                        slots.release()
                        raise
                    if got:
                        self._held[got[0].entry_id] = got[0]
                        tg.start_soon(self._handle, got[0], slots)
                    else:
                        slots.release()
                if not self._held:
                    self._drained.set()
                await self._drained.wait()  # stopping: the runs under way finish
                tg.cancel_scope.cancel()  # the heartbeat
        finally:
            if self.state.pool is not None:
                self.state.pool.close()

    async def _heartbeat(self) -> None:
        import anyio

        every = min(self.queue.min_idle / 3, 0.5)
        while True:
            await anyio.sleep(every)
            await self.queue.touch(self.name, list(self._held))
            for run_id in await self.queue.cancelled(list(self._sources)):
                source = self._sources.get(run_id)
                if source is not None:
                    source.cancel()

    async def _handle(self, request: Request, slots: Any) -> None:
        try:
            outcome = await self._execute(request)
            await self.queue.ack(request.entry_id)
            self._say(f"run {request.run_id}: {outcome}")
        except Exception as exc:  # this request failed; the worker goes on
            self._say(f"run {request.run_id}: error {type(exc).__name__}: {exc}")
            try:  # its run ended (failed) in the store: done with; else it stays pending
                if (await self.store.info(request.run_id)).status != "running":
                    await self.queue.ack(request.entry_id)
            except Exception:
                pass
        finally:
            self._held.pop(request.entry_id, None)
            slots.release()
            if not self._held and self._stopping is not None and self._stopping.is_set():
                self._drained.set()

    async def _execute(self, request: Request) -> str:
        """Run one request; the outcome for the log line."""
        store, run_id = self.store, request.run_id
        try:
            info = await store.info(run_id)
        except UnknownRunError:
            info = None
        if info is not None:  # a request taken over from a worker that died after starting it
            if info.status == "running":
                async with store.follow(run_id, after=info.last_id).iterate() as events:
                    async for _ in events:  # until the lease lapses: ended failed, producer lost
                        pass
                info = await store.info(run_id)
            return f"taken over, not re-run ({info.status}: {info.error or 'ended by its first worker'})"
        if run_id in await self.queue.cancelled([run_id]):
            return "cancelled before it started"
        try:
            req = ChatCompletionRequest.model_validate_json(request.body)
        except ValidationError as exc:  # the server validates: only a foreign producer gets here
            await store.start(run_id)
            message = f"invalid run request: {exc.errors(include_url=False)[0]['msg']}"
            bad = [
                ErrorEvent(run_id=run_id, error_type="invalid_request", message=message),
                RunEnd(run_id=run_id, seq=1, status="failed"),
            ]
            await store.append(run_id, bad, first=0)
            await store.end(run_id, "failed", error=message)
            return "failed (invalid request)"
        source = _RunSource(self.state, req, run_id)
        self._sources[run_id] = source
        try:
            ended = await store.publish(Stream.defer(source._run), run_id)
        finally:
            self._sources.pop(run_id, None)
        return ended.status
