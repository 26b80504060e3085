"""Slow request heads (issue 13 item 9b): how many of N connections that trickle one header
line per second are still open after some seconds, on a ``create_app`` server (a replayed
model, uvicorn on 127.0.0.1), without and with the head timeout of
:func:`streamops.serve._uvicorn.head_timeout_protocol`.

Not part of ``benchmarks/run.py`` (it holds connections open for seconds). Run:
``python benchmarks/server_slow_heads.py [N] [TIMEOUT] [WAIT]`` (default 200 3 12); prints one
line per server: without the timeout, then with it.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from streamops.serve._uvicorn import head_timeout_protocol
from streamops.serve.app import create_app

RECORDING = Path(__file__).resolve().parents[1] / "tests/fixtures/recorded/openai/chat_text_usage_openai_python.sse"


def still_open(n: int, seconds: float, wait: float) -> int:
    """Open ``n`` trickling connections to a fresh server; how many are open after ``wait`` s."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"http": head_timeout_protocol(seconds)} if seconds > 0 else {}
    app = create_app(model=f"replay:{RECORDING}", a2a=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    clients = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        clients.append(c)
    start = time.monotonic()
    while time.monotonic() - start < wait:
        for c in clients:
            try:
                c.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass
        time.sleep(1)
    alive = 0
    for c in clients:
        c.setblocking(False)
        try:
            alive += c.recv(100) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        c.close()
    server.should_exit = True
    thread.join(15)
    sock.close()
    return alive


def main() -> None:
    n, seconds, wait = (int(sys.argv[1]) if len(sys.argv) > 1 else 200), 0.0, 12.0
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    wait = float(sys.argv[3]) if len(sys.argv) > 3 else wait
    for seconds in (0.0, timeout):
        label = f"head timeout {seconds:g} s" if seconds else "no head timeout"
        print(f"{label}: {still_open(n, seconds, wait)} of {n} trickling connections still open after {wait:g} s")


if __name__ == "__main__":
    main()
