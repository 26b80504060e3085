"""Incremental JSON parsing (``streamops.jsonstream``) and the ``structured`` operator."""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
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
from streamops.jsonstream import JsonDelta, JsonEvent, JsonStreamError, JsonStreamParser, JsonValueEnd, json_path_child
from streamops.operators.structured import structured
from tests.conftest import RECORDED

# --------------------------------------------------------------------------- helpers


def run_parser(pieces: list[str], *, lenient: bool = True) -> tuple[list[JsonEvent], list[Any], JsonStreamParser]:
    """Feed the pieces; return all events, the partial after each feed, and the parser."""
    parser = JsonStreamParser(lenient=lenient)
    events: list[JsonEvent] = []
    partials: list[Any] = []
    for piece in pieces:
        events += parser.feed(piece)
        partials.append(parser.partial)
    events += parser.close()
    return events, partials, parser


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(text[last:p])
        last = p
    out.append(text[last:])
    return out


def merged(events: list[JsonEvent]) -> list[JsonEvent]:
    """Merge adjacent deltas of the same path (what a different split may cut differently)."""
    out: list[JsonEvent] = []
    for ev in events:
        if isinstance(ev, JsonDelta) and out and isinstance(out[-1], JsonDelta) and out[-1].path == ev.path:
            out[-1] = JsonDelta(ev.path, out[-1].delta + ev.delta)
        else:
            out.append(ev)
    return out


