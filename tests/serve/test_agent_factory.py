"""``create_app(agent_factory=...)``: completions answered by a streamops :class:`Agent` with its
own tools, driven by the official ``openai`` client against a real uvicorn server on 127.0.0.1
(``serve`` of tests/serve/test_app.py: synchronous tests, the app on asyncio in a thread).

The agent's model is scripted: step 0 says a few words and calls a tool, the next step answers.
By design (streamops/serve/app.py): a tool the *agent* has runs server-side and its call stays in
the run log, never sent as ``tool_calls``; the client gets the text of every step. A tool the
*client* declared in ``tools`` is the client's: its call is sent as OpenAI tool-call deltas
(``index``, ``id``/``name`` in the first fragment, then argument fragments; see
streamops/sinks/openai.py) with ``finish_reason: "tool_calls"``, and never run here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest

import streamops as so
from streamops.agent import Agent
from streamops.serve.app import ChatCompletionRequest, create_app
from streamops.tools import tool
from tests._models import FakeModel, ModelCall
from tests.serve.test_app import MESSAGES, client, fold, run_log, serve, stream_completion, text_of

# One step: (text fragments, tool call (call_id, name, argument fragments) or None).
Step = tuple[list[str], tuple[str, str, list[str]] | None]

WEATHER: Step = (["Let me ", "look that up. "], ("call_w", "get_weather", ['{"city": ', '"Paris"}']))
ANSWER: Step = (["It is 21 °C ", "in Paris."], None)
BOOKING: Step = (["Booking ", "it now. "], ("call_b", "book_table", ['{"city": "Paris", ', '"seats": 2}']))
BOOK_TABLE: Any = {
    "type": "function",
    "function": {
        "name": "book_table",
        "description": "Book a table (the client runs it).",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "seats": {"type": "integer"}}},
    },
}


class ScriptedModel(FakeModel):
    """Step ``i`` streams ``steps[i]``: its text, then its tool call (start, argument fragments,
    end), usage and a run end; records the messages and tool specs of every call."""

    name = "scripted"

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.calls: list[dict[str, Any]] = []

    def called(self, call: ModelCall) -> None:
        self.calls.append({"messages": call.messages, "tools": [t.name for t in call.tools]})

    async def respond(self, model_call: ModelCall) -> AsyncGenerator[so.BaseEvent, None]:
        env = model_call.env
        words, call = self.steps[model_call.index]
        yield so.RunStart(model=self.name, **env)
        for w in words:
            yield so.TextDelta(delta=w, **env)
        if call is not None:
            call_id, name, fragments = call
            yield so.ToolCallStart(call_id=call_id, name=name, index=0, **env)
            for f in fragments:
                yield so.ToolCallDelta(call_id=call_id, delta=f, index=0, **env)
            yield so.ToolCallEnd(call_id=call_id, name=name, arguments="".join(fragments), index=0, **env)
        yield so.UsageEvent(usage=so.Usage(input_tokens=10, output_tokens=len(words)), **env)
        if call is None:
            yield so.RunEnd(finish_reason="stop", raw_finish_reason="stop", **env)
        else:
            yield so.RunEnd(finish_reason="tool_calls", raw_finish_reason="tool_calls", **env)


class Factory:
    """The ``agent_factory``: a new agent (and scripted model) per request, all recorded."""

    def __init__(self, *steps: Step) -> None:
        self.steps = steps
        self.requests: list[ChatCompletionRequest] = []
        self.models: list[ScriptedModel] = []
        self.weather_calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: ChatCompletionRequest) -> Agent:
        return self.agent(request)

    def agent(self, request: ChatCompletionRequest | None = None) -> Agent:
        calls = self.weather_calls

        @tool
        def get_weather(city: str) -> dict[str, Any]:
            """The weather in a city."""
            calls.append(city)
            return {"city": city, "celsius": 21}

        model = ScriptedModel(self.steps)
        with self._lock:
            if request is not None:
                self.requests.append(request)
                self.models.append(model)
        return Agent(model, tools=[get_weather], name="weather-bot")

    def direct_run(self) -> list[so.BaseEvent]:
        """The same agent run without the server (its tool calls are not recorded)."""
        events = Factory(*self.steps).agent().stream(MESSAGES).to_list()
        assert events[-1].kind == "run-end"  # type: ignore[attr-defined]
        return events


def tool_call_deltas(chunks: list[Any]) -> list[tuple[int, str | None, str | None, str | None]]:
    """Every ``delta.tool_calls`` entry as ``(index, id, name, arguments)``."""
    return [
        (tc.index, tc.id, tc.function.name if tc.function else None, tc.function.arguments if tc.function else None)
        for ch in chunks
        if ch.choices
        for tc in ch.choices[0].delta.tool_calls or []
    ]


def finish_reasons(chunks: list[Any]) -> list[str]:
    return [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]


def check_weather_ran(factory: Factory) -> None:
    """The agent's own tool ran server-side, once, and its result went into the next step."""
    assert factory.weather_calls == ["Paris"]
    (model,) = factory.models
    assert len(model.calls) == 2
    second = model.calls[1]["messages"]
    assistant = next(m for m in second if m["role"] == "assistant")
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_w"]
    (result,) = [m for m in second if m["role"] == "tool"]
    assert result["tool_call_id"] == "call_w" and json.loads(result["content"]) == {"city": "Paris", "celsius": 21}


