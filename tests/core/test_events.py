"""The event model: lossless JSON round trips, validation errors, ``Usage`` arithmetic."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamops import events
from streamops.errors import EventValidationError, StreamopsError
from streamops.events import (
    EVENT_KINDS,
    BaseEvent,
    CustomEvent,
    RawEvent,
    RunEnd,
    TextDelta,
    ToolCallDelta,
    ToolResult,
    Usage,
    UsageEvent,
    from_json,
    to_dict,
    to_json,
    validate_event,
)

# ----------------------------------------------------------------------------- strategies

WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2003\u3000\u200b"

texts = st.one_of(
    st.text(),  # any unicode (no surrogates: they cannot be UTF-8 encoded)
    st.text(alphabet=WHITESPACE, min_size=1),  # whitespace-only, never dropped
    st.sampled_from(["", " ", "\n", "  \n\t", "日本語", "😀 e\u0301", '"\\/\b\u0000', "\u2028\u2029"]),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)

opt_tokens = st.one_of(st.none(), st.integers(min_value=0, max_value=2**40))
usages = st.builds(
    Usage,
    input_tokens=opt_tokens,
    output_tokens=opt_tokens,
    reasoning_tokens=opt_tokens,
    cache_read_tokens=opt_tokens,
    cache_write_tokens=opt_tokens,
)


def _strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if tp is Any:
        return json_values
    if tp is type(None):
        return st.none()
    if tp is str:
        return texts
    if tp is int:
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is bool:
        return st.booleans()
    if tp is Usage:
        return usages
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_strategy_for(a) for a in typing.get_args(tp)))
    raise AssertionError(f"no strategy for field type {tp!r}: extend the test")


def _event_strategy(cls: type[BaseEvent]) -> st.SearchStrategy[BaseEvent]:
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _strategy_for(hints[f.name]) for f in dataclasses.fields(cls) if f.name != "kind"}
    return st.builds(cls, **kwargs)


all_events = st.one_of(*(_event_strategy(cls) for cls in EVENT_KINDS.values()))


def strict_equal(a: Any, b: Any) -> bool:
    """``==`` that also compares types (``True != 1``, ``1.0 != 1``) all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_same_event(a: BaseEvent, b: BaseEvent) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        assert strict_equal(va, vb), f"{type(a).__name__}.{f.name}: {va!r} != {vb!r}"


# ----------------------------------------------------------------------------- round trips


def test_event_kinds_cover_the_union() -> None:
    union_members = set(typing.get_args(events.Event))
    assert set(EVENT_KINDS.values()) == union_members
    assert len(EVENT_KINDS) == len(union_members) == 25
    for kind, cls in EVENT_KINDS.items():
        assert cls.__dataclass_fields__["kind"].default == kind


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
@settings(max_examples=25)
@given(data=st.data())
def test_every_kind_round_trips_through_json(kind: str, data: st.DataObject) -> None:
    event = data.draw(_event_strategy(EVENT_KINDS[kind]))
    encoded = to_json(event)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded)["kind"] == kind
    decoded = from_json(encoded)
    assert decoded == event
    assert_same_event(decoded, event)  # raw too, which == ignores
    # str and bytearray inputs decode the same; encoding again gives the same bytes
    assert_same_event(from_json(encoded.decode("utf-8")), event)
    assert_same_event(from_json(bytearray(encoded)), event)
    assert to_json(decoded) == encoded


@settings(max_examples=80)
@given(event=all_events)
def test_round_trip_through_python_dicts(event: BaseEvent) -> None:
    as_dict = to_dict(event)
    assert as_dict["kind"] == event.kind  # type: ignore[attr-defined]
    json.dumps(as_dict)  # JSON-ready
    assert_same_event(validate_event(as_dict), event)
    assert_same_event(validate_event(json.loads(json.dumps(as_dict))), event)


@pytest.mark.parametrize("delta", ["", " ", "\n", "\t \n", "\u3000", "\r\n"])
def test_whitespace_only_deltas_survive(delta: str) -> None:
    for event in (TextDelta(delta=delta), ToolCallDelta(call_id="c", delta=delta)):
        back = from_json(to_json(event))
        assert back.delta == delta  # type: ignore[union-attr]


def test_nested_raw_and_payloads_are_kept_exactly() -> None:
    payload = {"a": [1, 2.5, None, True, {"b": "ü\n"}], "big": 2**64 - 1, "f": 1.0, "e": {}}
    for event in (
        TextDelta(delta="x", raw=payload),
        ToolResult(call_id="c", name="t", result=payload),
        CustomEvent(name="n", data=[payload, payload]),
        RawEvent(event_type="ping", data=payload),
        RunEnd(usage=Usage(input_tokens=3), raw=payload),
    ):
        back = from_json(to_json(event))
        assert_same_event(back, event)
        assert back.raw is not event.raw or event.raw is None


