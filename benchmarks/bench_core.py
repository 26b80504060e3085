"""Core throughput: ``of_type | map | scan`` over a realistic event mix, against its peers.

Run::

    python benchmarks/bench_core.py            # 1,000,000 events, 7 rounds (a few minutes)
    python benchmarks/bench_core.py --quick    # 100,000 events, 5 rounds (well under 30 s)
    python benchmarks/bench_core.py --events 300000 --json out.json

What it measures (all in one process, contenders interleaved round by round, medians):

1. Pipeline: keep ``TextDelta`` events, map each to ``len(delta)``, running sum; every
   async contender pulls the SAME pre-built list through the same async generator source
   (``async def source(): for e in events: yield e``) and is consumed by the same
   ``async for`` loop (count and keep the last value). reactivex runs synchronously on its
   default (current-thread) scheduler, over the list itself, the way Rx users run it: no async
   source, no event loop. Every contender's output (count, last sum) is checked equal.
2. Event construction: a ``TextDelta`` with envelope fields, against a frozen-dataclass
   variant of the same shape, a plain tuple and a pydantic ``BaseModel``.
3. JSON: ``streamops.events.to_json`` / ``from_json`` per event over the same mix.

Targets (printed as PASS/FAIL, never asserted): streamops within 2x of the hand-written single
async generator, and faster than one async generator per stage.
"""

from __future__ import annotations

import argparse
import operator
import random
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, CaseResult, Target, verdict, write_json

from streamops import Stage, Stream
from streamops.events import (
    BaseEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
    from_json,
    to_json,
)
from streamops.operators import map as so_map
from streamops.operators import of_type, scan

TARGET_VS_HAND = 2.0
"""streamops must be within this factor of the hand-written single generator."""

# ------------------------------------------------------------------------------------ input


_WORDS = (
    "the", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", "\n",
    " ", "Hello", ",", " world", "!", " streaming", " tokens", " arrive", " one", " at", " a",
    " time", " 你好", " мир", " 🙂",
)  # fmt: skip


def build_events(n: int, seed: int = 1234) -> list[BaseEvent]:
    """A deterministic, realistic mix: ~85% text deltas, ~5% reasoning deltas, ~7% tool-call
    argument deltas, ~3% usage events; every event with its envelope filled in."""
    rng = random.Random(seed)
    t0 = 1_700_000_000.0
    out: list[BaseEvent] = []
    append = out.append
    words = _WORDS
    for i in range(n):
        r = rng.random()
        ts = t0 + i * 1e-4
        if r < 0.85:
            append(TextDelta(run_id="run-1", agent="writer", seq=i, ts=ts, delta=rng.choice(words), block_id="b0"))
        elif r < 0.90:
            append(ReasoningDelta(run_id="run-1", agent="writer", seq=i, ts=ts, delta=rng.choice(words), block_id="r0"))
        elif r < 0.97:
            append(
                ToolCallDelta(
                    run_id="run-1",
                    agent="writer",
                    seq=i,
                    ts=ts,
                    call_id="call_1",
                    delta='{"q": "fox"',
                    index=0,
                )
            )
        else:
            append(
                UsageEvent(
                    run_id="run-1",
                    agent="writer",
                    seq=i,
                    ts=ts,
                    usage=Usage(input_tokens=12, output_tokens=i),
                )
            )
    return out


def expected(events: Iterable[BaseEvent]) -> tuple[int, int]:
    n = acc = 0
    for e in events:
        if type(e) is TextDelta:
            n += 1
            acc += len(e.delta)
    return n, acc


# ------------------------------------------------------------------------------------ pipeline


def delta_len(e: TextDelta) -> int:
    return len(e.delta)


add = operator.add


async def source(events: list[BaseEvent]) -> AsyncIterator[BaseEvent]:
    for e in events:
        yield e


async def consume(it: AsyncIterator[int]) -> tuple[int, int | None]:
    n = 0
    last = None
    async for x in it:
        n += 1
        last = x
    return n, last


async def hand_written(src: AsyncIterator[BaseEvent]) -> AsyncIterator[int]:
    acc = 0
    async for e in src:
        if isinstance(e, TextDelta):
            acc += len(e.delta)
            yield acc


