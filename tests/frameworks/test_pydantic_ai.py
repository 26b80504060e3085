"""pydantic-ai runs through streamops.adapters.pydantic_ai, with pydantic-ai's own
FunctionModel / TestModel (no key, no network)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

pytest.importorskip("pydantic_ai")

import anyio.lowlevel
from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import (
    AgentInfo,
    DeltaThinkingPart,
    DeltaToolCall,
    FunctionModel,
)
from pydantic_ai.models.test import TestModel
from streamops.adapters import SubRuns, from_run
from streamops.adapters.pydantic_ai import from_pydantic_ai

import streamops as so

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """pydantic-ai runs on asyncio only (its run task is an asyncio task: on trio the run
    fails at its first step)."""
    return "asyncio"


def _kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


async def _script(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    """Step 0: thinking, text, two tool calls (add, fail) with arguments in pieces; step 1: text."""
    if len(messages) == 1:
        yield {0: DeltaThinkingPart(content="Let me ")}
        yield {0: DeltaThinkingPart(content="think.", signature="sig-1")}
        yield "Computing"
        yield " now."
        yield {2: DeltaToolCall(name="add", json_args='{"a": 1,', tool_call_id="call-add")}
        yield {2: DeltaToolCall(json_args=' "b": 2}')}
        yield {3: DeltaToolCall(name="fail", json_args='{"x": 0}', tool_call_id="call-fail")}
    else:
        yield "The sum "
        yield "is 3."


def _agent() -> Agent[None, str]:
    agent = Agent(FunctionModel(stream_function=_script), name="calc")

    @agent.tool_plain
    async def add(a: int, b: int) -> int:
        return a + b

    @agent.tool_plain
    async def fail(x: int) -> int:
        raise ModelRetry("x must be positive")

    return agent


async def test_multi_step_run_with_parallel_tools_error_and_reasoning() -> None:
    agent = _agent()
    events = await from_pydantic_ai(agent.run_stream_events("add 1 and 2")).collect()
    kinds = _kinds(events)
    assert kinds[0] == "run-start" and kinds[-1] == "run-end"
    assert [e.seq for e in events] == list(range(len(events)))
    assert kinds.count("step-start") == 2 and kinds.count("step-end") == 2
    reasoning = "".join(e.delta for e in events if isinstance(e, so.ReasoningDelta))
    assert reasoning == "Let me think."
    sig = [e for e in events if isinstance(e, so.ReasoningSignature)]
    assert [s.signature for s in sig] == ["sig-1"]
    text = "".join(e.delta for e in events if isinstance(e, so.TextDelta))
    assert text == "Computing now.The sum is 3."
    ends = {e.call_id: e for e in events if isinstance(e, so.ToolCallEnd)}
    assert ends["call-add"].arguments == '{"a": 1, "b": 2}' and ends["call-add"].name == "add"
    deltas = "".join(e.delta for e in events if isinstance(e, so.ToolCallDelta) and e.call_id == "call-add")
    assert deltas == ends["call-add"].arguments
    results = [e for e in events if isinstance(e, so.ToolResult)]
    assert [(r.call_id, r.result) for r in results] == [("call-add", 3)]
    errors = [e for e in events if isinstance(e, so.ToolError)]
    assert [(r.call_id, r.name, r.message, r.error_type) for r in errors] == [
        ("call-fail", "fail", "x must be positive", "retried")
    ]
    # both tool calls end before either result (they ran in parallel, after the step)
    assert kinds.index("step-end") < kinds.index("tool-result")
    final = [e for e in events if isinstance(e, so.FinalOutput)]
    assert [f.value for f in final] == ["The sum is 3."]
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.status == "completed" and end.usage is not None
    assert end.usage.input_tokens and end.usage.output_tokens
    assert all(e.raw is not None for e in events if not isinstance(e, so.RunStart | so.RawEvent))
    assert all(e.data is not None for e in events if isinstance(e, so.RawEvent))


class City(BaseModel):
    name: str
    population: int


async def test_structured_output_with_test_model() -> None:
    agent = Agent(TestModel(), output_type=City)
    events = await from_pydantic_ai(agent.run_stream_events("a city")).collect()
    final = [e for e in events if isinstance(e, so.FinalOutput)]
    assert len(final) == 1 and isinstance(final[0].value, City)
    # the output tool call is streamed as a tool call with its JSON arguments
    ends = [e for e in events if isinstance(e, so.ToolCallEnd)]
    assert ends and City.model_validate_json(ends[-1].arguments) == final[0].value


async def test_error_mid_stream_keeps_events_before() -> None:
    async def broken(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "partial "
        yield "answer"
        raise ConnectionError("upstream reset")

    agent = Agent(FunctionModel(stream_function=broken))
    events = await from_pydantic_ai(agent.run_stream_events("hi")).collect()
    text = "".join(e.delta for e in events if isinstance(e, so.TextDelta))
    assert text == "partial answer"
    err = [e for e in events if isinstance(e, so.ErrorEvent)]
    assert len(err) == 1 and err[0].error_type == "ConnectionError" and "upstream reset" in err[0].message
    assert isinstance(events[-1], so.RunEnd) and events[-1].status == "failed"


async def test_break_mid_run_cancels_the_run() -> None:
    state = {"closed": False, "sent": 0}

    async def endless(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        try:
            while True:
                state["sent"] += 1
                yield "tick "
                await anyio.lowlevel.checkpoint()
        finally:
            state["closed"] = True

    agent = Agent(FunctionModel(stream_function=endless))
    seen = 0
    stream = from_pydantic_ai(agent.run_stream_events("hi"))
    with anyio.fail_after(10):
        async with aclosing(stream.__aiter__()) as it:
            async for ev in it:
                if isinstance(ev, so.TextDelta):
                    seen += 1
                    if seen == 3:
                        break
    await anyio.sleep(0.05)
    assert state["closed"], "the model stream of the run was not closed"
    sent = state["sent"]
    await anyio.sleep(0.05)
    assert state["sent"] == sent, "the run went on after the consumer stopped"


async def test_not_a_run_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="pydantic-ai"):
        await from_pydantic_ai(object()).collect()


# ----------------------------------------------------------------------------- delegation


async def _planner(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    if len(messages) == 1:  # two delegations in parallel
        yield {0: DeltaToolCall(name="research", json_args='{"topic": "tides"}', tool_call_id="call-1")}
        yield {1: DeltaToolCall(name="research", json_args='{"topic": "moons"}', tool_call_id="call-2")}
    else:
        yield "Both "
        yield "researched."


async def _researcher(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    prompt = str(messages[0].parts[-1].content)  # type: ignore[attr-defined]
    yield {0: DeltaThinkingPart(content=f"About {prompt}.")}
    for word in ["Notes ", "on ", prompt]:
        yield word


async def test_an_agent_run_by_a_tool_streams_its_own_run_inside_the_parent() -> None:
    sub = SubRuns()
    researcher = Agent(FunctionModel(stream_function=_researcher), name="researcher")
    planner = Agent(FunctionModel(stream_function=_planner), name="planner")

    @planner.tool
    async def research(ctx: RunContext[None], topic: str) -> str:
        result = await researcher.run(topic, usage=ctx.usage, event_stream_handler=sub.pydantic_ai(ctx))
        return result.output

    events = await from_run(planner.run_stream_events("research"), sub_runs=sub, agent="planner").collect()
    root = events[0].run_id
    top = [e for e in events if e.run_id == root]
    assert [e.seq for e in top] == list(range(len(top))) and all(e.parent_run_id == "" for e in top)
    assert "".join(e.delta for e in top if isinstance(e, so.TextDelta)) == "Both researched."
    results = {e.call_id: e for e in top if isinstance(e, so.ToolResult)}
    assert {c: r.result for c, r in results.items()} == {"call-1": "Notes on tides", "call-2": "Notes on moons"}
    subs: dict[str, list[so.BaseEvent]] = {}
    for e in events:
        if e.run_id != root:
            subs.setdefault(e.run_id, []).append(e)
    assert len(subs) == 2
    for evs in subs.values():
        assert {(e.agent, e.parent_run_id) for e in evs} == {("planner/researcher", root)}
        assert [e.seq for e in evs] == list(range(len(evs)))
        assert isinstance(evs[0], so.RunStart) and isinstance(evs[-1], so.RunEnd) and evs[-1].status == "completed"
        text = "".join(e.delta for e in evs if isinstance(e, so.TextDelta))
        reasoning = "".join(e.delta for e in evs if isinstance(e, so.ReasoningDelta))
        topic = text.removeprefix("Notes on ")
        assert topic in ("tides", "moons") and reasoning == f"About {topic}."
        call_id = "call-1" if topic == "tides" else "call-2"
        assert events.index(evs[-1]) < events.index(results[call_id])  # ended before its call's result
    assert {"".join(e.delta for e in evs if isinstance(e, so.TextDelta)) for evs in subs.values()} == {
        "Notes on tides",
        "Notes on moons",
    }
    only = await (so.Stream.from_iterable(events) | so.of_agent("planner/researcher")).collect()
    assert len(only) == sum(len(v) for v in subs.values())
