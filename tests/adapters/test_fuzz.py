"""Damaged recorded streams: bad input gives the documented typed errors, never a crash.

Every recorded body (``fixtures/recorded/INDEX.tsv``) is damaged deterministically (seeded
``random.Random`` per body and kind, plus a bounded hypothesis test): truncation at a random
byte, inside a ``data:`` line's JSON, inside a UTF-8 sequence, right after a data line (a
stream that stops mid-event); byte flips; inserted binary junk; invalid JSON in a ``data:``
line; a duplicated event; removed blank lines (one, or all); an unknown event type. Each
variant goes through ``SSEParser("auto")`` (fed in 1-4 KiB reads) under both policies, and a
few through the async ``parse_sse``. What must hold:

- ``on_malformed="raise"``: the only exceptions are
  :class:`~streamops.errors.StreamFormatError` and its subclass
  :class:`~streamops.errors.TruncatedStreamError` (no ``KeyError``, ``TypeError``,
  ``json.JSONDecodeError``... leaking out of a parser);
- ``on_malformed="event"``: nothing is raised, except for a body that holds no complete SSE
  event with data at all (a truncation inside the first event, or a flip that breaks every
  ``data`` field name): ``StreamFormatError("not an event stream ...")``, documented on
  :class:`~streamops.adapters.SSEParser`. Nothing already received is lost: the events that the
  bytes before the damage completed are the first events of the damaged parse, the same
  (kind, deltas, ids...) as in the undamaged parse;
- the text out (text, reasoning, refusal, tool-argument deltas, tool arguments) holds no
  character that is not in the input (as UTF-8 or as a JSON escape), except U+FFFD where bytes
  were damaged;
- every event's fields have their declared types (:func:`ill_typed`, from
  ``typing.get_type_hints`` of the event dataclass: an ``int`` is never a ``bool``): a wire
  value of the wrong type is malformed input, never copied into an event.

A second sweep (:func:`test_wrong_typed_field`) takes, per API, every wire field a parser
copies into an event (:data:`FIELDS`), replaces it in a recorded payload with values of every
other JSON type, and checks that the parser reports exactly that field (``StreamFormatError``
naming it, or an ``ErrorEvent``), that everything emitted validates
(:func:`streamops.events.validate_event` and :func:`ill_typed`), and that the run still ends.

Outcomes are counted per damage kind and policy (``ok`` / ``StreamFormatError`` /
``TruncatedStreamError`` / ``error events``: no exception, at least one ``ErrorEvent``) and
printed at the end of the pytest run (``pytest_terminal_summary`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import random
import types
import typing
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Literal, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamops.adapters import SSEParser, parse_sse
from streamops.adapters._sansio import parser_for

from streamops.errors import StreamFormatError, TruncatedStreamError
from streamops.events import (
    BaseEvent,
    ErrorEvent,
    ReasoningDelta,
    RefusalDelta,
    RunEnd,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    to_dict,
    validate_event,
)
from streamops.sse import SSEDecoder
from tests.conftest import RECORDED

ROWS = list(csv.DictReader((RECORDED / "INDEX.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t"))
BODIES: dict[str, bytes] = {r["file"]: (RECORDED / r["file"]).read_bytes() for r in ROWS}
FILES = [r["file"] for r in ROWS]

FUZZ_COUNTS: Counter[tuple[str, str, str]] = Counter()
"""(damage kind, policy, outcome) -> count; printed by ``tests/conftest.py`` at the end."""

OUTCOMES = ("ok", "StreamFormatError", "TruncatedStreamError", "error events")
"""Exclusive outcomes of one damaged variant under one policy."""

# ------------------------------------------------------------------------------------ damage


def lines_of(body: bytes) -> list[tuple[int, bytes]]:
    """(offset, line with its terminator) for every line of the body (CR, LF, CRLF)."""
    out = []
    pos = 0
    for line in body.splitlines(keepends=True):
        out.append((pos, line))
        pos += len(line)
    return out


def boundaries(body: bytes) -> list[int]:
    """Offsets just after each blank line (the end of an SSE event block)."""
    return [off + len(line) for off, line in lines_of(body) if line in (b"\n", b"\r\n", b"\r")]


def eol_of(body: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in body else b"\n"


def data_lines(body: bytes) -> list[tuple[int, bytes]]:
    return [(off, line) for off, line in lines_of(body) if line.startswith(b"data:") and b"{" in line]


Damage = tuple[bytes, int]
"""The damaged body and the offset of the first damaged byte (bytes before it are intact)."""


def d_truncate(body: bytes, rng: random.Random) -> Damage:
    d = rng.randrange(1, len(body))
    return body[:d], d


def d_truncate_json(body: bytes, rng: random.Random) -> Damage:
    off, line = rng.choice(data_lines(body))
    start = line.index(b"{")
    d = off + rng.randrange(start + 1, len(line.rstrip(b"\r\n")))
    return body[:d], d


def d_truncate_utf8(body: bytes, rng: random.Random) -> Damage:
    # Cut right after a multi-byte sequence's lead byte (or inside it): mid code point.
    cont = [i for i in range(1, len(body)) if 0x80 <= body[i] <= 0xBF]
    if not cont:
        return d_truncate(body, rng)
    d = rng.choice(cont)
    return body[:d], d


def d_stop_mid_event(body: bytes, rng: random.Random) -> Damage:
    # Cut after a data line's line end, before the blank line that would dispatch it.
    off, line = rng.choice(data_lines(body))
    d = off + len(line)
    return body[:d], d


def d_flip(body: bytes, rng: random.Random) -> Damage:
    b = bytearray(body)
    spots = [rng.randrange(len(b)) for _ in range(rng.randint(1, 3))]
    for p in spots:
        b[p] ^= rng.randrange(1, 256)
    return bytes(b), min(spots)


def d_junk(body: bytes, rng: random.Random) -> Damage:
    p = rng.randrange(len(body))
    return body[:p] + rng.randbytes(rng.randint(1, 32)) + body[p:], p


def d_bad_json(body: bytes, rng: random.Random) -> Damage:
    # A data line whose JSON is cut short (a prefix of an object is never valid JSON).
    off, line = rng.choice(data_lines(body))
    end = len(line.rstrip(b"\r\n"))
    cut = rng.randrange(line.index(b"{") + 1, end)
    return body[: off + cut] + line[end:] + body[off + len(line) :], off + cut


def d_dup_event(body: bytes, rng: random.Random) -> Damage:
    ends = boundaries(body)
    i = rng.randrange(len(ends))
    start = ends[i - 1] if i else 0
    return body[: ends[i]] + body[start : ends[i]] + body[ends[i] :], ends[i]


def d_no_blank(body: bytes, rng: random.Random) -> Damage:
    blanks = [(off, line) for off, line in lines_of(body) if line in (b"\n", b"\r\n", b"\r")]
    off, line = rng.choice(blanks)
    return body[:off] + body[off + len(line) :], off


def d_no_blank_all(body: bytes, rng: random.Random) -> Damage:
    blanks = [off for off, line in lines_of(body) if line in (b"\n", b"\r\n", b"\r")]
    out = b"".join(line for _, line in lines_of(body) if line not in (b"\n", b"\r\n", b"\r"))
    return out, blanks[0] if blanks else len(body)


def d_unknown_event(body: bytes, rng: random.Random) -> Damage:
    eol = eol_of(body)
    ends = [0, *boundaries(body)]
    p = rng.choice(ends)
    if rng.random() < 0.5:
        frame = b"event: fuzz_unknown" + eol + b'data: {"type": "fuzz_unknown", "x": [1, "\xc3\xa9"]}' + eol + eol
    else:
        frame = b'data: {"fuzz": true}' + eol + eol
    return body[:p] + frame + body[p:], p


_ODD_VALUES: tuple[Any, ...] = (None, 0, -1, 1.5, True, "", "x", "\ud800", [], {}, [1], {"a": 1}, 10**30)


def d_wrong_type(body: bytes, rng: random.Random) -> Damage:
    # Valid JSON of the wrong shape: one to three nodes of a data line's payload replaced by a
    # value of another type (or a key removed).
    lines = lines_of(body)
    idx = [i for i, (_, line) in enumerate(lines) if line.startswith(b"data:") and b"{" in line]
    i = rng.choice(idx)
    off, line = lines[i]
    end = len(line.rstrip(b"\r\n"))
    obj = json.loads(line[5:end])
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(obj))
        obj = _replace(obj, rng.choice(paths), copy.deepcopy(rng.choice(_ODD_VALUES)), rng)
    new = b"data: " + json.dumps(obj).encode() + line[end:]
    return body[:off] + new + body[off + len(line) :], off


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> Any:
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def _replace(obj: Any, path: tuple[Any, ...], value: Any, rng: random.Random) -> Any:
    if not path:
        return value
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    if isinstance(cur, dict) and rng.random() < 0.2:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return obj


DAMAGES: dict[str, Callable[[bytes, random.Random], Damage]] = {
    "truncate": d_truncate,
    "truncate_json": d_truncate_json,
    "truncate_utf8": d_truncate_utf8,
    "stop_mid_event": d_stop_mid_event,
    "flip": d_flip,
    "junk": d_junk,
    "bad_json": d_bad_json,
    "dup_event": d_dup_event,
    "no_blank": d_no_blank,
    "no_blank_all": d_no_blank_all,
    "unknown_event": d_unknown_event,
    "wrong_type": d_wrong_type,
}
PER_KIND = 2
"""Variants per (body, damage kind) in the deterministic sweep."""


def variants(file: str) -> list[tuple[str, bytes, int]]:
    body = BODIES[file]
    out = []
    for kind, fn in DAMAGES.items():
        rng = random.Random(zlib.crc32(f"{file}:{kind}".encode()))
        for _ in range(PER_KIND if kind not in ("no_blank_all",) else 1):
            damaged, d = fn(body, rng)
            out.append((kind, damaged, d))
    return out


# ------------------------------------------------------------------------------------ checks


def reads(body: bytes, rng: random.Random) -> list[bytes]:
    out = []
    i = 0
    while i < len(body):
        n = rng.randint(1024, 4096)
        out.append(body[i : i + n])
        i += n
    return out


def run_parser(body: bytes, policy: str, seed: int = 0) -> tuple[list[BaseEvent], BaseException | None]:
    """Feed ``body`` in 1-4 KiB reads, then close; the events, and the exception if any."""
    p = SSEParser("auto", run_id="fuzz", on_malformed=policy)  # type: ignore[arg-type]
    events: list[BaseEvent] = []
    try:
        for r in reads(body, random.Random(seed)):
            events += p.feed(r)
        events += p.close()
    except StreamFormatError as exc:
        return events + p.out, exc  # ``out``: the failing call's events before the bad input
    except Exception as exc:
        return events, exc
    return events, None


def prefix_events(body: bytes, d: int, policy: str) -> list[BaseEvent]:
    """The events the intact bytes before the damage complete (no close)."""
    p = SSEParser("auto", run_id="fuzz", on_malformed=policy)  # type: ignore[arg-type]
    try:
        return p.feed(body[:d])
    except StreamFormatError:
        return []


def proj(e: BaseEvent) -> dict[str, Any]:
    """An event without its timestamp and raw payload: what must match."""
    return {f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name not in ("ts", "raw")}


_TEXT_TYPES = (TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta)


def out_text(events: list[BaseEvent]) -> str:
    parts = []
    for e in events:
        if isinstance(e, _TEXT_TYPES):
            parts.append(e.delta)
        elif isinstance(e, ToolCallEnd):
            parts.append(e.arguments)
    return "".join(parts)


_HINTS: dict[type, dict[str, Any]] = {}


def _type_ok(value: Any, tp: Any) -> bool:
    """``value`` is of the declared type ``tp`` (strictly: an ``int`` is not a ``bool``, a
    ``float`` not a ``str``...)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp))
    if origin is Union or origin is types.UnionType:
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is int:
        return type(value) is int
    if tp is float:
        return type(value) in (float, int)
    if tp is bool:
        return type(value) is bool
    if dataclasses.is_dataclass(tp):
        return isinstance(value, tp) and not _field_type_errors(value)
    return isinstance(value, tp)


