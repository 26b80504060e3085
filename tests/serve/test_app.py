"""``streamops serve``: the OpenAI-compatible endpoint, driven by the official ``openai`` client
against a real uvicorn server on 127.0.0.1 (a free port, started and stopped by each test).

The server runs in its own thread with its own event loop: uvicorn runs on asyncio only, and a
thread lets the tests themselves stay plain synchronous code (the sync ``openai.OpenAI``
client). The one async test (``AsyncOpenAI``) runs on asyncio only: see its docstring.
Determinism comes from replayed recordings (``replay:PATH``); one test uses the real local
model at temperature 0.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing, contextmanager
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from streamops.adapters import parse_sse_bytes
from streamops.adapters.replay import ReplayModel

from streamops import Accumulator, Agent
from streamops.events import BaseEvent, RunStart, from_json
from streamops.models import ToolSpec
from streamops.operators.aggregate import Message
from streamops.serve.app import create_app
from streamops.sse import SSEDecoder
from tests._http import wait_healthy
from tests._models import FakeModel, ModelCall
from tests.conftest import RECORDED

TEXT = RECORDED / "openai/chat_text_usage_openai_python.sse"
EMOJI = RECORDED / "anthropic/messages_joke_emoji_oll.sse"
TOOLS = RECORDED / "openai/chat_parallel_tools_openai_python.sse"
LONG = RECORDED / "deepseek/chat_deepseek_emoji_usage_oll.sse"  # 91 events
CLIENT_TOOLS = [
    {"type": "function", "function": {"name": "GetWeatherArgs", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_stock_price", "parameters": {"type": "object"}}},
]
MESSAGES: Any = [{"role": "user", "content": "Hello"}]


def fold(events: Sequence[BaseEvent]) -> Message:
    acc = Accumulator()
    for e in events:
        acc.add(e)
    return acc.message()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port of 127.0.0.1 in a thread; yield the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the server failed to start"
            assert time.monotonic() < deadline, "the server did not start in 30 s"
            time.sleep(0.01)
        yield base
    finally:
        # the clients' pooled keep-alive connections are closed here, not left to the garbage
        # collector (which warned "unclosed socket" in whichever later test it ran)
        for c in _CLIENTS.pop(base, []):
            c.close()
        server.should_exit = True
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


_CLIENTS: dict[str, list[openai.OpenAI]] = {}


def client(base: str) -> openai.OpenAI:
    """An OpenAI client of the server at ``base``, closed when its :func:`serve` block ends."""
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=60)
    _CLIENTS.setdefault(base, []).append(c)
    return c


def run_log(base: str, run_id: str, last_event_id: str | None = None) -> list[BaseEvent]:
    """``GET /runs/{id}/events`` to its end, decoded back into events."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with httpx.stream("GET", f"{base}/runs/{run_id}/events", headers=headers, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read()
    d = SSEDecoder()
    return [from_json(e.data) for e in d.feed(body) + d.flush() if e.data]


def stream_completion(c: openai.OpenAI, **kw: Any) -> tuple[str, list[Any]]:
    """A streamed completion: ``(run id, chunks)``."""
    raw = c.chat.completions.with_raw_response.create(model=served(c), messages=MESSAGES, stream=True, **kw)
    run_id = raw.headers["x-streamops-run-id"]
    return run_id, list(raw.parse())


def served(c: openai.OpenAI) -> str:
    """The server's model, as ``GET /v1/models`` lists it first."""
    return c.models.list().data[0].id


def text_of(chunks: list[Any]) -> str:
    return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


# ---------------------------------------------------------------------------------------- text


@pytest.mark.parametrize("path", [TEXT, EMOJI], ids=["openai-chat", "anthropic"])
def test_streamed_text_equals_the_agents_run(path: Any) -> None:
    spec = f"replay:{path}"
    expected = Agent(spec).stream(MESSAGES).to_list()
    with serve(create_app(model=spec)) as base:
        run_id, chunks = stream_completion(client(base), stream_options={"include_usage": True})
        logged = run_log(base, run_id)
    text = text_of(chunks)
    assert text and text == fold(expected).text == fold(logged).text
    # The chunk stream's shape: role first, finish reason, then the usage chunk.
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    u = fold(expected).usage
    assert u is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (u.input_tokens, u.output_tokens)
    assert len({ch.id for ch in chunks}) == 1 and chunks[0].id == f"chatcmpl-{run_id}"
    # The run log is the agent's run, event for event (same kinds, same deltas).
    assert [(e.kind, getattr(e, "delta", None)) for e in logged] == [
        (e.kind, getattr(e, "delta", None)) for e in expected
    ]
    assert {e.run_id for e in logged} == {run_id}


