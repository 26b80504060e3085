"""Tests of :mod:`streamops.adapters.openai_chat`: every recorded Chat Completions stream against
its ``expected.json`` (whole, split at every byte offset, through the ``openai`` SDK's types
and through a real ``openai.AsyncStream``), hand-made bad inputs, and the mapping rules."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import anyio
import pytest
from streamops.adapters.openai_chat import ChatCompletionsParser, parse_chat_sdk, parse_chat_sse

from streamops import Accumulator, Message
from streamops.errors import StreamFormatError, TruncatedStreamError
from streamops.events import (
    BaseEvent,
    ErrorEvent,
    RawEvent,
    ReasoningDelta,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallEnd,
    UsageEvent,
)
from streamops.sse import SSEDecoder
from tests.conftest import RECORDED

with (RECORDED / "INDEX.tsv").open(encoding="utf-8") as _f:
    ALL_ROWS = list(csv.DictReader(_f, delimiter="\t"))
ROWS = [r for r in ALL_ROWS if r["api"] == "chat.completions"]
IDS = [r["file"] for r in ROWS]


# ---------------------------------------------------------------------------- helpers
def body_of(row: dict[str, str]) -> bytes:
    return (RECORDED / row["file"]).read_bytes()


def expected(row: dict[str, str]) -> dict[str, Any]:
    path = RECORDED / row["file"].replace(".sse", ".expected.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def fold(events: Iterable[BaseEvent]) -> Message:
    acc = Accumulator()
    for ev in events:
        acc.add(ev)
    return acc.message()


def parse_chunks(parser: Any, chunks: Iterable[bytes]) -> list[BaseEvent]:
    """Decode SSE ``chunks`` with the project decoder and feed each event to ``parser``."""
    dec = SSEDecoder()
    out: list[BaseEvent] = []
    for chunk in chunks:
        for sse in dec.feed(chunk):
            out += parser.feed_json(None if sse.event == "message" else sse.event, sse.data)
    for sse in dec.flush():
        out += parser.feed_json(None if sse.event == "message" else sse.event, sse.data)
    out += parser.close()
    return out


def feed_all(parser: Any, body: bytes, seen: list[BaseEvent]) -> None:
    """Feed ``body`` to ``parser`` event by event, appending to ``seen`` as it goes (so the
    events before an exception are kept), then close it."""
    dec = SSEDecoder()
    for s in dec.feed(body) + dec.flush():
        seen += parser.feed_json(None if s.event == "message" else s.event, s.data)
    seen += parser.close()


def sse_payloads(body: bytes) -> list[tuple[str | None, str]]:
    dec = SSEDecoder()
    return [(None if e.event == "message" else e.event, e.data) for e in dec.feed(body) + dec.flush()]


def check_message(row: dict[str, str], msg: Message, usage_keys: tuple[str, str]) -> None:
    """``msg`` equals ``expected.json``: text, reasoning, refusal, tool calls, raw finish reason,
    usage, error."""
    exp = expected(row)
    assert msg.text == exp["text"]
    exp_reasoning = exp.get("reasoning") or exp.get("reasoning_summary")
    assert (msg.reasoning or None) == (exp_reasoning or None)
    if "refusal" in exp:
        assert msg.refusal == exp["refusal"]
    got = [(c.id, c.name, c.arguments) for c in msg.tool_calls]
    want = [(c["id"], c["name"], c["arguments"]) for c in exp["tool_calls"]]
    assert got == want
    assert msg.raw_finish_reason == exp["finish_reason"]
    u = exp.get("usage")
    if u:
        assert msg.usage is not None
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (u.get(usage_keys[0]), u.get(usage_keys[1]))
    else:
        assert msg.usage is None
    err = exp.get("error")
    if err:
        assert msg.error is not None
        assert msg.error.message == err["message"]
        assert msg.error.type in (err.get("type"), str(err.get("code")))
        assert msg.status == "failed"
    else:
        assert msg.error is None
        assert msg.status in ("completed", "length")


def check_chat(row: dict[str, str], msg: Message) -> None:
    check_message(row, msg, ("prompt_tokens", "completion_tokens"))


def grammar(events: list[BaseEvent]) -> None:
    """One run: starts with RunStart, ends with exactly one RunEnd, seq 0..n-1."""
    assert isinstance(events[0], RunStart)
    assert isinstance(events[-1], RunEnd)
    assert sum(isinstance(e, RunEnd) for e in events) == 1
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.run_id for e in events}) == 1


# ---------------------------------------------------------------------------- recorded streams
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_whole_body(row: dict[str, str]) -> None:
    events = parse_chunks(ChatCompletionsParser(), [body_of(row)])
    grammar(events)
    check_chat(row, fold(events))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_every_byte_offset(row: dict[str, str]) -> None:
    """One byte per read (every offset is a boundary), then a two-way split at every offset
    for the smaller bodies: the message never changes."""
    body = body_of(row)
    whole = fold(parse_chunks(ChatCompletionsParser(), [body]))
    one_by_one = fold(parse_chunks(ChatCompletionsParser(), [body[i : i + 1] for i in range(len(body))]))
    check_chat(row, one_by_one)
    if len(body) <= 6000:
        for k in range(1, len(body)):
            m = fold(parse_chunks(ChatCompletionsParser(), [body[:k], body[k:]]))
            assert (m.text, m.reasoning, m.refusal, m.tool_calls, m.raw_finish_reason, m.usage) == (
                whole.text,
                whole.reasoning,
                whole.refusal,
                whole.tool_calls,
                whole.raw_finish_reason,
                whole.usage,
            ), k


def sdk_dump(data: dict[str, Any]) -> dict[str, Any]:
    """What ``openai`` SDK users hold: ``ChatCompletionChunk.model_validate(json)``, or (when the
    provider's chunk does not validate, e.g. Azure's prompt-filter chunk with ``object: ""``)
    the SDK's own non-validating construction, then ``model_dump()``."""
    from openai._models import construct_type
    from openai.types.chat import ChatCompletionChunk
    from pydantic import ValidationError

    try:
        chunk = ChatCompletionChunk.model_validate(data)
    except ValidationError:
        chunk = construct_type(type_=ChatCompletionChunk, value=data)
    dumped: dict[str, Any] = chunk.model_dump(warnings=False)
    return dumped


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_through_sdk_types(row: dict[str, str]) -> None:
    parser = ChatCompletionsParser()
    events: list[BaseEvent] = []
    for event_type, data in sse_payloads(body_of(row)):
        if data == "[DONE]":
            events += parser.feed_json(event_type, data)
            continue
        payload = json.loads(data)
        if event_type == "error":  # the SDK raises on it; the payload itself is fed
            events += parser.feed_payload(payload, event_type)
        else:
            events += parser.feed_payload(sdk_dump(payload))
    events += parser.close()
    grammar(events)
    check_chat(row, fold(events))


