"""RunLog ids are unique for any stream (repeated seqs, merged runs, an object appended twice),
and a resume after any of them is exact; SSEEncoder numbers a body the same way."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamops as so
from streamops.events import BaseEvent, RunEnd, TextDelta, UsageEvent
from streamops.operators import count_tokens, smooth
from streamops.serve.runlog import RunLog
from streamops.sinks.resume import ResumeUnavailableError, event_id, parse_event_id
from streamops.sinks.sse import SSEEncoder
from streamops.sse import SSEDecoder
from tests.serve.test_runlog import run_events


@st.composite
def any_events(draw: st.DrawFn) -> list[BaseEvent]:
    """1-3 runs (any run ids), seqs drawn from a small range so they repeat and go backwards,
    interleaved in any order; now and then the very same event object again."""
    runs = draw(st.lists(st.text(max_size=4), min_size=1, max_size=3, unique=True))
    specs = draw(
        st.lists(
            st.tuples(st.sampled_from(runs), st.integers(-1, 4), st.sampled_from(["text", "usage", "end", "again"])),
            max_size=30,
        )
    )
    events: list[BaseEvent] = []
    for i, (run, seq, kind) in enumerate(specs):
        if kind == "again" and events:
            events.append(events[draw(st.integers(0, len(events) - 1))])
        elif kind == "usage":
            events.append(UsageEvent(run_id=run, seq=seq, ts=float(i), usage=so.Usage(output_tokens=i)))
        elif kind == "end":
            events.append(RunEnd(run_id=run, seq=seq, ts=float(i)))
        else:
            events.append(TextDelta(run_id=run, seq=seq, ts=float(i), delta=f"d{i}"))
    return events


def header_safe(eid: str) -> bool:
    return bool(eid) and eid.isascii() and eid.isprintable() and not any(c in eid for c in " \r\n\0")


@settings(max_examples=200)
@given(events=any_events(), at=st.integers(min_value=-1, max_value=30))
def test_every_id_is_unique_and_a_resume_after_it_is_exact(events: list[BaseEvent], at: int) -> None:
    """Property: for any events, the ids the log gives are unique and header-safe, and for
    every position k, after(id_k) == events[k+1:] (none lost, none twice); follow() agrees."""
    log = RunLog(auto_close=False)
    ids = [log.append(e) for e in events]
    assert len(set(ids)) == len(ids)
    for eid, e in zip(ids, events, strict=True):
        assert header_safe(eid)
        assert parse_event_id(eid) == (e.run_id, e.seq)
    assert log.after(None) == events
    assert [log.id_of(e) for e in log.after(None)] == ids
    for k, eid in enumerate(ids):
        assert log.after(eid) == events[k + 1 :]
        assert [i for i, _ in log.entries(eid)] == ids[k + 1 :]
    log.close()
    if 0 <= at < len(ids):

        async def follow() -> list[BaseEvent]:
            return [e async for e in log.follow(ids[at])]

        assert anyio.run(follow) == events[at + 1 :]


@settings(max_examples=200)
@given(events=any_events(), capacity=st.integers(min_value=1, max_value=8))
def test_with_eviction_a_resume_is_exact_or_refused_and_no_id_is_ever_reused(
    events: list[BaseEvent], capacity: int
) -> None:
    log = RunLog(capacity, auto_close=False)
    ids = [log.append(e) for e in events]
    assert len(set(ids)) == len(ids)  # evicted ids included: a stale Last-Event-ID never aliases
    first_kept = max(0, len(events) - capacity)
    for k, eid in enumerate(ids):
        if k >= first_kept:
            assert log.after(eid) == events[k + 1 :]
        else:
            with pytest.raises(ResumeUnavailableError, match="no longer in this run's log") as info:
                log.after(eid)
            assert info.value.last_event_id == eid
    # An SSE body numbers the same events with the same ids (eviction changes no id).
    enc = SSEEncoder()
    dec = SSEDecoder()
    sent = [dec.feed(enc.encode(e)) for e in events]
    assert [sse.id for [sse] in sent] == ids


def test_the_same_object_appended_twice_is_two_events_with_two_ids() -> None:
    e = TextDelta(run_id="r", seq=1, delta="x")
    log = RunLog(auto_close=False)
    first, second = log.append(e), log.append(e)
    assert (first, second) == ("r:1", "r:1.1")
    a, b = log.after(None)
    assert a is e and b is not e and b == e
    assert (log.id_of(a), log.id_of(b)) == (first, second)
    assert log.after(first) == [e]
    with pytest.raises(ResumeUnavailableError, match="not in the run's log"):
        log.id_of(TextDelta(run_id="r", seq=1, delta="x"))  # equal is not enough
    small = RunLog(1)
    small.append(e)
    small.append(run_events(1)[0])
    with pytest.raises(ResumeUnavailableError):
        small.id_of(e)  # evicted


def test_plain_ids_stay_for_increasing_seqs() -> None:
    events = run_events(3)
    log = RunLog()
    assert [log.append(e) for e in events] == [event_id(e) for e in events]


def test_after_copies_only_the_tail() -> None:
    log = RunLog(auto_close=False)
    events = run_events(50)
    ids = [log.append(e) for e in events]
    for k in (0, 10, 25, 26, 40, 51):
        assert log.after(ids[k]) == events[k + 1 :]
        assert log.entries(ids[k]) == list(zip(ids[k + 1 :], events[k + 1 :], strict=True))


@pytest.mark.anyio
async def test_a_smoothed_and_counted_run_gets_unique_ids_that_resume() -> None:
    """The review's demo: smooth() chunks and count_tokens() estimates repeat seqs."""
    evs = [
        TextDelta(run_id="r", seq=1, delta="hello world how are"),
        TextDelta(run_id="r", seq=2, delta=" you today friend"),
        RunEnd(run_id="r", seq=3),
    ]
    out = await (
        so.Stream.from_iterable(evs) | smooth() | count_tokens(tokenizer=lambda t: len(t.split()), emit_every=1)
    ).collect()
    assert len({(e.run_id, e.seq) for e in out}) < len(out)  # seqs do repeat
    log = RunLog()
    ids = [log.append(e) for e in out]
    assert len(set(ids)) == len(ids)
    assert ids[:4] == ["r:1", "r:1.1", "r:1.2", "r:1.3"]
    for k, eid in enumerate(ids):
        assert log.after(eid) == out[k + 1 :]


def test_encode_checks_an_explicit_id() -> None:
    ev = TextDelta(run_id="r", seq=1, delta="x")
    assert SSEEncoder().encode(ev, eid="r:1.7").startswith(b"id: r:1.7\nevent: text-delta\n")
    for bad in ["", "a b", "a\nb", "a\rb", "a\0b", "日本"]:
        with pytest.raises(ValueError, match="printable ASCII"):
            SSEEncoder().encode(ev, eid=bad)
