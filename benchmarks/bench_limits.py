"""Bounded memory of the SSE decoder, API detection and the OpenAI Chat parser (issue 13
item 8): tracemalloc peaks for hostile bodies, as ratios to a well-formed body of the same
size parsed in the same run (never asserted: printed, as every benchmark here).

Run::

    python benchmarks/bench_limits.py            # 48 MiB bodies
    python benchmarks/bench_limits.py --quick    # 20 MiB bodies

Cases, each body fed in 64 KiB reads (what ``httpx`` hands over):

- ``line``: one ``data:`` line with no line end, decoder with the default ``max_line``
  (16 MiB) and with the limit off (``max_line`` above the body size: the old behaviour);
- ``event``: ``data:`` lines with no blank line, default ``max_event`` and limit off;
- ``detect``: events that never show their API, ``api="auto"``, default ``max_detect``
  (1 MiB) and limit off;
- baseline: the same number of bytes as well-formed OpenAI Chat chunks, fully parsed.

The peak with a default limit stays near the limit whatever the body size ("x body" falls as
the body grows); with the limit off it grows with the body (the issue measured a 50 MB line
peaking at 200 MB).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamops.adapters._sansio import SSEParser

from streamops.errors import LimitExceededError, StreamFormatError
from streamops.sse import SSEDecoder

READ = 64 * 1024
MiB = 1024 * 1024


def reads(body: bytes) -> Iterator[bytes]:
    view = memoryview(body)
    for i in range(0, len(body), READ):
        yield bytes(view[i : i + READ])


def peak(run: Callable[[], object]) -> tuple[float, str]:
    """Peak traced memory (MiB) of ``run()`` and how it ended."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        run()
        how = "completed"
    except LimitExceededError as exc:
        how = f"LimitExceededError {exc.limit_name}"
    except StreamFormatError as exc:
        how = type(exc).__name__
    finally:
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return top / MiB, how


def decode(body: bytes, **limits: int) -> Callable[[], object]:
    def run() -> object:
        dec = SSEDecoder(**limits)
        n = 0
        for chunk in reads(body):
            n += len(dec.feed(chunk))
        dec.flush()
        return n

    return run


def parse(body: bytes, **options: int) -> Callable[[], object]:
    def run() -> object:
        p = SSEParser("auto", **options)  # type: ignore[arg-type]
        n = 0
        for chunk in reads(body):
            n += len(p.feed(chunk))
        return n + len(p.close())

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    size = (20 if args.quick else 48) * MiB
    off = 4 * size

    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "word "}}]}
    one = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    good = one * (size // len(one)) + b"data: [DONE]\n\n"
    line = b"data: " + b"x" * size
    event = b"data: 0123456789abcdef0123456789abcdef0123456789abcdef\n" * (size // 55)
    undetected = b'data: {"n": 1}\n\n' * (size // 16)

    base, _ = peak(parse(good))
    print(f"body size {size / MiB:.0f} MiB, read in {READ // 1024} KiB chunks; peak traced memory (tracemalloc)")
    print(f"{'case':<34} {'peak MiB':>9} {'x body':>7} {'x baseline':>11}  outcome")
    print(f"{'baseline: well-formed chat body':<34} {base:>9.1f} {base * MiB / size:>7.2f} {1.0:>11.2f}  completed")
    rows = [
        ("line, max_line default (16 MiB)", decode(line)),
        ("line, limit off", decode(line, max_line=off)),
        ("event, max_event default (16 MiB)", decode(event)),
        ("event, limit off", decode(event, max_event=off)),
        ("detect, max_detect default (1 MiB)", parse(undetected)),
        ("detect, limit off", parse(undetected, max_detect=off * 8)),
    ]
    for name, run in rows:
        top, how = peak(run)
        print(f"{name:<34} {top:>9.1f} {top * MiB / size:>7.2f} {top / base:>11.2f}  {how}")


if __name__ == "__main__":
    main()
