"""Time operators under a virtual clock (asyncio and trio): limits fire exactly on time and
the tests take milliseconds."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import streamops as so
from streamops.errors import (
    FirstEventTimeout,
    IdleTimeout,
    StepTimeout,
    StreamTimeout,
    TaskHostRequired,
    ToolTimeout,
    TotalTimeout,
)
from streamops.operators.time import batch, debounce, throttle, timeout
from streamops.testing import VirtualClockEventLoop, virtual_backends

_VIRTUAL = virtual_backends()


@pytest.fixture(params=_VIRTUAL, ids=["asyncio-virtual", "trio-virtual"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


class Source:
    """An async source that sleeps ``delays[i]`` before item ``i`` and records what happened."""

    def __init__(self, delays: Sequence[float], items: Sequence[Any] | None = None) -> None:
        self.delays = list(delays)
        self.items = list(items) if items is not None else list(range(len(delays)))
        self.closed = False
        self.pulled = 0

    async def gen(self) -> AsyncGenerator[Any, None]:
        try:
            for d, x in zip(self.delays, self.items, strict=True):
                await anyio.sleep(d)
                self.pulled += 1
                yield x
        finally:
            self.closed = True

    def stream(self) -> so.Stream[Any]:
        return so.Stream.from_async_iterable(self.gen())


async def timed(stream: so.Stream[Any]) -> list[tuple[float, Any]]:
    t0 = anyio.current_time()
    out = []
    async with stream.iterate() as it:
        async for x in it:
            out.append((round(anyio.current_time() - t0, 6), x))
    return out


@pytest.mark.anyio
async def test_idle_timeout_fires_exactly_at_its_limit_and_closes_the_source() -> None:
    src = Source([0.1, 0.2, 5.0])
    t0 = anyio.current_time()
    seen = []
    with pytest.raises(IdleTimeout) as info:
        async with (src.stream() | timeout(idle=1.0)).iterate() as it:
            async for x in it:
                seen.append(x)
    assert anyio.current_time() - t0 == pytest.approx(1.3)
    assert seen == [0, 1]
    assert src.closed
    assert info.value.limit == "idle"
    assert info.value.seconds == 1.0
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, StreamTimeout)


@pytest.mark.anyio
async def test_first_event_timeout() -> None:
    src = Source([3.0])
    t0 = anyio.current_time()
    with pytest.raises(FirstEventTimeout):
        await (src.stream() | timeout(first=2.0, idle=10.0)).collect()
    assert anyio.current_time() - t0 == pytest.approx(2.0)
    assert src.closed
    # a slow first event is fine when it comes in time; idle then governs the gaps
    assert await (Source([1.5, 9.0]).stream() | timeout(first=2.0, idle=10.0)).collect() == [0, 1]


@pytest.mark.anyio
async def test_total_timeout() -> None:
    src = Source([0.4] * 10)
    t0 = anyio.current_time()
    seen: list[int] = []
    with pytest.raises(TotalTimeout):
        await (src.stream() | timeout(total=1.0) | so.tap(seen.append)).collect()
    assert anyio.current_time() - t0 == pytest.approx(1.0)
    assert seen == [0, 1]


@pytest.mark.anyio
async def test_step_and_tool_timeouts() -> None:
    steps = [
        so.StepStart(step=0),
        so.TextDelta(delta="x"),
        so.StepEnd(step=0),
        so.StepStart(step=1),
        so.StepEnd(step=1),
    ]
    ok = Source([0.1, 0.1, 0.1, 0.1, 0.1], steps)
    assert len(await (ok.stream() | timeout(step=0.5)).collect()) == 5
    slow = Source([0.1, 0.1, 0.1, 0.1, 2.0], steps)
    t0 = anyio.current_time()
    with pytest.raises(StepTimeout):
        await (slow.stream() | timeout(step=0.5)).collect()
    assert anyio.current_time() - t0 == pytest.approx(0.4 + 0.5)
    tools = [
        so.ToolCallEnd(call_id="a", name="f", arguments="{}"),
        so.ToolCallEnd(call_id="b", name="g", arguments="{}"),
        so.ToolResult(call_id="a", name="f", result=1),
        so.ToolResult(call_id="b", name="g", result=2),
    ]
    src = Source([0.0, 0.5, 0.2, 3.0], tools)
    t0 = anyio.current_time()
    with pytest.raises(ToolTimeout) as info:
        await (src.stream() | timeout(tool=1.0)).collect()
    assert anyio.current_time() - t0 == pytest.approx(1.5)  # call "b" issued at 0.5, limit 1.0
    assert "'b'" in str(info.value)


@pytest.mark.anyio
async def test_timeout_needs_a_task_host_under_bare_async_for() -> None:
    with pytest.raises(TaskHostRequired):
        async for _ in Source([0.1]).stream() | timeout(idle=1):
            pass


@pytest.mark.anyio
async def test_a_pending_item_is_not_lost_by_a_deadline() -> None:
    """debounce waits with deadlines all the time; an item arriving while a wait times out is
    delivered, never dropped by a cancelled pull."""
    src = Source([0.6, 0.6, 0.6, 0.6])
    out = await (src.stream() | debounce(0.5)).collect()
    assert out == [0, 1, 2, 3]


@pytest.mark.anyio
async def test_batch_by_count_is_a_fused_stage_and_by_time_emits_on_the_window() -> None:
    op = batch(2)
    assert isinstance(op, so.Stage)
    assert await (so.Stream.from_iterable(range(5)) | op).collect() == [[0, 1], [2, 3], [4]]
    out = await timed(Source([0.1, 0.1, 0.1, 2.0, 0.1]).stream() | batch(within=0.5))
    # the second window would close at 2.8, but the source ends at 2.4 and flushes it
    assert out == [(pytest.approx(0.6), [0, 1, 2]), (pytest.approx(2.4), [3, 4])]
    out = await timed(Source([0.1, 0.1, 0.1]).stream() | batch(2, within=10))
    assert [b for _, b in out] == [[0, 1], [2]]


@pytest.mark.anyio
async def test_debounce_and_throttle_timing() -> None:
    out = await timed(Source([0.1, 0.1, 1.0, 0.1]).stream() | debounce(0.5))
    assert out == [(pytest.approx(0.7), 1), (pytest.approx(1.3), 3)]
    out = await timed(Source([0, 0, 0, 2, 0.1]).stream() | throttle(1))
    assert out == [(0, 0), (pytest.approx(1.0), 2), (pytest.approx(2.0), 3), (pytest.approx(2.1), 4)]


@pytest.mark.anyio
async def test_source_error_after_pending_item_delivers_the_item_first() -> None:
    async def bad() -> AsyncGenerator[int, None]:
        yield 1
        await anyio.sleep(0.1)
        raise KeyError("boom")

    seen: list[int] = []
    with pytest.raises(KeyError):
        await (so.Stream.from_async_iterable(bad()) | debounce(1.0) | so.tap(seen.append)).collect()
    assert seen == [1]


@pytest.mark.anyio
async def test_closing_the_consumer_closes_the_source_and_leaves_no_task() -> None:
    src = Source([0.1] * 100)
    async with (src.stream() | timeout(idle=5) | throttle(0.05)).iterate() as it:
        async for x in it:
            if x >= 3:
                break
    assert src.closed
    assert src.pulled < 100


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"idle": 0}, {"first": -1}, {"total": float("nan")}],
)
def test_timeout_rejects_bad_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"timeout|seconds"):
        timeout(**kwargs)


def test_batch_debounce_throttle_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="give count"):
        batch()
    with pytest.raises(ValueError, match="count must be"):
        batch(0)
    with pytest.raises(ValueError, match="within must be"):
        batch(within=0)
    with pytest.raises(ValueError, match="seconds must be"):
        debounce(0)
    with pytest.raises(ValueError, match="seconds must be"):
        throttle(-1)


@given(
    gaps=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=12),
    limit=st.integers(min_value=1, max_value=30),
)
def test_idle_timeout_fires_exactly_at_limit_for_any_gaps(gaps: list[int], limit: int) -> None:
    """Property on the virtual clock (tenths of a second): the stream yields every item whose
    gap is under the limit and fails exactly ``limit`` after the last one it yielded."""
    delays = [g / 10 for g in gaps]
    lim = limit / 10 + 0.05  # off the gaps' grid: no ties between a gap and the limit

    async def run() -> tuple[list[int], float | None]:
        seen: list[int] = []
        t0 = anyio.current_time()
        try:
            await (Source(delays).stream() | timeout(idle=lim) | so.tap(seen.append)).collect()
        except IdleTimeout:
            return seen, anyio.current_time() - t0
        return seen, None

    for backend, options in virtual_backends():
        seen, failed_at = anyio.run(run, backend=backend, backend_options=options)
        expected: list[int] = []
        t = 0.0
        fail: float | None = None
        for i, g in enumerate(gaps):
            if g / 10 > lim:
                fail = t + lim
                break
            t += g / 10
            expected.append(i)
        assert seen == expected
        if fail is None:
            assert failed_at is None
        else:
            assert failed_at == pytest.approx(fail)


Outcome = tuple[list[Any], float | None, StreamTimeout | None, bool]
"""What a run through ``timeout()`` gave: the items delivered, when (seconds from the start)
it failed and with which error (``None``, ``None`` if it completed), whether the source closed."""


def _run_timeout(delays: list[float], items: list[Any], **limits: float | None) -> list[Outcome]:
    """Run ``Source(delays, items) | timeout(**limits)`` on each virtual clock (asyncio, trio)."""

    async def run() -> Outcome:
        src = Source(delays, items)
        seen: list[Any] = []
        t0 = anyio.current_time()
        try:
            await (src.stream() | timeout(**limits) | so.tap(seen.append)).collect()
        except StreamTimeout as exc:
            return seen, anyio.current_time() - t0, exc, src.closed
        return seen, None, None, src.closed

    return [anyio.run(run, backend=backend, backend_options=options) for backend, options in virtual_backends()]


def _check_outcomes(
    outcomes: list[Outcome],
    items: list[Any],
    arrivals: list[float],
    fire: tuple[float, type[StreamTimeout], float, str] | None,
) -> None:
    """Compare each backend's run with the model: ``fire`` is ``None`` (every item, no error)
    or ``(at, error class, seconds, detail)``: exactly that error exactly at ``at``, after the
    items that arrived before ``at``."""
    for seen, failed_at, exc, closed in outcomes:
        assert closed
        if fire is None:
            assert (seen, failed_at, exc) == (items, None, None)
            continue
        at, error, seconds, detail = fire
        assert type(exc) is error
        assert exc.limit == error.limit
        assert exc.seconds == seconds
        assert detail in str(exc)
        assert failed_at == pytest.approx(at, abs=1e-6)
        assert seen == [x for x, t in zip(items, arrivals, strict=True) if t < at]


# Arrivals are on a grid of tenths of a second; each limit is off it by 0.05 s, so no deadline
# ties with an arrival.


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=10),
    first=st.integers(min_value=0, max_value=30),
    idle=st.none() | st.integers(min_value=0, max_value=30),
)
@example(gaps=[31, 1], first=30, idle=None)  # fails just before the first item
@example(gaps=[25, 40, 40], first=30, idle=None)  # in time; no limit after the first item
@example(gaps=[25, 3, 9], first=30, idle=5)  # idle does not govern the first item when first is given
def test_first_event_timeout_fires_exactly_at_its_limit_for_any_arrivals(
    gaps: list[int], first: int, idle: int | None
) -> None:
    """Property on the virtual clock: ``first`` fails the stream exactly ``first`` seconds
    after the start when the first item is later than that; otherwise every item comes, and
    only ``idle`` (if given) governs the gaps after the first item."""
    delays = [g / 10 for g in gaps]
    arrivals = list(itertools.accumulate(delays))
    lim = first / 10 + 0.05
    gap_lim = None if idle is None else idle / 10 + 0.05
    fire: tuple[float, type[StreamTimeout], float, str] | None = None
    if arrivals[0] > lim:
        fire = (lim, FirstEventTimeout, lim, "")
    elif gap_lim is not None:
        late = next((i for i in range(1, len(delays)) if delays[i] > gap_lim), None)
        if late is not None:
            fire = (arrivals[late - 1] + gap_lim, IdleTimeout, gap_lim, "")
    items = list(range(len(gaps)))
    _check_outcomes(_run_timeout(delays, items, first=lim, idle=gap_lim), items, arrivals, fire)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=12),
    total=st.integers(min_value=0, max_value=80),
)
@example(gaps=[4] * 10, total=10)  # fails between two items
@example(gaps=[4] * 10, total=40)  # the last item 0.05 s before the limit
def test_total_timeout_fires_exactly_at_its_limit_for_any_arrivals(gaps: list[int], total: int) -> None:
    """Property on the virtual clock: ``total`` fails the stream exactly ``total`` seconds after
    the start, after every item that arrived before, unless the source ends in time."""
    delays = [g / 10 for g in gaps]
    arrivals = list(itertools.accumulate(delays))
    lim = total / 10 + 0.05
    fire = (lim, TotalTimeout, lim, "") if arrivals[-1] > lim else None
    items = list(range(len(gaps)))
    _check_outcomes(_run_timeout(delays, items, total=lim), items, arrivals, fire)


@settings(max_examples=60, deadline=None)
@given(
    script=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=10)),
        min_size=1,
        max_size=14,
    ),
    step=st.integers(min_value=0, max_value=20),
)
@example(script=[(True, 1), (False, 1), (False, 1), (True, 1), (True, 1), (True, 20)], step=5)
@example(script=[(True, 0), (False, 9), (True, 9), (False, 30), (True, 1)], step=10)
def test_step_timeout_fires_exactly_at_its_limit_for_any_steps(script: list[tuple[bool, int]], step: int) -> None:
    """Property on the virtual clock: ``script`` is (step boundary?, gap before it in tenths);
    boundaries alternate ``step-start`` and ``step-end``, other items are text. ``step`` fails
    the stream exactly ``step`` seconds after the start of the first step that does not end
    within it (an open step is cut short by the source's end), and never between steps."""
    delays = [g / 10 for _, g in script]
    arrivals = list(itertools.accumulate(delays))
    lim = step / 10 + 0.05
    items: list[Any] = []
    steps: list[tuple[float, float]] = []  # (start, end or the source's end) of each step
    started: float | None = None
    for (boundary, _), t in zip(script, arrivals, strict=True):
        if not boundary:
            items.append(so.TextDelta(delta="x", block_id="b"))
        elif started is None:
            items.append(so.StepStart(step=len(steps)))
            started = t
        else:
            items.append(so.StepEnd(step=len(steps)))
            steps.append((started, t))
            started = None
    if started is not None:
        steps.append((started, arrivals[-1]))
    fire = next(((s + lim, StepTimeout, lim, "") for s, e in steps if e - s > lim), None)
    _check_outcomes(_run_timeout(delays, items, step=lim), items, arrivals, fire)


@settings(max_examples=80, deadline=None)
@given(
    script=st.lists(
        st.tuples(st.none() | st.integers(min_value=0, max_value=2), st.integers(min_value=0, max_value=10)),
        min_size=1,
        max_size=14,
    ),
    tool=st.integers(min_value=0, max_value=20),
)
@example(script=[(0, 0), (1, 5), (0, 2), (1, 30)], tool=10)  # the second call is late
@example(script=[(0, 0), (1, 0), (None, 30)], tool=10)  # two calls issued together, both late
@example(script=[(0, 0), (None, 9), (0, 9), (None, 30)], tool=10)  # answered in time
def test_tool_timeout_fires_exactly_at_its_limit_for_any_calls(script: list[tuple[int | None, int]], tool: int) -> None:
    """Property on the virtual clock: ``script`` is (tool slot or ``None`` for text, gap before
    it in tenths); a slot's occurrences alternate ``tool-call-end`` (a new call) and its
    ``tool-result`` or ``tool-error``. ``tool`` fails the stream exactly ``tool`` seconds after
    the earliest call not answered within it (naming it), whatever other calls are open."""
    delays = [g / 10 for _, g in script]
    arrivals = list(itertools.accumulate(delays))
    lim = tool / 10 + 0.05
    items: list[Any] = []
    calls: dict[str, list[float]] = {}  # call_id -> [issued, answered or the source's end]
    count: dict[int, int] = {}
    for (slot, _), t in zip(script, arrivals, strict=True):
        if slot is None:
            items.append(so.TextDelta(delta="x", block_id="b"))
            continue
        n = count[slot] = count.get(slot, -1) + 1
        call_id = f"c{slot}.{n // 2}"
        if n % 2 == 0:
            items.append(so.ToolCallEnd(call_id=call_id, name="f", arguments="{}"))
            calls[call_id] = [t, arrivals[-1]]
        else:
            if n % 4 == 1:
                items.append(so.ToolResult(call_id=call_id, name="f", result=n))
            else:
                items.append(so.ToolError(call_id=call_id, name="f", message="no"))
            calls[call_id][1] = t
    late = [(issued + lim, call_id) for call_id, (issued, end) in calls.items() if end - issued > lim]
    fire = None
    if late:
        at, call_id = min(late, key=lambda c: c[0])  # ties: the call issued first
        fire = (at, ToolTimeout, lim, f"call_id {call_id!r}")
    _check_outcomes(_run_timeout(delays, items, tool=lim), items, arrivals, fire)


def test_virtual_clock_loop_jumps_instead_of_sleeping() -> None:
    import asyncio
    import time

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - t0

    wall = time.perf_counter()
    with asyncio.Runner(loop_factory=VirtualClockEventLoop) as runner:
        assert runner.run(main()) == pytest.approx(3600)
    assert time.perf_counter() - wall < 5


def _debounce_model(arrivals: list[float], w: float) -> list[tuple[float, int]]:
    """Reference: item i is emitted ``w`` after it arrived when the next one comes later than
    that; the last one when the source ends (at its arrival)."""
    out = [(t + w, i) for i, (t, nxt) in enumerate(itertools.pairwise(arrivals)) if nxt - t > w]
    return [*out, (arrivals[-1], len(arrivals) - 1)]


def _throttle_model(arrivals: list[float], w: float) -> list[tuple[float, int]]:
    """Reference: an item is emitted at once when ``w`` passed since the last emission, else
    the latest held item when the window closes; the held one at once when the source ends."""
    out: list[tuple[float, int]] = []
    last: float | None = None
    held: int | None = None
    for i, t in enumerate(arrivals):
        if held is not None and last is not None and last + w < t:
            last = last + w
            out.append((last, held))
            held = None
        if held is None and (last is None or t - last >= w):
            last = t
            out.append((t, i))
        else:
            held = i
    if held is not None:
        out.append((arrivals[-1], held))
    return out


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=12),
    window=st.integers(min_value=0, max_value=4),
    which=st.sampled_from(["debounce", "throttle"]),
)
def test_debounce_and_throttle_match_their_reference_for_any_arrivals(gaps: list[int], window: int, which: str) -> None:
    """Property on the virtual clock: what is emitted, and when, equals a reference model of
    the marble diagram. Arrivals are whole seconds, the window is off that grid (and off its
    own multiples' ties with it) by 0.37 s, so no deadline ties with an arrival."""
    w = window + 0.37
    arrivals = list(itertools.accumulate(float(g) for g in gaps))
    op = debounce(w) if which == "debounce" else throttle(w)
    want = _debounce_model(arrivals, w) if which == "debounce" else _throttle_model(arrivals, w)

    async def run() -> list[tuple[float, Any]]:
        return await timed(Source([float(g) for g in gaps]).stream() | op)

    for backend, options in virtual_backends():
        got = anyio.run(run, backend=backend, backend_options=options)
        assert [x for _, x in got] == [i for _, i in want]
        assert [t for t, _ in got] == pytest.approx([t for t, _ in want], abs=1e-6)


