"""Every event of an agent run as one JSON line, ready for an HTTP response or a log.

The model's side mixes two providers, both recorded: an Anthropic step that calls ``add``
and ``multiply``, then a Gemini step with the answer. The lines look the same whichever
provider spoke, and ``from_json`` turns each back into the typed event.
"""

from dataclasses import replace
from pathlib import Path

import anyio
from streamops.adapters.replay import ReplayModel

import streamops as so

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded"


@so.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@so.tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def ndjson(event: so.BaseEvent) -> bytes:
    """One JSON line, without the provider's raw payload (still on the event, for debugging)."""
    return so.to_json(replace(event, raw=None)) + b"\n"


async def main() -> list[bytes]:
    model = ReplayModel(
        [
            RECORDED / "anthropic" / "messages_parallel_tool_use_fantasy.sse",
            RECORDED / "gemini" / "gemini_vertex_after_tools_fantasy.sse",
        ]
    )
    agent = so.Agent(model, tools=[add, multiply], name="calculator")
    lines = await (agent.stream("Add and multiply 2 and 3.") | so.map(ndjson)).collect()
    for line in lines:
        print(line.decode(), end="")
    return lines


if __name__ == "__main__":
    anyio.run(main)
