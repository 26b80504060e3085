"""Incremental JSON parsing (``streamops.jsonstream``): any value split anywhere, lenient
prose and fences, partial shapes, typed errors with offsets, linear time."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from streamops.events import ObjectDelta
from streamops.jsonstream import JsonDelta, JsonEvent, JsonStreamError, JsonStreamParser, JsonValueEnd, json_path_child

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