def mock_client(body: bytes) -> Any:
    """An ``openai.AsyncOpenAI`` whose HTTP transport answers every request with ``body``."""
    import httpx
    import openai

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return openai.AsyncOpenAI(api_key="test", base_url="http://provider.test/v1", http_client=http, max_retries=0)


SDK_GEN_LEAK = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <async_generator object "
    r"(SSEDecoder\.aiter_bytes|AsyncStream\._iter_events|AsyncStream\.__stream__):"
    "pytest.PytestUnraisableExceptionWarning"
)
"""openai's ``AsyncStream`` stops at ``[DONE]`` without closing its inner async generators;
under trio their garbage collection warns. That is the SDK's, not the adapter's."""


@SDK_GEN_LEAK
@pytest.mark.anyio
@pytest.mark.parametrize("row", ROWS[::4], ids=IDS[::4])
async def test_recorded_through_real_sdk_stream(row: dict[str, str]) -> None:
    client = mock_client(body_of(row))
    async with client:
        stream = await client.chat.completions.create(model="m", messages=[], stream=True)
        events = [ev async for ev in parse_chat_sdk(stream)]
    grammar(events)
    check_chat(row, fold(events))


@SDK_GEN_LEAK
@pytest.mark.anyio
async def test_sdk_in_stream_error_becomes_events() -> None:
    """The SDK raises ``openai.APIError`` on Groq's ``event: error`` frame; the driver turns it
    into an ErrorEvent and a failed run end, keeping the reasoning before it."""
    row = next(r for r in ROWS if "error_event_midstream" in r["file"])
    client = mock_client(body_of(row))
    async with client:
        stream = await client.chat.completions.create(model="m", messages=[], stream=True)
        events = [ev async for ev in parse_chat_sdk(stream)]
    msg = fold(events)
    assert msg.status == "failed"
    assert msg.error is not None
    assert msg.error.type == "invalid_request_error"
    assert msg.reasoning == expected(row)["reasoning"]


