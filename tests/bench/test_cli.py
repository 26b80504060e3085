"""``streamops bench`` from the command line: a fake endpoint with --json, --plot and
--compare; a replayed recording; a pipeline; bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamops.bench import SCHEMA, BenchResult, load_pipeline, parse_slo
from streamops.cli import app
from tests.bench._server import CHUNKS, threaded_fake_server
from tests.conftest import RECORDED

pytestmark = pytest.mark.filterwarnings(r"ignore:Async generator 'http(x|core)\.:ResourceWarning")

TEXT = RECORDED / "openai/chat_text_usage_openai_python.sse"


def test_endpoint_json_plot_and_compare(tmp_path: Path) -> None:
    out_a, out_b, png = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "plot.png"
    with threaded_fake_server() as server:
        args = ["bench", "--url", server.base_url, "--model", "ok", "--requests", "4", "--warmup", "1",
                "--no-progress", "--slo", "ttft=2,tpot=500ms"]
        r = CliRunner().invoke(app, [*args, "--concurrency", "1,2", "--json", str(out_a), "--plot", str(png)])
        assert r.exit_code == 0, r.output
        r2 = CliRunner().invoke(app, [*args, "--concurrency", "2", "--json", str(out_b)])
        assert r2.exit_code == 0, r2.output
        assert server.count == 5 + 4 + 5  # warm-up requests are sent, not counted
    assert "TTFT" in r.output and "ITL" in r.output and "p99" in r.output
    assert "tokens from usage" in r.output and "goodput" in r.output and "client CPU" in r.output
    data = json.loads(out_a.read_text(encoding="utf-8"))
    assert data["schema"] == SCHEMA
    assert [(s["concurrency"], s["completed"], s["failed"]) for s in data["summaries"]] == [(1, 4, 0), (2, 4, 0)]
    assert len(data["requests"]) == 8
    assert all(q["chunks"] == CHUNKS and q["ok"] and q["tpot_s"] > 0 for q in data["requests"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = BenchResult.load(out_a)
    assert loaded.summaries[0].completed == 4 and loaded.summaries[0].goodput is not None
    r3 = CliRunner().invoke(app, ["bench", "--compare", str(out_a), str(out_b)])
    assert r3.exit_code == 0, r3.output
    assert "B/A" in r3.output and "request_throughput" in r3.output and "c=2" in r3.output


def test_replay_and_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = CliRunner().invoke(
        app,
        ["bench", "--replay", str(TEXT), "--pace", "0.002", "--requests", "3", "--concurrency", "1,3",
         "--warmup", "1", "--no-progress", "--pipeline", "smooth('word')", "--json", str(out)],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [(s["concurrency"], s["completed"], s["failed"]) for s in data["summaries"]] == [(1, 3, 0), (3, 3, 0)]
    assert all(s["pipeline_cpu_per_chunk_us"] >= 0 for s in data["summaries"])
    assert all(s["target"] == "replay:" + TEXT.name for s in data["summaries"])
    assert all(q["chunks"] > 1 and q["pipeline_s"] is not None for q in data["requests"])
    assert "pipeline CPU" in r.output


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    for argv, needle in [
        (["bench"], "nothing to benchmark"),
        (["bench", "--url", "http://127.0.0.1:1/v1"], "--url needs --model"),
        (["bench", "--model", "m", "--url", "http://x/v1", "--api", "soap"], "--api must be"),
        (["bench", "--replay", str(tmp_path / "none.sse")], "no such file"),
        (["bench", "--replay", str(TEXT), "--concurrency", "0"], "numbers > 0"),
        (["bench", "--replay", str(TEXT), "--slo", "latency=3"], "bad SLO"),
        (["bench", "--replay", str(TEXT), "--pipeline", "nope()"], "pipeline"),
        (["bench", "--compare", str(TEXT), str(TEXT)], "not JSON"),
    ]:
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, (argv, result.output)
        assert needle in result.output, (argv, result.output)


def test_parse_slo_and_pipeline_specs() -> None:
    assert parse_slo("ttft=0.5, tpot=50ms,e2e=2s") == {"ttft": 0.5, "tpot": 0.05, "e2e": 2.0}
    with pytest.raises(ValueError, match="not a number"):
        parse_slo("ttft=fast")
    assert callable(load_pipeline("smooth('word') | count_tokens()"))
    assert callable(load_pipeline("tests.bench.test_cli:identity"))
    with pytest.raises(ValueError, match="pipeline"):
        load_pipeline("tests.bench.test_cli:missing")


def identity(stream: object) -> object:
    return stream
