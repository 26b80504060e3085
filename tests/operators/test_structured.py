"""The ``structured`` operator: model answers streamed as JSON text become typed partial
objects and a validated final output (the parser itself: tests/core/test_jsonstream.py)."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from typing_extensions import TypedDict

from streamops import Stream
from streamops.events import (
    ErrorEvent,
    FinalOutput,
    ObjectDelta,
    PartialObject,
    ReasoningDelta,
    RunEnd,
    RunStart,
    StepStart,
    TextDelta,
    Usage,
    UsageEvent,
)
from streamops.operators.structured import structured
from tests.conftest import RECORDED
from tests.core.test_jsonstream import _tricky, deltas_by_path, is_prefix, leaves, split

# --------------------------------------------------------------------------- the operator


class Item(BaseModel):
    name: str
    qty: int


class Answer(BaseModel):
    city: str
    temperature: float
    tags: list[str]
    items: list[Item]
    note: str | None = None


def run_stage(stage: Any, events: list[Any]) -> list[Any]:
    """Drive a fusable stage synchronously."""
    out: list[Any] = []
    push, end = stage.bind(out.append, lambda: None)
    for e in events:
        push(e)
    end()
    return out


def text_run(pieces: list[str], run_id: str = "r1") -> list[Any]:
    seq = iter(range(10**6))
    return [
        RunStart(run_id=run_id, seq=next(seq)),
        *[TextDelta(run_id=run_id, seq=next(seq), delta=p, block_id="b0") for p in pieces],
        UsageEvent(run_id=run_id, seq=next(seq), usage=Usage(output_tokens=3)),
        RunEnd(run_id=run_id, seq=next(seq)),
    ]


# pydantic validates JSON text, where a lone surrogate (``"\\ud800"``) is an error
model_text = st.text(st.characters(exclude_categories=["Cs"]) | _tricky, max_size=12)
answers = st.builds(
    Answer,
    city=model_text,
    temperature=st.floats(allow_nan=False, allow_infinity=False),
    tags=st.lists(model_text, max_size=3),
    items=st.lists(st.builds(Item, name=model_text, qty=st.integers(-1000, 1000)), max_size=3),
    note=st.none() | model_text,
)


@given(answer=answers, cuts=st.lists(st.integers(min_value=0), max_size=15), indent=st.sampled_from([None, 2]))
def test_operator_model_answer_random_splits(answer: Answer, cuts: list[int], indent: int | None) -> None:
    text = json.dumps(answer.model_dump(mode="json"), indent=indent)
    out = run_stage(structured(Answer), text_run(split(text, cuts)))
    assert not any(isinstance(e, TextDelta) for e in out)
    kinds = [type(e) for e in out]
    assert kinds[0] is RunStart and kinds[-1] is RunEnd and kinds[-2] is FinalOutput
    assert UsageEvent in kinds
    final = out[-2]
    assert final.value == answer.model_dump(mode="json")
    assert final.run_id == "r1" and final.seq == out[-1].seq
    # per-path concatenation of the string deltas equals the field values
    got = deltas_by_path(out)
    for path, value in leaves(answer.model_dump(mode="json")).items():
        if isinstance(value, str):
            assert got[path] == value
        else:
            assert json.loads(got[path]) == value
    # object deltas carry the envelope of the text delta that produced them
    seqs = {e.seq: e for e in text_run(split(text, cuts))}
    for e in out:
        if isinstance(e, ObjectDelta):
            assert isinstance(seqs[e.seq], TextDelta) and e.run_id == "r1"
    # partial objects grow
    partials = [e.value for e in out if isinstance(e, PartialObject)]
    assert partials and partials[-1] == json.loads(text)
    for a, b in itertools.pairwise(partials):
        assert is_prefix(a, b)


@pytest.mark.anyio
async def test_operator_end_to_end_stream() -> None:
    answer = Answer(city="Zürich", temperature=21.5, tags=["a\nb", "😀"], items=[Item(name="x", qty=2)])
    text = "```json\n" + json.dumps(answer.model_dump(mode="json"), ensure_ascii=True) + "\n```"
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(len(text)), 25))
    events = text_run(split(text, cuts))
    events.insert(2, ReasoningDelta(run_id="r1", seq=1, delta="thinking"))
    out = await (Stream.from_iterable(events) | structured(Answer)).collect()
    assert any(isinstance(e, ReasoningDelta) for e in out)
    finals = [e for e in out if isinstance(e, FinalOutput)]
    assert [f.value for f in finals] == [answer.model_dump(mode="json")]
    assert deltas_by_path(out)["$.tags[1]"] == "😀"
    assert isinstance(out[-1], RunEnd) and isinstance(out[-2], FinalOutput)


@pytest.mark.anyio
async def test_operator_keep_text_and_no_snapshots() -> None:
    events = text_run(['{"a": "x', 'y", "b": 1}'])
    out = await (Stream.from_iterable(events) | structured(snapshots=False, keep_text=True)).collect()
    kinds = [e.kind for e in out]
    assert kinds == [
        "run-start",
        "text-delta",
        "object-delta",
        "text-delta",
        "object-delta",
        "object-delta",
        "usage",
        "final-output",
        "run-end",
    ]
    assert out[-2].value == {"a": "xy", "b": 1}


def test_operator_snapshot_once_per_text_delta() -> None:
    out = run_stage(structured(), text_run(['{"a": 1, "b": [true, "x"]', "}"]))
    parts = [e for e in out if isinstance(e, PartialObject)]
    assert [p.value for p in parts] == [{"a": 1, "b": [True, "x"]}, {"a": 1, "b": [True, "x"]}]
    assert [p.seq for p in parts] == [1, 2]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"city": "Paris", "temperature": "warm", "tags": [], "items": []}', "temperature"),
        ('{"city": "Paris", "temperature": 3, "tags": []}', "items"),
        ('{"city": 5, "temperature": 3, "tags": [], "items": [{"name": "a"}]}', "qty"),
        ("[1, 2]", "Answer"),
    ],
)
def test_operator_validation_failure(text: str, fragment: str) -> None:
    out = run_stage(structured(Answer), text_run([text[:7], text[7:]]))
    errors = [e for e in out if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and errors[0].error_type == "output_validation"
    assert fragment in errors[0].message
    assert isinstance(out[-1], RunEnd) and out[-2] is errors[0]
    assert not any(isinstance(e, FinalOutput) for e in out)


def test_operator_truncated_json() -> None:
    out = run_stage(structured(Answer), text_run(['{"city": "Par']))
    assert isinstance(out[-1], RunEnd)
    err = out[-2]
    assert isinstance(err, ErrorEvent) and err.error_type == "output_json" and "truncated" in err.message
    assert not any(isinstance(e, FinalOutput) for e in out)


def test_operator_malformed_json_reported_at_once() -> None:
    out = run_stage(structured(Answer), text_run(['{"city": "Pa', 'ris" "x"}', "more text"]))
    kinds = [e.kind for e in out]
    assert kinds == ["run-start", "object-delta", "object-delta", "partial-object", "error", "usage", "run-end"]
    err = out[4]
    assert err.error_type == "output_json" and "at offset 17" in err.message and err.seq == 2


def test_operator_no_text() -> None:
    out = run_stage(structured(Answer), [RunStart(run_id="r"), RunEnd(run_id="r", status="failed")])
    assert [e.kind for e in out] == ["run-start", "error", "run-end"]
    assert out[1].error_type == "output_json"


def test_operator_runs_are_separate() -> None:
    a = text_run(['{"x": "a', 'aa"}'], run_id="A")
    b = text_run(['{"x": ', "2}"], run_id="B")
    events = [a[0], b[0], a[1], b[1], a[2], b[2], *a[3:], *b[3:]]
    out = run_stage(structured(), events)
    finals = {e.run_id: e.value for e in out if isinstance(e, FinalOutput)}
    assert finals == {"A": {"x": "aaa"}, "B": {"x": 2}}


def test_operator_end_of_stream_without_run_end() -> None:
    out = run_stage(structured(), [TextDelta(delta='{"a": [1'), TextDelta(delta=", 2]}", seq=1)])
    assert isinstance(out[-1], FinalOutput) and out[-1].value == {"a": [1, 2]} and out[-1].seq == 1
    out = run_stage(structured(), [TextDelta(delta='{"a": [1')])
    assert isinstance(out[-1], ErrorEvent) and "truncated" in out[-1].message


def test_operator_step_start_starts_a_new_document() -> None:
    events = [
        RunStart(run_id="r"),
        StepStart(run_id="r", step=0),
        TextDelta(run_id="r", delta="Let me check {the weather} first."),
        StepStart(run_id="r", step=1),
        TextDelta(run_id="r", delta='{"ok": true}'),
        RunEnd(run_id="r"),
    ]
    out = run_stage(structured(), events)
    assert out[-2] == FinalOutput(run_id="r", value={"ok": True}, ts=out[-2].ts)


@dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


@pytest.mark.parametrize(
    ("output_type", "text", "expected"),
    [
        (Point, '{"x": 1, "y": "2"}', {"x": 1, "y": 2}),
        (Movie, '{"title": "Alien", "year": 1979}', {"title": "Alien", "year": 1979}),
        (list[int], "[1, 2, 3]", [1, 2, 3]),
        (int, "42", 42),
        (None, '{"any": [null]}', {"any": [None]}),
    ],
)
def test_operator_output_types(output_type: Any, text: str, expected: Any) -> None:
    out = run_stage(structured(output_type), text_run([text]))
    assert out[-2] == FinalOutput(run_id="r1", seq=out[-1].seq, ts=out[-1].ts, value=expected)


# --------------------------------------------------------------------------- recorded streams


def _recorded(name: str) -> list[Any]:
    adapters = pytest.importorskip("streamops.adapters")
    path = Path(RECORDED) / "openai" / f"{name}.sse"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return list(adapters.parse_sse_bytes(path.read_bytes()))


class Weather(BaseModel):
    city: str
    temperature: int
    units: str


@pytest.mark.parametrize(
    ("name", "output_type"),
    [
        ("chat_json_schema_content_openai_python", Weather),
        ("chat_json_object_utf8_openai_python", None),
    ],
)
def test_recorded_structured_streams(name: str, output_type: Any) -> None:
    events = _recorded(name)
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    expected = json.loads(text)
    out = run_stage(structured(output_type), events)
    assert isinstance(out[-1], RunEnd)
    assert out[-2] == FinalOutput(run_id=out[-1].run_id, seq=out[-1].seq, ts=out[-1].ts, value=expected)
    partials = [e.value for e in out if isinstance(e, PartialObject)]
    assert partials[-1] == expected
    for a, b in itertools.pairwise(partials):
        assert is_prefix(a, b)
    got = deltas_by_path(out)
    for path, value in leaves(expected).items():
        assert got[path] == value if isinstance(value, str) else json.loads(got[path]) == value
    # non-text events pass through unchanged, in order
    assert [e for e in out if not isinstance(e, (ObjectDelta, PartialObject, FinalOutput))] == [
        e for e in events if not isinstance(e, TextDelta)
    ]


def test_recorded_cut_off_stream_gives_truncation_error() -> None:
    events = _recorded("chat_max_tokens_length_openai_python")
    out = run_stage(structured(Weather), events)
    end = out[-1]
    assert isinstance(end, RunEnd) and end.status == "length"
    err = out[-2]
    assert isinstance(err, ErrorEvent) and err.error_type == "output_json"
    assert "truncated" in err.message and "'length'" in err.message
    assert not any(isinstance(e, FinalOutput) for e in out)


def test_operator_lone_surrogate_fails_validation_not_parsing() -> None:
    """JSON allows ``"\\ud800"``; pydantic's JSON validation rejects it: an ErrorEvent, not a crash."""
    out = run_stage(structured(list[str]), text_run(['["\\ud800"]']))
    assert [e.value for e in out if isinstance(e, PartialObject)] == [["\ud800"]]
    assert isinstance(out[-2], ErrorEvent) and out[-2].error_type == "output_validation"
    out = run_stage(structured(), text_run(['["\\ud800"]']))
    assert out[-2] == FinalOutput(run_id="r1", seq=out[-1].seq, ts=out[-1].ts, value=["\ud800"])


