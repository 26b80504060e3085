"""The agent's own cost per event: ``Agent(model).stream(...)`` against the model's stream alone.

Run::

    python benchmarks/bench_agent.py            # 60 runs per scenario, 7 rounds
    python benchmarks/bench_agent.py --quick    # 15 runs per scenario, 3 rounds
    python benchmarks/bench_agent.py --runs 200 --rounds 9 --json out.json

The model is a scripted in-process double (no network, no sleeps): each call streams the
events of its script the way an adapter does (``RunStart``, deltas or tool-call start / end,
``UsageEvent``, ``RunEnd``), built anew with the run id and agent name it is given. Three
scenarios, each a case:

- ``text``: one step, 200 text deltas (a long answer; 204 model events per run).
- ``structured``: one step, a JSON answer cut into ~100 deltas, ``output_type`` a pydantic
  model (the agent adds ``ObjectDelta`` / ``FinalOutput`` events and validates at the end).
- ``tools``: step 1 asks for 2 tool calls (async tools, returning at once), step 2 answers
  in 50 text deltas (2 model calls per run).

Contenders (the same number of runs each, interleaved round by round):

- ``model alone`` (the baseline, the floor): the same model calls' streams iterated directly
  with ``async for``, in the same order, nothing else.
- ``agent``: ``Agent(model, ...).stream("x")`` iterated with ``async for``: the agent's
  machinery (step loop, tool runner, errors as events, structured output, numbering, hooks).

Unit: one model event (the agent emits a few more: its steps, tool results, output events).
Target: ``agent / model alone <= TARGETS[scenario]`` (see :data:`TARGETS`). CPU time, paired by
round (see ``_harness.py``); the per-event cost of the machinery alone is printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, CaseResult, Target, write_json
from pydantic import BaseModel

from streamops import Stream
from streamops.agent import Agent
from streamops.events import BaseEvent, RunEnd, RunStart, TextDelta, ToolCallEnd, ToolCallStart, Usage, UsageEvent
from streamops.tools import tool

TARGETS = {"text": 12.0, "structured": 22.0, "tools": 16.0}
"""``agent / model alone`` per scenario. The floor is a model double that costs almost nothing
(0.7-0.9 us per event), so the ratios are large: they say how many times the model's own
cost the agent's machinery adds. Measured on the loaded 2-core dev machine (issue 16): before
its fixes 13.1x / 23.1x / 15.4x (text / structured / tools), after them 10.0-10.3x /
19.7-21.4x / 13.5-15.1x; the targets sit between (tools: barely, its noise is as large as the
gain), so a regression to the old cost fails. With the numbering fused into the hooks (issue
16 item e, docs/decisions.md): 9.6-9.7x / 19.4-20.4x / 13.0-13.6x."""

Script = list[tuple[str, Any]]
"""One model call: ``("text", delta)``, ``("call", (call_id, name, arguments))``, ``("end",
finish_reason)``."""


class ScriptedModel:
    """A model double that streams one script per call, in turn (wrapping around)."""

    name = "scripted"

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.calls = 0

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] = (),
        output_schema: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        agent: str = "",
    ) -> Stream[BaseEvent]:
        script = self.scripts[self.calls % len(self.scripts)]
        self.calls += 1
        return Stream.defer(_respond, script, run_id or "", agent)


async def _respond(script: Script, run_id: str, agent: str) -> AsyncGenerator[BaseEvent, None]:
    yield RunStart(model="scripted", run_id=run_id, agent=agent)
    finish = "stop"
    n = 0
    for what, value in script:
        if what == "text":
            n += 1
            yield TextDelta(delta=value, run_id=run_id, agent=agent)
        elif what == "call":
            call_id, name, args = value
            yield ToolCallStart(call_id=call_id, name=name, run_id=run_id, agent=agent)
            yield ToolCallEnd(call_id=call_id, name=name, arguments=args, run_id=run_id, agent=agent)
        else:
            finish = value
    yield UsageEvent(usage=Usage(input_tokens=10, output_tokens=n), run_id=run_id, agent=agent)
    yield RunEnd(finish_reason=finish, raw_finish_reason=finish, run_id=run_id, agent=agent)


class Weather(BaseModel):
    city: str
    temperature: int
    units: str
    summary: str


@tool
async def get_weather(city: str) -> str:
    """The weather in ``city``."""
    return f"sunny in {city}"


@tool
async def get_stock_price(symbol: str) -> str:
    """The price of ``symbol``."""
    return "123.4"


def _words(n: int) -> list[str]:
    return [("lorem ", "ipsum ", "dolor ", "sit ", "amet, ")[i % 5] for i in range(n)]


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def scenarios() -> dict[str, tuple[list[Script], dict[str, Any]]]:
    """Each scenario's model scripts and the agent's keyword arguments."""
    answer = json.dumps({"city": "Paris", "temperature": 21, "units": "celsius", "summary": " ".join(_words(60))})
    calls: Script = [
        ("call", ("c1", "get_weather", '{"city": "Paris"}')),
        ("call", ("c2", "get_stock_price", '{"symbol": "ACME"}')),
        ("end", "tool_calls"),
    ]
    return {
        "text": ([[("text", w) for w in _words(200)]], {}),
        "structured": ([[("text", c) for c in _chunks(answer, 4)]], {"output_type": Weather}),
        "tools": ([calls, [("text", w) for w in _words(50)]], {"tools": [get_weather, get_stock_price]}),
    }


def make_case(name: str, scripts: list[Script], agent_kw: dict[str, Any], runs: int) -> Case:
    per_run = 0
    for s in scripts:
        per_run += 2 + sum(2 if what == "call" else 1 for what, _ in s if what != "end") + 1
    items = per_run * runs

    async def model_alone() -> int:
        model = ScriptedModel(scripts)
        n = 0
        for _ in range(runs):
            for _ in scripts:
                async for _ev in model.stream([{"role": "user", "content": "x"}], run_id="r", agent="agent"):
                    n += 1
        return n

    async def agent() -> int:
        a = Agent(ScriptedModel(scripts), **agent_kw)
        n = 0
        for _ in range(runs):
            async for ev in a.stream("x"):
                if isinstance(ev, RunEnd) and ev.status != "completed":
                    raise RuntimeError(f"the agent run ended {ev.status}")
                n += 1
        return n

    case = Case(f"agent: {name} ({per_run} model events per run)", items=items, baseline="model alone", unit="event")
    case.add("model alone", model_alone, note="the model calls' streams, iterated directly (the floor)")
    case.add("agent", agent, note='Agent(model).stream("x"), async for')
    return case


def run(quick: bool = False, *, runs: int | None = None, rounds: int | None = None) -> list[CaseResult]:
    """Run the three scenarios and print them; the suite runner's entry."""
    runs = runs or (15 if quick else 60)
    rounds = rounds or (3 if quick else 7)
    out: list[CaseResult] = []
    for name, (scripts, kw) in scenarios().items():
        result = make_case(name, scripts, kw, runs).run(rounds=rounds, warmup=1)
        print(result.table())
        ratio = result.ratio("agent")
        extra = result["agent"].median - result["model alone"].median
        print(f"  agent machinery: {extra / 1000:.2f} us per model event")
        target = Target(f"agent ({name}) / model alone", ratio, TARGETS[name], "<=")
        print(f"  {target.line()}")
        result.targets.append(target)
        result.info.update({"ratio": ratio, "target": TARGETS[name], "agent_us_per_event": extra / 1000})
        out.append(result)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="15 runs per scenario, 3 rounds")
    ap.add_argument("--runs", type=int, default=None, help="agent runs per scenario and round")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", type=str, default=None, help="write the results to this file")
    args = ap.parse_args(argv)
    results = run(args.quick, runs=args.runs, rounds=args.rounds)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
