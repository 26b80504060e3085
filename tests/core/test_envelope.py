"""Every way the library builds an event from another carries the WHOLE envelope.

The envelope fields are read from :class:`~streamops.events.BaseEvent` itself (never listed
here), each given a value no default has, so a field added to the envelope later is checked
by these tests without a change to them: an operator that copies ``run_id=e.run_id,
agent=e.agent, ...`` by hand fails here.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamops.operators as ops
from streamops import Stream
from streamops.events import (
    ENVELOPE_FIELDS,
    EVENT_KINDS,
    BaseEvent,
    ErrorEvent,
    FinalOutput,
    ObjectDelta,
    PartialObject,
    ReasoningDelta,
    RunEnd,
    RunStart,
    TextDelta,
    Usage,
    UsageEvent,
    derive,
    envelope,
)
from streamops.operators.errors import error_event

ROOT = Path(__file__).resolve().parents[2]


def _marked(name: str, i: int = 0) -> Any:
    """A value for envelope field ``name`` that no default has, by the field's declared type."""
    f = BaseEvent.__dataclass_fields__[name]
    t = str(f.type)
    if t.startswith("int"):
        return 4000 + i
    if t.startswith("float"):
        return 1234.5 + i
    if "str" in t:
        return f"<{name}-{i}>"
    return {"marked": name, "i": i}


def _env(i: int = 0) -> dict[str, Any]:
    """Marked values for every envelope field; events of one run (one ``run_id`` and
    ``agent``, as operators that keep state per run need) differ in the others."""
    return {n: _marked(n, i) for n in ENVELOPE_FIELDS} | {"run_id": "<run>", "agent": "<agent>"}


def _same_envelope(out: BaseEvent, src: BaseEvent, *, changed: tuple[str, ...] = ()) -> None:
    for name in ENVELOPE_FIELDS:
        if name not in changed:
            assert getattr(out, name) == getattr(src, name), (type(out).__name__, name)


def test_the_envelope_is_basevents_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(BaseEvent)) == ENVELOPE_FIELDS
    assert {"run_id", "agent", "seq", "ts", "raw"} <= set(ENVELOPE_FIELDS)
    for cls in EVENT_KINDS.values():  # every event class carries all of it
        assert set(ENVELOPE_FIELDS) <= {f.name for f in dataclasses.fields(cls)}


@given(i=st.integers(0, 10**6), kind=st.sampled_from(sorted(EVENT_KINDS)))
def test_envelope_and_derive_copy_every_envelope_field(i: int, kind: str) -> None:
    src = TextDelta(**_env(i), delta="x")
    env = envelope(src)
    assert list(env) == list(ENVELOPE_FIELDS)
    cls = EVENT_KINDS[kind]
    required = {
        f.name: (Usage() if f.type == "Usage" else "v")
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    _same_envelope(cls(**env, **required), src)
    _same_envelope(derive(cls(**env, **required)), src)
    moved = envelope(src, seq=i + 1, raw=None)
    assert moved["seq"] == i + 1 and moved["raw"] is None
    assert envelope(src)["seq"] == src.seq  # the event itself is not changed


def test_envelope_rejects_a_name_that_is_not_an_envelope_field() -> None:
    with pytest.raises(TypeError, match="'delta' is not an envelope field"):
        envelope(TextDelta(delta="x"), delta="y")


# --------------------------------------------------------------------------- operator paths
def test_structured_output_events_carry_their_source_envelope() -> None:
    start = RunStart(**_env(0))
    t1 = TextDelta(**_env(1), delta='{"a": "h')
    t2 = TextDelta(**_env(2), delta='i", "n": 1}')
    end = RunEnd(**_env(3))
    out = Stream.from_iterable([start, t1, t2, end]).pipe(ops.structured()).to_list()
    seen = {type(e) for e in out}
    assert {ObjectDelta, PartialObject, FinalOutput} <= seen
    for e in out:
        if isinstance(e, (ObjectDelta, PartialObject)):
            assert e.seq in (t1.seq, t2.seq)
            _same_envelope(e, t1 if e.seq == t1.seq else t2)
        elif isinstance(e, FinalOutput):
            _same_envelope(e, end)
    bad = TextDelta(**_env(5), delta="{]")
    err = next(e for e in Stream.from_iterable([bad]).pipe(ops.structured()).to_list() if isinstance(e, ErrorEvent))
    _same_envelope(err, bad)


def test_think_tags_and_smooth_carry_their_source_envelope() -> None:
    d = TextDelta(**_env(1), delta="<think>hmm</think>Hi there ", block_id="b")
    out = Stream.from_iterable([d]).pipe(ops.think_tags()).to_list()
    assert any(isinstance(e, ReasoningDelta) for e in out)
    for e in out:
        _same_envelope(e, d)
    words = Stream.from_iterable([TextDelta(**_env(2), delta="one two three ")]).pipe(ops.smooth()).to_list()
    assert len(words) == 3
    for e in words:
        _same_envelope(e, TextDelta(**_env(2), delta=""))


def test_token_counts_and_budgets_carry_the_runs_envelope() -> None:
    # A report or a run end that FOLLOWS an event: the same envelope, but its own time, no
    # provider payload, and for the run end the next seq.
    d = TextDelta(**_env(1), delta="a b c d e f g h")
    out = Stream.from_iterable([d]).pipe(ops.count_tokens(tokenizer=lambda s: len(s.split()), emit_every=1)).to_list()
    usage = [e for e in out if isinstance(e, UsageEvent)]
    assert usage
    for e in usage:
        _same_envelope(e, d, changed=("ts", "raw"))
    out = Stream.from_iterable([d, d]).pipe(ops.budget(max_tokens=3, tokenizer=lambda s: len(s.split()))).to_list()
    end = out[-1]
    assert isinstance(end, RunEnd) and end.status == "budget_exceeded" and end.seq == d.seq + 1
    _same_envelope(end, d, changed=("ts", "raw", "seq"))


def test_error_events_carry_the_last_events_envelope() -> None:
    last = TextDelta(**_env(1), delta="x")
    err = error_event(ValueError("boom"), last)
    assert err.seq == last.seq + 1
    _same_envelope(err, last, changed=("ts", "raw", "seq"))

    async def failing() -> Any:
        yield last
        raise ValueError("boom")

    merged = ops.merge(Stream.defer(failing), on_error="continue").to_list()
    err2 = next(e for e in merged if isinstance(e, ErrorEvent))
    _same_envelope(err2, last, changed=("ts", "raw", "seq"))


def test_no_operator_or_agent_copies_an_envelope_by_hand() -> None:
    # An event built with ``run_id=x.run_id`` (or any envelope field named one by one, from
    # another object's same field) would drop a field added to the envelope later: use
    # events.envelope / events.derive, which copy all of them.
    classes = {c.__name__ for c in EVENT_KINDS.values()} | {"BaseEvent"}
    offenders = []
    for folder in ("streamops/operators", "streamops/agent"):
        for path in sorted((ROOT / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call) or getattr(node.func, "id", None) not in classes:
                    continue
                for kw in node.keywords:
                    v = kw.value
                    if kw.arg in ENVELOPE_FIELDS and isinstance(v, ast.Attribute) and v.attr == kw.arg:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {kw.arg}=...{v.attr}")
    assert not offenders, offenders
