"""``streamops run``: the main job, end to end through the installed console script, on the
real local model (no key, no network)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from tests.conftest import RECORDED


def streamops(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamops", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_run_answers_with_real_tokens_and_prints_stats() -> None:
    r = streamops("run", "Why is the sky blue?", "--max-tokens", "48")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    stats = lines[-1]
    assert stats.startswith("time to first token ")
    assert "tokens/s" in stats
    reported = int(stats.split("/")[-1].split()[0])
    assert 0 < reported <= 48
    answer = "\n".join(lines[:-1])
    assert len(answer) > 40
    assert "run end: " in answer


def test_run_three_agents_overlap_in_time() -> None:
    # word chunks (not the line chunks --agents picks for a terminal) and a prompt with a long
    # answer: each agent's text deltas then span its whole generation, not one line's instant
    prompt = "Describe the ocean in a long paragraph."
    r = streamops("run", "--agents", "3", "--json", "--smooth", "word", "--max-tokens", "64", prompt)
    assert r.returncode == 0, r.stderr
    events = ndjson(r.stdout)
    agents = {e["agent"] for e in events}
    assert agents == {"agent-1", "agent-2", "agent-3"}
    assert len({e["run_id"] for e in events}) == 3
    ends = [e for e in events if e["kind"] == "run-end"]
    assert sorted(e["agent"] for e in ends) == ["agent-1", "agent-2", "agent-3"]
    spans: dict[str, tuple[float, float]] = {}
    for e in events:
        if e["kind"] == "text-delta":
            lo, hi = spans.get(e["agent"], (e["ts"], e["ts"]))
            spans[e["agent"]] = (min(lo, e["ts"]), max(hi, e["ts"]))
    assert len(spans) == 3
    # concurrent, not one after another: every pair of agents was generating at the same time
    for a, b in itertools.combinations(spans.values(), 2):
        assert max(a[0], b[0]) < min(a[1], b[1])
    # the merged stream interleaves them
    order = [e["agent"] for e in events if e["kind"] == "text-delta"]
    switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
    assert switches >= 3
    # stats per agent on stderr in --json mode
    assert sum(line.startswith("agent-") for line in r.stderr.splitlines()) == 3


def test_run_with_a_replay_model_and_no_smoothing() -> None:
    path = RECORDED / "anthropic" / "messages_thinking_signature_pyd.sse"
    r = streamops("run", "--model", f"replay:{path}", "--smooth", "none", "How do I cross the street?")
    assert r.returncode == 0, r.stderr
    assert "Here are the basic steps for safely crossing the street" in r.stdout
    assert "43 estimated" not in r.stdout  # usage reported by the provider, shown as reported
    assert r.stdout.strip().splitlines()[-1].endswith("/ 282 reported")


def test_ctrl_c_cancels_cleanly_and_still_prints_stats() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamops", "run", "--json", "--max-tokens", "2000", "Write a long story."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if json.loads(line)["kind"] == "text-delta":
            seen += 1
            if seen == 5:
                proc.send_signal(signal.SIGINT)
                break
        assert time.monotonic() < deadline
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rest = ndjson(out)
    assert rest[-1]["kind"] == "run-end"
    assert rest[-1]["status"] == "cancelled"
    assert "time to first token" in err
