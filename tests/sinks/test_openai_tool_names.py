"""OpenAI chunks of tool calls, assembled by the official ``openai`` SDK's
``ChatCompletionStreamState``: every call's id, name and arguments come out exact, whatever
the order of its events (clients concatenate every string fragment of a call, so a name sent
twice doubles, and a name never sent is ``None``)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

import streamops as so
from streamops.sinks.openai import ChunkEncoder

E: dict[str, Any] = {"run_id": "r"}


def start(call_id: str, name: str) -> so.ToolCallStart:
    return so.ToolCallStart(call_id=call_id, name=name, **E)


def delta(call_id: str, text: str) -> so.ToolCallDelta:
    return so.ToolCallDelta(call_id=call_id, delta=text, **E)


def end(call_id: str, name: str, arguments: str) -> so.ToolCallEnd:
    return so.ToolCallEnd(call_id=call_id, name=name, arguments=arguments, **E)


def assemble(events: list[so.BaseEvent]) -> tuple[list[tuple[str | None, str | None, str]], list[dict[str, Any]]]:
    """The tool calls ``(id, name, arguments)`` of the SDK's final completion, and the chunks."""
    enc = ChunkEncoder(model="m")
    chunks = [c for e in [so.RunStart(**E), *events] for c in enc.encode(e)]
    chunks += enc.encode(so.RunEnd(finish_reason="tool_calls", **E)) + enc.close()
    state = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(c))
    message = state.get_final_completion().choices[0].message
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    return calls, chunks


def tool_fragments(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for c in chunks for ch in c["choices"] for t in ch["delta"].get("tool_calls", [])]


CASES: dict[str, tuple[list[so.BaseEvent], list[tuple[str, str, str]]]] = {
    "start-delta-end": (
        [start("c1", "get_weather"), delta("c1", '{"q":'), delta("c1", "1}"), end("c1", "get_weather", '{"q":1}')],
        [("c1", "get_weather", '{"q":1}')],
    ),
    "repeated-start": (
        [
            start("c1", "get_weather"),
            start("c1", "get_weather"),
            delta("c1", '{"q":1}'),
            start("c1", "get_weather"),
            end("c1", "get_weather", '{"q":1}'),
        ],
        [("c1", "get_weather", '{"q":1}')],
    ),
    "start-without-name-then-named-start": (
        [start("c1", ""), start("c1", "get_weather"), delta("c1", "{}"), end("c1", "get_weather", "{}")],
        [("c1", "get_weather", "{}")],
    ),
    "delta-first": (
        [delta("c2", '{"k":'), delta("c2", '"v"}'), end("c2", "lookup", '{"k":"v"}')],
        [("c2", "lookup", '{"k":"v"}')],
    ),
    "delta-first-end-with-tail": (
        [delta("c2", '{"k":'), end("c2", "lookup", '{"k":"v"}')],
        [("c2", "lookup", '{"k":"v"}')],
    ),
    "delta-first-then-start": (
        [delta("c2", "{"), start("c2", "lookup"), delta("c2", "}"), end("c2", "lookup", "{}")],
        [("c2", "lookup", "{}")],
    ),
    "end-only": (
        [end("c3", "ping", '{"x":[1]}')],
        [("c3", "ping", '{"x":[1]}')],
    ),
    "two-interleaved": (
        [
            start("a", "get_weather"),
            delta("b", '{"city":'),
            delta("a", '{"q":'),
            start("b", "get_time"),
            start("a", "get_weather"),
            delta("b", '"Oslo"}'),
            delta("a", "1}"),
            end("b", "get_time", '{"city":"Oslo"}'),
            end("a", "get_weather", '{"q":1}'),
        ],
        [("a", "get_weather", '{"q":1}'), ("b", "get_time", '{"city":"Oslo"}')],
    ),
    "two-interleaved-delta-first": (
        [
            delta("a", "{"),
            delta("b", "["),
            delta("a", "}"),
            delta("b", "]"),
            end("a", "f", "{}"),
            end("b", "g", "[]"),
        ],
        [("a", "f", "{}"), ("b", "g", "[]")],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_sdk_assembles_exact_ids_names_and_arguments(case: str) -> None:
    events, expected = CASES[case]
    calls, chunks = assemble(events)
    assert calls == expected
    fragments = tool_fragments(chunks)
    ids = {t["id"]: t["index"] for t in fragments if "id" in t}
    for call_id, _, _ in expected:  # an index per call, stable over its fragments
        index = ids[call_id]
        assert sum(t.get("id") == call_id for t in fragments) == 1
        named = [t for t in fragments if t["index"] == index and t["function"].get("name")]
        assert len(named) == 1  # the name is sent once per call
    assert sorted(ids.values()) == list(range(len(expected)))
