"""Issue 13 item 9: the server's limits, each with its typed error: request body size (413) and
time (408), hostile JSON (400 / JSON-RPC -32700), request field ranges (400), and one run limit
for completions and A2A tasks together (503). In-process (httpx's ASGI transport); the real
uvicorn server and the head timeout are in tests/attack/test_server_attack.py."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from streamops.serve._limits import MAX_JSON_DEPTH, RunLimit, decode_json
from streamops.serve.app import create_app
from streamops.serve.runlog import RunLimitError
from tests._http import wait_healthy
from tests.conftest import RECORDED
from tests.serve.test_limits import Gate

pytestmark = pytest.mark.anyio

TEXT = RECORDED / "openai/chat_text_usage_openai_python.sse"
BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "Hello"}]}
JSON = {"content-type": "application/json"}


def a2a_body(method: str = "message/stream", text: str = "hi") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": method,
        "params": {
            "message": {"kind": "message", "messageId": "m1", "role": "user", "parts": [{"kind": "text", "text": text}]}
        },
    }


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30)


def openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    error: dict[str, Any] = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
    if code is not None:
        assert error["code"] == code, error
    return error


async def test_a_body_past_the_limit_gets_413(anyio_backend: str) -> None:
    """Announced by its Content-Length; a chunked body and a trickled one (408) go to a real
    server in tests/attack/test_server_attack.py."""
    app = create_app(model=f"replay:{TEXT}", max_body_bytes=2000)
    big = json.dumps({**BODY, "pad": "x" * 3000}).encode()
    async with app.router.lifespan_context(app), client_of(app) as c:
        openai_error(await c.post("/v1/chat/completions", content=big, headers=JSON), 413, "body_too_large")
        ok = await c.post("/v1/chat/completions", json=BODY)  # under the limit: served
        assert ok.status_code == 200
        a2a = await c.post("/a2a", content=json.dumps({**a2a_body(), "pad": "x" * 3000}), headers=JSON)
        assert a2a.status_code == 413
        assert a2a.json() == {"jsonrpc": "2.0", "id": None, "error": a2a.json()["error"]}
        assert a2a.json()["error"]["code"] == -32600


DEPTH = MAX_JSON_DEPTH  # inside 3 levels of body: past the limit
HOSTILE = [
    (b"[" * 1000 + b"]" * 1000, "nested_too_deep"),
    (b'{"messages":' + b"[" * 5000 + b"]" * 5000 + b"}", "nested_too_deep"),
    (b'{"messages":[{"role":"user","content":' + b"[" * DEPTH + b"]" * DEPTH + b"}]}", "nested_too_deep"),
    (b'{"messages":[{"role":"user","content":"hi"}],"seed":' + b"9" * 5000 + b"}", "invalid_json"),
    (b'{"messages":[{"role":"user","content":"hi"}],"temperature":NaN}', "invalid_json"),
    (b'{"messages":[{"role":"user","content":"hi"}],"top_p":-Infinity}', "invalid_json"),
    (b'{"messages":[{"role":"user","content":"\xff"}]}', "invalid_json"),
    (b'{"messages":[', "invalid_json"),
]


async def test_hostile_json_gets_400_in_the_openai_shape_and_the_json_rpc_parse_error(anyio_backend: str) -> None:
    app = create_app(model=f"replay:{TEXT}")
    async with app.router.lifespan_context(app), client_of(app) as c:
        for body, code in HOSTILE:
            openai_error(await c.post("/v1/chat/completions", content=body, headers=JSON), 400, code)
            r = await c.post("/a2a", content=body, headers=JSON)
            assert r.status_code == 200 and r.json()["error"]["code"] == -32700, (body[:40], r.text[:200])
            assert r.json()["id"] is None
        # the depth limit's edge: MAX_JSON_DEPTH levels are served
        content = "[" * (MAX_JSON_DEPTH - 4) + "]" * (MAX_JSON_DEPTH - 4)
        r = await c.post("/v1/chat/completions", content=f'{{"messages":[{{"role":"user","content":{content}}}]}}')
        assert r.status_code != 400 or "nest" not in r.text, r.text[:200]


def test_decode_json_depth_counts_objects_and_arrays() -> None:
    assert decode_json(b"[" * 3 + b"]" * 3, max_depth=3) == [[[]]]
    with pytest.raises(Exception, match="deeper than 2"):
        decode_json(b'{"a":{"b":[]}}', max_depth=2)


OUT_OF_RANGE = [
    ({"max_tokens": 10**30}, "max_tokens"),
    ({"max_completion_tokens": 10**30}, "max_completion_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2_000_000}, "max_tokens"),  # under the ceiling, over the server's max_output_tokens
    ({"max_completion_tokens": 1_000_001}, "max_completion_tokens"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": 1e999}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"n": 2}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"seed": 2**64}, "seed"),
    ({"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]}, "tools"),
]


async def test_request_fields_out_of_range_get_400_naming_the_field(anyio_backend: str) -> None:
    app = create_app(model=f"replay:{TEXT}", max_output_tokens=1_000_000, a2a=False)
    async with app.router.lifespan_context(app), client_of(app) as c:
        for extra, field in OUT_OF_RANGE:
            content = json.dumps({**BODY, **extra}).replace("Infinity", "1e999")
            error = openai_error(await c.post("/v1/chat/completions", content=content, headers=JSON), 400)
            assert error["param"] is not None and error["param"].split(".")[0] == field, (extra, error)
        r = await c.post("/v1/chat/completions", json={**BODY, "max_tokens": 1_000_000, "stop": ["a"] * 4, "seed": -1})
        assert r.status_code == 200, r.text[:300]


async def test_completions_and_a2a_tasks_share_one_run_limit(anyio_backend: str) -> None:
    """max_runs=2: a completion and an A2A task going -> a third run of either kind is refused
    (503; the OpenAI shape, the JSON-RPC -32000 error), and served again once they end."""
    gate = Gate()
    app = create_app(model=gate, max_runs=2)
    async with app.router.lifespan_context(app), client_of(app) as c:
        held: list[httpx.Response] = []

        async def hold(path: str, body: Any) -> None:
            held.append(await c.post(path, json=body))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(hold, "/v1/chat/completions", BODY)
                tg.start_soon(hold, "/a2a", a2a_body("message/send"))
                await _until_going(c, 2)
                busy = await c.post("/v1/chat/completions", json=BODY)
                error = openai_error(busy, 503)
                assert error["type"] == "server_error" and busy.headers["retry-after"] == "1"
                for method in ("message/send", "message/stream"):
                    r = await c.post("/a2a", json=a2a_body(method))
                    assert r.status_code == 503 and r.headers["retry-after"] == "1"
                    assert r.json()["error"]["code"] == -32000 and r.json()["id"] == 7
                gate.release.set()
            assert sorted(r.status_code for r in held) == [200, 200]
            again = await c.post("/a2a", json=a2a_body("message/send"))
            assert again.status_code == 200 and again.json()["result"]["status"]["state"] == "completed"
            assert (await c.post("/v1/chat/completions", json=BODY)).status_code == 200


async def _until_going(c: httpx.AsyncClient, n: int) -> None:
    """Wait until ``/healthz`` reports ``n`` runs going (completions and A2A tasks)."""
    while (await c.get("/healthz")).json()["going"] < n:  # noqa: ASYNC110 (the server's count, over HTTP)
        await anyio.sleep(0.01)


def test_run_limit_releases_once() -> None:
    limit = RunLimit(2, lambda: 1)
    release = limit.acquire()
    with pytest.raises(RunLimitError):
        limit.acquire()
    release()
    release()
    assert limit.held == 0 and limit.going == 1
    limit.acquire()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_head_timeout_cuts_no_response_in_flight_and_no_prompt_keep_alive_request(
    anyio_backend: str,
) -> None:
    """Head timeout 0.5 s: a 2-second stream (SlowModel) is served whole, a keep-alive
    connection's next request 0.3 s after the previous response is served, and a connection
    that sends half a head is closed after 0.5 s (the attack suite does it for 200)."""
    from streamops.serve import head_timeout_protocol
    from tests._models import SlowModel
    from tests.sinks._uvicorn import serve

    app = create_app(model=SlowModel([f"w{i} " for i in range(100)], pause=0.02), a2a=False)
    async with serve(app, http=head_timeout_protocol(0.5)) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
        with anyio.fail_after(30):
            body = {**BODY, "stream": True}
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
            assert lines[-1] == "data: [DONE]" and sum('"content":"w' in line for line in lines) == 100
            await anyio.sleep(0.3)
            again = await c.get("/healthz")  # the same keep-alive connection
            assert again.status_code == 200
            port = int(base.rsplit(":", 1)[1])
            s = await anyio.connect_tcp("127.0.0.1", port)
            async with s:
                await s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                start = anyio.current_time()
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await s.receive()
                assert 0.4 < anyio.current_time() - start < 5


@pytest.mark.parametrize("processes", [1, 2])
def test_streamops_serve_limit_flags(processes: int, tmp_path: Any) -> None:
    """The flags reach the app (body limit, output tokens, run limit) and uvicorn (head
    timeout), in one process and in uvicorn worker processes (``--processes 2``, which pass
    them through the environment)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    flags = ["--max-body-bytes", "1000", "--head-timeout", "0.5", "--max-runs", "3", "--max-output-tokens", "10"]
    flags += ["--body-timeout", "5", "--limit-concurrency", "50"]
    if processes > 1:
        flags += ["--processes", "2", "--store", f"sqlite:{tmp_path / 'runs.db'}"]
    cmd = [sys.executable, "-m", "streamops", "serve", "--port", str(port), "--model", f"replay:{TEXT}", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, timeout=60)
        assert httpx.get(f"{base}/healthz").json()["max_runs"] == 3
        big = httpx.post(f"{base}/v1/chat/completions", json={**BODY, "pad": "x" * 2000})
        assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
        many = httpx.post(f"{base}/v1/chat/completions", json={**BODY, "max_tokens": 11})
        assert many.status_code == 400 and many.json()["error"]["param"] == "max_tokens"
        assert httpx.post(f"{base}/v1/chat/completions", json={**BODY, "max_tokens": 10}).status_code == 200
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(10)
            start = time.monotonic()
            assert s.recv(100) == b""  # closed by the server, without an answer
            assert 0.4 < time.monotonic() - start < 8
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
