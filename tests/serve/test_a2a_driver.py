"""Issue 16 (b): the A2A routes run through the one driver of every sink
(``encoder_response``/``encoder_producer`` with an ``A2AEncoder``), with no error loop of their
own. A run that raises mid-task ends with the events before it, then one ``failed`` final
status, every frame answering the request's JSON-RPC id; a client that leaves cancels the run
and gives its place under the run limit back; ``tasks/cancel`` ends a stream ``canceled``.

The app is driven in process through ASGI (a real starlette app; the request's body sent at
once, the response read frame by frame as it is written, ``http.disconnect`` sent when the
test's client leaves), so these run on asyncio and trio; one test repeats the disconnect over a
real TCP connection to uvicorn (asyncio only, as tests/serve/test_a2a.py explains). Every frame
is validated by the a2a-sdk's own JSON-RPC response model.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

import streamops as so
from streamops.agent import Agent, AgentStream
from streamops.serve import RunLimit
from streamops.serve.a2a import a2a_routes
from streamops.sinks.a2a import a2a_types_module
from tests._models import FakeModel, ModelCall

T = a2a_types_module()

pytestmark = pytest.mark.anyio


class WordsModel(FakeModel):
    """A model double streaming ``words`` as text deltas, ``pause`` seconds apart; ``closed``
    turns true when its stream is closed (run to its end, or cancelled)."""

    name = "words"

    def __init__(self, words: Sequence[str], pause: float = 0.0) -> None:
        self.words = words
        self.pause = pause
        self.closed = False

    async def respond(self, call: ModelCall) -> AsyncIterator[so.BaseEvent]:
        env = call.env
        try:
            yield so.RunStart(model=self.name, **env)
            for w in self.words:
                await anyio.sleep(self.pause)
                yield so.TextDelta(delta=w, block_id="0", **env)
            yield so.RunEnd(finish_reason="stop", **env)
        finally:
            self.closed = True


class _FailingStream(AgentStream):
    def _start(self) -> so.Stream[so.BaseEvent]:
        seen = 0

        def boom(e: so.BaseEvent) -> so.BaseEvent:
            nonlocal seen
            if isinstance(e, so.TextDelta):
                seen += 1
                if seen == 3:
                    raise RuntimeError("the run broke")
            return e

        return super()._start() | so.map(boom)


class FailingAgent(Agent):
    """An agent whose event stream itself raises at its third text delta (a failure the run
    does not turn into events: an ``Agent`` subclass's own stage that breaks). The route serves
    any ``Agent``; this stands for one whose stream raises."""

    def stream(
        self,
        prompt: str | Sequence[Mapping[str, Any]],
        *,
        run_id: str | None = None,
        history: Sequence[Mapping[str, Any]] = (),
    ) -> AgentStream:
        return _FailingStream(self, self._messages(prompt, history), run_id)


def rpc(method: str, req_id: Any = "req-7", **params: Any) -> dict[str, Any]:
    if method.startswith("message/"):
        message = {"kind": "message", "messageId": "m1", "role": "user", "parts": [{"kind": "text", "text": "go"}]}
        params = {"message": message}
    return {"jsonrpc": "2.0", "id": req_id, "method": method, "params": params}


class Call:
    """One ``POST /a2a`` to an ASGI app, in process: :meth:`run` serves it (start it in a task
    group), :meth:`read` returns the SSE frames' JSON-RPC responses as they are written,
    :meth:`leave` makes the client go away (the app's next ``receive()`` is
    ``http.disconnect``)."""

    def __init__(self, app: Any, body: dict[str, Any]) -> None:
        self.app = app
        self.body = json.dumps(body).encode()
        self.gone = anyio.Event()
        self._body_sent = False
        self._in, self._out = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
        self.status: int | None = None
        self._buf = b""

    async def _receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._in.send(message)

    def leave(self) -> None:
        self.gone.set()

    async def run(self) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/a2a",
            "raw_path": b"/a2a",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        try:
            await self.app(scope, self._receive, self._send)
        finally:
            self._in.close()

    async def read(self, until: Callable[[list[dict[str, Any]]], bool] = lambda rs: False) -> list[dict[str, Any]]:
        """The JSON-RPC responses of the frames written since the last read (each validated by
        the SDK's model), up to the body's end or the first point where ``until(them)``."""
        out: list[dict[str, Any]] = []
        while not until(out):
            while b"\n\n" not in self._buf:
                try:
                    message = await self._out.receive()
                except anyio.EndOfStream:
                    assert self._buf == b""
                    return out
                self._buf += message.get("body", b"")
            frame, self._buf = self._buf.split(b"\n\n", 1)
            if frame.startswith(b":"):  # a heartbeat
                continue
            assert frame.startswith(b"data: "), frame
            T.SendStreamingMessageResponse.model_validate_json(frame[len(b"data: ") :])
            out.append(json.loads(frame[len(b"data: ") :]))
        return out


def artifacts(results: list[dict[str, Any]]) -> int:
    return sum(r["result"]["kind"] == "artifact-update" for r in results)


@asynccontextmanager
async def request(app: Any, body: dict[str, Any]) -> AsyncIterator[Call]:
    """A :class:`Call` served in a task group for the block (which waits for the app to end)."""
    call = Call(app, body)
    with call._out:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call.run)
            yield call


def app_and_limit(factory: Any) -> tuple[Starlette, RunLimit]:
    limit = RunLimit(1)
    return Starlette(routes=a2a_routes(factory, run_limit=limit)), limit


async def post(app: Any, body: dict[str, Any]) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/a2a", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def check_failed(results: list[dict[str, Any]], req_id: Any) -> None:
    """The events before the failure kept (a task, the text "ab" then its block closed), then
    one final ``failed`` status naming the error; every frame answers ``req_id``."""
    assert all(r["id"] == req_id and r["jsonrpc"] == "2.0" for r in results)
    wire = [r["result"] for r in results]
    assert wire[0]["kind"] == "task" and wire[0]["status"]["state"] == "working"
    chunks = [(w["artifact"]["parts"][0]["text"], w["append"], w["lastChunk"]) for w in wire[1:-1]]
    assert chunks == [("a", False, False), ("b", True, False), ("", True, True)]
    assert [w.get("final", False) for w in wire].count(True) == 1
    final = wire[-1]
    assert final["kind"] == "status-update" and final["final"] is True
    assert final["status"]["state"] == "failed"
    assert final["metadata"]["streamops"]["status"] == "failed"
    assert final["status"]["message"]["parts"][0]["text"] == "RuntimeError: the run broke"


@pytest.mark.parametrize("req_id", ["req-7", 12])
async def test_a_run_raising_mid_task_keeps_what_came_and_ends_failed_once(req_id: Any) -> None:
    model = WordsModel(["a", "b", "c", "d"])
    app, limit = app_and_limit(lambda: FailingAgent(model))
    async with request(app, rpc("message/stream", req_id)) as call:
        results = await call.read()
    assert call.status == 200
    check_failed(results, req_id)
    assert model.closed and limit.held == 0
    task_id = results[0]["result"]["id"]
    got = await post(app, rpc("tasks/get", 3, id=task_id))
    assert got["result"]["status"]["state"] == "failed"
    assert got["result"]["artifacts"][0]["parts"][0]["text"] == "ab"


async def test_message_send_of_a_run_raising_mid_task_returns_the_failed_task() -> None:
    model = WordsModel(["a", "b", "c", "d"])
    app, limit = app_and_limit(lambda: FailingAgent(model))
    sent = await post(app, rpc("message/send", "s-1"))
    assert sent["id"] == "s-1"
    task = T.SendMessageSuccessResponse.model_validate(sent).result
    assert task.status.state.value == "failed"
    assert task.status.message.parts[0].root.text == "RuntimeError: the run broke"
    assert [a.parts[0].root.text for a in task.artifacts or []] == ["ab"]
    assert model.closed and limit.held == 0


async def test_message_send_is_not_failed_by_a_status_it_never_sends() -> None:
    # message/send answers with the task alone: its driver frames nothing, so a progress
    # status holding data with no JSON form (bytes that are not UTF-8), which fails a
    # message/stream (tests/serve/test_a2a_nonjson.py), never reaches the reply.
    class BytesModel(WordsModel):
        async def respond(self, call: ModelCall) -> AsyncIterator[so.BaseEvent]:
            env = call.env
            yield so.RunStart(model=self.name, **env)
            yield so.TextDelta(delta="hi", block_id="0", **env)
            yield so.CustomEvent(name="x", data={"b": b"\xff"}, **env)
            yield so.RunEnd(finish_reason="stop", **env)

    app, limit = app_and_limit(lambda: Agent(BytesModel([])))
    task = T.SendMessageSuccessResponse.model_validate(await post(app, rpc("message/send"))).result
    assert task.status.state.value == "completed"
    assert [a.parts[0].root.text for a in task.artifacts or []] == ["hi"]
    assert limit.held == 0
    async with request(app, rpc("message/stream")) as call:
        results = await call.read()
    assert results[-1]["result"]["status"]["state"] == "failed"
    assert "PydanticSerializationError" in results[-1]["result"]["status"]["message"]["parts"][0]["text"]


async def test_a_client_leaving_cancels_the_run_and_releases_the_limit() -> None:
    model = WordsModel([f"w{i} " for i in range(200)], pause=0.01)
    app, limit = app_and_limit(lambda: Agent(model))
    with anyio.fail_after(10):
        async with request(app, rpc("message/stream")) as call:
            results = await call.read(until=lambda rs: artifacts(rs) == 3)
            assert limit.held == 1 and not model.closed  # the task holds its place while it streams
            call.leave()
    assert model.closed and limit.held == 0
    assert all(r["id"] == "req-7" for r in results)
    got = await post(app, rpc("tasks/get", 2, id=results[0]["result"]["id"]))
    assert got["result"]["status"]["state"] == "canceled"
    assert len(got["result"]["artifacts"][0]["parts"][0]["text"].split()) < 200  # stopped early
    # the place was given back: another task may start (run_limit=1)
    again = await post(app, rpc("tasks/cancel", 4, id=results[0]["result"]["id"]))
    assert again["error"]["code"] == -32002  # over: not cancelable
    model.words, model.pause = ["x"], 0.0
    sent = await post(app, rpc("message/send", 5))
    assert sent["result"]["status"]["state"] == "completed"


async def test_tasks_cancel_during_a_stream_ends_it_canceled() -> None:
    model = WordsModel([f"w{i} " for i in range(200)], pause=0.01)
    app, limit = app_and_limit(lambda: Agent(model))
    reply: dict[str, Any] = {}

    async def cancel(task_id: str) -> None:
        reply.update(await post(app, rpc("tasks/cancel", 42, id=task_id)))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, request(app, rpc("message/stream", 41)) as call:
            results = await call.read(until=lambda rs: artifacts(rs) == 3)
            tg.start_soon(cancel, results[0]["result"]["id"])
            results += await call.read()
    assert all(r["id"] == 41 for r in results)
    wire = [r["result"] for r in results]
    assert [w.get("final", False) for w in wire].count(True) == 1
    final = wire[-1]
    assert final["final"] is True and final["status"]["state"] == "canceled"
    assert final["metadata"]["streamops"]["status"] == "cancelled"
    assert wire[-2]["kind"] == "artifact-update" and wire[-2]["lastChunk"] is True  # the text closed
    assert 3 <= sum(w["kind"] == "artifact-update" for w in wire) < 100
    assert reply["id"] == 42
    assert T.CancelTaskSuccessResponse.model_validate(reply).result.status.state.value == "canceled"
    assert model.closed and limit.held == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_client_leaving_over_tcp_releases_the_limit() -> None:
    """The same over a real connection: uvicorn on 127.0.0.1 sees the client close it."""
    from tests.serve.test_a2a import serve
    from tests.sinks._uvicorn import eventually

    model = WordsModel([f"w{i} " for i in range(500)], pause=0.01)
    app, limit = app_and_limit(lambda: Agent(model))
    async with serve(app) as base, httpx.AsyncClient(timeout=10) as http:
        artifacts = 0
        first = ""
        async with http.stream("POST", base + "/a2a", json=rpc("message/stream")) as resp:
            async for line in resp.aiter_lines():
                first = first or line
                if line.startswith("data: ") and json.loads(line[6:])["result"]["kind"] == "artifact-update":
                    artifacts += 1
                    if artifacts == 3:
                        break
        await eventually(lambda: model.closed and limit.held == 0, within=5)
        task_id = json.loads(first[6:])["result"]["id"]
        got = (await http.post(base + "/a2a", json=rpc("tasks/get", 2, id=task_id))).json()
        assert got["result"]["status"]["state"] == "canceled"
        model.words, model.pause = ["x"], 0.0  # the place was given back: another task starts
        again = await http.post(base + "/a2a", json=rpc("message/send", 3))
        assert again.status_code == 200 and again.json()["result"]["status"]["state"] == "completed"
