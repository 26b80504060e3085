"""Testing helpers: virtual clocks, so time operators can be tested in milliseconds.

- asyncio: :class:`VirtualClockEventLoop` (pass ``loop_factory=VirtualClockEventLoop`` to
  ``asyncio.Runner``, or ``("asyncio", {"loop_factory": VirtualClockEventLoop})`` as anyio's
  pytest ``anyio_backend``);
- trio: ``trio.testing.MockClock(autojump_threshold=0)`` (``("trio", {"clock": ...})``);
- :func:`virtual_backends` gives both, ready for a pytest ``anyio_backend`` fixture.

And real servers for tests and benchmarks: :class:`RedisServer` starts Debian's (or any)
``redis-server`` on a free 127.0.0.1 port in a directory of its own (created if missing) and stops it by its pid
(what the run-store tests and ``benchmarks/bench_stores.py`` use; standard library only).

Under a virtual clock, whenever every task is waiting on a timer, the clock jumps to the next
timer instead of sleeping: ``await anyio.sleep(3600)`` returns at once with
``anyio.current_time()`` one hour later. Real I/O and worker threads still take real time
while the loop waits for them, but a timer that is due meanwhile fires early; use a virtual
clock for code whose waiting is all timers.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = ["RedisServer", "VirtualClockEventLoop", "free_port", "virtual_backends"]


class VirtualClockEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose ``time()`` is virtual and jumps to the next timer when
    nothing is ready (instead of blocking in ``select``)."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        self._virtual_now = 0.0
        sel: Any = self._selector  # type: ignore[attr-defined]
        real_select = sel.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready: list[tuple[selectors.SelectorKey, int]] = real_select(0)
            if ready or timeout == 0:
                return ready
            if timeout is None:
                return real_select(None)  # type: ignore[no-any-return]
            self._virtual_now += timeout
            return []

        sel.select = select

    def time(self) -> float:
        """The virtual time, in seconds (starts at 0)."""
        return self._virtual_now


def virtual_backends() -> list[tuple[str, dict[str, Any]]]:
    """``anyio_backend`` values for asyncio and trio with virtual clocks (trio must be installed)."""
    from trio.testing import MockClock

    return [
        ("asyncio", {"loop_factory": VirtualClockEventLoop}),
        ("trio", {"clock": MockClock(autojump_threshold=0)}),
    ]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` process of one's own on 127.0.0.1, for tests and benchmarks.

    ``RedisServer(directory)`` picks a free port (or takes ``port``); :meth:`start` runs
    ``redis-server --port P --bind 127.0.0.1 --save "" --appendonly yes --dir DIR`` (AOF on,
    Redis's default ``appendfsync everysec``; no RDB snapshots) and returns once it answers
    ``PING``; :meth:`kill` stops it by its pid (``SIGTERM``, or ``signal.SIGKILL`` to simulate a
    crash); :meth:`start` again restarts it on the same port and directory (it reloads its AOF).
    Also a context manager (started on entry, stopped on exit).

    Raises (from :meth:`start`):
        RuntimeError: ``redis-server`` is not on ``PATH`` (Debian: ``apt-get install
            redis-server``), or it did not answer within ``timeout`` seconds.
    """

    def __init__(self, directory: str | os.PathLike[str], port: int | None = None, *, timeout: float = 10.0) -> None:
        self.dir = Path(directory)
        self.port = free_port() if port is None else port
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def installed() -> bool:
        """Whether ``redis-server`` is on ``PATH``."""
        return shutil.which("redis-server") is not None

    def start(self) -> RedisServer:
        """Start it (see the class); return ``self``."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server; .ci/run does it)")
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
        args += ["--dir", str(self.dir), "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill(signal.SIGKILL)
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Stop it by its pid with ``sig`` and wait for it to exit. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
