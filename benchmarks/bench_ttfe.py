"""Time to first event: the latency a pipeline adds between the source yielding its first
delta and the consumer receiving its first chunk, against the bare source.

Run::

    python benchmarks/bench_ttfe.py            # 5,000 streams per contender per round, 5 rounds
    python benchmarks/bench_ttfe.py --quick    # 1,000 streams, 3 rounds
    python benchmarks/bench_ttfe.py --json out.json

One *stream* = a fresh source and a fresh pipeline: the source records ``perf_counter_ns()``
right before it yields its first text delta (``"Hello,"``); the consumer records it again
when the first item arrives, then closes the pipeline. Building the pipeline and opening it
are NOT in the figure (they happen before the source runs); closing it is not either. The
value of a round is the median over its streams; rounds are interleaved (order rotated), GC
off during each contender's streams. Wall clock (it is a latency; a few microseconds, below
the resolution of the process CPU clock).

The source's deltas are all available at once (no network): ``smooth("word")`` emits a word
as soon as the whitespace after it arrives; a first delta that ends inside a word waits for
the next delta (a few hundred nanoseconds here). In a live stream that wait is the gap
between the model's first two deltas (or ``max_delay``, when set) — by design, not an
overhead.

Contenders: ``bare source`` (the baseline; ``async for`` straight over the source),
``Stream`` (``Stream.from_async_iterable(src)``, no operator), ``hand-written re-chunker``
(``bench_smooth.hand_written``), ``smooth("word")`` and the realistic pipeline
``of_type | smooth | count_tokens`` (when the tokenizer can be loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness
from _harness import CaseResult, ContenderResult, write_json
from bench_smooth import hand_written

from streamops import Stream
from streamops.events import BaseEvent, TextDelta
from streamops.operators import of_type
from streamops.operators.text import smooth
from streamops.operators.tokens import TokenCounter, count_tokens, load_encoding

DELTAS = ("Hello,", " world", "! How", " are", " you", "?")

Latency = Callable[[], Awaitable[int]]


def _source(stamp: list[int]) -> AsyncIterator[BaseEvent]:
    async def gen() -> AsyncIterator[BaseEvent]:
        for i, d in enumerate(DELTAS):
            ev = TextDelta(run_id="r", agent="a", seq=i, delta=d, block_id="b0")
            if i == 0:
                stamp[0] = time.perf_counter_ns()
            yield ev

    return gen()


def contenders() -> tuple[dict[str, Latency], list[str]]:
    """Each contender: one stream, returning its latency in ns."""
    notes: list[str] = []

    async def bare() -> int:
        stamp = [0]
        async with aclosing(_source(stamp)) as it:
            async for _ in it:
                return time.perf_counter_ns() - stamp[0]
        raise AssertionError("empty")

    async def hand() -> int:
        stamp = [0]
        async with aclosing(hand_written(_source(stamp))) as it:  # type: ignore[type-var]
            async for _ in it:
                return time.perf_counter_ns() - stamp[0]
        raise AssertionError("empty")

    def through(build: Callable[[Stream[Any]], Stream[Any]]) -> Latency:
        async def one() -> int:
            stamp = [0]
            s = build(Stream.from_async_iterable(_source(stamp)))
            async with s.iterate() as it:
                async for _ in it:
                    return time.perf_counter_ns() - stamp[0]
            raise AssertionError("empty")

        return one

    out: dict[str, Latency] = {
        "bare source": bare,
        "Stream": through(lambda s: s),
        "hand-written re-chunker": hand,
        'smooth("word")': through(lambda s: s | smooth()),
    }
    try:
        count = load_encoding()
    except RuntimeError as exc:
        notes.append(f"of_type | smooth | count_tokens skipped: {exc}")
    else:
        out["of_type | smooth | count_tokens"] = through(
            lambda s: s | of_type(TextDelta) | smooth() | count_tokens(TokenCounter(), tokenizer=count, emit_every=None)
        )
    return out, notes


NOTES = {
    "bare source": "async for over the source itself (the limit)",
    "Stream": "Stream.from_async_iterable(src), no operator",
    "hand-written re-chunker": "bench_smooth.hand_written (cuts after the 2nd delta too)",
    'smooth("word")': "Stream | smooth(): waits for the next word to start",
    "of_type | smooth | count_tokens": "the realistic pipeline",
}


def run(quick: bool = False, *, streams: int | None = None, rounds: int | None = None) -> list[CaseResult]:
    """Run the case and print it; returns its result. The suite runner's entry."""
    k = streams or (1_000 if quick else 5_000)
    rounds = rounds or (3 if quick else 5)
    warmup = 1
    fns, notes = contenders()
    names = list(fns)
    per_round: dict[str, list[float]] = {n: [] for n in names}
    title = "time to first event: source yields its first delta -> consumer receives the first chunk"

    async def one_pass(fn: Latency) -> float:
        lat = []
        for _ in range(k):
            lat.append(await fn())
        return statistics.median(lat)

    with asyncio.Runner() as runner:
        for r in range(warmup + rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect()
                gc.disable()
                try:
                    value = runner.run(one_pass(fns[name]))
                finally:
                    gc.enable()
                if r >= warmup:
                    per_round[name].append(value)
            if _harness.ROUND_HOOK is not None:
                _harness.ROUND_HOOK(title, r + 1, warmup + rounds)

    result = CaseResult(title, items=k, rounds=rounds, baseline="bare source", unit="stream", clock="wall")
    for name in names:
        result.contenders.append(ContenderResult(name, NOTES[name], per_round[name], per_round[name], None))
    for c in result.contenders:
        c.ratio = result.ratio(c.name)
    print(result.table())
    for note in notes:
        print(f"  note: {note}")
    base = result["bare source"].median
    extra = {c.name: c.median - base for c in result.contenders if c.name != "bare source"}
    print("  added latency vs the bare source: " + ", ".join(f"{n} +{v / 1000:.1f} us" for n, v in extra.items()))
    result.info["added_ns"] = extra
    return [result]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="1,000 streams per round, 3 rounds")
    ap.add_argument("--streams", type=int, default=None, help="streams per contender per round")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", type=str, default=None, help="write the results to this file")
    args = ap.parse_args(argv)
    results = run(args.quick, streams=args.streams, rounds=args.rounds)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
