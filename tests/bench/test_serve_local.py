"""``streamops bench`` end to end against ``streamops serve`` with the local model (SmolLM2,
offline): the CLI with a concurrency sweep, JSON and plot; every request completes, tokens
come from the reported usage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamops.cli import app
from streamops.serve import create_app
from tests.serve.test_app import serve

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(r"ignore:Async generator 'http(x|core)\.:ResourceWarning")]


def test_bench_streamops_serve_local(tmp_path: Path) -> None:
    out, png = tmp_path / "serve.json", tmp_path / "serve.png"
    with serve(create_app(model="local", workers=2)) as base:
        r = CliRunner().invoke(
            app,
            ["bench", "--url", f"{base}/v1", "--model", "local", "--concurrency", "1,2", "--requests", "4",
             "--max-tokens", "24", "--prompt-tokens", "32", "--no-progress", "--json", str(out), "--plot", str(png)],
        )
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [(s["concurrency"], s["completed"], s["failed"]) for s in data["summaries"]] == [(1, 4, 0), (2, 4, 0)]
    for q in data["requests"]:
        assert q["ok"] and q["chunks"] >= 2 and q["ttft_s"] > 0 and q["e2e_s"] >= q["ttft_s"]
        assert q["tokens_source"] == "usage" and 1 <= q["output_tokens"] <= 24
    assert png.read_bytes()[:4] == b"\x89PNG"
