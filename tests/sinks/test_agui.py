"""AG-UI: every emitted event is an ``ag_ui.core`` model, survives a JSON round trip through
the package's own ``Event`` union (camelCase wire form), and the sequence follows the rules of
the protocol's event verifier (run started first, messages and tool calls opened before use and
closed before the run finishes, nothing after the run ends)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ag_ui.core import BaseEvent as AGUIEvent
from ag_ui.core import Event, EventType
from pydantic import TypeAdapter

import streamops as so
from streamops.sinks.agui import AGUIEncoder
from tests.sinks._runs import AGENTS, RECORDED_FILES, STATUSES, agent_events, every_kind_run, recorded_events

EVENT: TypeAdapter[Any] = TypeAdapter(Event)


def check_agui(events: list[AGUIEvent]) -> list[dict[str, Any]]:
    """Round-trip each event through the package's models; check the verifier's order rules."""
    wire = []
    for ev in events:
        text = ev.model_dump_json(by_alias=True)
        back = EVENT.validate_json(text)
        assert type(back) is type(ev) and back == ev
        wire.append(json.loads(text))
    T = EventType  # noqa: N806
    assert events[0].type == T.RUN_STARTED
    assert events[-1].type in (T.RUN_FINISHED, T.RUN_ERROR)
    assert sum(e.type in (T.RUN_FINISHED, T.RUN_ERROR) for e in events) == 1
    messages: set[str] = set()
    reasoning: set[str] = set()
    calls: set[str] = set()
    steps: list[str] = []
    for ev in events[1:]:
        d: Any = ev
        t = ev.type
        if t == T.TEXT_MESSAGE_START:
            assert d.message_id not in messages
            messages.add(d.message_id)
        elif t == T.TEXT_MESSAGE_CONTENT:
            assert d.message_id in messages and d.delta
        elif t == T.TEXT_MESSAGE_END:
            messages.remove(d.message_id)
        elif t == T.REASONING_START:
            reasoning.add(d.message_id)
        elif t in (T.REASONING_MESSAGE_START, T.REASONING_MESSAGE_CONTENT, T.REASONING_MESSAGE_END):
            assert d.message_id in reasoning
        elif t == T.REASONING_END:
            reasoning.remove(d.message_id)
        elif t == T.TOOL_CALL_START:
            assert d.tool_call_id not in calls
            calls.add(d.tool_call_id)
        elif t == T.TOOL_CALL_ARGS:
            assert d.tool_call_id in calls
        elif t == T.TOOL_CALL_END:
            calls.remove(d.tool_call_id)
        elif t == T.STEP_STARTED:
            steps.append(d.step_name)
        elif t == T.STEP_FINISHED:
            assert steps.pop() == d.step_name
        elif t in (T.RUN_FINISHED, T.RUN_ERROR):
            assert not messages and not reasoning and not steps
            if t == T.RUN_FINISHED:
                assert not calls
        if t == T.TOOL_CALL_START:
            assert not messages, "text message still open at a tool call"
    for w in wire:  # the wire form is camelCase
        assert not any("_" in k for k in w if k != "type")
    return wire


def encode_all(events: list[so.BaseEvent], **kw: Any) -> list[AGUIEvent]:
    enc = AGUIEncoder(thread_id="th1", **kw)
    return [x for e in events for x in enc.encode(e)] + enc.close()


@pytest.mark.parametrize("status", STATUSES)
def test_every_event_kind_and_every_run_status(status: so.RunStatus) -> None:
    out = encode_all(every_kind_run(status))
    wire = check_agui(out)
    types = {w["type"] for w in wire}
    assert {
        "RUN_STARTED",
        "STEP_STARTED",
        "STEP_FINISHED",
        "REASONING_MESSAGE_CONTENT",
        "REASONING_ENCRYPTED_VALUE",
    } <= types
    assert {"TEXT_MESSAGE_CONTENT", "TOOL_CALL_ARGS", "TOOL_CALL_RESULT", "CUSTOM", "RAW", "STATE_SNAPSHOT"} <= types
    last = wire[-1]
    if status == "failed":
        assert last["type"] == "RUN_ERROR" and last["code"] == "hook_error"
    else:
        assert last["type"] == "RUN_FINISHED"
        assert last["threadId"] == "th1" and last["runId"] == "run1"
        assert last["outcome"]["type"] == ("cancelled" if status == "cancelled" else "success")
        assert last["result"] == {"a": 1}
        assert last["usage"][0]["inputTokens"] == 20 and last["usage"][0]["totalTokens"] == 29


def test_exact_events_of_a_small_run() -> None:
    e = {"run_id": "r1"}
    events: list[so.BaseEvent] = [
        so.RunStart(**e),
        so.TextDelta(delta="Hi", block_id="0", **e),
        so.ToolCallStart(call_id="c", name="f", **e),
        so.ToolCallDelta(call_id="c", delta='{"a":1}', **e),
        so.ToolCallEnd(call_id="c", name="f", arguments='{"a":1}', **e),
        so.ToolResult(call_id="c", name="f", result=[1], **e),
        so.RunEnd(**e),
    ]
    wire = [{k: v for k, v in w.items() if k != "timestamp"} for w in check_agui(encode_all(events))]
    assert wire == [
        {"type": "RUN_STARTED", "threadId": "th1", "runId": "r1"},
        {"type": "TEXT_MESSAGE_START", "messageId": "r1-text-0", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "r1-text-0", "delta": "Hi"},
        {"type": "TEXT_MESSAGE_END", "messageId": "r1-text-0"},
        {"type": "TOOL_CALL_START", "toolCallId": "c", "toolCallName": "f"},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c", "delta": '{"a":1}'},
        {"type": "TOOL_CALL_END", "toolCallId": "c"},
        {"type": "TOOL_CALL_RESULT", "messageId": "r1-tool-1", "toolCallId": "c", "content": "[1]", "role": "tool"},
        {"type": "RUN_FINISHED", "threadId": "th1", "runId": "r1", "outcome": {"type": "success"}},
    ]


@pytest.mark.parametrize("path", RECORDED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recorded_stream(path: Path) -> None:
    events = recorded_events(path)
    check_agui(encode_all(events))
    for cut in {1, len(events) // 3, len(events) // 2, len(events) - 1}:
        check_agui(encode_all(events[:cut]))


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(AGENTS))
async def test_agent_runs(name: str) -> None:
    events = await agent_events(name)
    wire = check_agui(encode_all(events, run_id="fixed"))
    assert wire[0]["runId"] == "fixed"
    if name == "provider_error":
        assert wire[-1]["type"] == "RUN_ERROR"
    if name == "structured_output":
        assert wire[-1]["result"] == {"city": "San Francisco", "temperature": 61, "units": "f"}


@pytest.mark.anyio
async def test_sse_uses_the_package_encoder() -> None:
    enc = AGUIEncoder(thread_id="t")
    frames = [f async for f in enc.encode_stream(so.Stream.from_iterable(every_kind_run()))]
    assert all(f.startswith(b"data: ") and f.endswith(b"\n\n") and f.count(b"\n") == 2 for f in frames)
    check_agui([EVENT.validate_json(f[len(b"data: ") : -2]) for f in frames])