def _field_type_errors(obj: Any) -> list[str]:
    cls = type(obj)
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return [
        f"{getattr(obj, 'kind', cls.__name__)}.{f.name}={getattr(obj, f.name)!r:.60}"
        for f in dataclasses.fields(obj)
        if not _type_ok(getattr(obj, f.name), hints[f.name])
    ]


def ill_typed(events: list[BaseEvent]) -> list[str]:
    """Event fields whose value is not of the field's declared type (``typing.get_type_hints``
    of the event dataclass, ``Usage`` included): a wire value of the wrong type that a parser
    copied through unchecked."""
    return [bad for e in events for bad in _field_type_errors(e)]


def invalid_events(events: list[BaseEvent]) -> list[str]:
    """Events that :func:`streamops.events.validate_event` rejects once dumped with
    :func:`streamops.events.to_dict` (pydantic, lax: it would accept ``True`` for an int, hence
    :func:`ill_typed` too)."""
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic's serializer warns on an ill-typed field
        for e in events:
            try:
                validate_event(to_dict(e))
            except Exception as exc:
                bad.append(f"{e.kind}: {exc}")
    return bad


def _strings(obj: Any, into: set[str]) -> None:
    if isinstance(obj, str):
        into.update(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            into.update(k)
            _strings(v, into)
    elif isinstance(obj, list):
        for v in obj:
            _strings(v, into)


def sse_events(body: bytes) -> list[Any]:
    dec = SSEDecoder()
    return [e for e in dec.feed(body) + dec.flush() if e.data]


def input_chars(body: bytes) -> set[str]:
    """Every character of the body as UTF-8 (U+FFFD for bad bytes) or inside a JSON string
    (a lone surrogate escaped in JSON counts as U+FFFD: the parsers replace it)."""
    chars = set(body.decode("utf-8", "replace"))
    for sse in sse_events(body):
        try:
            _strings(json.loads(sse.data), chars)
        except ValueError:
            pass
    if any("\ud800" <= c <= "\udfff" for c in chars):
        chars.add("\ufffd")
    return chars


def outcome(events: list[BaseEvent], exc: BaseException | None) -> str:
    if isinstance(exc, TruncatedStreamError):
        return "TruncatedStreamError"
    if isinstance(exc, StreamFormatError):
        return "StreamFormatError"
    return "error events" if any(isinstance(e, ErrorEvent) for e in events) else "ok"


_REF: dict[tuple[str, str], list[BaseEvent]] = {}


def check_variant(file: str, kind: str, damaged: bytes, d: int, policy: str) -> None:
    """Run one damaged body under one policy and check everything the module docstring says."""
    body = BODIES[file]
    events, exc = run_parser(damaged, policy, seed=d)
    FUZZ_COUNTS[(kind, policy, outcome(events, exc))] += 1
    where = f"{file} [{kind} at byte {d}, on_malformed={policy!r}]"
    assert not ill_typed(events), f"{where}: ill-typed event fields: {ill_typed(events)}"

    # 1. Only the documented typed errors.
    if exc is not None and not isinstance(exc, StreamFormatError):
        raise AssertionError(f"{where}: untyped {type(exc).__name__}: {exc}") from exc
    if policy == "event" and exc is not None:
        assert not sse_events(damaged), f"{where}: raised {exc!r} with on_malformed='event'"
        assert "no SSE event with data" in str(exc)

    # 2. Nothing already received is lost (checked where the parse ran to its end).
    if exc is None:
        before = prefix_events(body, d, policy)
        got = [proj(e) for e in events[: len(before)]]
        assert got == [proj(e) for e in before], f"{where}: the events before the damage changed"
        key = (file, policy)
        if key not in _REF:
            _REF[key] = run_parser(body, policy)[0]
        ref = _REF[key]
        assert [proj(e) for e in ref[: len(before)]] == [proj(e) for e in before]
        # A parse that ran to its end ends with exactly one run end.
        ends = [i for i, e in enumerate(events) if isinstance(e, RunEnd)]
        assert ends == [len(events) - 1], f"{where}: run ends at {ends} of {len(events)} events"

    else:
        before = prefix_events(body, d, policy)
        n = min(len(before), len(events))
        assert len(events) >= len(before), f"{where}: events before the damage lost at the raise"
        assert [proj(e) for e in events[:n]] == [proj(e) for e in before[:n]], where

    # 3. No character out that was not in.
    extra = set(out_text(events)) - input_chars(damaged)
    assert not extra, f"{where}: output characters not in the input: {sorted(extra)!r}"


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("policy", ["raise", "event"])
@pytest.mark.parametrize("file", FILES)
def test_damaged_bodies(file: str, policy: str) -> None:
    for kind, damaged, d in variants(file):
        check_variant(file, kind, damaged, d, policy)


def test_no_event_at_all_is_the_only_raise_with_event_policy() -> None:
    """The documented exception to "nothing is raised with on_malformed='event'"."""
    for body in (b"", b": just a comment\n\n", b"\x00\xff junk \xfe", b"data", b"event: x\n\n", b"data: {"):
        for policy in ("raise", "event"):
            events, exc = run_parser(body, policy)
            FUZZ_COUNTS[("no_event_at_all", policy, outcome(events, exc))] += 1
            assert isinstance(exc, StreamFormatError) and not isinstance(exc, TruncatedStreamError)
            assert events == []


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    file=st.sampled_from(FILES),
    kind=st.sampled_from(sorted(DAMAGES)),
    seed=st.integers(0, 2**32 - 1),
    policy=st.sampled_from(["raise", "event"]),
)
def test_damaged_bodies_hypothesis(file: str, kind: str, seed: int, policy: str) -> None:
    damaged, d = DAMAGES[kind](BODIES[file], random.Random(seed))
    check_variant(file, kind, damaged, d, policy)


