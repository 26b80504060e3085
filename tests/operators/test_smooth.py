"""``smooth``: re-chunking text and reasoning deltas on boundaries.

Most properties are checked on the sans-IO stage directly (``bind`` a list's ``append``, push
events, call ``end``), then once through a real ``Stream`` on asyncio and trio. The
``max_delay`` form is checked against the event loop's clock.
"""

from __future__ import annotations

import bisect
import itertools
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamops import (
    Accumulator,
    ReasoningDelta,
    RefusalDelta,
    Stage,
    Stream,
    TextDelta,
    ToolCallStart,
    UsageEvent,
)
from streamops.events import Usage
from streamops.operators.text import _NO_SPACE, smooth
from streamops.testing import virtual_backends
from tests.conftest import RECORDED

GRAPHEME = regex.compile(r"\X")
NS = re.compile(f"[{_NO_SPACE}]")
VIRTUAL = pytest.mark.parametrize("anyio_backend", virtual_backends(), ids=["asyncio-virtual", "trio-virtual"])
"""Run an async test under a virtual clock: timers fire exactly on time, sleeps take no time."""
EPS = 1e-6
GROWS = regex.compile(
    r"[\r\u200d\p{Extended_Pictographic}\p{Regional_Indicator}\p{GCB=Prepend}\p{InCB=Linker}\p{GCB=L}\p{GCB=V}]"
    r"\p{GCB=Extend}*\Z"
)
"""Text whose last grapheme cluster the next character could still extend (a ZWJ, an emoji that
could take a skin tone, a regional indicator, a CR, a Hangul jamo...): ``max_delay`` holds it."""
MODES: list[Any] = ["word", "line", "sentence", "grapheme", re.compile(r"[,;]\s*"), re.compile(r"(?<=\d)")]


# ------------------------------------------------------------------------------ helpers
def td(text: str, block: str | None = "b0", **kw: Any) -> TextDelta:
    return TextDelta(delta=text, block_id=block, **kw)


def run_stage(stage: Any, events: list[Any]) -> list[Any]:
    """Drive a Stage synchronously: push every event, then end."""
    assert isinstance(stage, Stage)
    out: list[Any] = []
    ended: list[bool] = []
    push, end = stage.bind(out.append, lambda: ended.append(True))
    for e in events:
        push(e)
    end()
    assert ended == [True]
    return out


def texts(events: list[Any]) -> list[str]:
    return [e.delta for e in events if isinstance(e, (TextDelta, ReasoningDelta))]


def grapheme_bounds(s: str) -> set[int]:
    out = {0}
    for m in GRAPHEME.finditer(s):
        out.add(m.end())
    return out


def chunk_bounds(chunks: list[str]) -> set[int]:
    out = {0}
    pos = 0
    for c in chunks:
        pos += len(c)
        out.add(pos)
    return out


def split_at(text: str, cuts: list[int]) -> list[str]:
    idx = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(idx)]


# ------------------------------------------------------------------------------ strategies
PIECES = [
    "Hello", ",", " ", "world", "!", ".", "?", "  ", "\n", "\n\n", "\r\n", "\t", "e\u0301",  # é decomposed
    "\u0301", "a\u0308\u0323",  # combining marks
    "👍", "👍🏽", "🏽", "\u200d", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "\ufe0f",  # emoji, ZWJ, VS16
    "🇺🇸", "🇫", "🇷",  # flags, lone regional indicators
    "你好", "世界", "。", "，", "！", "日本語のテキスト", "カタカナ",  # CJK
    "ภาษาไทย", "กิน", "ข้าว",  # Thai, with combining vowels
    "한국어", "Привет", "क्षत्रिय",  # Hangul, Cyrillic, Devanagari conjuncts
    "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 3,  # base64: a long unbroken run
    "123", "4,5;6", "x", "\u3000",
]  # fmt: skip
text_st = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), min_size=0, max_size=25).map("".join)
cuts_st = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)
mode_st = st.sampled_from(MODES)
max_chars_st = st.sampled_from([1, 2, 3, 5, 8, 13, 256])


