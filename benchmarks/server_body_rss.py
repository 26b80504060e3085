"""Server memory under a 100 MB request body (issue 13 item 9a): the peak RSS growth of a
``streamops serve`` process (a replayed model, 127.0.0.1) that receives one 100 MB Chat
Completions body, announced by Content-Length and sent chunked, with the default body limit
(4 MiB) and with the limit raised past the body (what the server did before it had one: read
the whole body, then decode it).

Not part of ``benchmarks/run.py`` (it starts servers and sends 400 MB over loopback, about a
minute). Run: ``python benchmarks/server_body_rss.py``. Prints one line per case: the status
the client got and the server's peak RSS growth (VmHWM after minus VmRSS before, MiB).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "tests/fixtures/recorded/openai/chat_text_usage_openai_python.sse"
SIZE = 100 * 2**20

SERVER = """
import sys, uvicorn
from streamops.serve.app import create_app
app = create_app(model="replay:" + sys.argv[1], a2a=False, max_body_bytes=int(sys.argv[2]))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
"""


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(port: int, chunked: bool) -> str:
    """POST a 100 MB body; the status line of the answer (read while sending)."""
    prefix = b'{"messages":[{"role":"user","content":"'
    suffix = b'"}]}'
    filler = SIZE - len(prefix) - len(suffix)
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(120)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % SIZE
    block = b"x" * 2**20
    try:
        s.sendall(head)
        parts = [prefix] + [block] * (filler // len(block)) + [b"x" * (filler % len(block)), suffix]
        for p in parts:
            s.sendall(b"%x\r\n%s\r\n" % (len(p), p) if chunked else p)
        if chunked:
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered early and closed
    try:
        reply = s.recv(200)
    except OSError:
        reply = b""
    s.close()
    return reply.split(b"\r\n", 1)[0].decode() or "(connection reset)"


def case(limit: int, chunked: bool) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(RECORDING), str(limit), str(port)])
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)
        before = status_kib(server.pid, "VmRSS")
        answer = send(port, chunked)
        time.sleep(0.5)
        peak = status_kib(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(30)
    label = "default limit (4 MiB)" if limit < SIZE else "no limit (before)"
    how = "chunked" if chunked else "Content-Length"
    row = {"case": f"{label}, {how}", "answer": answer, "peak_rss_growth_mib": round((peak - before) / 1024, 1)}
    print(json.dumps(row))


def main() -> None:
    for limit in (4 * 2**20, 2**40):
        for chunked in (False, True):
            case(limit, chunked)


if __name__ == "__main__":
    main()
