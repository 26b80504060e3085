"""``errors_as_events()``: a failing upstream becomes an ``ErrorEvent`` and the end."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamops import Stream
from streamops.events import BaseEvent, ErrorEvent, TextDelta
from streamops.operators import errors_as_events, take
from streamops.operators.errors import error_event

pytestmark = pytest.mark.anyio


class Boom(RuntimeError):
    pass


def deltas(n: int, run_id: str = "r", agent: str = "a") -> list[BaseEvent]:
    return [TextDelta(run_id=run_id, agent=agent, seq=i, ts=1000.0 + i, delta=f"t{i}") for i in range(n)]


def source(events: list[BaseEvent], fail: bool, closed: list[bool]) -> Stream[BaseEvent]:
    async def gen() -> AsyncGenerator[BaseEvent, None]:
        try:
            for e in events:
                yield e
                await anyio.lowlevel.checkpoint()
            if fail:
                raise Boom("upstream broke")
        finally:
            closed.append(True)

    return Stream.defer(gen)


@given(n=st.integers(0, 8), fail=st.booleans(), run_id=st.text(max_size=5))
async def test_events_pass_unchanged_and_a_failure_becomes_one_error_event_last(
    n: int, fail: bool, run_id: str
) -> None:
    events = deltas(n, run_id=run_id)
    closed: list[bool] = []
    out = await (source(events, fail, closed) | errors_as_events()).collect()
    assert out[:n] == events
    if fail:
        assert len(out) == n + 1
        err = out[-1]
        assert isinstance(err, ErrorEvent)
        assert (err.error_type, err.message) == ("Boom", "upstream broke")
        assert err.seq == n  # the next seq: 0 with no event before
        assert err.run_id == (run_id if n else "")
        want = error_event(Boom("upstream broke"), events[-1] if events else None)
        assert (err.run_id, err.agent, err.seq) == (want.run_id, want.agent, want.seq)
    else:
        assert len(out) == n
    assert closed == [True]


@given(n=st.integers(0, 5))
async def test_reraise_emits_the_error_event_then_raises_the_upstreams_exception(n: int) -> None:
    seen: list[BaseEvent] = []
    closed: list[bool] = []
    with pytest.raises(Boom, match="upstream broke"):
        async for e in source(deltas(n), True, closed) | errors_as_events(reraise=True):
            seen.append(e)
    assert seen[:n] == deltas(n)
    assert isinstance(seen[-1], ErrorEvent) and len(seen) == n + 1
    assert closed == [True]


async def test_the_downstream_stopping_closes_the_upstream_and_emits_no_error() -> None:
    closed: list[bool] = []
    out = await (source(deltas(5), True, closed) | errors_as_events() | take(2)).collect()
    assert out == deltas(2)
    assert closed == [True]


async def test_cancellation_is_not_turned_into_an_event() -> None:
    async def forever() -> AsyncGenerator[BaseEvent, None]:
        yield deltas(1)[0]
        await anyio.sleep_forever()

    seen: list[BaseEvent] = []
    with anyio.move_on_after(0.05):
        async for e in Stream.defer(forever) | errors_as_events():
            seen.append(e)
    assert seen == deltas(1)
