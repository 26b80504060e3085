"""Stop a run early: ``stream.cancel()`` stops the model mid-answer and ends the stream with
``RunEnd(status="cancelled")``, so the consumer still sees how the run ended.

The model is the local SmolLM2 (offline): cancelling stops its token loop within one token,
and the model is free for the next request at once.
"""

import anyio

import streamops as so

ENOUGH = 12  # pieces of text


async def main() -> dict[str, object]:
    agent = so.Agent(model_settings={"max_tokens": 256})
    stream = agent.stream("Write a long story about a lighthouse keeper.")
    pieces: list[str] = []
    end = None
    async with stream.iterate() as events:
        async for event in events:
            if isinstance(event, so.TextDelta):
                pieces.append(event.delta)
                print(event.delta, end="", flush=True)
                if len(pieces) == ENOUGH:
                    stream.cancel()  # or stream.cancel_after_step(): let the current step finish first
            elif isinstance(event, so.RunEnd):
                end = event
                print(f"\nrun end: {event.status} (finish reason: {event.finish_reason})")
    return {"pieces": pieces, "end": end}


if __name__ == "__main__":
    anyio.run(main)
