"""The server attack suite (issue 13): a real uvicorn on 127.0.0.1 serving ``create_app`` with
a fast fake model (a replayed recording; a 2-second word stream for the disconnects), attacked
with hostile bodies, header injection, slow clients, 200 concurrent streams and 200 mid-stream
disconnects.

"Handled cleanly" means: a status below 500 with the route's own error shape (OpenAI
``{"error": {...}}``, or a JSON-RPC error on ``/a2a``), no header or SSE line injected, no
connection held past its timeout, and afterwards no task, file descriptor or run left over.
Counts are collected in :data:`COUNTS` and printed at the end of the pytest run
(``tests/conftest.py``) and in docs/robustness.md.

asyncio only: uvicorn runs on asyncio, and the server shares the test's event loop so that
its tasks are counted with the test's (``tests/_tasks.py``).
"""

from __future__ import annotations

import gc
import json
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from streamops.adapters import parse_sse_bytes

from streamops.serve._uvicorn import head_timeout_protocol
from streamops.serve.app import create_app
from tests._models import SlowModel
from tests._tasks import live_tasks
from tests.conftest import RECORDED
from tests.serve.test_app import fold
from tests.sinks._uvicorn import serve

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

TEXT = RECORDED / "openai/chat_text_usage_openai_python.sse"
EXPECTED = fold(parse_sse_bytes(TEXT.read_bytes())).text
COUNTS: dict[str, tuple[int, int]] = {}
"""Attack name -> (inputs tried, handled cleanly); printed by tests/conftest.py."""

JSON = {"content-type": "application/json"}


def count(name: str, tried: int, clean: int) -> None:
    COUNTS[name] = (tried, clean)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@asynccontextmanager
async def server(model: Any = None, **options: Any) -> AsyncIterator[str]:
    """``create_app`` on a real uvicorn (127.0.0.1, a free port) with a 2-second head timeout."""
    app = create_app(model=model or f"replay:{TEXT}", body_timeout=options.pop("body_timeout", 30.0))
    async with serve(app, http=head_timeout_protocol(options.pop("head_timeout", 2.0)), **options) as base:
        yield base


# ---------------------------------------------------------------------------- hostile bodies

CHAT: dict[str, Any] = {
    "model": "replay",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ],
    "max_tokens": 16,
    "temperature": 0.5,
    "top_p": 1,
    "stop": ["\n\n"],
    "seed": 1,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
}
A2A: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "message/send",
    "params": {
        "message": {"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "Hi"}]}
    },
}
HOSTILE_VALUES: list[Any] = [
    None, True, -1, 0, 10**30, 1e308, "", "\ud83d", [], {}, "x" * 5000, [[[[[]]]]], {"a": {"b": None}},
]  # fmt: skip
RAW_VALUES = [b"[" * 2000 + b"]" * 2000, b"9" * 5000, b"NaN", b"-Infinity", b"1e999", b'"\\udc00\\ud83d"']


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys, list indexes), the root excluded."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out.append((*prefix, k))
        out += paths(v, (*prefix, k))
    return out


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    value = json.loads(json.dumps(value))
    at = value
    for k in path[:-1]:
        at = at[k]
    at[path[-1]] = new
    return value