# ------------------------------------------------------------------------- the agent's own tool


def test_stream_gives_the_agents_text_and_keeps_its_tool_calls_server_side() -> None:
    factory = Factory(WEATHER, ANSWER)
    expected = factory.direct_run()
    with serve(create_app(agent_factory=factory)) as base:
        run_id, chunks = stream_completion(client(base), stream_options={"include_usage": True})
        logged = run_log(base, run_id)
    text = text_of(chunks)
    assert text == fold(expected).text == fold(logged).text == "Let me look that up. It is 21 °C in Paris."
    # The agent's own tool call is not the client's: no tool-call deltas, the run's last reason.
    assert tool_call_deltas(chunks) == []
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (20, 4)  # both steps
    check_weather_ran(factory)
    (req,) = factory.requests
    assert req.stream and req.messages == MESSAGES and req.tools is None
    # The run log has the whole run: the call, its result, two steps, as the agent ran it.
    kinds = [e.kind for e in logged]  # type: ignore[attr-defined]
    assert kinds == [e.kind for e in expected]  # type: ignore[attr-defined]
    assert kinds.count("step-start") == 2 and kinds.count("tool-result") == 1
    (end,) = [e for e in logged if isinstance(e, so.ToolCallEnd)]
    assert (end.call_id, end.name, end.arguments) == ("call_w", "get_weather", '{"city": "Paris"}')
    assert logged[-1].status == "completed"  # type: ignore[attr-defined]


def test_non_stream_gives_the_same_content() -> None:
    factory = Factory(WEATHER, ANSWER)
    expected = fold(factory.direct_run())
    with serve(create_app(agent_factory=factory)) as base:
        r = client(base).chat.completions.create(model="agent", messages=MESSAGES)
    assert r.object == "chat.completion"
    msg = r.choices[0].message
    assert msg.content == expected.text == "Let me look that up. It is 21 °C in Paris."
    assert msg.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (20, 4)
    check_weather_ran(factory)
    assert not factory.requests[0].stream


# ------------------------------------------------------------------------- a client tool


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "non-stream"])
def test_client_tool_calls_are_sent_as_openai_tool_calls(stream: bool) -> None:
    """Step 0 calls the agent's tool (hidden), step 1 a tool the client declared (returned,
    not run): the client gets the text of both steps and one tool call, at index 0."""
    factory = Factory(WEATHER, BOOKING)
    with serve(create_app(agent_factory=factory)) as base:
        c = client(base)
        if stream:
            run_id, chunks = stream_completion(c, tools=[BOOK_TABLE])
            text = text_of(chunks)
            # id and name in the first fragment (arguments ""), then the model's own fragments.
            assert tool_call_deltas(chunks) == [
                (0, "call_b", "book_table", ""),
                (0, None, None, '{"city": "Paris", '),
                (0, None, None, '"seats": 2}'),
            ]
            assert finish_reasons(chunks) == ["tool_calls"]
        else:
            raw = c.chat.completions.with_raw_response.create(model="agent", messages=MESSAGES, tools=[BOOK_TABLE])
            run_id = raw.headers["x-streamops-run-id"]
            r = raw.parse()
            text = r.choices[0].message.content or ""
            calls: list[Any] = list(r.choices[0].message.tool_calls or [])
            assert [(t.id, t.type, t.function.name, t.function.arguments) for t in calls] == [
                ("call_b", "function", "book_table", '{"city": "Paris", "seats": 2}')
            ]
            assert r.choices[0].finish_reason == "tool_calls"
        logged = run_log(base, run_id)
    assert text == "Let me look that up. Booking it now. " == fold(logged).text
    check_weather_ran(factory)
    # The model was offered the agent's tool and the client's, in both steps.
    (model,) = factory.models
    assert [c["tools"] for c in model.calls] == [["get_weather", "book_table"]] * 2
    # The client's call was not run: one tool result (the agent's), and the run ends there.
    results = [e for e in logged if isinstance(e, (so.ToolResult, so.ToolError))]
    assert [r.call_id for r in results] == ["call_w"]
    end = logged[-1]
    assert end.kind == "run-end" and end.status == "completed" and end.finish_reason == "tool_calls"  # type: ignore[attr-defined]