class FakeSDKStream:
    """Stands in for ``openai.AsyncStream``: async-iterates chunk objects, records ``close``."""

    def __init__(self, chunks: list[dict[str, Any]], *, hang: bool = False) -> None:
        from openai.types.chat import ChatCompletionChunk

        self.chunks = [ChatCompletionChunk.model_validate(c) for c in chunks]
        self.hang = hang
        self.closed = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[Any]:
        for c in self.chunks:
            yield c
        if self.hang:
            await anyio.sleep_forever()

    async def close(self) -> None:
        self.closed = True


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    base.update(top)
    return base


@pytest.mark.anyio
async def test_sdk_stream_closed_on_early_exit_and_cancellation() -> None:
    stream = FakeSDKStream([chunk({"content": "a"}), chunk({"content": "b"})])
    gen = parse_chat_sdk(stream)
    first = await gen.__anext__()
    assert isinstance(first, RunStart)
    await gen.aclose()  # type: ignore[attr-defined]
    assert stream.closed

    hanging = FakeSDKStream([chunk({"content": "a"})], hang=True)
    seen: list[BaseEvent] = []

    async def consume() -> None:
        async for ev in parse_chat_sdk(hanging):
            seen.append(ev)

    with anyio.move_on_after(0.2):
        await consume()
    assert hanging.closed
    assert [type(e) for e in seen] == [RunStart, TextDelta]


# ---------------------------------------------------------------------------- async SSE driver
@pytest.mark.anyio
async def test_parse_chat_sse_async_and_sync_sources() -> None:
    row = next(r for r in ROWS if "parallel_tools_openai_python" in r["file"])
    body = body_of(row)
    closed: list[bool] = []

    async def chunks() -> AsyncIterator[bytes]:
        try:
            for i in range(0, len(body), 61):
                yield body[i : i + 61]
        finally:
            closed.append(True)

    events = [ev async for ev in parse_chat_sse(chunks())]
    check_chat(row, fold(events))
    assert closed == [True]
    events2 = [ev async for ev in parse_chat_sse([body[:100], body[100:]], run_id="r1", agent="a")]
    check_chat(row, fold(events2))
    assert {e.run_id for e in events2} == {"r1"} and {e.agent for e in events2} == {"a"}


@pytest.mark.anyio
async def test_parse_chat_sse_raises_after_good_events() -> None:
    body = sse(chunk({"content": "Hi"}), "{not json", chunk({"content": "!"}), "[DONE]")
    seen: list[BaseEvent] = []

    async def consume() -> None:
        async for ev in parse_chat_sse([body]):
            seen.append(ev)

    with pytest.raises(StreamFormatError):
        await consume()
    assert fold(seen).text == "Hi"


# ---------------------------------------------------------------------------- hand-made inputs
def sse(*items: dict[str, Any] | str, event: str | None = None) -> bytes:
    out = []
    for it in items:
        data = it if isinstance(it, str) else json.dumps(it)
        out.append((f"event: {event}\n" if event else "") + f"data: {data}\n\n")
    return "".join(out).encode()


def run(body: bytes, **kw: Any) -> list[BaseEvent]:
    return parse_chunks(ChatCompletionsParser(**kw), [body])


def test_whitespace_only_deltas_kept_empty_skipped() -> None:
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": " "}),
        chunk({"content": "\n\n"}),
        chunk({"content": "x"}),
        chunk({}, "stop"),
        "[DONE]",
    )
    events = run(body)
    assert [e.delta for e in events if isinstance(e, TextDelta)] == [" ", "\n\n", "x"]
    assert fold(events).text == " \n\nx"
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert (end.status, end.finish_reason, end.raw_finish_reason) == ("completed", "stop", "stop")


