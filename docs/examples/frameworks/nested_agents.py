"""An agent that delegates to another agent: the sub-agent's run streams inside the parent's,
typed, with its own run id, the parent's run id as ``parent_run_id`` and the path
``planner/researcher``; ``of_agent`` picks one agent's events.

Both agents are pydantic-ai agents over pydantic-ai's ``FunctionModel`` (nothing reaches the
network). The planner asks its ``research`` tool about two topics at once; the tool runs the
researcher agent, handing it the ``SubRuns`` collector's event handler.
"""

from collections.abc import AsyncIterator
from typing import Any

import anyio
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from streamops.adapters import SubRuns, from_run

import streamops as so


async def planner_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    if len(messages) == 1:  # first call: research two topics in parallel
        yield {0: DeltaToolCall(name="research", json_args='{"topic": "tides"}', tool_call_id="call-1")}
        yield {1: DeltaToolCall(name="research", json_args='{"topic": "moons"}', tool_call_id="call-2")}
    else:
        yield "Tides follow "
        yield "the moon."


async def researcher_model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    topic = str(messages[0].parts[-1].content)  # type: ignore[attr-defined]
    for word in ["Notes ", "on ", topic]:
        yield word


async def main() -> dict[str, Any]:
    sub = SubRuns()
    researcher = Agent(FunctionModel(stream_function=researcher_model), name="researcher")
    planner = Agent(FunctionModel(stream_function=planner_model), name="planner")

    @planner.tool
    async def research(ctx: RunContext[None], topic: str) -> str:
        """Research a topic with the researcher agent."""
        result = await researcher.run(topic, usage=ctx.usage, event_stream_handler=sub.pydantic_ai(ctx))
        return result.output

    events = await from_run(planner.run_stream_events("Why tides?"), sub_runs=sub, agent="planner").collect()

    runs: dict[str, dict[str, Any]] = {}
    for e in events:
        run = runs.setdefault(e.run_id, {"agent": e.agent, "parent": e.parent_run_id, "text": ""})
        if isinstance(e, so.TextDelta):
            run["text"] += e.delta
    for run_id, run in runs.items():
        parent = run["parent"][:8] or "-"
        print(f"{run['agent']:<20} run {run_id[:8]}  parent {parent:<8}  {run['text']!r}")

    answer = await so.assemble(so.Stream.from_iterable(events))  # the planner's own answer
    research_only = await (so.Stream.from_iterable(events) | so.of_agent("planner/researcher")).collect()
    print(f"answer: {answer.text!r}; {len(research_only)} events from the researcher runs")
    return {"runs": runs, "answer": answer.text, "research_events": research_only, "events": events}


if __name__ == "__main__":
    anyio.run(main)
