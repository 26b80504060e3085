"""Agent.as_tool: an agent used as a tool streams its own run, as typed events with their own
run_id, the parent's run_id as parent_run_id and a nested agent path, inside the calling
agent's stream; the calling run's result folds none of them."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import pytest

import streamops as so
from streamops.agent import Agent
from tests._models import FakeModel, ModelCall

pytestmark = pytest.mark.anyio


class Calls(FakeModel):
    """A model double: the first call asks for the tool calls given (``(call_id, name,
    arguments)``), later calls answer with text built from the last user message. With
    ``fail``, the answer is an error."""

    name = "double"

    def __init__(self, calls: list[tuple[str, str, str]], answer: str, *, fail: bool = False) -> None:
        self.calls = calls
        self.answer = answer
        self.fail = fail

    async def respond(self, c: ModelCall) -> AsyncGenerator[so.BaseEvent, None]:
        env = c.env
        prompt = next(str(m["content"]) for m in reversed(c.messages) if m["role"] == "user")
        call = c.index == 0 and bool(self.calls)
        yield so.RunStart(model=self.name, **env)
        if call:
            for i, (call_id, name, args) in enumerate(self.calls):
                yield so.ToolCallStart(call_id=call_id, name=name, index=i, **env)
                yield so.ToolCallEnd(call_id=call_id, name=name, arguments=args, index=i, **env)
            yield so.RunEnd(finish_reason="tool_calls", **env)
            return
        if self.fail:
            yield so.ErrorEvent(error_type="overloaded_error", message="try later", **env)
            yield so.RunEnd(status="failed", finish_reason="error", **env)
            return
        for word in self.answer.format(prompt=prompt).split(" "):
            yield so.TextDelta(delta=word + " ", block_id="t", **env)
        yield so.RunEnd(finish_reason="stop", usage=so.Usage(input_tokens=3, output_tokens=2), **env)


def _prompt(p: str) -> str:
    return json.dumps({"prompt": p})


def _planner(tools: list[Any], calls: list[tuple[str, str, str]]) -> Agent:
    return Agent(Calls(calls, "All done."), tools=tools, name="planner")


def _by_run(events: list[so.BaseEvent]) -> dict[str, list[so.BaseEvent]]:
    runs: dict[str, list[so.BaseEvent]] = {}
    for e in events:
        runs.setdefault(e.run_id, []).append(e)
    return runs


async def test_two_agent_tools_in_parallel_stream_their_runs_inside_the_parent() -> None:
    researcher = Agent(Calls([], "Notes on {prompt}"), name="researcher")
    tools = [researcher.as_tool(description="Research a topic.")]
    calls = [("c1", "researcher", _prompt("tides")), ("c2", "researcher", _prompt("moons"))]
    events = await _planner(tools, calls).stream("go", run_id="root").collect()
    runs = _by_run(events)
    top = runs.pop("root")
    assert [e.seq for e in top] == list(range(len(top))) and {e.agent for e in top} == {"planner"}
    assert all(e.parent_run_id == "" for e in top)
    assert len(runs) == 2
    results = {e.call_id: e for e in top if isinstance(e, so.ToolResult)}
    assert {c: r.result for c, r in results.items()} == {"c1": "Notes on tides ", "c2": "Notes on moons "}
    for run in runs.values():
        assert {(e.agent, e.parent_run_id) for e in run} == {("planner/researcher", "root")}
        assert [e.seq for e in run] == list(range(len(run)))
        assert isinstance(run[0], so.RunStart) and isinstance(run[-1], so.RunEnd) and run[-1].status == "completed"
        text = "".join(e.delta for e in run if isinstance(e, so.TextDelta))
        call = "c1" if "tides" in text else "c2"
        assert events.index(run[-1]) < events.index(results[call])  # before its call's result
        assert not any(isinstance(e, so.ToolProgress) for e in run)  # typed events, not blobs
    # the parent's result folds its own run only
    result = await _planner(tools, calls).run("go")
    assert result.text == "All done. " and result.status == "completed"
    assert result.usage == so.Usage(input_tokens=3, output_tokens=2)
    assert len({e.run_id for e in result.events}) == 3


async def test_bare_async_for_and_two_levels_of_nesting() -> None:
    librarian = Agent(Calls([], "Shelf {prompt}"), name="librarian")
    researcher = Agent(
        Calls([("r1", "librarian", _prompt("B7"))], "Found it."), tools=[librarian.as_tool()], name="researcher"
    )
    planner = _planner([researcher.as_tool("ask")], [("p1", "ask", _prompt("where?"))])
    events: list[so.BaseEvent] = []
    async with aclosing(planner.stream("go", run_id="root").__aiter__()) as it:
        async for ev in it:  # no task host: the tools' events come together, still in order
            events.append(ev)
    runs = _by_run(events)
    assert len(runs) == 3
    agents = {run[0].agent: run for run in runs.values()}
    assert set(agents) == {"planner", "planner/researcher", "planner/researcher/librarian"}
    mid, low = agents["planner/researcher"], agents["planner/researcher/librarian"]
    assert {e.parent_run_id for e in mid} == {"root"}
    assert {e.parent_run_id for e in low} == {mid[0].run_id}  # its own parent, kept when nested again
    assert "".join(e.delta for e in low if isinstance(e, so.TextDelta)) == "Shelf B7 "
    assert events.index(low[-1]) < events.index(mid[-1])
    only = await (so.Stream.from_iterable(events) | so.of_agent("planner/researcher")).collect()
    assert len(only) == len(mid) + len(low)
    only = await (so.Stream.from_iterable(events) | so.of_agent("planner/researcher", nested=False)).collect()
    assert only == mid


async def test_a_failed_sub_run_is_a_tool_error_of_the_parent_with_its_events_kept() -> None:
    broken = Agent(Calls([], "", fail=True), name="broken")
    planner = _planner([broken.as_tool()], [("c1", "broken", _prompt("x"))])
    events = await planner.stream("go", run_id="root").collect()
    errors = [e for e in events if isinstance(e, so.ToolError)]
    assert len(errors) == 1 and errors[0].run_id == "root" and errors[0].error_type == "RuntimeError"
    assert "'broken' run ended failed: try later" in errors[0].message
    sub = [e for e in events if e.run_id != "root"]
    assert any(isinstance(e, so.ErrorEvent) and e.message == "try later" for e in sub)
    assert isinstance(sub[-1], so.RunEnd) and sub[-1].status == "failed"
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.run_id == "root" and end.status == "completed"


def test_as_tool_schema_and_bad_name() -> None:
    t = Agent(Calls([], ""), name="researcher", instructions="Find facts.").as_tool()
    assert t.name == "researcher" and t.description == "Find facts."
    assert t.parameters["required"] == ["prompt"] and list(t.parameters["properties"]) == ["prompt"]
    with pytest.raises(ValueError, match="not valid"):
        Agent(Calls([], ""), name="my agent").as_tool()


async def test_assemble_folds_the_outer_run_and_accumulate_gives_each_run() -> None:
    researcher = Agent(Calls([], "Notes on {prompt}"), name="researcher")
    planner = _planner([researcher.as_tool()], [("c1", "researcher", _prompt("tides"))])
    events = await planner.stream("go", run_id="root").collect()
    msg = await so.assemble(so.Stream.from_iterable(events))
    assert msg.text == "All done. " and msg.run_id == "root" and msg.status == "completed"
    per_run = await (so.Stream.from_iterable(events) | so.accumulate()).collect()
    assert sorted(m.text for m in per_run) == ["All done. ", "Notes on tides "]
    # a sub-run's events alone assemble to its own answer
    sub = await so.assemble(so.Stream.from_iterable(events) | so.of_agent("planner/researcher"))
    assert sub.text == "Notes on tides " and sub.agent == "planner/researcher"


async def test_the_calling_agents_output_type_is_not_applied_to_the_sub_run() -> None:
    researcher = Agent(Calls([], "Notes on {prompt}"), name="researcher")  # plain text, not JSON
    planner = Agent(
        Calls([("c1", "researcher", _prompt("tides"))], '{{"a": 1}}'),
        tools=[researcher.as_tool()],
        name="planner",
        output_type=dict[str, int],
    )
    events = await planner.stream("go", run_id="root").collect()
    assert not any(isinstance(e, so.ErrorEvent) for e in events)
    finals = [e for e in events if isinstance(e, so.FinalOutput)]
    assert [(f.run_id, f.value) for f in finals] == [("root", {"a": 1})]
    assert not any(isinstance(e, (so.ObjectDelta, so.PartialObject)) and e.run_id != "root" for e in events)
    top = [e for e in events if e.run_id == "root"]
    assert [e.seq for e in top] == list(range(len(top)))