_WRONG_TYPES = [
    # (body, what is wrong, how many wrong-typed fields): valid JSON whose values have the wrong
    # type for their fields; each is reported once.
    (
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":1}}]}\n\n'
        b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
        "chat delta.content is a number",
        1,
    ),
    (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":["a"]}}\n\n',
        "anthropic text_delta.text is a list",
        1,
    ),
    (
        b'data: {"candidates":[{"content":{"parts":[{"text":true}]},"finishReason":"STOP"}],"modelVersion":1}\n\n',
        "gemini part text is a bool, modelVersion a number",
        2,
    ),
    (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":{"a":1}}\n\n',
        "responses output_text.delta is an object",
        1,
    ),
    (
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":true,"id":"a",'
        b'"function":{"name":"f","arguments":"{}"}}]}}]}\n\n'
        b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":false,"completion_tokens":2.0}}\n\ndata: [DONE]\n\n',
        "chat tool_calls[].index is a bool, usage counts a bool and a float",
        3,
    ),
    (
        b'event: response.incomplete\ndata: {"type":"response.incomplete","response":{"id":"r","status":"incomplete",'
        b'"incomplete_details":{"reason":5}}}\n\n',
        "responses incomplete_details.reason is a number",
        1,
    ),
    (
        b'data: {"modelVersion":"g","candidates":[{"content":{"parts":[{"functionCall":{"name":"f","partialArgs":'
        b'[{"jsonPath":"$.a","numberValue":"3"},{"jsonPath":"$.b","boolValue":1},{"jsonPath":7,"stringValue":"x"}]'
        b'}}]}}]}\n\ndata: {"promptFeedback":{"blockReason":["SAFETY"]},"usageMetadata":{"promptTokenCount":"4"}}\n\n',
        "gemini partialArgs numberValue a string, boolValue a number, jsonPath a number; blockReason a list",
        5,
    ),
    (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c","usage":{}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"redacted_thinking","data":{"a":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
        b'"content_block":{"type":"tool_use","id":1,"name":"f","input":{}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,'
        b'"delta":{"type":"input_json_delta","partial_json":"{}"}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"}}\n\n',
        "anthropic redacted_thinking data is an object, tool_use id a number",
        2,
    ),
]


