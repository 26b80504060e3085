"""Making an event from another: :func:`streamops.events.derive` (and its hot-path form
``deriver``) against :func:`dataclasses.replace` and the plain constructor (the baseline), in
ns per event.

Run::

    python benchmarks/bench_derive.py [--number N] [--rounds R]

Prints one line per contender (best of ``R`` rounds of ``N`` copies of a ``TextDelta``
with one field changed) and its ratio to the constructor.
"""

from __future__ import annotations

import argparse
import dataclasses
import timeit

from streamops.events import TextDelta, derive, deriver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=200_000, help="copies per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (the best is kept)")
    args = ap.parse_args()
    e = TextDelta(delta="hello", block_id="b", run_id="r", agent="a", seq=3)
    copy = deriver(TextDelta, "delta")
    cases = {
        "constructor": lambda: TextDelta(
            delta="x", block_id=e.block_id, run_id=e.run_id, agent=e.agent, seq=e.seq, ts=e.ts, raw=e.raw
        ),
        "derive": lambda: derive(e, delta="x"),
        "deriver (hot path)": lambda: copy(e, "x"),
        "dataclasses.replace": lambda: dataclasses.replace(e, delta="x"),
    }
    base = 0.0
    for name, fn in cases.items():
        ns = min(timeit.repeat(fn, number=args.number, repeat=args.rounds)) / args.number * 1e9
        base = base or ns
        print(f"{name:22s} {ns:7.0f} ns/event  x{ns / base:.2f}")


if __name__ == "__main__":
    main()
