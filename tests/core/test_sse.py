"""Tests of :mod:`streamops.sse`: the WHATWG event-stream rules, chunking, recorded bodies, async."""

from __future__ import annotations

import csv
import gc
import gzip
import itertools
import random
import re
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamops.sse import SSEDecoder, SSEEvent, aiter_sse, aiter_sse_response

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded"
BODIES = sorted(RECORDED.glob("*/*.sse"))


@dataclass
class Decoded:
    events: list[SSEEvent]
    dropped: SSEEvent | None
    last_event_id: str | None
    retry: int | None
    last_comment: str | None = field(default=None, compare=False)


def decode(chunks: Sequence[bytes]) -> Decoded:
    """Feed ``chunks`` to a fresh decoder, flush, and return everything observable."""
    dec = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += dec.feed(chunk)
    events += dec.flush()
    return Decoded(events, dec.dropped, dec.last_event_id, dec.retry, dec.last_comment)


def events_of(*chunks: bytes) -> list[SSEEvent]:
    return decode(chunks).events


def split_at(body: bytes, offsets: Sequence[int]) -> list[bytes]:
    cuts = [0, *sorted(offsets), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(cuts)]


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


# ------------------------------------------------------------------------------ line ends
@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_each_line_end_style(eol: bytes) -> None:
    body = eol.join([b"event: a", b"data: 1", b"data: 2", b"", b"data: 3", b"", b""])
    assert events_of(body) == [SSEEvent("a", "1\n2"), SSEEvent("message", "3")]
    assert events_of(*bytewise(body)) == events_of(body)


def test_mixed_line_ends() -> None:
    body = b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\r"
    assert events_of(body) == [SSEEvent(data="a\nb\nc"), SSEEvent(data="d")]


