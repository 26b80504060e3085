"""The whole benchmark suite in one run: every case, streamops and its peers side by side.

Run::

    python benchmarks/run.py --quick                 # a smoke run: under a minute on 2 cores
    python benchmarks/run.py --json bench-full.json  # the full run (several minutes)
    python benchmarks/run.py --only core,merge       # some cases (names: --list)
    streamops bench-suite [--quick] [--json FILE]    # the same, from a source checkout

Every case runs its contenders in this one process, interleaved round by round, and reports
the median / min / max time per event and the ratio to the case's baseline (see
``_harness.py``). Case modules print their own detailed report; here it is captured (shown
with ``--verbose``, always kept in the JSON under ``logs``) and a progress bar and a summary
table are shown instead. Targets are printed as PASS/FAIL lines and never asserted: the exit
status is 0 unless a case raised an exception.

API (what ``tests/bench/test_runner.py`` uses): :func:`run_cases` and :func:`report`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import inspect
import io
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price table

import _harness  # noqa: E402
from _harness import CaseResult, ContenderResult, Target, environment  # noqa: E402

QUICK_BUDGET_S = 60.0


@dataclass
class Spec:
    """One entry of the suite: a case module's entry function and its sizes."""

    key: str
    title: str
    module: str
    call: Callable[[Any, bool, dict[str, Any]], list[CaseResult]]
    quick: dict[str, Any] = field(default_factory=dict)
    """Sizes for ``--quick`` (smaller than the module's own ``--quick``: the whole suite must
    fit in a minute)."""
    full: dict[str, Any] = field(default_factory=dict)
    optional: bool = False
    """Skipped (not an error) when the module file does not exist."""
    preload: tuple[str, ...] = ()
    """Modules imported (when installed) before the case, outside its timing, so that their
    objects are frozen out of the collector's way (see :func:`run_cases`)."""


def _gateway(mod: Any, quick: bool, kw: dict[str, Any]) -> list[CaseResult]:
    """The gateway case: through its ``run(quick)`` when it has one, else through its CLI
    (``main([--quick,] --json tmp)``), reading the results back from the JSON."""
    if hasattr(mod, "run"):
        return list(mod.run(quick, **kw))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gateway.json"
        argv = (["--quick"] if quick else []) + ["--json", str(out)]
        main = mod.main
        if inspect.signature(main).parameters:
            main(argv)
        else:
            saved = sys.argv
            sys.argv = [mod.__file__, *argv]
            try:
                main()
            finally:
                sys.argv = saved
        data = json.loads(out.read_text(encoding="utf-8"))
    return [case_from_dict(d) for d in data.get("cases", [])]


SPECS: list[Spec] = [
    Spec(
        "core",
        "operator overhead: of_type | map | scan",
        "bench_core",
        lambda m, q, kw: m.run(q, parts=("pipeline",), **kw),
        quick={"n": 50_000, "rounds": 3},
        full={"n": 1_000_000, "rounds": 7},
    ),
    Spec(
        "pipeline",
        'realistic pipeline: of_type | smooth("word") | count_tokens',
        "bench_pipeline",
        lambda m, q, kw: m.run(q, **kw),
        quick={"n": 20_000, "rounds": 3},
        full={"n": 300_000, "rounds": 5},
    ),
    Spec(
        "smooth",
        'smooth("word") vs a hand-written re-chunker',
        "bench_smooth",
        lambda m, q, kw: m.run(q, **kw),
        quick={"n": 50_000, "rounds": 3},
        full={"n": 1_000_000, "rounds": 5},
    ),
    Spec(
        "ingest",
        "ingest: raw SSE bytes vs the OpenAI / Anthropic SDKs and LiteLLM",
        "bench_ingest",
        lambda m, q, kw: m.run(q, **kw),
        quick={"rounds": 2},
        full={"rounds": 9},
        preload=("openai", "anthropic", "litellm"),
    ),
    Spec(
        "merge",
        "100-way merge vs an asyncio.Queue merge and aiostream",
        "bench_merge",
        lambda m, q, kw: m.run_merge(q, **kw),
        quick={"per_source": 500, "rounds": 3},
        full={"per_source": 10_000, "rounds": 5},
    ),
    Spec(
        "sources",
        "10,000 concurrent sources: memory per idle source",
        "bench_merge",
        lambda m, q, kw: m.run_sources(q, **kw),
        quick={"n": 10_000, "per": 5, "rounds": 1},
        full={"n": 10_000, "per": 20, "rounds": 3},
    ),
    Spec(
        "gateway",
        "gateway: SSE in -> events -> OpenAI chunk SSE out",
        "bench_gateway",
        _gateway,
        optional=True,
    ),
    Spec(
        "ttfe",
        'time to first event through smooth("word")',
        "bench_ttfe",
        lambda m, q, kw: m.run(q, **kw),
        quick={"streams": 500, "rounds": 3},
        full={"streams": 5_000, "rounds": 5},
    ),
    Spec(
        "frameworks",
        "framework ingest: from_run vs the framework's own stream (openai-agents, pydantic-ai, LangChain)",
        "bench_frameworks",
        lambda m, q, kw: m.run(q, **kw),
        quick={"n": 200, "rounds": 2},
        full={"n": 5_000, "rounds": 7},
        preload=("agents", "pydantic_ai", "langchain_core"),
    ),
    Spec(
        "stores",
        "run stores: publish throughput (batched vs naive) and Redis latency",
        "bench_stores",
        lambda m, q, kw: m.run(q, **kw),
        quick={"n": 2_000, "rounds": 2, "latency_n": 300},
        full={"n": 50_000, "rounds": 5, "latency_n": 3_000},
    ),
    Spec(
        "events",
        "event construction and JSON encoding",
        "bench_core",
        lambda m, q, kw: m.run(q, parts=("construction", "json"), **kw),
        quick={"n": 20_000, "rounds": 3},
        full={"n": 1_000_000, "rounds": 7},
    ),
]
SPECS.append(
    Spec(
        "agent",
        "agent runs: Agent(model).stream() vs the model's stream alone (text, structured, 2 tool calls)",
        "bench_agent",
        lambda m, q, kw: m.run(q, **kw),
        quick={"runs": 10, "rounds": 3},
        full={"runs": 60, "rounds": 7},
    )
)
SPECS.append(
    Spec(
        "client",
        "streamops bench's client: CPU per chunk vs an openai-SDK client; 500 streams at once",
        "bench_client",
        lambda m, q, kw: m.run(q, **kw),
        quick={"rounds": 1, "requests": 16, "chunks": 50, "streams": 500},
        full={"rounds": 5, "requests": 128, "chunks": 200, "streams": 1000},
        preload=("openai", "httpx"),
    )
)
NAMES = [s.key for s in SPECS]


