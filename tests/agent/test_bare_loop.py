"""``async for event in agent.stream(prompt)`` with tools, without ``iterate()`` (issue 15,
item 11): no ``TaskHostRequired``, the step's calls still concurrent, no task left behind."""

from __future__ import annotations

import anyio
import pytest
from streamops.adapters.replay import ReplayModel

import streamops as so
from streamops.agent import Agent
from streamops.tools import tool
from tests._tasks import live_tasks
from tests.conftest import RECORDED

OPENAI = RECORDED / "openai"
TOOL_STEPS = [OPENAI / "chat_parallel_tools_openai_python.sse", OPENAI / "chat_after_tool_text_llm.sse"]


def _tools(started: list[str], both: list[anyio.Event]) -> list[so.Tool[object]]:
    async def meet(name: str) -> None:
        started.append(name)
        if len(started) == 2:
            both[0].set()
        with anyio.fail_after(5):  # run one after the other, neither would see the other start
            await both[0].wait()

    @tool
    async def GetWeatherArgs(city: str, country: str, units: str = "c") -> dict[str, object]:  # noqa: N802
        """Weather in a city."""
        await meet("weather")
        return {"city": city, "temperature": 12}

    @tool
    async def get_stock_price(ticker: str, exchange: str) -> float:
        """A stock's price."""
        await meet("stock")
        return 187.5

    return [GetWeatherArgs, get_stock_price]  # type: ignore[list-item]


@pytest.mark.anyio
async def test_bare_async_for_runs_the_tools_concurrently_and_finishes() -> None:
    started: list[str] = []
    both = [anyio.Event()]
    agent = Agent(ReplayModel(TOOL_STEPS), tools=_tools(started, both))
    events: list[so.BaseEvent] = []
    with anyio.fail_after(10):
        async for ev in agent.stream("weather and stock"):
            events.append(ev)
    assert not [e for e in events if isinstance(e, so.ErrorEvent)], events
    assert sorted(started) == ["stock", "weather"]
    results = {e.name: e.result for e in events if isinstance(e, so.ToolResult)}
    assert results == {"GetWeatherArgs": {"city": "Edinburgh", "temperature": 12}, "get_stock_price": 187.5}
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.status == "completed"
    assert [e.seq for e in events] == list(range(len(events)))


@pytest.mark.anyio
async def test_bare_async_for_break_after_the_tools_leaves_no_task() -> None:
    started: list[str] = []
    both = [anyio.Event()]
    agent = Agent(ReplayModel(TOOL_STEPS), tools=_tools(started, both))
    before = live_tasks()
    stream = agent.stream("weather and stock")
    it = stream.__aiter__()
    with anyio.fail_after(10):
        async for ev in it:
            if isinstance(ev, so.ToolResult):
                break
        await it.aclose()
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)
    assert stream.result_end is not None and stream.result_end.status == "cancelled"
