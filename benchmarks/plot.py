"""Plot the results of ``run.py --json FILE``: ns per unit of every contender, case by case.

Run::

    python benchmarks/plot.py bench-full.json docs/performance.png

Needs matplotlib (``pip install -e ".[bench]"``). One horizontal bar per contender, log scale,
grouped by case; streamops in blue, each case's baseline in grey, the other peers in orange.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STREAMOPS_NAMES = ("streamops", "Stream", 'smooth("word")', "of_type | smooth | count_tokens", "to_json", "from_json")


def is_streamops(name: str) -> bool:
    return name.startswith(STREAMOPS_NAMES)


def plot(data: dict[str, Any], out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[tuple[str, float, str]] = []  # label, ns, colour
    seps: list[tuple[float, str]] = []
    for case in data["cases"]:
        title = case["name"].split(" (")[0]
        if not title.startswith(case["key"]):
            title = f"{case['key']}: {title}"
        seps.append((len(rows), title))
        for c in case["contenders"]:
            if c["name"] == case["baseline"]:
                colour = "#9e9e9e"
            elif is_streamops(c["name"]):
                colour = "#1f77b4"
            else:
                colour = "#ff7f0e"
            ratio = "" if c["ratio"] is None or c["name"] == case["baseline"] else f"  {c['ratio']:.2f}x"
            unit = case["unit"] + (" wall" if case["clock"] == "wall" else "")
            rows.append((f"{c['name']}  [{unit}]{ratio}", c["median_ns"], colour))

    height = 0.26 * (len(rows) + 1.6 * len(seps)) + 1.2
    fig, ax = plt.subplots(figsize=(11, height))
    ys: list[float] = []
    y = 0.0
    sep_y: list[tuple[float, str]] = []
    starts = {i: t for i, t in seps}
    for i in range(len(rows)):
        if i in starts:
            y += 1.0 if i else 0.4
            sep_y.append((y, starts[i]))
            y += 0.9
        ys.append(y)
        y += 1.0
    ax.barh(ys, [r[1] for r in rows], color=[r[2] for r in rows], height=0.8)
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=7.5)
    for yy, t in sep_y:
        ax.text(0.005, yy, t, fontsize=8.5, fontweight="bold", va="center", transform=ax.get_yaxis_transform())
    for yy, r in zip(ys, rows, strict=True):
        ax.text(r[1] * 1.08, yy, f"{r[1]:,.0f}", fontsize=6.5, va="center")
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("median ns per unit (log scale; process CPU time unless marked wall)")
    env = data.get("environment", {})
    ax.set_title(
        f"streamops benchmarks: blue streamops, grey baseline, orange peers  "
        f"(Python {env.get('python', '?')}, {env.get('cpus', '?')} CPUs, shared machine)",
        fontsize=9,
    )
    ax.grid(axis="x", which="both", alpha=0.25)
    fig.tight_layout(pad=1.5)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python benchmarks/plot.py RESULTS.json OUT.png", file=sys.stderr)
        return 2
    plot(json.loads(Path(args[0]).read_text(encoding="utf-8")), args[1])
    print(f"Wrote {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