def case_from_dict(d: dict[str, Any]) -> CaseResult:
    """A :class:`CaseResult` back from its ``to_dict()`` form (a case run in a subprocess)."""
    out = CaseResult(
        d["name"],
        d.get("items", 0),
        d.get("rounds", 0),
        d.get("baseline"),
        unit=d.get("unit", "item"),
        clock=d.get("clock", "cpu"),
        key=d.get("key", ""),
        info=dict(d.get("info") or {}),
    )
    for c in d.get("contenders", []):
        cr = ContenderResult(c["name"], c.get("note", ""), list(c.get("rounds_ns") or [c["median_ns"]]))
        cr.wall_ns_per_item = list(c.get("wall_rounds_ns") or [])
        cr.ratio = c.get("ratio")
        out.contenders.append(cr)
    for t in d.get("targets", []):
        out.targets.append(Target(t["name"], t["value"], t["limit"], t["op"], t.get("unit", "x")))
    return out


@dataclass
class SuiteRun:
    """What :func:`run_cases` did."""

    results: list[CaseResult] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    quick: bool = False
    wall_s: float = 0.0

    @property
    def targets(self) -> list[Target]:
        return [t for r in self.results for t in r.targets]


def select(only: list[str] | None) -> list[Spec]:
    """The specs named in ``only`` (comma-separated items allowed), in suite order."""
    if not only:
        return list(SPECS)
    wanted = {n.strip() for item in only for n in item.split(",") if n.strip()}
    unknown = wanted - set(NAMES)
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(sorted(unknown))}; choose from {', '.join(NAMES)}")
    return [s for s in SPECS if s.key in wanted]


def run_cases(
    only: list[str] | None = None,
    *,
    quick: bool = False,
    sizes: dict[str, dict[str, Any]] | None = None,
    on_start: Callable[[Spec], None] | None = None,
    on_round: Callable[[str, int, int], None] | None = None,
    echo: bool = False,
) -> SuiteRun:
    """Run the selected cases (all by default) one after the other.

    ``sizes`` overrides a case's keyword arguments (``{"core": {"n": 3000, "rounds": 2}}``).
    A case module's printed report is captured into ``logs`` (also echoed with ``echo``); an
    exception in a case is recorded in ``errors`` (with its traceback) and the suite goes on;
    a missing optional module is recorded in ``skipped``.
    """
    run = SuiteRun(quick=quick)
    t_suite = time.perf_counter()
    saved_hook = _harness.ROUND_HOOK
    _harness.ROUND_HOOK = on_round
    try:
        for spec in select(only):
            if on_start is not None:
                on_start(spec)
            if spec.optional and not (HERE / f"{spec.module}.py").exists():
                run.skipped[spec.key] = f"benchmarks/{spec.module}.py does not exist"
                continue
            kw = dict(spec.quick if quick else spec.full)
            kw.update((sizes or {}).get(spec.key, {}))
            buf = io.StringIO()
            t0 = time.perf_counter()
            try:
                with contextlib.redirect_stdout(buf):
                    mod = importlib.import_module(spec.module)
                    for name in spec.preload:
                        with contextlib.suppress(ImportError):
                            importlib.import_module(name)
                    # The harness runs gc.collect() before every timed pass; with litellm's
                    # import-time heap (~500,000 objects) that is 0.4 s a pass. Objects alive
                    # now (modules, input data) are moved out of the collector's sight.
                    gc.collect()
                    gc.freeze()
                    results = spec.call(mod, quick, kw)
            except Exception:
                run.errors[spec.key] = traceback.format_exc()
                results = []
            run.seconds[spec.key] = time.perf_counter() - t0
            run.logs[spec.key] = buf.getvalue()
            if echo:
                print(buf.getvalue(), end="")
            for r in results:
                r.key = spec.key
            run.results += results
    finally:
        _harness.ROUND_HOOK = saved_hook
        gc.unfreeze()
    run.wall_s = time.perf_counter() - t_suite
    return run


