"""Anthropic Messages parser: every recorded stream against its expected.json, every byte
split, the official SDK's event objects, and hand-made bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamops.adapters.anthropic import (
    MessagesParser,
    anthropic_usage,
    parse_anthropic_sdk,
    parse_anthropic_sse,
)

from streamops import Accumulator, Message
from streamops.errors import StreamFormatError, TruncatedStreamError
from streamops.events import (
    BaseEvent,
    ErrorEvent,
    RawEvent,
    ReasoningSignature,
    RedactedReasoning,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
    from_json,
    to_json,
)
from streamops.sse import SSEDecoder

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded"
with (RECORDED / "INDEX.tsv").open(encoding="utf-8") as _f:
    ROWS = [r for r in csv.DictReader(_f, delimiter="\t") if r["api"] == "messages"]
NAMES = [r["file"] for r in ROWS]


def body_of(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def expected_of(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / name.replace(".sse", ".expected.json")).read_text("utf-8"))
    return data


def parse_chunks(chunks: list[bytes], **kw: Any) -> list[BaseEvent]:
    """The sans-IO pipeline: SSE decoder -> parser, for a body split into ``chunks``."""
    kw.setdefault("run_id", "r")
    parser = MessagesParser(**kw)
    dec = SSEDecoder()
    out: list[BaseEvent] = []
    for chunk in chunks:
        for sse in dec.feed(chunk):
            out.extend(parser.feed_json(sse.event, sse.data))
    for sse in dec.flush():
        out.extend(parser.feed_json(sse.event, sse.data))
    out.extend(parser.close())
    return out


def fold(events: list[Any]) -> Message:
    acc = Accumulator()
    for ev in events:
        acc.add(ev)
    return acc.message()


def key(m: Message) -> tuple[Any, ...]:
    return (
        m.text,
        m.reasoning,
        [(c.id, c.name, c.arguments) for c in m.tool_calls],
        m.raw_finish_reason,
        m.finish_reason,
        m.usage,
        m.error,
        m.status,
        m.model,
        m.response_id,
        m.reasoning_signatures,
        m.redacted_reasoning,
    )


def expected_tokens(usage: dict[str, Any]) -> tuple[int, int]:
    """The documented derivation: input counts the whole prompt (cache reads and writes)."""
    inp = usage["input_tokens"] + (usage.get("cache_read_input_tokens") or 0)
    inp += usage.get("cache_creation_input_tokens") or 0
    return inp, usage["output_tokens"]


def check(name: str, m: Message) -> None:
    exp = expected_of(name)
    assert m.text == exp["text"]
    assert m.reasoning == exp["reasoning"]
    assert [(c.id, c.name, c.arguments) for c in m.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in exp["tool_calls"]
    ]
    assert m.raw_finish_reason == exp["finish_reason"]
    assert m.usage is not None
    assert (m.usage.input_tokens, m.usage.output_tokens) == expected_tokens(exp["usage"])
    assert m.error is None and exp["error"] is None
    assert m.status == ("length" if exp["finish_reason"] == "max_tokens" else "completed")


# ---------------------------------------------------------------------------- recorded
def test_every_messages_fixture_is_covered() -> None:
    assert len(NAMES) == 10


@pytest.mark.parametrize("name", NAMES)
def test_recorded_matches_expected(name: str) -> None:
    events = parse_chunks([body_of(name)])
    check(name, fold(events))
    assert [e.seq for e in events] == list(range(len(events)))
    assert {e.run_id for e in events} == {"r"}
    assert isinstance(events[0], RunStart) and events[0].response_id and events[0].model
    assert isinstance(events[-1], RunEnd)
    assert not any(isinstance(e, ErrorEvent) for e in events)
    # every tool call started is ended before the run end; deltas concatenate to the end
    starts = {e.call_id for e in events if isinstance(e, ToolCallStart)}
    ends = {e.call_id: e.arguments for e in events if isinstance(e, ToolCallEnd)}
    assert starts == set(ends)
    for cid, args in ends.items():
        assert "".join(e.delta for e in events if isinstance(e, ToolCallDelta) and e.call_id == cid) == args


@pytest.mark.parametrize("name", NAMES)
def test_every_byte_split_gives_the_same_message(name: str) -> None:
    """One byte per read makes every offset a read boundary; bodies up to 6 kB are also split
    in two at every offset (the larger ones get the multi-split property test below)."""
    body = body_of(name)
    whole = key(fold(parse_chunks([body], keep_raw=False)))
    assert key(fold(parse_chunks([body[i : i + 1] for i in range(len(body))], keep_raw=False))) == whole
    if len(body) <= 6000:
        for k in range(1, len(body)):
            assert key(fold(parse_chunks([body[:k], body[k:]], keep_raw=False))) == whole, k


@given(st.data())
def test_random_multi_splits(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    body = body_of(name)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(body) - 1), max_size=30)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    check(name, fold(parse_chunks(chunks, keep_raw=False)))


def test_body_ending_on_message_stop_without_blank_line_completes() -> None:
    name = "anthropic/messages_max_tokens_truncated_tool_json_anthropic_sdk.sse"
    body = body_of(name)
    assert not body.endswith(b"\n")
    events = parse_chunks([body])
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert (end.status, end.finish_reason, end.raw_finish_reason) == ("length", "length", "max_tokens")
    # the tool block never got content_block_stop: it still ends, with the partial JSON
    call_end = next(e for e in events if isinstance(e, ToolCallEnd))
    assert call_end.call_id == "toolu_01EKqbqmZrGRXy18eN7m9kvY"
    assert call_end.arguments == expected_of(name)["tool_calls"][0]["arguments"]
    assert events.index(call_end) < len(events) - 1
    # and with the missing blank line added, the same message
    assert key(fold(parse_chunks([body + b"\n\n"]))) == key(fold(events))


def test_server_tool_blocks_are_raw_events_not_client_tool_calls() -> None:
    events = parse_chunks([body_of("anthropic/messages_code_execution_emoji_pyd.sse")])
    assert not any(isinstance(e, (ToolCallStart, ToolCallDelta, ToolCallEnd)) for e in events)
    raws = [e for e in events if isinstance(e, RawEvent)]
    assert [r.event_type for r in raws] == ["server_tool_use", "bash_code_execution_tool_result"]
    use = raws[0].data
    assert use["id"] == "srvtoolu_01MwXaweAHve88x6s3Fc8x6Q"
    assert use["name"] == "bash_code_execution"
    assert use["input"] == {"command": 'echo "65465-6544 * 65464-6+1.02255" | bc -l'}
    assert raws[1].data["tool_use_id"] == use["id"]
    assert raws[1].data["content"]["stdout"] == "-428330955.97745\n"


def test_thinking_signature_and_redacted() -> None:
    events = parse_chunks([body_of("anthropic/messages_thinking_signature_pyd.sse")])
    sigs = [e for e in events if isinstance(e, ReasoningSignature)]
    assert len(sigs) == 1 and sigs[0].block_id == "0" and len(sigs[0].signature) > 100
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert {t.block_id for t in texts} == {"1"}
    events = parse_chunks([body_of("anthropic/messages_redacted_thinking_pyd.sse")])
    red = [e for e in events if isinstance(e, RedactedReasoning)]
    assert [r.block_id for r in red] == ["0", "1"]
    assert fold(events).redacted_reasoning == [r.data for r in red]


def test_ping_emits_nothing_and_usage_is_cumulative() -> None:
    body = body_of("anthropic/messages_code_execution_emoji_pyd.sse")
    events = parse_chunks([body])
    usages = [e for e in events if isinstance(e, UsageEvent)]
    assert len(usages) == 2 and all(u.cumulative for u in usages)
    assert (usages[0].usage.input_tokens, usages[0].usage.output_tokens) == (2293, 1)
    # message_delta usage overlays message_start usage
    assert (usages[1].usage.input_tokens, usages[1].usage.output_tokens) == (4714, 304)
    end = events[-1]
    assert isinstance(end, RunEnd) and end.usage == usages[1].usage
    parser = MessagesParser()
    assert parser.feed_json("ping", '{"type": "ping"}') == []


def test_usage_derivation_counts_cache() -> None:
    u = anthropic_usage(
        {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5, "output_tokens": 7}
    )
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens) == (115, 7, 100, 5)
    assert anthropic_usage({"output_tokens": 3}).input_tokens is None


def test_events_round_trip_through_json() -> None:
    for ev in parse_chunks([body_of("anthropic/messages_parallel_tool_use_fantasy.sse")]):
        assert from_json(to_json(ev)) == ev


# ---------------------------------------------------------------------------- bad input
START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"claude-x",'
    b'"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hello"}}\n\n'
)
REST = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":" world"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":3}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def test_hand_made_stream_is_fine() -> None:
    m = fold(parse_chunks([START + REST]))
    assert (m.text, m.raw_finish_reason, m.status, m.error) == ("Hello world", "end_turn", "completed", None)


def test_invalid_json_raises_after_keeping_what_came_before() -> None:
    bad = b'event: content_block_delta\ndata: {"type":"content_block_delta", oops\n\n'
    parser = MessagesParser(run_id="r")
    got: list[BaseEvent] = []
    sses = SSEDecoder().feed(START + bad + REST)
    for sse in sses[:3]:
        got.extend(parser.feed_json(sse.event, sse.data))
    with pytest.raises(StreamFormatError) as info:
        parser.feed_json(sses[3].event, sses[3].data)
    assert not isinstance(info.value, TruncatedStreamError)
    assert info.value.data is not None and "oops" in info.value.data
    assert fold(got).text == "Hello"


def test_invalid_json_as_event_goes_on() -> None:
    bad = b'event: content_block_delta\ndata: {"type":"content_block_delta", oops\n\n'
    events = parse_chunks([START + bad + REST], on_malformed="event")
    errs = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.error_type for e in errs] == ["malformed_stream"]
    m = fold(events)
    assert (m.text, m.raw_finish_reason) == ("Hello world", "end_turn")


def test_truncated_body() -> None:
    with pytest.raises(TruncatedStreamError):
        parse_chunks([START])
    events = parse_chunks([START], on_malformed="event")
    m = fold(events)
    assert m.text == "Hello"
    assert m.error is not None and m.error.type == "truncated_stream"
    assert m.status == "failed" and m.raw_finish_reason is None
    with pytest.raises(TruncatedStreamError):
        parse_chunks([b""])


def test_truncated_inside_tool_call_still_ends_the_call() -> None:
    body = START + (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
        b'"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,'
        b'"delta":{"type":"input_json_delta","partial_json":"{\\"a\\": 1"}}\n\n'
    )
    events = parse_chunks([body], on_malformed="event")
    assert [type(e).__name__ for e in events[-3:]] == ["ToolCallEnd", "ErrorEvent", "RunEnd"]
    assert fold(events).tool_calls[0].arguments == '{"a": 1'
    parser = MessagesParser()
    dec = SSEDecoder()
    for sse in dec.feed(body):
        parser.feed_json(sse.event, sse.data)
    with pytest.raises(TruncatedStreamError):
        parser.close()
    assert [type(e).__name__ for e in parser.out] == ["ToolCallEnd"]  # kept for the driver


def test_unknown_event_type_is_kept_as_raw_event() -> None:
    extra = b'event: future_thing\ndata: {"type":"future_thing","x":1}\n\n'
    events = parse_chunks([START + extra + REST])
    raw = [e for e in events if isinstance(e, RawEvent)]
    assert [(r.event_type, r.data) for r in raw] == [("future_thing", {"type": "future_thing", "x": 1})]
    assert fold(events).text == "Hello world"


def test_unknown_delta_and_block_types_are_raw() -> None:
    body = START + (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"citations_delta","citation":{"cited_text":"x"}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
        b'"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}}\n\n'
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n'
    )
    events = parse_chunks([body + REST])
    assert [e.event_type for e in events if isinstance(e, RawEvent)] == ["citations_delta", "web_search_tool_result"]


@pytest.mark.parametrize(
    "junk",
    [bytes(range(256)) * 2, b"\x00\xff\xfe\x80garbage\r\n\r\n"],
    ids=["all-bytes", "junk-line"],
)
def test_binary_junk_without_data_lines(junk: bytes) -> None:
    """Lines that are not SSE fields are ignored by the SSE rules: junk between events changes
    nothing, and a body of junk alone holds no event at all, so it is truncated."""
    assert key(fold(parse_chunks([START + junk + REST]))) == key(fold(parse_chunks([START + REST])))
    with pytest.raises(TruncatedStreamError):
        parse_chunks([junk])
    events = parse_chunks([junk], on_malformed="event")
    assert [type(e).__name__ for e in events] == ["ErrorEvent", "RunEnd"]


@pytest.mark.parametrize(
    "junk",
    [
        b"data: \x00\xff\xfe\x80garbage\n\n",
        b"data: [1, 2]\n\n",
        b'data: {"no_type": 1}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":"x","delta":5}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":7,'
        b'"delta":{"type":"input_json_delta","partial_json":"{"}}\n\n',
    ],
    ids=["binary-data", "not-object", "no-type", "bad-shape", "delta-for-unknown-block"],
)
def test_bad_data_lines(junk: bytes) -> None:
    with pytest.raises(StreamFormatError) as info:
        parse_chunks([START + junk + REST])
    assert not isinstance(info.value, TruncatedStreamError)
    with pytest.raises(StreamFormatError):
        parse_chunks([junk])
    events = parse_chunks([START + junk + REST], on_malformed="event")
    m = fold(events)
    assert (m.text, m.raw_finish_reason, m.status) == ("Hello world", "end_turn", "completed")
    assert [e.error_type for e in events if isinstance(e, ErrorEvent)] == ["malformed_stream"]


@pytest.mark.parametrize("mode", ["raise", "event"])
def test_error_event_mid_stream(mode: str) -> None:
    err = b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    events = parse_chunks([START + err + REST], on_malformed=mode)
    m = fold(events)
    assert m.text == "Hello"  # kept before, nothing after
    assert m.error is not None and (m.error.type, m.error.message) == ("overloaded_error", "Overloaded")
    assert m.status == "failed" and m.finish_reason == "error"
    assert isinstance(events[-1], RunEnd) and isinstance(events[-2], ErrorEvent)


def test_error_event_with_text_data() -> None:
    events = parse_chunks([START + b"event: error\ndata: upstream exploded\n\n"])
    m = fold(events)
    assert m.error is not None and m.error.message == "upstream exploded" and m.status == "failed"


# ---------------------------------------------------------------------------- async + SDK
@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES[::3])
async def test_async_sse_driver(name: str) -> None:
    body = body_of(name)

    async def chunks() -> Any:
        for i in range(0, len(body), 61):
            yield body[i : i + 61]

    check(name, fold([e async for e in parse_anthropic_sse(chunks())]))
    check(name, fold([e async for e in parse_anthropic_sse([body[:100], body[100:]])]))


@pytest.mark.anyio
async def test_async_sse_driver_raises_after_earlier_events() -> None:
    bad = b'event: content_block_delta\ndata: {"type":"content_block_delta", oops\n\n'
    got, exc = await drain(parse_anthropic_sse([START + bad + REST]))
    assert type(exc) is StreamFormatError
    assert fold(got).text == "Hello"
    got, exc = await drain(parse_anthropic_sse([START]))
    assert type(exc) is TruncatedStreamError
    assert fold(got).text == "Hello"


async def drain(agen: Any) -> tuple[list[Any], BaseException | None]:
    """Every event of an async iterator, and the exception that ended it (if any)."""
    got: list[Any] = []
    try:
        async for ev in agen:
            got.append(ev)
    except StreamFormatError as exc:
        return got, exc
    return got, None


def sdk_events(name: str) -> list[Any]:
    """The recorded stream as the ``anthropic`` SDK's typed event objects (the SDK skips
    ``ping``; the final ``message_stop`` is included whether or not the body ended with a
    blank line)."""
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    ta: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    dec = SSEDecoder()
    sses = dec.feed(body_of(name)) + dec.flush()
    if dec.dropped is not None:
        sses.append(dec.dropped)
    return [ta.validate_json(s.data) for s in sses if s.event != "ping"]


@pytest.mark.parametrize("name", NAMES)
def test_sdk_objects_give_the_same_message(name: str) -> None:
    parser = MessagesParser(run_id="r")
    events: list[BaseEvent] = []
    for obj in sdk_events(name):
        events.extend(parser.feed_payload(obj.model_dump()))
    events.extend(parser.close())
    check(name, fold(events))
    assert key(fold(events)) == key(fold(parse_chunks([body_of(name)])))


class FakeSDKStream:
    """Stands in for ``anthropic.AsyncStream``: async iteration and ``async close()``."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.closed = False

    def __aiter__(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        for it in self.items:
            yield it

    async def close(self) -> None:
        self.closed = True


@pytest.mark.anyio
async def test_parse_anthropic_sdk_and_close() -> None:
    from anthropic.lib.streaming import TextEvent

    name = "anthropic/messages_thinking_signature_pyd.sse"
    items = sdk_events(name)
    # MessageStream helper events repeat deltas: they must be skipped
    items.insert(5, TextEvent(type="text", text="DUPLICATE", snapshot="DUPLICATE"))
    stream = FakeSDKStream(items)
    check(name, fold([e async for e in parse_anthropic_sdk(stream)]))
    assert stream.closed
    # leaving early closes the SDK stream too
    stream = FakeSDKStream(sdk_events(name))
    agen = parse_anthropic_sdk(stream)
    async for _ev in agen:
        break
    await agen.aclose()
    assert stream.closed
