"""The Vercel sink checked by the AI SDK itself: the ``ai`` npm package (pinned in
``tests/js/package.json``) reads the exact SSE bodies the sink produces with its own
``parseJsonEventStream`` + ``uiMessageChunkSchema`` and ``readUIMessageStream``
(``tests/js/check_ui_stream.mjs``), and the UIMessage it assembles must say what streamops'
:class:`~streamops.operators.aggregate.Accumulator` says of the same events: text, reasoning,
tool calls (ids, names, inputs) and tool outputs.

Every body is checked by one ``node`` process per module. Needs Node.js and
``npm ci --prefix tests/js``; without them the tests fail (they never skip).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

import streamops as so
from streamops.operators.aggregate import Accumulator, Message
from streamops.sinks.vercel import VERCEL_HEADERS, VercelEncoder
from tests.sinks._runs import AGENTS, RECORDED_FILES, STATUSES, agent_events, every_kind_run, recorded_events

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "check_ui_stream.mjs"
INSTALL_HINT = "run `npm ci --prefix tests/js` (Node.js >= 20) to install the AI SDK package the check needs"

BAD_BODY = (
    b'data: {"type":"start"}\n\n'
    b'data: {"type":"text-delta","id":"t","delta":"x"}\n\n'
    b'data: {"type":"finish","finishReason":"tool_calls"}\n\n'
    b"data: [DONE]\n\n"
)
"""A control body the package must reject: a delta without its start, a snake_case finish reason."""


def _recorded_runs() -> dict[str, list[so.BaseEvent]]:
    return {f"recorded/{p.parent.name}/{p.stem}": recorded_events(p) for p in RECORDED_FILES}


def _other_runs() -> dict[str, list[so.BaseEvent]]:
    runs: dict[str, list[so.BaseEvent]] = {f"every_kind/{s}": every_kind_run(s) for s in STATUSES}
    for name, events in _recorded_runs().items():  # cut off mid-stream: blocks closed, calls left streaming, abort
        runs[name.replace("recorded/", "cut/", 1)] = events[: len(events) // 2]
    for name in AGENTS:
        runs[f"agent/{name}"] = anyio.run(agent_events, name)
    return runs


RECORDED_RUNS = _recorded_runs()
OTHER_RUNS = _other_runs()
RUNS = {**RECORDED_RUNS, **OTHER_RUNS}


def body(events: list[so.BaseEvent]) -> bytes:
    """The response body ``vercel_response`` sends for ``events`` (without heartbeats)."""
    enc = VercelEncoder()
    return b"".join(enc.encode_frames(e) for e in events) + enc.close_frames()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"Node.js not found on PATH: install it, then {INSTALL_HINT}")
    installed = JS_DIR / "node_modules" / "ai" / "package.json"
    if not installed.is_file():
        pytest.fail(f"{installed.parent} is missing: {INSTALL_HINT}")
    pinned = json.loads((JS_DIR / "package.json").read_text())["dependencies"]["ai"]
    version = json.loads(installed.read_text())["version"]
    if version != pinned:
        pytest.fail(f"tests/js has ai {version} installed, package.json pins {pinned}: {INSTALL_HINT}")
    return node


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The script's result for every body (and the control), from one node process."""
    node = _node()
    tmp = tmp_path_factory.mktemp("ui-streams")
    paths: dict[str, Path] = {}
    for i, (name, data) in enumerate([("control/bad", BAD_BODY), *((n, body(ev)) for n, ev in RUNS.items())]):
        paths[name] = tmp / f"{i:03d}.sse"
        paths[name].write_bytes(data)
    proc = subprocess.run(
        [node, str(SCRIPT), *map(str, paths.values())], cwd=JS_DIR, capture_output=True, text=True, timeout=120
    )
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        pytest.fail(f"{SCRIPT.name} exited {proc.returncode}: {proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    by_path = {r["source"]: r for r in out}
    return {name: by_path[str(p)] for name, p in paths.items()}


def accumulated(events: list[so.BaseEvent]) -> Message:
    acc = Accumulator()
    for e in events:
        acc.add(e)
    return acc.message()


def check(result: dict[str, Any], events: list[so.BaseEvent]) -> None:
    """The package accepted every chunk and assembled what the accumulator folds."""
    assert result["invalid"] == [], "chunks the AI SDK's uiMessageChunkSchema rejects"
    assert result["processingErrors"] == [], "chunks readUIMessageStream cannot apply"
    assert result["done"] and result["ok"], result
    msg = accumulated(events)
    summary, ui = result["summary"], result["message"]
    assert summary["openParts"] == 0, "a text/reasoning part was left streaming"
    # text: refusals are sent as text blocks of their own (the UI message has no refusal part)
    text = summary["text"]
    if msg.refusal is not None:
        assert msg.refusal in text
        text = text.replace(msg.refusal, "", 1)
    assert text == msg.text
    assert summary["reasoning"] == (msg.reasoning or "")
    # tool calls, in order: id, name, then the input as the package holds it
    tools = summary["tools"]
    assert [(t["toolCallId"], t["toolName"]) for t in tools] == [(c.id or "", c.name) for c in msg.tool_calls]
    for t, call in zip(tools, msg.tool_calls, strict=True):
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            args = None
        if t["state"] == "input-streaming":  # the stream ended before the call's end
            assert t.get("rawInput", "") == call.arguments
        elif isinstance(args, dict):
            assert t["state"] in ("input-available", "output-available", "output-error")
            assert t["input"] == args
        else:  # tool-input-error: the arguments are kept as raw input
            assert t["state"] == "output-error"
            assert t["rawInput"] == call.arguments
        outcome = msg.tool_results.get(call.id or "")
        if isinstance(outcome, so.ToolResult):
            assert t["state"] == "output-available"
            assert t["output"] == json.loads(json.dumps(outcome.result))
        elif isinstance(outcome, so.ToolError):
            assert (t["state"], t["errorText"]) == ("output-error", outcome.message)
    # errors, run id, status, end
    errors = [f"{e.error_type}: {e.message}" for e in events if isinstance(e, so.ErrorEvent)]
    assert result["errorChunks"] == errors
    if msg.error is not None:
        assert errors[-1] == f"{msg.error.type}: {msg.error.message}"
    assert ui["id"] == msg.run_id
    if msg.status in (None, "cancelled"):
        assert result["terminal"] == "abort"
    else:
        assert result["terminal"] == "finish"
        assert ui["metadata"]["status"] == msg.status


@pytest.mark.parametrize("name", list(RECORDED_RUNS))
def test_every_recorded_stream_is_read_by_the_ai_sdk(name: str, results: dict[str, dict[str, Any]]) -> None:
    check(results[name], RECORDED_RUNS[name])


@pytest.mark.parametrize("name", list(OTHER_RUNS))
def test_every_event_kind_and_agent_run_is_read_by_the_ai_sdk(name: str, results: dict[str, dict[str, Any]]) -> None:
    check(results[name], OTHER_RUNS[name])


def test_the_check_rejects_a_bad_body(results: dict[str, dict[str, Any]]) -> None:
    bad = results["control/bad"]
    assert not bad["ok"]
    assert [(i["index"], i["raw"]) for i in bad["invalid"]] == [(2, {"type": "finish", "finishReason": "tool_calls"})]
    assert bad["invalid"][0]["error"]["issues"][0]["path"] == ["finishReason"]
    assert bad["processingErrors"][0]["chunkType"] == "text-delta"


def test_headers_are_the_packages() -> None:
    node = _node()
    script = "import { UI_MESSAGE_STREAM_HEADERS as h } from 'ai'; process.stdout.write(JSON.stringify(h));"
    proc = subprocess.run(
        [node, "--input-type=module", "-e", script], cwd=JS_DIR, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {k.lower(): v for k, v in VERCEL_HEADERS.items()}