def test_cr_then_lf_in_next_chunk_is_one_line_end() -> None:
    # Counted twice, the CR LF would be an empty line that dispatches "a" alone.
    assert events_of(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [SSEEvent(data="a\nb")]


def test_cr_pending_survives_empty_chunks() -> None:
    assert events_of(b"data: a\r", b"", b"\ndata: b\n\n") == [SSEEvent(data="a\nb")]
    # ... and chunks that decode to no text yet (half a code point).
    assert events_of(b"data: a\r", b"\xe2", b"\x82\xac\n") == []
    assert events_of(b"data: a\r", b"\xe2", b"\x82\xac: x\n\n") == [SSEEvent(data="a")]


def test_cr_then_cr_in_next_chunk_is_two_line_ends() -> None:
    assert events_of(b"data: a\r", b"\r") == [SSEEvent(data="a")]
    assert events_of(b"data: a\r", b"\r\n", b"data: b\n\n") == [SSEEvent(data="a"), SSEEvent(data="b")]


def test_lf_then_cr_is_two_line_ends() -> None:
    assert events_of(b"data: a\n\rdata: b\n\n") == [SSEEvent(data="a"), SSEEvent(data="b")]


def test_long_line_fed_one_byte_at_a_time() -> None:
    value = "x€😀" * 3000
    body = f"data: {value}\n\n".encode()
    assert events_of(*bytewise(body)) == [SSEEvent(data=value)]


# ------------------------------------------------------------------------------ BOM
def test_leading_bom_is_stripped() -> None:
    assert events_of(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent(data="x")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_leading_bom_split_across_chunks(cut: int) -> None:
    body = b"\xef\xbb\xbfdata: x\n\n"
    assert events_of(body[:cut], body[cut:]) == [SSEEvent(data="x")]
    assert events_of(*bytewise(body)) == [SSEEvent(data="x")]


def test_only_one_leading_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert events_of(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_later_in_the_stream_is_text() -> None:
    assert events_of(b"data: x\n\n\xef\xbb\xbfdata: y\n\n") == [SSEEvent(data="x")]
    assert events_of(b"data: \xef\xbb\xbfy\n\n") == [SSEEvent(data="\ufeffy")]
    # Not a BOM once a chunk has produced text, even if that text held no line yet.
    assert events_of(b"da", b"\xef\xbb\xbfta: y\n\n") == []


# ------------------------------------------------------------------------------ comments
def test_comments_are_ignored_and_the_last_is_kept() -> None:
    dec = SSEDecoder()
    assert dec.last_comment is None
    assert dec.feed(b": ping\n\n") == []
    assert dec.last_comment == " ping"
    assert dec.feed(b"data: a\n:keepalive\ndata: b\n\n") == [SSEEvent(data="a\nb")]
    assert dec.last_comment == "keepalive"
    assert dec.feed(b":\n") == []
    assert dec.last_comment == ""


def test_comment_does_not_dispatch_or_reset() -> None:
    assert events_of(b"event: e\n: c\ndata: x\n: c\n\n") == [SSEEvent("e", "x")]


# ------------------------------------------------------------------------------ fields
def test_multi_line_data_is_joined_with_lf() -> None:
    body = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert events_of(body) == [SSEEvent(data="YHOO\n+2\n10")]


def test_spec_example_empty_data_blocks() -> None:
    # WHATWG example: the first block fires data "", the middle one data "\n", the last is
    # discarded (no empty line after it).
    result = decode([b"data\n\ndata\ndata\n\ndata:"])
    assert result.events == [SSEEvent(data=""), SSEEvent(data="\n")]
    assert result.dropped == SSEEvent(data="")


def test_spec_example_one_space_removed() -> None:
    assert events_of(b"data:test\n\ndata: test\n\n") == [SSEEvent(data="test"), SSEEvent(data="test")]


def test_only_one_leading_space_is_removed() -> None:
    assert events_of(b"data:  two\n\n") == [SSEEvent(data=" two")]
    assert events_of(b"data:\tx\n\n") == [SSEEvent(data="\tx")]
    assert events_of(b"data: a: b:c\n\n") == [SSEEvent(data="a: b:c")]
    assert events_of(b"event:  sp\ndata\n\n") == [SSEEvent(" sp", "")]
    assert events_of(b"data: trailing \n\n") == [SSEEvent(data="trailing ")]


def test_space_before_colon_makes_another_field() -> None:
    assert events_of(b"data : x\n\n") == []


def test_field_names_are_case_sensitive_and_unknown_ignored() -> None:
    assert events_of(b"Data: x\nDATA: y\nfoo: bar\nfoo\n\n") == []
    assert events_of(b"foo: bar\ndata: x\nbaz\n\n") == [SSEEvent(data="x")]


def test_field_with_no_colon_has_empty_value() -> None:
    assert events_of(b"data\n\n") == [SSEEvent(data="")]
    assert events_of(b"event: e\nevent\ndata: x\n\n") == [SSEEvent("message", "x")]
    dec = SSEDecoder()
    assert dec.feed(b"id: 1\ndata: a\n\nid\ndata: b\n\n") == [SSEEvent(data="a", id="1"), SSEEvent(data="b", id="")]
    assert dec.last_event_id == ""


def test_data_may_hold_nul_and_other_controls() -> None:
    assert events_of(b"data: a\x00b\x0bc\x0cd\xc2\x85e\xe2\x80\xa8f\n\n") == [
        SSEEvent(data="a\x00b\x0bc\x0cd\x85e\u2028f")
    ]


def test_event_type() -> None:
    body = b"event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\nevent: a\nevent: b\ndata: 4\n\n"
    assert events_of(body) == [
        SSEEvent("add", "1"),
        SSEEvent("message", "2"),
        SSEEvent("message", "3"),
        SSEEvent("b", "4"),
    ]


def test_empty_data_buffer_is_not_dispatched_but_type_is_reset() -> None:
    assert events_of(b"event: lonely\n\n") == []
    assert events_of(b"event: lonely\n\ndata: x\n\n") == [SSEEvent("message", "x")]
    assert events_of(b"\n\n\n") == []


# ------------------------------------------------------------------------------ id
def test_id_persists_until_changed() -> None:
    dec = SSEDecoder()
    assert dec.last_event_id is None
    assert dec.feed(b"data: a\n\nid: 1\ndata: b\n\ndata: c\n\nid: 2\ndata: d\n\n") == [
        SSEEvent(data="a", id=None),
        SSEEvent(data="b", id="1"),
        SSEEvent(data="c", id="1"),
        SSEEvent(data="d", id="2"),
    ]
    assert dec.last_event_id == "2"


def test_id_with_nul_is_ignored() -> None:
    dec = SSEDecoder()
    events = dec.feed(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert events == [SSEEvent(data="a", id="1"), SSEEvent(data="b", id="1")]
    assert dec.last_event_id == "1"


def test_id_without_data_updates_last_event_id_at_the_empty_line() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"id: 7\n") == []
    assert dec.last_event_id is None  # the buffer is copied at the empty line (dispatch step 1)
    assert dec.feed(b"\n") == []
    assert dec.last_event_id == "7"
    assert dec.feed(b"data: x\n\n") == [SSEEvent(data="x", id="7")]


def test_id_of_unfinished_event_does_not_change_last_event_id() -> None:
    dec = SSEDecoder()
    dec.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert dec.flush() == []
    assert dec.last_event_id == "1"
    assert dec.dropped == SSEEvent(data="b", id="2")


# ------------------------------------------------------------------------------ retry
def test_retry_digits_only() -> None:
    dec = SSEDecoder()
    assert dec.retry is None
    events = dec.feed(b"retry: 1500\ndata: a\n\ndata: b\n\n")
    assert events == [SSEEvent(data="a", retry=1500), SSEEvent(data="b")]
    assert dec.retry == 1500
    for bad in (b"15x0", b"-1", b"+5", b" 5", b"1.5", b"", b"\xd9\xa1\xd9\xa2", b"\xc2\xb2", b"5 "):
        assert dec.feed(b"retry: " + bad + b"\ndata: c\n\n") == [SSEEvent(data="c")], bad
        assert dec.retry == 1500
    assert dec.feed(b"retry\ndata: c\n\n") == [SSEEvent(data="c")]
    assert dec.feed(b"retry:0\ndata: z\n\n") == [SSEEvent(data="z", retry=0)]
    assert dec.retry == 0


def test_retry_takes_effect_at_once_and_alone() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"retry: 10\n") == []
    assert dec.retry == 10
    assert dec.feed(b"\ndata: a\n\n") == [SSEEvent(data="a")]  # the empty line ended its event


def test_retry_too_long_for_int_is_ignored_without_error() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"retry: " + b"9" * 5000 + b"\ndata: a\n\n") == [SSEEvent(data="a")]
    assert dec.retry is None


def test_retry_last_one_wins_within_an_event() -> None:
    assert events_of(b"retry: 1\nretry: 2\nretry: x\ndata: a\n\n") == [SSEEvent(data="a", retry=2)]


# ------------------------------------------------------------------------------ end of stream
def test_unfinished_last_event_is_dropped_but_reachable() -> None:
    body = b'event: ping\ndata: {}\n\nevent: message_stop\ndata: {"type":"message_stop" }'
    dec = SSEDecoder()
    assert dec.feed(body) == [SSEEvent("ping", "{}")]
    assert dec.dropped is None
    assert dec.flush() == []
    assert dec.dropped == SSEEvent("message_stop", '{"type":"message_stop" }')


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r", b"\r\n", b"\ndata: more", b"\nid: 9\nretry: 5"])
def test_unfinished_last_event_variants(tail: bytes) -> None:
    result = decode([b"data: x\n\nevent: e\ndata: last" + tail])
    assert result.events == [SSEEvent(data="x")]
    expected = {
        b"\ndata: more": SSEEvent("e", "last\nmore"),
        b"\nid: 9\nretry: 5": SSEEvent("e", "last", id="9", retry=5),
    }.get(tail, SSEEvent("e", "last"))
    assert result.dropped == expected
    assert result.last_event_id is None
    # retry of a complete line takes effect at once; of an unterminated one, never.
    assert result.retry is None


def test_unterminated_retry_line_is_not_applied() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: a\nretry: 5")
    dec.flush()
    assert dec.retry is None
    assert dec.dropped == SSEEvent(data="a", retry=5)


def test_no_dropped_event_when_only_fields_without_data_are_pending() -> None:
    for body in (b"data: x\n\nevent: e\n", b"data: x\n\n: comment", b"data: x\n\nid: 3", b""):
        result = decode([body])
        assert result.dropped is None, body


def test_flush_resets_for_a_new_stream() -> None:
    dec = SSEDecoder()
    dec.feed(b"\xef\xbb\xbfid: 1\nretry: 20\ndata: a\n\nevent: e\ndata: half\r")
    dec.flush()
    assert dec.dropped == SSEEvent("e", "half", id="1")
    # A new body: BOM stripped again, nothing of the dropped event carried over, the id and the
    # retry kept (as an EventSource keeps them across reconnections).
    assert dec.feed(b"\xef\xbb\xbf\ndata: b\n\n") == [SSEEvent(data="b", id="1")]
    assert dec.feed(b"data: c\n\n") == [SSEEvent(data="c", id="1")]
    assert dec.retry == 20
    dec.flush()
    assert dec.dropped is None


# ------------------------------------------------------------------------------ UTF-8
def test_code_point_split_at_every_byte() -> None:
    text = "data: 😀 中文 é € 🇺🇸\n\n"
    body = text.encode()
    for i in range(len(body) + 1):
        assert events_of(body[:i], body[i:]) == [SSEEvent(data=text[6:-2])], i


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert events_of(b"data: a\xffb\xc3(c\n\n") == [SSEEvent(data="a\ufffdb\ufffd(c")]
    # A truncated sequence before a line end, and split across chunks.
    assert events_of(b"data: \xe2\x82\n\n") == [SSEEvent(data="\ufffd")]
    assert events_of(b"data: \xe2", b"\x82", b"\n\n") == [SSEEvent(data="\ufffd")]
    assert events_of(b"ev\xffent: x\ndata: y\n\n") == [SSEEvent(data="y")]


def test_truncated_code_point_at_end_of_stream() -> None:
    result = decode([b"data: ok\n\ndata: \xf0\x9f"])
    assert result.events == [SSEEvent(data="ok")]
    assert result.dropped == SSEEvent(data="\ufffd")


def test_bytes_like_chunks_are_accepted() -> None:
    dec = SSEDecoder()
    events = dec.feed(bytearray(b"data: \xe2\x82")) + dec.feed(memoryview(b"\xac\n\n"))  # type: ignore[arg-type]
    assert events == [SSEEvent(data="€")]


# ------------------------------------------------------------------------------ hypothesis
_TRICKY = st.sampled_from(["😀", "中", "文", "é", "€", "🇺🇸", "\u200d", " ", ":", "\ufeff", "\x00", "\t"])
_CHARS = st.characters(codec="utf-8", exclude_characters="\r\n\ufffd")
_VALUE = st.lists(st.one_of(_TRICKY, _CHARS), max_size=8).map("".join)


@st.composite
def _event_specs(draw: st.DrawFn) -> tuple[str | None, list[str], str | None, int | None, bool]:
    event_type = draw(st.none() | _VALUE.filter(bool))
    data = draw(st.lists(_VALUE, min_size=1, max_size=4))
    event_id = draw(st.none() | _VALUE.filter(lambda v: "\x00" not in v))
    retry = draw(st.none() | st.integers(0, 10**12))
    noise = draw(st.booleans())
    return event_type, data, event_id, retry, noise


def _encode(
    specs: list[tuple[str | None, list[str], str | None, int | None, bool]],
    eols: list[str],
    tight: list[bool],
    bom: bool,
) -> tuple[bytes, list[SSEEvent], str | None, int | None]:
    """Encode events as SSE text; return the body and the events/state a decoder must produce."""
    lines: list[str] = []
    expected: list[SSEEvent] = []
    current_id: str | None = None
    current_retry: int | None = None

    def field_line(name: str, value: str) -> str:
        # "name:value" is only unambiguous when the value does not start with a space.
        if tight[len(lines) % len(tight)] and not value.startswith(" "):
            return f"{name}:{value}"
        return f"{name}: {value}"

    for event_type, data, event_id, retry, noise in specs:
        if noise:
            lines += [": a comment", "unknown: field", "id: x\x00y", "retry: 12a"]
        if event_type is not None:
            lines.append(field_line("event", event_type))
        for value in data:
            lines.append(field_line("data", value))
        if event_id is not None:
            lines.append(field_line("id", event_id))
            current_id = event_id
        if retry is not None:
            lines.append(field_line("retry", str(retry)))
            current_retry = retry
        lines.append("")
        expected.append(SSEEvent(event_type or "message", "\n".join(data), current_id, retry))
    out: list[str] = ["\ufeff"] if bom else []
    previous = ""
    for i, line in enumerate(lines):
        eol = eols[i % len(eols)]
        if previous == "\r" and not line and eol == "\n":
            eol = "\r\n"  # a lone LF after a CR would merge with it into one line end
        out.append(line + eol)
        previous = eol
    return "".join(out).encode(), expected, current_id, current_retry


@given(
    specs=st.lists(_event_specs(), max_size=6),
    eols=st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=1, max_size=8),
    tight=st.lists(st.booleans(), min_size=1, max_size=5),
    bom=st.booleans(),
    data=st.data(),
)
def test_roundtrip_any_events_any_line_ends_any_chunks(
    specs: list[tuple[str | None, list[str], str | None, int | None, bool]],
    eols: list[str],
    tight: list[bool],
    bom: bool,
    data: st.DataObject,
) -> None:
    body, expected, last_id, last_retry = _encode(specs, eols, tight, bom)
    offsets = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    for chunks in ([body], split_at(body, offsets)):
        result = decode(chunks)
        assert result.events == expected
        assert result.dropped is None
        assert result.last_event_id == last_id
        assert result.retry == last_retry
        for event in result.events:
            assert "\ufffd" not in event.data + event.event + (event.id or "")