def test_raw_is_not_compared_but_is_kept() -> None:
    a = TextDelta(delta="x", ts=1.0, raw={"k": 1})
    b = TextDelta(delta="x", ts=1.0, raw={"k": 2})
    assert a == b
    assert from_json(to_json(a)).raw == {"k": 1}


# ----------------------------------------------------------------------------- validation


def _error(data: str | bytes) -> EventValidationError:
    with pytest.raises(EventValidationError) as info:
        from_json(data)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, StreamopsError)
    return err


def test_unknown_kind_is_rejected_naming_kind() -> None:
    err = _error('{"kind": "text-deltaX", "delta": "x"}')
    assert "kind" in str(err)
    assert "text-deltaX" in str(err)
    assert err.errors  # pydantic's structured errors are kept


def test_missing_kind_is_rejected_naming_kind() -> None:
    assert "kind" in str(_error('{"delta": "x"}'))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "text-delta"}, "delta"),
        ({"kind": "tool-call-start", "call_id": "c"}, "name"),
        ({"kind": "tool-call-end", "call_id": "c", "name": "t"}, "arguments"),
        ({"kind": "usage"}, "usage"),
        ({"kind": "error", "message": "m"}, "error_type"),
        ({"kind": "reasoning-signature"}, "signature"),
    ],
)
def test_missing_field_is_rejected_naming_it(payload: dict[str, Any], field: str) -> None:
    err = _error(json.dumps(payload))
    assert field in str(err)
    assert "required" in str(err).lower()
    assert any(field in [str(p) for p in e["loc"]] for e in err.errors)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "text-delta", "delta": 5}, "delta"),
        ({"kind": "text-delta", "delta": "x", "seq": "first"}, "seq"),
        ({"kind": "text-delta", "delta": "x", "ts": "now"}, "ts"),
        ({"kind": "text-delta", "delta": "x", "run_id": ["r"]}, "run_id"),
        ({"kind": "run-end", "status": "exploded"}, "status"),
        ({"kind": "run-end", "finish_reason": "end_turn"}, "finish_reason"),
        ({"kind": "usage", "usage": {"input_tokens": "many"}}, "input_tokens"),
        ({"kind": "usage", "usage": 12}, "usage"),
        ({"kind": "tool-call-delta", "call_id": None, "delta": ""}, "call_id"),
    ],
)
def test_wrong_type_is_rejected_naming_the_field(payload: dict[str, Any], field: str) -> None:
    err = _error(json.dumps(payload))
    assert field in str(err)


@pytest.mark.parametrize("text", ["{not json", "", "nul", '{"kind": "text-delta", "delta": "x"', "\xff"])
def test_not_json_is_rejected(text: str) -> None:
    err = _error(text)
    assert "json" in str(err).lower()


@pytest.mark.parametrize("text", ["[1, 2]", '"text-delta"', "42", "null"])
def test_json_that_is_not_an_object_is_rejected(text: str) -> None:
    _error(text)


def test_invalid_utf8_bytes_are_rejected() -> None:
    with pytest.raises(EventValidationError):
        from_json(b'{"kind": "text-delta", "delta": "\xff\xfe"}')


def test_validate_event_rejects_bad_python_data() -> None:
    with pytest.raises(EventValidationError, match="delta"):
        validate_event({"kind": "text-delta"})
    with pytest.raises(EventValidationError, match="kind"):
        validate_event({"kind": "nope"})


def test_validate_event_accepts_an_event_instance() -> None:
    ev = UsageEvent(usage=Usage(output_tokens=2), cumulative=False)
    assert validate_event(ev) == ev


# ----------------------------------------------------------------------------- Usage


def _ref_add(a: int | None, b: int | None) -> int | None:
    if a is None and b is None:
        return None
    return (a or 0) + (b or 0)


USAGE_FIELDS = [f.name for f in dataclasses.fields(Usage)]


@settings(max_examples=50)
@given(a=usages, b=usages)
def test_usage_add_is_fieldwise_with_none_as_unknown(a: Usage, b: Usage) -> None:
    total = a + b
    for name in USAGE_FIELDS:
        assert getattr(total, name) == _ref_add(getattr(a, name), getattr(b, name)), name
    assert a + b == b + a
    assert a + Usage() == a


@settings(max_examples=50)
@given(a=usages, b=usages, c=usages)
def test_usage_add_is_associative(a: Usage, b: Usage, c: Usage) -> None:
    assert (a + b) + c == a + (b + c)


@settings(max_examples=50)
@given(old=usages, new=usages)
def test_usage_merged_overlays_the_reported_fields(old: Usage, new: Usage) -> None:
    m = old.merged(new)
    for name in USAGE_FIELDS:
        n = getattr(new, name)
        assert getattr(m, name) == (getattr(old, name) if n is None else n), name
    assert old.merged(Usage()) == old
    assert old.merged(old) == old
    assert m.merged(new) == m  # idempotent


