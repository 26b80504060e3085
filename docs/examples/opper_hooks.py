"""Hooks on a streamed structured answer: stream start, each chunk, stream end.

The agent asks for a ``Weather`` object; its JSON streams as ``ObjectDelta`` events tagged
with the path of the field they extend, and the ``on_chunk`` hook prints the ``$.city`` field
as it arrives. The model's side is a recorded OpenAI structured-output stream.
"""

from pathlib import Path

import anyio
from pydantic import BaseModel
from streamops.adapters.replay import ReplayModel

import streamops as so

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded" / "openai"


class Weather(BaseModel):
    city: str
    temperature: int
    units: str


async def main() -> dict[str, object]:
    fields: dict[str, str] = {}

    def on_start(event: so.RunStart) -> None:
        print(f"[stream start] model={event.model}")

    def on_chunk(event: so.BaseEvent) -> None:
        if isinstance(event, so.ObjectDelta):
            fields[event.json_path] = fields.get(event.json_path, "") + event.delta
            if event.json_path == "$.city":
                print(event.delta, end="", flush=True)

    async def on_end(event: so.RunEnd) -> None:
        print(f"\n[stream end] {event.status}, {event.usage.total_tokens} tokens")

    hooks = so.Hooks(on_stream_start=on_start, on_chunk=on_chunk, on_stream_end=on_end)
    model = ReplayModel([RECORDED / "chat_json_schema_content_openai_python.sse"])
    agent = so.Agent(model, output_type=Weather, hooks=hooks)
    result = await agent.run("What's the weather like in San Francisco?")
    print(f"output: {result.output}")
    return {"fields": fields, "output": result.output.model_dump(), "status": result.status}


if __name__ == "__main__":
    anyio.run(main)
