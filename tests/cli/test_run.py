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

import pytest

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
    assert proc.returncode == 130, err  # the shell convention for SIGINT (128 + 2)
    rest = ndjson(out)
    assert rest[-1]["kind"] == "run-end"
    assert rest[-1]["status"] == "cancelled"
    assert "time to first token" in err


def test_a_failed_run_exits_1_and_bad_options_exit_2_with_one_line() -> None:
    # a provider error mid-stream: the run fails, the error is shown, the exit status is 1
    failed = RECORDED / "openai" / "responses_error_insufficient_quota_vercel.sse"
    r = streamops("run", "--model", f"replay:{failed}", "hi")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "run end: failed" in r.stdout
    assert "None" not in r.stdout
    # a model that cannot be set up: one line on stderr, 2, nothing on stdout
    r = streamops("run", "--model", "replay:/nope.sse", "hi")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "streamops: cannot set up the model 'replay:/nope.sse': FileNotFoundError: "
        "[Errno 2] No such file or directory: '/nope.sse'"
    ]
    # --max-tokens must be at least 1, as in serve
    for bad in ("0", "-1"):
        r = streamops("run", "--max-tokens", bad, "hi")
        assert r.returncode == 2, r.stderr
        assert "--max-tokens" in r.stderr


_NO_LITELLM = """
import sys

class _Hide:  # this interpreter has no litellm (and so no tiktoken encodings either)
    def find_spec(self, name, path=None, target=None):
        if name == "litellm" or name.startswith("litellm."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _Hide())
from streamops.cli import main
main(sys.argv[1:])
"""


def test_a_missing_extra_is_one_line_naming_the_pip_install() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _NO_LITELLM, "run", "--model", "openai/gpt-4o", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        'streamops: --model openai/gpt-4o needs litellm: pip install "streamops[litellm]"'
    ]


def test_token_counting_without_litellm_falls_back_to_the_providers_usage() -> None:
    # a non-local model (a replay of an OpenAI body) in an interpreter without litellm: no
    # traceback; the answer, a one-line note, and the provider's figures
    body = RECORDED / "openai" / "chat_text_usage_openai_python.sse"
    r = subprocess.run(
        [sys.executable, "-c", _NO_LITELLM, "run", "--model", f"replay:{body}", "--smooth", "none", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "weather" in r.stdout
    assert r.stdout.strip().splitlines()[-1].endswith("(no estimate) / 30 reported")
    (note,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert note.startswith("streamops: no live token estimate (")
    assert "pip install" in note


@pytest.mark.slow
def test_litellm_banner_never_reaches_stdout() -> None:
    # a LiteLLM model whose server refuses the connection (127.0.0.1, nothing listening):
    # LiteLLM prints its "Give Feedback / Get Help" banner; --json stdout stays pure NDJSON
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_BASE": "http://127.0.0.1:9/v1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    r = subprocess.run(
        [sys.executable, "-m", "streamops", "run", "--json", "--model", "openai/gpt-4o", "hi"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert r.returncode == 1, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # every line is JSON
    assert events[-1]["kind"] == "run-end" and events[-1]["status"] == "failed"
    assert "Give Feedback" in r.stderr
