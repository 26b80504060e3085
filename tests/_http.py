"""The request side of the tiny HTTP/1.1 servers the tests start on 127.0.0.1 (fake providers).

Sans-IO: each server reads from its own socket (anyio or blocking) and asks :func:`parse_head`
what it has, so every fake provider parses a request the same way.
"""

from __future__ import annotations

import subprocess
from typing import Any, NamedTuple


class RequestHead(NamedTuple):
    """A request's head, once the blank line that ends it was received."""

    target: str
    """The request target (``/v1/chat/completions``)."""
    content_length: int
    """The ``Content-Length`` header (0 when absent), in bytes."""
    body: bytes
    """The body bytes received with the head so far (may be short of ``content_length``)."""


def parse_head(buf: bytes) -> RequestHead | None:
    """The head of the request in ``buf``, or ``None`` until its end (``\\r\\n\\r\\n``) arrived."""
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return RequestHead(lines[0].split(b" ")[1].decode(), length, rest)


def wait_healthy(
    proc: subprocess.Popen[Any], base: str, *, timeout: float = 60.0, what: str = "streamops serve"
) -> None:
    """Wait until the server process ``proc`` answers 200 on ``{base}/healthz``; fail the test
    (with its stderr, when piped) if it exits first or does not come up in ``timeout`` seconds."""
    import time

    import httpx
    import pytest

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            err = proc.communicate()[1] if proc.stderr is not None else ""
            pytest.fail(f"{what} exited: {err}")
        assert time.monotonic() < deadline, f"{what} did not come up in {timeout:g} s"
        time.sleep(0.1)
