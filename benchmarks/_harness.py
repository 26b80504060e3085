"""A tiny shared harness for the benchmark cases.

Every case is a set of *contenders* that do the same work over the same input. The harness
runs them **interleaved** in one process (round 1: A B C, round 2: B C A, ...), so that the
noise of a shared machine (other processes, CPU frequency, a GC pause) lands on every
contender alike; it reports the median, min and max time per item over the rounds and the
ratio to a named baseline: the median over rounds of the within-round ratio, which cancels
load that drifts between rounds.

Timed passes run with the cyclic garbage collector disabled (``gc.collect()`` first, then
``gc.disable()`` ... ``gc.enable()``) for every contender alike: a collection triggered by one
contender's allocations would otherwise be billed to whichever contender happens to run.

Clock: by default the process CPU time (``time.process_time_ns``), not the wall clock. The
contenders are CPU-bound and single-threaded (no I/O, no sleeping), so CPU time is their cost;
on a shared machine the wall clock also counts the time other processes held the CPU, which
swamps differences of 10-20%. The wall-clock figures are kept too (``wall_ns_per_item``, and in
the JSON); ``clock="wall"`` makes them the primary ones.

Async contenders are plain ``async def`` functions; they all run on one ``asyncio.Runner``
owned by the harness (the loop is created once, not per pass).

Usage::

    case = Case("core: of_type|map|scan", items=len(events), baseline="hand-written")
    case.add("hand-written", run_hand_written)          # async def or plain def, no arguments
    case.add("streamops", run_streamops, note="fused stages")
    result = case.run(rounds=7)
    print(result.table())
    result.check_equal()                                 # every contender returned the same value
    write_json("out.json", [result])
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Case", "CaseResult", "ContenderResult", "Target", "verdict", "write_json"]

ROUND_HOOK: Callable[[str, int, int], None] | None = None
"""If set, called after every round of every :meth:`Case.run` as ``hook(case_name, round,
total)`` (``round`` counts the warmup rounds too, from 1): the suite runner's progress bar."""


@dataclass
class Target:
    """A target from the issues, judged on one measured value (printed, never asserted)."""

    name: str
    value: float
    limit: float
    op: str
    """How ``value`` must compare with ``limit``: ``"<="``, ``"<"`` or ``">="``."""
    unit: str = "x"

    @property
    def passed(self) -> bool:
        if self.op == "<=":
            return self.value <= self.limit
        if self.op == "<":
            return self.value < self.limit
        if self.op == ">=":
            return self.value >= self.limit
        raise ValueError(f"unknown comparison {self.op!r}")

    def line(self) -> str:
        u = self.unit
        return f"{verdict(self.passed)}  {self.name} = {self.value:.2f}{u} (target {self.op} {self.limit:g}{u})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "limit": self.limit,
            "unit": self.unit,
            "pass": self.passed,
            "line": self.line(),
        }


@dataclass
class _Contender:
    name: str
    fn: Callable[[], Any]
    note: str = ""
    is_async: bool = False


@dataclass
class ContenderResult:
    """What one contender measured: nanoseconds per item, one value per timed round."""

    name: str
    note: str
    ns_per_item: list[float]
    wall_ns_per_item: list[float] = field(default_factory=list)
    result: Any = None
    ratio: float | None = None
    """Times the baseline, paired by round (see :meth:`CaseResult.ratio`); ``None`` when the
    case has no baseline."""

    @property
    def median(self) -> float:
        return statistics.median(self.ns_per_item)

    @property
    def min(self) -> float:
        return min(self.ns_per_item)

    @property
    def max(self) -> float:
        return max(self.ns_per_item)


@dataclass
class CaseResult:
    """The outcome of :meth:`Case.run`."""

    name: str
    items: int
    rounds: int
    baseline: str | None
    contenders: list[ContenderResult] = field(default_factory=list)
    unit: str = "item"
    clock: str = "cpu"
    key: str = ""
    """A short id of the case (``core``, ``merge``...), set by the suite runner."""
    targets: list[Target] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    """Further figures and checks of the case (written into the JSON)."""

    def __getitem__(self, name: str) -> ContenderResult:
        for c in self.contenders:
            if c.name == name:
                return c
        raise KeyError(name)

    def ratio(self, name: str, to: str | None = None) -> float:
        """How many times slower ``name`` is than ``to`` (the baseline by default): the median,
        over the rounds, of the two contenders' time ratio within the same round.

        Pairing by round cancels load that drifts between rounds (another process starting on
        a shared machine), which the ratio of the two overall medians does not.
        """
        other = to if to is not None else self.baseline
        if other is None:
            raise ValueError("no baseline to compare with")
        a, b = self[name].ns_per_item, self[other].ns_per_item
        return statistics.median(x / y for x, y in zip(a, b, strict=True))

    def table(self) -> str:
        """The results as a fixed-width text table."""
        width = max([len(c.name) for c in self.contenders] + [9])
        head = f"  {'contender':<{width}}  {'median':>9}  {'min':>9}  {'max':>9}  {'ratio':>7}  note"
        clock = "CPU" if self.clock == "cpu" else "wall"
        lines = [
            f"{self.name}  ({self.items:,} {self.unit}s x {self.rounds} interleaved rounds, "
            f"{clock} ns per {self.unit})",
            head,
            "  " + "-" * (len(head) - 2),
        ]
        for c in self.contenders:
            ratio = "" if c.ratio is None else f"{c.ratio:6.2f}x"
            if c.name == self.baseline:
                ratio = " (base)"
            lines.append(f"  {c.name:<{width}}  {c.median:9.1f}  {c.min:9.1f}  {c.max:9.1f}  {ratio:>7}  {c.note}")
        return "\n".join(lines)

    def check_equal(self, key: Callable[[Any], Any] | None = None) -> tuple[bool, str]:
        """Whether every contender returned the same value (through ``key`` if given).

        Returns ``(ok, message)``; it never raises.
        """
        values = [(c.name, key(c.result) if key else c.result) for c in self.contenders]
        ref_name, ref = values[0]
        bad = [f"{n}={v!r}" for n, v in values[1:] if v != ref]
        if bad:
            return False, f"MISMATCH vs {ref_name}={ref!r}: " + ", ".join(bad)
        return True, f"all {len(values)} contenders returned {ref!r}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "items": self.items,
            "unit": self.unit,
            "rounds": self.rounds,
            "clock": self.clock,
            "baseline": self.baseline,
            "contenders": [
                {
                    "name": c.name,
                    "note": c.note,
                    "median_ns": c.median,
                    "min_ns": c.min,
                    "max_ns": c.max,
                    "ratio": c.ratio,
                    "rounds_ns": c.ns_per_item,
                    "wall_median_ns": statistics.median(c.wall_ns_per_item) if c.wall_ns_per_item else None,
                    "wall_rounds_ns": c.wall_ns_per_item,
                }
                for c in self.contenders
            ],
            "targets": [t.to_dict() for t in self.targets],
            "info": self.info,
        }