async def hand_written_fns(src: AsyncIterator[BaseEvent]) -> AsyncIterator[int]:
    acc = 0
    cls = TextDelta
    f = delta_len
    g = add
    async for e in src:
        if isinstance(e, cls):
            acc = g(acc, f(e))
            yield acc


async def stage_of_type(src: AsyncIterator[Any], cls: type) -> AsyncIterator[Any]:
    async for x in src:
        if isinstance(x, cls):
            yield x


async def stage_map(src: AsyncIterator[Any], fn: Any) -> AsyncIterator[Any]:
    async for x in src:
        yield fn(x)


async def stage_scan(src: AsyncIterator[Any], fn: Any, initial: Any) -> AsyncIterator[Any]:
    acc = initial
    async for x in src:
        acc = fn(acc, x)
        yield acc


def pipeline_case(events: list[BaseEvent]) -> tuple[Case, list[str]]:
    notes: list[str] = []
    case = Case(
        "pipeline: of_type(TextDelta) | map(len(delta)) | scan(add, 0)",
        items=len(events),
        baseline="hand-written",
        unit="event",
    )

    async def run_hand() -> Any:
        return await consume(hand_written(source(events)))

    async def run_hand_fns() -> Any:
        return await consume(hand_written_fns(source(events)))

    async def run_streamops() -> Any:
        s = Stream.from_async_iterable(source(events)) | of_type(TextDelta) | so_map(delta_len) | scan(add, 0)
        async with s.iterate() as it:
            return await consume(it)

    async def run_bind_path() -> Any:
        # The same stages with their ``step`` form hidden: the push-chain path that chains
        # mixing in stages without one (take, smooth, ...) run on.
        stages = (of_type(TextDelta), so_map(delta_len), scan(add, 0))
        s = Stream(source(events), tuple(Stage(st._bind, st.name) for st in stages))
        async with s.iterate() as it:
            return await consume(it)

    async def run_stages() -> Any:
        return await consume(stage_scan(stage_map(stage_of_type(source(events), TextDelta), delta_len), add, 0))

    case.add("hand-written", run_hand, note="one async generator, work inlined (the limit)")
    case.add("hand-written+fns", run_hand_fns, note="same, calling the same map/scan functions")
    case.add("streamops", run_streamops, note="Stream | of_type | map | scan (fused stages)")
    case.add("streamops bind path", run_bind_path, note="same stages, push-chain path (info)")
    case.add("per-stage agens", run_stages, note="one plain async generator per stage")

    try:
        import reactivex
        from reactivex import operators as rx_ops

        def run_rx() -> Any:
            box: list[Any] = [0, None]

            def on_next(v: int) -> None:
                box[0] += 1
                box[1] = v

            reactivex.from_iterable(events).pipe(
                rx_ops.filter(lambda e: isinstance(e, TextDelta)),
                rx_ops.map(delta_len),
                rx_ops.scan(add, 0),
            ).subscribe(on_next)
            return box[0], box[1]

        case.add("reactivex (sync)", run_rx, note=f"reactivex {reactivex.__version__}, SYNC: from_iterable(list)")
    except ImportError:
        notes.append("reactivex not installed: skipped (pip install reactivex)")

    try:
        import aiostream
        from aiostream import pipe as aio_pipe
        from aiostream import stream as aio_stream

        async def run_aiostream() -> Any:
            # accumulate() without an initializer starts from the first item, so it emits the
            # same sequence as scan(add, 0) (with initializer=0 it would emit the 0 first).
            xs = (
                aio_stream.iterate(source(events))
                | aio_pipe.filter(lambda e: isinstance(e, TextDelta))
                | aio_pipe.map(delta_len)
                | aio_pipe.accumulate(add)
            )
            async with xs.stream() as it:
                return await consume(it)

        case.add("aiostream", run_aiostream, note=f"aiostream {aiostream.__version__} (GPL; peer only)")
    except ImportError:
        notes.append("aiostream not installed: skipped (pip install aiostream)")
    return case, notes


# ------------------------------------------------------------------------------------ construction


