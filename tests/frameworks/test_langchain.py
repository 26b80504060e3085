"""LangChain / LangGraph runs through streamops.adapters.langchain: a LangGraph ReAct graph
over a fake tool-calling chat model (tests/frameworks/lc_fake.py), and langchain-core's own
GenericFakeChatModel (no key, no network)."""

from __future__ import annotations

import warnings
from contextlib import aclosing
from typing import Any

import anyio
import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from streamops.adapters.langchain import from_langchain

import streamops as so

from .lc_fake import FakeToolModel

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """LangChain's astream_events and LangGraph run on asyncio only (asyncio tasks inside)."""
    return "asyncio"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def boom(a: int) -> int:
    """Always fails."""
    raise ValueError("boom failed")


def _graph(model: FakeToolModel) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent's own deprecation notice
        from langgraph.prebuilt import ToolNode, create_react_agent

        return create_react_agent(model, ToolNode([add, boom], handle_tool_errors=True))


def _script() -> list[AIMessage]:
    calls = [
        {"name": "add", "args": {"a": 1, "b": 2}, "id": "c-add"},
        {"name": "boom", "args": {"a": 1}, "id": "c-boom"},
    ]
    return [AIMessage(content="Let me compute.", tool_calls=calls), AIMessage(content="The answer is 3")]


async def test_langgraph_run_two_parallel_tools_error_reasoning_usage() -> None:
    graph = _graph(FakeToolModel(script=_script(), reasoning={0: "think it over"}))
    events = await from_langchain(graph.astream_events({"messages": [("user", "1+2?")]}, version="v2")).collect()
    kinds = [e.kind for e in events]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end"
    assert [e.seq for e in events] == list(range(len(events)))
    assert kinds.count("step-start") == 2 and kinds.count("step-end") == 2
    assert "".join(e.delta for e in events if isinstance(e, so.ReasoningDelta)) == "think it over"
    assert "".join(e.delta for e in events if isinstance(e, so.TextDelta)) == "Let me compute.The answer is 3"
    ends = {e.call_id: e for e in events if isinstance(e, so.ToolCallEnd)}
    assert set(ends) == {"c-add", "c-boom"}
    for cid, end in ends.items():
        streamed = "".join(e.delta for e in events if isinstance(e, so.ToolCallDelta) and e.call_id == cid)
        assert streamed == end.arguments
    assert ends["c-add"].arguments == '{"a": 1, "b": 2}'
    results = [(e.call_id, e.name, e.result) for e in events if isinstance(e, so.ToolResult)]
    assert results == [("c-add", "add", "3")]
    errors = [(e.call_id, e.name, e.message, e.error_type) for e in events if isinstance(e, so.ToolError)]
    assert ("c-boom", "boom", "boom failed", "ValueError") in errors
    step_ends = [e for e in events if isinstance(e, so.StepEnd)]
    assert [s.finish_reason for s in step_ends] == ["tool_calls", "stop"]
    usage = [e for e in events if isinstance(e, so.UsageEvent)]
    assert [(u.usage.input_tokens, u.usage.output_tokens, u.cumulative) for u in usage] == [
        (10, 5, False),
        (11, 6, False),
    ]
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.status == "completed" and end.finish_reason == "stop"
    assert end.usage is not None and (end.usage.input_tokens, end.usage.output_tokens) == (21, 11)
    final = [e for e in events if isinstance(e, so.FinalOutput)]
    assert len(final) == 1 and final[0].value["messages"][-1].content == "The answer is 3"
    assert all(e.raw is not None for e in events if not isinstance(e, so.RawEvent | so.RunEnd))


async def test_generic_fake_chat_model_text() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello  there,\n world")]))
    events = await from_langchain(model.astream_events("hi", version="v2")).collect()
    assert "".join(e.delta for e in events if isinstance(e, so.TextDelta)) == "hello  there,\n world"
    assert isinstance(events[-1], so.RunEnd) and events[-1].status == "completed"


async def test_structured_output_as_tool_call() -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    call = {"name": "City", "args": {"name": "Lyon", "population": 522000}, "id": "c-city"}
    model = FakeToolModel(script=[AIMessage(content="", tool_calls=[call])])
    chain = model.with_structured_output(City, method="function_calling")
    events = await from_langchain(chain.astream_events("a city", version="v2")).collect()
    ends = [e for e in events if isinstance(e, so.ToolCallEnd)]
    assert len(ends) == 1 and City.model_validate_json(ends[0].arguments) == City(name="Lyon", population=522000)
    final = [e for e in events if isinstance(e, so.FinalOutput)]
    assert len(final) == 1 and final[0].value == City(name="Lyon", population=522000)