# --- issue 15 item 13: ``first`` counts the first content event, not run-start/step-start ---


def _lifecycle(i: int) -> Any:
    return so.RunStart(run_id="r") if i == 0 else so.StepStart(run_id="r", step=i)


@pytest.mark.anyio
async def test_first_fires_on_a_silent_model_that_only_started_its_run() -> None:
    """An agent run emits run-start and step-start at once, then its model says nothing:
    ``first`` fails it on time (before, the lifecycle events counted as the first event)."""
    src = Source([0.0, 0.0, 60.0], [so.RunStart(run_id="r"), so.StepStart(run_id="r"), so.TextDelta(delta="hi")])
    t0 = anyio.current_time()
    seen: list[Any] = []
    with pytest.raises(FirstEventTimeout):
        await (src.stream() | timeout(first=5.0) | so.tap(seen.append)).collect()
    assert anyio.current_time() - t0 == pytest.approx(5.0)
    assert [e.kind for e in seen] == ["run-start", "step-start"]  # nothing received is lost
    assert src.closed


@pytest.mark.anyio
async def test_first_counts_any_item_when_asked() -> None:
    items = [so.RunStart(run_id="r"), so.StepStart(run_id="r"), so.TextDelta(delta="hi")]
    out = await (Source([0.0, 0.0, 60.0], items).stream() | timeout(first=5.0, first_counts="any")).collect()
    assert out == items
    by_step = timeout(first=5.0, first_counts=lambda e: isinstance(e, so.StepStart))
    assert await (Source([0.0, 0.0, 60.0], items).stream() | by_step).collect() == items
    with pytest.raises(ValueError, match="first_counts"):
        timeout(first=1.0, first_counts="all")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=10),
    content=st.lists(st.booleans(), min_size=10, max_size=10),
    first=st.integers(min_value=0, max_value=30),
    idle=st.none() | st.integers(min_value=0, max_value=30),
)
@example(gaps=[0, 0, 31], content=[False, False, True] + [False] * 7, first=30, idle=None)
@example(gaps=[0, 10, 10, 10, 10], content=[False] * 4 + [True] * 6, first=30, idle=5)
def test_first_counts_only_content_events_for_any_arrivals(
    gaps: list[int], content: list[bool], first: int, idle: int | None
) -> None:
    """Property on the virtual clock, over streams mixing lifecycle events and text deltas:
    ``first`` fails the stream exactly ``first`` seconds after the start unless a content
    event arrived before; lifecycle events before it neither satisfy ``first`` nor start
    ``idle``, which governs the gaps after the first content event only."""
    delays = [g / 10 for g in gaps]
    arrivals = list(itertools.accumulate(delays))
    items = [so.TextDelta(run_id="r", delta=str(i)) if content[i] else _lifecycle(i) for i in range(len(gaps))]
    lim = first / 10 + 0.05
    gap_lim = None if idle is None else idle / 10 + 0.05
    fire: tuple[float, type[StreamTimeout], float, str] | None = None
    first_content = next((i for i in range(len(gaps)) if content[i]), None)
    if first_content is None:
        if arrivals[-1] > lim:
            fire = (lim, FirstEventTimeout, lim, "")
    elif arrivals[first_content] > lim:
        fire = (lim, FirstEventTimeout, lim, "")
    elif gap_lim is not None:
        late = next((i for i in range(first_content + 1, len(delays)) if delays[i] > gap_lim), None)
        if late is not None:
            fire = (arrivals[late - 1] + gap_lim, IdleTimeout, gap_lim, "")
    _check_outcomes(_run_timeout(delays, items, first=lim, idle=gap_lim), items, arrivals, fire)


