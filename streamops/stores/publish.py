"""``publish(store)``: the operator that writes a stream of events into a :class:`RunStore`."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from .._host import current_host
from .._stream import Stream
from ..errors import GapError
from ..events import BaseEvent, ErrorEvent
from ..operators.errors import error_event

if TYPE_CHECKING:
    import anyio
    from anyio.streams.memory import MemoryObjectReceiveStream

    from ._base import RunInfo, RunStore

__all__ = ["publish"]

_log = logging.getLogger("streamops.stores")

EVENTS_LOST = "EventsLost"
"""``error_type`` of the :class:`ErrorEvent` a publisher stores where its store lost events it
no longer holds (see :func:`publish`, ``keep``)."""


class _Writer:
    """The writer task's state: how many events it stored, the last ``keep`` of them (to store
    again if the store loses them), what failed it, when it is done."""

    __slots__ = ("done", "error", "kept", "pos")

    def __init__(self, done: anyio.Event, keep: int) -> None:
        self.done = done
        self.error: BaseException | None = None
        self.pos = 0
        self.kept: deque[BaseEvent] = deque(maxlen=keep)

    async def append(self, store: RunStore, run_id: str, batch: Sequence[BaseEvent]) -> None:
        """Store ``batch`` at ``pos``. When the store has fewer events than this writer stored
        (it lost its last writes: Redis restarted without them), store the lost ones again from
        ``kept`` and go on; if ``kept`` no longer holds them all, store an ``ErrorEvent``
        (``EventsLost``) in their place and go on from there. Logged once per gap (warning)."""
        try:
            await store.append(run_id, batch, first=self.pos)
        except GapError as gap:
            lost = self.pos - gap.stored
            if lost <= len(self.kept):
                redo = list(self.kept)[len(self.kept) - lost :]
                _log.warning(
                    "run %r: the store lost its last %d events (positions %d-%d; Redis restarted without its "
                    "last writes?): storing them again from the publisher's memory",
                    run_id,
                    lost,
                    gap.stored,
                    self.pos - 1,
                )
                await store.append(run_id, [*redo, *batch], first=gap.stored)
            else:
                message = (
                    f"the store lost {lost} events of this run (positions {gap.stored}-{self.pos - 1}) and the "
                    f"publisher kept only the last {len(self.kept)}: positions from {gap.stored} on are renumbered"
                )
                _log.warning("run %r: %s", run_id, message)
                ref = batch[0]
                marker = ErrorEvent(run_id=ref.run_id, agent=ref.agent, error_type=EVENTS_LOST, message=message)
                await store.append(run_id, [marker, *batch], first=gap.stored)
                self.kept.clear()
                self.pos = gap.stored + 1
        self.pos += len(batch)
        self.kept.extend(batch)

    async def run(
        self, store: RunStore, run_id: str, recv: MemoryObjectReceiveStream[BaseEvent], max_batch: int
    ) -> None:
        import anyio

        renew_every = store.lease / 3
        try:
            async with recv:
                while True:
                    first: BaseEvent | None = None
                    with anyio.move_on_after(renew_every):
                        try:
                            first = await recv.receive()
                        except anyio.EndOfStream:
                            return
                    if first is None:  # nothing to write for a third of the lease: heartbeat
                        await store._renew(run_id)
                        continue
                    batch = [first]
                    while len(batch) < max_batch:
                        try:
                            batch.append(recv.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    await self.append(store, run_id, batch)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()


def publish(
    store: RunStore,
    run_id: str | None = None,
    *,
    agent: str = "",
    max_batch: int = 512,
    buffer: int = 4096,
    keep: int = 4096,
    on_start: Callable[[RunInfo], object] | None = None,
) -> Callable[[Stream[BaseEvent]], Stream[BaseEvent]]:
    """Operator: store every event passing through in a new run of ``store``, and pass it on.

    ``stream | publish(store, "run-1")`` starts the run ``run-1`` (a random hex id when
    ``None``; ``on_start`` is called with its :class:`RunInfo`) when iteration starts. A writer
    task (hosted by the terminal, like ``merge``'s) appends what has arrived in batches of up to
    ``max_batch`` events, as soon as its previous append returned, and renews the producer lease
    when idle for ``store.lease / 3`` seconds.

    When the store loses events it had stored (Redis with ``appendfsync everysec`` restarted
    after a crash: up to about a second of writes), the next append finds the run shorter than
    what was sent (:class:`~streamops.stores.GapError`); the writer then stores the lost events
    again, at their positions, from the last ``keep`` events it holds, and goes on: followers see
    every event once, under the id it had before. If more were lost than it holds, it stores one
    ``ErrorEvent(error_type="EventsLost")`` in their place and goes on (the positions after it
    are renumbered: ids a follower received before the loss may then name other events).
    Either way one warning is logged (logger ``streamops.stores``).

    - Emits: each upstream event, unchanged, once it is in the writer's buffer (``buffer``
      events at most: a slow store slows the stream, nothing is dropped).
    - Completes: when upstream completes and every event is stored; the run ends ``"completed"``.
    - Fails: upstream raised (an ``ErrorEvent`` is stored, the run ends ``"failed"``, the error
      propagates), or the store failed (the run is ended ``"failed"`` if the store still answers;
      the store's error propagates).
    - Cancels: closing the stream early ends the run ``"cancelled"`` after storing what was sent.

    Marble: ``-a-b-|`` gives ``-a-b-|`` downstream and a stored run ``[a, b]`` ended completed.

    Raises (when iterated):
        TaskHostRequired: iterated by a bare ``async for`` (use a terminal or ``iterate()``).
        ValueError: ``run_id`` is taken.
    """
    if max_batch < 1 or buffer < 1 or keep < 0:
        raise ValueError(f"max_batch and buffer must be >= 1 and keep >= 0, got {max_batch}, {buffer}, {keep}")

    def op(stream: Stream[BaseEvent]) -> Stream[BaseEvent]:
        return Stream.defer(_published, stream, store, run_id, agent, max_batch, buffer, keep, on_start)

    return op


async def _published(
    upstream: Stream[BaseEvent],
    store: RunStore,
    run_id: str | None,
    agent: str,
    max_batch: int,
    buffer: int,
    keep: int,
    on_start: Callable[[RunInfo], object] | None,
) -> AsyncGenerator[BaseEvent, None]:
    """:func:`publish`'s stream: a fresh run in ``store`` for each iteration."""
    import anyio

    host = current_host("publish()")
    info = await store.start(run_id, agent=agent)
    rid = info.run_id
    if on_start is not None:
        on_start(info)
    send, recv = anyio.create_memory_object_stream[BaseEvent](buffer)
    writer = _Writer(anyio.Event(), keep)
    host.start_soon(writer.run, store, rid, recv, max_batch, name=f"streamops publish {rid}")
    last: BaseEvent | None = None
    status: Any = "cancelled"
    error: BaseException | None = None
    try:
        try:
            async with aclosing(upstream.__aiter__()) as it:
                async for event in it:
                    try:  # no checkpoint while the buffer has room: the writer gets batches
                        send.send_nowait(event)
                    except anyio.WouldBlock:
                        try:
                            await send.send(event)
                        except anyio.BrokenResourceError:
                            break
                    except anyio.BrokenResourceError:
                        break  # the writer failed: its error is raised below
                    last = event
                    yield event
            status = "completed"
        except Exception as exc:
            status, error = "failed", exc
            raise
    finally:
        with anyio.CancelScope(shield=True):
            await send.aclose()
            await writer.done.wait()
            if writer.error is not None:
                status = "failed"
            try:
                if error is not None and writer.error is None:
                    await store.append(rid, [error_event(error, last)], first=writer.pos)
                reason = repr(writer.error or error) if status == "failed" else None
                await store.end(rid, status, error=reason)
            except Exception:
                if writer.error is None and error is None:
                    raise
    if writer.error is not None:
        raise writer.error
