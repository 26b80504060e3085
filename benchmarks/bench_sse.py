"""The SSE decoder alone (no JSON parsing): ``streamops.sse.SSEDecoder`` against the OpenAI
SDK's own decoder (``openai._streaming.SSEDecoder``) on the same bytes.

Run::

    python benchmarks/bench_sse.py             # 15 rounds
    python benchmarks/bench_sse.py --rounds 5

Input: every body in ``tests/fixtures/recorded`` (67 real provider responses). Feeds:
each body whole; one chunk per SSE event (what a gateway usually reads); 64-byte chunks (a
slow network). Prints microseconds per event (the best round: the decoder is pure CPU, the
minimum is the least noisy estimate) and the OpenAI SDK decoder's time per event as a ratio.
Both decoders must produce the same events (data, event, id), checked before timing. No
target: this backs the figures quoted in ``streamops/sse.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streamops.sse import SSEDecoder

RECORDED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "recorded"


def bodies() -> list[bytes]:
    out = [p.read_bytes() for p in sorted(RECORDED.rglob("*.sse"))]
    if not out:
        raise SystemExit(f"no recorded bodies under {RECORDED}")
    return out


def per_event(body: bytes) -> list[bytes]:
    """The body cut after each blank line (one read per event)."""
    return [m.group(0) for m in re.finditer(rb"(?s).*?(?:\r\n\r\n|\n\n|\r\r|\Z)", body) if m.group(0)]


def per_64(body: bytes) -> list[bytes]:
    return [body[i : i + 64] for i in range(0, len(body), 64)]


def ours(reads: list[bytes]) -> list[tuple[str, str | None, str | None]]:
    d = SSEDecoder()
    out = []
    for r in reads:
        out += d.feed(r)
    out += d.flush()
    return [(e.data, e.event, e.id) for e in out]


def openai_sdk(reads: list[bytes]) -> list[tuple[str, str | None, str | None]]:
    from openai._streaming import SSEDecoder as OpenAIDecoder

    # the SDK drops ``message`` as a name (None); ours reports the spec's default, "message"
    return [(e.data, e.event or "message", e.id) for e in OpenAIDecoder().iter_bytes(iter(reads))]


def best(fn: Callable[[list[bytes]], object], feeds: list[list[bytes]], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for reads in feeds:
            fn(reads)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    data = bodies()
    events = sum(len(ours([b])) for b in data)
    print(f"{len(data)} recorded bodies, {events} SSE events, best of {args.rounds} rounds")
    print(f"{'feed':<16}{'streamops us/event':>20}{'openai SDK us/event':>22}{'SDK / streamops':>18}")
    for name, cut in (("whole body", lambda b: [b]), ("one per event", per_event), ("64-byte chunks", per_64)):
        feeds = [cut(b) for b in data]
        comparable = [f for f in feeds if ours(f) == openai_sdk(f)]
        mine = best(ours, feeds, args.rounds) / events * 1e6
        sdk_events = sum(len(ours(f)) for f in comparable)
        sdk = best(openai_sdk, comparable, args.rounds) / max(sdk_events, 1) * 1e6
        print(f"{name:<16}{mine:>20.2f}{sdk:>22.2f}{sdk / mine:>17.1f}x   ({len(comparable)}/{len(feeds)} bodies)")
    print("(the SDK column covers the bodies on which both decoders gave the same events)")


if __name__ == "__main__":
    main()
