"""A recorded-stream server on 127.0.0.1 for the frameworks' real HTTP clients (openai-agents,
hypertic): the n-th request gets the n-th recorded body as ``text/event-stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc

from .._http import parse_head

__all__ = ["replay"]


class _Server:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.targets: list[str] = []
        self.closed = 0
        self.closed_event = anyio.Event()


@asynccontextmanager
async def replay(bodies: list[bytes], *, hang_after: int | None = None) -> AsyncIterator[_Server]:
    """An HTTP/1.1 server on 127.0.0.1 answering the n-th request with ``bodies[n]`` as
    ``text/event-stream``; with ``hang_after``, it sends that many bytes of the body and then
    waits until the client closes the connection (counted in ``closed``)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = _Server(f"http://127.0.0.1:{port}/v1")

    async def handle(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            buf = b""
            while (req := parse_head(buf)) is None:
                buf += await conn.receive()
            n = len(server.targets)
            server.targets.append(req.target)
            rest = req.body
            while len(rest) < req.content_length:
                rest += await conn.receive()
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            body = bodies[min(n, len(bodies) - 1)]
            if hang_after is None:
                await conn.send(head + body)
                return
            await conn.send(head + body[:hang_after])
            try:
                while await conn.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                pass
            server.closed += 1
            server.closed_event.set()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
