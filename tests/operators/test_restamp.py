"""``restamp`` and its ``Sequencer``: one unique, monotonic seq sequence over a stream."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamops import Stream
from streamops.events import BaseEvent, ErrorEvent, TextDelta
from streamops.operators import Sequencer, restamp

pytestmark = pytest.mark.anyio

events = st.lists(
    st.one_of(
        st.builds(
            lambda s, r, a, d: TextDelta(run_id=r, agent=a, seq=s, delta=d),
            st.integers(0, 5),
            st.sampled_from(["", "r1", "r2"]),
            st.sampled_from(["", "x"]),
            st.text(max_size=3),
        ),
        st.integers(),  # not an event: passes unchanged
    ),
    max_size=30,
)


@given(
    items=events,
    run_id=st.one_of(st.none(), st.just("run")),
    agent=st.one_of(st.none(), st.just("bot")),
    backend=st.sampled_from(["asyncio", "trio"]),
)
def test_restamp_numbers_every_event_once_and_changes_nothing_else(
    items: list[Any], run_id: str | None, agent: str | None, backend: str
) -> None:
    seqs = [i.seq for i in items if isinstance(i, BaseEvent)]
    out = Stream.from_iterable(items).pipe(restamp(run_id=run_id, agent=agent)).to_list(backend=backend)
    assert len(out) == len(items)
    evs = [(i, o) for i, o in zip(items, out, strict=True) if isinstance(i, BaseEvent)]
    assert [o.seq for _, o in evs] == list(range(len(evs)))  # unique, monotonic, from 0
    for i, o in zip(items, out, strict=True):
        if not isinstance(i, BaseEvent):
            assert o is i
            continue
        assert o.run_id == (i.run_id if run_id is None else run_id)
        assert o.agent == (i.agent if agent is None else agent)
        assert (o.delta, o.ts, o.raw, type(o)) == (i.delta, i.ts, i.raw, type(i))
        if (o.seq, o.run_id, o.agent) == (i.seq, i.run_id, i.agent):
            assert o is i  # already numbered so: passed as is
    assert [i.seq for i, _ in evs] == seqs  # the inputs themselves are not changed
    again = Stream.from_iterable(items).pipe(restamp(run_id=run_id, agent=agent)).to_list()
    assert [getattr(o, "seq", None) for o in again] == [getattr(o, "seq", None) for o in out]  # fresh per iteration


async def test_a_shared_sequencer_numbers_events_inserted_after_restamp_in_stream_order() -> None:
    # Two events come out of one fused push (``b`` and ``B``): restamp numbers each only when
    # pulled, so an ErrorEvent inserted after ``b`` by a later operator gets the seq between.
    # (A restamp fused as a Stage after ``flat`` numbers both in that push: ERR would get 3, B 2.)
    seq = Sequencer(run_id="r", agent="a")

    def split(e: Any) -> list[Any]:
        return [e, TextDelta(delta=e.delta.upper())] if e.delta == "b" else [e]

    async def insert(up: Stream[Any]) -> Any:
        async for e in up:
            yield e
            if e.delta == "b":
                yield seq.make(ErrorEvent, error_type="hook_error", message="after b")

    src = Stream.from_iterable([TextDelta(delta="a"), TextDelta(delta="b"), TextDelta(delta="c")])
    spread = src.pipe(_flat(split)).pipe(restamp(seq))
    out = await Stream.defer(insert, spread).collect()
    assert [getattr(e, "delta", "ERR") for e in out] == ["a", "b", "ERR", "B", "c"]
    assert [e.seq for e in out] == [0, 1, 2, 3, 4]
    assert {(e.run_id, e.agent) for e in out} == {("r", "a")}


async def test_a_consumer_that_leaves_closes_the_upstream_and_nothing_more_is_numbered() -> None:
    closed: list[bool] = []
    seq = Sequencer(run_id="r")

    async def source() -> Any:
        try:
            for i in range(100):
                yield TextDelta(delta=str(i), seq=7)
                yield i  # not an event: passes, not counted
        finally:
            closed.append(True)

    got: list[Any] = []
    async with Stream.defer(source).pipe(restamp(seq)).iterate() as it:
        async for x in it:
            got.append(x)
            if len(got) == 5:
                break
    assert closed == [True]
    assert [(x.delta, x.seq) if isinstance(x, TextDelta) else x for x in got] == [("0", 0), 0, ("1", 1), 1, ("2", 2)]
    assert seq.next == 3  # numbered when pulled: nothing past what the consumer received


async def test_an_upstream_error_reaches_the_consumer_after_every_event_before_it() -> None:
    async def source() -> Any:
        yield TextDelta(delta="a", seq=4)
        raise ValueError("boom")

    got: list[Any] = []
    with pytest.raises(ValueError, match="boom"):
        async for x in Stream.defer(source).pipe(restamp(run_id="r")):
            got.append(x)
    assert [(x.delta, x.seq, x.run_id) for x in got] == [("a", 0, "r")]


def _flat(fn: Any) -> Any:
    from streamops._stream import Stage

    def bind(down: Any, end: Any) -> Any:
        def push(x: Any) -> None:
            for y in fn(x):
                down(y)

        return push, end

    return Stage(bind, "flat")
