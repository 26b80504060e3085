"""share / tee: every subscriber gets every item, slow-consumer policies, replay, closing."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamops import (
    CustomEvent,
    ReasoningDelta,
    RunEnd,
    RunStart,
    Stream,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
    UsageEvent,
)
from streamops.errors import StreamClosedError, TaskHostRequired
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
    results: dict[str, list[int]] = {}

    async def consume(name: str, s: Stream[int]) -> None:
        results[name] = await s.collect()

    async with tee(source(items, log), 3, buffer=4) as (a, b, c), anyio.create_task_group() as tg:
        for name, s in (("a", a), ("b", b), ("c", c)):
            tg.start_soon(consume, name, s)
    assert results == {"a": items, "b": items, "c": items}
    assert log.count("source closed") == 1
    assert sum(1 for e in log if e.startswith("produced")) == 200  # pulled once for everybody


async def test_block_policy_paces_the_source_to_the_slowest_consumer() -> None:
    log: list[str] = []
    lag: list[int] = []
    produced = 0

    def count(_: Any) -> None:
        nonlocal produced
        produced = sum(1 for e in log if e.startswith("produced"))

    async def slow_consumer(slow: Stream[int]) -> list[int]:
        out: list[int] = []
        async with slow.iterate() as it:
            async for x in it:
                count(x)
                lag.append(produced - len(out))
                out.append(x)
                await anyio.sleep(0.001)
        return out

    got: dict[str, list[int]] = {}

    async def run_fast(fast: Stream[int]) -> None:
        got["fast"] = await fast.collect()

    async def run_slow(slow: Stream[int]) -> None:
        got["slow"] = await slow_consumer(slow)

    teed = tee(source(list(range(50)), log, pause=False), 2, buffer=3, policy="block")
    async with teed as (fast, slow), anyio.create_task_group() as tg:
        tg.start_soon(run_fast, fast)
        tg.start_soon(run_slow, slow)
    assert got["fast"] == got["slow"] == list(range(50))
    assert max(lag) <= 3 + 2  # its buffer, plus the item in hand and the one the pump holds


async def test_drop_deltas_keeps_every_non_delta_and_reports_the_gap() -> None:
    log: list[str] = []
    events = run_events(10)
    async with share(source(events, log), buffer=4, policy="drop_deltas") as hub:
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
    got: list[Any] = []
    async with share(source(events, log), buffer=4, policy="fail") as hub:
        fast, slow = hub.subscribe(), hub.subscribe()
        assert await fast.collect() == events
        with pytest.raises(SlowConsumerError) as info:
            async for e in slow:  # a subscription needs no host of its own: the block owns the pump
                got.append(e)
    assert info.value.capacity == 4
    assert got == events[:4]  # what it had buffered, then the error


async def test_replay_from_seq_and_too_old_raises() -> None:
    log: list[str] = []
    events = run_events(10)  # seq 0..12
    async with share(source(events, log), replay=5) as hub:
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
    async with tee(source(list(range(1000)), log), 2, buffer=2) as (a, b):
        async with a.iterate() as ita, b.iterate() as itb:
            assert await ita.__anext__() == 0
            assert await itb.__anext__() == 0
            await ita.aclose()
            assert "source closed" not in log
            assert [x async for x in itb][:3] == [1, 2, 3]
        assert log[-1] == "source closed"
    # and closing both branches early closes it, inside the block
    log2: list[str] = []
    async with tee(source(list(range(1000)), log2), 2) as (c, d):
        async with c.iterate() as itc, d.iterate() as itd:
            await itc.__anext__()
            await itd.__anext__()
        assert log2[-1] == "source closed"
    assert sum(1 for e in log2 if e.startswith("produced")) < 1000


async def test_source_error_reaches_every_subscriber_as_itself() -> None:
    log: list[str] = []
    err = Boom("gone")
    caught = []
    async with tee(source([1, 2], log, fail=err), 2) as (a, b):
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
    async with share(Stream.from_iterable([1, 2])) as hub:
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


# ------------------------------------------------------------------------- the block owns the pump
async def test_subscribing_outside_the_block_raises_task_host_required() -> None:
    log: list[str] = []
    hub = share(source([1, 2, 3], log))
    with pytest.raises(TaskHostRequired, match=r"async with share\(source\) as hub") as info:
        hub.subscribe()
    assert "share()" in str(info.value)
    assert log == []  # nothing was pulled
    async with hub:  # the same hub then works inside its block
        assert await hub.subscribe().collect() == [1, 2, 3]
    with pytest.raises(StreamClosedError):
        async with hub:  # a hub is entered once
            pass


async def test_iterating_a_subscription_after_its_block_raises_task_host_required() -> None:
    log: list[str] = []
    async with share(source(list(range(10)), log)) as hub:
        late = hub.subscribe()
    with pytest.raises(TaskHostRequired, match="share"):
        await late.collect()
    async with tee(source(list(range(10)), log), 2) as (a, _b):
        pass
    with pytest.raises(TaskHostRequired, match=r"async with tee\(source, n\) as \(a, b"):
        async for _ in a:
            pass


async def test_a_subscriber_inside_the_block_when_it_exits_gets_what_it_holds_then_ends() -> None:
    log: list[str] = []
    got: list[int] = []
    async with share(source(list(range(10**6)), log), buffer=8) as hub:
        it = hub.subscribe().__aiter__()
        got.append(await it.__anext__())
        for _ in range(20):
            await anyio.lowlevel.checkpoint()  # let the pump fill the buffer
    assert log[-1] == "source closed"
    got += [x async for x in it]  # the buffered items, then the end (no error)
    assert got == list(range(len(got)))
    assert 1 < len(got) <= 1 + 8 + 1


async def test_tee_is_an_async_context_manager_only() -> None:
    with pytest.raises(TypeError, match="async with tee"):
        _a, _b = tee(Stream.from_iterable([1]))  # type: ignore[misc]
    async with tee(Stream.from_iterable([1, 2]), 3) as branches:
        assert len(branches) == 3
        assert [await b.collect() for b in branches] == [[1, 2]] * 3


async def test_a_bare_async_for_over_a_branch_runs_without_a_host() -> None:
    log: list[str] = []
    async with tee(source(list(range(5)), log), 1) as (only,):
        assert [x async for x in only] == list(range(5))
    assert log[-1] == "source closed"


async def test_body_error_leaves_the_block_as_itself_and_closes_the_source() -> None:
    log: list[str] = []
    err = Boom("body")
    with pytest.raises(Boom) as info:
        async with tee(source(list(range(10**6)), log), 2) as (a, _b), a.iterate() as it:
            await it.__anext__()
            raise err
    assert info.value is err
    assert log[-1] == "source closed"


# ------------------------------------------------------------------------------ properties
# Async @given tests: the anyio plugin runs each one on asyncio and on trio (conftest's
# anyio_backend), hypothesis drawing its examples inside each backend's event loop.
pauses_st = st.lists(st.integers(0, 3), min_size=1, max_size=5)
"""Checkpoints to take before each item (cycled): how a source or a consumer is paced."""

DELTA_TYPES = (TextDelta, ReasoningDelta, ToolCallDelta)


async def _pause(n: int) -> None:
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


async def paced_source(items: list[Any], log: list[str], pauses: list[int]) -> AsyncGenerator[Any, None]:
    try:
        for i, x in enumerate(items):
            await _pause(pauses[i % len(pauses)])
            log.append("produced")
            yield x
    finally:
        log.append("source closed")


async def paced_collect(s: Stream[Any], pauses: list[int]) -> list[Any]:
    out: list[Any] = []
    async for x in s:
        out.append(x)
        await _pause(pauses[len(out) % len(pauses)])
    return out


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.integers(), max_size=30),
    n=st.integers(1, 4),
    buffer=st.integers(1, 4),
    via=st.sampled_from(["share", "tee"]),
    source_pauses=pauses_st,
    sub_pauses=st.lists(pauses_st, min_size=4, max_size=4),
)
async def test_block_policy_gives_every_subscriber_exactly_the_source_items(
    items: list[int], n: int, buffer: int, via: str, source_pauses: list[int], sub_pauses: list[list[int]]
) -> None:
    """With policy="block", subscribers that exist before the source starts each get every
    item, in order, whatever the pace of each; the source is pulled once and closed once."""
    log: list[str] = []
    objs = [object() for _ in items]  # identity: each subscriber gets the source's own objects
    got: dict[int, list[Any]] = {}

    async def consume(k: int, s: Stream[Any]) -> None:
        got[k] = await paced_collect(s, sub_pauses[k])

    src = paced_source(objs, log, source_pauses)
    if via == "share":
        async with share(src, buffer=buffer, policy="block") as hub, anyio.create_task_group() as tg:
            for k, s in enumerate([hub.subscribe() for _ in range(n)]):
                tg.start_soon(consume, k, s)
    else:
        async with tee(src, n, buffer=buffer, policy="block") as subs, anyio.create_task_group() as tg:
            for k, s in enumerate(subs):
                tg.start_soon(consume, k, s)
    assert sorted(got) == list(range(n))
    for k in range(n):
        assert len(got[k]) == len(objs) and all(a is b for a, b in zip(got[k], objs, strict=True)), k
    assert log == ["produced"] * len(items) + ["source closed"]


def make_events(kinds: list[str]) -> list[Any]:
    """One event per kind; seq = position, so a gap's seq range names the deltas it stands for."""
    out: list[Any] = []
    for i, k in enumerate(kinds):
        if k == "text":
            out.append(TextDelta(run_id="r", seq=i, delta=f"t{i}", block_id=f"b{i % 3}"))
        elif k == "reasoning":
            out.append(ReasoningDelta(run_id="r", seq=i, delta=f"r{i}", block_id="rb"))
        elif k == "args":
            out.append(ToolCallDelta(run_id="r", seq=i, call_id=f"c{i % 2}", delta="{"))
        elif k == "tool-end":
            out.append(ToolCallEnd(run_id="r", seq=i, call_id=f"c{i % 2}", name="t", arguments="{}"))
        elif k == "usage":
            out.append(UsageEvent(run_id="r", seq=i, usage=Usage(output_tokens=i)))
        else:
            out.append(RunEnd(run_id="r", seq=i))
    return out