# ------------------------------------------------------------------------------ properties
@given(text=text_st, cuts=cuts_st, by=mode_st, max_chars=max_chars_st)
@example(text="Hello, world", cuts=[], by="word", max_chars=256)
@example(text="a \u0301b c", cuts=[2], by="word", max_chars=256)
@example(text="👨\u200d👩\u200d👧 ok", cuts=[1, 2, 3], by="word", max_chars=2)
@example(text="🇺🇸🇫🇷🇩", cuts=[1, 2, 3, 5], by="grapheme", max_chars=1)
def test_text_preserved_and_graphemes_whole(text: str, cuts: list[int], by: Any, max_chars: int) -> None:
    pieces = split_at(text, cuts)
    out = run_stage(smooth(by, max_chars=max_chars), [td(p) for p in pieces])
    chunks = texts(out)
    # The text comes out exactly as it went in, whitespace included.
    assert "".join(chunks) == text
    # No empty chunk, no split grapheme cluster: chunk boundaries are grapheme boundaries,
    # except (word mode) after whitespace that ended a delta: that cut is made at once, so a
    # combining mark that a later delta puts on the space starts the next chunk.
    assert all(chunks)
    eager = {len("".join(pieces[: i + 1])) for i, p in enumerate(pieces) if p[-1:].isspace()} if by == "word" else set()
    assert chunk_bounds(chunks) <= grapheme_bounds(text) | eager
    # max_chars holds, unless the chunk is one grapheme cluster longer than it.
    for c in chunks:
        assert len(c) <= max_chars or len(GRAPHEME.findall(c)) == 1, (c, max_chars)
    # Every output is a TextDelta of the block.
    assert all(isinstance(e, TextDelta) and e.block_id == "b0" for e in out)


@given(text=text_st, cuts=cuts_st, max_chars=max_chars_st)
@example(text="Hello, world  foo\nbar", cuts=[3, 9], max_chars=256)
@example(text="你好世界。ok", cuts=[1], max_chars=256)
def test_word_chunks_end_on_a_boundary(text: str, cuts: list[int], max_chars: int) -> None:
    chunks = texts(run_stage(smooth("word", max_chars=max_chars), [td(p) for p in split_at(text, cuts)]))
    for i, c in enumerate(chunks[:-1]):
        nxt = chunks[i + 1]
        ends_ws = c[-1].isspace()
        ns = bool(NS.search(GRAPHEME.findall(c)[-1])) or bool(NS.match(nxt))
        at_max = len(c) + len(GRAPHEME.findall(nxt)[0]) > max_chars
        assert ends_ws or ns or at_max, (chunks, i)


@given(
    parts=st.lists(st.one_of(text_st.filter(bool), st.sampled_from(["TOOL", "USAGE", "BLOCK", "REASON"])), max_size=30)
)
def test_non_text_events_never_overtake_text(parts: list[str]) -> None:
    events: list[Any] = []
    block = 0
    reason = False
    for p in parts:
        if p == "TOOL":
            events.append(ToolCallStart(call_id=f"c{len(events)}", name="t"))
        elif p == "USAGE":
            events.append(UsageEvent(usage=Usage(output_tokens=1)))
        elif p == "BLOCK":
            block += 1
        elif p == "REASON":
            reason = not reason
        else:
            cls = ReasoningDelta if reason else TextDelta
            events.append(cls(delta=p, block_id=f"b{block}"))
    out = run_stage(smooth(), events)

    def segments(evs: list[Any]) -> list[Any]:
        # text per (class, block) run, and the non-text events, in order
        segs: list[Any] = []
        for e in evs:
            if isinstance(e, (TextDelta, ReasoningDelta)):
                key = (type(e), e.block_id)
                if segs and isinstance(segs[-1], list) and segs[-1][0] == key:
                    segs[-1][1] += e.delta
                else:
                    segs.append([key, e.delta])
            else:
                segs.append(e)
        return segs

    assert segments(out) == segments(events)
    # Non-text events are passed on as the same objects.
    assert [e for e in out if not isinstance(e, (TextDelta, ReasoningDelta))] == [
        e for e in events if not isinstance(e, (TextDelta, ReasoningDelta))
    ]


