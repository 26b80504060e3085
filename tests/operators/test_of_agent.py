"""of_agent: one agent's events (by its path), with or without the agents it runs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamops as so
from streamops import Stream, TextDelta, of_agent

pytestmark = pytest.mark.anyio

NAMES = ["a", "ab", "b", "d"]
paths = st.lists(st.sampled_from(NAMES), max_size=4).map("/".join)


def _ev(agent: str, i: int) -> TextDelta:
    return TextDelta(delta=str(i), agent=agent, run_id=agent, parent_run_id=agent.rpartition("/")[0], seq=i)


async def test_marble_nested_and_not() -> None:
    items: list[Any] = [_ev("a", 0), _ev("a/b", 1), _ev("c", 2), _ev("a/b/d", 3), "not an event", _ev("ab", 4)]
    out = await (Stream.from_iterable(items) | of_agent("a")).collect()
    assert [e.agent for e in out] == ["a", "a/b", "a/b/d"]  # "ab" is another agent, not under "a"
    assert all(x is y for x, y in zip(out, [items[0], items[1], items[3]], strict=True))  # unchanged
    out = await (Stream.from_iterable(items) | of_agent("a", nested=False)).collect()
    assert out == [items[0]]
    out = await (Stream.from_iterable(items) | of_agent(("a", "b"))).collect()
    assert [e.agent for e in out] == ["a/b", "a/b/d"]
    out = await (Stream.from_iterable(items) | so.of_type(TextDelta) | of_agent("a/b", nested=False)).collect()
    assert out == [items[1]]


@settings(max_examples=30)
@given(agents=st.lists(paths, max_size=25), want=paths.filter(bool), nested=st.booleans())
async def test_keeps_exactly_the_events_at_or_under_the_path_in_order(
    agents: list[str], want: str, nested: bool
) -> None:
    events = [_ev(a, i) for i, a in enumerate(agents)]
    out = await (Stream.from_iterable(events) | of_agent(want, nested=nested)).collect()
    w = tuple(want.split("/"))

    def under(e: TextDelta) -> bool:
        p = e.agent_path
        return p == w or (nested and p[: len(w)] == w)

    assert out == [e for e in events if under(e)]  # same events, same order
    assert [e.seq for e in out] == sorted(e.seq for e in out)
    # the kept and the dropped events partition the input
    rest = await (Stream.from_iterable(events) | so.filter(lambda e: not under(e))).collect()
    assert len(out) + len(rest) == len(events)


@pytest.mark.parametrize("bad", ["", "a//b", ("a", ""), (), "/a"])
def test_empty_path_or_name_is_a_value_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="of_agent"):
        of_agent(bad)