def _unique(xs: list[Any]) -> list[Any]:
    return list(dict.fromkeys(x for x in xs if x is not None))


def check_drop_deltas(source: list[Any], got: list[Any]) -> int:
    """What a drop_deltas subscriber got is the source with runs of deltas replaced by
    DROPPED_DELTAS events that count and describe them. Returns the number dropped."""
    gaps = [e for e in got if isinstance(e, CustomEvent) and e.name == DROPPED_DELTAS]
    rest = [e for e in got if not (isinstance(e, CustomEvent) and e.name == DROPPED_DELTAS)]
    # every non-delta reaches it, in order (the very objects)
    want_non_deltas = [e for e in source if not isinstance(e, DELTA_TYPES)]
    got_non_deltas = [e for e in rest if not isinstance(e, DELTA_TYPES)]
    assert [id(e) for e in got_non_deltas] == [id(e) for e in want_non_deltas]
    # the deltas it got are a subsequence of the source's deltas
    src_deltas = [e for e in source if isinstance(e, DELTA_TYPES)]
    kept = [e for e in rest if isinstance(e, DELTA_TYPES)]
    remaining = iter(src_deltas)
    assert all(any(e is d for d in remaining) for e in kept), "kept deltas are not a subsequence"
    kept_ids = {id(e) for e in kept}
    missing = [e for e in src_deltas if id(e) not in kept_ids]
    # the dropped counts add up to the deltas missing
    assert sum(g.data["count"] for g in gaps) == len(missing)
    # and each gap stands, in place, for the next run of missing deltas, which it describes
    expanded: list[Any] = []
    i = 0
    for e in got:
        if isinstance(e, CustomEvent) and e.name == DROPPED_DELTAS:
            run = missing[i : i + e.data["count"]]
            i += e.data["count"]
            assert run
            assert e.seq == e.data["first_seq"] == run[0].seq
            assert e.data["last_seq"] == run[-1].seq
            assert e.data["kinds"] == _unique([d.kind for d in run])
            assert e.data["block_ids"] == _unique([getattr(d, "block_id", None) for d in run])
            assert e.data["call_ids"] == _unique([getattr(d, "call_id", None) for d in run])
            expanded += run
        else:
            expanded.append(e)
    assert [id(e) for e in expanded] == [id(e) for e in source]
    return len(missing)


