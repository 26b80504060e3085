"""Whole words instead of tokens: ``smooth("word")`` holds each piece of text until its word
is complete, so a consumer can count or display words without a buffer of its own.

The model is the local SmolLM2 (offline); its tokenizer splits words in odd places, which
is what the buffering is for.
"""

import anyio

import streamops as so


async def main() -> dict[str, list[str]]:
    agent = so.Agent(instructions="Answer in one short sentence.", model_settings={"max_tokens": 32})
    tokens: list[str] = []
    words: list[str] = []
    pipeline = (
        agent.stream("Describe a cat in one sentence.")
        | so.of_type(so.TextDelta)
        | so.tap(lambda e: tokens.append(e.delta))  # as the model streamed it
        | so.smooth("word")  # re-chunked on word boundaries
    )
    async with pipeline.iterate() as it:
        async for chunk in it:
            words.append(chunk.delta)
            print(f"[{chunk.delta.strip()}]", end=" ", flush=True)
    print(f"\nas the model streamed it: {'|'.join(tokens)!r}")
    print(f"{len(tokens)} chunks from the model, {len(words)} words")
    return {"tokens": tokens, "words": words}


if __name__ == "__main__":
    anyio.run(main)
