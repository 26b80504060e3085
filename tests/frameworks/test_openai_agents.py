"""OpenAI Agents SDK runs through streamops.adapters.openai_agents: the SDK's real HTTP client
(openai.AsyncOpenAI) against a server on 127.0.0.1 replaying recorded Responses streams
(tests/fixtures/recorded/openai/), no key, no network."""

from __future__ import annotations

import dataclasses
import json
from contextlib import aclosing
from typing import Any

import anyio
import anyio.abc
import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI
from pydantic import BaseModel
from streamops.adapters import SubRuns, from_run
from streamops.adapters.openai_agents import from_openai_agents

import streamops as so

from ..conftest import RECORDED
from ._replay import replay

pytestmark = pytest.mark.anyio
set_tracing_disabled(True)


@pytest.fixture
def anyio_backend() -> str:
    """The Agents SDK runs its run loop as an asyncio task: asyncio only."""
    return "asyncio"


def _body(name: str) -> bytes:
    return (RECORDED / "openai" / f"{name}.sse").read_bytes()


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    raise ValueError("multiply is broken")


def _agent(base_url: str) -> Agent[Any]:
    client = AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    return Agent(name="calc", model=OpenAIResponsesModel("gpt-4o", client), tools=[add, multiply])


async def test_two_model_calls_parallel_tools_and_a_tool_error() -> None:
    bodies = [_body("responses_parallel_function_calls_gpt4o_fantasy"), _body("responses_after_tool_utf8_llm")]
    async with replay(bodies) as server:
        run = Runner.run_streamed(_agent(server.base_url), "2+3 and 2*3")
        events = await from_openai_agents(run).collect()
    assert len(server.targets) == 2 and all(t == "/v1/responses" for t in server.targets)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end"
    assert [e.seq for e in events] == list(range(len(events)))
    assert kinds.count("step-start") == 2 and kinds.count("step-end") == 2
    ends = {e.call_id: e for e in events if isinstance(e, so.ToolCallEnd)}
    assert {(e.name, e.arguments) for e in ends.values()} == {("add", '{"a":2,"b":3}'), ("multiply", '{"a":2,"b":3}')}
    results = {e.call_id: e.result for e in events if isinstance(e, so.ToolResult)}
    add_id = next(c for c, e in ends.items() if e.name == "add")
    mul_id = next(c for c, e in ends.items() if e.name == "multiply")
    assert results[add_id] == 5
    # the SDK hands a failing tool's error to the model as its output (a generic message)
    assert "error occurred while running the tool" in str(results[mul_id])
    # the second model call is kept: its text is the run's answer
    text = "".join(e.delta for e in events if isinstance(e, so.TextDelta))
    assert text == "1231 × 2331 = **2,869,461**"
    finals = [e for e in events if isinstance(e, so.FinalOutput)]
    assert [f.value for f in finals] == [text]
    steps = [e for e in events if isinstance(e, so.StepEnd)]
    assert [s.finish_reason for s in steps] == ["tool_calls", "stop"]
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.status == "completed"
    assert end.usage is not None and (end.usage.input_tokens, end.usage.output_tokens) == (104 + 94, 51 + 18)
    handoffs = [e for e in events if isinstance(e, so.AgentHandoff)]
    assert [(h.from_agent, h.to_agent, h.agent) for h in handoffs] == [("", "calc", "")]  # the run's first agent
    assert all(e.agent == "calc" for e in events if e.seq > handoffs[0].seq)
    assert all(e.parent_run_id == "" and e.run_id == events[0].run_id for e in events)


async def test_provider_error_mid_run_is_an_error_event() -> None:
    bodies = [_body("responses_error_insufficient_quota_vercel")]
    async with replay(bodies) as server:
        events = await from_run(Runner.run_streamed(_agent(server.base_url), "hi")).collect()  # picks openai-agents
    errors = [e for e in events if isinstance(e, so.ErrorEvent)]
    assert errors and any("quota" in (e.message + (e.code or "")) for e in errors)
    assert isinstance(events[-1], so.RunEnd) and events[-1].status == "failed"


async def test_break_mid_run_cancels_and_closes_the_http_request() -> None:
    body = _body("responses_after_tool_utf8_llm")
    cut = body.index(b"response.output_text.delta") + 400
    async with replay([body], hang_after=cut) as server:
        run = Runner.run_streamed(_agent(server.base_url), "hi")
        with anyio.fail_after(10):
            async with aclosing(from_openai_agents(run).__aiter__()) as it:
                async for ev in it:
                    if isinstance(ev, so.TextDelta):
                        break
            await server.closed_event.wait()
    assert server.closed == 1
    assert run.is_complete


# ----------------------------------------------------------------------------- nesting


class _AB(BaseModel):
    a: int
    b: int


class _Country(BaseModel):
    country: str


def _client(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)


