"""Agent runs as streams: real tool execution driven by recorded streams, cancellation verbs,
tool errors and timeouts, structured output, hooks."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from streamops.adapters.replay import ReplayModel

import streamops as so
from streamops.agent import Agent, Hooks
from streamops.errors import StreamFormatError
from streamops.tools import ToolContext, tool
from tests._models import ModelCall, SlowModel
from tests._tasks import live_tasks
from tests.conftest import RECORDED

OPENAI = RECORDED / "openai"
ANTHROPIC = RECORDED / "anthropic"


def kinds(events: Sequence[so.BaseEvent]) -> list[str]:
    return [e.kind for e in events]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- real tools
@pytest.mark.anyio
async def test_recorded_parallel_tool_calls_run_concurrently_keyed_by_call_id() -> None:
    both_started = anyio.Event()
    started: list[str] = []
    threads: list[int] = []

    async def rendezvous(name: str) -> None:
        started.append(name)
        if len(started) == 2:
            both_started.set()
        with anyio.fail_after(5):  # sequential execution would never see the other start
            await both_started.wait()

    @tool
    async def GetWeatherArgs(city: str, country: str, units: str = "c") -> dict[str, Any]:  # noqa: N802
        """Weather in a city."""
        await rendezvous("weather")
        return {"city": city, "temperature": 12, "units": units}

    @tool
    def get_stock_price(ticker: str, exchange: str) -> float:
        """A stock's price."""
        threads.append(threading.get_ident())
        anyio.from_thread.run(rendezvous, "stock")
        return 187.5

    model = ReplayModel(
        [OPENAI / "chat_parallel_tools_openai_python.sse", OPENAI / "chat_after_tool_text_llm.sse"]
    )
    agent = Agent(model, tools=[GetWeatherArgs, get_stock_price], name="assistant")
    events = await agent.stream("weather and stock").collect()
    ks = kinds(events)
    assert ks[0] == "run-start"
    assert ks[-1] == "run-end"
    assert ks.count("step-start") == 2
    assert sorted(started) == ["stock", "weather"]
    assert threads and threads[0] != threading.get_ident()  # the sync tool ran in a worker thread
    results = {e.call_id: e for e in events if isinstance(e, so.ToolResult)}
    assert set(results) == {"call_JMW1whyEaYG438VE1OIflxA2", "call_DNYTawLBoN8fj3KN6qU9N1Ou"}
    assert results["call_JMW1whyEaYG438VE1OIflxA2"].result == {"city": "Edinburgh", "temperature": 12, "units": "c"}
    assert results["call_DNYTawLBoN8fj3KN6qU9N1Ou"].result == 187.5
    # the second step streams the answer, after every tool result
    last_result = max(i for i, e in enumerate(events) if isinstance(e, so.ToolResult))
    step1 = next(i for i, e in enumerate(events) if isinstance(e, so.StepStart) and e.step == 1)
    assert last_result < step1
    answer = "".join(e.delta for e in events[step1:] if isinstance(e, so.TextDelta))
    assert answer.startswith("The result of")
    # envelope: one run, one agent, seq monotonic
    assert {e.run_id for e in events} == {events[0].run_id}
    assert {e.agent for e in events} == {"assistant"}
    assert [e.seq for e in events] == list(range(len(events)))
    # what the model was sent in step 2: the assistant's tool calls and both results by call id
    sent = model.calls[1]["messages"]
    tool_msgs = {m["tool_call_id"]: m for m in sent if m["role"] == "tool"}
    assert set(tool_msgs) == set(results)
    assert '"temperature": 12' in tool_msgs["call_JMW1whyEaYG438VE1OIflxA2"]["content"]
    end = events[-1]
    assert isinstance(end, so.RunEnd)
    assert end.status == "completed"
    assert end.usage is not None
    assert end.usage.output_tokens is not None
    assert end.usage.output_tokens > 0


