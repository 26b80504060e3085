"""Every recorded real provider stream, through the public entry points, against its
``expected.json``: auto-detected API, raw SSE bytes split anywhere, and the replay CLI."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
from streamops.adapters import SSEParser, detect_api, parse_sse
from typer.testing import CliRunner

from streamops import Accumulator, Message
from streamops.cli import app
from streamops.events import BaseEvent
from tests.conftest import RECORDED

ROWS = list(csv.DictReader((RECORDED / "INDEX.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t"))
IDS = [r["file"] for r in ROWS]
API_OF = {
    "chat.completions": "openai-chat",
    "responses": "openai-responses",
    "messages": "anthropic",
    "gemini": "gemini",
}


def expected(row: dict[str, str]) -> dict[str, Any]:
    path = RECORDED / row["file"].replace(".sse", ".expected.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def expected_usage(api: str, usage: dict[str, Any] | None) -> tuple[int | None, int | None]:
    """Input and output tokens from the provider's raw usage object in expected.json."""
    if not usage:
        return (None, None)
    if api == "chat.completions":
        return usage.get("prompt_tokens"), usage.get("completion_tokens")
    if api in ("responses", "messages"):
        return usage.get("input_tokens"), usage.get("output_tokens")
    # Gemini: output = candidates + thoughts (reasoning counted as output, as OpenAI does).
    out = usage.get("candidatesTokenCount")
    thoughts = usage.get("thoughtsTokenCount")
    if thoughts is not None:
        out = (out or 0) + thoughts
    return usage.get("promptTokenCount"), out


def fold(events: list[BaseEvent]) -> Message:
    acc = Accumulator()
    for ev in events:
        acc.add(ev)
    return acc.message()


def check(row: dict[str, str], msg: Message) -> None:
    exp = expected(row)
    api = row["api"]
    assert msg.text == exp["text"]
    exp_reasoning = exp.get("reasoning")
    if exp_reasoning is None:
        exp_reasoning = exp.get("reasoning_summary")
    assert (msg.reasoning or None) == (exp_reasoning or None)
    if "refusal" in exp:
        assert (msg.refusal or None) == (exp["refusal"] or None)
    got_calls = [(c.id, c.name, c.arguments) for c in msg.tool_calls]
    exp_calls = [(c["id"], c["name"], c["arguments"]) for c in exp["tool_calls"]]
    assert len(got_calls) == len(exp_calls)
    for (gid, gname, gargs), (eid, ename, eargs) in zip(got_calls, exp_calls, strict=True):
        assert gname == ename
        assert gargs == eargs if isinstance(eargs, str) else json.loads(gargs) == eargs
        if eid is not None:  # providers that send no id (Gemini) get a synthesized one
            assert gid == eid
    assert msg.raw_finish_reason == exp["finish_reason"]
    exp_in, exp_out = expected_usage(api, exp.get("usage"))
    if exp_in is not None or exp_out is not None:
        assert msg.usage is not None
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (exp_in, exp_out)
    if exp.get("error"):
        assert msg.error is not None
        assert msg.error.message == exp["error"]["message"]
        assert msg.status == "failed"
    else:
        assert msg.error is None
        assert msg.status in ("completed", "length")
    assert "\ufffd" not in msg.text


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_stream_whole_body(row: dict[str, str]) -> None:
    body = (RECORDED / row["file"]).read_bytes()
    assert detect_api(body) == API_OF[row["api"]]
    parser = SSEParser("auto")
    events = parser.feed(body) + parser.close()
    check(row, fold(events))
    seqs = [e.seq for e in events]
    assert seqs == list(range(len(seqs)))
    assert len({e.run_id for e in events}) == 1


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_recorded_stream_byte_by_byte_and_random_splits(row: dict[str, str]) -> None:
    """Every byte offset is a read boundary when the body arrives one byte at a time; then
    1,000 random multi-way splits. The assembled message never changes (no U+FFFD, no lost or
    doubled character)."""
    body = (RECORDED / row["file"]).read_bytes()
    parser = SSEParser("auto")
    events: list[BaseEvent] = []
    for i in range(len(body)):
        events.extend(parser.feed(body[i : i + 1]))
    events.extend(parser.close())
    whole = fold(events)
    check(row, whole)
    rng = random.Random(row["file"])
    for _ in range(1000):
        cuts = sorted(rng.sample(range(1, len(body)), k=min(len(body) - 1, rng.randint(2, 40))))
        parser = SSEParser("auto")
        evs: list[BaseEvent] = []
        for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True):
            evs.extend(parser.feed(body[a:b]))
        evs.extend(parser.close())
        m = fold(evs)
        assert (m.text, m.reasoning, m.refusal, m.tool_calls, m.finish_reason, m.raw_finish_reason) == (
            whole.text,
            whole.reasoning,
            whole.refusal,
            whole.tool_calls,
            whole.finish_reason,
            whole.raw_finish_reason,
        )
        assert (m.usage, m.error) == (whole.usage, whole.error)


