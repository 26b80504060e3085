"""A fake OpenAI-compatible streaming server with known timing, for ``streamops bench``'s
tests: raw HTTP/1.1 over anyio on 127.0.0.1, one request per connection (``Connection:
close``). The request's ``model`` picks the behaviour:

- ``ok``: after ``TTFT`` seconds a role chunk with the first of ``CHUNKS`` content chunks,
  the others ``GAP`` seconds apart, a usage chunk (``completion_tokens = CHUNKS``), ``[DONE]``;
- ``nousage``: the same without the usage chunk;
- ``auth``: 401 with an OpenAI error body; ``plain``: 200 ``application/json`` (not a stream);
- ``malformed``: one content chunk then invalid JSON; ``nodone``: content chunks then the
  connection closes without ``finish_reason`` nor ``[DONE]``; ``stall``: one content chunk
  then nothing (the client's read timeout ends it);
- ``mix``: every 5th request (counted from 0) is ``auth``, the others ``ok``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
from anyio.from_thread import start_blocking_portal

from tests._http import parse_head

TTFT = 0.08
GAP = 0.02
CHUNKS = 8


@dataclass
class FakeServer:
    base_url: str
    arrivals: list[float] = field(default_factory=list)
    """``time.perf_counter()`` when each request's head arrived, in order."""
    count: int = 0


def _chunk(content: str | None, *, finish: str | None = None, role: bool = False) -> bytes:
    delta: dict[str, str] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    payload = {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


_USAGE = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fake","choices":[],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":' + str(CHUNKS).encode() + b',"total_tokens":13}}\n\n'
)
_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


async def _respond(conn: anyio.abc.SocketStream, model: str) -> None:
    if model == "auth":
        body = b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}'
        await conn.send(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        return
    if model == "plain":
        body = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"content":"hi"}}]}'
        await conn.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        return
    await conn.send(_SSE_HEAD)
    await anyio.sleep(TTFT)
    await conn.send(_chunk("", role=True) + _chunk(" word0"))
    if model == "malformed":
        await conn.send(b"data: {not json\n\n")
        return
    if model == "stall":
        await anyio.sleep(3600)
    for i in range(1, CHUNKS):
        await anyio.sleep(GAP)
        await conn.send(_chunk(f" word{i}"))
    if model == "nodone":
        return
    await conn.send(_chunk(None, finish="stop"))
    if model != "nousage":
        await conn.send(_USAGE)
    await conn.send(b"data: [DONE]\n\n")


@asynccontextmanager
async def fake_server() -> AsyncIterator[FakeServer]:
    """Serve on a free port of 127.0.0.1 until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = FakeServer(base_url=f"http://127.0.0.1:{port}/v1")

    async def handle(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            buf = b""
            try:
                while (head := parse_head(buf)) is None:
                    buf += await conn.receive()
                body = head.body
                while len(body) < head.content_length:
                    body += await conn.receive()
                server.arrivals.append(time.perf_counter())
                n = server.count
                server.count += 1
                model = json.loads(body)["model"]
                if model == "mix":
                    model = "auth" if n % 5 == 0 else "ok"
                await _respond(conn, model)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield server
        tg.cancel_scope.cancel()



@contextmanager
def threaded_fake_server() -> Iterator[FakeServer]:
    """:func:`fake_server` on an event loop in a thread of its own (a blocking portal), for
    the CLI, which runs its own event loop."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(fake_server()) as server:
        yield server