@pytest.mark.parametrize(("body", "what", "n"), _WRONG_TYPES, ids=[w for _, w, _ in _WRONG_TYPES])
def test_wrong_typed_values_never_reach_events(body: bytes, what: str, n: int) -> None:
    for policy in ("raise", "event"):
        events, exc = run_parser(body, policy)
        assert not ill_typed(events), f"{what}: {ill_typed(events)}"
        assert not invalid_events(events), f"{what}: {invalid_events(events)}"
        if policy == "raise":
            assert isinstance(exc, StreamFormatError), what
            assert "expected " in str(exc), f"{what}: {exc}"
        else:
            assert exc is None, what
            errs = [e.message for e in events if isinstance(e, ErrorEvent)]
            assert len([m for m in errs if "expected " in m]) == n, f"{what}: {errs}"


# ------------------------------------------------------------------------------------ wrong-typed fields

_API_OF = {
    "chat.completions": "openai-chat",
    "responses": "openai-responses",
    "messages": "anthropic",
    "gemini": "gemini",
}
FILES_BY_API: dict[str, list[str]] = {}
for _r in ROWS:
    FILES_BY_API.setdefault(_API_OF[_r["api"]], []).append(_r["file"])


def _is(ptype: str, item_type: str | None = None) -> Callable[[Any], bool]:
    """A payload predicate: its ``type`` is ``ptype`` (and its ``item.type`` / ``delta.type`` /
    ``content_block.type`` is ``item_type``)."""

    def pred(p: Any) -> bool:
        if p.get("type") != ptype:
            return False
        if item_type is None:
            return True
        inner = p.get("item") or p.get("content_block") or p.get("delta") or {}
        return bool(inner.get("type") == item_type)

    return pred