class Case:
    """A set of contenders doing the same work, timed in interleaved rounds."""

    def __init__(self, name: str, *, items: int, baseline: str | None = None, unit: str = "item") -> None:
        self.name = name
        self.items = items
        self.baseline = baseline
        self.unit = unit
        self._contenders: list[_Contender] = []

    def add(self, name: str, fn: Callable[[], Any], *, note: str = "") -> Case:
        """Add a contender: a function of no arguments (``async def`` or plain) that does one
        whole pass over the case's ``items`` items and returns a value to check."""
        if any(c.name == name for c in self._contenders):
            raise ValueError(f"duplicate contender {name!r}")
        self._contenders.append(_Contender(name, fn, note, inspect.iscoroutinefunction(fn)))
        return self

    def run(
        self,
        *,
        rounds: int = 5,
        warmup: int = 1,
        gc_off: bool = True,
        clock: str = "cpu",
        progress: bool = False,
    ) -> CaseResult:
        """Run ``warmup`` untimed rounds, then ``rounds`` timed ones; contenders interleaved,
        the order rotated each round. ``clock`` is ``"cpu"`` (process CPU time, the default)
        or ``"wall"``. Returns the per-item timings."""
        if clock not in ("cpu", "wall"):
            raise ValueError(f"clock must be 'cpu' or 'wall', got {clock!r}")
        if self.baseline is not None and all(c.name != self.baseline for c in self._contenders):
            raise ValueError(f"baseline {self.baseline!r} is not a contender")
        timings: dict[str, list[float]] = {c.name: [] for c in self._contenders}
        walls: dict[str, list[float]] = {c.name: [] for c in self._contenders}
        results: dict[str, Any] = {}
        k = len(self._contenders)
        with asyncio.Runner() as runner:
            for r in range(warmup + rounds):
                shift = r % k
                order = self._contenders[shift:] + self._contenders[:shift]
                for c in order:
                    cpu_ns, wall_ns, value = _time_one(runner, c, gc_off)
                    results[c.name] = value
                    if r >= warmup:
                        timings[c.name].append((cpu_ns if clock == "cpu" else wall_ns) / self.items)
                        walls[c.name].append(wall_ns / self.items)
                if ROUND_HOOK is not None:
                    ROUND_HOOK(self.name, r + 1, warmup + rounds)
                if progress:
                    tag = "warmup" if r < warmup else f"round {r - warmup + 1}/{rounds}"
                    print(f"    .. {self.name}: {tag} done", file=sys.stderr, flush=True)
        out = CaseResult(self.name, self.items, rounds, self.baseline, unit=self.unit, clock=clock)
        for c in self._contenders:
            out.contenders.append(ContenderResult(c.name, c.note, timings[c.name], walls[c.name], results[c.name]))
        if self.baseline is not None:
            for cr in out.contenders:
                cr.ratio = out.ratio(cr.name)
        return out


def _time_one(runner: asyncio.Runner, c: _Contender, gc_off: bool) -> tuple[int, int, Any]:
    """One timed pass: ``(cpu_ns, wall_ns, value)``."""
    cpu = time.process_time_ns
    wall = time.perf_counter_ns
    gc.collect()
    if gc_off:
        gc.disable()
    try:
        if c.is_async:
            coro = c.fn()
            w0, c0 = wall(), cpu()
            value = runner.run(coro)
            c1, w1 = cpu(), wall()
        else:
            w0, c0 = wall(), cpu()
            value = c.fn()
            c1, w1 = cpu(), wall()
    finally:
        if gc_off:
            gc.enable()
    return c1 - c0, w1 - w0, value


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def environment() -> dict[str, Any]:
    """Where the numbers were taken (written into the JSON output)."""
    import os

    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path: str | Path, cases: Iterable[CaseResult], extra: dict[str, Any] | None = None) -> None:
    """Write the results (and ``extra``, e.g. pass/fail checks) to ``path`` as JSON."""
    data: dict[str, Any] = {"environment": environment(), "cases": [c.to_dict() for c in cases]}
    if extra:
        data.update(extra)
    Path(path).write_text(json.dumps(data, indent=2, default=repr) + "\n", encoding="utf-8")
