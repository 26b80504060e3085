"""A realistic pipeline: ``of_type(TextDelta) | smooth("word") | count_tokens``, against one
hand-written async generator doing the same work.

Run::

    python benchmarks/bench_pipeline.py            # 300,000 events, 5 rounds
    python benchmarks/bench_pipeline.py --quick    # 50,000 events, 3 rounds
    python benchmarks/bench_pipeline.py --events 100000 --json out.json

Input: the token-like deltas of ``bench_smooth.py`` (English prose cut into 1-8 character
deltas, runs of Chinese, a tool-call start every ~400 deltas, which ``of_type`` drops and
which starts a new text block). Every contender pulls the SAME pre-built list through the same
async generator source and is consumed by the same ``async for`` loop.

Contenders:

- ``hand-written`` (the baseline): one async generator that keeps the text deltas, re-chunks
  them on word/CJK boundaries (the same regex and slot-filling copy as ``bench_smooth.py``'s
  baseline; flush at a block change, above ``max_chars`` and at the end) and counts the
  tokens of each chunk the way ``count_tokens`` does (up to the last space that follows a
  non-space, the tail waits for more text), with the same tokenizer.
- ``streamops``: ``Stream.from_async_iterable(src) | of_type(TextDelta) | smooth() |
  count_tokens(counter, tokenizer=..., emit_every=None)``.

The tokenizer is ``streamops.operators.tokens.load_encoding()`` (tiktoken ``o200k_base``,
offline from LiteLLM's bundled files), loaded once, outside the timing, and given to both.
Both contenders' outputs (chunk texts, token total) are checked equal. No target of its own;
the ratio says what the operators cost on top of the work a real pipeline does anyway
(tokenizing dominates).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, CaseResult, verdict, write_json
from bench_smooth import _HAND_WORD, MAX_CHARS, _copy, build_events

from streamops import Stream
from streamops.events import BaseEvent, TextDelta
from streamops.operators import of_type
from streamops.operators.text import smooth
from streamops.operators.tokens import TokenCounter, count_tokens, load_encoding


def _counted(count: Callable[[str], int], text: str) -> tuple[int, str]:
    """Tokens of ``text`` up to its last space that follows a non-space, and the tail after it
    (what ``count_tokens`` does for each delta)."""
    cut = text.rfind(" ")
    while cut > 0 and text[cut - 1].isspace():
        cut = text.rfind(" ", 0, cut)
    if cut > 0:
        return count(text[:cut]), text[cut:]
    return 0, text


async def hand_written(
    source: AsyncIterator[BaseEvent], count: Callable[[str], int], totals: list[int]
) -> AsyncIterator[Any]:
    """Keep text deltas, re-chunk them on word boundaries, count the chunks' tokens; the token
    total (tails included) is left in ``totals[0]`` at the end."""
    search = _HAND_WORD.search
    buf = ""
    last: Any = None
    tails: dict[str | None, str] = {}
    tokens = 0

    def out(src: Any, text: str) -> Any:
        nonlocal tokens
        n, tails[src.block_id] = _counted(count, tails.get(src.block_id, "") + text)
        tokens += n
        return _copy(src, text)

    async for e in source:
        if e.__class__ is not TextDelta:
            continue
        if last is not None and e.block_id != last.block_id and buf:
            yield out(last, buf)
            buf = ""
        n = len(buf)
        s = buf + e.delta if n else e.delta
        pos = 0
        m = search(s, n - 1 if n else 0)
        while m is not None:
            p = m.end()
            if not (s[pos].isspace() and s[pos:p].isspace()):  # leading whitespace waits for its word
                yield out(e, s[pos:p])
                pos = p
            m = search(s, p)
        buf = s[pos:] if pos else s
        if buf and buf[-1].isspace() and buf[-1] != "\r" and not buf.isspace():
            yield out(e, buf)  # a word and its whitespace: emitted at once
            buf = ""
        while len(buf) > MAX_CHARS:
            yield out(e, buf[:MAX_CHARS])
            buf = buf[MAX_CHARS:]
        last = e
    if buf:
        yield out(last, buf)
    totals[0] = tokens + sum(count(t) for t in tails.values() if t)


def make_case(events: list[BaseEvent], count: Callable[[str], int]) -> Case:
    async def source() -> AsyncIterator[BaseEvent]:
        for e in events:
            yield e

    def digest(texts: list[str], tokens: int) -> tuple[int, int, str, int]:
        h = hashlib.sha1("\x00".join(texts).encode()).hexdigest()[:12]
        return len(texts), sum(map(len, texts)), h, tokens

    async def run_hand() -> Any:
        texts: list[str] = []
        add = texts.append
        totals = [0]
        async for x in hand_written(source(), count, totals):
            add(x.delta)
        return digest(texts, totals[0])

    async def run_streamops() -> Any:
        texts: list[str] = []
        add = texts.append
        counter = TokenCounter()
        s = (
            Stream.from_async_iterable(source())
            | of_type(TextDelta)
            | smooth(max_chars=MAX_CHARS)
            | count_tokens(counter, tokenizer=count, emit_every=None)
        )
        async with s.iterate() as it:
            async for x in it:
                add(x.delta)
        tokens = sum(c.estimated_output + sum(count(t) for t in c._tails.values() if t) for c in counter.runs.values())
        return digest(texts, tokens)

    case = Case(
        'pipeline: of_type(TextDelta) | smooth("word") | count_tokens (tiktoken o200k_base)',
        items=len(events),
        baseline="hand-written",
        unit="event",
    )
    case.add("hand-written", run_hand, note="one async generator: filter, re-chunk, count (same tokenizer)")
    case.add("streamops", run_streamops, note="Stream | of_type | smooth() | count_tokens(emit_every=None)")
    return case


def run(quick: bool = False, *, n: int | None = None, rounds: int | None = None) -> list[CaseResult]:
    """Run the case and print it; returns its result. The suite runner's entry. Prints a note
    and returns nothing when the tokenizer cannot be loaded (litellm not installed)."""
    n = n or (50_000 if quick else 300_000)
    rounds = rounds or (3 if quick else 5)
    try:
        count = load_encoding()
    except RuntimeError as exc:
        print(f"pipeline case skipped: {exc}")
        return []
    events = build_events(n)
    case = make_case(events, count)
    result = case.run(rounds=rounds, warmup=1)
    print(result.table())
    ok, msg = result.check_equal()
    print(f"  check: {verdict(ok)}  {msg}  (chunks, characters, sha1, tokens)")
    ratio = result.ratio("streamops")
    print(f"  info:   streamops / hand-written = {ratio:.2f}x")
    result.info.update({"results_equal": ok, "ratio": ratio})
    return [result]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="50,000 events, 3 rounds")
    ap.add_argument("--events", type=int, default=None, help="number of text deltas")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", type=str, default=None, help="write the results to this file")
    args = ap.parse_args(argv)
    results = run(args.quick, n=args.events, rounds=args.rounds)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