@settings(max_examples=80, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["text", "text", "reasoning", "args", "tool-end", "usage", "run-end"]), max_size=40),
    buffer=st.integers(1, 3),
    source_pauses=st.lists(st.integers(0, 1), min_size=1, max_size=4),
    sub_pauses=st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=5), min_size=1, max_size=3),
)
async def test_drop_deltas_never_loses_a_non_delta_and_accounts_for_every_dropped_delta(
    kinds: list[str], buffer: int, source_pauses: list[int], sub_pauses: list[list[int]]
) -> None:
    """With policy="drop_deltas", subscribers of any pace with a small buffer each get every
    non-delta in order, a subsequence of the deltas, and DROPPED_DELTAS events in place of the
    rest whose counts (and seq ranges, kinds, ids) match the deltas missing."""
    log: list[str] = []
    events = make_events(kinds)
    got: dict[int, list[Any]] = {}

    async def consume(k: int, s: Stream[Any]) -> None:
        got[k] = await paced_collect(s, sub_pauses[k])

    src = paced_source(events, log, source_pauses)
    async with share(src, buffer=buffer, policy="drop_deltas") as hub, anyio.create_task_group() as tg:
        for k, s in enumerate([hub.subscribe() for _ in sub_pauses]):
            tg.start_soon(consume, k, s)
    assert sorted(got) == list(range(len(sub_pauses)))
    for k in got:
        check_drop_deltas(events, got[k])
    assert log == ["produced"] * len(events) + ["source closed"]


