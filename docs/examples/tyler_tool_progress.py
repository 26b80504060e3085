"""A long-running tool reports progress; each report is a ``ToolProgress`` event in the run.

The tool multiplies by long multiplication and reports each partial product. The model's
side is two recorded OpenAI streams: a call to ``multiply(1231, 2331)``, then the answer.
"""

from pathlib import Path

import anyio
from streamops.adapters.replay import ReplayModel

import streamops as so

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded" / "openai"


@so.tool
async def multiply(a: int, b: int, ctx: so.ToolContext) -> int:
    """Multiply two integers."""
    digits = str(b)[::-1]
    total = 0
    for place, digit in enumerate(digits):
        await anyio.sleep(0.01)  # the slow part
        partial = a * int(digit) * 10**place
        total += partial
        ctx.progress({"progress": place + 1, "total": len(digits), "message": f"+ {partial} = {total}"})
    return total


async def main() -> list[dict[str, object]]:
    model = ReplayModel([RECORDED / "chat_tool_use_llm.sse", RECORDED / "chat_after_tool_text_llm.sse"])
    agent = so.Agent(model, tools=[multiply])
    reports = []
    async with agent.stream("What is 1231 * 2331?").iterate() as events:
        async for event in events:
            match event:
                case so.ToolCallEnd(name=name, arguments=arguments):
                    print(f"starting {name}({arguments})")
                case so.ToolProgress(data=data):
                    reports.append(data)
                    done = 20 * data["progress"] // data["total"]
                    print(f"  [{'#' * done}{'.' * (20 - done)}] {data['message']}")
                case so.ToolResult(name=name, result=result):
                    print(f"{name} returned {result}")
                case so.TextDelta(delta=delta):
                    print(delta, end="", flush=True)
    print()
    return reports


if __name__ == "__main__":
    anyio.run(main)