@dataclass(slots=True, kw_only=True, frozen=True)
class _FrozenBase:
    run_id: str = ""
    agent: str = ""
    seq: int = 0
    ts: float = field(default_factory=time.time)
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(slots=True, kw_only=True, frozen=True)
class FrozenTextDelta(_FrozenBase):
    kind: Literal["text-delta"] = "text-delta"
    delta: str
    block_id: str | None = None


def construction_case(n: int) -> Case:
    from pydantic import BaseModel, Field

    class PydanticTextDelta(BaseModel):
        run_id: str = ""
        agent: str = ""
        seq: int = 0
        ts: float = Field(default_factory=time.time)
        raw: Any = None
        kind: Literal["text-delta"] = "text-delta"
        delta: str
        block_id: str | None = None

    now = time.time

    def loop_only() -> Any:
        x = 0
        for i in range(n):
            x = i
        return x + 1

    def slots_dc() -> Any:
        x = None
        for i in range(n):
            x = TextDelta(run_id="run-1", agent="writer", seq=i, delta="hello", block_id="b0")
        return type(x) is TextDelta and n

    def frozen_dc() -> Any:
        x = None
        for i in range(n):
            x = FrozenTextDelta(run_id="run-1", agent="writer", seq=i, delta="hello", block_id="b0")
        return x is not None and n

    def plain_tuple() -> Any:
        x = None
        for i in range(n):
            x = ("text-delta", "run-1", "writer", i, now(), None, "hello", "b0")
        return x is not None and n

    def pydantic_model() -> Any:
        x = None
        for i in range(n):
            x = PydanticTextDelta(run_id="run-1", agent="writer", seq=i, delta="hello", block_id="b0")
        return x is not None and n

    case = Case(
        "construction: TextDelta(run_id, agent, seq, delta, block_id; ts=time.time())",
        items=n,
        baseline="streamops TextDelta",
    )
    case.add("streamops TextDelta", slots_dc, note="@dataclass(slots=True, kw_only=True), not frozen")
    case.add("frozen dataclass", frozen_dc, note="same shape, frozen=True")
    case.add("tuple", plain_tuple, note="8-tuple incl. an explicit time.time() call")
    case.add("pydantic BaseModel", pydantic_model, note="same fields, validated __init__")
    case.add("loop only", loop_only, note="for-loop overhead included in every row above")
    return case


# ------------------------------------------------------------------------------------ json


def json_case(events: list[BaseEvent]) -> tuple[Case, bool]:
    encoded = [to_json(e) for e in events]
    ok = all(from_json(b) == e for b, e in zip(encoded, events, strict=True))

    def encode() -> Any:
        total = 0
        for e in events:
            total += len(to_json(e))
        return total

    def decode() -> Any:
        x = None
        for b in encoded:
            x = from_json(b)
        return x is not None

    case = Case("json: streamops.events.to_json / from_json (pydantic TypeAdapter)", items=len(events), unit="event")
    case.add("to_json", encode, note=f"mean {sum(map(len, encoded)) / len(encoded):.0f} bytes per event")
    case.add("from_json", decode, note="validating decode of the discriminated union")
    return case, ok


# ------------------------------------------------------------------------------------ main


