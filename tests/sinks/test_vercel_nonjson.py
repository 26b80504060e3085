"""Vercel UI message stream: tool results that ``json.dumps`` cannot write (a ``datetime``, a
plain object) are serialised as the rest of streamops serialises them (pydantic's JSON mode,
``repr()`` for unknown objects), and NaN and infinities become ``null`` (JSON has no such
numbers; the AI SDK's ``JSON.parse`` rejects ``NaN``/``Infinity``). The body is read by the
``ai`` npm package's own parser (``tests/js/check_ui_stream.mjs``, as in
``test_vercel_ai_package.py``): needs Node.js and ``npm ci --prefix tests/js``; without them
that test fails (it never skips)."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import streamops as so
from streamops.sinks.vercel import VercelEncoder, vercel_response

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "check_ui_stream.mjs"


class Obj:
    """A plain object: neither pydantic nor ``json`` can serialise it."""

    def __repr__(self) -> str:
        return "<Obj>"


RESULTS: dict[str, Any] = {
    "c1": {"t": datetime(2024, 1, 1, 12, 30)},
    "c2": math.nan,
    "c3": {"inf": math.inf, "-inf": -math.inf, "nan": [math.nan], "o": Obj()},
}
EXPECTED: dict[str, Any] = {
    "c1": {"t": "2024-01-01T12:30:00"},
    "c2": None,
    "c3": {"inf": None, "-inf": None, "nan": [None], "o": "<Obj>"},
}


def events() -> list[so.BaseEvent]:
    out: list[so.BaseEvent] = [so.RunStart(run_id="r", seq=0)]
    for call_id, result in RESULTS.items():
        out.append(so.ToolCallEnd(run_id="r", seq=len(out), call_id=call_id, name="now", arguments="{}"))
        out.append(so.ToolResult(run_id="r", seq=len(out), call_id=call_id, name="now", result=result))
    out.append(so.TextDelta(run_id="r", seq=len(out), delta="It is 2024."))
    out.append(so.RunEnd(run_id="r", seq=len(out), finish_reason="stop"))
    return out


async def response_body() -> bytes:
    """The body :func:`vercel_response` sends for :func:`events`."""

    async def source() -> AsyncIterator[so.BaseEvent]:
        for e in events():
            yield e

    async def endpoint(request: Request) -> Response:
        return vercel_response(so.Stream(source()))

    app = Starlette(routes=[Route("/", endpoint)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/")
    assert response.status_code == 200
    return response.content


def strict_chunks(body: bytes) -> list[dict[str, Any]]:
    """The body's chunks, parsed as strict JSON (``NaN``/``Infinity`` rejected)."""
    frames = [f for f in body.decode().split("\n\n") if f]
    assert frames[-1] == "data: [DONE]"

    def reject(constant: str) -> Any:
        pytest.fail(f"{constant} is not JSON")

    return [json.loads(f.removeprefix("data: "), parse_constant=reject) for f in frames[:-1]]


def test_sse_writes_nan_and_infinities_as_null_and_objects_with_repr() -> None:
    nan = {"type": "tool-output-available", "toolCallId": "c", "output": [math.nan, math.inf, -math.inf]}
    assert (
        VercelEncoder.frame(nan)
        == b'data: {"type":"tool-output-available","toolCallId":"c","output":[null,null,null]}\n\n'
    )
    obj = {"type": "tool-output-available", "toolCallId": "c", "output": {"o": Obj(), "t": datetime(2024, 1, 1)}}
    assert VercelEncoder.frame(obj) == (
        b'data: {"type":"tool-output-available","toolCallId":"c","output":{"o":"<Obj>","t":"2024-01-01T00:00:00"}}\n\n'
    )
    assert VercelEncoder.frame({"type": "text-delta", "id": "t", "delta": "é\n\u2028"}) == (
        'data: {"type":"text-delta","id":"t","delta":"é\\n\u2028"}\n\n'.encode()
    )


@pytest.mark.anyio
async def test_a_datetime_and_nan_results_keep_the_stream_whole() -> None:
    chunks = strict_chunks(await response_body())
    types = [c["type"] for c in chunks]
    assert "error" not in types and "abort" not in types
    assert types[-1] == "finish" and chunks[-1]["messageMetadata"]["status"] == "completed"
    outputs = {c["toolCallId"]: c["output"] for c in chunks if c["type"] == "tool-output-available"}
    assert outputs == EXPECTED
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "It is 2024."


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js not found on PATH: install it, then run `npm ci --prefix tests/js`")
    if not (JS_DIR / "node_modules" / "ai" / "package.json").is_file():
        pytest.fail("tests/js/node_modules/ai is missing: run `npm ci --prefix tests/js`")
    return node


@pytest.mark.anyio
async def test_the_ai_sdk_parses_the_body() -> None:
    node = _node()
    body = await response_body()
    with anyio.fail_after(120):
        proc = await anyio.run_process([node, str(SCRIPT), "-"], input=body, cwd=JS_DIR, check=False)
    assert proc.stdout.strip(), proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["invalid"] == [], "chunks the AI SDK's parser or uiMessageChunkSchema rejects"
    assert result["processingErrors"] == [] and result["errorChunks"] == []
    assert result["ok"] and result["done"] and result["terminal"] == "finish", proc.stderr.decode()
    assert proc.returncode == 0
    summary = result["summary"]
    assert summary["text"] == "It is 2024."
    tools = {t["toolCallId"]: t for t in summary["tools"]}
    assert {k: (t["state"], t.get("output")) for k, t in tools.items()} == {
        k: ("output-available", v) for k, v in EXPECTED.items()
    }