def test_no_usage_chunk_unless_asked() -> None:
    with serve(create_app(model=f"replay:{TEXT}")) as base:
        _, chunks = stream_completion(client(base))
    assert all(ch.usage is None for ch in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_client(anyio_backend: str) -> None:
    """asyncio only: the ``openai`` SDK stops at ``[DONE]`` without closing its inner SSE async
    generators; trio's finalizer then warns (``ResourceWarning``), which this suite makes an
    error. The server side is the same either way (its own thread and loop)."""
    with serve(create_app(model=f"replay:{EMOJI}")) as base:
        c = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
        stream = await c.chat.completions.create(model="replay", messages=MESSAGES, stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
        await c.close()
    assert text == fold(parse_sse_bytes(EMOJI.read_bytes())).text


# ---------------------------------------------------------------------------------- tool calls


def test_client_tool_calls_are_returned_not_executed() -> None:
    recorded = json.loads(TOOLS.with_suffix(".expected.json").read_text())["tool_calls"]
    with serve(create_app(model=f"replay:{TOOLS}")) as base:
        run_id, chunks = stream_completion(client(base), tools=CLIENT_TOOLS, stream_options={"include_usage": True})
        logged = run_log(base, run_id)
    calls: dict[int, dict[str, str]] = {}
    for ch in chunks:
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            if tc.id:
                assert not c["id"], "id sent twice"
                c["id"] = tc.id
            if tc.function and tc.function.name:
                assert not c["name"], "name sent twice"
                c["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                c["arguments"] += tc.function.arguments
    assert sorted(calls) == [0, 1]
    assert [calls[i] for i in sorted(calls)] == recorded
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finish == ["tool_calls"]
    # Not executed server-side: no tool result or error, one step, and the run ends there.
    kinds = [e.kind for e in logged]
    assert "tool-error" not in kinds and "tool-result" not in kinds
    assert kinds.count("step-start") == 1
    end = logged[-1]
    assert end.kind == "run-end" and end.status == "completed" and end.finish_reason == "tool_calls"  # type: ignore[attr-defined]
    assert [e.seq for e in logged] == list(range(len(logged)))


def test_the_client_tools_reach_the_model() -> None:
    model = ReplayModel([TOOLS])
    with serve(create_app(model=model)) as base:
        stream_completion(client(base), tools=CLIENT_TOOLS)
    (call,) = model.calls
    assert [t.name for t in call["tools"]] == ["GetWeatherArgs", "get_stock_price"]
    assert all(isinstance(t, ToolSpec) for t in call["tools"])
    assert call["messages"] == MESSAGES


# ---------------------------------------------------------------------------------- non-stream


def test_non_stream_text_and_tool_calls() -> None:
    with serve(create_app(model=f"replay:{TEXT}")) as base:
        raw = client(base).chat.completions.with_raw_response.create(model="replay", messages=MESSAGES)
        r = raw.parse()
        run_id = raw.headers["x-streamops-run-id"]
        logged = run_log(base, run_id)
    m = fold(parse_sse_bytes(TEXT.read_bytes()))
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == m.text == fold(logged).text
    assert r.choices[0].finish_reason == "stop"
    assert m.usage is not None and r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (m.usage.input_tokens, m.usage.output_tokens)

    recorded = json.loads(TOOLS.with_suffix(".expected.json").read_text())["tool_calls"]
    with serve(create_app(model=f"replay:{TOOLS}")) as base:
        r = client(base).chat.completions.create(model="replay", messages=MESSAGES, tools=CLIENT_TOOLS)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.content is None
    assert [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments} for t in msg.tool_calls or []] == (
        recorded
    )


# ---------------------------------------------------------------------------------- run events


def test_run_events_replay_and_resume_and_404() -> None:
    with serve(create_app(model=f"replay:{TEXT}")) as base:
        run_id, _ = stream_completion(client(base))
        events = run_log(base, run_id)
        assert events[0].kind == "run-start" and events[-1].kind == "run-end"
        # Resume after the 5th event: exactly the rest.
        from streamops.sinks.resume import event_id

        rest = run_log(base, run_id, last_event_id=event_id(events[4]))
        assert [(e.kind, e.seq) for e in rest] == [(e.kind, e.seq) for e in events[5:]]
        r = httpx.get(f"{base}/runs/nope/events")
        assert r.status_code == 404
        assert "error" in r.json()
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_bad_requests_get_openai_errors() -> None:
    with serve(create_app(model=f"replay:{TEXT}")) as base:
        c = client(base)
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(model="replay", messages=[])
        assert info.value.status_code == 400
        r = httpx.post(f"{base}/v1/chat/completions", content=b"not json")
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


# ---------------------------------------------------------------------------------- disconnect


class ProbeModel(FakeModel):
    """A slow replay whose stream records when it was closed (its ``finally``).

    The delay is its own ``anyio.sleep`` between events rather than ``ReplayModel(delay=...)``:
    that one iterates its body with ``Stream.iterate()`` inside an async generator (a task
    group held across ``yield``), which the agent's per-event cancel scope cannot nest with
    ("Attempted to exit a cancel scope that isn't the current task's current cancel scope")."""

    name = "probe"

    def __init__(self, paths: Sequence[Any], delay: float) -> None:
        self.replay = ReplayModel(paths)
        self.delay = delay
        self.first_event = threading.Event()
        self.closed = threading.Event()
        self.closed_at = 0.0
        self.completed = False

    async def respond(self, call: ModelCall) -> AsyncGenerator[BaseEvent, None]:
        import anyio

        inner = self.replay.stream(call.messages, tools=call.tools, **call.env)
        try:
            async with aclosing(inner.__aiter__()) as it:
                async for ev in it:
                    if self.first_event.is_set():
                        await anyio.sleep(self.delay)
                    self.first_event.set()
                    yield ev
            self.completed = True
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()


def test_client_disconnect_closes_the_upstream_stream_within_a_second() -> None:
    probe = ProbeModel([LONG], delay=0.1)  # 91 events: about 9 s if nobody stops it
    with serve(create_app(model=probe)) as base:
        with httpx.stream(
            "POST", f"{base}/v1/chat/completions", json={"messages": MESSAGES, "stream": True}, timeout=30
        ) as r:
            run_id = r.headers["x-streamops-run-id"]
            got = b""
            for part in r.iter_bytes():
                got += part
                if got.count(b"data: ") >= 3:
                    assert probe.first_event.is_set() and not probe.closed.is_set()
                    left_at = time.monotonic()
                    break  # closing the iterator closes the response: the connection is gone
        # The client went away mid-stream.
        assert probe.closed.wait(5), "the upstream stream was never closed"
        assert probe.closed_at - left_at < 1.0
        assert not probe.completed
        logged = run_log(base, run_id)
    end = logged[-1]
    assert end.kind == "run-end" and end.status == "cancelled"  # type: ignore[attr-defined]


def test_concurrent_requests_are_served_at_once() -> None:
    """Three slow streams at once take about as long as one (a shared replay of three bodies)."""
    model = ProbeModel([TEXT, TEXT, TEXT], delay=0.05)  # 33 events: about 1.6 s each
    results: list[str] = []
    with serve(create_app(model=model)) as base:
        c = client(base)

        def one() -> None:
            _, chunks = stream_completion(c)
            results.append(text_of(chunks))

        t0 = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        took = time.monotonic() - t0
    assert results == [fold(parse_sse_bytes(TEXT.read_bytes())).text] * 3
    assert took < 2 * 1.6 + 1.0, took


# ---------------------------------------------------------------------------------- local model


@pytest.mark.slow
def test_local_model_stream_equals_a_direct_run() -> None:
    from streamops.adapters.local import LocalModel

    settings = {"max_tokens": 24, "temperature": 0}
    direct = Agent(LocalModel(), model_settings=settings).stream(MESSAGES).to_list()
    with serve(create_app(model="local", workers=1)) as base:
        run_id, chunks = stream_completion(
            client(base), max_tokens=24, temperature=0, stream_options={"include_usage": True}
        )
        logged = run_log(base, run_id)
    text = text_of(chunks)
    assert text and text == fold(logged).text == fold(direct).text
    u = fold(direct).usage
    assert u is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (u.input_tokens, u.output_tokens)
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")


# ---------------------------------------------------------------------------------- A2A


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a2a_message_stream_through_create_app(anyio_backend: str) -> None:
    """The app speaks A2A with the model its completions use: the SDK's own v0.3 JSON-RPC client
    streams a task whose text is the replayed answer, then gets it and reads the card. asyncio
    only: uvicorn runs the app in this test's own loop (helpers of tests/serve/test_a2a.py)."""
    pytest.importorskip("a2a.compat.v0_3.jsonrpc_transport")
    from a2a.compat.v0_3.jsonrpc_transport import CompatJsonRpcTransport
    from a2a.types import GetTaskRequest, TaskState

    from tests.serve.test_a2a import T, send_request
    from tests.sinks._uvicorn import serve as serve_async

    expected = fold(parse_sse_bytes(EMOJI.read_bytes())).text
    async with serve_async(create_app(model=f"replay:{EMOJI}")) as base, httpx.AsyncClient(timeout=30) as http:
        card = (await http.get(f"{base}/.well-known/agent-card.json")).json()
        card_model = T.AgentCard.model_validate(card)
        assert card_model.url == f"{base}/a2a" and card_model.capabilities.streaming
        assert card_model.name == "streamops (replay)"
        client = CompatJsonRpcTransport(http, None, card["url"])
        for _ in range(2):  # a fresh agent (and replay) per task
            responses = [r async for r in client.send_message_streaming(send_request("Tell me a joke"))]
            kinds = [r.WhichOneof("payload") for r in responses]
            assert kinds[0] == "task" and kinds[-1] == "status_update" and "artifact_update" in kinds
            text = "".join(
                p.text
                for r in responses
                if r.WhichOneof("payload") == "artifact_update"
                for p in r.artifact_update.artifact.parts
            )
            assert text == expected
            final = responses[-1].status_update
            assert final.status.state == TaskState.TASK_STATE_COMPLETED
            got = await client.get_task(GetTaskRequest(id=responses[0].task.id))
            assert got.status.state == TaskState.TASK_STATE_COMPLETED
            assert [p.text for p in got.history[0].parts] == ["Tell me a joke"]
        # the OpenAI endpoint beside it is unchanged
        r = await http.post(f"{base}/v1/chat/completions", json={"messages": MESSAGES})
        assert r.json()["choices"][0]["message"]["content"] == expected


def test_a2a_routes_can_be_left_out() -> None:
    paths = {getattr(r, "path", None) for r in create_app(model=f"replay:{TEXT}", a2a=False).routes}
    assert "/a2a" not in paths and "/.well-known/agent-card.json" not in paths
    paths = {getattr(r, "path", None) for r in create_app(model=f"replay:{TEXT}").routes}
    assert {"/a2a", "/.well-known/agent-card.json", "/v1/chat/completions"} <= paths


# ---------------------------------------------------------------------------------- the CLI


def test_streamops_serve_command() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamops", "serve", "--port", str(port), "--model", f"replay:{TEXT}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, timeout=30)
        _, chunks = stream_completion(client(base))
        assert text_of(chunks) == fold(parse_sse_bytes(TEXT.read_bytes())).text
        assert httpx.get(f"{base}/.well-known/agent-card.json").json()["url"] == f"{base}/a2a"
    finally:
        for c in _CLIENTS.pop(base, []):
            c.close()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err


class StalledModel(FakeModel):
    """A model that never takes the prompt (its stream waits before its first event); records
    when its stream starts and when it is closed."""

    name = "stalled"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.closed = threading.Event()

    async def respond(self, call: ModelCall) -> AsyncGenerator[BaseEvent, None]:
        import anyio

        try:
            self.started.set()
            await anyio.sleep_forever()
            yield RunStart(model=self.name, **call.env)
        finally:
            self.closed.set()


def test_a_streamed_client_that_leaves_before_the_model_took_the_prompt_cancels_the_run() -> None:
    """A streamed response starts once the model took the prompt (so that a prompt over the
    context window gets a 400); a client that leaves while it waits still stops the run."""
    model = StalledModel()
    with serve(create_app(model=model, a2a=False)) as base:
        with pytest.raises(httpx.ReadTimeout):  # no status line yet: the model never started
            httpx.post(
                f"{base}/v1/chat/completions",
                json={"messages": MESSAGES, "stream": True},
                timeout=httpx.Timeout(5, read=0.5),
            )
        assert model.started.is_set()
        assert model.closed.wait(5), "the run was not stopped when its client left"