def report(run: SuiteRun) -> dict[str, Any]:
    """The machine-readable results (what ``--json`` writes)."""
    targets = []
    for r in run.results:
        for t in r.targets:
            targets.append({"case": r.key, **t.to_dict()})
    return {
        "environment": environment(),
        "quick": run.quick,
        "wall_s": run.wall_s,
        "case_seconds": run.seconds,
        "cases": [r.to_dict() for r in run.results],
        "targets": targets,
        "target_lines": [t["line"] for t in targets],
        "skipped": run.skipped,
        "errors": run.errors,
        "logs": run.logs,
    }


# ---------------------------------------------------------------------------------- display


def _fmt_ns(ns: float) -> str:
    if ns >= 100_000:
        return f"{ns / 1000:,.0f} us"
    if ns >= 10_000:
        return f"{ns / 1000:,.1f} us"
    return f"{ns:,.0f} ns"


def render(run: SuiteRun, console: Any) -> None:
    """The summary table and the targets, with rich."""
    from rich.table import Table

    table = Table(title="streamops benchmarks (median per unit; ratio = times the case's baseline)")
    table.add_column("case", max_width=40)
    table.add_column("contender", no_wrap=True)
    for col in ("median", "min", "max", "ratio"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("per", no_wrap=True)
    for r in run.results:
        label = r.name.split(" (")[0]
        if not label.startswith(r.key):
            label = f"{r.key}: {label}"
        for i, c in enumerate(r.contenders):
            if c.name == r.baseline:
                ratio = "base"
            elif c.ratio is None:
                ratio = ""
            else:
                ratio = f"{c.ratio:.2f}x"
            clock = "" if r.clock == "cpu" else f" ({r.clock})"
            table.add_row(
                label if i == 0 else "",
                c.name,
                _fmt_ns(c.median),
                _fmt_ns(c.min),
                _fmt_ns(c.max),
                ratio,
                f"{r.unit}{clock}",
                end_section=i == len(r.contenders) - 1,
            )
    console.print(table)
    for r in run.results:
        mem = r.info.get("idle_source_bytes")
        if mem is not None:
            console.print(f"  {r.key}: {mem / 1024:.2f} KiB per idle source ({r.info.get('sources', 0):,} sources)")
    console.print("[bold]Targets[/bold] (printed, never asserted):")
    for t in run.targets:
        style = "green" if t.passed else "red"
        console.print(f"  [{style}]{t.line()}[/{style}]", highlight=False)
    for key, why in run.skipped.items():
        console.print(f"  skipped {key}: {why}")
    for key, tb in run.errors.items():
        console.print(f"[red]ERROR in case {key}:[/red]\n{tb}", highlight=False, markup=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small sizes, fewer rounds: a smoke run (< 60 s on 2 cores)")
    ap.add_argument("--json", metavar="FILE", default=None, help="write machine-readable results to FILE")
    ap.add_argument("--only", action="append", metavar="NAMES", help=f"comma-separated cases: {', '.join(NAMES)}")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--verbose", action="store_true", help="also print each case module's own report")
    args = ap.parse_args(argv)
    if args.list:
        for s in SPECS:
            print(f"{s.key:<10} {s.title}")
        return 0
    try:
        select(args.only)
    except ValueError as exc:
        ap.error(str(exc))

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(width=None if sys.stdout.isatty() else 150)
    err = Console(stderr=True)
    specs = select(args.only)
    mode = "quick" if args.quick else "full"
    console.print(
        f"streamops bench ({mode}): {len(specs)} cases; contenders interleaved in one process, "
        "process CPU time unless marked, medians over rounds"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as progress:
        overall = progress.add_task("cases", total=len(specs))
        rounds = progress.add_task("", total=1)
        started: list[Spec] = []

        def on_start(spec: Spec) -> None:
            if started:
                progress.advance(overall)
            started.append(spec)
            progress.update(overall, description=f"cases ({spec.key})")
            progress.update(rounds, description=f"  {spec.title[:48]}", completed=0, total=1)

        def on_round(name: str, r: int, total: int) -> None:
            progress.update(rounds, description=f"  {name[:48]}", completed=r, total=total)

        run = run_cases(args.only, quick=args.quick, on_start=on_start, on_round=on_round, echo=args.verbose)
        progress.update(overall, completed=len(specs))
    render(run, console)
    console.print(
        f"Total wall time {run.wall_s:.1f} s" + (f" (quick budget {QUICK_BUDGET_S:.0f} s)" if args.quick else "")
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report(run), indent=2, default=repr) + "\n", encoding="utf-8")
        console.print(f"Wrote {args.json}")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
