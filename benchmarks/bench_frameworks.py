"""Framework ingest: the per-event cost of each framework adapter (openai-agents, pydantic-ai,
LangChain, hypertic) against the framework's own iteration alone.

Each contender runs the framework over one long streamed answer (``n`` text deltas, no
network: openai-agents with an in-process model yielding Responses events built as the
openai SDK builds them, pydantic-ai with its ``FunctionModel``, LangChain with its
``GenericFakeChatModel`` through ``astream_events(version="v2")``, hypertic with its own
``OpenAIChat`` model whose openai client yields Chat Completions chunks built as the openai
SDK builds them) and reads every event:
the baseline reads the framework's objects and counts them, the other reads
``from_run(...)``'s streamops events. The ratio is the whole cost of a run with the adapter
over the cost without it; target <= 1.5x (the adapter adds at most half of what the
framework itself costs per event; issue 12). CPU time per framework event.

    python benchmarks/bench_frameworks.py [--quick] [--n N] [--rounds R] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness
from _harness import Case, CaseResult, Target, verdict, write_json

TARGET = 1.5


def _openai_agents(n: int) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[int]]] | None:
    try:
        from agents import Agent, Runner, set_tracing_disabled
        from agents.models.interface import Model
        from openai._models import construct_type
        from openai.types.responses import ResponseStreamEvent
    except ImportError:
        return None
    from streamops.adapters import from_run

    set_tracing_disabled(True)
    resp = {"id": "resp_1", "object": "response", "model": "gpt-4o", "status": "in_progress", "output": []}
    done = {**resp, "status": "completed", "usage": {"input_tokens": 10, "output_tokens": n, "total_tokens": 10 + n}}
    done["output"] = [
        {"type": "message", "id": "m1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "w " * n, "annotations": []}]}
    ]  # fmt: skip
    wire: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": resp},
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
         "item": {"type": "message", "id": "m1", "role": "assistant", "status": "in_progress", "content": []}},
    ]  # fmt: skip
    for i in range(n):
        wire.append({"type": "response.output_text.delta", "sequence_number": 2 + i, "item_id": "m1",
                     "output_index": 0, "content_index": 0, "delta": "w ", "logprobs": []})  # fmt: skip
    wire.append({"type": "response.completed", "sequence_number": 2 + n, "response": done})
    events = [construct_type(type_=ResponseStreamEvent, value=w) for w in wire]

    class Recorded(Model):
        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
            for ev in events:
                yield ev

    agent = Agent(name="bench", model=Recorded())

    async def alone() -> int:
        k = 0
        async for _ in Runner.run_streamed(agent, "go").stream_events():
            k += 1
        return k

    async def adapted() -> int:
        k = 0
        async for _ in from_run(Runner.run_streamed(agent, "go")):
            k += 1
        return k

    return alone, adapted


def _pydantic_ai(n: int) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[int]]] | None:
    try:
        from pydantic_ai import Agent
        from pydantic_ai.models.function import AgentInfo, FunctionModel
    except ImportError:
        return None
    from streamops.adapters import from_run

    async def words(messages: Any, info: AgentInfo) -> AsyncIterator[str]:
        for _ in range(n):
            yield "w "

    agent = Agent(FunctionModel(stream_function=words))

    async def alone() -> int:
        k = 0
        async with agent.run_stream_events("go") as run:
            async for _ in run:
                k += 1
        return k

    async def adapted() -> int:
        k = 0
        async for _ in from_run(agent.run_stream_events("go")):
            k += 1
        return k

    return alone, adapted


def _langchain(n: int) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[int]]] | None:
    try:
        from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
        from langchain_core.messages import AIMessage
    except ImportError:
        return None
    from streamops.adapters import from_run

    text = "w " * n

    async def alone() -> int:
        model = GenericFakeChatModel(messages=iter([AIMessage(content=text)]))
        k = 0
        async for _ in model.astream_events("go", version="v2"):
            k += 1
        return k

    async def adapted() -> int:
        model = GenericFakeChatModel(messages=iter([AIMessage(content=text)]))
        k = 0
        async for _ in from_run(model.astream_events("go", version="v2")):
            k += 1
        return k

    return alone, adapted


def _hypertic(n: int) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[int]]] | None:
    try:
        from hypertic.agents import Agent
        from hypertic.models.openai import OpenAIChat
        from openai._models import construct_type
        from openai.types.chat import ChatCompletionChunk
    except ImportError:
        return None
    from streamops.adapters import from_run

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Any:
        value = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return construct_type(type_=ChatCompletionChunk, value=value)

    usage = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o", "choices": [],
             "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}}  # fmt: skip
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": "w "}) for _ in range(n)]
    chunks += [chunk({}, "stop"), construct_type(type_=ChatCompletionChunk, value=usage)]

    class Completions:
        async def create(self, **kwargs: Any) -> AsyncIterator[Any]:
            async def gen() -> AsyncIterator[Any]:
                for c in chunks:
                    yield c

            return gen()

    class Client:
        class chat:  # noqa: N801 - the openai client's attribute name
            completions = Completions()

    model = OpenAIChat(api_key="bench", model="gpt-4o")
    model.async_client = Client()
    agent = Agent(model=model)

    async def alone() -> int:
        k = 0
        async for _ in agent.astream("go"):
            k += 1
        return k

    async def adapted() -> int:
        k = 0
        async for _ in from_run(agent.astream("go")):
            k += 1
        return k

    return alone, adapted


FRAMEWORKS = {
    "openai-agents": _openai_agents,
    "pydantic-ai": _pydantic_ai,
    "langchain": _langchain,
    "hypertic": _hypertic,
}


def run(quick: bool = False, *, n: int | None = None, rounds: int | None = None) -> list[CaseResult]:
    """Run one case per installed framework and print it. The suite runner's entry."""
    n = n or (500 if quick else 5_000)
    rounds = rounds or (3 if quick else 7)
    results = []
    for name, make in FRAMEWORKS.items():
        pair = make(n)
        if pair is None:
            print(f"{name}: not installed, skipped")
            continue
        alone, adapted = pair
        case = Case(f"framework ingest: {name} ({n} text deltas)", items=n, baseline=f"{name} alone", unit="delta")
        case.add(f"{name} alone", alone, note="the framework's own stream, read and counted")
        case.add("from_run", adapted, note="the same run through streamops.adapters.from_run")
        result = case.run(rounds=rounds, warmup=1)
        print(result.table())
        ratio = result.ratio("from_run")
        print(f"{name}: from_run / framework alone = {ratio:.2f}x (target <= {TARGET}x): {verdict(ratio <= TARGET)}")
        result.targets.append(Target(f"framework ingest: {name} from_run / framework alone", ratio, TARGET, "<="))
        result.info.update({"ratio": ratio, "target": TARGET})
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="500 deltas, 3 rounds")
    ap.add_argument("--n", type=int, default=None, help="text deltas per run")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", type=str, default=None, help="write the results to this file")
    args = ap.parse_args(argv)
    results = run(args.quick, n=args.n, rounds=args.rounds)
    if args.json:
        write_json(args.json, results)
    return 0


_ = _harness  # the harness module is imported for its ROUND_HOOK, read by Case.run

if __name__ == "__main__":
    sys.exit(main())