def hostile_bodies(valid: dict[str, Any], rng: random.Random) -> list[bytes]:
    """Bodies derived from ``valid``: truncations, byte flips, invalid UTF-8, every field's value
    swapped for each hostile value (and for raw JSON no decoder should take), top-level values
    that are not objects, deep nesting and huge numbers."""
    good = json.dumps(valid).encode()
    out = [good[:i] for i in range(0, len(good), max(1, len(good) // 30))]
    for _ in range(30):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        out.append(bytes(b))
    for _ in range(8):
        i = rng.randrange(len(good))
        out.append(good[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]) + good[i:])
    for path in paths(valid):
        for v in rng.sample(HOSTILE_VALUES, int(os.environ.get("ATTACK_VALUES", "5"))):
            out.append(json.dumps(replaced(valid, path, v)).encode())
        marker = json.dumps(replaced(valid, path, "@@")).encode()
        out.append(marker.replace(b'"@@"', rng.choice(RAW_VALUES)))
    out += [b"", b"null", b"[]", b'"x"', b"1", b"[" * 100_000, b"{" * 3000 + b"}" * 3000, b"\xef\xbb\xbf" + good]
    return out


def clean_openai(r: httpx.Response) -> bool:
    if r.status_code >= 500:
        return False
    body = r.json()
    if r.status_code == 200:
        return body.get("object") == "chat.completion" or r.headers["content-type"].startswith("text/event-stream")
    error = body.get("error")
    return isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}


def clean_jsonrpc(r: httpx.Response) -> bool:
    if r.status_code >= 500:
        return False
    if r.headers["content-type"].startswith("text/event-stream"):
        lines = [line for line in r.text.splitlines() if line.startswith("data: ")]
        return r.status_code == 200 and all(json.loads(line[6:])["jsonrpc"] == "2.0" for line in lines)
    body = r.json()
    return body.get("jsonrpc") == "2.0" and ("result" in body or isinstance(body.get("error", {}).get("code"), int))


async def test_hostile_bodies_get_their_routes_error_shape() -> None:
    rng = random.Random(13)
    chat, a2a = hostile_bodies(CHAT, rng), hostile_bodies(A2A, rng)
    async with server() as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
        with anyio.fail_after(120):
            before = live_tasks()
            results = []
            for route, bodies, ok in (("/v1/chat/completions", chat, clean_openai), ("/a2a", a2a, clean_jsonrpc)):
                clean = 0
                for body in bodies:
                    r = await c.post(route, content=body, headers=JSON)
                    if ok(r):
                        clean += 1
                    else:
                        results.append((route, body[:80], r.status_code, r.text[:200]))
                count(f"hostile bodies {route}", len(bodies), clean)
            assert (await c.get("/healthz")).status_code == 200
            await _until_idle(c)
            left = live_tasks() - before
        assert not results, "\n".join(map(repr, results))
        assert not left, left


async def _until_idle(c: httpx.AsyncClient) -> None:
    """Wait until no run is going (``/healthz``)."""
    while (await c.get("/healthz")).json()["going"]:  # noqa: ASYNC110 (the server's count, over HTTP)
        await anyio.sleep(0.02)


async def test_oversized_chunked_and_trickled_bodies_over_a_raw_socket() -> None:
    """A chunked 100 MiB body past the 4 MiB limit: 413 once about the limit was read (the rest
    never sent); a body trickled slower than ``body_timeout``: 408. The client reads while it
    sends: the server closes the connection after its answer, and a client still sending then
    gets a reset."""
    tried = clean = 0
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    async with server(body_timeout=1.0) as base:
        port = int(base.rsplit(":", 1)[1])
        for route in (b"/v1/chat/completions", b"/a2a"):
            first = head % route + b"Transfer-Encoding: chunked\r\n\r\n"
            reply, sent = await _send_until_answered(port, first, [chunk] * 1600, 0)  # 100 MiB
            tried += 1
            clean += reply.startswith(b"HTTP/1.1 413") and sent < 8 * 2**20
            first = head % route + b"Content-Length: %d\r\n\r\n" % len(body)
            reply, sent = await _send_until_answered(port, first, [bytes([b]) for b in body], 0.1)
            tried += 1
            clean += reply.startswith(b"HTTP/1.1 408")
    count("oversized (chunked 100 MiB) and trickled bodies", tried, clean)
    assert clean == tried


async def _send_until_answered(port: int, first: bytes, parts: list[bytes], pause: float) -> tuple[bytes, int]:
    """Send ``first`` then ``parts`` (``pause`` seconds apart) while reading the reply; stop
    sending once the reply's head arrived. Returns the reply and the bytes of ``parts`` sent."""
    s = await anyio.connect_tcp("127.0.0.1", port)
    reply = b""
    sent = 0
    answered = anyio.Event()

    async def read() -> None:
        nonlocal reply
        try:
            while b"\r\n\r\n" not in reply:
                reply += await s.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        answered.set()

    async with s, anyio.create_task_group() as tg:
        tg.start_soon(read)
        try:
            await s.send(first)
            for p in parts:
                if answered.is_set():
                    break
                await s.send(p)
                sent += len(p)
                await anyio.sleep(pause)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        with anyio.move_on_after(10):
            await answered.wait()
        tg.cancel_scope.cancel()
    return reply, sent


# ---------------------------------------------------------------------------- header injection

RUN_IDS = [
    "%0d%0aSet-Cookie:%20a=b",
    "%0aX-Injected:%201",
    "..%2f..%2fetc%2fpasswd",
    "%00",
    "%F0%9F%98%80",
    "%ED%A0%80",
    "x" * 5000,
    "%22%3E%3Cscript%3E",
]
LAST_EVENT_IDS = [
    b"1\rdata: injected",
    b"1\ndata: injected",
    b"\x00",
    b"\xff\xfe",
    b"9" * 5000,
    b"-1",
    b"1e999",
    b"x" * 20000,
    b"abc:def",
    b"",
]


async def test_ids_cannot_inject_headers_or_sse_lines() -> None:
    tried = clean = 0
    async with server() as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
        port = int(base.rsplit(":", 1)[1])
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        run_id = r.headers["x-streamops-run-id"]
        for rid in RUN_IDS:
            tried += 1
            reply = await _raw(port, b"GET /runs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % rid.encode())
            status, headers, _ = _split(reply)
            if status in (400, 404, 414, 431) and b"set-cookie" not in headers and b"x-injected" not in headers:
                clean += 1
        for lid in LAST_EVENT_IDS:
            tried += 1
            request = b"GET /runs/%s/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s\r\n\r\n" % (run_id.encode(), lid)
            reply = await _raw(port, request)
            status, headers, body = _split(reply)
            if status < 500 and b"injected" not in body.replace(lid, b"") and b"injected" not in headers:
                clean += 1
    count("ids in paths and Last-Event-ID", tried, clean)
    assert clean == tried


async def _raw(port: int, request: bytes) -> bytes:
    """Send ``request`` on a new connection; the reply until the server closes or 3 s pass."""
    s = await anyio.connect_tcp("127.0.0.1", port)
    data = b""
    async with s:
        await s.send(request.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
        with anyio.move_on_after(3):
            try:
                while True:
                    data += await s.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
    return data


def _split(reply: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1]) if lines[0].startswith(b"HTTP/") else 0
    return status, b"\n".join(lines[1:]).lower(), body


# ---------------------------------------------------------------------------- slow headers


async def test_200_trickling_heads_are_closed_after_the_head_timeout() -> None:
    """200 clients trickling header lines one per 0.5 s: each is closed by the server, never
    before the head timeout (1.5 s, less 0.1 s of slack) after it connected, while a normal client is served
    meanwhile; none is open after 4 s of trickling."""
    async with server(head_timeout=1.5) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
        port = int(base.rsplit(":", 1)[1])
        socks, connected_at = [], []
        for _ in range(200):
            socks.append(await anyio.connect_tcp("127.0.0.1", port))
            connected_at.append(anyio.current_time())
            await socks[-1].send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        closed_at: dict[int, float] = {}  # a connection the server closed stays closed

        async def look(wait: float) -> None:
            for i, s in enumerate(socks):
                if i not in closed_at and await _closed(s, wait):
                    closed_at[i] = anyio.current_time()

        with anyio.fail_after(60):
            for n in range(8):  # 4 s of trickling
                await anyio.sleep(0.5)
                for i, s in enumerate(socks):
                    if i not in closed_at:
                        try:
                            await s.send(b"X-Slow: 1\r\n")
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                            closed_at[i] = anyio.current_time()
                await look(0.01)
                if n == 0:  # while they trickle, a normal request is served
                    r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
                    assert r.status_code == 200
            await look(1.0)  # the last look is patient: a loaded loop may take more than 10 ms
        for s in socks:
            await s.aclose()
    # 0.1 s of slack: the server's timer starts when it accepts, a little before the client's
    # connect returns on a loaded loop (both run on this one)
    early = [i for i, t in closed_at.items() if t - connected_at[i] < 1.4]
    clean = len(closed_at) - len(early)
    count("trickling request heads (200, closed after 1.5 s)", 200, clean)
    assert not early, [closed_at[i] - connected_at[i] for i in early]
    assert len(closed_at) == 200, 200 - len(closed_at)


async def _closed(s: Any, wait: float) -> bool:
    """Whether the server closed ``s`` (end of stream or reset seen within ``wait`` seconds)."""
    with anyio.move_on_after(wait):
        try:
            await s.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return True
    return False


# ---------------------------------------------------------------------------- many streams


async def test_200_concurrent_streams_each_get_the_whole_answer() -> None:
    gc.collect()
    tasks, fds = live_tasks(), open_fds()
    async with server() as base:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
            texts: list[str] = []

            async def one() -> None:
                body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
                async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                    lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
                assert lines[-1] == "data: [DONE]"
                chunks = [json.loads(line[6:]) for line in lines[:-1]]
                texts.append("".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"]))

            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    for _ in range(200):
                        tg.start_soon(one)
                await _until_idle(c)
    clean = sum(t == EXPECTED for t in texts)
    count("concurrent streams", 200, clean)
    assert clean == 200
    await _settled(tasks, fds)


async def _settled(tasks: set[Any], fds: int) -> None:
    """Tasks and file descriptors back to what they were (within 3 s): the server's and the
    clients' are all gone. File descriptors: +2 tolerated (the event loop's own, opened lazily)."""
    with anyio.move_on_after(3):
        while live_tasks() - tasks or open_fds() > fds + 2:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    assert not live_tasks() - tasks, live_tasks() - tasks
    assert open_fds() <= fds + 2, (open_fds(), fds)


async def test_200_mid_stream_disconnects_leave_nothing_behind() -> None:
    """200 clients of a 2-second stream leave after its first delta: every run is cancelled
    (``/healthz`` shows none going), and tasks, file descriptors and RSS come back to their start
    (RSS within 30 MiB: allocator arenas keep some of what 200 runs used)."""
    async with server(SlowModel([f"w{i} " for i in range(100)], pause=0.02)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as warm:  # imports, first allocations
            await warm.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        gc.collect()
        tasks, fds, rss = live_tasks(), open_fds(), rss_bytes()
        left = 0
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:

            async def one() -> None:
                nonlocal left
                body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
                async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if '"content":"w' in line:
                            left += 1
                            break

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for _ in range(200):
                        tg.start_soon(one)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            with anyio.fail_after(10):  # each run would take 2 s; cancelled, they end at once
                await _until_idle(c)
        gc.collect()
        await _settled(tasks, fds)
        grown = rss_bytes() - rss
    count("mid-stream disconnects", 200, left)
    assert left == 200
    assert grown < 30 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB"
