"""Vercel AI SDK UI message stream: every emitted chunk validates against the AI SDK's own
chunk schema (``uiMessageChunkSchema``, translated to JSON Schema in
``schemas/vercel_ui_message_chunk.schema.json``), and chunk order follows what the SDK's
client (``processUIMessageStream``) requires: deltas inside their start/end, tool outputs after
their inputs, one terminal chunk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

import streamops as so
from streamops.sinks.vercel import DONE, VERCEL_HEADERS, VercelEncoder, vercel_response
from tests.sinks._runs import AGENTS, RECORDED_FILES, STATUSES, agent_events, every_kind_run, recorded_events

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "vercel_ui_message_chunk.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def check_ui_stream(parts: list[dict[str, Any]]) -> None:
    """Each chunk against the schema, and the order rules of the SDK's stream reader."""
    for p in parts:
        VALIDATOR.validate(p)
    assert parts[0]["type"] == "start"
    assert parts[-1]["type"] in ("finish", "abort")
    assert [p["type"] for p in parts].count("start") == 1
    assert sum(p["type"] in ("finish", "abort") for p in parts) == 1
    open_blocks: dict[str, str] = {}  # id -> text | reasoning
    inputs: dict[str, str] = {}  # toolCallId -> streaming | available
    step_open = False
    for p in parts[1:]:
        t = p["type"]
        if t in ("text-start", "reasoning-start"):
            assert p["id"] not in open_blocks
            open_blocks[p["id"]] = t.split("-")[0]
        elif t in ("text-delta", "reasoning-delta"):
            assert open_blocks.get(p["id"]) == t.split("-")[0], p
        elif t in ("text-end", "reasoning-end"):
            assert open_blocks.pop(p["id"]) == t.split("-")[0]
        elif t == "tool-input-start":
            assert p["toolCallId"] not in inputs
            inputs[p["toolCallId"]] = "streaming"
        elif t == "tool-input-delta":
            assert inputs.get(p["toolCallId"]) == "streaming"
        elif t in ("tool-input-available", "tool-input-error"):
            assert inputs.get(p["toolCallId"]) == "streaming"
            inputs[p["toolCallId"]] = "available"
        elif t in ("tool-output-available", "tool-output-error"):
            assert inputs.get(p["toolCallId"]) == "available", p
        elif t == "start-step":
            assert not step_open
            step_open = True
        elif t == "finish-step":
            assert step_open
            step_open = False
        elif t in ("finish", "abort"):
            assert not open_blocks and not step_open
        if t not in ("text-delta", "reasoning-delta", "text-end", "reasoning-end"):
            assert not open_blocks or t in ("text-start", "reasoning-start"), f"{t} while a block is open"


def encode_all(events: list[so.BaseEvent]) -> list[dict[str, Any]]:
    enc = VercelEncoder()
    return [p for e in events for p in enc.encode(e)] + enc.close()