# --------------------------------------------------------------------------- the agent's options
@given(
    answer=st.sampled_from(['{"a": 1}', '{"a": ]', "", '{"a": "tr']),
    status=st.sampled_from(["completed", "length", "failed", "cancelled", "max_steps"]),
    json_errors=st.sampled_from(["at_once", "at_end"]),
)
def test_finish_on_and_json_errors_decide_when_the_output_is_reported(
    answer: str, status: Any, json_errors: Any
) -> None:
    # finish_on: a run that ends with another status ends its output silently (no final
    # output, no error); json_errors="at_end": malformed JSON is reported where the final
    # output would be, at the run end, not when the text arrives.
    text = [TextDelta(run_id="r", delta=answer)] if answer else []
    run = [RunStart(run_id="r"), *text, RunEnd(run_id="r", status=status)]
    op = structured(json_errors=json_errors, finish_on=("completed", "length"))
    out = Stream.from_iterable(run).pipe(op).to_list()
    assert isinstance(out[-1], RunEnd)
    finals = [e for e in out if isinstance(e, (FinalOutput, ErrorEvent))]
    malformed = answer == '{"a": ]'
    if malformed and json_errors == "at_once":
        assert [type(e) for e in finals] == [ErrorEvent]  # at once, whatever the end
        assert out.index(finals[0]) == 1  # right where the text was
        return
    if status not in ("completed", "length"):
        assert finals == []
        return
    assert len(finals) == 1 and out[-2] is finals[0]  # right before the run end
    if answer == '{"a": 1}':
        assert isinstance(finals[0], FinalOutput) and finals[0].value == {"a": 1}
    else:
        assert isinstance(finals[0], ErrorEvent) and finals[0].error_type == "output_json"
        why = finals[0].message
        assert why.startswith("structured output is not valid JSON") or why == "the run produced no output text"
