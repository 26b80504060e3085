"""``streamops.sinks.openai``: events -> OpenAI ``chat.completion.chunk`` SSE, checked by decoding
the output again with the Chat Completions parser (and with the official ``openai`` SDK)."""

from __future__ import annotations

import csv
import json
from typing import Any

import pytest
from streamops.adapters import parse_sse_bytes

from streamops import Accumulator, Stream
from streamops.events import (
    BaseEvent,
    ErrorEvent,
    ReasoningDelta,
    RefusalDelta,
    RunEnd,
    RunStart,
    StepEnd,
    StepStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
    Usage,
    UsageEvent,
)
from streamops.operators.aggregate import Message
from streamops.sinks.openai import DONE, ChunkEncoder, completion_object
from tests.conftest import RECORDED

ROWS = list(csv.DictReader((RECORDED / "INDEX.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t"))


def fold(events: list[BaseEvent]) -> Message:
    acc = Accumulator()
    for e in events:
        acc.add(e)
    return acc.message()


def reencode(events: list[BaseEvent], **kw: Any) -> bytes:
    enc = ChunkEncoder(model=kw.pop("model", "m"), **kw)
    out = [enc.encode_frames(e) for e in events]
    out += [enc.frame(c) for c in enc.close()]
    out.append(enc.terminator)
    return b"".join(out)


def key(m: Message) -> dict[str, Any]:
    u = m.usage or Usage()
    return {
        "text": m.text,
        "reasoning": m.reasoning,
        "refusal": m.refusal,
        "tool_calls": [(c.id, c.name, c.arguments) for c in m.tool_calls],
        "finish_reason": m.finish_reason,
        "usage": (u.input_tokens, u.output_tokens),
        "error": None if m.error is None else (m.error.type, m.error.message),
    }


def test_index_covers_all_four_apis() -> None:
    assert {r["api"] for r in ROWS} == {"chat.completions", "responses", "messages", "gemini"}


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_every_recorded_stream_round_trips_through_openai_chunks(row: dict[str, str]) -> None:
    body = (RECORDED / row["file"]).read_bytes()
    first = parse_sse_bytes(body, on_malformed="event")
    wire = reencode(first)
    assert wire.endswith(b"data: [DONE]\n\n")
    second = parse_sse_bytes(wire, api="openai-chat")
    a, b = fold(first), fold(second)
    assert key(b) == key(a)
    # Every frame is one data line of one JSON object (or [DONE]).
    frames = wire.split(b"\n\n")
    assert frames[-1] == b""
    for f in frames[:-2]:
        assert f.startswith(b"data: {") and b"\n" not in f and b"\r" not in f
        assert json.loads(f[6:])["object"] == "chat.completion.chunk"


def test_chunk_shapes_text_reasoning_refusal_usage() -> None:
    enc = ChunkEncoder(model="gpt-x", completion_id="chatcmpl-1", created=123)
    chunks: list[dict[str, Any]] = []
    for ev in [
        RunStart(model="whatever"),
        ReasoningDelta(delta="hmm"),
        TextDelta(delta="Hi"),
        RefusalDelta(delta="no"),
        UsageEvent(usage=Usage(input_tokens=5, output_tokens=2, reasoning_tokens=1)),
        RunEnd(finish_reason="stop", usage=Usage(output_tokens=3)),
        TextDelta(delta="after the end"),
    ]:
        chunks += enc.encode(ev)
    assert [c["choices"][0]["delta"] if c["choices"] else None for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "hmm"},
        {"content": "Hi"},
        {"refusal": "no"},
        {},
        None,
    ]
    for c in chunks:
        assert (c["id"], c["object"], c["created"], c["model"]) == ("chatcmpl-1", "chat.completion.chunk", 123, "gpt-x")
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    assert enc.ended and enc.close() == []