def test_reasoning_fields_and_refusal() -> None:
    body = sse(
        chunk({"reasoning_content": "think "}),
        chunk({"reasoning": "more"}),
        chunk({"refusal": "No."}),
        chunk({}, "stop"),
        "[DONE]",
    )
    msg = fold(run(body))
    assert (msg.reasoning, msg.refusal, msg.text) == ("think more", "No.", "")


def test_tool_calls_keyed_by_index_and_ended_at_finish() -> None:
    tc = [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "add", "arguments": ""}},
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "mul", "arguments": '{"x":'}},
    ]
    body = sse(
        chunk({"tool_calls": tc}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "2}"}}]}),
        chunk({}, "tool_calls"),
        chunk(None, None, choices=[], usage={"prompt_tokens": 5, "completion_tokens": 7}),
        "[DONE]",
    )
    events = run(body)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "RunStart",
        "ToolCallStart",
        "ToolCallStart",
        "ToolCallDelta",
        "ToolCallDelta",
        "ToolCallDelta",
        "ToolCallEnd",
        "ToolCallEnd",
        "UsageEvent",
        "RunEnd",
    ]
    ends = [e for e in events if isinstance(e, ToolCallEnd)]
    assert [(e.call_id, e.name, e.arguments, e.index) for e in ends] == [
        ("call_a", "add", '{"a":1}', 0),
        ("call_b", "mul", '{"x":2}', 1),
    ]
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert end.finish_reason == "tool_calls" and end.usage is not None and end.usage.output_tokens == 7


