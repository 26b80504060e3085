"""``events.derive``: the one way to make an event from another keeps every field."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamops import events
from streamops.events import EVENT_KINDS, BaseEvent, RunEnd, TextDelta, Usage, derive


def _sample(cls: type[BaseEvent], run_id: str, seq: int) -> BaseEvent:
    required = {
        f.name: (Usage(output_tokens=seq) if f.type == "Usage" else f"{f.name}-{seq}")
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return cls(run_id=run_id, agent="a/b", seq=seq, ts=12.5, raw={"p": 1}, **required)


@given(kind=st.sampled_from(sorted(EVENT_KINDS)), run_id=st.text(max_size=5), seq=st.integers(0, 10**9))
def test_derive_without_changes_is_an_equal_copy_of_every_class(kind: str, run_id: str, seq: int) -> None:
    ev = _sample(EVENT_KINDS[kind], run_id, seq)
    out = derive(ev)
    assert out is not ev
    assert type(out) is type(ev)
    for f in dataclasses.fields(ev):
        assert getattr(out, f.name) == getattr(ev, f.name), f.name  # raw too, though == skips it


@given(text=st.text(max_size=20))
def test_derive_applies_changes_and_leaves_the_source_alone(text: str) -> None:
    ev = TextDelta(run_id="r", agent="x", seq=4, ts=1.0, raw=[1], delta="old", block_id="b")
    out = derive(ev, delta=text, seq=9)
    assert (out.delta, out.seq, out.block_id, out.run_id, out.agent, out.ts, out.raw) == (
        text,
        9,
        "b",
        "r",
        "x",
        1.0,
        [1],
    )
    assert (ev.delta, ev.seq) == ("old", 4)


def test_derive_rejects_unknown_fields_and_kind() -> None:
    ev = RunEnd(status="completed")
    with pytest.raises(TypeError, match="no changeable field 'delta'"):
        derive(ev, delta="x")
    with pytest.raises(TypeError, match="'kind'"):
        derive(ev, kind="text-delta")


def test_event_classes_are_listed_once() -> None:
    # The union is the list: the kind map is derived from it, so a new class cannot be half-registered.
    assert tuple(EVENT_KINDS.values()) == typing.get_args(events.Event)
