"""``follow_all(store)``: one live stream of every run that starts in a store, whoever
publishes it (the consumer side of N producer processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._host import current_host
from .._stream import Stream
from ..events import BaseEvent
from ._base import RunStore

if TYPE_CHECKING:
    import anyio
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["follow_all"]


def follow_all(store: RunStore, *, existing: bool = False, buffer: int = 1024) -> Stream[BaseEvent]:
    """Every event of every run that starts in ``store`` from now on (with ``existing``, of the
    runs running already too, from their first stored event), merged live.

    Provenance is the events' own ``run_id``/``agent``; each run's order is kept; runs
    interleave as their events arrive.

    - Emits: each stored event of each such run, once.
    - Completes: never by itself (more runs may start): close it (``take``, ``take_until``, a
      ``break`` in ``iterate()``).
    - Fails: when a run cannot be followed (expired, evicted under it) or the store fails; the
      other followers are cancelled.
    - Cancels: closing it cancels the watcher and every follower (tasks run in the terminal's
      task host, like ``merge``). Buffering: ``buffer`` events.

    Marble: runs ``a: -1-2-|`` and ``b: --x-|`` started while following give ``-1x2-...``.

    Raises (when iterated):
        TaskHostRequired: iterated by a bare ``async for``.
    """
    if buffer < 1:
        raise ValueError(f"buffer must be >= 1, got {buffer}")
    return Stream.defer(_AllRunsIterator, store, existing, buffer)


class _AllRunsIterator:
    """Not an async generator: the watcher and followers are tasks of the terminal's host."""

    __slots__ = ("_buffer", "_done", "_existing", "_recv", "_scope", "_store")

    def __init__(self, store: RunStore, existing: bool, buffer: int) -> None:
        self._store = store
        self._existing = existing
        self._buffer = buffer
        self._recv: MemoryObjectReceiveStream[BaseEvent] | None = None
        self._scope: anyio.CancelScope | None = None
        self._done: anyio.Event | None = None

    def __aiter__(self) -> _AllRunsIterator:
        return self

    async def __anext__(self) -> BaseEvent:
        import anyio

        if self._recv is None:
            host = current_host("follow_all()")
            send, self._recv = anyio.create_memory_object_stream[BaseEvent](self._buffer)
            self._scope = anyio.CancelScope()
            self._done = anyio.Event()
            host.start_soon(self._pump, send, name="streamops follow_all")
        try:
            return await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def _pump(self, send: MemoryObjectSendStream[BaseEvent]) -> None:
        import anyio

        assert self._scope is not None and self._done is not None
        try:
            with self._scope:
                async with send, anyio.create_task_group() as tg:
                    async for info in self._store.watch(existing=self._existing):
                        tg.start_soon(self._one, info.run_id, send.clone())
        finally:
            self._done.set()

    async def _one(self, run_id: str, send: MemoryObjectSendStream[BaseEvent]) -> None:
        async with send:
            async for event in self._store.follow(run_id):
                await send.send(event)

    async def aclose(self) -> None:
        """Cancel the watcher and followers and wait for them."""
        if self._scope is not None:
            self._scope.cancel()
            assert self._done is not None
            await self._done.wait()
        if self._recv is not None:
            self._recv.close()
