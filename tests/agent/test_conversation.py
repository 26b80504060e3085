"""Agent results users build on (issue 15, items 14, 15, 16): the validated output instance,
the usage of a run the consumer left, and the conversation history to continue from."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio
import pytest
from pydantic import BaseModel
from streamops.adapters.replay import ReplayModel

import streamops as so
from streamops.agent import Agent
from streamops.tools import tool
from tests._models import FakeModel, ModelCall
from tests.conftest import RECORDED

OPENAI = RECORDED / "openai"
ANTHROPIC = RECORDED / "anthropic"


class Weather(BaseModel):
    city: str
    temperature: int
    units: str


@pytest.mark.anyio
async def test_run_result_output_is_the_validated_model_instance() -> None:
    agent = Agent(ReplayModel([OPENAI / "chat_json_schema_content_openai_python.sse"]), output_type=Weather)
    result = await agent.run("weather?")
    assert result.output == Weather(city="San Francisco", temperature=61, units="f")
    final = next(e for e in result.events if isinstance(e, so.FinalOutput))
    assert final.value == {"city": "San Francisco", "temperature": 61, "units": "f"}  # events stay JSON data


class UsageFirstModel(FakeModel):
    """Reports its input usage first, then streams words slowly (as Anthropic's message_start)."""

    name = "usage-first"

    async def respond(self, call: ModelCall) -> AsyncGenerator[so.BaseEvent, None]:
        env = call.env
        yield so.RunStart(model=self.name, **env)
        yield so.UsageEvent(usage=so.Usage(input_tokens=42, output_tokens=1), **env)
        for i in range(100):
            await anyio.sleep(0.01)
            yield so.TextDelta(delta=f"w{i} ", **env)
        yield so.RunEnd(finish_reason="stop", **env)


@pytest.mark.anyio
async def test_a_run_the_consumer_left_reports_the_usage_so_far() -> None:
    ends: list[so.RunEnd] = []
    stream = Agent(UsageFirstModel(), hooks=so.Hooks(on_stream_end=ends.append)).stream("x")
    async with stream.iterate() as it:
        async for ev in it:
            if isinstance(ev, so.TextDelta):
                break
    end = stream.result_end
    assert end is not None and end.status == "cancelled"
    assert end.usage == so.Usage(input_tokens=42, output_tokens=1)
    assert ends == [end]


@pytest.mark.anyio
async def test_run_result_messages_continue_the_conversation() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply."""
        return a * b

    model = ReplayModel(
        [
            ANTHROPIC / "messages_parallel_tool_use_fantasy.sse",
            ANTHROPIC / "messages_minimal_text_pyd.sse",
            ANTHROPIC / "messages_minimal_text_pyd.sse",
        ]
    )
    agent = Agent(model, tools=[add, multiply], instructions="Be brief.")
    first = await agent.run("2 and 3")
    roles = [m["role"] for m in first.messages]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]  # no system message
    assert first.messages[0] == {"role": "user", "content": "2 and 3"}
    calls = first.messages[1]["tool_calls"]
    assert {c["id"] for c in calls} == {m["tool_call_id"] for m in first.messages[2:4]}
    assert first.messages[-1] == {"role": "assistant", "content": first.text}

    second = await agent.run("and again?", history=first.messages)
    sent = model.calls[2]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[1:-1] == first.messages
    assert sent[-1] == {"role": "user", "content": "and again?"}
    assert second.messages[: len(first.messages)] == first.messages
    assert second.messages[-2:] == [
        {"role": "user", "content": "and again?"},
        {"role": "assistant", "content": second.text},
    ]


@pytest.mark.anyio
async def test_outputs_are_typed_partials_then_the_validated_output() -> None:
    agent = Agent(ReplayModel([OPENAI / "chat_json_schema_content_openai_python.sse"]), output_type=Weather)
    got = await agent.stream("weather?").outputs().collect()
    *partials, final = got
    assert final == Weather(city="San Francisco", temperature=61, units="f")
    assert partials and all(type(p).__name__ == "PartialWeather" for p in partials)
    assert partials[0].temperature is None and partials[0].units is None  # missing fields allowed
    assert all("San Francisco".startswith(p.city or "") for p in partials)
    assert partials[-1].model_dump() == final.model_dump()
