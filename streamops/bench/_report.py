"""Rendering of results: the final table (rich), the comparison of two results, the plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._metrics import Stats, Summary
from ._run import BenchResult, summaries_by_key

__all__ = ["compare_table", "plot", "summary_table"]

_ROWS = (
    ("ttft_s", "TTFT", 1e3, "ms"),
    ("ttfc_s", "TTFC (first text)", 1e3, "ms"),
    ("itl_s", "ITL", 1e3, "ms"),
    ("tpot_s", "TPOT", 1e3, "ms"),
    ("e2e_s", "E2E", 1e3, "ms"),
    ("chunks_per_s", "chunks/s per stream", 1.0, ""),
    ("tokens_per_s", "tokens/s per stream", 1.0, ""),
)


def _fmt(v: float | None, scale: float = 1.0) -> str:
    if v is None or v != v:
        return "-"
    v *= scale
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def _step(s: Summary) -> str:
    return f"c={s.concurrency}" if s.concurrency is not None else f"rate={s.rate}/s"


def summary_table(summaries: Sequence[Summary]) -> list[object]:
    """Rich renderables: one table per target and step (p50/p90/p95/p99/mean/max), then one
    line of totals each."""
    from rich.table import Table

    out: list[object] = []
    for s in summaries:
        table = Table(title=f"{s.target}  {_step(s)}", title_justify="left")
        table.add_column("metric")
        for col in ("p50", "p90", "p95", "p99", "mean", "max", "n"):
            table.add_column(col, justify="right")
        for key, name, scale, unit in _ROWS:
            st: Stats = s.metrics[key]
            table.add_row(
                f"{name} ({unit})" if unit else name,
                *(_fmt(st.p.get(q), scale) for q in (50, 90, 95, 99)),
                _fmt(st.mean, scale), _fmt(st.max, scale), str(st.n),
            )
        out.append(table)
        errors = ", ".join(f"{k}={v}" for k, v in sorted(s.errors.items())) or "none"
        line = (
            f"  completed {s.completed}, failed {s.failed} (errors: {errors}); "
            f"{_fmt(s.request_throughput)} req/s, {_fmt(s.chunk_throughput)} chunks/s, "
            f"{_fmt(s.output_token_throughput)} output tokens/s (tokens from {s.tokens_source})"
        )
        if s.goodput is not None:
            line += f"; goodput {_fmt(s.goodput)} req/s"
        if s.client_cpu_per_chunk_us is not None:
            line += f"; client CPU {_fmt(s.client_cpu_per_chunk_us)} us/chunk"
        if s.pipeline_cpu_per_chunk_us is not None:
            line += f"; pipeline CPU {_fmt(s.pipeline_cpu_per_chunk_us)} us/chunk"
        out.append(line)
    return out


_COMPARE = (
    ("ttft_s p50", lambda s: s.metrics["ttft_s"].p.get(50)),
    ("ttft_s p99", lambda s: s.metrics["ttft_s"].p.get(99)),
    ("itl_s p50", lambda s: s.metrics["itl_s"].p.get(50)),
    ("itl_s p99", lambda s: s.metrics["itl_s"].p.get(99)),
    ("tpot_s mean", lambda s: s.metrics["tpot_s"].mean),
    ("e2e_s p50", lambda s: s.metrics["e2e_s"].p.get(50)),
    ("e2e_s p99", lambda s: s.metrics["e2e_s"].p.get(99)),
    ("request_throughput", lambda s: s.request_throughput),
    ("chunk_throughput", lambda s: s.chunk_throughput),
    ("output_token_throughput", lambda s: s.output_token_throughput),
    ("failed", lambda s: float(s.failed)),
    ("client_cpu_per_chunk_us", lambda s: s.client_cpu_per_chunk_us),
)


def compare_table(a: BenchResult, b: BenchResult) -> object:
    """A rich table of B / A for each (target, step) present in both results (matched by
    target label and step; when each holds a single target, those two are matched per step)."""
    from rich.table import Table

    ka, kb = summaries_by_key(a), summaries_by_key(b)
    pairs = [(k, ka[k], kb[k]) for k in ka if k in kb]
    if not pairs:
        ta = {k[0] for k in ka}
        tb = {k[0] for k in kb}
        if len(ta) == 1 and len(tb) == 1:
            steps_b = {(k[1], k[2]): v for k, v in kb.items()}
            pairs = [(k, v, steps_b[(k[1], k[2])]) for k, v in ka.items() if (k[1], k[2]) in steps_b]
    table = Table(title="B / A (ratio; < 1 means B is lower)", title_justify="left")
    table.add_column("target, step")
    table.add_column("metric")
    for col in ("A", "B", "B/A"):
        table.add_column(col, justify="right")
    for _key, sa, sb in pairs:
        for name, get in _COMPARE:
            va, vb = get(sa), get(sb)
            ratio = vb / va if va and vb is not None else None
            table.add_row(f"{sa.target} {_step(sa)}", name, _fmt(va), _fmt(vb), _fmt(ratio))
    return table


def plot(result: BenchResult, path: str | Path) -> None:
    """Save a PNG: CDFs of TTFT, ITL and E2E per target and step, and output chunk
    throughput against concurrency (or rate). Needs matplotlib (the ``plot`` extra).

    Raises:
        RuntimeError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'streamops[plot]'") from exc
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    panels = (("ttft_s", "TTFT"), ("itl_s", "inter-chunk latency"), ("e2e_s", "E2E latency"))
    for ax, (key, title) in zip(axes[:3], panels, strict=True):
        for s in result.summaries:
            group = [
                r for r in result.requests
                if r.ok and r.target == s.target and r.concurrency == s.concurrency and r.rate == s.rate
            ]
            if key == "itl_s":
                values = sorted(g for r in group for g in r.itl_s)
            else:
                values = sorted(v for r in group if (v := getattr(r, key)) is not None)
            if values:
                ys = [(i + 1) / len(values) for i in range(len(values))]
                ax.step([v * 1e3 for v in values], ys, where="post", label=f"{s.target} {_step(s)}")
        ax.set_title(f"{title} CDF")
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of requests" if key != "itl_s" else "fraction of gaps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    ax = axes[3]
    for target in dict.fromkeys(s.target for s in result.summaries):
        mine = [s for s in result.summaries if s.target == target]
        xs = [float(s.concurrency if s.concurrency is not None else s.rate or 0.0) for s in mine]
        ax.plot(xs, [s.chunk_throughput for s in mine], marker="o", label=f"{target} chunks/s")
        ax.plot(xs, [s.output_token_throughput for s in mine], marker="x", ls="--", label=f"{target} tokens/s")
    ax.set_title("throughput vs load")
    ax.set_xlabel("concurrency" if all(s.concurrency is not None for s in result.summaries) else "load")
    ax.set_ylabel("per second, all streams")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path), dpi=90)
    plt.close(fig)