# ------------------------------------------------------------------------------ examples
def test_docstring_marble() -> None:
    tool = ToolCallStart(call_id="c1", name="search")
    out = run_stage(smooth(), [td("Hel"), td("lo, wo"), td("rld"), tool, td("!")])
    assert [e.delta if isinstance(e, TextDelta) else e for e in out] == ["Hello, ", "world", tool, "!"]
    out = run_stage(smooth(), [td("你好"), td("世界")])
    assert texts(out) == ["你", "好", "世", "界"]


@pytest.mark.parametrize(
    ("by", "pieces", "expected"),
    [
        ("word", ["Hello, world"], ["Hello, ", "world"]),
        ("word", ["  lead", "ing  sp", "aces\n\n", "x"], ["  leading  ", "spaces\n\n", "x"]),
        ("word", [" ", " ", " ", "foo"], ["   foo"]),  # leading whitespace goes with the next word
        ("word", ["Hello, ", " ", "\n", "world"], ["Hello, ", " \nworld"]),
        ("word", ["  \n\n"], ["  \n\n"]),  # a block of whitespace only: one chunk at the end
        ("word", ["one\r", "\ntwo"], ["one\r\n", "two"]),  # CR LF is never split
        ("word", ["a\tb\r\nc"], ["a\t", "b\r\n", "c"]),
        ("word", ["Hi 👨\u200d", "👩\u200d👧 ok"], ["Hi ", "👨\u200d👩\u200d👧 ", "ok"]),
        ("word", ["กินข้าว ไหม"], ["กิ", "น", "ข้", "า", "ว ", "ไ", "ห", "ม"]),
        ("word", ["日本語です。Yes"], ["日", "本", "語", "で", "す", "。", "Yes"]),
        ("word", ["a", "\u0301 b c"], ["a\u0301 ", "b ", "c"]),  # a mark on a letter: never split off
        ("word", ["a ", "\u0301b c"], ["a ", "\u0301b ", "c"]),  # a mark on a space: the space went out
        ("line", ["one\ntw", "o\n\nthree\r\n", "four"], ["one\n", "two\n\n", "three\r\n", "four"]),
        (
            "sentence",
            ["Hi there. How are", ' you? "Fine!"  Ok。好的'],
            ["Hi there. ", "How are you? ", '"Fine!"  ', "Ok。", "好的"],
        ),
        ("sentence", ["e.g. this"], ["e.g. ", "this"]),
        ("grapheme", ["e\u0301👍", "🏽x🇺🇸🇫"], ["e\u0301", "👍🏽", "x", "🇺🇸", "🇫"]),
        (re.compile(r",\s*"), ["a, b,c", ",d"], ["a, ", "b,", "c,", "d"]),
    ],
)
def test_boundaries(by: Any, pieces: list[str], expected: list[str]) -> None:
    assert texts(run_stage(smooth(by), [td(p) for p in pieces])) == expected


def test_cjk_and_thai_are_not_held_to_the_end() -> None:
    out: list[Any] = []
    push, _end = smooth().bind(out.append, lambda: None)
    for ch in "你好世界":
        push(td(ch))
    assert texts(out) == ["你", "好", "世"]  # the last one waits for the next character
    push(td("ภาษา"))
    assert texts(out) == ["你", "好", "世", "界", "ภ", "า", "ษ"]


def test_a_word_goes_out_as_soon_as_whitespace_follows_it() -> None:
    out: list[Any] = []
    push, end = smooth().bind(out.append, lambda: None)
    push(td("Hello,"))
    assert out == []  # "Hello," could still grow
    push(td(" "))
    assert texts(out) == ["Hello, "]  # the cut after whitespace is certain: no wait for "w"
    push(td(" "))
    push(td("w"))
    assert texts(out) == ["Hello, "]  # the extra space waits with the next word
    end()
    assert texts(out) == ["Hello, ", " w"]
    # the other boundaries still wait for the character after the cut
    out.clear()
    push, end = smooth("line").bind(out.append, lambda: None)
    push(td("one\n"))
    assert out == []
    push(td("t"))
    assert texts(out) == ["one\n"]