@given(
    text=st.lists(st.one_of(_TRICKY, _CHARS, st.sampled_from(["\r", "\n", "\r\n", ": ", "data"])), max_size=40).map(
        "".join
    ),
    data=st.data(),
)
def test_any_text_any_chunks_same_as_whole(text: str, data: st.DataObject) -> None:
    body = text.encode()
    offsets = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    assert decode(split_at(body, offsets)) == decode([body])


@given(body=st.binary(max_size=60), data=st.data())
def test_any_bytes_never_raise_and_chunking_does_not_matter(body: bytes, data: st.DataObject) -> None:
    body = body.replace(b"x", b"\n").replace(b"y", b"\r").replace(b"z", b":")
    offsets = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    assert decode(split_at(body, offsets)) == decode([body])


# ------------------------------------------------------------------------------ recorded bodies
def _index() -> dict[str, int]:
    with (RECORDED / "INDEX.tsv").open(newline="", encoding="utf-8") as f:
        return {row["file"]: int(row["n_events"]) for row in csv.DictReader(f, delimiter="\t")}


_PROBE = b"event: probe\ndata: probe\n\n"
_FRAME_END = re.compile(rb"(?:\r\n|\n)(?:\r\n|\n)")


def _frames(body: bytes) -> list[bytes]:
    """``body`` cut right after each empty line (where a decoder holds no partial state)."""
    cuts = [0, *(m.end() for m in _FRAME_END.finditer(body)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(cuts) if b > a]


def test_recorded_bodies_are_present() -> None:
    assert len(BODIES) >= 60, RECORDED


@pytest.mark.parametrize("path", BODIES, ids=[f"{p.parent.name}/{p.name}" for p in BODIES])
def test_recorded_body_any_split(path: Path) -> None:
    body = path.read_bytes()
    whole = decode([body])
    name = f"{path.parent.name}/{path.name}"

    # The index counts every event in the body, the unfinished last one included.
    assert len(whole.events) + (whole.dropped is not None) == _index()[name]
    assert whole.events, name
    for event in whole.events:
        assert event.data, name
        assert "\ufffd" not in event.data

    # Every byte offset, two chunks. Right after an empty line ending in LF a decoder holds no
    # state but the last event id and the retry, which no recorded body sets; so the body is
    # checked frame by frame (a frame ends with an empty line): (1) decoding each frame on its
    # own gives the whole body's events; (2) every split of a frame, followed by a probe event
    # that would show any state leaking out of the frame, gives the same result as the frame and
    # probe decoded whole. Together with (1), that is every split of the whole body, at a cost
    # linear in the frame size instead of the body size.
    assert whole.last_event_id is None
    assert whole.retry is None
    frames = _frames(body)
    assert b"".join(frames) == body
    per_frame = [decode([frame]) for frame in frames]
    assert [e for d in per_frame for e in d.events] == whole.events
    assert per_frame[-1].dropped == whole.dropped
    dec = SSEDecoder()  # reused: flush() resets it for a new body (tested above); hot loop
    feed, flush = dec.feed, dec.flush
    for i, frame in enumerate(frames):
        window = frame if i == len(frames) - 1 else frame + _PROBE
        expected = feed(window) + flush()
        expected_dropped = dec.dropped
        for k in range(1, len(frame) + 1):
            got = feed(window[:k]) + feed(window[k:]) + flush()
            if got != expected or dec.dropped != expected_dropped:
                raise AssertionError((name, i, k, got, expected, dec.dropped, expected_dropped))

    # A few hundred random multi-way splits of the whole body (fewer for the largest bodies).
    rng = random.Random(name)
    rounds = max(20, min(300, 3_000_000 // max(len(body), 1)))
    for _ in range(rounds):
        n = rng.choice([1, 2, 3, 5, 10, 30, 100])
        offsets = [rng.randrange(len(body) + 1) for _ in range(n)]
        assert decode(split_at(body, offsets)) == whole, (name, offsets)

    # And byte by byte, the worst case of a network delivering one byte per read.
    if len(body) <= 20_000:
        assert decode(bytewise(body)) == whole


def test_recorded_anthropic_body_without_final_blank_line() -> None:
    body = (RECORDED / "anthropic" / "messages_max_tokens_truncated_tool_json_anthropic_sdk.sse").read_bytes()
    assert not body.endswith(b"\n")
    result = decode([body])
    assert result.events[-1].event == "message_delta"
    assert result.dropped == SSEEvent("message_stop", '{"type":"message_stop" }')


# ------------------------------------------------------------------------------ async wrappers
_BODY = b"\xef\xbb\xbfevent: a\ndata: 1\r\n\r\n: ping\ndata: \xf0\x9f\x98\x80\n\ndata: tail"
_EXPECTED = [SSEEvent("a", "1"), SSEEvent("message", "😀")]


@pytest.mark.anyio
async def test_aiter_sse_async_source() -> None:
    async def source() -> AsyncIterator[bytes]:
        for chunk in bytewise(_BODY):
            await anyio.lowlevel.checkpoint()
            yield chunk

    assert [e async for e in aiter_sse(source())] == _EXPECTED


@pytest.mark.anyio
async def test_aiter_sse_sync_source() -> None:
    assert [e async for e in aiter_sse(bytewise(_BODY))] == _EXPECTED
    assert [e async for e in aiter_sse(iter([_BODY]))] == _EXPECTED
    assert [e async for e in aiter_sse([])] == []


class _AsyncSource:
    """An async iterator of chunks that records whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = iter(chunks)
        self.closed = False

    def __aiter__(self) -> _AsyncSource:
        return self

    async def __anext__(self) -> bytes:
        await anyio.lowlevel.checkpoint()
        try:
            return next(self.chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.anyio
async def test_aiter_sse_closes_async_source_on_early_stop() -> None:
    source = _AsyncSource([b"data: 1\n\ndata: 2\n\n", b"data: 3\n\n"])
    gen = aiter_sse(source)
    assert await gen.__anext__() == SSEEvent(data="1")
    await gen.aclose()
    assert source.closed


@pytest.mark.anyio
async def test_aiter_sse_closes_async_generator_source_on_early_stop() -> None:
    state = {"finalized": False}

    async def source() -> AsyncIterator[bytes]:
        try:
            while True:
                await anyio.lowlevel.checkpoint()
                yield b"data: x\n\n"
        finally:
            state["finalized"] = True

    gen = aiter_sse(source())
    async for event in gen:
        assert event == SSEEvent(data="x")
        break
    await gen.aclose()
    assert state["finalized"]


@pytest.mark.anyio
async def test_aiter_sse_closes_sync_generator_source_on_early_stop() -> None:
    state = {"finalized": False}

    def source() -> Iterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
        finally:
            state["finalized"] = True

    gen = aiter_sse(source())
    assert await gen.__anext__() == SSEEvent(data="x")
    await gen.aclose()
    assert state["finalized"]


@pytest.mark.anyio
async def test_aiter_sse_closes_source_when_exhausted_and_propagates_errors() -> None:
    source = _AsyncSource([b"data: 1\n\n"])
    assert [e async for e in aiter_sse(source)] == [SSEEvent(data="1")]
    assert source.closed

    async def failing() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise ConnectionError("reset")

    got: list[SSEEvent] = []
    with pytest.raises(ConnectionError, match="reset"):
        async for event in aiter_sse(failing()):
            got.append(event)
    assert got == [SSEEvent(data="1")]


@pytest.mark.anyio
async def test_aiter_sse_own_decoder_exposes_dropped_event() -> None:
    dec = SSEDecoder()
    assert [e async for e in aiter_sse([_BODY], decoder=dec)] == _EXPECTED
    assert dec.dropped == SSEEvent(data="tail")


@pytest.mark.anyio
async def test_aiter_sse_rejects_a_bare_body() -> None:
    with pytest.raises(TypeError, match=r"pass \[body\]"):
        async for _ in aiter_sse(_BODY):  # type: ignore[arg-type]
            pass


def _mock_client(
    chunks: list[bytes], headers: dict[str, str] | None = None
) -> tuple[httpx.AsyncClient, dict[str, int]]:
    """An httpx client whose every response streams ``chunks``, and a dict recording how many
    chunks were sent (``"sent"``) and whether the body was closed (``"closed"``, 0 or 1)."""
    state = {"closed": 0, "sent": 0}

    class Body(httpx.AsyncByteStream):
        # An iterator object rather than an async generator: nothing left for trio to flag.
        def __init__(self) -> None:
            self.chunks = iter(chunks)

        def __aiter__(self) -> Body:
            return self

        async def __anext__(self) -> bytes:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                raise StopAsyncIteration from None
            state["sent"] += 1
            return chunk

        async def aclose(self) -> None:
            state["closed"] = 1

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream", **(headers or {})}, stream=Body())

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), state


@pytest.mark.anyio
async def test_aiter_sse_response_with_httpx_mock_transport() -> None:
    chunks = [_BODY[i : i + 3] for i in range(0, len(_BODY), 3)]
    client, _ = _mock_client(chunks)
    async with client, client.stream("GET", "http://test/sse") as response:
        dec = SSEDecoder()
        assert [e async for e in aiter_sse_response(response, decoder=dec)] == _EXPECTED
        assert dec.dropped == SSEEvent(data="tail")


@pytest.mark.anyio
async def test_aiter_sse_response_undoes_content_encoding() -> None:
    body = gzip.compress(_BODY)
    client, _ = _mock_client([body[:7], body[7:]], {"content-encoding": "gzip"})
    async with client, client.stream("GET", "http://test/sse") as response:
        assert [e async for e in aiter_sse_response(response)] == _EXPECTED


@pytest.mark.anyio
async def test_aiter_sse_response_early_close() -> None:
    chunks = [b"data: %d\n\n" % i for i in range(100)]
    with warnings.catch_warnings():
        # httpx 0.28's aiter_bytes() leaves its inner aiter_raw() generator, and that one the
        # client's BoundAsyncStream.__aiter__() generator, to the garbage collector, and trio
        # warns about that (asyncio finalizes them silently). A known httpx issue
        # (encode/httpx#3686, PR #3777), not something a caller of aiter_bytes() can close.
        warnings.filterwarnings("ignore", r"Async generator 'httpx\.", ResourceWarning)
        client, state = _mock_client(chunks)
        async with client:
            async with client.stream("GET", "http://test/sse") as response:
                events = aiter_sse_response(response)
                assert await events.__anext__() == SSEEvent(data="0")
                await events.aclose()
                # Reading stopped at once; the response stays the caller's to close.
                assert state["sent"] == 1
                assert not state["closed"]
            assert state["closed"]
            del events, response
            for _ in range(3):  # let trio's finalizer tasks run (and warn) inside this block
                gc.collect()
                await anyio.lowlevel.checkpoint()


def test_sse_module_does_not_import_httpx() -> None:
    code = (
        "import sys, streamops; before = 'httpx' in sys.modules; import streamops.sse; "
        "print(before, 'httpx' in sys.modules, hasattr(streamops.sse, 'httpx'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, attr = out.stdout.split()
    assert (after, attr) == (before, "False")


# ---------------------------------------------------------------------------- bounded memory (issue 13 item 8)
def test_limits_default_and_validation() -> None:
    from streamops.sse import DEFAULT_MAX_EVENT, DEFAULT_MAX_LINE

    assert DEFAULT_MAX_LINE == DEFAULT_MAX_EVENT == 16 * 1024 * 1024
    with pytest.raises(ValueError, match="max_line"):
        SSEDecoder(max_line=0)
    with pytest.raises(ValueError, match="max_event"):
        SSEDecoder(max_event=0)


@pytest.mark.parametrize("step", [1, 7, 64, 10_000])
def test_a_line_with_no_line_end_is_capped(step: int) -> None:
    """A body that never sends a line end was held whole (a 50 MB line peaked at 200 MB):
    past ``max_line`` the typed error, whatever the chunking; the event before is kept."""
    from streamops.errors import LimitExceededError, StreamFormatError

    body = b"data: first\n\ndata: " + b"x" * 5000
    dec = SSEDecoder(max_line=1000)
    got: list[SSEEvent] = []
    with pytest.raises(LimitExceededError) as info:
        for i in range(0, len(body), step):
            got += dec.feed(body[i : i + step])
        got += dec.flush()
    assert [e.data for e in got] == ["first"]
    err = info.value
    assert isinstance(err, StreamFormatError)
    assert (err.limit_name, err.limit) == ("max_line", 1000)
    assert 1000 < err.size <= 1000 + step
    with pytest.raises(LimitExceededError):  # stays failed
        dec.feed(b"\n\n")


def test_a_long_complete_line_in_one_chunk_is_capped_after_the_events_before_it() -> None:
    from streamops.errors import LimitExceededError

    dec = SSEDecoder(max_line=100)
    body = b"data: a\n\ndata: b\n\n: " + b"c" * 500 + b"\ndata: after\n\n"
    assert [e.data for e in dec.feed(body)] == ["a", "b"]  # the events before, returned first
    with pytest.raises(LimitExceededError, match="max_line=100"):
        dec.flush()
    line_ok = SSEDecoder(max_line=100)
    assert [e.data for e in line_ok.feed(b"data: " + b"y" * 94 + b"\n\n")] == ["y" * 94]  # exactly 100


def test_data_lines_with_no_blank_line_are_capped() -> None:
    """``data:`` lines that never end their event were held without limit: ``max_event``
    caps the data of one event (the joining newlines count)."""
    from streamops.errors import LimitExceededError

    dec = SSEDecoder(max_event=50)
    got = dec.feed(b"data: ok\n\n")
    with pytest.raises(LimitExceededError) as info:
        for _ in range(100):
            got += dec.feed(b"data: 0123456789\n")
    assert [e.data for e in got] == ["ok"]
    assert (info.value.limit_name, info.value.limit) == ("max_event", 50)
    assert info.value.size > 50
    exact = SSEDecoder(max_event=21)
    assert [e.data for e in exact.feed(b"data: 0123456789\ndata: 0123456789\n\n")] == ["0123456789\n0123456789"]
    with pytest.raises(LimitExceededError):
        SSEDecoder(max_event=20).feed(b"data: 0123456789\ndata: 0123456789\n\n")


@pytest.mark.anyio
async def test_aiter_sse_yields_the_events_before_the_limit() -> None:
    from streamops.errors import LimitExceededError

    got: list[str] = []
    with pytest.raises(LimitExceededError):
        async for ev in aiter_sse([b"data: 1\n\ndata: 2\n\ndata: " + b"z" * 300], decoder=SSEDecoder(max_line=200)):
            got.append(ev.data)
    assert got == ["1", "2"]


def _limited_reference(lines: list[str], max_line: int, max_event: int) -> tuple[list[str], bool]:
    """The events dispatched before the first line past a limit, and whether one was passed:
    the limits applied line by line (an independent model of SSEDecoder's rule)."""
    events: list[str] = []
    data: list[str] = []
    size = 0
    for line in lines:
        if len(line) > max_line:
            return events, True
        if not line:
            if data:
                events.append("\n".join(data))
            data, size = [], 0
        elif line.startswith("data: "):
            data.append(line[6:])
            size += len(line) - 6 + 1
            if size > max_event + 1:
                return events, True
    return events, False


@given(
    st.lists(st.tuples(st.sampled_from(["data", "comment", "blank"]), st.integers(0, 40)), max_size=30),
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
    st.integers(8, 40),
    st.integers(1, 80),
)
def test_limits_hold_whatever_the_chunking(
    spec: list[tuple[str, int]], cuts: list[int], max_line: int, max_event: int
) -> None:
    """Whatever the chunk sizes, the decoder gives the events before the first line past a
    limit and then the typed error, exactly where a line-by-line check does (a chunk too small
    to pass a limit skips the per-line checks: this is what keeps that shortcut honest)."""
    from streamops.errors import LimitExceededError

    lines = ["data: " + "x" * n if k == "data" else ": " + "c" * n if k == "comment" else "" for k, n in spec]
    lines += ["", ""]
    body = "\n".join(lines).encode()
    want, passed = _limited_reference(lines, max_line, max_event)
    dec = SSEDecoder(max_line=max_line, max_event=max_event)
    got: list[str] = []
    raised = False
    i = 0
    try:
        for n in itertools.cycle(cuts):
            if i >= len(body):
                break
            got += [e.data for e in dec.feed(body[i : i + n])]
            i += n
        got += [e.data for e in dec.flush()]
    except LimitExceededError:
        raised = True
    assert (got, raised) == (want, passed)