# --- batch keeps one pending batch per run (issue 15, item 4) ---------------------------------


def _batch_stage(count: int, items: list[Any]) -> list[list[Any]]:
    """Drive ``batch(count)`` (a fused stage) synchronously: push every item, then end."""
    stage = batch(count)
    out: list[list[Any]] = []
    ended: list[bool] = []
    push, end = stage.bind(out.append, lambda: ended.append(True))
    for x in items:
        push(x)
    end()
    assert ended == [True]
    return out


def _run_items(i: int, n: int) -> list[Any]:
    """Run ``i``'s items: text deltas of (run_id, agent) ``(r{i%2}, a{i//2})`` (so runs share a
    run_id or an agent but never both), or, for ``i == 4``, plain ints (not events)."""
    if i == 4:
        return list(range(n))
    return [so.TextDelta(delta=f"{i}.{j}", run_id=f"r{i % 2}", agent=f"a{i // 2}", seq=j) for j in range(n)]


def _interleave(runs: list[list[Any]], order: list[int]) -> list[Any]:
    queues = [list(r) for r in runs]
    merged: list[Any] = []
    for k in order:  # take the next item of run k (if any left)
        q = queues[k % len(queues)]
        if q:
            merged.append(q.pop(0))
    for q in queues:
        merged += q
    return merged