def test_max_chars_splits_long_runs() -> None:
    b64 = "QUJD" * 200
    chunks = texts(run_stage(smooth(max_chars=256), [td(b64[i : i + 50]) for i in range(0, 800, 50)]))
    assert chunks == [b64[:256], b64[256:512], b64[512:768], b64[768:]]
    # backs off to a grapheme boundary: 3 family emoji of 7 code points each, max 10
    fam = "👨\u200d👩\u200d👧\u200d👦"
    chunks = texts(run_stage(smooth(max_chars=10), [td(fam * 3)]))
    assert chunks == [fam, fam, fam]
    # a single cluster longer than max_chars goes out whole
    zalgo = "a" + "\u0301" * 20 + "b"
    assert texts(run_stage(smooth(max_chars=4), [td(zalgo)])) == [zalgo[:-1], "b"]


def test_block_and_kind_changes_flush() -> None:
    out = run_stage(
        smooth(),
        [
            td("Hello wor", "a"),
            td("ld", "b"),
            ReasoningDelta(delta="think ing", block_id="b"),
            td("x y", "b"),
            td("z", "b", run_id="other"),
            td("w", "b", run_id="other", agent="sub"),
            td("q", "b"),
        ],
    )
    assert [(type(e).__name__, e.block_id, e.run_id, e.agent, e.delta) for e in out] == [
        ("TextDelta", "a", "", "", "Hello "),
        ("TextDelta", "a", "", "", "wor"),
        ("TextDelta", "b", "", "", "ld"),
        ("ReasoningDelta", "b", "", "", "think "),
        ("ReasoningDelta", "b", "", "", "ing"),
        ("TextDelta", "b", "", "", "x "),
        # another run or agent is not another block of this run: "y" stays held and "q"
        # continues it; each run's held text goes out at the end
        ("TextDelta", "b", "other", "", "z"),
        ("TextDelta", "b", "other", "sub", "w"),
        ("TextDelta", "b", "", "", "yq"),
    ]


def test_envelope_of_the_delta_that_supplied_the_last_character() -> None:
    a = td("Hello", seq=1, ts=1.0, run_id="r", agent="ag", raw={"i": 1})
    b = td(", wor", seq=2, ts=2.0, run_id="r", agent="ag", raw={"i": 2})
    c = td("ld", seq=3, ts=3.0, run_id="r", agent="ag", raw={"i": 3})
    out = run_stage(smooth(), [a, b, c])
    assert [(e.delta, e.seq, e.ts, e.raw) for e in out] == [
        ("Hello, ", 2, 2.0, {"i": 2}),
        ("world", 3, 3.0, {"i": 3}),
    ]
    assert all(e.run_id == "r" and e.agent == "ag" and e.block_id == "b0" for e in out)
    # a delta that already is exactly one chunk passes through as the same object
    x, y = td("one ", seq=1), td("two", seq=2)
    out = run_stage(smooth(), [x, y])
    assert out[0] is x
    assert out[1] is y


def test_other_kinds_and_subclasses() -> None:
    # refusal deltas are not re-chunked by default: they flush and pass through
    r = RefusalDelta(delta="No can do", block_id="r")
    out = run_stage(smooth(), [td("a b"), r])
    assert [e.delta for e in out] == ["a ", "b", "No can do"]
    assert out[2] is r
    # ... unless asked for
    out = run_stage(smooth(kinds=(RefusalDelta,)), [r, td("a b")])
    assert [(type(e).__name__, e.delta) for e in out] == [
        ("RefusalDelta", "No "),
        ("RefusalDelta", "can "),
        ("RefusalDelta", "do"),
        ("TextDelta", "a b"),
    ]