@settings(max_examples=50)
@given(u=usages)
def test_usage_total_tokens(u: Usage) -> None:
    assert u.total_tokens == _ref_add(u.input_tokens, u.output_tokens)


def test_usage_examples() -> None:
    assert Usage().total_tokens is None
    assert Usage(input_tokens=0).total_tokens == 0
    assert Usage(input_tokens=3, output_tokens=4).total_tokens == 7
    assert Usage(output_tokens=4).total_tokens == 4
    s = Usage(input_tokens=1, reasoning_tokens=2) + Usage(input_tokens=10, output_tokens=5)
    assert s == Usage(input_tokens=11, output_tokens=5, reasoning_tokens=2)
    m = Usage(input_tokens=10, output_tokens=1).merged(Usage(output_tokens=9, cache_read_tokens=0))
    assert m == Usage(input_tokens=10, output_tokens=9, cache_read_tokens=0)
    # the operands are not mutated
    a = Usage(input_tokens=1)
    _ = a + Usage(input_tokens=2)
    _ = a.merged(Usage(input_tokens=5))
    assert a == Usage(input_tokens=1)


@settings(max_examples=50)
@given(total=st.one_of(st.none(), usages), report=usages, cumulative=st.booleans())
def test_usage_event_folded_overlays_cumulative_and_adds_increments(
    total: Usage | None, report: Usage, cumulative: bool
) -> None:
    got = UsageEvent(usage=report, cumulative=cumulative).folded(total)
    for name in USAGE_FIELDS:
        new = getattr(report, name)
        old = None if total is None else getattr(total, name)
        if total is None:
            want = new
        elif cumulative:
            want = old if new is None else new
        else:
            want = _ref_add(old, new)
        assert getattr(got, name) == want, name


# ---------------------------------------------------------------------------- to_json never raises on kept payloads
def _raw(data: Any) -> events.RawEvent:
    return events.RawEvent(run_id="r", seq=0, event_type="x", data=data)


def test_to_json_writes_an_sdk_object_built_without_validation() -> None:
    """``openai-agents`` keeps ``openai`` objects built by ``construct_type`` (no validation):
    one holding a value its schema does not allow (an error ``code`` outside the Literal) made
    pydantic warn, an error under ``-W error``; ``to_json`` writes its fields, silently."""
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent

    wire = {
        "type": "response.failed",
        "sequence_number": 5,
        "response": {"id": "r1", "status": "failed", "error": {"code": "insufficient_quota", "message": "quota"}},
    }
    obj = construct_type(type_=ResponseStreamEvent, value=wire)
    assert type(obj).__name__ == "ResponseFailedEvent"
    out = json.loads(events.to_json(_raw(obj)))
    assert out["data"]["type"] == "response.failed"
    error = out["data"]["response"]["error"]
    assert (error["code"], error["message"]) == ("insufficient_quota", "quota")
    assert json.loads(events.to_json(_raw({"items": [obj]})))["data"]["items"][0]["sequence_number"] == 5


def test_to_json_writes_a_model_pydantic_cannot_serialise() -> None:
    """A model class that is not fully defined (pydantic raises ``PydanticSerializationError``
    from its ``MockValSer``), an object whose ``repr`` fails, lone surrogates inside a model:
    all written, none raises."""
    from pydantic import BaseModel, ConfigDict

    class Deferred(BaseModel):
        model_config = ConfigDict(defer_build=True)
        x: Undefined  # type: ignore[name-defined]  # noqa: F821

    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    model = Deferred.model_construct(x="\ud83d")
    assert json.loads(events.to_json(_raw(model)))["data"] == {"x": "\ufffd"}
    assert json.loads(events.to_json(_raw([model, {"k": model}])))["data"] == [{"x": "\ufffd"}, {"k": {"x": "\ufffd"}}]
    assert json.loads(events.to_json(_raw(BadRepr())))["data"] == "<BadRepr>"
    assert json.loads(events.to_json(_raw({"a": BadRepr(), "b": [1]})))["data"] == {"a": "<BadRepr>", "b": [1]}


@settings(max_examples=60)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary() | st.complex_numbers(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=20,
    )
)
def test_to_json_never_raises_on_any_data(data: Any) -> None:
    out = events.to_json(_raw(data))
    assert json.loads(out)["kind"] == "raw"


def test_nested_envelope_round_trips_and_agent_path_splits() -> None:
    ev = events.AgentHandoff(
        run_id="r2", agent="planner", parent_run_id="r1", seq=3, from_agent="planner", to_agent="planner/researcher"
    )
    back = events.from_json(events.to_json(ev))
    assert back == ev and back.parent_run_id == "r1" and isinstance(back, events.AgentHandoff)
    assert events.derive(ev, seq=4).parent_run_id == "r1"  # the envelope is copied whole
    assert TextDelta(delta="x", agent="planner/researcher").agent_path == ("planner", "researcher")
    assert TextDelta(delta="x").agent_path == ()
    assert TextDelta(delta="x").parent_run_id == ""
