"""A2A: event data that JSON cannot hold as is (a plain object, a ``datetime``, NaN) is encoded
as the SSE and NDJSON sinks encode it (``repr()`` for unknown objects, ``null`` for NaN and
infinities), and a result that cannot be encoded at all ends the task as ``failed`` (an error,
then the final status) instead of crashing the response body."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

import streamops as so
from streamops.agent import Agent
from streamops.serve.a2a import a2a_routes
from streamops.sinks.a2a import A2AEncoder, a2a_types_module
from tests._models import FakeModel, ModelCall

T = a2a_types_module()


class Obj:
    """A plain object: neither pydantic nor ``json`` can serialise it."""

    def __repr__(self) -> str:
        return "<Obj>"


def wire(enc: A2AEncoder, result: Any, request_id: int = 1) -> dict[str, Any]:
    """``result`` through :meth:`A2AEncoder.sse`, validated by the SDK's response model."""
    body = enc.sse(result, request_id)
    assert body.startswith(b"data: ") and body.endswith(b"\n\n") and body.count(b"\n") == 2
    data = body[len(b"data: ") : -2]
    T.SendStreamingMessageResponse.model_validate_json(data)
    parsed: dict[str, Any] = json.loads(data, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    return parsed


def test_unserialisable_values_are_encoded_with_repr_and_null() -> None:
    enc = A2AEncoder("task1", "ctx1")
    env = {"run_id": "r", "agent": ""}
    value = {"o": Obj(), "t": datetime(2024, 1, 1), "nan": math.nan, "inf": [math.inf, -math.inf]}
    events: list[so.BaseEvent] = [
        so.RunStart(model="m", seq=0, **env),
        so.ToolCallEnd(call_id="c1", name="now", arguments="{}", seq=1, **env),
        so.ToolResult(call_id="c1", name="now", result=value, seq=2, **env),
        so.CustomEvent(name="x", data=value, seq=3, **env),
        so.FinalOutput(value=value, seq=4, **env),
        so.RunEnd(finish_reason="stop", seq=5, **env),
    ]
    results = [r for e in events for r in enc.encode(e)]
    wires = [wire(enc, r) for r in results]
    expected = {"o": "<Obj>", "t": "2024-01-01T00:00:00", "nan": None, "inf": [None, None]}
    data = [
        w["result"]["status"]["message"]["parts"][0]["data"]
        for w in wires
        if w["result"]["kind"] == "status-update" and not w["result"]["final"]
    ]
    assert data[1] == {"type": "tool-result", "toolCallId": "c1", "toolName": "now", "result": expected}
    assert data[2] == {"type": "custom", "name": "x", "data": expected}
    output = [w["result"]["artifact"] for w in wires if w["result"]["kind"] == "artifact-update"]
    assert output[0]["parts"][0]["data"] == expected
    assert wires[-1]["result"]["final"] is True
    assert wires[-1]["result"]["status"]["state"] == "completed"


class DataModel(FakeModel):
    """A model double that sends a custom event holding ``data``, text, ``data`` as the final
    output, and a run end."""

    name = "data"

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.closed = False

    async def respond(self, call: ModelCall) -> AsyncIterator[so.BaseEvent]:
        env = call.env
        try:
            yield so.RunStart(model=self.name, **env)
            yield so.CustomEvent(name="x", data=self.data, **env)
            yield so.TextDelta(delta="hi", block_id="0", **env)
            yield so.FinalOutput(value=self.data, **env)
            yield so.RunEnd(finish_reason="stop", **env)
        finally:
            self.closed = True


def request(method: str) -> dict[str, Any]:
    message = {"kind": "message", "messageId": "m1", "role": "user", "parts": [{"kind": "text", "text": "q"}]}
    return {"jsonrpc": "2.0", "id": "s1", "method": method, "params": {"message": message}}


async def post(model: DataModel, method: str) -> httpx.Response:
    app = Starlette(routes=a2a_routes(lambda: Agent(model)))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/a2a", json=request(method))
    assert response.status_code == 200
    return response


def stream_results(response: httpx.Response) -> list[dict[str, Any]]:
    frames = [f for f in response.text.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    out = []
    for f in frames:
        T.SendStreamingMessageResponse.model_validate_json(f[len("data: ") :])
        out.append(json.loads(f[len("data: ") :])["result"])
    return out


@pytest.mark.anyio
async def test_message_stream_with_a_plain_object_completes() -> None:
    model = DataModel({"o": Obj(), "nan": math.nan})
    results = stream_results(await post(model, "message/stream"))
    custom = [r for r in results if r["kind"] == "status-update" and not r["final"]]
    assert custom[0]["status"]["message"]["parts"][0]["data"]["data"] == {"o": "<Obj>", "nan": None}
    artifacts = [r["artifact"] for r in results if r["kind"] == "artifact-update"]
    assert "".join(a["parts"][0]["text"] for a in artifacts if a["name"] == "text") == "hi"
    assert [a["parts"][0]["data"] for a in artifacts if a["name"] == "output"] == [{"o": "<Obj>", "nan": None}]
    assert results[-1]["final"] is True and results[-1]["status"]["state"] == "completed"
    assert sum(r.get("final", False) for r in results) == 1
    assert model.closed


@pytest.mark.anyio
async def test_message_send_and_tasks_get_with_a_plain_object() -> None:
    model = DataModel({"o": Obj()})
    app = Starlette(routes=a2a_routes(lambda: Agent(model)))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        sent = await client.post("/a2a", json=request("message/send"))
        assert sent.status_code == 200
        task = sent.json()["result"]
        get = {"jsonrpc": "2.0", "id": "g1", "method": "tasks/get", "params": {"id": task["id"]}}
        got = await client.post("/a2a", json=get)
    assert got.status_code == 200
    for t in (task, got.json()["result"]):
        T.Task.model_validate(t)
        assert t["status"]["state"] == "completed"
        output = [a for a in t["artifacts"] if a["name"] == "output"]
        assert output[0]["parts"][0]["data"] == {"o": "<Obj>"}


@pytest.mark.anyio
async def test_a_result_that_cannot_be_encoded_ends_the_task_as_failed() -> None:
    # bytes that are not UTF-8 have no JSON form even with the repr fallback: the serialiser
    # raises, and the task must still end (error, then the failed final status)
    model = DataModel({"b": b"\xff"})
    results = stream_results(await post(model, "message/stream"))
    assert results[0]["kind"] == "task"
    final = results[-1]
    assert final["kind"] == "status-update" and final["final"] is True
    assert final["status"]["state"] == "failed"
    assert final["metadata"]["streamops"]["status"] == "failed"
    assert "PydanticSerializationError" in final["status"]["message"]["parts"][0]["text"]
    assert sum(r.get("final", False) for r in results) == 1
    assert model.closed