def test_empty_deltas_are_dropped() -> None:
    assert texts(run_stage(smooth(), [td(""), td("a "), td(""), td("b"), td("")])) == ["a ", "b"]
    assert run_stage(smooth(), [td("")]) == []


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="by must be"):
        smooth("paragraph")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="max_chars"):
        smooth(max_chars=0)
    with pytest.raises(ValueError, match="max_delay"):
        smooth(max_delay=0)


def test_is_a_fused_stage() -> None:
    s = Stream.from_iterable([td("a b")]) | smooth()
    assert s.stages == ("smooth(word)",)
    assert isinstance(smooth("line"), Stage)
    assert not isinstance(smooth(max_delay=0.1), Stage)


# ------------------------------------------------------------------------------ through Stream
@pytest.mark.anyio
async def test_through_stream() -> None:
    evs = [td("The qui"), td("ck brown"), ToolCallStart(call_id="c", name="t"), td(" fox")]
    out = await (Stream.from_iterable(evs) | smooth()).collect()
    assert [getattr(e, "delta", "T") for e in out] == ["The ", "quick ", "brown", "T", " fox"]


@pytest.mark.anyio
async def test_upstream_failure_flushes_then_raises() -> None:
    async def src() -> Any:
        yield td("Hello wor")
        raise RuntimeError("boom")

    got: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        async with (Stream.from_async_iterable(src()) | smooth()).iterate() as it:
            async for e in it:
                got.append(e.delta)
    assert got == ["Hello ", "wor"]


# ------------------------------------------------------------------------------ max_delay
def _timed_source(script: list[Any], log: list[tuple[float, str]], closed: list[bool]) -> Any:
    async def src() -> Any:
        try:
            for step in script:
                if isinstance(step, (int, float)):
                    await anyio.sleep(step)
                else:
                    log.append((anyio.current_time(), step.delta if isinstance(step, TextDelta) else "?"))
                    yield step
        finally:
            closed.append(True)

    return src()


@VIRTUAL
@pytest.mark.anyio
async def test_max_delay_bounds_the_hold() -> None:
    sent: list[tuple[float, str]] = []
    closed: list[bool] = []
    src = _timed_source([td("Hel"), 1.0, td("lo wor"), 1.0, td("ld")], sent, closed)
    got: list[tuple[float, str]] = []
    async with (Stream.from_async_iterable(src) | smooth(max_delay=0.05)).iterate() as it:
        async for e in it:
            got.append((anyio.current_time(), e.delta))
    assert [t for _, t in got] == ["Hel", "lo ", "wor", "ld"]
    assert closed == [True]
    # "Hel" is held max_delay, not until "lo wor" 1 s later
    assert abs(got[0][0] - sent[0][0] - 0.05) < EPS
    # "lo " goes out as soon as it is complete, "wor" max_delay after it arrived
    assert abs(got[1][0] - sent[1][0]) < EPS
    assert abs(got[2][0] - sent[1][0] - 0.05) < EPS
    # "ld" at the end of the stream, at once
    assert abs(got[3][0] - sent[2][0]) < EPS


@pytest.mark.anyio
async def test_max_delay_real_clock() -> None:
    sent: list[tuple[float, str]] = []
    src = _timed_source([td("Hel"), 0.5, td("lo")], sent, [])
    got: list[tuple[float, str]] = []
    async with (Stream.from_async_iterable(src) | smooth(max_delay=0.05)).iterate() as it:
        async for e in it:
            got.append((anyio.current_time(), e.delta))
    assert [t for _, t in got] == ["Hel", "lo"]
    assert 0.04 <= got[0][0] - sent[0][0] < 0.4  # well before the next delta (0.5 s)


@VIRTUAL
@pytest.mark.anyio
async def test_max_delay_counts_from_the_first_held_character() -> None:
    # a character every 30 ms, no boundary: text goes out max_delay after its first character
    script: list[Any] = []
    for ch in "abcdefghijklmnop":
        script += [td(ch), 0.03]
    sent: list[tuple[float, str]] = []
    src = _timed_source(script, sent, [])
    got: list[tuple[float, str]] = []
    async with (Stream.from_async_iterable(src) | smooth(max_delay=0.1)).iterate() as it:
        async for e in it:
            got.append((anyio.current_time(), e.delta))
    assert "".join(t for _, t in got) == "abcdefghijklmnop"
    assert [t for _, t in got] == ["abcd", "efgh", "ijkl", "mnop"]
    arrived = {ch: t for t, ch in sent}
    for t, chunk in got[:-1]:
        assert abs(t - arrived[chunk[0]] - 0.1) < EPS, chunk


