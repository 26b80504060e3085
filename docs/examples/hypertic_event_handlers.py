"""One handler per kind of event: text, tool calls, tool results, usage at the end.

The agent runs real tools; the model's side is two recorded OpenAI streams (a step asking
for ``add`` and ``multiply`` in parallel, then the answer), replayed offline.
"""

from pathlib import Path

import anyio
from streamops.adapters.replay import ReplayModel

import streamops as so

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded" / "openai"


@so.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@so.tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


async def main() -> dict[str, object]:
    model = ReplayModel(
        [RECORDED / "chat_gpt4o_parallel_tools_fantasy.sse", RECORDED / "chat_gpt5_after_tools_utf8_fantasy.sse"]
    )
    agent = so.Agent(model, tools=[add, multiply])
    text, calls, results, end = [], [], {}, None
    async with agent.stream("Add and multiply 2 and 3.").iterate() as events:
        async for event in events:
            match event:
                case so.TextDelta(delta=delta):
                    print(delta, end="", flush=True)
                    text.append(delta)
                case so.ToolCallEnd(name=name, arguments=arguments):
                    print(f"tool call: {name}({arguments})")
                    calls.append(name)
                case so.ToolResult(call_id=call_id, name=name, result=result):
                    print(f"tool result: {name} -> {result}")
                    results[call_id] = result
                case so.RunEnd(status=status, usage=usage):
                    print(f"\nrun end: {status}, {usage.input_tokens} tokens in, {usage.output_tokens} out")
                    end = event
    return {"text": "".join(text), "calls": calls, "results": results, "end": end}


if __name__ == "__main__":
    anyio.run(main)
