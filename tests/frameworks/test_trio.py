"""The agent frameworks on trio: none of them runs there (December 2026 versions), each for the
same reason: it starts its run with ``asyncio.create_task`` / ``asyncio.get_running_loop()``,
which raise ``RuntimeError: no running event loop`` under trio. These tests pin where it fails
and that the adapters report it as a typed error (an ``ErrorEvent`` and a failed ``RunEnd``),
never a hang or a silent empty stream. If a framework starts running on trio, its test here
fails: then move its tests to both backends."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic_ai")
pytest.importorskip("langgraph")
pytest.importorskip("agents")

from agents import Agent as OAAgent
from agents import Runner
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from streamops.adapters import from_run

import streamops as so

pytestmark = [
    pytest.mark.anyio,
    # the frameworks' coroutines that never started are reported when collected
    pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


def _failed_for_no_asyncio_loop(events: list[so.BaseEvent]) -> None:
    assert [e.kind for e in events] == ["run-start", "error", "run-end"]
    err, end = events[1], events[2]
    assert isinstance(err, so.ErrorEvent) and err.error_type == "RuntimeError"
    assert err.message == "no running event loop"
    assert isinstance(end, so.RunEnd) and end.status == "failed"


async def test_pydantic_ai_run_task_is_an_asyncio_task() -> None:
    # AgentRunEvents._ensure_started -> asyncio.create_task(run_agent())
    agent = Agent(TestModel(), name="t")
    _failed_for_no_asyncio_loop(await from_run(agent.run_stream_events("hi")).collect())


async def test_langchain_astream_events_runs_its_producer_as_an_asyncio_task() -> None:
    # langchain_core.callbacks.manager: asyncio.create_task(coro, context=ctx)
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello")]))
    _failed_for_no_asyncio_loop(await from_run(model.astream_events("hi", version="v2")).collect())


async def test_langgraph_astream_needs_the_asyncio_loop() -> None:
    from langgraph.graph import START, MessagesState, StateGraph

    g = StateGraph(MessagesState)
    g.add_node("n", lambda s: {"messages": [AIMessage(content="x")]})
    g.add_edge(START, "n")
    # langgraph.pregel.main: astream -> asyncio.get_running_loop()
    events = await from_run(g.compile().astream({"messages": []}, stream_mode=["updates"])).collect()
    _failed_for_no_asyncio_loop(events)


async def test_openai_agents_run_streamed_raises_before_any_adapter() -> None:
    # agents.run: Runner.run_streamed -> asyncio.create_task(run loop), in the caller
    with pytest.raises(RuntimeError, match="no running event loop"):
        Runner.run_streamed(OAAgent(name="a"), "hi")