@VIRTUAL
@pytest.mark.anyio
async def test_max_delay_keeps_an_unfinished_emoji() -> None:
    src = _timed_source([td("Hey👨\u200d"), 0.4, td("👩 ok")], [], [])
    got: list[tuple[float, str]] = []
    t0 = anyio.current_time()
    async with (Stream.from_async_iterable(src) | smooth(max_delay=0.05)).iterate() as it:
        async for e in it:
            got.append((anyio.current_time() - t0, e.delta))
    assert [t for _, t in got] == ["Hey", "👨\u200d👩 ", "ok"]
    # "Hey" by the timer; the ZWJ sequence waited for its next part
    assert [round(t, 6) for t, _ in got] == [0.05, 0.4, 0.4]


@pytest.mark.anyio
async def test_max_delay_upstream_failure() -> None:
    async def src() -> Any:
        yield td("Hello wor")
        await anyio.sleep(0.01)
        raise RuntimeError("boom")

    got: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        async with (Stream.from_async_iterable(src()) | smooth(max_delay=1.0)).iterate() as it:
            async for e in it:
                got.append(e.delta)
    assert got == ["Hello ", "wor"]


@VIRTUAL
@pytest.mark.anyio
async def test_max_delay_keeps_the_text() -> None:
    import random

    rng = random.Random(5)
    text = "".join(rng.choice(PIECES) for _ in range(60))
    script: list[Any] = []
    for piece in split_at(text, [rng.randrange(len(text)) for _ in range(40)]):
        script.append(td(piece))
        if rng.random() < 0.3:
            script.append(rng.choice([0, 0.002, 0.01]))
    out = await (Stream.from_async_iterable(_timed_source(script, [], [])) | smooth(max_delay=0.004)).collect()
    assert "".join(texts(out)) == text
    assert all(e.delta for e in out)


@VIRTUAL
@pytest.mark.anyio
@settings(max_examples=80, deadline=None)
@given(
    text=text_st,
    cuts=cuts_st,
    gaps=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=8),
    end_gap=st.integers(min_value=0, max_value=20),
    delay=st.integers(min_value=0, max_value=15),
)
@example(text="Hello, world", cuts=[3, 9], gaps=[0, 100], end_gap=0, delay=5)
@example(text="Hey👨\u200d👩 ok", cuts=[5], gaps=[0, 40], end_gap=0, delay=5)  # "👨\u200d" waits for "👩"
@example(text="👍 x", cuts=[1, 2], gaps=[30], end_gap=30, delay=0)  # "👍" waits for " "
async def test_max_delay_holds_no_text_longer_than_max_delay(
    text: str, cuts: list[int], gaps: list[int], end_gap: int, delay: int
) -> None:
    """Property on the virtual clock: a chunk goes out at most ``max_delay`` after its first
    character arrived, unless that character is in a last grapheme cluster that could still
    grow when the time ran out: then at most ``max_delay`` after the next character (or the
    end) arrived. Gaps are whole hundredths of a second, ``max_delay`` is off that grid."""
    max_delay = delay / 100 + 0.005
    script: list[Any] = []
    for i, piece in enumerate(split_at(text, cuts)):
        script += [gaps[i % len(gaps)] / 100, td(piece)]
    script.append(end_gap / 100)
    sent: list[tuple[float, str]] = []
    got: list[tuple[float, str]] = []
    src = _timed_source(script, sent, [])
    async with (Stream.from_async_iterable(src) | smooth(max_delay=max_delay)).iterate() as it:
        async for e in it:
            got.append((anyio.current_time(), e.delta))
    done = anyio.current_time()
    assert "".join(d for _, d in got) == text
    assert all(d for _, d in got)
    arrived = [t for t, d in sent for _ in d]  # per character
    clusters = sorted(grapheme_bounds(text))
    pos = 0
    for t, chunk in got:
        due = arrived[pos] + max_delay
        if t > due + EPS:
            # Held back: when the time ran out (by ``due``), the text so far ended inside the
            # grapheme cluster of ``pos``, in a prefix that could still grow; then it may wait
            # for the character after that cluster (or the end), and ``max_delay`` from there.
            end = next(b for b in clusters if b > pos)
            tails = {bisect.bisect_right(arrived, a) for a in arrived if arrived[pos] <= a <= due}
            grows = [k for k in tails if k < end or (k == end and GROWS.search(text[pos:k]))]
            assert grows, (chunk, [text[pos:k] for k in sorted(tails)], t - due)
            assert t <= (arrived[end] if end < len(text) else done) + max_delay + EPS, (chunk, t - due)
        pos += len(chunk)