async def test_drop_deltas_check_sees_drops_from_a_stalled_subscriber() -> None:
    """The property above does exercise drops: a subscriber stalled by pauses (more loop
    turns per item than the pump's grace) loses deltas."""
    events = make_events(["text"] * 20 + ["tool-end"] + ["args"] * 10 + ["run-end"])
    got: list[Any] = []

    async def slow(s: Stream[Any]) -> None:
        got.extend(await paced_collect(s, [20]))

    async with share(paced_source(events, [], [0]), buffer=2, policy="drop_deltas") as hub:
        s = hub.subscribe()
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow, s)
    assert check_drop_deltas(events, got) > 0


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(st.integers(1, 3), max_size=25),
    start=st.integers(0, 3),
    replay=st.integers(0, 30),
    k=st.integers(-2, 80),
    plain=st.booleans(),
)
async def test_replay_from_seq_after_the_end_gives_exactly_the_items_from_that_seq(
    steps: list[int], start: int, replay: int, k: int, plain: bool
) -> None:
    """After the source ended, subscribe(from_seq=k) gives exactly the items whose seq is
    >= k (an event's seq; a plain item's position) while the log still holds them all, and
    raises ReplayUnavailableError when items at or after k have left the log."""
    n = len(steps)
    if plain:
        seqs = list(range(n))
        items: list[Any] = [f"x{i}" for i in range(n)]
    else:
        seqs = list(itertools.accumulate(steps, initial=start))[1:]
        items = [
            TextDelta(run_id="r", seq=s, delta=str(s))
            if i % 3
            else ToolCallEnd(run_id="r", seq=s, call_id="c", name="t", arguments="{}")
            for i, s in enumerate(seqs)
        ]
    log: list[str] = []
    async with share(paced_source(items, log, [1]), replay=replay) as hub:
        assert await hub.subscribe().collect() == items  # drives the source to its end
        evicted = n > replay
        oldest = (seqs[n - replay] if replay else seqs[-1] + 1) if evicted else None
        if oldest is not None and k < oldest:
            with pytest.raises(ReplayUnavailableError) as info:
                hub.subscribe(from_seq=k)
            assert info.value.requested == k
        else:
            got = await hub.subscribe(from_seq=k).collect()
            want = [x for x, s in zip(items, seqs, strict=True) if s >= k]
            assert len(got) == len(want) and all(a is b for a, b in zip(got, want, strict=True))
    assert log == ["produced"] * n + ["source closed"]