@pytest.mark.anyio
async def test_agent_run_returns_the_result_built_from_the_stream() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply."""
        return a * b

    model = ReplayModel(
        [ANTHROPIC / "messages_parallel_tool_use_fantasy.sse", ANTHROPIC / "messages_minimal_text_pyd.sse"]
    )
    result = await Agent(model, tools=[add, multiply]).run("2 and 3")
    assert result.status == "completed"
    assert result.steps == 2
    assert result.text == "2"
    assert result.output == "2"
    values = sorted(r.result for r in result.message.tool_results.values() if isinstance(r, so.ToolResult))
    assert values == [5, 6]


# --------------------------------------------------------------------------- tool errors
@pytest.mark.anyio
async def test_tool_errors_go_back_to_the_model_not_crash_the_run() -> None:
    @tool
    def lookup(city: str, days: int) -> str:
        """Look up."""
        raise RuntimeError("service down")

    bad_args = SlowModel(["ok"], tool_call=("lookup", '{"city": "Paris", "days": "many"}'))
    events = await Agent(bad_args, tools=[lookup]).stream("x").collect()
    err = next(e for e in events if isinstance(e, so.ToolError))
    assert err.call_id == "c1"
    assert "days" in err.message
    assert events[-1].status == "completed"  # type: ignore[attr-defined]

    failing = SlowModel(["ok"], tool_call=("lookup", '{"city": "Paris", "days": 2}'))
    events = await Agent(failing, tools=[lookup]).stream("x").collect()
    err = next(e for e in events if isinstance(e, so.ToolError))
    assert err.error_type == "RuntimeError"
    assert "service down" in err.message

    unknown = SlowModel(["ok"], tool_call=("nope", "{}"))
    events = await Agent(unknown, tools=[lookup]).stream("x").collect()
    assert next(e for e in events if isinstance(e, so.ToolError)).error_type == "UnknownTool"


@pytest.mark.anyio
async def test_tool_timeout_is_a_tool_error() -> None:
    @tool(timeout=0.05)
    async def slow(x: int) -> int:
        """Slow."""
        await anyio.sleep(10)
        return x

    model = SlowModel(["done"], tool_call=("slow", '{"x": 1}'))
    with anyio.fail_after(5):
        events = await Agent(model, tools=[slow]).stream("x").collect()
    err = next(e for e in events if isinstance(e, so.ToolError))
    assert "Timeout" in err.error_type
    assert events[-1].status == "completed"  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_tool_progress_events() -> None:
    @tool
    async def work(n: int, ctx: ToolContext) -> int:
        """Work with progress."""
        for i in range(n):
            ctx.progress({"done": i + 1})
            await anyio.lowlevel.checkpoint()
        return n

    events = await Agent(SlowModel(["ok"], tool_call=("work", '{"n": 3}')), tools=[work]).stream("x").collect()
    progress = [e.data for e in events if isinstance(e, so.ToolProgress)]
    assert progress == [{"done": 1}, {"done": 2}, {"done": 3}]
    assert all(e.call_id == "c1" for e in events if isinstance(e, so.ToolProgress))


# --------------------------------------------------------------------------- cancellation
@pytest.mark.anyio
async def test_stop_consuming_closes_the_model_and_records_a_cancelled_end() -> None:
    ends: list[so.RunEnd] = []
    model = SlowModel([f"w{i} " for i in range(100)], pause=0.01)
    agent = Agent(model, hooks=Hooks(on_stream_end=ends.append))
    stream = agent.stream("x")
    before = live_tasks()
    async with stream.iterate() as it:
        async for ev in it:
            if isinstance(ev, so.TextDelta):
                break
    assert model.closed == 1
    assert stream.result_end is not None
    assert stream.result_end.status == "cancelled"
    assert [e.status for e in ends] == ["cancelled"]
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)
    partial = stream.result_message
    assert partial is not None and partial.text == "w0 "  # the partial output, what the run said


@pytest.mark.anyio
async def test_result_message_is_none_before_a_run_and_whole_after_one() -> None:
    stream = Agent(SlowModel(["a ", "b"], pause=0)).stream("x")
    assert stream.result_message is None
    events = await stream.collect()
    message = stream.result_message
    assert message is not None
    assert message.text == "a b" == "".join(e.delta for e in events if isinstance(e, so.TextDelta))


@pytest.mark.anyio
async def test_cancel_now_ends_the_stream_with_a_cancelled_run_end() -> None:
    model = SlowModel([f"w{i} " for i in range(1000)], pause=0.01)
    stream = Agent(model).stream("x")
    events: list[so.BaseEvent] = []
    before = live_tasks()
    with anyio.fail_after(5):
        async with stream.iterate() as it:
            async for ev in it:
                events.append(ev)
                if sum(isinstance(e, so.TextDelta) for e in events) == 3:
                    stream.cancel()
    end = events[-1]
    assert isinstance(end, so.RunEnd)
    assert end.status == "cancelled"
    assert end.finish_reason == "cancelled"
    assert sum(isinstance(e, so.TextDelta) for e in events) == 3
    assert model.closed == 1
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)


@pytest.mark.anyio
async def test_cancel_after_step_lets_the_tools_finish_then_ends() -> None:
    ran: list[int] = []

    @tool
    async def job(x: int) -> int:
        """Job."""
        await anyio.sleep(0.05)
        ran.append(x)
        return x

    model = SlowModel(["never"], tool_call=("job", '{"x": 7}'))
    stream = Agent(model, tools=[job]).stream("x")
    events: list[so.BaseEvent] = []
    before = live_tasks()
    async with stream.iterate() as it:
        async for ev in it:
            events.append(ev)
            if isinstance(ev, so.ToolCallEnd):
                stream.cancel_after_step()
    assert ran == [7]
    assert any(isinstance(e, so.ToolResult) for e in events)
    assert model.calls == 1  # no second step
    assert model.closed == 1
    end = events[-1]
    assert isinstance(end, so.RunEnd)
    assert end.status == "cancelled"
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)


@pytest.mark.anyio
async def test_max_steps() -> None:
    @tool
    def again() -> str:
        """Again."""
        return "more"

    class Loop(SlowModel):
        def stream(self, messages: Sequence[Mapping[str, Any]], **kw: Any) -> so.Stream[so.BaseEvent]:
            self._count = 0  # always the tool call (every call is the first)
            return super().stream(messages, **kw)

    events = await Agent(Loop([], tool_call=("again", "{}")), tools=[again], max_steps=3).stream("x").collect()
    assert kinds(events).count("step-start") == 3
    assert events[-1].status == "max_steps"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- structured output
class Weather(BaseModel):
    city: str
    temperature: int
    units: str


class Wrong(BaseModel):
    city: int


@pytest.mark.anyio
async def test_structured_output_streams_json_paths_and_validates() -> None:
    model = ReplayModel([OPENAI / "chat_json_schema_content_openai_python.sse"])
    events = await Agent(model, output_type=Weather).stream("weather?").collect()
    deltas: dict[str, str] = {}
    for e in events:
        if isinstance(e, so.ObjectDelta):
            deltas[e.json_path] = deltas.get(e.json_path, "") + e.delta
    assert deltas["$.city"] == "San Francisco"
    partials = [e.value for e in events if isinstance(e, so.PartialObject)]
    assert partials
    assert partials[-1]["city"] == "San Francisco"
    final = next(e for e in events if isinstance(e, so.FinalOutput))
    assert final.value == {"city": "San Francisco", "temperature": 61, "units": "f"}
    assert events[-1].status == "completed"  # type: ignore[attr-defined]
    result = await Agent(ReplayModel([OPENAI / "chat_json_schema_content_openai_python.sse"]), output_type=Weather).run(
        "weather?"
    )
    assert isinstance(result.output, Weather)  # the validated instance, not the JSON data
    assert result.output.model_dump() == {"city": "San Francisco", "temperature": 61, "units": "f"}


@pytest.mark.anyio
async def test_structured_output_validation_failure_is_an_error_event() -> None:
    errors: list[Any] = []
    model = ReplayModel([OPENAI / "chat_json_schema_content_openai_python.sse"])
    events = await Agent(model, output_type=Wrong, hooks=Hooks(on_error=errors.append)).stream("x").collect()
    err = next(e for e in events if isinstance(e, so.ErrorEvent))
    assert err.error_type == "output_validation"
    assert not any(isinstance(e, so.FinalOutput) for e in events)
    assert errors == [err]


# --------------------------------------------------------------------------- hooks
@pytest.mark.anyio
async def test_hooks_sync_async_and_a_failing_hook_is_reported() -> None:
    seen: list[str] = []

    async def on_start(ev: so.RunStart) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append("start")

    def on_chunk(ev: so.BaseEvent) -> None:
        if isinstance(ev, so.TextDelta) and ev.delta == "b":
            raise ValueError("hook broke")
        seen.append(ev.kind)  # type: ignore[attr-defined]

    hooks = Hooks(on_stream_start=on_start, on_chunk=on_chunk, on_stream_end=lambda e: seen.append("end"))
    events = await Agent(SlowModel(["a", "b", "c"], pause=0), hooks=hooks).stream("x").collect()
    assert seen[0] == "run-start"
    assert "start" in seen
    assert seen[-1] == "end"
    errs = [e for e in events if isinstance(e, so.ErrorEvent)]
    assert len(errs) == 1
    assert errs[0].error_type == "hook_error"
    assert "hook broke" in errs[0].message
    assert "".join(e.delta for e in events if isinstance(e, so.TextDelta)) == "abc"
    assert events[-1].status == "completed"  # type: ignore[attr-defined]



@pytest.mark.anyio
async def test_hook_errors_between_structured_output_events_keep_the_seqs_monotonic() -> None:
    # structured() emits a text delta and its ObjectDelta in one fused push; a hook failing on
    # the text delta inserts its error between them, numbered between them.
    def on_chunk(ev: so.BaseEvent) -> None:
        if isinstance(ev, so.TextDelta):
            raise ValueError(f"hook broke on {ev.delta!r}")

    model = ReplayModel([OPENAI / "chat_json_schema_content_openai_python.sse"])
    events = await Agent(model, output_type=Weather, hooks=Hooks(on_chunk=on_chunk)).stream("weather?").collect()
    assert [e.seq for e in events] == list(range(len(events)))
    errs = [i for i, e in enumerate(events) if isinstance(e, so.ErrorEvent)]
    assert len(errs) == sum(isinstance(e, so.TextDelta) for e in events)
    for i in errs:  # right after the text delta the hook failed on
        prev = events[i - 1]
        assert isinstance(prev, so.TextDelta) and repr(prev.delta) in events[i].message  # type: ignore[attr-defined]
    assert any(isinstance(e, so.ObjectDelta) for e in events)
    assert isinstance(events[-2], so.FinalOutput) and events[-1].status == "completed"  # type: ignore[attr-defined]

def test_stream_sync_and_bare_async_for_rule() -> None:
    events = list(Agent(SlowModel(["x", "y"], pause=0)).stream_sync("hi"))
    assert kinds(events)[0] == "run-start"
    assert kinds(events)[-1] == "run-end"


@pytest.mark.anyio
async def test_cancel_now_while_a_tool_runs_cancels_the_tool() -> None:
    stopped: list[str] = []

    @tool
    async def forever(x: int) -> int:
        """Never returns by itself."""
        try:
            await anyio.sleep(3600)
        finally:
            stopped.append("tool")
        return x

    model = SlowModel(["never"], tool_call=("forever", '{"x": 1}'))
    stream = Agent(model, tools=[forever]).stream("x")
    events: list[so.BaseEvent] = []
    before = live_tasks()
    with anyio.fail_after(5):
        async with stream.iterate() as it:
            async for ev in it:
                events.append(ev)
                if isinstance(ev, so.StepEnd):
                    stream.cancel()
    assert stopped == ["tool"]
    assert not any(isinstance(e, so.ToolResult) for e in events)
    end = events[-1]
    assert isinstance(end, so.RunEnd)
    assert end.status == "cancelled"
    assert end.usage is not None
    assert end.usage.output_tokens == 3  # the partial run's usage is kept
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)


@pytest.mark.anyio
async def test_a_model_stream_that_raises_ends_the_run_failed_keeping_what_came_before() -> None:
    class Broken(SlowModel):
        async def respond(self, call: ModelCall) -> AsyncGenerator[so.BaseEvent, None]:
            yield so.RunStart(model="broken", **call.env)
            yield so.TextDelta(delta="partial ", **call.env)
            raise StreamFormatError("invalid JSON in SSE data", data="{oops")

    events = await Agent(Broken([])).stream("x").collect()
    assert "".join(e.delta for e in events if isinstance(e, so.TextDelta)) == "partial "
    err = next(e for e in events if isinstance(e, so.ErrorEvent))
    assert err.error_type == "StreamFormatError"
    end = events[-1]
    assert isinstance(end, so.RunEnd)
    assert end.status == "failed"
    assert end.finish_reason == "error"


@pytest.mark.anyio
async def test_structured_output_keeps_the_text_and_numbers_every_event_once() -> None:
    # The run's pipeline: structured() adds its events after the text delta they come from
    # (the text stays), restamp numbers everything once, the output comes before the run end.
    model = ReplayModel([OPENAI / "chat_json_schema_content_openai_python.sse"])
    events = await Agent(model, output_type=Weather).stream("weather?").collect()
    text = "".join(e.delta for e in events if isinstance(e, so.TextDelta))
    assert json.loads(text) == {"city": "San Francisco", "temperature": 61, "units": "f"}
    assert [e.seq for e in events] == list(range(len(events)))
    for i, e in enumerate(events):
        if isinstance(e, so.ObjectDelta):  # after the text delta that completed it
            assert any(isinstance(p, so.TextDelta) for p in events[:i])
            assert not isinstance(events[i - 1], (so.StepEnd, so.UsageEvent))
    kinds = [e.kind for e in events]
    assert kinds[-3:] == ["step-end", "final-output", "run-end"]
