"""Nested runs and handoffs in the protocol sinks: a stream whose run holds a nested run (an
agent used as a tool: its own run_id, parent_run_id = the outer run's) and a handoff. The
nested run's start and end never start or finish the protocol's run; the outer run's answer
after it still arrives; the handoff and the nested run's ends are custom items; the generic
sinks (SSE, NDJSON) carry parent_run_id and the handoff as fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

import streamops as so
from streamops.sinks.a2a import A2AEncoder
from streamops.sinks.agui import AGUIEncoder
from streamops.sinks.openai import ChunkEncoder
from streamops.sinks.vercel import VercelEncoder

pytestmark = pytest.mark.anyio


def nested_run() -> list[so.BaseEvent]:
    top: dict[str, Any] = {"run_id": "root", "agent": "planner"}
    sub: dict[str, Any] = {"run_id": "sub1", "agent": "planner/researcher", "parent_run_id": "root"}
    return [
        so.RunStart(model="m", **top),
        so.AgentHandoff(from_agent="", to_agent="planner", **top),
        so.StepStart(step=0, **top),
        so.ToolCallStart(call_id="c1", name="researcher", **top),
        so.ToolCallEnd(call_id="c1", name="researcher", arguments='{"prompt": "tides"}', **top),
        so.StepEnd(step=0, finish_reason="tool_calls", **top),
        so.RunStart(model="m", **sub),
        so.StepStart(step=0, **sub),
        so.TextDelta(delta="Notes on tides", block_id="s", **sub),
        so.StepEnd(step=0, finish_reason="stop", **sub),
        so.RunEnd(status="completed", finish_reason="stop", **sub),
        so.ToolResult(call_id="c1", name="researcher", result="Notes on tides", **top),
        so.StepStart(step=1, **top),
        so.TextDelta(delta="All done.", block_id="t", **top),
        so.StepEnd(step=1, finish_reason="stop", **top),
        so.RunEnd(status="completed", finish_reason="stop", **top),
    ]


async def _source() -> Any:
    for e in nested_run():
        yield e


def _data(frames: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for msg in b"".join(frames).split(b"\n\n"):
        for line in msg.split(b"\n"):
            if line.startswith(b"data: "):
                body = line[6:]
                out.append(body.decode() if body == b"[DONE]" else json.loads(body))
    return out


async def test_agui_one_run_with_the_nested_run_and_handoff_as_custom_events() -> None:
    items = _data([f async for f in AGUIEncoder().encode_stream(_source())])
    types = [i["type"] for i in items]
    assert types.count("RUN_STARTED") == 1 and types.count("RUN_FINISHED") == 1 and types[-1] == "RUN_FINISHED"
    assert items[0]["runId"] == "root"
    customs = [(i["name"], i["value"]) for i in items if i["type"] == "CUSTOM"]
    assert ("agent-handoff", {"fromAgent": "", "toAgent": "planner"}) in customs
    names = [n for n, _ in customs]
    assert names.index("sub-run-start") < names.index("sub-run-end")
    end = dict(customs)["sub-run-end"]
    assert end == {
        "runId": "sub1",
        "parentRunId": "root",
        "agent": "planner/researcher",
        "status": "completed",
        "finishReason": "stop",
    }
    text = "".join(i["delta"] for i in items if i["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "Notes on tidesAll done."  # the outer answer after the nested run is kept


async def test_vercel_one_finish_at_the_end() -> None:
    parts = _data([f async for f in VercelEncoder().encode_stream(_source())])
    types = [p["type"] for p in parts if isinstance(p, dict)]
    assert types.count("start") == 1 and types.count("finish") == 1
    assert types.index("finish") > types.index("data-sub-run-end")
    assert "data-agent-handoff" in types
    assert "".join(p["delta"] for p in parts if isinstance(p, dict) and p["type"] == "text-delta").endswith(
        "All done."
    )


async def test_a2a_one_final_status_at_the_end() -> None:
    results = _data([f async for f in A2AEncoder(task_id="t", context_id="c").encode_stream(_source(), 1)])
    finals = [r for r in results if r["result"].get("final")]
    assert len(finals) == 1 and results[-1] is finals[0]
    assert finals[0]["result"]["status"]["state"] in ("completed", "TASK_STATE_COMPLETED")
    assert "sub-run-end" in json.dumps(results) and "agent-handoff" in json.dumps(results)


async def test_openai_chunks_carry_the_outer_answer_only() -> None:
    frames = [f async for f in ChunkEncoder(model="m").encode_stream(_source())]
    chunks = [c for c in _data(frames) if isinstance(c, dict)]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "All done."  # the nested run's text is not the assistant message
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]


async def test_sse_and_ndjson_carry_parent_run_id_and_the_handoff() -> None:
    from streamops.sinks.ndjson import ndjson_encode
    from streamops.sinks.sse import SSEEncoder

    events = nested_run()
    enc = SSEEncoder()
    body = b"".join(enc.encode(e) for e in events)
    assert b"event: agent-handoff\n" in body and b'"parent_run_id":"root"' in body
    lines = [json.loads(ndjson_encode(e)) for e in events]
    assert [so.from_json(json.dumps(d)) for d in lines] == events