async def test_agents_used_as_tools_stream_their_own_runs_inside_the_parent() -> None:
    """Two agents used as tools, called in parallel by the planner's first model call (the
    recorded parallel add/multiply calls): each streams its own run inside the planner's."""
    story = _body("responses_story_utf8_oll")
    bodies = [
        _body("responses_parallel_function_calls_gpt4o_fantasy"),
        story,
        story,
        _body("responses_after_tool_utf8_llm"),
    ]
    async with replay(bodies) as server:
        client = _client(server.base_url)
        sub = SubRuns()
        adder = Agent(name="adder", model=OpenAIResponsesModel("gpt-4o", client))
        multiplier = Agent(name="multiplier", model=OpenAIResponsesModel("gpt-4o", client))
        planner = Agent(
            name="planner",
            model=OpenAIResponsesModel("gpt-4o", client),
            tools=[
                adder.as_tool("add", "Add two integers.", parameters=_AB, on_stream=sub),
                multiplier.as_tool("multiply", "Multiply two integers.", parameters=_AB, on_stream=sub),
            ],
        )
        events = await from_run(Runner.run_streamed(planner, "2+3 and 2*3"), sub_runs=sub).collect()
    assert len(server.targets) == 4
    root = events[0].run_id
    top = [e for e in events if e.run_id == root]
    assert [e.seq for e in top] == list(range(len(top)))  # the parent's numbering is untouched
    assert all(e.parent_run_id == "" for e in top)
    assert "".join(e.delta for e in top if isinstance(e, so.TextDelta)) == "1231 × 2331 = **2,869,461**"
    ends = {e.name: e.call_id for e in top if isinstance(e, so.ToolCallEnd)}
    results = {e.call_id: e for e in top if isinstance(e, so.ToolResult)}
    story_text = json.loads((RECORDED / "openai" / "responses_story_utf8_oll.expected.json").read_text())["text"]
    subs: dict[str, list[so.BaseEvent]] = {}
    for e in events:
        if e.run_id != root:
            subs.setdefault(e.run_id, []).append(e)
    assert len(subs) == 2
    by_agent = {evs[0].agent: evs for evs in subs.values()}
    assert set(by_agent) == {"planner/adder", "planner/multiplier"}
    for name, tool in (("adder", "add"), ("multiplier", "multiply")):
        evs = by_agent[f"planner/{name}"]
        assert all(e.parent_run_id == root for e in evs)
        assert all(e.agent == f"planner/{name}" for e in evs if not isinstance(e, so.AgentHandoff))
        assert [e.seq for e in evs] == list(range(len(evs)))  # each sub-run numbered on its own
        assert isinstance(evs[0], so.RunStart) and isinstance(evs[-1], so.RunEnd) and evs[-1].status == "completed"
        assert evs[-1].usage is not None and evs[-1].usage.output_tokens is not None
        assert "".join(e.delta for e in evs if isinstance(e, so.TextDelta)) == story_text
        # the sub-run ends before the parent's result of the call that started it
        result = results[ends[tool]]
        assert events.index(evs[-1]) < events.index(result)
        assert events.index(evs[0]) > next(i for i, e in enumerate(events) if isinstance(e, so.ToolCallEnd))
        assert story_text in str(result.result)
    # filters by path: the planner alone, or with its sub-agents
    alone = await (so.Stream.from_iterable(events) | so.of_agent("planner", nested=False)).collect()
    assert {e.run_id for e in alone} == {root}
    assert len(await (so.Stream.from_iterable(events) | so.of_agent("planner/adder")).collect()) == len(
        by_agent["planner/adder"]
    )
    # and the whole nested stream survives JSON
    typed = [dataclasses.replace(e, raw=None) for e in events if not isinstance(e, so.RawEvent)]
    assert [so.from_json(so.to_json(e)) for e in typed] == typed


async def test_a_handoff_is_a_typed_agent_handoff_event() -> None:
    """The triage agent's model calls its handoff tool (a recorded function call, renamed to
    the SDK's transfer tool); the billing agent answers."""
    call = _body("responses_function_call_pyd").replace(b"get_capital", b"transfer_to_billing")
    async with replay([call, _body("responses_after_tool_utf8_llm")]) as server:
        client = _client(server.base_url)
        billing = Agent(name="billing", model=OpenAIResponsesModel("gpt-4o", client))
        triage = Agent(name="triage", model=OpenAIResponsesModel("gpt-4o", client), handoffs=[billing])
        events = await from_run(Runner.run_streamed(triage, "my bill"), agent="desk").collect()
    handoffs = [e for e in events if isinstance(e, so.AgentHandoff)]
    assert [(h.agent, h.from_agent, h.to_agent) for h in handoffs] == [
        ("desk", "", "desk/triage"),
        ("desk/triage", "desk/triage", "desk/billing"),
    ]
    assert so.from_json(so.to_json(dataclasses.replace(handoffs[1], raw=None))) == handoffs[1]
    after = events[events.index(handoffs[1]) + 1 :]
    text = [e for e in after if isinstance(e, so.TextDelta)]
    assert text and all(e.agent == "desk/billing" for e in after)
    assert "".join(e.delta for e in text) == "1231 × 2331 = **2,869,461**"
    before = [e for e in events[: events.index(handoffs[1])] if e.seq > handoffs[0].seq]
    assert any(isinstance(e, so.ToolCallEnd) and e.name == "transfer_to_billing" for e in before)
    assert all(e.agent == "desk/triage" for e in before)
    assert len({e.run_id for e in events}) == 1 and all(e.parent_run_id == "" for e in events)
