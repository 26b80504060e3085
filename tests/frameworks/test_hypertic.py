"""hypertic runs through streamops.adapters.hypertic: hypertic's own OpenAIChat model (the
openai SDK's real HTTP client) against a server on 127.0.0.1 replaying recorded OpenAI Chat
Completions streams (tests/fixtures/recorded/openai/), no key, no network."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

pytest.importorskip("hypertic")

from hypertic.agents import Agent
from hypertic.models.openai import OpenAIChat
from hypertic.tools import tool
from openai import AsyncOpenAI
from streamops.adapters import from_run
from streamops.adapters.hypertic import from_hypertic

import streamops as so

from ..conftest import RECORDED
from ._replay import replay

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """hypertic runs its tools with asyncio.gather and loop.run_in_executor: asyncio only."""
    return "asyncio"


def _body(name: str) -> bytes:
    return (RECORDED / "openai" / f"{name}.sse").read_bytes()


def _expected(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / "openai" / f"{name}.expected.json").read_text(encoding="utf-8"))


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def broken(a: int, b: int) -> int:
    """Always fails."""
    raise ValueError("broken tool")


def _agent(base_url: str, tools: list[Any], output_type: Any = None) -> Agent:
    model = OpenAIChat(api_key="test-key", model="gpt-4o")
    model.async_client = AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)  # hypertic's own client
    return Agent(model=model, tools=tools, output_type=output_type)


async def test_two_model_calls_with_parallel_tools() -> None:
    bodies = [_body("chat_gpt4o_parallel_tools_fantasy"), _body("chat_after_tool_text_llm")]
    async with replay(bodies) as server:
        events = await from_run(_agent(server.base_url, [add, multiply]).astream("2+3 and 2*3")).collect()
    assert len(server.targets) == 2 and all(t == "/v1/chat/completions" for t in server.targets)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end"
    assert [e.seq for e in events] == list(range(len(events)))
    steps = [e for e in events if isinstance(e, so.StepEnd)]
    assert [(s.step, s.finish_reason, s.raw_finish_reason) for s in steps] == [
        (0, "tool_calls", "tool_calls"),
        (1, "stop", "stop"),
    ]
    calls = _expected("chat_gpt4o_parallel_tools_fantasy")["tool_calls"]
    ends = [e for e in events if isinstance(e, so.ToolCallEnd)]
    assert [(e.call_id, e.name, json.loads(e.arguments)) for e in ends] == [
        (c["id"], c["name"], json.loads(c["arguments"])) for c in calls
    ]
    results = {e.call_id: (e.name, e.result) for e in events if isinstance(e, so.ToolResult)}
    assert results == {calls[0]["id"]: ("add", "5"), calls[1]["id"]: ("multiply", "6")}
    # the calls and results sit in the first step, before the second model call
    order = [kinds.index(k) for k in ("tool-call-end", "step-end", "tool-result", "text-delta")]
    assert order == sorted(order)
    text = _expected("chat_after_tool_text_llm")["text"]
    # hypertic drops whitespace-only content deltas itself: compare without spaces
    got = "".join(e.delta for e in events if isinstance(e, so.TextDelta))
    assert got.replace(" ", "") == text.replace(" ", "")
    finals = [e for e in events if isinstance(e, so.FinalOutput)]
    assert [f.value for f in finals] == [got]
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.status == "completed" and end.raw_finish_reason == "stop"
    # hypertic's own total: it stops reading the tool-call response at its finish reason, before
    # the usage chunk after it, so only the last call's usage (87 in, 26 out) is counted
    assert end.usage == so.Usage(input_tokens=87, output_tokens=26)


async def test_a_tool_error_ends_the_run_as_a_typed_error_with_the_events_before_it() -> None:
    async with replay([_body("chat_tool_use_llm")]) as server:
        events = await from_hypertic(_agent(server.base_url, [_renamed(broken, "multiply")]).astream("x")).collect()
    kinds = [e.kind for e in events]
    assert "tool-call-end" in kinds  # kept
    errors = [e for e in events if isinstance(e, so.ErrorEvent)]
    # hypertic re-raises the tool's ToolExecutionError inside its model call as a plain Exception
    assert len(errors) == 1 and errors[0].error_type == "Exception" and "broken tool" in errors[0].message
    assert isinstance(events[-1], so.RunEnd) and events[-1].status == "failed"


def _renamed(t: Any, name: str) -> Any:
    @tool(name=name, description="Multiply two integers.")
    def fn(a: int, b: int) -> int:
        return t(a=a, b=b)  # type: ignore[no-any-return]

    return fn


class Answer(BaseModel):
    answer: str


async def test_structured_output_and_a_provider_error() -> None:
    async with replay([_body("chat_json_schema_content_openai_python")]) as server:
        content = _expected("chat_json_schema_content_openai_python")["text"]
        model = _model_for(content)
        events = await from_run(_agent(server.base_url, [], output_type=model).astream("q")).collect()
    finals = [e for e in events if isinstance(e, so.FinalOutput)]
    assert [f.value for f in finals] == [json.loads(content)]
    assert not any(isinstance(e, so.TextDelta) for e in events)  # hypertic streams no text with an output type
    async with replay([b'data: {"error": {"message": "quota exceeded", "type": "insufficient_quota"}}\n\n']) as server:
        events = await from_run(_agent(server.base_url, []).astream("q")).collect()
    assert [e.kind for e in events] == ["run-start", "error", "run-end"]
    assert "quota exceeded" in events[1].message  # type: ignore[attr-defined]


def _model_for(content: str) -> Any:
    from pydantic import create_model

    data = json.loads(content)
    return create_model("Out", **{k: (type(v), ...) for k, v in data.items()})


async def test_break_mid_run_returns_at_once_and_closes_the_hypertic_stream() -> None:
    """Breaking out closes hypertic's ``astream()`` generator at once. hypertic does not close
    the generators it iterates inside (its model's SDK stream): its HTTP request stays open
    until they are garbage-collected, which the adapter cannot reach (docs/frameworks.md)."""
    body = _body("chat_after_tool_text_llm")
    cut = body.index(b'" of"')  # "The" and " result" arrive whole, then the server waits
    async with replay([body], hang_after=cut) as server:
        stream = _agent(server.base_url, []).astream("q")
        got: list[so.BaseEvent] = []
        with anyio.fail_after(5):
            async with aclosing(from_run(stream).__aiter__()) as it:
                async for ev in it:
                    got.append(ev)
                    if isinstance(ev, so.TextDelta):
                        break
        assert [e.kind for e in got] == ["run-start", "step-start", "text-delta"]
        assert stream.ag_frame is None  # hypertic's generator was closed, not left suspended