@pytest.mark.anyio
async def test_max_delay_collect_and_passthrough() -> None:
    evs = [td("a b"), ToolCallStart(call_id="c", name="t"), td("c d"), td("e", "x")]
    out = await (Stream.from_iterable(evs) | smooth(max_delay=5.0)).collect()
    assert [getattr(e, "delta", "T") for e in out] == ["a ", "b", "T", "c ", "d", "e"]


@pytest.mark.anyio
async def test_max_delay_closing_the_consumer_closes_the_source() -> None:
    closed: list[bool] = []
    src = _timed_source([td("one two three "), 10.0, td("never")], [], closed)
    before = _task_count()
    with anyio.fail_after(5):
        async with (Stream.from_async_iterable(src) | smooth(max_delay=0.05)).iterate() as it:
            async for e in it:
                assert e.delta == "one "
                break
    assert closed == [True]
    assert _task_count() == before


@pytest.mark.anyio
async def test_max_delay_cancelled_from_outside() -> None:
    closed: list[bool] = []
    src = _timed_source([td("one two"), 10.0, td("never")], [], closed)
    got: list[str] = []
    with anyio.move_on_after(0.3):
        async with (Stream.from_async_iterable(src) | smooth(max_delay=0.05)).iterate() as it:
            async for e in it:
                got.append(e.delta)
    assert got == ["one ", "two"]
    assert closed == [True]


@pytest.mark.anyio
async def test_max_delay_needs_a_task_host() -> None:
    from streamops._host import TaskHostRequired

    s = Stream.from_iterable([td("a")]) | smooth(max_delay=0.1)
    with pytest.raises(TaskHostRequired):
        async for _ in s:
            pass


def _task_count() -> int:
    if "asyncio" in sys.modules:
        import asyncio

        try:
            return len(asyncio.all_tasks())
        except RuntimeError:
            pass  # not on asyncio (trio)
    return 0


# ------------------------------------------------------------------------------ recorded streams
def _recorded_events() -> list[tuple[str, list[Any]]]:
    try:
        from streamops.adapters import SSEParser
    except ImportError:  # pragma: no cover - the adapters are optional
        return []
    out = []
    for path in sorted(Path(RECORDED).glob("*/*.sse")):
        p = SSEParser("auto")
        events: list[Any] = []
        try:
            events += p.feed(path.read_bytes())
            events += p.close()
        except Exception:  # a truncated or malformed recording: use what parsed
            pass
        out.append((f"{path.parent.name}/{path.name}", events))
    return out


RECORDED_EVENTS = _recorded_events()


@pytest.mark.skipif(not RECORDED_EVENTS, reason="streamops.adapters not importable")
@pytest.mark.parametrize("by", ["word", "line", "sentence", "grapheme"])
def test_recorded_streams_keep_their_text(by: str) -> None:
    checked = 0
    for name, events in RECORDED_EVENTS:
        plain, smoothed = Accumulator(), Accumulator()
        for e in events:
            plain.add(e)
        out = run_stage(smooth(by, max_chars=64), events)
        for e in out:
            smoothed.add(e)
        a, b = plain.message(), smoothed.message()
        assert (a.text, a.reasoning) == (b.text, b.reasoning), name
        assert a.tool_calls == b.tool_calls, name
        # non-text events are unchanged and in the same order
        other = (TextDelta, ReasoningDelta)
        assert [e for e in out if not isinstance(e, other)] == [e for e in events if not isinstance(e, other)]
        checked += bool(a.text or a.reasoning)
    assert checked >= 10