def _owner(runs: list[list[Any]], x: Any) -> int:
    return next(i for i, r in enumerate(runs) if any(y is x for y in r))


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=5),
    order=st.lists(st.integers(min_value=0, max_value=4), max_size=50),
    count=st.integers(min_value=1, max_value=4),
)
@example(sizes=[3, 2], order=[0, 1, 0, 0, 1], count=2)
def test_merged_runs_are_batched_independently(sizes: list[int], order: list[int], count: int) -> None:
    # for any interleaving of k runs (and of items that are not events), batching the merged
    # stream by count gives, run by run, the batches of batching each run alone
    runs = [_run_items(i, n) for i, n in enumerate(sizes)]
    out = _batch_stage(count, _interleave(runs, order))
    owners = []
    for b in out:
        assert b and len({_owner(runs, x) for x in b}) == 1, f"a batch mixes runs: {b}"
        owners.append(_owner(runs, b[0]))
    for i, items in enumerate(runs):
        assert [b for b, o in zip(out, owners, strict=True) if o == i] == _batch_stage(count, items)


def test_batch_at_the_end_flushes_every_run_in_first_arrival_order() -> None:
    a = [so.TextDelta(delta=f"a{j}", run_id="a") for j in range(4)]
    b = [so.TextDelta(delta=f"b{j}", run_id="b") for j in range(2)]
    c = [so.TextDelta(delta="c0", run_id="a", agent="sub")]  # same run_id, another agent
    merged = [a[0], b[0], a[1], a[2], 7, c[0], b[1], 8, a[3], 9]
    out = _batch_stage(3, merged)
    # a fills first; then b's pending batch is oldest, then the ints, then c, then a's new one
    assert out == [[a[0], a[1], a[2]], [7, 8, 9], [b[0], b[1]], [c[0]], [a[3]]]


