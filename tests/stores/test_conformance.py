"""One conformance suite for every RunStore backend (memory, SQLite, Redis), asyncio and trio
(see conftest.CASES). Each test is about the interface, never about one backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamops as so
from streamops.errors import UnknownRunError
from streamops.events import BaseEvent, ErrorEvent, RunEnd, RunStart, TextDelta, to_json
from streamops.sinks.resume import ResumeUnavailableError
from streamops.stores import LeaseLostError, RunStore, entry_id, follow_all, publish

pytestmark = pytest.mark.anyio

MakeStore = Callable[..., RunStore]


def run_events(run: str, n: int, agent: str = "a") -> list[BaseEvent]:
    out: list[BaseEvent] = [RunStart(run_id=run, agent=agent, seq=0)]
    out += [TextDelta(run_id=run, agent=agent, seq=i + 1, delta=f"t{i} ") for i in range(n)]
    out.append(RunEnd(run_id=run, agent=agent, seq=n + 1))
    return out


def js(events: list[Any]) -> list[bytes]:
    return [to_json(e) for e in events]


async def test_publish_then_read_everything_with_position_ids(store: RunStore) -> None:
    events = [*run_events("r1", 5), TextDelta(run_id="r1", seq=3, delta=" \n")]  # a repeated seq too
    info = await store.publish(so.Stream.from_iterable(events), "r1", agent="writer", max_batch=2)
    assert (info.status, info.events, info.agent, info.error) == ("completed", len(events), "writer", None)
    assert info.ended is not None and info.ended >= info.started > 0
    assert info.last_id == entry_id("r1", len(events) - 1)
    entries = await store.read("r1")
    assert [eid for eid, _ in entries] == [f"r1:{i}" for i in range(len(events))]
    assert js([e for _, e in entries]) == js(events)


async def test_read_after_every_id_is_the_exact_suffix(store: RunStore) -> None:
    events = run_events("r", 20)
    await store.publish(so.Stream.from_iterable(events), "r")
    entries = await store.read("r")
    for i, (eid, _) in enumerate(entries):
        after = await store.read("r", eid)
        assert js([e for _, e in after]) == js(events[i + 1 :])
        assert js(await store.follow("r", after=eid).collect()) == js(events[i + 1 :])
    assert len(await store.read("r", entries[3][0], limit=5)) == 5


async def test_follow_tails_a_live_run_then_completes(store: RunStore) -> None:
    await store.start("live")
    got: list[BaseEvent] = []
    events = run_events("live", 30)

    async def follower() -> None:
        got.extend(await store.follow("live").collect())

    async with anyio.create_task_group() as tg:
        tg.start_soon(follower)
        for i in range(0, len(events), 7):
            await store.append("live", events[i : i + 7], first=i)
            await anyio.sleep(0.01)
        assert await store.end("live") is True
    assert js(got) == js(events)
    assert await store.end("live", "failed") is False  # the first end stands
    assert (await store.info("live")).status == "completed"


async def test_appends_are_idempotent_by_position(store: RunStore) -> None:
    await store.start("i")
    ev = run_events("i", 6)
    assert await store.append("i", ev[:4], first=0) == [f"i:{n}" for n in range(4)]
    await store.append("i", ev[:4], first=0)  # a retry after a lost reply
    await store.append("i", ev[2:6], first=2)  # overlapping
    await store.append("i", ev[6:], first=6)
    assert js([e for _, e in await store.read("i")]) == js(ev)
    with pytest.raises(ValueError, match="gap"):
        await store.append("i", ev[:1], first=len(ev) + 1)
    assert (await store.info("i")).events == len(ev)


async def test_bad_ids_are_typed_errors_and_lose_nothing(store: RunStore) -> None:
    events = run_events("b", 3)
    await store.publish(so.Stream.from_iterable(events), "b")
    await store.publish(so.Stream.from_iterable(run_events("other", 1)), "other")
    for bad in ("garbage", "b:x", "b:1.2", "other:1", "b:99", "b:-1", "b:01"):
        with pytest.raises(ResumeUnavailableError) as info:
            await store.read("b", bad)
        assert info.value.last_event_id == bad
        with pytest.raises(ResumeUnavailableError):
            await store.follow("b", after=bad).collect()
    with pytest.raises(UnknownRunError):
        await store.read("nope")
    with pytest.raises(UnknownRunError):
        await store.follow("nope").collect()
    with pytest.raises(ValueError, match="already"):
        await store.start("b")
    assert js([e for _, e in await store.read("b")]) == js(events)


async def test_retention_max_events_evicts_oldest(make_store: MakeStore) -> None:
    async with make_store(max_events=10) as store:
        events = run_events("m", 40)
        await store.publish(so.Stream.from_iterable(events), "m", max_batch=3)
        info = await store.info("m")
        assert (info.events, info.first) == (len(events), len(events) - 10)
        with pytest.raises(ResumeUnavailableError, match="evicted"):
            await store.read("m")
        with pytest.raises(ResumeUnavailableError):
            await store.read("m", "m:5")
        tail = await store.read("m", entry_id("m", len(events) - 6))
        assert js([e for _, e in tail]) == js(events[-5:])
        assert js([e for _, e in await store.read("m", entry_id("m", info.first - 1))]) == js(events[-10:])


async def test_ttl_forgets_finished_runs_only(make_store: MakeStore) -> None:
    async with make_store(ttl=0.2) as store:
        await store.publish(so.Stream.from_iterable(run_events("done", 2)), "done")
        await store.start("running")
        assert {r.run_id for r in await store.runs()} == {"done", "running"}
        await anyio.sleep(0.5)
        assert [r.run_id for r in await store.runs()] == ["running"]
        with pytest.raises(UnknownRunError):
            await store.info("done")


async def test_a_lapsed_lease_ends_the_run_failed_producer_lost(make_store: MakeStore) -> None:
    async with make_store(lease=0.3) as store:
        await store.start("dead", agent="ag")
        events = run_events("dead", 3)[:-1]
        await store.append("dead", events, first=0)  # then the producer "dies": no heartbeat
        with anyio.fail_after(5):
            got = await store.follow("dead").collect()
        assert js(got[: len(events)]) == js(events)
        err, end = got[len(events) :]
        assert isinstance(err, ErrorEvent) and err.message == "producer lost"
        assert isinstance(end, RunEnd) and end.status == "failed"
        info = await store.info("dead")
        assert (info.status, info.error, info.events) == ("failed", "producer lost", len(events) + 2)
        with pytest.raises(LeaseLostError):
            await store.append("dead", [TextDelta(run_id="dead", delta="late")], first=len(events))


async def test_publish_heartbeats_keep_a_slow_run_alive(make_store: MakeStore) -> None:
    async def slow() -> Any:
        yield RunStart(run_id="s")
        await anyio.sleep(0.6)  # twice the lease without an event
        yield RunEnd(run_id="s", seq=1)

    async with make_store(lease=0.3) as store:
        async with anyio.create_task_group() as tg:
            got: list[BaseEvent] = []

            async def follower() -> None:
                while True:
                    try:
                        got.extend(await store.follow("s").collect())
                        return
                    except UnknownRunError:
                        await anyio.sleep(0.01)

            tg.start_soon(follower)
            info = await store.publish(slow(), "s")
        assert info.status == "completed"
        assert [type(e) for e in got] == [RunStart, RunEnd]


async def test_publish_operator_failed_and_cancelled_runs(store: RunStore) -> None:
    async def boom() -> Any:
        yield RunStart(run_id="f")
        yield TextDelta(run_id="f", seq=1, delta="x")
        raise RuntimeError("upstream broke")

    with pytest.raises(RuntimeError, match="upstream broke"):
        await (so.Stream.from_async_iterable(boom()) | publish(store, "f")).collect()
    info = await store.info("f")
    assert info.status == "failed" and "upstream broke" in (info.error or "")
    stored = [e for _, e in await store.read("f")]
    assert [type(e) for e in stored] == [RunStart, TextDelta, ErrorEvent]
    assert isinstance(stored[-1], ErrorEvent) and stored[-1].error_type == "RuntimeError"

    passed = await (so.Stream.from_iterable(run_events("c", 10)) | publish(store, "c") | so.take(3)).collect()
    assert len(passed) == 3
    info = await store.info("c")
    assert info.status == "cancelled" and info.events == 3


async def test_watch_and_follow_all_merge_runs_as_they_start(store: RunStore) -> None:
    got: list[BaseEvent] = []
    sent = {run: run_events(run, 10, agent=run) for run in ("p1", "p2")}

    async def consumer() -> None:
        merged = follow_all(store) | so.take(2 * 12)
        got.extend(await merged.collect())

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await anyio.sleep(0.2)
        async with anyio.create_task_group() as producers:
            for run in ("p1", "p2"):
                producers.start_soon(store.publish, so.Stream.from_iterable(sent[run]), run)
    for run in ("p1", "p2"):
        assert js([e for e in got if e.run_id == run]) == js(sent[run])
    runs = await store.runs()
    assert sorted((r.run_id, r.status) for r in runs) == [("p1", "completed"), ("p2", "completed")]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6), cut=st.integers(0, 60))
def test_any_batching_stores_the_same_run_and_resumes_exactly(
    sizes: list[int], cut: int, make_store: MakeStore, anyio_backend: str
) -> None:
    """Property: whatever the batch sizes (and retries of a batch), the stored run is the
    events in order, and resuming after any id gives exactly the rest."""
    events = run_events("h", sum(sizes))[: sum(sizes)]

    async def main() -> None:
        async with make_store() as store:
            rid = f"h{cut}-{len(sizes)}-{sum(sizes)}-{id(sizes)}"
            await store.start(rid)
            pos = 0
            for n in sizes:
                await store.append(rid, events[pos : pos + n], first=pos)
                await store.append(rid, events[pos : pos + n], first=pos)  # retried
                pos += n
            await store.end(rid)
            stored = await store.read(rid)
            assert js([e for _, e in stored]) == js(events)
            k = cut % len(stored)
            assert js([e for _, e in await store.read(rid, stored[k][0])]) == js(events[k + 1 :])

    anyio.run(main, backend=anyio_backend)