def test_tool_call_arguments_before_id_and_missing_index() -> None:
    body = sse(
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ":1}"}}]}),
        chunk({"tool_calls": [{"id": "call_2", "function": {"name": "g", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    msg = fold(run(body))
    assert [(c.id, c.name, c.arguments) for c in msg.tool_calls] == [
        ("call_1", "f", '{"a":1}'),
        ("call_2", "g", "{}"),
    ]


def test_multiple_choices_kept_apart() -> None:
    def two(i: int, content: str, finish: str | None = None) -> dict[str, Any]:
        return chunk(None, None, choices=[{"index": i, "delta": {"content": content}, "finish_reason": finish}])

    body = sse(two(0, "A"), two(1, "B"), two(0, "a", "stop"), two(1, "b", "length"), "[DONE]")
    events = run(body)
    msg = fold(events)
    assert msg.text == "Aa"
    assert msg.raw_finish_reason == "stop"
    others = [e for e in events if isinstance(e, RawEvent)]
    assert [(e.event_type, e.data["index"], e.data["delta"]["content"]) for e in others] == [
        ("choice", 1, "B"),
        ("choice", 1, "b"),
    ]


def test_azure_prompt_filter_chunk_kept_after_run_start() -> None:
    row = next(r for r in ROWS if "content_filter_emoji" in r["file"])
    events = run(body_of(row))
    assert isinstance(events[0], RunStart)
    assert events[0].model == "gpt-4.1-mini-2025-04-14"
    assert isinstance(events[1], RawEvent) and "prompt_filter_results" in events[1].data


def test_unmapped_delta_fields_become_raw_events() -> None:
    row = next(r for r in ROWS if "openrouter_annotations" in r["file"])
    raws = [e for e in run(body_of(row)) if isinstance(e, RawEvent)]
    assert raws and {e.event_type for e in raws} == {"delta.annotations"}


def test_logprobs_and_filters_stay_in_raw() -> None:
    row = next(r for r in ROWS if "content_logprobs" in r["file"])
    texts = [e for e in run(body_of(row)) if isinstance(e, TextDelta)]
    assert texts and all(e.raw["choices"][0]["logprobs"] for e in texts)
    assert all(e.raw is None for e in run(body_of(row), keep_raw=False) if not isinstance(e, RawEvent))


def test_error_chunk_keeps_everything_before() -> None:
    row = next(r for r in ROWS if "error_chunk" in r["file"])
    events = run(body_of(row))
    errs = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errs) == 1 and errs[0].code == "400"
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert (end.status, end.finish_reason, end.raw_finish_reason) == ("failed", "error", "length")
    assert isinstance(events[-3], UsageEvent)
    assert fold(events).reasoning == "We need to respond to a greeting. The user"


def test_done_without_finish_reason_ends_open_calls() -> None:
    body = sse(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}), "[DONE]")
    events = run(body)
    assert isinstance(events[-2], ToolCallEnd)
    end = events[-1]
    assert isinstance(end, RunEnd) and end.finish_reason is None and end.status == "completed"


def test_finish_without_done_is_complete() -> None:
    msg = fold(run(sse(chunk({"content": "x"}), chunk({}, "stop"))))
    assert (msg.text, msg.status, msg.error) == ("x", "completed", None)


def test_unknown_finish_reason_not_invented() -> None:
    end = run(sse(chunk({"content": "x"}, "eos"), "[DONE]"))[-1]
    assert isinstance(end, RunEnd)
    assert (end.raw_finish_reason, end.finish_reason, end.status) == ("eos", None, "completed")


BAD_BODIES: dict[str, tuple[bytes, type[Exception], str]] = {
    "invalid_json": (sse(chunk({"content": "ok"}), '{"id": "x", "choices": [', "[DONE]"), StreamFormatError, "ok"),
    "truncated": (sse(chunk({"content": "ok"}), chunk({"content": " more"})), TruncatedStreamError, "ok more"),
    "truncated_mid_event": (sse(chunk({"content": "ok"})) + b'data: {"id"', TruncatedStreamError, "ok"),
    "not_an_object": (sse(chunk({"content": "ok"}), "[1, 2]", "[DONE]"), StreamFormatError, "ok"),
    "wrong_shape": (sse(chunk({"content": "ok"}), {"choices": 5}, "[DONE]"), StreamFormatError, "ok"),
    "binary_junk_data": (sse(chunk({"content": "ok"})) + b"data: \x00\xff\xfe\x80junk\n\n", StreamFormatError, "ok"),
    "binary_junk_only": (bytes(range(256)) * 4, TruncatedStreamError, ""),
    "empty_body": (b"", TruncatedStreamError, ""),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_input_raises_typed_error_after_good_events(name: str) -> None:
    body, exc, text = BAD_BODIES[name]
    parser = ChatCompletionsParser()
    seen: list[BaseEvent] = []
    with pytest.raises(exc):
        feed_all(parser, body, seen)
    assert fold(seen).text == text


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_input_as_error_events(name: str) -> None:
    body, exc, text = BAD_BODIES[name]
    events = run(body, on_malformed="event")
    errs = [e for e in events if isinstance(e, ErrorEvent)]
    assert errs
    kind = "truncated_stream" if exc is TruncatedStreamError else "malformed_stream"
    assert errs[0].error_type == kind
    msg = fold(events)
    assert msg.text == text
    assert sum(isinstance(e, RunEnd) for e in events) == 1
    if exc is TruncatedStreamError:
        assert msg.status == "failed"


def test_unknown_payload_kept_as_raw_event() -> None:
    events = run(sse(chunk({"content": "a"}), {"id": "x", "choices": [], "weird": 1}, chunk({}, "stop"), "[DONE]"))
    raws = [e for e in events if isinstance(e, RawEvent)]
    assert len(raws) == 1 and raws[0].data["weird"] == 1
    assert fold(events).text == "a"


def test_usage_details_mapped() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 8},
    }
    events = run(sse(chunk({"content": "a"}, "stop"), chunk(None, None, choices=[], usage=usage), "[DONE]"))
    u = next(e for e in events if isinstance(e, UsageEvent)).usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cache_read_tokens, u.cache_write_tokens) == (
        10,
        20,
        8,
        4,
        2,
    )
    ds = run(sse(chunk({}, "stop"), chunk(None, None, choices=[], usage={"prompt_cache_hit_tokens": 3}), "[DONE]"))
    assert next(e for e in ds if isinstance(e, UsageEvent)).usage.cache_read_tokens == 3


