"""share / tee: every subscriber gets every item, slow-consumer policies, replay, closing."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import anyio
import pytest

from streamops import CustomEvent, RunEnd, RunStart, Stream, StreamClosedError, TextDelta, ToolCallEnd
from streamops.operators.share import DROPPED_DELTAS, ReplayUnavailableError, SlowConsumerError, share, tee

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


def run_events(n_deltas: int = 10) -> list[Any]:
    out: list[Any] = [RunStart(run_id="r", seq=0)]
    out += [TextDelta(run_id="r", seq=i + 1, delta=f"t{i}", block_id="b0") for i in range(n_deltas)]
    out.append(ToolCallEnd(run_id="r", seq=n_deltas + 1, call_id="c1", name="search", arguments="{}"))
    out.append(RunEnd(run_id="r", seq=n_deltas + 2))
    return out


async def source(
    items: list[Any], log: list[str], *, pause: bool = True, fail: BaseException | None = None
) -> AsyncGenerator[Any, None]:
    try:
        for x in items:
            if pause:
                await anyio.lowlevel.checkpoint()
            log.append(f"produced {getattr(x, 'seq', x)}")
            yield x
        if fail is not None:
            raise fail
    finally:
        log.append("source closed")


async def test_tee_gives_every_branch_every_item() -> None:
    log: list[str] = []
    items = list(range(200))
    a, b, c = tee(source(items, log), 3, buffer=4)
    results: dict[str, list[int]] = {}

    async def consume(name: str, s: Stream[int]) -> None:
        results[name] = await s.collect()

    async with anyio.create_task_group() as tg:
        for name, s in (("a", a), ("b", b), ("c", c)):
            tg.start_soon(consume, name, s)
    assert results == {"a": items, "b": items, "c": items}
    assert log.count("source closed") == 1
    assert sum(1 for e in log if e.startswith("produced")) == 200  # pulled once for everybody


async def test_block_policy_paces_the_source_to_the_slowest_consumer() -> None:
    log: list[str] = []
    fast, slow = tee(source(list(range(50)), log, pause=False), 2, buffer=3, policy="block")
    lag: list[int] = []
    produced = 0

    def count(_: Any) -> None:
        nonlocal produced
        produced = sum(1 for e in log if e.startswith("produced"))

    async def slow_consumer() -> list[int]:
        out = []
        async with slow.iterate() as it:
            async for x in it:
                count(x)
                lag.append(produced - len(out))
                out.append(x)
                await anyio.sleep(0.001)
        return out

    got: dict[str, list[int]] = {}

    async def run_fast() -> None:
        got["fast"] = await fast.collect()

    async def run_slow() -> None:
        got["slow"] = await slow_consumer()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_fast)
        tg.start_soon(run_slow)
    assert got["fast"] == got["slow"] == list(range(50))
    assert max(lag) <= 3 + 2  # its buffer, plus the item in hand and the one the pump holds


async def test_drop_deltas_keeps_every_non_delta_and_reports_the_gap() -> None:
    log: list[str] = []
    events = run_events(10)
    hub = share(source(events, log), buffer=4, policy="drop_deltas")
    fast, slow = hub.subscribe(), hub.subscribe()
    assert await fast.collect() == events  # the fast subscriber drove the whole run
    got = await slow.collect()  # the slow one had not pulled at all
    gaps = [e for e in got if isinstance(e, CustomEvent) and e.name == DROPPED_DELTAS]
    kept_deltas = [e for e in got if isinstance(e, TextDelta)]
    assert [type(e) for e in got if not isinstance(e, (TextDelta, CustomEvent))] == [RunStart, ToolCallEnd, RunEnd]
    assert gaps, got
    assert sum(g.data["count"] for g in gaps) + len(kept_deltas) == 10
    for g in gaps:
        assert g.data["kinds"] == ["text-delta"]
        assert g.data["block_ids"] == ["b0"]
        assert g.run_id == "r"
        assert g.data["first_seq"] <= g.data["last_seq"]
    # nothing out of order: seqs of what was kept, with gaps standing for their range, increase
    seqs = [g.data["first_seq"] if isinstance(g, CustomEvent) else g.seq for g in got]
    assert seqs == sorted(seqs)


async def test_fail_policy_gives_the_slow_consumer_a_typed_error() -> None:
    log: list[str] = []
    events = run_events(10)
    hub = share(source(events, log), buffer=4, policy="fail")
    fast, slow = hub.subscribe(), hub.subscribe()
    assert await fast.collect() == events
    got: list[Any] = []
    with pytest.raises(SlowConsumerError) as info:
        async for e in slow:
            got.append(e)
    assert info.value.capacity == 4
    assert got == events[:4]  # what it had buffered, then the error


async def test_replay_from_seq_and_too_old_raises() -> None:
    log: list[str] = []
    events = run_events(10)  # seq 0..12
    hub = share(source(events, log), replay=5)
    first = hub.subscribe()
    assert await first.collect() == events
    late = hub.subscribe(from_seq=9)
    assert await late.collect() == events[9:]
    with pytest.raises(ReplayUnavailableError) as info:
        hub.subscribe(from_seq=3)
    assert (info.value.requested, info.value.oldest) == (3, 8)
    assert isinstance(info.value, LookupError)


async def test_replay_mid_run_then_live_items() -> None:
    log: list[str] = []
    events = run_events(10)
    async with share(source(events, log), replay=100) as hub:
        first = hub.subscribe()
        got_first: list[Any] = []
        async with first.iterate() as it:
            async for e in it:
                got_first.append(e)
                if e.seq == 4:
                    late = hub.subscribe(from_seq=2)
                    break
        assert await late.collect() == events[2:]


async def test_closing_every_consumer_closes_the_source_but_one_does_not() -> None:
    log: list[str] = []
    a, b = tee(source(list(range(1000)), log), 2, buffer=2)
    async with a.iterate() as ita, b.iterate() as itb:
        assert await ita.__anext__() == 0
        assert await itb.__anext__() == 0
        await ita.aclose()
        assert "source closed" not in log
        assert [x async for x in itb][:3] == [1, 2, 3]
    assert log[-1] == "source closed"
    # and closing both early closes it
    log2: list[str] = []
    c, d = tee(source(list(range(1000)), log2), 2)
    async with c.iterate() as itc, d.iterate() as itd:
        await itc.__anext__()
        await itd.__anext__()
    assert log2[-1] == "source closed"
    assert sum(1 for e in log2 if e.startswith("produced")) < 1000


async def test_source_error_reaches_every_subscriber_as_itself() -> None:
    log: list[str] = []
    err = Boom("gone")
    a, b = tee(source([1, 2], log, fail=err), 2)
    caught = []
    for s in (a, b):
        got = []
        with pytest.raises(Boom) as info:
            async for x in s:
                got.append(x)
        caught.append(info.value)
        assert got == [1, 2]
    assert caught[0] is err and caught[1] is err


async def test_async_with_hub_owns_the_pump_and_closes_the_source() -> None:
    log: list[str] = []
    async with share(source(list(range(10**6)), log)) as hub:
        s = hub.subscribe()
        async with s.iterate() as it:
            assert await it.__anext__() == 0
    assert log[-1] == "source closed"
    with pytest.raises(StreamClosedError):
        hub.subscribe()


async def test_a_subscription_iterates_once_and_bad_arguments() -> None:
    hub = share(Stream.from_iterable([1, 2]))
    s = hub.subscribe()
    assert await s.collect() == [1, 2]
    with pytest.raises(StreamClosedError):
        await s.collect()
    with pytest.raises(ValueError, match="policy"):
        share(Stream.from_iterable([1]), policy="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer"):
        share(Stream.from_iterable([1]), buffer=0)
    with pytest.raises(ValueError, match="n must"):
        tee(Stream.from_iterable([1]), 0)