def leaves(value: Any, path: str = "$") -> dict[str, Any]:
    """Every scalar of a JSON value by its JSONPath."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(leaves(v, json_path_child(path, k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(leaves(v, json_path_child(path, i)))
        return out
    return {path: value}


def containers(value: Any, path: str = "$") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in containers(v, json_path_child(path, k))] + [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in containers(v, json_path_child(path, i))] + [path]
    return []


def is_prefix(part: Any, full: Any) -> bool:
    if isinstance(full, dict):
        return isinstance(part, dict) and all(k in full and is_prefix(v, full[k]) for k, v in part.items())
    if isinstance(full, list):
        return isinstance(part, list) and len(part) <= len(full) and all(map(is_prefix, part, full))
    if isinstance(full, str):
        return isinstance(part, str) and full.startswith(part)
    return type(part) is type(full) and part == full


def deltas_by_path(events: list[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ev in events:
        if isinstance(ev, JsonDelta):
            out[ev.path] = out.get(ev.path, "") + ev.delta
        elif isinstance(ev, ObjectDelta):
            out[ev.json_path] = out.get(ev.json_path, "") + ev.delta
    return out


# --------------------------------------------------------------------------- strategies

_tricky = st.sampled_from(['"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "ß", "€", "😀", "𝄞", " ", "."])
json_text = st.text(st.characters() | _tricky, max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text
)
json_keys = st.text(st.characters() | _tricky | st.sampled_from(["a", "b", "_", "1"]), max_size=6)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(json_keys, children, max_size=5),
    max_leaves=25,
)
json_containers = st.one_of(st.lists(json_values, max_size=4), st.dictionaries(json_keys, json_values, max_size=4))
dumps_options = st.sampled_from(
    [
        {},
        {"ensure_ascii": False},
        {"indent": 2},
        {"indent": 1, "ensure_ascii": False},
        {"separators": (",", ":")},
        {"indent": "\t", "separators": (",", ": ")},
    ]
)


def check_document(text: str, pieces: list[str], *, lenient: bool) -> None:
    expected = json.loads(text)
    events, partials, parser = run_parser(pieces, lenient=lenient)
    # the final partial is json.loads of the text
    assert parser.complete
    assert parser.partial == expected
    assert is_prefix(parser.partial, expected) and is_prefix(expected, parser.partial)
    # every intermediate partial is a prefix (checked after the end: snapshots must not change)
    for p in partials:
        if p is not None:
            assert is_prefix(p, expected), (p, expected)
    # string deltas per path rebuild each string; other scalars come whole as their JSON text
    got = deltas_by_path(events)
    want = leaves(expected)
    assert set(got) == set(want)
    for path, value in want.items():
        if isinstance(value, str):
            assert got[path] == value, path
        else:
            decoded = json.loads(got[path])
            assert decoded == value and type(decoded) is type(value), path
    # a completion notice for every value, containers after their content, root last
    ends = [ev.path for ev in events if isinstance(ev, JsonValueEnd)]
    assert sorted(ends) == sorted([*want, *containers(expected)])
    assert ends[-1] == "$"
    # the same events whatever the split
    whole, _, _ = run_parser([text], lenient=lenient)
    assert merged(events) == merged(whole)


# --------------------------------------------------------------------------- parser properties


@given(value=json_values, options=dumps_options, cuts=st.lists(st.integers(min_value=0), max_size=12))
@example(value="\U0001f600", options={}, cuts=[3, 5, 9])
@example(value={"a.b": [1, {"c": "x\ny"}]}, options={"indent": 2}, cuts=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
def test_strict_any_value_any_split(value: Any, options: dict[str, Any], cuts: list[int]) -> None:
    text = json.dumps(value, **options)
    check_document(text, split(text, cuts), lenient=False)


@given(value=json_containers, options=dumps_options, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_lenient_containers_any_split(value: Any, options: dict[str, Any], cuts: list[int]) -> None:
    text = json.dumps(value, **options)
    check_document(text, split(text, cuts), lenient=True)


@given(value=json_containers, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_lenient_fenced_with_prose_any_split(value: Any, cuts: list[int]) -> None:
    body = json.dumps(value, indent=2, ensure_ascii=False)
    text = f"Sure, here is the JSON:\n```json\n{body}\n```\nAnything else? {{not json"
    events, _, parser = run_parser(split(text, cuts))
    assert parser.partial == value
    whole, _, _ = run_parser([body])
    assert merged(events) == merged(whole)


@given(value=json_values)
def test_char_by_char(value: Any) -> None:
    text = json.dumps(value)
    check_document(text, list(text), lenient=False)


# --------------------------------------------------------------------------- hand cases


@pytest.mark.parametrize(
    ("pieces", "path", "expected"),
    [
        (['{"a": "x\\', 'ny"}'], "$.a", "x\ny"),
        (['{"a": "\\', '"q\\', '"', '"}'], "$.a", '"q"'),
        (['{"a": "\\u', "00", "e", '9"}'], "$.a", "é"),
        (['{"a": "\\ud83d', '\\ude00"}'], "$.a", "😀"),
        (['{"a": "\\ud8', "3d\\", "u", "de0", '0!"}'], "$.a", "😀!"),
        (['{"a": "\\ud83d', "\\", 'n"}'], "$.a", "\ud83d\n"),  # lone high surrogate, as json.loads
        (['{"a": "\\ud83d', '"}'], "$.a", "\ud83d"),
        (['{"a": "\\ude00x"}'], "$.a", "\ude00x"),  # lone low surrogate
        (['{"a": "\\ud83d\\u0041"}'], "$.a", "\ud83dA"),
        (['{"a": "\\/\\b\\f\\r\\t"}'], "$.a", "/\b\f\r\t"),
    ],
)
def test_escapes_split(pieces: list[str], path: str, expected: str) -> None:
    events, _, parser = run_parser(pieces)
    assert deltas_by_path(events)[path] == expected
    assert parser.partial == json.loads("".join(pieces))
    # a surrogate pair is never split between two deltas: only the last delta of the string
    # may end with a high surrogate (a lone one, as json.loads decodes it)
    chunks = [ev.delta for ev in events if isinstance(ev, JsonDelta) and ev.path == path]
    for chunk in chunks[:-1]:
        assert not ("\ud800" <= chunk[-1] <= "\udbff")


def test_number_split_across_feeds() -> None:
    events, partials, parser = run_parser(['{"n": 12', "3.5e1", ', "m": -0', ".25}"])
    assert [e for e in events if isinstance(e, JsonDelta)] == [JsonDelta("$.n", "123.5e1"), JsonDelta("$.m", "-0.25")]
    assert partials[0] == {} and partials[1] == {}  # an incomplete number is left out
    assert partials[2] == {"n": 1235.0}
    assert parser.partial == {"n": 1235.0, "m": -0.25}


def test_root_number_completes_at_close() -> None:
    parser = JsonStreamParser(lenient=False)
    assert parser.feed("4") == [] and parser.feed("2") == []
    assert parser.partial is None
    assert parser.close() == [JsonDelta("$", "42"), JsonValueEnd("$")]
    assert parser.partial == 42


def test_paths_keys_with_dots_and_nested_arrays() -> None:
    doc = {"a.b": {"c d": [[1, [2, "x"]], {"": True}]}, "ok_1": None, "1x": "y", "é": 0, 'q"': []}
    events, _, parser = run_parser([json.dumps(doc)])
    paths = [e.path for e in events if isinstance(e, JsonDelta)]
    assert paths == [
        '$["a.b"]["c d"][0][0]',
        '$["a.b"]["c d"][0][1][0]',
        '$["a.b"]["c d"][0][1][1]',
        '$["a.b"]["c d"][1][""]',
        "$.ok_1",
        '$["1x"]',
        '$["é"]',
    ]
    assert JsonValueEnd('$["q\\""]') in events
    assert parser.partial == doc


def test_partial_shapes() -> None:
    parser = JsonStreamParser()
    assert parser.partial is None
    parser.feed('{"a": [1, {"b": "he')
    assert parser.partial == {"a": [1, {"b": "he"}]}
    parser.feed('llo"}, tr')
    assert parser.partial == {"a": [1, {"b": "hello"}]}
    parser.feed('ue], "c": "')
    assert parser.partial == {"a": [1, {"b": "hello"}, True], "c": ""}
    parser.feed('"')
    snap = parser.partial
    parser.feed(', "d": {"e": [')
    assert parser.partial == {"a": [1, {"b": "hello"}, True], "c": "", "d": {"e": []}}
    assert snap == {"a": [1, {"b": "hello"}, True], "c": ""}  # earlier snapshots do not change
    parser.feed("]}}")
    assert parser.complete and parser.close() == []


def test_empty_string_gives_one_empty_delta() -> None:
    events, _, _ = run_parser(['{"a": "', '", "b": [""]}'])
    assert [e for e in events if isinstance(e, JsonDelta)] == [JsonDelta("$.a", ""), JsonDelta("$.b[0]", "")]


def test_fenced_answer_and_trailing_text() -> None:
    text = 'Here you go:\n```json\n{"city": "Paris", "tags": ["a", "[b]"]}\n```\nHope {this} helps ]'
    events, _, parser = run_parser(list(text))
    assert parser.partial == {"city": "Paris", "tags": ["a", "[b]"]}
    assert parser.complete and parser.offset == len(text)
    assert deltas_by_path(events) == {"$.city": "Paris", "$.tags[0]": "a", "$.tags[1]": "[b]"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", 42), ("```json\n-1.5\n```", -1.5), ('  "yes"  ', "yes"), ("true", True), ("null", None)],
)
def test_lenient_scalar_root_parsed_at_close(text: str, expected: Any) -> None:
    parser = JsonStreamParser()
    assert parser.feed(text) == []
    events = parser.close()
    assert events[-1] == JsonValueEnd("$")
    assert parser.partial == expected


def test_lenient_text_without_json_raises() -> None:
    parser = JsonStreamParser()
    parser.feed("Sorry, I can't help with that.")
    with pytest.raises(JsonStreamError, match="no JSON object or array"):
        parser.close()
    empty = JsonStreamParser()
    with pytest.raises(JsonStreamError, match="truncated") as info:
        empty.close()
    assert info.value.truncated


@pytest.mark.parametrize(
    ("text", "offset", "lenient"),
    [
        ('{"a" 1}', 5, True),
        ('{"a": tru}', 9, True),
        ('{"a": nul', None, True),
        ("[1,]", 3, True),
        ('{"a":1,}', 7, True),
        ('{"a": "x\\q"}', 8, True),
        ('{"a": "\\u12G4"}', 7, True),
        ('{"a": 01}', 6, True),
        ('{"a": 1.}', 6, True),
        ('{"a": -}', 6, True),
        ('{"a": 1e}', 6, True),
        ('{"a": "x\ny"}', 8, True),
        ("[1 2]", 3, True),
        ("{1: 2}", 1, True),
        ('{"a": 1]', 7, True),
        ("[}", 1, True),
        ('{"a": x}', 6, True),
        ("{} x", 3, False),
        ("x", 0, False),
        ("[1]]", 3, False),
    ],
)
def test_malformed_raises_with_offset(text: str, offset: int | None, lenient: bool) -> None:
    for pieces in ([text], list(text)):
        parser = JsonStreamParser(lenient=lenient)
        with pytest.raises(JsonStreamError) as info:
            for piece in pieces:
                parser.feed(piece)
            parser.close()
        err = info.value
        assert isinstance(err, ValueError)
        if offset is None:
            assert err.truncated
        else:
            assert err.offset == offset, (pieces, str(err))
            assert not err.truncated
            assert f"at offset {offset}" in str(err)
        with pytest.raises(JsonStreamError):  # the parser stays failed
            parser.feed("1")


@pytest.mark.parametrize(
    "text", ['{"a": "xy', '{"a": ', '{"a"', "[1, 2", '{"a": [{"b": 1}', '{"a": 12', "[tr", '["\\u00']
)
def test_truncated_raises_at_close(text: str) -> None:
    parser = JsonStreamParser()
    parser.feed(text)
    with pytest.raises(JsonStreamError, match="truncated") as info:
        parser.close()
    assert info.value.truncated and info.value.offset == len(text)


def test_error_keeps_events_of_the_failing_piece() -> None:
    parser = JsonStreamParser()
    with pytest.raises(JsonStreamError) as info:
        parser.feed('{"a": "hi", "b" 2}')
    assert info.value.events == [JsonDelta("$.a", "hi"), JsonValueEnd("$.a")]


def test_feed_after_close() -> None:
    parser = JsonStreamParser()
    parser.feed("{}")
    parser.close()
    assert parser.close() == []
    with pytest.raises(RuntimeError):
        parser.feed("x")


def test_linear_time() -> None:
    """Fed in small pieces, a document twice as long takes about twice as long (not 4x)."""

    def cost(n: int) -> float:
        doc = json.dumps({"items": [{"id": i, "name": f"item {i}" * 3, "ok": True} for i in range(n)], "s": "x" * n})
        pieces = [doc[i : i + 4] for i in range(0, len(doc), 4)]
        best = float("inf")
        for _ in range(3):
            parser = JsonStreamParser()
            t0 = time.perf_counter()
            for p in pieces:
                parser.feed(p)
            parser.close()
            best = min(best, time.perf_counter() - t0)
        return best

    small, large = cost(2000), cost(8000)
    assert large < small * 4 * 2  # linear would be 4x; quadratic 16x


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
