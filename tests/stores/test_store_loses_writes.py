"""When the store loses the last events a publisher had stored (Redis restarted without its
last second of writes under ``appendfsync everysec``), the publisher goes on: it stores the
lost events again at their positions from what it keeps (``keep``), or, when it no longer
holds them, one ``ErrorEvent(error_type="EventsLost")`` in their place; one warning either way.
Before, its next append failed on the gap (``ValueError``) and so did the run's stream.

The loss is simulated exactly on a real redis-server: the tail of the run's stream is deleted
(XDEL, XSETID back) and its hash set back to the shorter length, as an AOF missing those writes leaves it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from streamops.events import BaseEvent, ErrorEvent, RunEnd, RunStart, TextDelta
from streamops.stores import GapError, RedisStore
from streamops.testing import RedisServer


def events(n: int) -> list[BaseEvent]:
    return [
        RunStart(run_id="r"),
        *(TextDelta(run_id="r", seq=i + 1, delta=f"{i} ") for i in range(n)),
        RunEnd(run_id="r", seq=n + 1),
    ]


async def lose_tail(store: RedisStore, run_id: str, keep: int) -> int:
    """Make Redis forget run ``run_id``'s events from position ``keep`` on; how many it lost."""
    import redis.asyncio

    r = redis.asyncio.Redis.from_url(store.url)
    try:
        run, ev = f"{store.prefix}run:{run_id}", f"{store.prefix}ev:{run_id}"
        tail = await r.xrange(ev, min=f"0-{keep + 1}", max="+")
        if tail:
            await r.xdel(ev, *[eid for eid, _ in tail])
            await r.execute_command("XSETID", ev, f"0-{keep}", "MAXDELETEDID", "0-0")  # as if never added
        await r.hset(run, mapping={"events": keep})
        return len(tail)
    finally:
        await r.aclose()


def publish_with_a_loss(
    url: str, prefix: str, *, keep: int, lost_from: int
) -> tuple[list[BaseEvent], int, list[BaseEvent]]:
    sent = events(200)

    async def main() -> tuple[list[BaseEvent], int]:
        async with RedisStore(url, prefix=prefix) as store:
            lost = 0

            async def source() -> AsyncIterator[BaseEvent]:
                nonlocal lost
                for e in sent[:120]:
                    yield e
                with anyio.fail_after(10):  # the writer stored all 120
                    while (await store.info("r")).events < 120:  # noqa: ASYNC110 (Redis state: no event to wait on)
                        await anyio.sleep(0.01)
                lost = await lose_tail(store, "r", lost_from)
                for e in sent[120:]:
                    yield e

            info = await store.publish(source(), "r", max_batch=16, keep=keep)
            assert info.status == "completed"
            return [e for _, e in await store.read("r")], lost

    got, lost = anyio.run(main, backend="asyncio")
    return got, lost, sent


def test_a_publisher_stores_again_what_redis_lost_and_goes_on(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamops.stores"):
        got, lost, sent = publish_with_a_loss(redis_server.url, "loss1:", keep=4096, lost_from=70)
    assert lost == 50
    assert got == sent  # every event once, in order, at the position (id) it had
    warnings = [r for r in caplog.records if r.name == "streamops.stores"]
    assert len(warnings) == 1 and "lost its last 50 events (positions 70-119;" in warnings[0].getMessage()


def test_when_the_publisher_no_longer_holds_them_a_typed_event_marks_the_loss(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamops.stores"):
        got, lost, sent = publish_with_a_loss(redis_server.url, "loss2:", keep=10, lost_from=70)
    assert lost == 50
    marker = got[70]
    assert isinstance(marker, ErrorEvent) and marker.error_type == "EventsLost" and "lost 50 events" in marker.message
    assert got[:70] == sent[:70] and got[71:] == sent[120:]  # nothing twice, the rest in order
    assert len([r for r in caplog.records if r.name == "streamops.stores"]) == 1


def test_an_append_past_the_end_is_a_typed_gap_error(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisStore(redis_server.url, prefix="loss3:") as store:
            await store.start("g")
            await store.append("g", events(3), first=0)
            with pytest.raises(GapError) as err:
                await store.append("g", events(1), first=9)
            assert (err.value.first, err.value.stored) == (9, 5) and isinstance(err.value, ValueError)

    anyio.run(main, backend="asyncio")