@pytest.mark.anyio
@pytest.mark.parametrize("row", ROWS[::7], ids=IDS[::7])
async def test_recorded_stream_async_entry_point(row: dict[str, str]) -> None:
    body = (RECORDED / row["file"]).read_bytes()

    async def chunks() -> Any:
        for i in range(0, len(body), 97):
            yield body[i : i + 97]

    events = await parse_sse(chunks()).collect()
    check(row, fold(events))


def _summary(path: Path, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["replay", str(path), "--summary", *extra])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    data: dict[str, Any] = json.loads(lines[0])
    return data


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_replay_summary(row: dict[str, str]) -> None:
    """``streamops replay --summary`` prints exactly one JSON object of the documented shape."""
    out = _summary(RECORDED / row["file"])
    assert set(out) == {
        "text",
        "reasoning",
        "refusal",
        "tool_calls",
        "finish_reason",
        "raw_finish_reason",
        "usage",
        "error",
    }
    exp = expected(row)
    assert out["text"] == exp["text"]
    assert out["raw_finish_reason"] == exp["finish_reason"]
    # the summary's normalised finish reason is the one the events carry (folded in-process)
    parser = SSEParser("auto")
    events = [*parser.feed((RECORDED / row["file"]).read_bytes()), *parser.close()]
    assert out["finish_reason"] == fold(events).finish_reason
    assert set(out["usage"]) == {"input_tokens", "output_tokens"}
    assert (out["error"] is None) == (not exp.get("error"))
    for call in out["tool_calls"]:
        assert isinstance(call["arguments"], str)
        assert set(call) == {"id", "name", "arguments"}


def test_replay_api_option_and_bad_files(tmp_path: Path) -> None:
    anth = RECORDED / "anthropic" / "messages_minimal_text_pyd.sse"
    assert _summary(anth, "--api", "anthropic")["text"] == "2"
    runner = CliRunner()
    missing = runner.invoke(app, ["replay", str(tmp_path / "nope.sse"), "--summary"])
    assert missing.exit_code != 0
    assert "cannot read" in missing.output
    junk = tmp_path / "junk.sse"
    junk.write_bytes(bytes(range(256)) * 4)
    bad = runner.invoke(app, ["replay", str(junk), "--summary"])
    assert bad.exit_code != 0
    assert len(bad.output.strip().splitlines()) == 1


def test_replay_renders_live(tmp_path: Path) -> None:
    path = RECORDED / "anthropic" / "messages_thinking_signature_pyd.sse"
    result = CliRunner().invoke(app, ["replay", str(path), "--delay", "0"])
    assert result.exit_code == 0, result.output
    assert "Here are the basic steps for safely crossing the street" in result.stdout
    assert "run end: completed" in result.stdout


def test_replay_exit_codes_for_a_body_of_no_known_api_and_a_wrong_api(tmp_path: Path) -> None:
    runner = CliRunner()
    # SSE framing with JSON payloads of no known API: 2 with one line (the help promises it)
    unknown = tmp_path / "unknown.sse"
    unknown.write_bytes(b'data: {"x": 1}\n\ndata: {"y": 2}\n\n')
    for extra in ([], ["--events"], ["--summary"]):
        r = runner.invoke(app, ["replay", str(unknown), *extra])
        assert r.exit_code == 2, (extra, r.output)
        assert "no text, reasoning, tool call or usage" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    # an OpenAI body replayed as Anthropic: at most 3 malformed lines shown, then one line, 2
    body = RECORDED / "openai" / "chat_text_usage_openai_python.sse"
    r = runner.invoke(app, ["replay", str(body), "--api", "anthropic", "--delay", "0"])
    assert r.exit_code == 2, r.output
    assert r.stdout.count("malformed_stream") == 3
    assert "payloads are not of --api anthropic" in r.stderr
    assert "None" not in r.stdout
    # the right API: 0
    assert runner.invoke(app, ["replay", str(body), "--api", "openai-chat", "--delay", "0"]).exit_code == 0


@pytest.mark.parametrize("command", ["run", "replay", "serve", "bench"])
def test_help_is_reflowed_shows_no_double_backticks_and_flags_take_no_value(command: str) -> None:
    from streamops.cli import app as cli_app

    r = CliRunner().invoke(cli_app, [command, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"}, terminal_width=100)
    assert r.exit_code == 0, r.output
    assert "``" not in r.output
    # a flag is shown bare: "--json   Print...", never "--json <bool>"
    for flag in ("--json", "--summary", "--events", "--quick", "--suite"):
        for line in r.output.splitlines():
            if f" {flag} " in line:
                assert "<bool>" not in line, line
    if command == "run":
        # the docstring's paragraph is one reflowed paragraph: the sentence is not cut where
        # the source line ends ("...still prints the" / "stats.")
        text = " ".join(r.output.split())
        assert "and still prints the stats." in text
        assert any("Ctrl-C cancels" in ln and "prints the stats." in ln for ln in r.output.splitlines())
        assert "130 on Ctrl-C" in text
