"""Write the generated parts of docs/performance.md from docs/performance.json.

Run ``python docs/gen_performance.py`` after a full benchmark run
(``python benchmarks/run.py --json docs/performance.json``); a test checks the page is up to
date. Only the text between marker comments (``<!-- results:begin -->`` ...
``<!-- results:end -->``, likewise ``machine``, ``memory`` and ``targets``) is generated: the
results table, the targets table, the memory per idle source and the run's date and
duration. The prose around them is written by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGE = HERE / "performance.md"
RESULTS = HERE / "performance.json"
BLOCKS = ("machine", "results", "memory", "targets")


def fmt_ns(ns: float) -> str:
    """ns with thousands separators below 10 µs, µs (3 significant digits) above."""
    if ns >= 100_000:
        return f"{ns / 1000:,.0f} µs"
    if ns >= 10_000:
        return f"{ns / 1000:,.1f} µs"
    return f"{ns:,.0f} ns"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def case_label(case: dict[str, Any]) -> str:
    """The case's name without its parenthesised detail, prefixed with its key (as run.py and
    plot.py label it)."""
    label = case["name"].split(" (")[0]
    if not label.startswith(case["key"]):
        label = f"{case['key']}: {label}"
    return label


def render_machine(data: dict[str, Any]) -> list[str]:
    env = data.get("environment", {})
    date = str(env.get("time", ""))[:10]
    system = str(env.get("platform", "?")).split("-")[0]
    python = f"{env.get('implementation', 'Python')} {env.get('python', '?')}"
    when = f" of {date}" if date else ""
    mode = "quick" if data.get("quick") else "full"
    return [
        f"**The machine.** The numbers below come from one {mode} run{when} (`python benchmarks/run.py",
        f"--json bench-full.json`, {data['wall_s']:.0f} s) on a {env.get('cpus', '?')}-core {system} VM, {python}.",
    ]


def render_results(data: dict[str, Any]) -> list[str]:
    lines = [
        "| case | contender | median | min | max | ratio | per |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for case in data["cases"]:
        per = case["unit"] + ("" if case["clock"] == "cpu" else f" ({case['clock']})")
        for i, c in enumerate(case["contenders"]):
            if c["name"] == case["baseline"]:
                ratio = "base"
            elif c["ratio"] is None:
                ratio = ""
            else:
                ratio = f"{c['ratio']:.2f}x"
            cells = [
                _cell(case_label(case)) if i == 0 else "",
                _cell(c["name"]),
                fmt_ns(c["median_ns"]),
                fmt_ns(c["min_ns"]),
                fmt_ns(c["max_ns"]),
                ratio,
                per,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    for key, why in data.get("skipped", {}).items():
        lines += ["", f"Skipped in this run: {key} ({why})."]
    for key in data.get("errors", {}):
        lines += ["", f"**Case {key} raised an exception in this run** (traceback in performance.json)."]
    return lines


def render_memory(data: dict[str, Any]) -> list[str]:
    for case in data["cases"]:
        info = case.get("info", {})
        if "idle_source_bytes" in info:
            rounds = len(info.get("idle_source_bytes_rounds", [])) or case["rounds"]
            return [
                f"Memory: **{info['idle_source_bytes'] / 1024:.2f} KiB per idle source** with "
                f"{info.get('sources', 0):,} concurrent sources merged",
                f"(tracemalloc, every source task started and waiting; median of {rounds} rounds).",
            ]
    return ["Memory per idle source: not measured in this run."]


def render_targets(data: dict[str, Any]) -> list[str]:
    lines = [
        "| target (from the issues) | limit | measured | verdict |",
        "|---|---|--:|---|",
    ]
    for t in data["targets"]:
        unit = t.get("unit", "x")
        cells = [
            _cell(t["name"]),
            f"{t['op']} {t['limit']:g}{unit}",
            f"{t['value']:.2f}{unit}",
            "PASS" if t["pass"] else "**FAIL**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


RENDERERS = {
    "machine": render_machine,
    "results": render_results,
    "memory": render_memory,
    "targets": render_targets,
}


def block_pattern(name: str) -> re.Pattern[str]:
    """The marker comments of one generated block and what lies between them."""
    return re.compile(rf"(<!-- {name}:begin[^\n]*-->\n)(.*?)(<!-- {name}:end -->)", re.S)


def render(data: dict[str, Any] | None = None, page: str | None = None) -> str:
    """docs/performance.md with its generated blocks rendered from the results."""
    if data is None:
        data = json.loads(RESULTS.read_text(encoding="utf-8"))
    if page is None:
        page = PAGE.read_text(encoding="utf-8")
    for name in BLOCKS:
        body = "\n".join(RENDERERS[name](data)) + "\n"
        page, n = block_pattern(name).subn(lambda m, body=body: m.group(1) + body + m.group(3), page)
        if n != 1:
            raise ValueError(f"docs/performance.md: expected one {name}:begin / {name}:end pair, found {n}")
    return page


def hand_written(page: str) -> str:
    """The page without its generated blocks: the prose written by hand."""
    for name in BLOCKS:
        page = block_pattern(name).sub("", page)
    return page


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}")
