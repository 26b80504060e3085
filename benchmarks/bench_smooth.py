"""``smooth("word")`` throughput against a hand-written re-chunking generator.

Run::

    python benchmarks/bench_smooth.py            # 1,000,000 deltas, 5 rounds
    python benchmarks/bench_smooth.py --quick    # 100,000 deltas, 3 rounds (well under 20 s)
    python benchmarks/bench_smooth.py --deltas 300000 --json out.json

Input: token-like text deltas of 1-8 characters cut from English prose (most with a leading
space, as LLM tokenizers produce them), with runs of Chinese text (1-3 ideographs per delta),
occasional newlines, and a tool-call start every ~400 deltas (which flushes the held text);
one text block between tool calls. Every contender pulls the SAME pre-built list through the
same async generator source and is consumed by the same ``async for`` loop.

Contenders:

- ``hand-written``: the baseline. One async generator that does the same job as
  ``smooth("word")`` on this input: hold the block's text, cut after each whitespace run and
  around each CJK character (same regex), copy the envelope into each chunk (with the same
  slot-filling copy ``smooth`` uses, so object construction costs the same on both sides),
  flush before a non-text event, at a block change, above ``max_chars`` and at the end. It
  skips what this input does not need: no grapheme cluster checks, no kind table, no
  reasoning deltas.
- ``hand-written (ctor)``: the same, building chunks with the ``TextDelta(...)`` constructor
  (what most hand-written code does); shown for reference.
- ``streamops``: ``Stream.from_async_iterable(source()) | smooth()``.

Every contender's output is checked equal (the chunk texts, in order). Target (printed as
PASS/FAIL, never asserted): ``streamops`` within 1.5x of ``hand-written``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, CaseResult, Target, verdict, write_json

from streamops import Stream
from streamops.events import BaseEvent, TextDelta, ToolCallStart
from streamops.operators.text import smooth

TARGET = 1.5
"""``smooth("word")`` must be within this factor of the hand-written generator."""

MAX_CHARS = 256

_PROSE = (
    "Streaming text arrives in small pieces, and a good interface shows it word by word. "
    "The model writes a sentence, pauses, calls a tool, then continues; the reader should "
    "never see half a word, nor a tool call that overtakes the text before it.\n"
    "Whitespace matters too: code blocks, lists and tables keep their exact spacing, "
    "so every space and newline must come out exactly as it went in. "
    "Hello, world! This is a benchmark of re-chunking deltas on word boundaries.\n\n"
)
_CJK = "流式文本以小片段到达，良好的界面应该逐字显示。模型写一句话，然后调用工具。"


def build_events(n: int, seed: int = 7) -> list[BaseEvent]:
    """``n`` deltas (plus a tool-call start every ~400), deterministic."""
    rng = random.Random(seed)
    out: list[BaseEvent] = []
    prose = _PROSE
    i = 0  # position in the prose
    block = 0
    t0 = 1_700_000_000.0
    seq = 0
    made = 0
    while made < n:
        if rng.random() < 0.0025:
            out.append(ToolCallStart(run_id="run-1", agent="writer", seq=seq, ts=t0 + seq * 1e-4,
                                     call_id=f"call-{block}", name="search"))  # fmt: skip
            seq += 1
            block += 1
        if rng.random() < 0.04:
            # a run of Chinese, 1-3 ideographs per delta
            start = rng.randrange(len(_CJK) - 12)
            j = start
            for _ in range(rng.randint(2, 6)):
                k = rng.randint(1, 3)
                piece = _CJK[j : j + k]
                j += k
                out.append(TextDelta(run_id="run-1", agent="writer", seq=seq, ts=t0 + seq * 1e-4,
                                     delta=piece, block_id=f"b{block}"))  # fmt: skip
                seq += 1
                made += 1
            continue
        # an English token: up to the next space (exclusive) from a leading space, cut to 1-8 chars
        end = prose.find(" ", i + 1)
        if end < 0:
            end = len(prose)
        k = min(end - i, rng.randint(1, 8))
        piece = prose[i : i + k]
        i += k
        if i >= len(prose):
            i = 0
        out.append(TextDelta(run_id="run-1", agent="writer", seq=seq, ts=t0 + seq * 1e-4,
                             delta=piece, block_id=f"b{block}"))  # fmt: skip
        seq += 1
        made += 1
    return out


# ------------------------------------------------------------------------------ the baseline
_NS = "\u3001-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff9f"
_HAND_WORD = re.compile(rf"[\s{_NS}](?=\S)|\S(?=[{_NS}])")


def _copy(src: Any, text: str) -> Any:
    out = object.__new__(TextDelta)
    out.run_id = src.run_id
    out.agent = src.agent
    out.seq = src.seq
    out.ts = src.ts
    out.raw = src.raw
    out.kind = src.kind
    out.delta = text
    out.block_id = src.block_id
    return out


def _ctor(src: Any, text: str) -> Any:
    return TextDelta(run_id=src.run_id, agent=src.agent, seq=src.seq, ts=src.ts, raw=src.raw,
                     delta=text, block_id=src.block_id)  # fmt: skip


async def hand_written(source: AsyncIterator[BaseEvent], make: Any = _copy) -> AsyncIterator[Any]:
    """Re-chunk text deltas on word/CJK boundaries: what ``smooth("word")`` does, by hand."""
    search = _HAND_WORD.search
    buf = ""
    last: Any = None
    async for e in source:
        if e.__class__ is TextDelta:
            if last is not None and e.block_id != last.block_id and buf:
                yield make(last, buf)
                buf = ""
            n = len(buf)
            s = buf + e.delta if n else e.delta
            pos = 0
            m = search(s, n - 1 if n else 0)
            while m is not None:
                p = m.end()
                if not (s[pos].isspace() and s[pos:p].isspace()):  # leading whitespace waits for its word
                    yield make(e, s[pos:p])
                    pos = p
                m = search(s, p)
            buf = s[pos:] if pos else s
            if buf and buf[-1].isspace() and buf[-1] != "\r" and not buf.isspace():
                yield make(e, buf)  # a word and its whitespace: emitted at once
                buf = ""
            while len(buf) > MAX_CHARS:
                yield make(e, buf[:MAX_CHARS])
                buf = buf[MAX_CHARS:]
            last = e
        else:
            if buf:
                yield make(last, buf)
                buf = ""
            last = None
            yield e
    if buf:
        yield make(last, buf)


# ------------------------------------------------------------------------------ contenders
def make_contenders(events: list[BaseEvent]) -> dict[str, Any]:
    async def source() -> AsyncIterator[BaseEvent]:
        for e in events:
            yield e

    def digest(texts: list[str]) -> tuple[int, int, str]:
        h = hashlib.sha1("\x00".join(texts).encode()).hexdigest()[:12]
        return len(texts), sum(map(len, texts)), h

    async def run_hand() -> tuple[int, int, str]:
        texts: list[str] = []
        add = texts.append
        async for x in hand_written(source()):
            if x.__class__ is TextDelta:
                add(x.delta)
        return digest(texts)

    async def run_hand_ctor() -> tuple[int, int, str]:
        texts: list[str] = []
        add = texts.append
        async for x in hand_written(source(), _ctor):
            if x.__class__ is TextDelta:
                add(x.delta)
        return digest(texts)

    async def run_streamops() -> tuple[int, int, str]:
        texts: list[str] = []
        add = texts.append
        async for x in Stream.from_async_iterable(source()) | smooth(max_chars=MAX_CHARS):
            if x.__class__ is TextDelta:
                add(x.delta)
        return digest(texts)

    return {"hand-written": run_hand, "hand-written (ctor)": run_hand_ctor, "streamops": run_streamops}


def run(quick: bool = False, *, n: int | None = None, rounds: int | None = None) -> list[CaseResult]:
    """Run the case and print it; returns its result (target attached). The suite runner's entry."""
    n = n or (100_000 if quick else 1_000_000)
    rounds = rounds or (3 if quick else 5)

    events = build_events(n)
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    print(f"input: {n:,} text deltas ({len(text):,} characters, "
          f"{sum(1 for e in events if not isinstance(e, TextDelta)):,} tool-call starts)")  # fmt: skip

    case = Case('smooth("word") vs hand-written re-chunking', items=n, baseline="hand-written", unit="delta")
    for name, fn in make_contenders(events).items():
        note = {
            "hand-written": "one async generator, same regex, slot-filling copy",
            "hand-written (ctor)": "same, TextDelta(...) constructor",
            "streamops": "Stream | smooth() (fused Stage)",
        }[name]
        case.add(name, fn, note=note)
    result = case.run(rounds=rounds, warmup=1)
    print(result.table())
    ok_eq, msg = result.check_equal()
    print(("outputs equal: " if ok_eq else "OUTPUTS DIFFER: ") + msg)
    ratio = result.ratio("streamops")
    ok = ok_eq and ratio <= TARGET
    print(
        f"streamops {result['streamops'].median:.0f} ns/delta, hand-written "
        f"{result['hand-written'].median:.0f} ns/delta: ratio {ratio:.2f}x "
        f"(target <= {TARGET}x): {verdict(ok)}"
    )
    result.targets.append(Target('smooth: smooth("word") / hand-written', ratio, TARGET, "<="))
    result.info.update({"target": TARGET, "ratio": ratio, "pass": ok, "outputs_equal": ok_eq})
    return [result]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="100,000 deltas, 3 rounds")
    ap.add_argument("--deltas", type=int, default=None, help="number of text deltas")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", type=str, default=None, help="write the results to this file")
    args = ap.parse_args(argv)
    [result] = run(args.quick, n=args.deltas, rounds=args.rounds)
    if args.json:
        info = result.info
        write_json(args.json, [result], {"target": TARGET, "ratio": info["ratio"], "pass": info["pass"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