def test_schema_file_is_a_valid_json_schema_and_rejects_unknown_fields() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    VALIDATOR.validate({"type": "text-delta", "id": "a", "delta": "x"})
    for bad in (
        {"type": "text-delta", "id": "a", "delta": "x", "extra": 1},  # strict objects
        {"type": "text-delta", "id": "a"},
        {"type": "finish", "finishReason": "tool_calls"},
        {"type": "tool-input-delta", "toolCallId": "c", "delta": "x"},
        {"type": "nope"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(bad)


@pytest.mark.parametrize("status", STATUSES)
def test_every_event_kind_and_every_run_status(status: so.RunStatus) -> None:
    parts = encode_all(every_kind_run(status))
    check_ui_stream(parts)
    types = {p["type"] for p in parts}
    assert {
        "start-step",
        "reasoning-delta",
        "tool-input-available",
        "tool-input-error",
        "tool-output-available",
    } <= types
    assert {"tool-output-error", "data-tool-progress", "data-note", "data-final-output", "error"} <= types
    if status == "cancelled":
        assert parts[-1] == {"type": "abort", "reason": "cancelled"}
    else:
        assert parts[-1]["type"] == "finish"
        assert parts[-1]["messageMetadata"]["status"] == status
        assert parts[-1]["messageMetadata"]["usage"] == {
            "inputTokens": 20,
            "outputTokens": 9,
            "reasoningTokens": 3,
            "totalTokens": 29,
        }


def test_exact_chunks_of_a_small_run() -> None:
    e = {"run_id": "r1"}
    events: list[so.BaseEvent] = [
        so.RunStart(**e),
        so.ReasoningDelta(delta="hm", block_id="0", **e),
        so.TextDelta(delta="Hi", block_id="1", **e),
        so.TextDelta(delta=" there", block_id="1", **e),
        so.TextDelta(delta="!", block_id="2", **e),
        so.ToolCallStart(call_id="c", name="f", **e),
        so.ToolCallDelta(call_id="c", delta="{}", **e),
        so.ToolCallEnd(call_id="c", name="f", arguments="{}", **e),
        so.RunEnd(finish_reason="tool_calls", **e),
    ]
    assert encode_all(events) == [
        {"type": "start", "messageId": "r1"},
        {"type": "reasoning-start", "id": "reasoning-0"},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "hm"},
        {"type": "reasoning-end", "id": "reasoning-0"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hi"},
        {"type": "text-delta", "id": "text-1", "delta": " there"},
        {"type": "text-end", "id": "text-1"},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "!"},
        {"type": "text-end", "id": "text-2"},
        {"type": "tool-input-start", "toolCallId": "c", "toolName": "f"},
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": "{}"},
        {"type": "tool-input-available", "toolCallId": "c", "toolName": "f", "input": {}},
        {"type": "finish", "finishReason": "tool-calls", "messageMetadata": {"status": "completed"}},
    ]


@pytest.mark.parametrize("path", RECORDED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recorded_stream(path: Path) -> None:
    events = recorded_events(path)
    check_ui_stream(encode_all(events))
    # cut off anywhere: the stream still ends well (open blocks closed, then abort)
    for cut in {1, len(events) // 3, len(events) // 2, len(events) - 1}:
        parts = encode_all(events[:cut])
        check_ui_stream(parts)


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(AGENTS))
async def test_agent_runs(name: str) -> None:
    parts = encode_all(await agent_events(name))
    check_ui_stream(parts)
    assert parts.count({"type": "start-step"}) >= 1


@pytest.mark.anyio
async def test_sse_framing_and_encode_stream() -> None:
    enc = VercelEncoder(message_id="m1")
    frames = [f async for f in enc.encode_stream(so.Stream.from_iterable(every_kind_run()))]
    assert frames[-1] == DONE == b"data: [DONE]\n\n"
    parts = [json.loads(f[len(b"data: ") : -2]) for f in frames[:-1]]
    assert all(f.startswith(b"data: ") and f.endswith(b"\n\n") and f.count(b"\n") == 2 for f in frames)
    check_ui_stream(parts)
    assert parts[0] == {"type": "start", "messageId": "m1"}
    assert VercelEncoder.frame({"type": "text-delta", "id": "a", "delta": "l1\nl2\r\n"}).count(b"\n") == 2


@pytest.mark.anyio
async def test_vercel_response_runs_an_agent_over_http() -> None:
    async def chat(request: Any) -> Any:
        return vercel_response(AGENTS["parallel_tools_then_text"]().stream("q"))

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.post("/chat")
    assert r.headers["x-vercel-ai-ui-message-stream"] == VERCEL_HEADERS["x-vercel-ai-ui-message-stream"] == "v1"
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in r.text.split("\n\n") if f]
    assert frames[-1] == "data: [DONE]"
    parts = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    check_ui_stream(parts)
    outputs = sorted(p["output"] for p in parts if p["type"] == "tool-output-available")
    assert outputs == [5, 6]
