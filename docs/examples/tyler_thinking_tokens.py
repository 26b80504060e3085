"""Thinking tokens and answer tokens, streamed apart.

``ReasoningDelta`` carries the model's thinking, ``TextDelta`` the answer; whatever the
provider calls them (Anthropic ``thinking_delta`` here, ``reasoning_content`` on OpenAI-style
APIs, Gemini thought parts). The model's side is a recorded Anthropic stream with extended
thinking.
"""

from pathlib import Path

import anyio
from streamops.adapters.replay import ReplayModel

import streamops as so

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded" / "anthropic"
GRAY, RESET = "\033[90m", "\033[0m"


async def main() -> dict[str, str]:
    agent = so.Agent(ReplayModel([RECORDED / "messages_thinking_signature_pyd.sse"]))
    thinking: list[str] = []
    answer: list[str] = []
    async with agent.stream("How do I cross the street?").iterate() as events:
        async for event in events:
            if isinstance(event, so.ReasoningDelta):
                thinking.append(event.delta)
                print(f"{GRAY}{event.delta}{RESET}", end="", flush=True)
            elif isinstance(event, so.TextDelta):
                if not answer:
                    print("\n")
                answer.append(event.delta)
                print(event.delta, end="", flush=True)
            elif isinstance(event, so.RunEnd):
                usage = event.usage
                print(
                    f"\n\nthinking: {len(''.join(thinking))} chars, answer: {len(''.join(answer))} chars, "
                    f"{usage.output_tokens} output tokens"
                )
    return {"thinking": "".join(thinking), "answer": "".join(answer)}


if __name__ == "__main__":
    anyio.run(main)
