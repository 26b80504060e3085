"""Tools on the local model (issue 15 item 12): grammar-constrained tool-call output for a model
without native tool calling (SmolLM2-135M-Instruct, run for real), and the README's agent with
tools. The sans-IO pieces (the call splitter, the grammar, the messages) are tested without
the model."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamops.adapters.local import (
    LocalModel,
    ToolsNotSupportedError,
    _CallSplitter,
    _chat_messages,
    _tools_gbnf,
    _tools_grammar,
)

import streamops as so
from streamops.models import ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="The weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SPECS = [{"name": WEATHER.name, "description": WEATHER.description, "parameters": WEATHER.parameters}]


# ----------------------------------------------------------------------------- sans-IO


def _split(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _run(pieces: list[str]) -> list[tuple[str, str]]:
    s = _CallSplitter()
    out: list[tuple[str, str]] = []
    for p in pieces:
        out += s.feed(p)
    return out + s.finish()


args_st = st.dictionaries(
    st.text(min_size=1, max_size=5), st.one_of(st.integers(), st.text(max_size=8), st.just({"a": [1, {}]})), max_size=3
)


@settings(max_examples=200, deadline=None)
@given(args=args_st, name=st.text(max_size=8), cuts=st.lists(st.integers(0, 500), max_size=40), pad=st.booleans())
def test_call_splitter_any_split_gives_one_call_with_the_arguments(
    args: dict[str, Any], name: str, cuts: list[int], pad: bool
) -> None:
    """Property: however the call's text is cut into deltas, it gives one start with the name,
    argument fragments that concatenate to the arguments' JSON text, and one end with it."""
    sp = " " if pad else ""
    arg_text = json.dumps(args)
    text = f'<tool_call>{{"name": {json.dumps(name)},{sp}"arguments": {arg_text}{sp}}}{sp}</tool_call>'
    out = _run(_split(text, cuts))
    assert [k for k, _ in out if k != "args"] == ["start", "end"]
    assert out[0] == ("start", name)
    assert out[-1] == ("end", arg_text)
    assert "".join(v for k, v in out if k == "args") == arg_text
    assert json.loads(out[-1][1]) == args


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1).filter(lambda t: not t.startswith("<")), cuts=st.lists(st.integers(0, 300)))
def test_call_splitter_text_answers_pass_through(text: str, cuts: list[int]) -> None:
    out = _run(_split(text, cuts))
    assert {k for k, _ in out} == {"text"}
    assert "".join(v for _, v in out) == text


def test_call_splitter_cut_short() -> None:
    # a call cut before its name is complete is not lost: it comes out as text
    assert _run(['<tool_call>{"na']) == [("text", '<tool_call>{"na')]
    # a call cut in its arguments ends with the arguments so far (invalid JSON, as documented)
    out = _run(['<tool_call>{"name": "f", "arguments": {"a": "x'])
    assert out[0] == ("start", "f")
    assert out[-1] == ("end", '{"a": "x')


def test_grammar_has_a_call_branch_and_a_text_branch_and_compiles() -> None:
    auto = _tools_gbnf(SPECS, None)
    assert auto.startswith('root ::= "<tool_call>" call-root "</tool_call>" | answer\n')
    assert "answer ::= [^<] .*" in auto
    assert '"\\"get_weather\\""' in auto  # the name is a constant of the grammar
    required = _tools_gbnf(SPECS, None)
    assert "| answer" not in _tools_gbnf(SPECS, None, required=True) and required == auto
    schema = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    both = _tools_gbnf(SPECS, schema)
    assert "answer ::= answer-root" in both and "answer-root ::=" in both
    for text_schema in (None, schema):
        for req in (False, True):
            assert _tools_grammar(SPECS, text_schema, req) is not None  # llama.cpp parses it


def test_messages_render_tool_calls_and_results_for_a_template_without_tools() -> None:
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    out = _chat_messages(history, SPECS)
    assert out[0]["role"] == "system" and "<tools>" in out[0]["content"] and "get_weather" in out[0]["content"]
    assert out[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    }
    assert out[3]["role"] == "user" and "<tool_response>\nsunny\n</tool_response>" in out[3]["content"]
    assert all(isinstance(m["content"], str) for m in out)
    # an existing system message keeps its text, the tools are added to it
    assert _chat_messages([{"role": "system", "content": "Be brief."}], SPECS)[0]["content"].startswith("Be brief.")