def test_tool_calls_stable_indexes_id_and_name_once() -> None:
    enc = ChunkEncoder(model="m", include_usage=False)
    evs: list[BaseEvent] = [
        StepStart(step=0),
        ToolCallStart(call_id="a", name="add", index=0),
        ToolCallStart(call_id="b", name="mul", index=1),
        ToolCallDelta(call_id="a", delta='{"x":', index=0),
        ToolCallDelta(call_id="b", delta='{"y":2}', index=1),
        ToolCallDelta(call_id="a", delta="1}", index=0),
        ToolCallEnd(call_id="a", name="add", arguments='{"x":1}', index=0),
        ToolCallEnd(call_id="b", name="mul", arguments='{"y":2}', index=1),
        StepEnd(step=0, finish_reason="tool_calls"),
        ToolResult(call_id="a", name="add", result=1),
        StepStart(step=1),
        ToolCallEnd(call_id="c", name="div", arguments='{"z":3}', index=0),  # no start, no deltas
        ToolCallStart(call_id="d", name="neg", index=1),
        ToolCallEnd(call_id="d", name="neg", arguments="{}", index=1),  # start, no deltas
        StepEnd(step=1, finish_reason="tool_calls"),
        RunEnd(status="max_steps"),
    ]
    chunks = [c for e in evs for c in enc.encode(e)]
    tcs = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert tcs == [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "add", "arguments": ""}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "mul", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"x":'}},
        {"index": 1, "function": {"arguments": '{"y":2}'}},
        {"index": 0, "function": {"arguments": "1}"}},
        {"index": 2, "id": "c", "type": "function", "function": {"name": "div", "arguments": '{"z":3}'}},
        {"index": 3, "id": "d", "type": "function", "function": {"name": "neg", "arguments": ""}},
        {"index": 3, "function": {"arguments": "{}"}},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # Decoded again: the same four calls.
    wire = b"".join(map(enc.frame, chunks)) + DONE
    m = fold(parse_sse_bytes(wire, api="openai-chat"))
    assert [(c.id, c.name, c.arguments) for c in m.tool_calls] == [
        ("a", "add", '{"x":1}'),
        ("b", "mul", '{"y":2}'),
        ("c", "div", '{"z":3}'),
        ("d", "neg", "{}"),
    ]


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (RunEnd(status="cancelled", finish_reason="cancelled"), "cancelled"),
        (RunEnd(status="failed"), "error"),
        (RunEnd(status="completed"), "stop"),
        (RunEnd(status="length", finish_reason="length"), "length"),
        (RunEnd(status="completed", finish_reason="content_filter"), "content_filter"),
    ],
)
def test_finish_reasons(end: RunEnd, expected: str) -> None:
    enc = ChunkEncoder(model="m")
    chunks = enc.encode(TextDelta(delta="x")) + enc.encode(end)
    assert chunks[-1]["choices"][0]["finish_reason"] == expected
    assert not any("usage" in c for c in chunks)  # no usage known: no usage chunk


def test_step_end_reason_used_when_run_end_has_none() -> None:
    enc = ChunkEncoder(model="m")
    enc.encode(StepEnd(finish_reason="length"))
    assert enc.encode(RunEnd(status="completed"))[-1]["choices"][0]["finish_reason"] == "length"


def test_error_chunk_shape_and_nothing_after() -> None:
    enc = ChunkEncoder(model="m", completion_id="c", created=1)
    enc.encode(UsageEvent(usage=Usage(input_tokens=4, output_tokens=1)))
    (chunk,) = enc.encode(ErrorEvent(error_type="overloaded_error", message="busy", code="529"))
    assert chunk == {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "error": {"message": "busy", "type": "overloaded_error", "code": "529"},
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
    }
    assert enc.encode(RunEnd(status="failed")) == []
    assert enc.close() == []


def test_include_usage_false_and_finish_without_run_end() -> None:
    enc = ChunkEncoder(model="m", include_usage=False)
    enc.encode(UsageEvent(usage=Usage(input_tokens=1, output_tokens=1)))
    chunks = enc.encode(TextDelta(delta="a")) + enc.close()
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {"content": "a"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_sse_framing_escapes_newlines_and_keeps_utf8() -> None:
    frame = ChunkEncoder.frame({"a": "line1\nline2\r\n😊"})
    assert frame == b'data: {"a":"line1\\nline2\\r\\n' + "😊".encode() + b'"}\n\n'
    assert ChunkEncoder.terminator == b"data: [DONE]\n\n"


def test_completion_object() -> None:
    events: list[BaseEvent] = [
        RunStart(),
        TextDelta(delta="Let me add."),
        ToolCallEnd(call_id="call_1", name="add", arguments='{"a":1}'),
        RunEnd(finish_reason="tool_calls", usage=Usage(input_tokens=3, output_tokens=4)),
    ]
    obj = completion_object(fold(events), model="m", completion_id="chatcmpl-9", created=7)
    assert obj == {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me add.",
                    "refusal": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    only_tools = completion_object(fold(events[2:]), model="m")
    assert only_tools["choices"][0]["message"]["content"] is None


@pytest.mark.anyio
async def test_openai_sse_stream_is_a_lazy_stream_of_frames() -> None:
    body = (RECORDED / "anthropic/messages_parallel_tool_use_fantasy.sse").read_bytes()
    events = parse_sse_bytes(body)
    frames = await ChunkEncoder(model="m").encode_stream(Stream.from_iterable(events)).collect()
    assert frames[-1] == DONE
    wire = b"".join(frames)
    assert key(fold(parse_sse_bytes(wire, api="openai-chat"))) == key(fold(events))


def test_openai_sdk_decodes_the_chunks() -> None:
    """The official SDK's own chunk model accepts every chunk of a re-encoded stream."""
    from openai.types.chat import ChatCompletionChunk

    body = (RECORDED / "openai/chat_parallel_tools_openai_python.sse").read_bytes()
    events = parse_sse_bytes(body)
    enc = ChunkEncoder(model="gpt-4o")
    chunks = [c for e in events for c in enc.encode(e)]
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    args: dict[int, str] = {}
    for p in parsed:
        for ch in p.choices:
            for tc in ch.delta.tool_calls or ():
                args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "" if tc.function else "")
    assert [json.loads(a) for a in args.values()] == [json.loads(c.arguments) for c in fold(events).tool_calls]
    assert parsed[-1].usage is not None
