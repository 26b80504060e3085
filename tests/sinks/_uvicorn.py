"""A real uvicorn server on 127.0.0.1 for the sink tests, started and shut down by the test.

The test binds the listening socket itself (port 0: the OS picks a free port, no race between
choosing and binding) and hands it to uvicorn. uvicorn runs on asyncio only, so the tests that
use it run on the asyncio backend.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import uvicorn


@asynccontextmanager
async def serve(app: Any, *, ws: str = "websockets-sansio", **options: Any) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) for the block; yield its base URL
    (``http://127.0.0.1:PORT``). The server is shut down when the block exits. ``options``:
    more ``uvicorn.Config`` options (``http=``, ``limit_concurrency=``...)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        ws=ws,
        timeout_graceful_shutdown=2,
        **options,
    )
    server = uvicorn.Server(config)
    # The test process owns SIGINT/SIGTERM, not the server.
    server.capture_signals = contextlib.nullcontext  # type: ignore[assignment,method-assign]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            await eventually(lambda: server.started, within=5)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


async def eventually(condition: Callable[[], object], *, within: float) -> None:
    """Wait until ``condition()`` is true, polling every 5 ms; fail after ``within`` seconds."""
    for _ in range(int(within / 0.005) + 1):
        if condition():
            return
        await anyio.sleep(0.005)
    assert condition(), f"not true within {within} s"
