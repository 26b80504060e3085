"""``call_hooks``: the agent run's last operator numbers the run's events as it pulls them
(restamp fused in) and inserts the errors of failing hooks, so the run's seqs stay unique and
monotonic in stream order, also after a fused stage that emits several events for one input."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamops import Stream
from streamops._stream import End, Push, Stage
from streamops.agent._hooks import Hooks, call_hooks
from streamops.events import BaseEvent, ErrorEvent, ObjectDelta, RunEnd, RunStart, TextDelta
from streamops.operators import Sequencer

RUN, AGENT = "run", "bot"


def _echo() -> Stage[BaseEvent, BaseEvent]:
    """A fused stage that emits two events for some inputs (as ``structured`` does: the text
    delta, then its ``ObjectDelta``), both in one push."""

    def bind(down: Push, end: End) -> tuple[Push, End]:
        def push(e: Any) -> None:
            down(e)
            if isinstance(e, TextDelta) and e.delta.startswith("2"):
                down(ObjectDelta(**_env(e), seq=e.seq, json_path="$.k", delta=e.delta))

        return push, end

    return Stage(bind, "echo")


def _env(e: BaseEvent) -> dict[str, Any]:
    return {"run_id": e.run_id, "agent": e.agent, "parent_run_id": e.parent_run_id}


body = st.lists(
    st.tuples(
        st.sampled_from(["1", "2"]),  # "2": the stage adds an ObjectDelta after it
        st.booleans(),  # on_chunk raises on this text delta
        st.booleans(),  # a nested run's event (parent_run_id set)
        st.integers(0, 3),  # the seq its source gave it
    ),
    max_size=20,
)


@given(
    items=body,
    async_hooks=st.booleans(),
    own_envelope=st.booleans(),
    backend=st.sampled_from(["asyncio", "trio"]),
)
def test_events_and_hook_errors_get_unique_monotonic_seqs_in_stream_order(
    items: list[tuple[str, bool, bool, int]], async_hooks: bool, own_envelope: bool, backend: str
) -> None:
    env = {"run_id": RUN, "agent": AGENT} if own_envelope else {}
    src: list[BaseEvent] = [RunStart(**env, seq=3)]
    for i, (kind, fail, nested, seq) in enumerate(items):
        if nested:
            src.append(TextDelta(run_id="child", agent="bot/tool", parent_run_id=RUN, seq=seq, delta=f"n{i}"))
        else:
            src.append(TextDelta(**env, seq=seq, delta=f"{kind}{'!' if fail else ''}{i}"))
    src.append(RunEnd(**env, seq=0))
    folded: list[BaseEvent] = []
    ends: list[RunEnd] = []
    left: list[bool] = []

    def chunk(e: BaseEvent) -> None:
        if isinstance(e, TextDelta) and "!" in e.delta:
            raise ValueError(e.delta)

    async def achunk(e: BaseEvent) -> None:
        await anyio.lowlevel.checkpoint()
        chunk(e)

    async def on_left() -> None:
        left.append(True)

    hooks = Hooks(on_chunk=achunk if async_hooks else chunk)
    op = call_hooks(hooks, Sequencer(run_id=RUN, agent=AGENT), fold=folded.append, on_end=ends.append, left=on_left)
    out = (Stream.from_iterable(src) | _echo() | op).to_list(backend=backend)

    own = [e for e in out if not e.parent_run_id]
    assert [e.seq for e in own] == list(range(len(own)))  # unique, monotonic, in stream order
    assert {(e.run_id, e.agent) for e in own} == {(RUN, AGENT)}
    assert folded == own  # every own event folded once, as numbered, hook errors included
    nested_in = [e for e in src if e.parent_run_id]
    assert [e for e in out if e.parent_run_id] == nested_in
    for e in out:
        if e.parent_run_id:  # passed as is: not renumbered, not relabelled
            assert any(e is n for n in nested_in)
    for i, e in enumerate(out):  # each failing event is followed at once by its hook error
        if isinstance(e, TextDelta) and "!" in e.delta and not e.parent_run_id:
            err = out[i + 1]
            assert isinstance(err, ErrorEvent) and err.error_type == "hook_error" and e.delta in err.message
    assert sum(isinstance(e, ErrorEvent) for e in out) == sum(1 for _, fail, nested, _ in items if fail and not nested)
    texts = [e.delta for e in out if isinstance(e, TextDelta)]
    assert texts == [e.delta for e in src if isinstance(e, TextDelta)]  # nothing lost, order kept
    assert ends == [out[-1]] and not left


@pytest.mark.anyio
async def test_a_consumer_that_leaves_closes_the_upstream_and_the_numbering_stops_there() -> None:
    closed: list[bool] = []
    ends: list[RunEnd] = []
    seq = Sequencer(run_id=RUN, agent=AGENT)

    async def source() -> Any:
        try:
            yield RunStart(run_id=RUN, agent=AGENT)
            for i in range(100):
                yield TextDelta(run_id=RUN, agent=AGENT, delta=str(i))
        finally:
            closed.append(True)

    async def on_left() -> None:
        ends.append(seq.stamp(RunEnd(run_id=RUN, agent=AGENT, status="cancelled")))

    got: list[BaseEvent] = []
    op = call_hooks(Hooks(), seq, fold=lambda e: None, on_end=ends.append, left=on_left)
    async with (Stream.defer(source) | op).iterate() as it:
        async for e in it:
            got.append(e)
            if len(got) == 3:
                break
    assert closed == [True]
    assert [e.seq for e in got] == [0, 1, 2]
    assert [(e.status, e.seq) for e in ends] == [("cancelled", 3)]  # numbered right after the last received
