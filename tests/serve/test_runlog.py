"""RunLog (bounded log, exact resume after an id, follow), RunRegistry and RunHandle."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamops as so
from streamops.agent import Agent
from streamops.errors import StreamClosedError, StreamopsError
from streamops.events import BaseEvent, ErrorEvent, RunEnd, RunStart, TextDelta
from streamops.serve.runlog import RunLimitError, RunLog, RunRegistry, UnknownRunError
from streamops.sinks.resume import ResumeUnavailableError, event_id, parse_event_id
from tests._models import SlowModel


def run_events(n: int, run_id: str = "r1", agent: str = "a") -> list[BaseEvent]:
    """``RunStart``, ``n`` text deltas, ``RunEnd``: seq 0..n+1 (``ts`` = 1000 + seq, so two
    calls build equal events)."""
    out: list[BaseEvent] = [RunStart(run_id=run_id, agent=agent, seq=0, ts=1000.0)]
    out += [TextDelta(run_id=run_id, agent=agent, seq=i + 1, ts=1001.0 + i, delta=f"w{i} ") for i in range(n)]
    out.append(RunEnd(run_id=run_id, agent=agent, seq=n + 1, ts=1001.0 + n))
    return out


def seqs(events: list[BaseEvent]) -> list[int]:
    return [e.seq for e in events]


# ----------------------------------------------------------------------------------- event ids


@given(run_id=st.text(), seq=st.integers(min_value=0, max_value=2**63))
def test_event_id_round_trips_and_is_header_safe(run_id: str, seq: int) -> None:
    eid = event_id(TextDelta(run_id=run_id, seq=seq, delta=""))
    assert eid.isascii() and eid.isprintable()
    assert not any(c in eid for c in " \r\n\0")
    assert parse_event_id(eid) == (run_id, seq)


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "r1:", "r1:x", ":", "r1:1.", "r1:.5", "r1:1.x", "r1:1.-5", "r1:1.5.6", "r1:--1", "r1: 1", "r1:\u0661"],
)
def test_parse_event_id_rejects_what_it_did_not_write(bad: str) -> None:
    with pytest.raises(ValueError, match="not a streamops event id"):
        parse_event_id(bad)


def test_parse_event_id_reads_the_repeated_seq_form() -> None:
    assert parse_event_id("r1:1.5") == ("r1", 1)
    assert parse_event_id("a%20b:c:-3.12") == ("a b:c", -3)


# ----------------------------------------------------------------------------------- RunLog.after


def test_after_returns_exactly_the_events_after_the_id() -> None:
    log = RunLog()
    events = run_events(5)
    for e in events:
        log.append(e)
    assert log.after(None) == events
    assert log.after("") == events
    for i, e in enumerate(events):
        assert log.after(event_id(e)) == events[i + 1 :]
    assert log.closed


def test_evicted_ids_and_an_evicted_start_cannot_be_resumed() -> None:
    log = RunLog(capacity=3)
    events = run_events(3)  # 5 events: 0..4; 2, 3, 4 kept
    for e in events:
        log.append(e)
    assert len(log) == 3 and log.evicted == 2
    for gone in events[:2]:
        with pytest.raises(ResumeUnavailableError, match="no longer in this run's log") as info:
            log.after(event_id(gone))
        assert info.value.last_event_id == event_id(gone)
    with pytest.raises(ResumeUnavailableError, match="evicted"):
        log.after(None)
    assert seqs(log.after(event_id(events[2]))) == [3, 4]
    assert log.after(event_id(events[4])) == []


def test_an_id_of_another_run_or_not_an_id_is_refused() -> None:
    log = RunLog()
    for e in run_events(2, run_id="mine"):
        log.append(e)
    with pytest.raises(ResumeUnavailableError, match="another run"):
        log.after("theirs:1")
    with pytest.raises(ResumeUnavailableError, match="not a streamops event id"):
        log.after("garbage")
    with pytest.raises(ResumeUnavailableError, match="never sent"):
        log.after("mine:99")
    err = ResumeUnavailableError("x", None)
    assert isinstance(err, StreamopsError) and isinstance(err, LookupError)


def test_a_repeated_seq_gets_its_own_id_and_resumes_exactly() -> None:
    log = RunLog(auto_close=False)
    ids = [
        log.append(TextDelta(seq=0, delta="a")),
        log.append(TextDelta(seq=0, delta="b")),
        log.append(TextDelta(seq=1, delta="c")),
    ]
    assert ids == [":0", ":0.1", ":1"]
    assert [e.delta for e in log.after(":0")] == ["b", "c"]  # type: ignore[attr-defined]
    assert [e.delta for e in log.after(":0.1")] == ["c"]  # type: ignore[attr-defined]
    assert [e.delta for e in log.after(":1")] == []  # type: ignore[attr-defined]
    assert [log.id_of(e) for e in log.after(None)] == ids
    assert log.entries(":0") == list(zip(ids[1:], log.after(":0"), strict=True))


def test_a_merged_log_resumes_across_runs_and_closes_after_every_run_end() -> None:
    a, b = run_events(2, run_id="A"), run_events(2, run_id="B")
    merged = [a[0], b[0], a[1], b[1], a[2], a[3], b[2], b[3]]
    log = RunLog()
    for e in merged:
        log.append(e)
        assert log.closed == (e is merged[-1])
    assert log.after(event_id(a[1])) == merged[3:]
    with pytest.raises(StreamClosedError):
        log.append(TextDelta(run_id="A", seq=9, delta="late"))


@given(
    capacity=st.integers(min_value=1, max_value=12),
    n=st.integers(min_value=0, max_value=30),
    at=st.integers(min_value=-1, max_value=31),
)
def test_resume_is_exact_or_refused(capacity: int, n: int, at: int) -> None:
    """Property: after(id) is exactly the suffix after that event, or raises because the id is
    gone; it never returns a gap or a duplicate."""
    events = run_events(n)
    log = RunLog(capacity)
    for e in events:
        log.append(e)
    first_kept = max(0, len(events) - capacity)
    if at < 0:
        if first_kept:
            with pytest.raises(ResumeUnavailableError):
                log.after(None)
        else:
            assert log.after(None) == events
        return
    last_id = f"r1:{at}"
    if first_kept <= at < len(events):
        assert log.after(last_id) == events[at + 1 :]
    else:
        with pytest.raises(ResumeUnavailableError):
            log.after(last_id)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RunLog(0)


# ----------------------------------------------------------------------------------- follow


@pytest.mark.anyio
async def test_follow_replays_then_tails_live_until_the_run_ends() -> None:
    log = RunLog()
    events = run_events(6)
    for e in events[:3]:
        log.append(e)
    got: list[BaseEvent] = []

    async def write_rest() -> None:
        for e in events[3:]:
            await anyio.sleep(0.01)
            log.append(e)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_rest)
            async for e in log.follow(event_id(events[0])):
                got.append(e)
    assert got == events[1:]
    assert log.closed


@pytest.mark.anyio
async def test_several_followers_each_get_everything_once() -> None:
    log = RunLog(auto_close=False)
    events = run_events(20)
    results: dict[int, list[BaseEvent]] = {}

    async def follower(k: int) -> None:
        results[k] = [e async for e in log.follow(None)]

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for k in range(3):
                tg.start_soon(follower, k)
            for e in events:
                await anyio.lowlevel.checkpoint()
                log.append(e)
            log.close()
    assert all(r == events for r in results.values())


@pytest.mark.anyio
async def test_a_follower_that_falls_behind_the_capacity_is_told() -> None:
    log = RunLog(capacity=2, auto_close=False)
    events = run_events(5)
    log.append(events[0])
    got: list[BaseEvent] = []
    with pytest.raises(ResumeUnavailableError, match="fell 2 events behind") as info:
        async for e in log.follow(None):
            got.append(e)
            for later in events[1:5]:  # the consumer stalls while 4 more arrive: 3 and 4 kept
                log.append(later)
    assert got == events[:1]
    assert info.value.last_event_id == event_id(events[0])


@pytest.mark.anyio
async def test_follow_raises_at_once_for_an_unavailable_id() -> None:
    log = RunLog()
    with pytest.raises(ResumeUnavailableError):
        async for _ in log.follow("other:3"):
            pass


# ----------------------------------------------------------------------------------- RunRegistry


async def paced(events: list[BaseEvent], pause: float, closed: list[str]) -> AsyncGenerator[BaseEvent, None]:
    try:
        for e in events:
            await anyio.sleep(pause)
            yield e
    finally:
        closed.append("closed")


async def forever(closed: list[str]) -> AsyncGenerator[BaseEvent, None]:
    try:
        for i in range(1_000_000):  # bounded, but longer than any test
            await anyio.sleep(0.01)
            yield TextDelta(run_id="inf", seq=i, delta="x")
    finally:
        closed.append("closed")


@pytest.mark.anyio
async def test_registry_runs_a_stream_into_its_log_and_finds_it_again() -> None:
    closed: list[str] = []
    events = run_events(5)
    async with RunRegistry() as registry:
        handle = registry.start(so.Stream.from_async_iterable(paced(events, 0.001, closed)), run_id="job")
        assert registry.get("job") is handle and "job" in registry and len(registry) == 1
        with anyio.fail_after(5):
            got = [e async for e in handle.follow()]
        assert got == events
        await handle.wait()
        assert handle.done and handle.exception is None and handle.log.closed
        assert [e async for e in handle.follow(event_id(events[3]))] == events[4:]
    assert closed == ["closed"]
    assert "done" in repr(handle)


@pytest.mark.anyio
async def test_registry_errors() -> None:
    registry = RunRegistry()
    with pytest.raises(RuntimeError, match="open registry"):
        registry.start(so.Stream.from_iterable(run_events(1)))
    async with registry:
        with pytest.raises(UnknownRunError) as info:
            registry.get("nope")
        assert isinstance(info.value, KeyError) and isinstance(info.value, StreamopsError)
        assert "nope" in str(info.value)
        h = registry.start(so.Stream.from_iterable(run_events(1)))
        assert len(h.run_id) == 32
        with pytest.raises(ValueError, match="already"):
            registry.start(so.Stream.from_iterable(run_events(1)), run_id=h.run_id)
        with pytest.raises(ValueError, match="on_disconnect"):
            registry.start(so.Stream.from_iterable([]), on_disconnect="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_runs"):
        RunRegistry(max_runs=0)


@pytest.mark.anyio
async def test_cancel_closes_a_plain_stream_and_ends_its_log() -> None:
    closed: list[str] = []
    async with RunRegistry() as registry:
        handle = registry.start(so.Stream.from_async_iterable(forever(closed)))
        with anyio.fail_after(5):
            async for e in handle.follow():
                if e.seq == 3:
                    handle.cancel()
            await handle.wait()
        assert closed == ["closed"]
        assert handle.log.closed and handle.done
        handle.cancel()  # idempotent once done


@pytest.mark.anyio
async def test_cancel_asks_an_agent_stream_so_it_logs_a_cancelled_run_end() -> None:
    model = SlowModel([f"w{i} " for i in range(1000)], pause=0.01)
    stream = Agent(model).stream("x", run_id="agent-run")
    async with RunRegistry() as registry:
        handle = registry.start(stream)
        with anyio.fail_after(5):
            async for e in handle.follow():
                if isinstance(e, TextDelta) and e.delta == "w2 ":
                    handle.cancel()
            await handle.wait()
    end = handle.log.after(None)[-1]
    assert isinstance(end, RunEnd) and end.status == "cancelled"
    assert end.run_id == "agent-run"
    assert model.closed == 1


@pytest.mark.anyio
async def test_a_failing_stream_logs_an_error_event() -> None:
    async def boom() -> AsyncGenerator[BaseEvent, None]:
        yield RunStart(run_id="r", seq=0)
        raise RuntimeError("provider fell over")

    async with RunRegistry() as registry:
        handle = registry.start(so.Stream.from_async_iterable(boom()))
        await handle.wait()
    events = handle.log.after(None)
    assert isinstance(handle.exception, RuntimeError)
    err = events[-1]
    assert isinstance(err, ErrorEvent)
    assert (err.run_id, err.seq, err.error_type, err.message) == ("r", 1, "RuntimeError", "provider fell over")


@pytest.mark.anyio
async def test_leaving_the_registry_cancels_the_runs_still_going() -> None:
    closed: list[str] = []
    with anyio.fail_after(5):
        async with RunRegistry() as registry:
            handles = [registry.start(so.Stream.from_async_iterable(forever(closed))) for _ in range(3)]
            await anyio.sleep(0.05)
    assert closed == ["closed"] * 3
    assert all(h.done and h.log.closed for h in handles)


@pytest.mark.anyio
async def test_finished_runs_beyond_max_runs_are_evicted_running_ones_kept() -> None:
    closed: list[str] = []
    async with RunRegistry(max_runs=2) as registry:
        running = registry.start(so.Stream.from_async_iterable(forever(closed)), run_id="live")
        for i in range(4):
            h = registry.start(so.Stream.from_iterable(run_events(1, run_id=f"r{i}")), run_id=f"done{i}")
            await h.wait()
        assert "live" in registry
        assert [h.run_id for h in registry.runs()] == ["live", "done3"]
        running.cancel()
    with pytest.raises(UnknownRunError):
        registry.get("done0")


@pytest.mark.anyio
async def test_a_registry_full_of_running_runs_refuses_another_until_one_ends() -> None:
    closed: list[str] = []
    async with RunRegistry(max_runs=2) as registry:
        a = registry.start(so.Stream.from_async_iterable(forever(closed)), run_id="a")
        registry.start(so.Stream.from_async_iterable(forever(closed)), run_id="b")
        with pytest.raises(RunLimitError) as info:
            registry.start(so.Stream.from_iterable(run_events(1)), run_id="c")
        assert info.value.max_runs == 2 and isinstance(info.value, RuntimeError)
        assert [h.run_id for h in registry.runs()] == ["a", "b"]  # nothing was evicted or added
        a.cancel()
        await a.wait()
        registry.start(so.Stream.from_iterable(run_events(1)), run_id="c")  # the ended run made room
        assert [h.run_id for h in registry.runs()] == ["b", "c"]
        registry.get("b").cancel()


@pytest.mark.anyio
async def test_cancel_before_the_run_started_never_starts_it() -> None:
    started: list[int] = []

    async def source() -> AsyncGenerator[BaseEvent, None]:
        started.append(1)
        yield RunStart()

    async with RunRegistry() as registry:
        handle = registry.start(so.Stream.from_async_iterable(source()))
        handle.cancel()
        await handle.wait()
    assert started == [] and handle.log.closed and len(handle.log) == 0


@pytest.mark.anyio
async def test_start_from_a_worker_thread_is_refused_with_a_clear_error() -> None:
    async with RunRegistry() as registry:
        with pytest.raises(RuntimeError, match="event loop's thread"):
            await anyio.to_thread.run_sync(lambda: registry.start(so.Stream.from_iterable(run_events(1))))
    assert len(registry) == 0