def _any(p: Any) -> bool:
    return True


Field = tuple[str, Callable[[Any], bool], tuple[Any, ...], str, bool]
"""(label, payload predicate, path (``"*"``: any list position), expected type, null allowed)."""

C0 = ("choices", 0)
TC = (*C0, "delta", "tool_calls", "*")
FIELDS: dict[str, list[Field]] = {
    "openai-chat": [
        ("id", _any, ("id",), "string", True),
        ("model", _any, ("model",), "string", True),
        ("delta.content", _any, (*C0, "delta", "content"), "content", True),
        ("delta.reasoning_content", _any, (*C0, "delta", "reasoning_content"), "string", True),
        ("delta.reasoning", _any, (*C0, "delta", "reasoning"), "string", True),
        ("delta.refusal", _any, (*C0, "delta", "refusal"), "string", True),
        ("tool_calls[].index", _any, (*TC, "index"), "int", True),
        ("tool_calls[].id", _any, (*TC, "id"), "string", True),
        ("tool_calls[].function.name", _any, (*TC, "function", "name"), "string", True),
        ("tool_calls[].function.arguments", _any, (*TC, "function", "arguments"), "string", True),
        ("finish_reason", _any, (*C0, "finish_reason"), "string", True),
        ("usage.prompt_tokens", _any, ("usage", "prompt_tokens"), "int", True),
        ("usage.completion_tokens", _any, ("usage", "completion_tokens"), "int", True),
        (
            "usage.reasoning_tokens",
            _any,
            ("usage", "completion_tokens_details", "reasoning_tokens"),
            "int",
            True,
        ),
        ("usage.cached_tokens", _any, ("usage", "prompt_tokens_details", "cached_tokens"), "int", True),
        ("usage.prompt_cache_hit_tokens", _any, ("usage", "prompt_cache_hit_tokens"), "int", True),
    ],
    "openai-responses": [
        ("response.model", _any, ("response", "model"), "string", True),
        ("response.id", _any, ("response", "id"), "string", True),
        ("output_text.delta", _is("response.output_text.delta"), ("delta",), "string", False),
        ("output_text.item_id", _is("response.output_text.delta"), ("item_id",), "string", True),
        ("output_text.content_index", _is("response.output_text.delta"), ("content_index",), "int", False),
        ("summary.delta", _is("response.reasoning_summary_text.delta"), ("delta",), "string", False),
        ("summary.summary_index", _is("response.reasoning_summary_text.delta"), ("summary_index",), "int", False),
        ("args.delta", _is("response.function_call_arguments.delta"), ("delta",), "string", False),
        ("args.item_id", _is("response.function_call_arguments.delta"), ("item_id",), "string", True),
        ("args.output_index", _is("response.function_call_arguments.delta"), ("output_index",), "int", True),
        ("args_done.arguments", _is("response.function_call_arguments.done"), ("arguments",), "string", True),
        ("added.item.call_id", _is("response.output_item.added", "function_call"), ("item", "call_id"), "string", True),
        ("added.item.id", _is("response.output_item.added", "function_call"), ("item", "id"), "string", True),
        ("added.item.name", _is("response.output_item.added", "function_call"), ("item", "name"), "string", True),
        (
            "added.item.arguments",
            _is("response.output_item.added", "function_call"),
            ("item", "arguments"),
            "string",
            True,
        ),
        ("added.output_index", _is("response.output_item.added", "function_call"), ("output_index",), "int", True),
        (
            "reasoning.encrypted_content",
            _is("response.output_item.done", "reasoning"),
            ("item", "encrypted_content"),
            "string",
            True,
        ),
        ("completed.status", _is("response.completed"), ("response", "status"), "string", True),
        ("usage.input_tokens", _is("response.completed"), ("response", "usage", "input_tokens"), "int", True),
        ("usage.output_tokens", _is("response.completed"), ("response", "usage", "output_tokens"), "int", True),
        (
            "usage.reasoning_tokens",
            _is("response.completed"),
            ("response", "usage", "output_tokens_details", "reasoning_tokens"),
            "int",
            True,
        ),
        (
            "usage.cached_tokens",
            _is("response.completed"),
            ("response", "usage", "input_tokens_details", "cached_tokens"),
            "int",
            True,
        ),
    ],
    "anthropic": [
        ("message.model", _is("message_start"), ("message", "model"), "string", True),
        ("message.id", _is("message_start"), ("message", "id"), "string", True),
        ("usage.input_tokens", _is("message_start"), ("message", "usage", "input_tokens"), "int", True),
        ("usage.output_tokens", _is("message_start"), ("message", "usage", "output_tokens"), "int", True),
        (
            "usage.cache_read_input_tokens",
            _is("message_start"),
            ("message", "usage", "cache_read_input_tokens"),
            "int",
            True,
        ),
        (
            "usage.cache_creation_input_tokens",
            _is("message_start"),
            ("message", "usage", "cache_creation_input_tokens"),
            "int",
            True,
        ),
        ("block_start.index", _is("content_block_start"), ("index",), "int", False),
        ("block_start.type", _is("content_block_start"), ("content_block", "type"), "string", False),
        ("text_block.text", _is("content_block_start", "text"), ("content_block", "text"), "string", True),
        ("thinking.signature", _is("content_block_start", "thinking"), ("content_block", "signature"), "string", True),
        ("tool_use.id", _is("content_block_start", "tool_use"), ("content_block", "id"), "string", False),
        ("tool_use.name", _is("content_block_start", "tool_use"), ("content_block", "name"), "string", False),
        ("block_delta.index", _is("content_block_delta"), ("index",), "int", False),
        ("text_delta.text", _is("content_block_delta", "text_delta"), ("delta", "text"), "string", False),
        (
            "thinking_delta.thinking",
            _is("content_block_delta", "thinking_delta"),
            ("delta", "thinking"),
            "string",
            False,
        ),
        (
            "signature_delta.signature",
            _is("content_block_delta", "signature_delta"),
            ("delta", "signature"),
            "string",
            False,
        ),
        (
            "input_json_delta.partial_json",
            _is("content_block_delta", "input_json_delta"),
            ("delta", "partial_json"),
            "string",
            False,
        ),
        ("block_stop.index", _is("content_block_stop"), ("index",), "int", False),
        ("stop_reason", _is("message_delta"), ("delta", "stop_reason"), "string", True),
        ("delta_usage.output_tokens", _is("message_delta"), ("usage", "output_tokens"), "int", True),
    ],
    "gemini": [
        ("modelVersion", _any, ("modelVersion",), "string", True),
        ("responseId", _any, ("responseId",), "string", True),
        ("part.text", _any, ("candidates", 0, "content", "parts", "*", "text"), "string", True),
        (
            "part.thoughtSignature",
            _any,
            ("candidates", 0, "content", "parts", "*", "thoughtSignature"),
            "string",
            True,
        ),
        ("functionCall.name", _any, ("candidates", 0, "content", "parts", "*", "functionCall", "name"), "string", True),
        ("functionCall.id", _any, ("candidates", 0, "content", "parts", "*", "functionCall", "id"), "string", True),
        ("functionCall.args", _any, ("candidates", 0, "content", "parts", "*", "functionCall", "args"), "object", True),
        ("finishReason", _any, ("candidates", 0, "finishReason"), "string", True),
        ("usage.promptTokenCount", _any, ("usageMetadata", "promptTokenCount"), "int", True),
        ("usage.candidatesTokenCount", _any, ("usageMetadata", "candidatesTokenCount"), "int", True),
        ("usage.thoughtsTokenCount", _any, ("usageMetadata", "thoughtsTokenCount"), "int", True),
    ],
}
"""Per API, the wire fields whose value a parser copies into an event (or into a value it
derives one from: a block id, a tool call's key, the finish reason)."""

