"""Token usage per step and for the whole run, counted live and reconciled.

``count_tokens`` counts the output with a real tokenizer (tiktoken ``o200k_base``, offline)
while it streams, then takes the provider's figures when they arrive; each ``StepEnd`` says
what its model call cost. The model's side is two recorded OpenAI streams (tool calls, then
the answer).
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
    agent = so.Agent(model, tools=[add, multiply], name="math")
    counter = so.TokenCounter()
    total = so.Usage()
    steps = []
    async with (agent.stream("Add and multiply 2 and 3.") | so.count_tokens(counter, emit_every=None)).iterate() as it:
        async for event in it:
            if isinstance(event, so.StepEnd):
                total = total + event.usage
                steps.append(event.usage)
                count = counter.get(event)
                print(
                    f"step {event.step}: {event.usage.input_tokens} in, {event.usage.output_tokens} out "
                    f"(run so far: {total.total_tokens}; output counted live: {count.estimated_output})"
                )
    (count,) = counter.runs.values()
    print(
        f"agent {count.agent!r}: {count.output_tokens} output tokens ({count.source}), "
        f"{count.estimated_output} counted by the tokenizer, {count.input_tokens} input tokens"
    )
    return {"steps": steps, "total": total, "count": count}


if __name__ == "__main__":
    anyio.run(main)
