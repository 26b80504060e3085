"""The benchmark runner keeps working: one tiny case through ``benchmarks/run.py``'s API, the
JSON it writes, and ``streamops bench`` finding (or not finding) the runner. No timing is
asserted."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streamops.cli import app

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

@pytest.fixture(scope="module")
def runner_mod() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH))


def test_core_case_through_the_runner(runner_mod: Any, tmp_path: Path) -> None:
    rounds: list[tuple[str, int, int]] = []
    run = runner_mod.run_cases(
        ["core"], quick=True, sizes={"core": {"n": 3000, "rounds": 2}}, on_round=lambda *a: rounds.append(a)
    )
    assert not run.errors, run.errors
    assert [r.key for r in run.results] == ["core"]
    assert rounds and rounds[-1][1:] == (3, 3)  # 1 warmup + 2 timed rounds, reported to the hook
    assert "hand-written" in run.logs["core"]  # the case's own report is captured

    data = runner_mod.report(run)
    out = tmp_path / "bench.json"
    out.write_text(json.dumps(data, default=repr), encoding="utf-8")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data) >= {"environment", "quick", "wall_s", "cases", "targets", "target_lines"}
    [case] = data["cases"]
    assert case["key"] == "core"
    assert case["baseline"] == "hand-written"
    assert case["items"] == 3000 and case["rounds"] == 2
    names = {c["name"] for c in case["contenders"]}
    assert {"hand-written", "streamops", "per-stage agens"} <= names
    for c in case["contenders"]:
        assert c["median_ns"] > 0 and c["min_ns"] <= c["median_ns"] <= c["max_ns"]
        assert len(c["rounds_ns"]) == 2
        assert isinstance(c["ratio"], float)
    assert case["info"]["checks"]["pipeline"]["results_equal"] is True
    assert len(data["targets"]) == 2
    for t in data["targets"]:
        assert t["case"] == "core" and isinstance(t["pass"], bool) and t["line"].startswith(("PASS", "FAIL"))
    assert data["target_lines"] == [t["line"] for t in data["targets"]]


def test_case_names(runner_mod: Any) -> None:
    assert [s.key for s in runner_mod.select(["merge,core"])] == ["core", "merge"]
    with pytest.raises(ValueError, match="unknown case"):
        runner_mod.select(["nope"])


def test_cli_bench_without_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMOPS_BENCHMARKS", str(tmp_path))
    result = CliRunner().invoke(app, ["bench-suite", "--quick"])
    assert result.exit_code == 2
    assert "source checkout" in result.output


def test_cli_bench_finds_the_runner() -> None:
    from streamops.cli import _bench_runner

    assert _bench_runner() == BENCH / "run.py"


def test_sse_decoder_bench_runs_and_both_decoders_agree() -> None:
    import subprocess

    r = subprocess.run(
        [sys.executable, str(BENCH / "bench_sse.py"), "--rounds", "1"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("67 recorded bodies")
    rows = [line for line in lines if "x   (" in line]
    assert len(rows) == 3
    assert all("(67/67 bodies)" in row for row in rows)  # same events from both decoders on every body