@pytest.mark.anyio
async def test_batch_within_keeps_each_runs_window() -> None:
    a = [so.TextDelta(delta=f"a{j}", run_id="a") for j in range(3)]
    b = [so.TextDelta(delta=f"b{j}", run_id="b") for j in range(2)]
    # arrivals: a0 0.1, b0 0.3, a1 0.4, b1 0.5, a2 1.0 (end of stream at 1.0)
    src = Source([0.1, 0.2, 0.1, 0.1, 0.5], [a[0], b[0], a[1], b[1], a[2]])
    out = await timed(src.stream() | batch(within=0.5))
    assert out == [
        (pytest.approx(0.6), [a[0], a[1]]),  # a's window: 0.1 + 0.5
        (pytest.approx(0.8), [b[0], b[1]]),  # b's window: 0.3 + 0.5
        (pytest.approx(1.0), [a[2]]),  # flushed by the end of the stream
    ]
    src = Source([0.1, 0.1, 0.1, 0.1], [a[0], b[0], a[1], b[1]])
    out = await timed(src.stream() | batch(2, within=10))
    assert out == [(pytest.approx(0.3), [a[0], a[1]]), (pytest.approx(0.4), [b[0], b[1]])]


@pytest.mark.anyio
async def test_batch_flushes_every_run_before_an_upstream_error() -> None:
    a0, b0, a1 = (so.TextDelta(delta=d, run_id=d[0]) for d in ("a0", "b0", "a1"))

    async def bad() -> AsyncGenerator[Any, None]:
        for x in (a0, b0, a1):
            yield x
        await anyio.sleep(0.1)
        raise KeyError("boom")

    for op in (batch(5), batch(5, within=1)):
        seen: list[Any] = []
        with pytest.raises(KeyError):
            await (so.Stream.from_async_iterable(bad()) | op | so.tap(seen.append)).collect()
        assert seen == [[a0, a1], [b0]]


