"""A2A ``message/stream``: every result is validated by the a2a-sdk's own protocol 0.3 pydantic
models (``SendStreamingMessageSuccessResponse``), and a real uvicorn server is driven by the
SDK's own v0.3 JSON-RPC client (``CompatJsonRpcTransport``): streaming, ``tasks/get`` and a
``tasks/cancel`` that ends the running task as ``canceled``.

The server tests run on asyncio only: uvicorn serves on an asyncio event loop (it has no trio
backend), and the test runs the server in its own loop to start and stop it deterministically.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import streamops as so
from streamops.agent import Agent
from streamops.serve.a2a import a2a_routes
from streamops.sinks.a2a import A2AEncoder, a2a_types_module
from tests.sinks._runs import AGENTS, RECORDED_FILES, STATUSES, agent_events, every_kind_run, recorded_events

T = a2a_types_module()
RESPONSE = T.SendStreamingMessageResponse
STATES = {"completed": "completed", "failed": "failed", "cancelled": "canceled"}


def check_results(enc: A2AEncoder, results: list[Any]) -> list[dict[str, Any]]:
    """Each result through the SDK's JSON-RPC response model (from its wire JSON), and the
    task lifecycle: a Task first, one final status last, artifact chunks appended in order."""
    wire = []
    for i, r in enumerate(results):
        body = enc.sse(r, i)
        assert body.startswith(b"data: ") and body.endswith(b"\n\n") and body.count(b"\n") == 2
        parsed = RESPONSE.model_validate_json(body[len(b"data: ") : -2])
        assert parsed.root.id == i and parsed.root.result == r
        wire.append(json.loads(body[len(b"data: ") : -2])["result"])
    assert wire[0]["kind"] == "task" and wire[0]["status"]["state"] == "working"
    assert wire[-1]["kind"] == "status-update" and wire[-1]["final"] is True
    assert sum(w.get("final", False) for w in wire) == 1
    open_artifacts: set[str] = set()
    for w in wire:
        assert w.get("taskId", w.get("id")) == enc.task_id
        if w["kind"] == "artifact-update":
            aid = w["artifact"]["artifactId"]
            if w["append"]:
                assert aid in open_artifacts
            else:
                assert aid not in open_artifacts
                open_artifacts.add(aid)
            if w["lastChunk"]:
                open_artifacts.remove(aid)
    assert not open_artifacts
    T.Task.model_validate(enc.task.model_dump(mode="json", by_alias=True))
    return wire


def encode_all(events: list[so.BaseEvent]) -> tuple[A2AEncoder, list[Any]]:
    enc = A2AEncoder("task1", "ctx1")
    return enc, [x for e in events for x in enc.encode(e)] + enc.close()


@pytest.mark.parametrize("status", STATUSES)
def test_every_event_kind_and_every_run_status(status: so.RunStatus) -> None:
    enc, results = encode_all(every_kind_run(status))
    wire = check_results(enc, results)
    final = wire[-1]
    assert final["status"]["state"] == STATES.get(status, "completed")
    assert final["metadata"]["streamops"]["status"] == status
    assert final["metadata"]["streamops"]["usage"]["inputTokens"] == 20
    if status == "failed":
        assert "on_chunk raised" in final["status"]["message"]["parts"][0]["text"]
    names = {w["artifact"]["name"] for w in wire if w["kind"] == "artifact-update"}
    assert names == {"text", "reasoning", "refusal", "output"}
    data = [
        w["status"]["message"]["parts"][0]["data"]["type"]
        for w in wire
        if w["kind"] == "status-update" and not w["final"]
    ]
    assert data == ["tool-call", "tool-call", "tool-progress", "tool-result", "tool-error", "custom", "custom"]
    updates = [w for w in wire if w["kind"] == "status-update" and not w["final"]]
    customs = [d for w in updates if (d := w["status"]["message"]["parts"][0]["data"])["type"] == "custom"]
    assert customs[1] == {  # the AgentHandoff: a custom status (A2A has no handoff of its own)
        "type": "custom",
        "name": "agent-handoff",
        "data": {"fromAgent": "bot", "toAgent": "bot/helper"},
    }
    task = enc.task
    texts = {a.name: a.parts[0].root for a in task.artifacts or []}
    assert texts["text"].text in ("Let me check.", '{"a": 1}')
    assert task.status.state.value == STATES.get(status, "completed")


def test_text_deltas_are_token_level_appends() -> None:
    e = {"run_id": "r"}
    enc, results = encode_all(
        [so.RunStart(**e), *(so.TextDelta(delta=w, block_id="0", **e) for w in ["a", "b", "c"]), so.RunEnd(**e)]
    )
    wire = check_results(enc, results)
    chunks = [(w["artifact"]["parts"][0]["text"], w["append"], w["lastChunk"]) for w in wire[1:-1]]
    assert chunks == [("a", False, False), ("b", True, False), ("c", True, False), ("", True, True)]
    assert enc.task.artifacts[0].parts[0].root.text == "abc"  # type: ignore[index]


@pytest.mark.parametrize("path", RECORDED_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recorded_stream(path: Path) -> None:
    events = recorded_events(path)
    check_results(*encode_all(events))
    check_results(*encode_all(events[: len(events) // 2]))


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(AGENTS))
async def test_agent_runs(name: str) -> None:
    enc, results = encode_all(await agent_events(name))
    wire = check_results(enc, results)
    assert wire[-1]["status"]["state"] == ("failed" if name == "provider_error" else "completed")


# ==================================================================================== server
class SlowModel:
    """A model double streaming 100 words 20 ms apart. (``ReplayModel(delay=...)`` is not used
    here: its delayed source holds a task group across a ``yield``, and ``AgentStream.cancel()``
    from another task then fails with "Attempted to exit a cancel scope that isn't the current
    task's current cancel scope".)"""

    name = "slow"

    def stream(self, messages: Any, *, run_id: str | None = None, agent: str = "", **_: Any) -> so.Stream[so.BaseEvent]:
        return so.Stream.from_async_iterable(self._gen(run_id or "", agent))

    async def _gen(self, run_id: str, agent: str) -> AsyncIterator[so.BaseEvent]:
        env = {"run_id": run_id, "agent": agent}
        yield so.RunStart(model=self.name, **env)
        for i in range(100):
            await anyio.sleep(0.02)
            yield so.TextDelta(delta=f"w{i} ", block_id="0", **env)
        yield so.RunEnd(finish_reason="stop", **env)


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """A real uvicorn server on 127.0.0.1 (a free port), stopped when the block exits."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            with anyio.fail_after(10):
                while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()  # also when the block or the start failed


def make_app(factory: Any) -> Any:
    from starlette.applications import Starlette

    return Starlette(routes=a2a_routes(factory))


def send_request(text: str) -> Any:
    from a2a.types import Message, Part, Role, SendMessageRequest

    msg = Message(message_id="m1", role=Role.ROLE_USER, parts=[Part(text=text)])
    return SendMessageRequest(message=msg)


pytestmark_server = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@pytest.mark.anyio
@pytestmark_server
async def test_server_streams_to_the_sdk_client_and_serves_the_card() -> None:
    pytest.importorskip("a2a.compat.v0_3.jsonrpc_transport")
    from a2a.compat.v0_3.jsonrpc_transport import CompatJsonRpcTransport
    from a2a.types import GetTaskRequest, TaskState

    async with serve(make_app(AGENTS["parallel_tools_then_text"])) as base, httpx.AsyncClient(timeout=10) as http:
        card = (await http.get(base + "/.well-known/agent-card.json")).json()
        card_model = T.AgentCard.model_validate(card)
        assert card_model.url == base + "/a2a" and card_model.capabilities.streaming
        client = CompatJsonRpcTransport(http, None, card["url"])
        responses = [r async for r in client.send_message_streaming(send_request("2 and 3?"))]
        kinds = [r.WhichOneof("payload") for r in responses]
        assert kinds[0] == "task" and kinds[-1] == "status_update"
        assert "artifact_update" in kinds
        task_id = responses[0].task.id
        final = responses[-1].status_update
        assert final.status.state == TaskState.TASK_STATE_COMPLETED
        text = "".join(
            p.text
            for r in responses
            if r.WhichOneof("payload") == "artifact_update"
            for p in r.artifact_update.artifact.parts
        )
        assert text == "I'll add and multiply the numbers 2 and 3 for you.2"  # both steps' text
        got = await client.get_task(GetTaskRequest(id=task_id))
        assert got.id == task_id and got.status.state == final.status.state
        assert [p.text for p in got.history[0].parts] == ["2 and 3?"]
        # JSON-RPC errors
        r = (await http.post(base + "/a2a", content=b"{nope")).json()
        assert r["error"]["code"] == -32700
        r = (await http.post(base + "/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "x/y", "params": {}})).json()
        assert r["error"]["code"] == -32601 and r["id"] == 1
        r = (
            await http.post(
                base + "/a2a", json={"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": "no"}}
            )
        ).json()
        assert r["error"]["code"] == -32001
        r = (
            await http.post(
                base + "/a2a", json={"jsonrpc": "2.0", "id": 3, "method": "tasks/cancel", "params": {"id": task_id}}
            )
        ).json()
        assert r["error"]["code"] == -32002  # already completed: not cancelable
        r = (
            await http.post(base + "/a2a", json={"jsonrpc": "2.0", "id": 4, "method": "message/stream", "params": {}})
        ).json()
        assert r["error"]["code"] == -32602
        for obj in (r,):
            T.JSONRPCErrorResponse.model_validate(obj)


@pytest.mark.anyio
@pytestmark_server
async def test_tasks_cancel_cancels_the_running_agent_stream() -> None:
    def slow_agent() -> Agent:
        return Agent(SlowModel())

    req = {
        "jsonrpc": "2.0",
        "id": "s1",
        "method": "message/stream",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m1",
                "role": "user",
                "parts": [{"kind": "text", "text": "a story"}],
            }
        },
    }
    async with serve(make_app(slow_agent)) as base, httpx.AsyncClient(timeout=10) as http:
        results: list[dict[str, Any]] = []
        cancel_reply: dict[str, Any] = {}
        async with http.stream("POST", base + "/a2a", json=req) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):
                    continue
                msg = json.loads(line[6:])
                parsed = RESPONSE.model_validate(msg).root
                assert parsed.id == "s1"
                results.append(msg["result"])
                if len([r for r in results if r["kind"] == "artifact-update"]) == 3:
                    task_id = results[0]["id"]
                    cancel = {"jsonrpc": "2.0", "id": 9, "method": "tasks/cancel", "params": {"id": task_id}}
                    cancel_reply = (await http.post(base + "/a2a", json=cancel)).json()
        final = results[-1]
        assert final["kind"] == "status-update" and final["final"] is True
        assert final["status"]["state"] == "canceled"
        assert final["metadata"]["streamops"]["status"] == "cancelled"
        task = T.CancelTaskSuccessResponse.model_validate(cancel_reply).result
        assert task.status.state.value == "canceled"
        assert 3 <= sum(r["kind"] == "artifact-update" for r in results) < 40  # stopped early
        got = (
            await http.post(
                base + "/a2a", json={"jsonrpc": "2.0", "id": 10, "method": "tasks/get", "params": {"id": task_id}}
            )
        ).json()
        assert got["result"]["status"]["state"] == "canceled"