async def test_error_mid_stream_keeps_events_before() -> None:
    model = FakeToolModel(script=[AIMessage(content="partial answer here")], fail_at=0)
    events = await from_langchain(model.astream_events("hi", version="v2")).collect()
    assert "".join(e.delta for e in events if isinstance(e, so.TextDelta)) == "partial"
    err = [e for e in events if isinstance(e, so.ErrorEvent)]
    assert len(err) == 1 and err[0].error_type == "RuntimeError" and "connection lost" in err[0].message
    assert isinstance(events[-1], so.RunEnd) and events[-1].status == "failed"


async def test_break_mid_run_closes_the_run() -> None:
    model = FakeToolModel(script=[AIMessage(content=" ".join(["word"] * 200))])
    seen = 0
    with anyio.fail_after(10):
        async with aclosing(from_langchain(model.astream_events("hi", version="v2")).__aiter__()) as it:
            async for ev in it:
                if isinstance(ev, so.TextDelta):
                    seen += 1
                    if seen == 3:
                        break
    await anyio.sleep(0.05)
    sent = model.sent
    await anyio.sleep(0.05)
    # the model's stream was closed: it stopped far before its 200 words and sends no more
    assert model.sent == sent < 50


async def test_not_an_event_dict_is_a_format_error() -> None:
    async def junk() -> Any:
        yield {"event": "on_chain_start", "name": "x", "run_id": "r", "parent_ids": [], "data": {}}
        yield 42

    with pytest.raises(so.errors.StreamFormatError, match="astream_events"):
        await from_langchain(junk()).collect()


# --------------------------------------------------------------------------- LangGraph astream
MODES = ["messages", "updates", "custom"]


async def test_langgraph_astream_modes_steps_tools_and_usage() -> None:
    from streamops.adapters import from_run

    graph = _graph(FakeToolModel(script=_script(), reasoning={0: "think it over"}))
    items = graph.astream({"messages": [("user", "1+2?")]}, stream_mode=MODES, subgraphs=True)
    events = await from_run(items).collect()  # picks the LangGraph adapter
    kinds = [e.kind for e in events]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end"
    assert [e.seq for e in events] == list(range(len(events)))
    assert kinds.count("step-start") == 2 and kinds.count("step-end") == 2
    assert "".join(e.delta for e in events if isinstance(e, so.ReasoningDelta)) == "think it over"
    assert "".join(e.delta for e in events if isinstance(e, so.TextDelta)) == "Let me compute.The answer is 3"
    ends = {e.call_id: (e.name, e.arguments) for e in events if isinstance(e, so.ToolCallEnd)}
    assert ends == {"c-add": ("add", '{"a": 1, "b": 2}'), "c-boom": ("boom", '{"a": 1}')}
    assert [(e.call_id, e.result) for e in events if isinstance(e, so.ToolResult)] == [("c-add", "3")]
    errors = [e for e in events if isinstance(e, so.ToolError)]
    assert [e.call_id for e in errors] == ["c-boom"] and "boom failed" in errors[0].message
    assert [e.finish_reason for e in events if isinstance(e, so.StepEnd)] == ["tool_calls", "stop"]
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.usage is not None
    assert (end.usage.input_tokens, end.usage.output_tokens) == (21, 11)
    assert any(isinstance(e, so.RawEvent) and e.event_type == "updates" for e in events)


async def test_langgraph_subgraph_events_carry_its_path() -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    inner = _graph(FakeToolModel(script=[AIMessage(content="inner answer")]))
    outer = StateGraph(MessagesState)
    outer.add_node("researcher", inner)
    outer.add_edge(START, "researcher")
    app = outer.compile()
    items = app.astream({"messages": [("user", "hi")]}, stream_mode=MODES, subgraphs=True)
    events = await from_run_graph(items)
    texts = [e for e in events if isinstance(e, so.TextDelta)]
    assert "".join(e.delta for e in texts) == "inner answer"
    assert {e.agent for e in texts} == {"researcher"}
    root = events[0].run_id
    top = [e for e in events if e.run_id == root]
    sub = [e for e in events if e.run_id != root]
    assert isinstance(top[0], so.RunStart) and isinstance(top[-1], so.RunEnd) and top[-1].status == "completed"
    assert {e.agent for e in top} == {""} and {e.parent_run_id for e in top} == {""}
    # the subgraph is a run of its own: its task id as run_id, the graph's run as parent
    assert len({e.run_id for e in sub}) == 1 and {(e.agent, e.parent_run_id) for e in sub} == {("researcher", root)}
    assert isinstance(sub[0], so.RunStart) and isinstance(sub[-1], so.RunEnd) and sub[-1].status == "completed"
    assert [e.seq for e in sub] == list(range(len(sub))) and [e.seq for e in top] == list(range(len(top)))
    # it ends when the graph reports the node done, before that update
    done = next(e for e in top if isinstance(e, so.RawEvent) and "researcher" in e.data[2])
    assert events.index(sub[-1]) < events.index(done)


async def from_run_graph(items: Any) -> list[Any]:
    from streamops.adapters.langchain import from_langgraph

    return await from_langgraph(items).collect()