def test_tools_with_a_raw_prompt_string_are_a_typed_error_not_ignored() -> None:
    model = LocalModel()  # nothing is loaded: the error comes at once
    with pytest.raises(ToolsNotSupportedError, match="get_weather"):
        model.stream("Weather in Paris?", tools=[WEATHER])
    with pytest.raises(ValueError, match="tool_choice"):
        model.stream([{"role": "user", "content": "x"}], tools=[WEATHER], tool_choice="get_time")


# ----------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def model() -> Iterator[LocalModel]:
    m = LocalModel()
    m.load()
    yield m
    m.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_required_tool_call_streams_start_deltas_end(model: LocalModel) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    events = await model.stream(
        messages, tools=[WEATHER], tool_choice="required", max_tokens=60, temperature=0
    ).collect()
    kinds = [e.kind for e in events]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end"
    assert "text-delta" not in kinds
    start = next(e for e in events if isinstance(e, so.ToolCallStart))
    end = next(e for e in events if isinstance(e, so.ToolCallEnd))
    deltas = [e for e in events if isinstance(e, so.ToolCallDelta)]
    assert kinds.index("tool-call-start") < kinds.index("tool-call-delta") < kinds.index("tool-call-end")
    assert start.name == end.name == "get_weather"
    assert start.call_id == end.call_id == deltas[0].call_id and start.call_id.startswith("call-")
    assert "".join(d.delta for d in deltas) == end.arguments
    assert isinstance(json.loads(end.arguments)["city"], str)  # valid for the schema
    run_end = events[-1]
    assert isinstance(run_end, so.RunEnd) and run_end.finish_reason == "tool_calls"
    # after the tool result, the forced choice is reset: the model answers in text
    history = [
        *messages,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": end.call_id, "type": "function", "function": {"name": end.name, "arguments": end.arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": end.call_id, "content": "sunny"},
    ]
    after = await model.stream(history, tools=[WEATHER], tool_choice="required", max_tokens=40, temperature=0).collect()
    assert not any(isinstance(e, so.ToolCallStart) for e in after)
    assert "".join(e.delta for e in after if isinstance(e, so.TextDelta)).strip()


@pytest.mark.slow
@pytest.mark.anyio
async def test_auto_text_answer_and_none_hide_the_tools(model: LocalModel) -> None:
    messages = [{"role": "user", "content": "Plan a picnic."}]
    for choice in ("auto", "none"):
        events = await model.stream(
            messages, tools=[WEATHER], tool_choice=choice, max_tokens=12, temperature=0
        ).collect()
        assert any(isinstance(e, so.TextDelta) for e in events)
        assert not any(isinstance(e, so.ToolCallStart) for e in events)


@pytest.mark.slow
@pytest.mark.anyio
async def test_readme_agent_with_tools_calls_the_tool() -> None:
    """The README's example, end to end: two agents on the local model, merged, smoothed,
    counted, budgeted; each calls ``get_weather``, gets its result and answers."""
    calls: list[str] = []

    @so.tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    def agent(name: str, seed: int) -> so.Agent:
        settings = {"max_tokens": 200, "tool_choice": "required"}
        return so.Agent(LocalModel(seed=seed), name=name, tools=[get_weather], model_settings=settings)

    runs = [agent("planner", 0).stream("Plan a picnic."), agent("hiker", 1).stream("Plan a hike.")]
    seen: list[Any] = []
    async with (
        so.merge(*runs)
        .pipe(so.smooth("word", max_delay=0.1), so.count_tokens(), so.budget(max_tokens=2_000))
        .iterate() as events
    ):
        async for event in events:
            seen.append(event)
    for name in ("planner", "hiker"):
        mine = [e for e in seen if e.agent == name]
        assert any(isinstance(e, so.ToolCallEnd) and e.name == "get_weather" for e in mine)
        assert any(isinstance(e, so.ToolResult) and e.result == "sunny" for e in mine)
        assert isinstance(mine[-1], so.RunEnd) and mine[-1].status == "completed"
        assert "".join(e.delta for e in mine if isinstance(e, so.TextDelta)).strip()
    assert len(calls) >= 2