def run(
    quick: bool = False,
    *,
    n: int | None = None,
    rounds: int | None = None,
    parts: tuple[str, ...] = ("pipeline", "construction", "json"),
    progress: bool = False,
) -> list[CaseResult]:
    """Run the cases named in ``parts`` and print them; returns their results (targets and
    checks attached: ``result.targets``, ``result.info["checks"]``). The suite runner's entry."""
    n = n or (100_000 if quick else 1_000_000)
    rounds = rounds or (5 if quick else 7)
    n_construct = max(10_000, n // 10 if quick else n // 5)
    n_json = max(2_000, n // 50)
    started = time.perf_counter()

    print(
        f"streamops bench_core: {n:,} events, {rounds} timed rounds (+1 warmup) per case, "
        f"contenders interleaved (order rotated each round); medians."
    )
    print("GC: gc.collect() before, gc.disable() during every timed pass, for every contender alike.")
    print("Clock: process CPU time (the machine is shared: wall time would bill other processes' time;")
    print("       wall-clock medians are in the --json output too).")
    print("Input: one pre-built list; async contenders pull it through the same async generator source")
    print("       and the same `async for` consumer; reactivex runs SYNCHRONOUSLY over the list itself.")
    events = build_events(n)
    exp = expected(events)
    print(f"Mix:   {n:,} events, {exp[0]:,} TextDelta ({exp[0] / n:.0%}), expected (count, sum) = {exp}\n")

    results: list[CaseResult] = []

    if "pipeline" in parts:
        pcase, notes = pipeline_case(events)
        pres = pcase.run(rounds=rounds, progress=progress)
        results.append(pres)
        print(pres.table())
        for note in notes:
            print(f"  note: {note}")
        ok_eq, msg = pres.check_equal()
        ok_exp = pres.contenders[0].result == exp
        print(f"  check: {verdict(ok_eq and ok_exp)}  {msg}; expected {exp}")
        r_hand = pres.ratio("streamops")
        r_stages = pres.ratio("streamops", "per-stage agens")
        pass_hand = r_hand <= TARGET_VS_HAND
        pass_stages = r_stages < 1.0
        m_hand = pres["streamops"].min / pres["hand-written"].min
        m_stages = pres["streamops"].min / pres["per-stage agens"].min
        print(
            f"  target: {verdict(pass_hand)}  streamops / hand-written = {r_hand:.2f}x "
            f"(target <= {TARGET_VS_HAND}x; ratio of the mins {m_hand:.2f}x)"
        )
        print(
            f"  target: {verdict(pass_stages)}  streamops / per-stage agens = {r_stages:.2f}x "
            f"(target < 1.00x; ratio of the mins {m_stages:.2f}x)"
        )
        for peer in ("reactivex (sync)", "aiostream"):
            if any(c.name == peer for c in pres.contenders):
                print(f"  info:   {peer} / streamops = {pres.ratio(peer, 'streamops'):.2f}x")
        pres.targets += [
            Target("core: streamops / hand-written generator", r_hand, TARGET_VS_HAND, "<="),
            Target("core: streamops / per-stage generators", r_stages, 1.0, "<"),
        ]
        pres.info["checks"] = {
            "pipeline": {
                "results_equal": ok_eq and ok_exp,
                "streamops_vs_hand_written": r_hand,
                "streamops_vs_per_stage": r_stages,
                "streamops_vs_hand_written_min": m_hand,
                "streamops_vs_per_stage_min": m_stages,
                "target_vs_hand_written": TARGET_VS_HAND,
                "pass_vs_hand_written": pass_hand,
                "pass_vs_per_stage": pass_stages,
            }
        }
        print()

    if "construction" in parts:
        ccase = construction_case(n_construct)
        cres = ccase.run(rounds=rounds, progress=progress)
        results.append(cres)
        print(cres.table())
        loop = cres["loop only"].median
        net = {c.name: c.median - loop for c in cres.contenders if c.name != "loop only"}
        print("  net of loop: " + ", ".join(f"{k} {v:.0f} ns" for k, v in net.items()))
        cres.info["checks"] = {"construction_net_ns": net}
        print()

    if "json" in parts:
        jcase, rt_ok = json_case(events[:n_json])
        jres = jcase.run(rounds=rounds, progress=progress)
        results.append(jres)
        print(jres.table())
        print(f"  check: {verdict(rt_ok)}  from_json(to_json(e)) == e for all {n_json:,} events")
        jres.info["checks"] = {"json_roundtrip_ok": rt_ok}
    print(f"\nTotal wall time {time.perf_counter() - started:.1f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="100,000 events, fewer rounds (well under 30 s)")
    p.add_argument("--events", type=int, default=None, help="events through the pipeline (default 1,000,000)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default 7, quick 5)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--progress", action="store_true", help="report each round on stderr")
    args = p.parse_args(argv)
    n = args.events or (100_000 if args.quick else 1_000_000)
    rounds = args.rounds or (5 if args.quick else 7)
    results = run(args.quick, n=n, rounds=rounds, progress=args.progress)
    if args.json:
        checks: dict[str, Any] = {}
        for r in results:
            checks.update(r.info.get("checks", {}))
        write_json(args.json, results, {"checks": checks, "events": n, "rounds": rounds})
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