# ------------------------------------------------------------------------------ merged runs
run_parts_st = st.lists(
    st.one_of(text_st.filter(bool), st.sampled_from(["TOOL", "BLOCK", "REASON"])), min_size=1, max_size=12
)


def run_events(i: int, parts: list[str]) -> list[Any]:
    """One run's events: ``run_id`` and ``agent`` from ``i``, blocks, reasoning, tool calls."""
    events: list[Any] = []
    block = 0
    reason = False
    env = {"run_id": f"r{i % 2}", "agent": f"a{i // 2}"}  # runs differ by run_id, agent or both
    for p in parts:
        if p == "TOOL":
            events.append(ToolCallStart(call_id=f"c{len(events)}", name="t", seq=len(events), **env))
        elif p == "BLOCK":
            block += 1
        elif p == "REASON":
            reason = not reason
        else:
            cls = ReasoningDelta if reason else TextDelta
            events.append(cls(delta=p, block_id=f"b{block}", seq=len(events), **env))
    return events


def shape(events: list[Any], run: tuple[str, str]) -> list[Any]:
    return [
        (type(e).__name__, getattr(e, "delta", None), getattr(e, "block_id", None), e.seq)
        for e in events
        if (e.run_id, e.agent) == run
    ]


@given(
    runs=st.lists(run_parts_st, min_size=1, max_size=4),
    order=st.lists(st.integers(min_value=0, max_value=3), max_size=60),
    by=mode_st,
    max_chars=st.sampled_from([3, 8, 256]),
)
@example(
    runs=[["Hello wor", "ld, how", " are you"], ["Bonjour le", " mon", "de"]],
    order=[0, 1, 0, 1, 0, 1],
    by="word",
    max_chars=256,
)
def test_merged_runs_are_smoothed_independently(
    runs: list[list[str]], order: list[int], by: Any, max_chars: int
) -> None:
    # smoothing a merged stream equals merging the individually smoothed streams, run by run
    per_run = [run_events(i, parts) for i, parts in enumerate(runs)]
    queues = [list(evs) for evs in per_run]
    merged: list[Any] = []
    for k in order:  # the interleaving: take the next event of run k (if any left)
        q = queues[k % len(queues)]
        if q:
            merged.append(q.pop(0))
    for q in queues:
        merged += q
    out = run_stage(smooth(by, max_chars=max_chars), merged)
    for i, evs in enumerate(per_run):
        run = (f"r{i % 2}", f"a{i // 2}")
        alone = run_stage(smooth(by, max_chars=max_chars), evs)
        assert shape(out, run) == shape(alone, run)


@pytest.mark.anyio
async def test_merge_then_smooth_keeps_whole_words() -> None:
    # the README's pattern: two agents merged, then smoothed: words are never cut
    from streamops import merge

    async def deltas(name: str, text: str) -> Any:
        for i in range(0, len(text), 3):
            yield td(text[i : i + 3], agent=name, run_id=name)
            await anyio.lowlevel.checkpoint()  # let the other agent in: the merged stream interleaves

    def agent(name: str, text: str) -> Stream[Any]:
        return Stream.defer(deltas, name, text)

    a = "the quick brown fox jumps over the lazy dog"
    b = "pack my box with five dozen liquor jugs"
    out = await (merge(agent("a", a), agent("b", b)) | smooth("word")).collect()
    assert len({e.agent for e in out[:6]}) == 2, "the runs interleave"
    for name, text in (("a", a), ("b", b)):
        chunks = [e.delta for e in out if e.agent == name]
        assert "".join(chunks) == text
        assert chunks == [w + " " for w in text.split(" ")[:-1]] + [text.split(" ")[-1]]
