"""Event sequences the protocol encoder tests share: real agent runs over recorded streams,
a hand-built run with every event kind, and every recorded provider stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
from pydantic import BaseModel
from streamops.adapters import parse_sse_bytes
from streamops.adapters.replay import ReplayModel

import streamops as so
from streamops.agent import Agent
from streamops.events import EVENT_KINDS
from streamops.tools import ToolContext, tool
from tests.conftest import RECORDED

RECORDED_FILES = sorted(RECORDED.glob("*/*.sse"))
"""Every recorded provider stream."""


def recorded_events(path: Path) -> list[so.BaseEvent]:
    return parse_sse_bytes(path.read_bytes())


@tool
def add(a: int, b: int) -> int:
    """Add."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply."""
    return a * b


@tool
async def weather(location: str, ctx: ToolContext) -> dict[str, object]:
    """Weather at a place, with progress."""
    ctx.progress({"looking": location})
    await anyio.lowlevel.checkpoint()
    return {"location": location, "temp_c": 21}


class Weather(BaseModel):
    city: str
    temperature: float
    units: str


def _agents() -> dict[str, Callable[[], Agent]]:
    a, o = RECORDED / "anthropic", RECORDED / "openai"
    return {
        "parallel_tools_then_text": lambda: Agent(
            ReplayModel([a / "messages_parallel_tool_use_fantasy.sse", a / "messages_minimal_text_pyd.sse"]),
            tools=[add, multiply],
        ),
        "thinking_tool_progress_then_text": lambda: Agent(
            ReplayModel([a / "messages_thinking_then_tool_use_fantasy.sse", o / "chat_after_tool_text_llm.sse"]),
            tools=[weather],
        ),
        "unknown_tool_error_then_text": lambda: Agent(
            ReplayModel([o / "chat_tool_call_openai_python.sse", a / "messages_thinking_signature_pyd.sse"]),
            tools=[add],
        ),
        "structured_output": lambda: Agent(
            ReplayModel([o / "chat_json_schema_content_openai_python.sse"]), output_type=Weather
        ),
        "provider_error": lambda: Agent(ReplayModel([o / "responses_error_insufficient_quota_vercel.sse"])),
    }


AGENTS = _agents()
"""Agent factories (fresh replay models each call), by name."""


async def agent_events(name: str) -> list[so.BaseEvent]:
    return await AGENTS[name]().stream("question").collect()


def every_kind_run(status: so.RunStatus = "completed") -> list[so.BaseEvent]:
    """A hand-built agent-like run with at least one event of every kind."""
    e = {"run_id": "run1", "agent": "bot"}
    evs: list[so.BaseEvent] = [
        so.RunStart(model="m", **e),
        so.StepStart(step=0, **e),
        so.ReasoningDelta(delta="Think", block_id="r0", **e),
        so.ReasoningDelta(delta="ing.", block_id="r0", **e),
        so.ReasoningSignature(signature="sig==", block_id="r0", **e),
        so.RedactedReasoning(data="enc==", block_id="r1", **e),
        so.TextDelta(delta="Let me ", block_id="t0", **e),
        so.TextDelta(delta="", block_id="t0", **e),
        so.TextDelta(delta="check.", block_id="t0", **e),
        so.ToolCallStart(call_id="c1", name="lookup", index=0, **e),
        so.ToolCallStart(call_id="c2", name="lookup", index=1, **e),
        so.ToolCallDelta(call_id="c1", delta='{"q": ', index=0, **e),
        so.ToolCallDelta(call_id="c2", delta='{"q": "b"}', index=1, **e),
        so.ToolCallDelta(call_id="c1", delta='"a"}', index=0, **e),
        so.ToolCallEnd(call_id="c1", name="lookup", arguments='{"q": "a"}', index=0, **e),
        so.ToolCallEnd(call_id="c2", name="lookup", arguments='{"q": "b"', index=1, **e),
        so.UsageEvent(usage=so.Usage(input_tokens=10, output_tokens=5), **e),
        so.StepEnd(step=0, finish_reason="tool_calls", usage=so.Usage(input_tokens=10, output_tokens=5), **e),
        so.ToolProgress(call_id="c1", name="lookup", data={"pct": 50}, **e),
        so.ToolResult(call_id="c1", name="lookup", result={"answer": 42}, **e),
        so.ToolError(call_id="c2", name="lookup", message="bad JSON", error_type="ValidationError", **e),
        so.StepStart(step=1, **e),
        so.RefusalDelta(delta="I can't say that.", block_id="0", **e),
        so.TextDelta(delta='{"a": 1}', block_id="0", **e),
        so.ObjectDelta(json_path="$.a", delta="1", **e),
        so.PartialObject(value={"a": 1}, **e),
        so.CustomEvent(name="note", data={"x": [1, 2]}, **e),
        so.AgentHandoff(from_agent="bot", to_agent="bot/helper", **e),
        so.RawEvent(event_type="ping", data={"type": "ping"}, **e),
        so.ErrorEvent(error_type="hook_error", message="on_chunk raised", **e),
        so.StepEnd(step=1, finish_reason="stop", **e),
        so.FinalOutput(value={"a": 1}, **e),
        so.RunEnd(
            status=status,
            finish_reason={"completed": "stop", "failed": "error", "cancelled": "cancelled"}.get(status, "length"),
            usage=so.Usage(input_tokens=20, output_tokens=9, reasoning_tokens=3),
            **e,
        ),
    ]
    # block events are derived by the encoders themselves (streamops.operators.blocks)
    assert {ev.kind for ev in evs} == set(EVENT_KINDS) - {"block-start", "block-end"}  # type: ignore[attr-defined]
    return evs


STATUSES: list[so.RunStatus] = ["completed", "failed", "cancelled", "max_steps", "length", "budget_exceeded"]