_VALUES: dict[str, tuple[Any, ...]] = {
    "string": ("x", ""),
    "int": (7, 0, -1),
    "float": (1.5, 2.0),
    "bool": (True, False),
    "list": (["x"], []),
    "dict": ({"a": "x"}, {}),
    "null": (None,),
}
_KINDS_OK = {
    "string": ("string",),
    "int": ("int",),
    "object": ("dict",),
    # OpenAI Chat delta.content: a string, or an array of content parts (Mistral); bad parts
    # are tested in tests/adapters/test_openai_chat.py
    "content": ("string", "list"),
}


def wrong_values(expected: str, nullable: bool) -> list[Any]:
    """Values of every JSON type other than ``expected`` (null only where it is not allowed),
    truthy and falsy."""
    ok = set(_KINDS_OK[expected]) | ({"null"} if nullable else set())
    return [copy.deepcopy(v) for k, vs in _VALUES.items() if k not in ok for v in vs]


def _expand(obj: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    """The concrete paths matching ``path`` (``"*"``: every list position) present in ``obj``."""
    if not path:
        yield ()
        return
    head, rest = path[0], path[1:]
    if head == "*":
        keys: list[Any] = list(range(len(obj))) if isinstance(obj, list) else []
    elif (isinstance(obj, dict) and head in obj) or (isinstance(obj, list) and type(head) is int and head < len(obj)):
        keys = [head]
    else:
        keys = []
    for k in keys:
        for sub in _expand(obj[k], rest):
            yield (k, *sub)


def _sse_payloads(file: str) -> list[tuple[str | None, str]]:
    return [(None if e.event == "message" else e.event, e.data) for e in sse_events(BODIES[file])]


_SSE: dict[str, list[tuple[str | None, str]]] = {}


def field_cases(api: str, field: Field, per_field: int = 5) -> list[tuple[str, int, tuple[Any, ...]]]:
    """(file, SSE event position, concrete path): the field's first occurrence in up to
    ``per_field`` recorded bodies of ``api``."""
    _, pred, path, _, _ = field
    out = []
    for file in FILES_BY_API[api]:
        sse = _SSE.get(file)
        if sse is None:
            sse = _SSE[file] = _sse_payloads(file)
        for i, (_, data) in enumerate(sse):
            try:
                payload = json.loads(data)
            except ValueError:
                continue
            if not isinstance(payload, dict) or not pred(payload):
                continue
            found = next(_expand(payload, path), None)
            if found is not None:
                out.append((file, i, found))
                break
        if len(out) >= per_field:
            break
    return out


def run_mutated(
    api: str, file: str, pos: int, path: tuple[Any, ...], value: Any, policy: str
) -> tuple[list[BaseEvent], BaseException | None]:
    """Feed ``file``'s SSE events to the ``api`` parser with the value at ``path`` of event
    ``pos`` replaced by ``value``, then close."""
    p = parser_for(api, run_id="fuzz", on_malformed=policy)  # type: ignore[arg-type]
    events: list[BaseEvent] = []
    try:
        for i, (etype, data) in enumerate(_SSE[file]):
            if i == pos:
                obj = json.loads(data)
                cur = obj
                for k in path[:-1]:
                    cur = cur[k]
                cur[path[-1]] = copy.deepcopy(value)
                data = json.dumps(obj)
            events += p.feed_json(etype, data)
            if p.ended:
                break
        events += p.close()
    except StreamFormatError as exc:
        return events + p.out, exc
    except Exception as exc:
        return events, exc
    return events, None


WRONG_TYPE_COUNTS: Counter[str] = Counter()

_FIELD_PARAMS = [pytest.param(api, field, id=f"{api}:{field[0]}") for api, fields in FIELDS.items() for field in fields]


@pytest.mark.parametrize(("api", "field"), _FIELD_PARAMS)
def test_wrong_typed_field(api: str, field: Field) -> None:
    """Each copied wire field of a real recorded payload, replaced by values of every other JSON
    type: reported as malformed input naming the field (a ``StreamFormatError`` under
    ``"raise"``, an ``ErrorEvent`` under ``"event"``, after which the stream goes on to its run
    end), and never copied into an event: every emitted event validates."""
    label, _, _, expected, nullable = field
    cases = field_cases(api, field)
    if not cases:
        pytest.skip(f"no recorded {api} payload has {label}")
    key = str(field[2][-1])
    for file, pos, path in cases:
        for value in wrong_values(expected, nullable):
            for policy in ("raise", "event"):
                events, exc = run_mutated(api, file, pos, path, value, policy)
                WRONG_TYPE_COUNTS[api] += 1
                where = f"{file} event {pos} {'.'.join(map(str, path))}={value!r} on_malformed={policy!r}"
                assert not ill_typed(events), f"{where}: {ill_typed(events)}"
                assert not invalid_events(events), f"{where}: {invalid_events(events)}"
                if policy == "raise":
                    assert isinstance(exc, StreamFormatError), f"{where}: {exc!r}"
                    assert key in str(exc) and "expected " in str(exc), f"{where}: {exc}"
                else:
                    assert exc is None, f"{where}: {exc!r}"
                    msgs = [e.message for e in events if isinstance(e, ErrorEvent)]
                    assert any(key in m and "expected " in m for m in msgs), f"{where}: {msgs}"
                    ends = [i for i, e in enumerate(events) if isinstance(e, RunEnd)]
                    assert ends == [len(events) - 1], f"{where}: run ends at {ends} of {len(events)}"


ASYNC_FILES = [
    "openai/chat_tool_long_args_pyd.sse",
    "anthropic/messages_thinking_signature_pyd.sse",
    "gemini/gemini_grounding_web_search_pyd.sse",
    "openai/responses_function_call_pyd.sse",
]


async def _aread(chunks: list[bytes]) -> Any:
    for c in chunks:
        yield c


@pytest.mark.anyio
@pytest.mark.parametrize("file", ASYNC_FILES)
async def test_damaged_bodies_async(file: str) -> None:
    """The async ``parse_sse`` fails with the same typed errors and yields the same events."""
    for kind, damaged, d in variants(file)[::3]:
        for policy in ("raise", "event"):
            sync_events, sync_exc = run_parser(damaged, policy, seed=d)
            got: list[BaseEvent] = []
            exc: BaseException | None = None
            try:
                async for ev in parse_sse(_aread(reads(damaged, random.Random(d))), on_malformed=policy):  # type: ignore[arg-type]
                    got.append(ev)
            except Exception as e:
                exc = e
            FUZZ_COUNTS[(f"async:{kind}", policy, outcome(got, exc))] += 1
            where = f"{file} [{kind} at byte {d}, on_malformed={policy!r}, async]"
            if exc is not None and not isinstance(exc, StreamFormatError):
                raise AssertionError(f"{where}: untyped {type(exc).__name__}: {exc}") from exc
            assert type(exc) is type(sync_exc), where
            if exc is None:
                assert [type(e) for e in got] == [type(e) for e in sync_events], where
                assert out_text(got) == out_text(sync_events), where
