"""Tests of :mod:`streamops.adapters.openai_responses`: every recorded Responses stream against
its ``expected.json`` (whole, split at every byte offset, through the ``openai`` SDK's event
types and a real ``openai.AsyncStream``), resumed streams, hand-made bad inputs, the mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from streamops.adapters.openai_responses import ResponsesParser, parse_responses_sdk, parse_responses_sse

from streamops.errors import StreamFormatError, TruncatedStreamError
from streamops.events import (
    BaseEvent,
    ErrorEvent,
    RawEvent,
    ReasoningDelta,
    RedactedReasoning,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
)
from tests.adapters.test_openai_chat import (
    ALL_ROWS,
    SDK_GEN_LEAK,
    body_of,
    expected,
    feed_all,
    fold,
    grammar,
    mock_client,
    parse_chunks,
    sse_payloads,
)
from tests.adapters.test_openai_chat import check_message as _check_message

ROWS = [r for r in ALL_ROWS if r["api"] == "responses"]
IDS = [r["file"] for r in ROWS]


def check(row: dict[str, str], msg: Any) -> None:
    _check_message(row, msg, ("input_tokens", "output_tokens"))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_whole_body(row: dict[str, str]) -> None:
    events = parse_chunks(ResponsesParser(), [body_of(row)])
    grammar(events)
    check(row, fold(events))


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_every_byte_offset(row: dict[str, str]) -> None:
    body = body_of(row)
    whole = fold(parse_chunks(ResponsesParser(), [body]))
    check(row, fold(parse_chunks(ResponsesParser(), [body[i : i + 1] for i in range(len(body))])))
    if len(body) <= 6000:
        for k in range(1, len(body)):
            m = fold(parse_chunks(ResponsesParser(), [body[:k], body[k:]]))
            assert (m.text, m.reasoning, m.tool_calls, m.raw_finish_reason, m.usage) == (
                whole.text,
                whole.reasoning,
                whole.tool_calls,
                whole.raw_finish_reason,
                whole.usage,
            ), k


_ADAPTER: Any = None


def sdk_dump(data: dict[str, Any]) -> dict[str, Any]:
    """``ResponseStreamEvent`` validated by pydantic, or (when a real payload does not validate
    against this SDK version, e.g. newer item types or fields) built the way the SDK builds it on
    the wire (non-validating ``construct_type``), then ``model_dump()``."""
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter, ValidationError

    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(ResponseStreamEvent)
    try:
        obj: Any = _ADAPTER.validate_python(data)
    except ValidationError:
        obj = construct_type(type_=ResponseStreamEvent, value=data)
    dumped: dict[str, Any] = obj.model_dump(warnings=False)
    return dumped


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_through_sdk_types(row: dict[str, str]) -> None:
    parser = ResponsesParser()
    events: list[BaseEvent] = []
    for _event_type, data in sse_payloads(body_of(row)):
        events += parser.feed_payload(sdk_dump(json.loads(data)))
    events += parser.close()
    grammar(events)
    check(row, fold(events))


@SDK_GEN_LEAK
@pytest.mark.anyio
@pytest.mark.parametrize("row", ROWS[::3], ids=IDS[::3])
async def test_recorded_through_real_sdk_stream(row: dict[str, str]) -> None:
    client = mock_client(body_of(row))
    async with client:
        stream = await client.responses.create(model="m", input="hi", stream=True)
        events = [ev async for ev in parse_responses_sdk(stream)]
    grammar(events)
    msg = fold(events)
    exp = expected(row)
    assert (msg.text, [c.id for c in msg.tool_calls]) == (exp["text"], [c["id"] for c in exp["tool_calls"]])
    if exp["error"]:  # the SDK raises on the error event: no response.failed after it
        assert msg.status == "failed" and msg.error is not None
        assert msg.error.message == exp["error"]["message"]
    else:
        check(row, msg)


@pytest.mark.anyio
async def test_parse_responses_sse_async_source() -> None:
    row = next(r for r in ROWS if "parallel_function_calls" in r["file"])
    body = body_of(row)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 33):
            yield body[i : i + 33]

    check(row, fold([ev async for ev in parse_responses_sse(chunks())]))


# ---------------------------------------------------------------------------- resumed streams
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_resumed_mid_stream(row: dict[str, str]) -> None:
    """A stream resumed with ``starting_after=N`` holds only the events after N: the parser still
    starts a run, assembles what it gets and ends the run."""
    payloads = [json.loads(d) for _, d in sse_payloads(body_of(row))]
    cut = len(payloads) // 2
    parser = ResponsesParser()
    events: list[BaseEvent] = []
    for p in payloads[cut:]:
        events += parser.feed_payload(p)
    events += parser.close()
    grammar(events)
    want = "".join(p["delta"] for p in payloads[cut:] if p["type"] == "response.output_text.delta")
    msg = fold(events)
    assert msg.text == want
    assert msg.raw_finish_reason == expected(row)["finish_reason"]
    done_args = {
        p["item"]["call_id"]
        for p in payloads[cut:]
        if p["type"] == "response.output_item.done" and p["item"]["type"] == "function_call"
    }
    assert done_args <= {c.id for c in msg.tool_calls}


# ---------------------------------------------------------------------------- mapping
def ev(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, **fields}


CREATED = ev(
    "response.created", sequence_number=0, response={"id": "resp_1", "model": "gpt-x", "status": "in_progress"}
)


def completed(status: str = "completed", **resp: Any) -> dict[str, Any]:
    return ev(
        "response.completed" if status == "completed" else "response.incomplete",
        response={"id": "resp_1", "status": status, **resp},
    )


def run(*payloads: dict[str, Any], close: bool = True, **kw: Any) -> list[BaseEvent]:
    parser = ResponsesParser(**kw)
    out: list[BaseEvent] = []
    for p in payloads:
        out += parser.feed_payload(p)
    if close:
        out += parser.close()
    return out


def test_text_reasoning_and_block_ids() -> None:
    events = run(
        CREATED,
        ev("response.reasoning_summary_text.delta", item_id="rs", summary_index=1, delta="why"),
        ev("response.reasoning_text.delta", item_id="rs", content_index=0, delta=" because"),
        ev("response.output_text.delta", item_id="msg", content_index=0, delta=" "),
        ev("response.output_text.delta", item_id="msg", content_index=0, delta="hi"),
        ev("response.output_text.done", item_id="msg", content_index=0, text=" hi"),
        ev("response.refusal.delta", item_id="msg", content_index=1, delta="no"),
        completed(
            usage={
                "input_tokens": 3,
                "output_tokens": 4,
                "output_tokens_details": {"reasoning_tokens": 2},
                "input_tokens_details": {"cached_tokens": 1},
            }
        ),
    )
    assert isinstance(events[0], RunStart) and (events[0].model, events[0].response_id) == ("gpt-x", "resp_1")
    rs = [e for e in events if isinstance(e, ReasoningDelta)]
    assert [e.block_id for e in rs] == ["rs:summary:1", "rs:0"]
    assert [e.block_id for e in events if isinstance(e, TextDelta)] == ["msg:0", "msg:0"]
    msg = fold(events)
    assert (msg.text, msg.reasoning, msg.refusal) == (" hi", "why because", "no")
    u = next(e for e in events if isinstance(e, UsageEvent)).usage
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cache_read_tokens) == (3, 4, 2, 1)
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert (end.status, end.finish_reason, end.raw_finish_reason) == ("completed", "stop", "completed")


def test_function_call_lifecycle() -> None:
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}
    events = run(
        CREATED,
        ev("response.output_item.added", output_index=0, item=item),
        ev("response.function_call_arguments.delta", item_id="fc_1", output_index=0, delta='{"a"'),
        ev("response.function_call_arguments.delta", item_id="fc_1", output_index=0, delta=":1}"),
        ev("response.function_call_arguments.done", item_id="fc_1", output_index=0, arguments='{"a":1}'),
        ev("response.output_item.done", output_index=0, item={**item, "arguments": '{"a":1}', "status": "completed"}),
        completed(),
    )
    assert [type(e).__name__ for e in events] == [
        "RunStart",
        "ToolCallStart",
        "ToolCallDelta",
        "ToolCallDelta",
        "ToolCallEnd",
        "RunEnd",
    ]
    end_call = events[4]
    assert isinstance(end_call, ToolCallEnd)
    assert (end_call.call_id, end_call.name, end_call.arguments, end_call.index) == ("call_1", "f", '{"a":1}', 0)
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert (end.finish_reason, end.raw_finish_reason) == ("tool_calls", "completed")


def test_function_call_without_deltas_ends_from_item_done() -> None:
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}
    events = run(
        CREATED,
        ev("response.output_item.added", output_index=0, item=item),
        ev("response.output_item.done", output_index=0, item={**item, "arguments": "{}"}),
        completed(),
    )
    msg = fold(events)
    assert [(c.id, c.name, c.arguments) for c in msg.tool_calls] == [("call_1", "f", "{}")]


def test_builtin_tools_and_unknown_types_are_raw_events() -> None:
    row = next(r for r in ROWS if "mcp_call" in r["file"])
    events = parse_chunks(ResponsesParser(), [body_of(row)])
    raw_types = {e.event_type for e in events if isinstance(e, RawEvent)}
    assert {
        "response.mcp_list_tools.in_progress",
        "response.mcp_call_arguments.delta",
        "response.output_item.added",
        "response.output_item.done",
    } <= raw_types
    items = {e.data["item"]["type"] for e in events if isinstance(e, RawEvent) and "item" in e.data}
    assert items == {"mcp_call", "mcp_list_tools"}
    future = run(CREATED, ev("response.future_thing", x=1), completed())
    assert [e.data["x"] for e in future if isinstance(e, RawEvent)] == [1]


def test_encrypted_reasoning_kept() -> None:
    row = next(r for r in ROWS if "azure_reasoning_summary" in r["file"])
    events = parse_chunks(ResponsesParser(), [body_of(row)])
    assert sum(isinstance(e, RedactedReasoning) for e in events) >= 1
    assert fold(events).redacted_reasoning


def test_incomplete_keeps_reason() -> None:
    events = run(
        CREATED,
        ev("response.output_text.delta", item_id="m", content_index=0, delta="cut"),
        completed("incomplete", incomplete_details={"reason": "max_output_tokens"}),
    )
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert (end.status, end.finish_reason, end.raw_finish_reason) == ("length", "length", "max_output_tokens")


def test_error_then_failed_gives_one_error_and_failed_status() -> None:
    row = next(r for r in ROWS if "insufficient_quota" in r["file"])
    events = parse_chunks(ResponsesParser(), [body_of(row)])
    errs = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errs) == 1 and (errs[0].error_type, errs[0].code) == ("insufficient_quota", "insufficient_quota")
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert (end.status, end.finish_reason, end.raw_finish_reason) == ("failed", "error", "failed")


def test_error_event_alone_fails_the_run_at_close() -> None:
    events = run(
        CREATED,
        ev("response.output_text.delta", item_id="m", content_index=0, delta="part"),
        ev("error", code="server_error", message="boom", param=None, sequence_number=3),
    )
    msg = fold(events)
    assert (msg.text, msg.status) == ("part", "failed")
    assert msg.error is not None and (msg.error.type, msg.error.message) == ("server_error", "boom")


def test_failed_without_error_event() -> None:
    events = run(CREATED, ev("response.failed", response={"status": "failed", "error": {"code": "x", "message": "m"}}))
    msg = fold(events)
    assert msg.error is not None and (msg.error.type, msg.error.message, msg.status) == ("x", "m", "failed")


BAD: dict[str, tuple[bytes, type[Exception], str]] = {
    "invalid_json": (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"m","delta":"ok"}\n\n'
        b"event: response.output_text.delta\ndata: {oops\n\n",
        StreamFormatError,
        "ok",
    ),
    "truncated": (
        b'data: {"type":"response.output_text.delta","item_id":"m","delta":"ok"}\n\n',
        TruncatedStreamError,
        "ok",
    ),
    "wrong_shape": (
        b'data: {"type":"response.output_text.delta","item_id":"m","delta":"ok"}\n\n'
        b'data: {"type":"response.output_item.added","item":5}\n\n',
        StreamFormatError,
        "ok",
    ),
    "binary_junk": (
        b'data: {"type":"response.output_text.delta","item_id":"m","delta":"ok"}\n\ndata: \xff\x00\x80\n\n',
        StreamFormatError,
        "ok",
    ),
    "binary_junk_only": (bytes(range(256)) * 4, TruncatedStreamError, ""),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_raises_after_good_events(name: str) -> None:
    body, exc, text = BAD[name]
    seen: list[BaseEvent] = []
    with pytest.raises(exc):
        feed_all(ResponsesParser(), body, seen)
    assert fold(seen).text == text


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_as_error_events(name: str) -> None:
    body, exc, text = BAD[name]
    events = parse_chunks(ResponsesParser(on_malformed="event"), [body])
    errs = [e for e in events if isinstance(e, ErrorEvent)]
    assert errs[0].error_type == ("truncated_stream" if exc is TruncatedStreamError else "malformed_stream")
    assert fold(events).text == text
    assert sum(isinstance(e, RunEnd) for e in events) == 1


def test_unknown_event_type_is_not_an_error() -> None:
    events = run(CREATED, ev("response.brand_new.delta", delta="x"), completed())
    assert isinstance(events[1], RawEvent)
    assert events[1].event_type == "response.brand_new.delta"
    assert fold(events).error is None


def test_tool_call_start_carries_call_id_not_item_id() -> None:
    row = next(r for r in ROWS if "parallel_function_calls" in r["file"])
    starts = [e for e in parse_chunks(ResponsesParser(), [body_of(row)]) if isinstance(e, ToolCallStart)]
    assert [s.call_id for s in starts] == [c["id"] for c in expected(row)["tool_calls"]]
