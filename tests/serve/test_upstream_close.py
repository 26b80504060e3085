"""``streamops serve`` closes a real upstream HTTP connection when its client leaves.

A fake OpenAI-compatible provider on 127.0.0.1 (plain sockets, in threads) streams a Chat
Completions SSE body slowly and forever (one chunk every 50 ms, never ``[DONE]``) and records
when its client closed the connection. The server's model is a
:class:`~streamops.adapters.models.LiteLLMModel` pointed at it with ``api_base``: the request
goes over real HTTP, so "closed" here is the provider seeing EOF on its socket, not a stub's
own ``finally``.

Synchronous tests, like tests/serve/test_app.py (whose ``serve`` they use): uvicorn runs the
app on asyncio in a thread, which is also the only loop LiteLLM runs on.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from streamops.adapters.litellm import import_litellm
from streamops.adapters.models import LiteLLMModel

from streamops.serve.app import create_app
from tests._http import parse_head
from tests.serve.test_app import run_log, serve

pytestmark = [
    # as in tests/adapters/test_litellm.py: LiteLLM reads pydantic's deprecated instance fields
    pytest.mark.filterwarnings("ignore:Accessing the 'model_.*fields' attribute on the instance:DeprecationWarning"),
]

MESSAGES: Any = [{"role": "user", "content": "Count forever"}]
LIMIT = 1.0  # seconds from the client's disconnect to the provider seeing its connection closed


def chunk(i: int) -> bytes:
    delta: dict[str, Any] = {"content": f"tok{i} "}
    if i == 0:
        delta["role"] = "assistant"
    obj = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class FakeProvider:
    """An OpenAI-compatible ``POST /v1/chat/completions`` that streams chunks every
    ``interval`` seconds until its client goes away, and records when that happened (EOF or a
    broken pipe on the socket; detected within one ``interval``)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.base_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.requests: list[dict[str, Any]] = []
        self.sent = 0
        self.streaming = threading.Event()
        self.closed = threading.Event()
        self.closed_at = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> FakeProvider:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.listener.close()

    def stop(self) -> None:
        """End every response (the body just stops: a truncated stream) and stop accepting."""
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._handle, conn)

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while (req := parse_head(buf)) is None:
                buf += conn.recv(65536)
            body = req.body
            while len(body) < req.content_length:
                body += conn.recv(65536)
            self.requests.append(json.loads(body))
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\nconnection: close\r\n\r\n"
            )
            i = 0
            while not self._stop.is_set():
                try:
                    readable, _, _ = select.select([conn], [], [], 0 if i == 0 else self.interval)
                    if readable and not conn.recv(65536):
                        break  # EOF: the client closed the connection
                    conn.sendall(chunk(i))
                except OSError:  # broken pipe, connection reset
                    break
                i += 1
                self.sent = i
                self.streaming.set()
            else:
                return  # stopped by the test, not closed by the client
            self.closed_at = time.monotonic()
            self.closed.set()


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    mod = import_litellm()  # here, not inside the first test's time (the import takes seconds)
    quiet = mod.suppress_debug_info
    mod.suppress_debug_info = True
    yield mod
    mod.suppress_debug_info = quiet


@pytest.fixture
def provider(litellm: Any) -> Iterator[FakeProvider]:
    with FakeProvider() as p:
        yield p


def app_for(provider: FakeProvider) -> Any:
    return create_app(model=LiteLLMModel("openai/gpt-4o", api_base=provider.base_url, api_key="sk-test"))


def read_until(parts: Iterator[bytes], n: int) -> bytes:
    """Read a body's ``parts`` until what was read holds ``n`` SSE ``data:`` frames."""
    got = b""
    for part in parts:
        got += part
        if got.count(b"data: ") >= n:
            return got
    raise AssertionError(f"the body ended before {n} data frames: {got!r}")


def contents(body: bytes) -> str:
    out = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            for c in json.loads(line[6:]).get("choices", []):
                out.append(c["delta"].get("content") or "")
    return "".join(out)


def test_completion_client_disconnect_closes_the_provider_connection(provider: FakeProvider) -> None:
    with serve(app_for(provider)) as base:
        with httpx.stream(
            "POST", f"{base}/v1/chat/completions", json={"messages": MESSAGES, "stream": True}, timeout=30
        ) as r:
            assert r.status_code == 200
            run_id = r.headers["x-streamops-run-id"]
            got = read_until(r.iter_bytes(), 4)  # the role chunk, then provider tokens
            # The provider's tokens reached the client over the real upstream connection.
            assert contents(got).startswith("tok0 tok1 ")
            assert provider.streaming.is_set() and not provider.closed.is_set()
            left_at = time.monotonic()
        # Leaving the block closed the client's connection mid-stream.
        assert provider.closed.wait(5), "the provider's connection was never closed"
        delay = provider.closed_at - left_at
        assert delay < LIMIT, f"the provider saw its connection closed {delay:.3f} s after the client left"
        logged = run_log(base, run_id)
    assert len(provider.requests) == 1
    sent = provider.requests[0]
    assert sent["stream"] is True and sent["messages"] == MESSAGES and sent["model"] == "gpt-4o"
    end = logged[-1]
    assert end.kind == "run-end" and end.status == "cancelled"  # type: ignore[attr-defined]


def test_a_run_events_watcher_leaving_keeps_the_provider_connection(provider: FakeProvider) -> None:
    """``GET /runs/{id}/events`` follows with ``on_disconnect="continue"``: a watcher that leaves
    never cancels the run, so the upstream stays open until the completion's own client leaves."""
    with serve(app_for(provider)) as base:
        with httpx.stream(
            "POST", f"{base}/v1/chat/completions", json={"messages": MESSAGES, "stream": True}, timeout=30
        ) as r:
            run_id = r.headers["x-streamops-run-id"]
            parts = r.iter_bytes()
            read_until(parts, 2)
            with httpx.stream("GET", f"{base}/runs/{run_id}/events", timeout=30) as w:
                assert w.status_code == 200
                watched = read_until(w.iter_bytes(), 3)
            assert b'"run-start"' in watched
            sent = provider.sent
            time.sleep(0.5)  # ten provider intervals after the watcher left
            assert not provider.closed.is_set(), "a watcher leaving closed the provider's connection"
            assert provider.sent > sent, "the provider stopped streaming"
            read_until(parts, 1)  # and the completion's client still receives
            left_at = time.monotonic()
        assert provider.closed.wait(5), "the provider's connection was never closed"
        assert provider.closed_at - left_at < LIMIT


def test_non_stream_client_disconnect_closes_the_provider_connection(provider: FakeProvider) -> None:
    """The module docstring of streamops/serve/app.py: "A client that disconnects from
    /v1/chat/completions cancels its run: the model request is closed". A non-stream client
    that leaves (a raw socket: the request is sent, then the socket closed mid-generation)."""
    with serve(app_for(provider)) as base:
        try:
            port = int(base.rsplit(":", 1)[1])
            body = json.dumps({"messages": MESSAGES}).encode()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                    b"content-type: application/json\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                assert provider.streaming.wait(5), "the provider was never asked"
                time.sleep(0.2)  # a few provider chunks into the generation
                assert not provider.closed.is_set()
                left_at = time.monotonic()
            assert provider.closed.wait(LIMIT + 0.5), "the provider's connection was never closed"
            assert provider.closed_at - left_at < LIMIT
        finally:
            provider.stop()  # else the run (and so the server's shutdown) would wait forever