# ------------------------------------------------------------------------------ bursts (issue 13)
async def burst_source(items: list[Any], burst: int, log: list[str]) -> AsyncGenerator[Any, None]:
    """Yields ``burst`` items at a time without awaiting (a body parsed in one chunk, a
    replay, ``from_iterable``), then checkpoints once."""
    try:
        for i, x in enumerate(items):
            if burst and i % burst == 0:
                await anyio.lowlevel.checkpoint()
            yield x
    finally:
        log.append("source closed")


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["text", "reasoning", "args", "tool-end", "usage"]), max_size=60),
    k=st.integers(1, 4),
    buffer=st.integers(1, 4),
    burst=st.integers(0, 60),
    policy=st.sampled_from(["block", "drop_deltas", "fail"]),
    sub_pauses=st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=3), min_size=4, max_size=4),
    via=st.sampled_from(["share", "tee"]),
)
async def test_every_policy_delivers_every_event_to_subscribers_that_keep_up_with_a_burst(
    kinds: list[str], k: int, buffer: int, burst: int, policy: Any, sub_pauses: list[list[int]], via: str
) -> None:
    """k subscribers that all consume (a few loop turns per item at most) each get every
    event, under every policy, whatever the source's burst size (0: the whole stream in one
    burst): the slow-consumer policy is for a subscriber behind while others progress."""
    events = [*make_events(kinds), RunEnd(run_id="r", seq=len(kinds))]
    log: list[str] = []
    got: dict[int, list[Any]] = {}

    async def consume(i: int, s: Stream[Any]) -> None:
        got[i] = await paced_collect(s, sub_pauses[i])

    src = burst_source(events, burst, log)
    if via == "share":
        async with share(src, buffer=buffer, policy=policy) as hub, anyio.create_task_group() as tg:
            for i, s in enumerate([hub.subscribe() for _ in range(k)]):
                tg.start_soon(consume, i, s)
    else:
        async with tee(src, k, buffer=buffer, policy=policy) as subs, anyio.create_task_group() as tg:
            for i, s in enumerate(subs):
                tg.start_soon(consume, i, s)
    for i in range(k):
        assert [id(e) for e in got[i]] == [id(e) for e in events], (i, got[i])
    assert log == ["source closed"]


async def test_drop_deltas_many_distinct_call_ids_are_all_reported_in_order() -> None:
    """10,000 dropped deltas of distinct tool calls make one gap naming every call id once,
    in order (the bookkeeping is linear: see
    docs/robustness.md for the figure)."""
    n = 10_000
    events: list[Any] = [ToolCallDelta(run_id="r", seq=i, call_id=f"c{i}", delta="{") for i in range(n)]
    events.append(RunEnd(run_id="r", seq=n))
    async with share(Stream.from_iterable(events), buffer=1, policy="drop_deltas") as hub:
        fast, slow = hub.subscribe(), hub.subscribe()
        assert len(await fast.collect()) == n + 1
        got = await slow.collect()
    gaps = [e for e in got if isinstance(e, CustomEvent)]
    assert len(gaps) == 1 and gaps[0].data["count"] == n
    assert gaps[0].data["call_ids"] == [f"c{i}" for i in range(n)]
    assert got == [gaps[0], events[-1]]