def _run_batch_timed(items: list[Any], arrivals: list[float], count: int | None, within: float) -> list[Any]:
    """``batch(count, within=within)`` over items arriving at ``arrivals`` (seconds), on each
    virtual clock: a list per backend of (emit time, batch)."""
    delays = [t - s for s, t in zip([0.0, *arrivals], arrivals, strict=False)]

    async def run() -> list[tuple[float, Any]]:
        return await timed(Source(delays, items).stream() | batch(count, within=within))

    return [anyio.run(run, backend=backend, backend_options=options) for backend, options in virtual_backends()]


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(st.lists(st.integers(min_value=0, max_value=20), max_size=6), min_size=1, max_size=3),
    count=st.none() | st.integers(min_value=1, max_value=3),
    window=st.integers(min_value=1, max_value=8),
)
def test_merged_runs_are_batched_independently_in_time(runs: list[list[int]], count: int | None, window: int) -> None:
    # each run gets its own arrival times (tenths of a second); the window ends between two
    # ticks so no arrival ties with a deadline. Run by run, the merged stream gives the batches
    # of the run alone, at the same times (but for the run's last batch: alone, the run's end
    # flushes it; merged, the other runs keep the stream open)
    within = window / 10 + 0.05
    per_run = []
    for i, gaps in enumerate(runs):
        times = [t / 10 for t in itertools.accumulate(gaps)]
        evs = [so.TextDelta(delta=f"{i}.{j}", run_id=f"r{i}") for j in range(len(gaps))]
        per_run.append((times, evs))
    merged = sorted(((t, i, j) for i, (times, _) in enumerate(per_run) for j, t in enumerate(times)))
    items = [per_run[i][1][j] for _, i, j in merged]
    arrivals = [t for t, _, _ in merged]
    for out in _run_batch_timed(items, arrivals, count, within):
        for i, (times, evs) in enumerate(per_run):
            mine = [(t, b) for t, b in out if b[0].run_id == f"r{i}"]
            assert all(x.run_id == f"r{i}" for _, b in mine for x in b)
            alone = _run_batch_timed(evs, times, count, within)[0]
            assert [b for _, b in mine] == [b for _, b in alone]
            assert [t for t, _ in mine[:-1]] == [t for t, _ in alone[:-1]]
