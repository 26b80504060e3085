"""Two agent frameworks, one stream: an OpenAI Agents SDK run and a pydantic-ai run, merged,
smoothed by word, counted in tokens and served as SSE.

The openai-agents agent answers from a recorded OpenAI Responses stream (its model replays
tests/fixtures/recorded/openai/responses_after_tool_utf8_llm.sse through the SDK's own event
types); the pydantic-ai agent uses pydantic-ai's ``FunctionModel``. Nothing reaches the
network. ``from_run`` picks each framework's adapter from the object it is given.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from agents import Agent as OAAgent
from agents import Runner, set_tracing_disabled
from agents.models.interface import Model
from openai._models import construct_type
from openai.types.responses import ResponseStreamEvent
from pydantic_ai import Agent as PAAgent
from pydantic_ai.models.function import AgentInfo, FunctionModel
from streamops.adapters import from_run

import streamops as so
from streamops.sinks.sse import SSEEncoder

RECORDED = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "recorded"


class RecordedResponses(Model):
    """An openai-agents model that streams a recorded Responses body as the SDK's events."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("this example streams")

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("data:"):
                # built as the openai SDK builds the events it reads from the wire
                yield construct_type(type_=ResponseStreamEvent, value=json.loads(line[5:]))


async def poem(messages: Any, info: AgentInfo) -> AsyncIterator[str]:
    """pydantic-ai's side: a short answer, streamed in uneven pieces."""
    for piece in ["Streams ", "from two fr", "ameworks, ", "one ", "pipeline."]:
        yield piece


async def main() -> dict[str, Any]:
    set_tracing_disabled(True)
    story = OAAgent(
        name="storyteller", model=RecordedResponses(RECORDED / "openai" / "responses_after_tool_utf8_llm.sse")
    )
    writer = PAAgent(FunctionModel(stream_function=poem), name="writer")

    counter = so.TokenCounter()
    merged = (
        so.merge(
            {
                "storyteller": from_run(Runner.run_streamed(story, "Tell a story")),
                "writer": from_run(writer.run_stream_events("Say something")),
            }
        )
        | so.smooth("word")
        | so.count_tokens(counter, emit_every=None)
    )
    encoder = SSEEncoder()
    body: list[bytes] = []
    text: dict[str, str] = {"storyteller": "", "writer": ""}
    chunks: dict[str, list[str]] = {"storyteller": [], "writer": []}
    for event in await merged.collect():
        if not isinstance(event, so.RawEvent):  # a RawEvent's data is a framework object: kept in process
            body.append(encoder.encode(replace(event, raw=None)))  # raw: the frameworks' objects
        if isinstance(event, so.TextDelta):
            text[event.agent] += event.delta
            chunks[event.agent].append(event.delta)
    for agent, words in chunks.items():
        print(f"{agent}: {len(words)} word chunks: {text[agent]!r}")
    print(f"{len(body)} SSE events; usage of both runs: {counter.total()}")
    return {"text": text, "chunks": chunks, "sse": b"".join(body), "usage": counter.total()}


if __name__ == "__main__":
    anyio.run(main)