def test_events_round_trip_json() -> None:
    from streamops.events import from_json, to_json

    row = next(r for r in ROWS if "parallel_tools_openai_python" in r["file"])
    for ev in run(body_of(row)):
        assert from_json(to_json(ev)) == ev


def test_groq_error_frame_keeps_reasoning() -> None:
    row = next(r for r in ROWS if "error_event_midstream" in r["file"])
    events = run(body_of(row))
    assert sum(isinstance(e, ReasoningDelta) for e in events) > 10
    err = next(e for e in events if isinstance(e, ErrorEvent))
    assert (err.error_type, err.code) == ("invalid_request_error", "tool_use_failed")


def test_no_optional_sdk_import_at_module_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import streamops.adapters.openai_chat, streamops.adapters.openai_responses; "
        "print('openai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fixture_paths_exist() -> None:
    assert ROWS and all(Path(RECORDED / r["file"]).exists() for r in ROWS)


# ---------------------------------------------------------------------------- compatible variants (issue 13 item 7)
def test_mistral_content_part_arrays() -> None:
    """Mistral's reasoning models send ``delta.content`` as an array of content chunks while
    they think: ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}``, then
    ``{"type": "text", "text": ...}`` chunks or plain strings for the answer. Source:
    https://docs.mistral.ai/capabilities/reasoning/ (ThinkChunk / TextChunk; ReferenceChunk
    for references) and its streaming example. Unknown part types are kept as raw events."""
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "Let me "}]}
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": [thinking]}),
        chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "count."}], "closed": True}]}),
        chunk({"content": [{"type": "text", "text": "Three"}, {"type": "reference", "reference_ids": [1]}]}),
        chunk({"content": " r's."}),
        chunk({}, "stop"),
        "[DONE]",
    )
    events = run(body)
    kinds = [
        (type(e).__name__, getattr(e, "delta", None)) for e in events if isinstance(e, (TextDelta, ReasoningDelta))
    ]
    assert kinds == [
        ("ReasoningDelta", "Let me "),
        ("ReasoningDelta", "count."),
        ("TextDelta", "Three"),
        ("TextDelta", " r's."),
    ]
    raws = [e for e in events if isinstance(e, RawEvent)]
    assert [(e.event_type, e.data) for e in raws] == [
        ("delta.content_part", {"type": "reference", "reference_ids": [1]})
    ]
    msg = fold(events)
    assert (msg.reasoning, msg.text, msg.finish_reason) == ("Let me count.", "Three r's.", "stop")
    assert isinstance(events[-1], RunEnd) and events[-1].status == "completed"


def test_content_part_arrays_unknown_and_bad_parts() -> None:
    """Unknown part types (also inside ``thinking``) are raw events, never an error; a part
    that is not an object, or a text that is not a string, is malformed: a typed error after
    the events before it, or an error event and the stream goes on."""
    body = sse(
        chunk({"content": [{"type": "image_url", "image_url": {"url": "x"}}]}),
        chunk({"content": [{"type": "thinking", "thinking": [{"type": "reference", "reference_ids": [2]}]}]}),
        chunk({"content": [{"type": "thinking", "thinking": "plain"}]}),
        chunk({"content": [{"type": "text", "text": "ok"}]}),
        chunk({"content": ["not a part"]}),
        chunk({"content": [{"type": "text", "text": 5}]}),
        chunk({"content": [{"type": "thinking", "thinking": 7}]}),
        chunk({"content": [{"type": "text", "text": "!"}]}),
        chunk({}, "stop"),
        "[DONE]",
    )
    seen: list[BaseEvent] = []
    with pytest.raises(StreamFormatError, match=r"delta\.content\[\]"):
        feed_all(ChatCompletionsParser(), body, seen)
    assert fold(seen).text == "ok" and fold(seen).reasoning == "plain"
    assert [e.event_type for e in seen if isinstance(e, RawEvent)] == ["delta.content_part", "delta.content_part"]
    events = run(body, on_malformed="event")
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.error_type for e in errors] == ["malformed_stream"] * 3
    assert fold(events).text == "ok!"
    assert isinstance(events[-1], RunEnd) and events[-1].status == "completed"


def test_deepseek_reasoning_content() -> None:
    """DeepSeek ``deepseek-reasoner``: ``delta.reasoning_content`` while it thinks, then
    ``delta.content`` (the other field ``null``). Source:
    https://api-docs.deepseek.com/guides/reasoning_model (streaming example)."""
    body = sse(
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        chunk({"content": None, "reasoning_content": "9.11 < 9.8"}),
        chunk({"content": "9.8 is greater", "reasoning_content": None}),
        chunk({"content": "", "reasoning_content": None}, "stop"),
        "[DONE]",
    )
    msg = fold(run(body))
    assert (msg.reasoning, msg.text) == ("9.11 < 9.8", "9.8 is greater")


def test_openrouter_reasoning_and_reasoning_details() -> None:
    """OpenRouter: reasoning streams in ``delta.reasoning`` and, structured, in
    ``delta.reasoning_details`` (``reasoning.text`` with ``text``/``signature``,
    ``reasoning.summary`` with ``summary``, ``reasoning.encrypted`` with ``data``). Source:
    https://openrouter.ai/docs/use-cases/reasoning-tokens ("reasoning_details Array
    Structure", "Streaming"). Details that repeat ``delta.reasoning`` are not doubled; details
    alone are the reasoning; encrypted or signed ones are kept raw (they go back next turn)."""
    summary = {"type": "reasoning.summary", "summary": "**Plan**", "format": "openai-responses-v1", "index": 0}
    encrypted = {"type": "reasoning.encrypted", "data": "gAAAAB...", "format": "openai-responses-v1", "index": 0}
    signed = {"type": "reasoning.text", "text": "", "signature": "sig123", "format": "anthropic-claude-v1", "index": 0}
    body = sse(
        chunk({"role": "assistant", "content": "", "reasoning": "**Plan**", "reasoning_details": [summary]}),
        chunk({"reasoning_details": [{"type": "reasoning.text", "text": " then act", "index": 0}]}),
        chunk({"reasoning": " more", "reasoning_details": [{"type": "reasoning.text", "text": " other", "index": 0}]}),
        chunk({"content": "", "reasoning_details": [encrypted]}),
        chunk({"content": "", "reasoning_details": [signed]}),
        chunk({"content": "Done."}),
        chunk({}, "stop"),
        "[DONE]",
    )
    events = run(body)
    msg = fold(events)
    assert (msg.reasoning, msg.text) == ("**Plan** then act more", "Done.")
    raws = [e.data for e in events if isinstance(e, RawEvent)]
    assert raws == [[{"type": "reasoning.text", "text": " other", "index": 0}], [encrypted], [signed]]


def test_groq_reasoning_formats() -> None:
    """Groq ``reasoning_format``: ``parsed`` streams the reasoning in ``delta.reasoning``,
    ``raw`` inline in ``delta.content`` as ``<think>...</think>`` (split with
    ``think_tags=True``), ``hidden`` not at all. Source: https://console.groq.com/docs/reasoning."""
    parsed = sse(chunk({"reasoning": "Think."}), chunk({"content": "Answer."}), chunk({}, "stop"), "[DONE]")
    assert (fold(run(parsed)).reasoning, fold(run(parsed)).text) == ("Think.", "Answer.")
    raw = sse(chunk({"content": "<think>Think"}), chunk({"content": ".</think>Answer."}), chunk({}, "stop"), "[DONE]")
    msg = fold(run(raw, think_tags=True))
    assert (msg.reasoning, msg.text) == ("Think.", "Answer.")


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_vllm_reasoning_field_old_and_new_name(field: str) -> None:
    """vLLM with ``--reasoning-parser``: ``delta.reasoning`` (named ``reasoning_content``
    before v0.11, still accepted). Source: https://docs.vllm.ai/en/latest/features/reasoning_outputs/."""
    body = sse(chunk({"role": "assistant", field: "Hmm"}), chunk({"content": "Yes"}), chunk({}, "stop"), "[DONE]")
    msg = fold(run(body))
    assert (msg.reasoning, msg.text) == ("Hmm", "Yes")
