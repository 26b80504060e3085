"""Gateway: raw SSE bytes of recorded OpenAI chat streams -> events -> OpenAI chunk SSE bytes out.

Run::

    python benchmarks/bench_gateway.py            # 9 timed rounds (under a minute)
    python benchmarks/bench_gateway.py --quick    # 3 timed rounds (under 30 s)
    python benchmarks/bench_gateway.py --json out.json

What an OpenAI-compatible gateway does per chunk (``streamops serve`` in front of an
OpenAI-compatible provider), sans-IO: the provider's body, pre-split into network-sized reads,
is parsed by ``SSEParser("openai-chat")`` and every event is re-encoded by
:class:`streamops.sinks.openai.ChunkEncoder` into ``data: <chunk>\\n\\n`` frames, then
``data: [DONE]``. Input: the same bodies and reads as ``bench_ingest.py`` (every recorded
``chat.completions`` body the ``openai`` SDK parses; the input, the SDK client over
``httpx.MockTransport`` and the fold of its chunks are imported from there, not copied).

Contenders (interleaved round by round, process CPU time, medians; see ``_harness.py``):

- ``streamops gateway``: SSE bytes in -> events -> chunk SSE bytes out (the output bytes are
  kept in a list, as a response body would send them).
- ``streamops SSEParser``: the ingest half alone (bytes -> events).
- ``openai SDK``: the baseline: ``AsyncOpenAI`` parsing the same bodies into
  ``ChatCompletionChunk`` objects, and nothing else (no re-encoding at all).

Unit: one input chunk (one SSE event with data, ``[DONE]`` excluded). Printed: input chunks
per second through the gateway, output chunks per second, and how many times faster the whole
gateway (parse + re-encode) is than the SDK's parse alone. A check (outside the timing)
decodes every gateway output with the SDK again and compares text and tool-call arguments
with the SDK's reading of the original body.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, CaseResult, Target, verdict, write_json
from bench_ingest import MESSAGES, Body, Router, fold_chat_chunks, load, openai_client, sdk_excluded
from streamops.adapters import SSEParser

from streamops.events import BaseEvent
from streamops.sinks.openai import DONE, ChunkEncoder

TARGET = 3.0
"""The whole gateway (parse + re-encode) should be at least this many times faster per chunk
than the OpenAI SDK's parse alone."""


def gateway(body: Body) -> list[bytes]:
    """One body through the gateway: the output frames, one item per event that gave chunks."""
    p = SSEParser("openai-chat")
    enc = ChunkEncoder(model="gpt-4o", completion_id="chatcmpl-bench", created=0, include_usage=True)
    encode = enc.encode_frames
    out: list[bytes] = []
    for r in body.reads:
        for ev in p.feed(r):
            b = encode(ev)
            if b:
                out.append(b)
    for ev in p.close():
        b = encode(ev)
        if b:
            out.append(b)
    tail = enc.close()
    if tail:
        out.append(b"".join(map(enc.sse, tail)))
    out.append(DONE)
    return out


def run(quick: bool = False, *, rounds: int | None = None, progress: bool = False) -> list[CaseResult]:
    """Run the case and print it; returns its result (targets and checks attached). The suite
    runner's entry."""
    rounds = rounds or (3 if quick else 9)
    started = time.perf_counter()
    chat_all = load("chat.completions")
    bodies, excluded = sdk_excluded(chat_all)
    items = sum(b.chunks for b in bodies)
    print(
        f"streamops bench_gateway: {rounds} timed rounds (+1 warmup), contenders interleaved, "
        "process CPU time, medians; GC off during timed passes."
    )
    print(
        f"Input: {len(bodies)} of {len(chat_all)} recorded chat.completions bodies ({items:,} chunks, "
        f"{sum(len(b.data) for b in bodies):,} bytes), each pre-split into 1-4 KiB reads (seeded)."
    )
    for why in excluded:
        print(f"  excluded: {why}")
    print("Unit: one input chunk = one SSE event with data ([DONE] excluded).\n")

    case = Case(
        f"gateway: OpenAI chat SSE bytes -> events -> chunk SSE bytes ({len(bodies)} bodies)",
        items=items,
        baseline="openai SDK",
        unit="chunk",
    )

    def run_gateway() -> Any:
        return [gateway(b) for b in bodies]

    def run_parser() -> Any:
        out = []
        for b in bodies:
            p = SSEParser("openai-chat")
            evs: list[BaseEvent] = []
            for r in b.reads:
                evs += p.feed(r)
            evs += p.close()
            out.append(len(evs))
        return out

    router = Router(bodies)
    client = openai_client(router)

    async def run_sdk() -> Any:
        router.empty = False
        out = []
        for i in range(len(bodies)):
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-body": str(i)}
            )
            out.append(fold_chat_chunks([ch async for ch in stream]))
        return out

    import openai

    case.add("streamops gateway", run_gateway, note="SSEParser.feed(reads) -> ChunkEncoder.encode_frames -> bytes")
    case.add("streamops SSEParser", run_parser, note="the ingest half alone")
    case.add("openai SDK", run_sdk, note=f"openai {openai.__version__} parse only, AsyncOpenAI over MockTransport")
    res = case.run(rounds=rounds, progress=progress)
    print(res.table())

    # Check (untimed): the gateway's output, read by the SDK, says what the original said.
    outputs = res["streamops gateway"].result
    out_chunks = sum(sum(f.count(b"data: ") for f in frames) - 1 for frames in outputs)  # [DONE] excluded
    reread_router = Router([Body(b.file, b"".join(o), [b"".join(o)], 0) for b, o in zip(bodies, outputs, strict=True)])
    reread_client = openai_client(reread_router)

    async def reread() -> list[Any]:
        got = []
        for i in range(len(bodies)):
            stream = await reread_client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-body": str(i)}
            )
            got.append(fold_chat_chunks([ch async for ch in stream]))
        return got

    ok = asyncio.run(reread()) == res["openai SDK"].result
    print(
        f"  check: {verdict(ok)}  the SDK reads the same text and tool arguments from the gateway's "
        "output as from the original, for every body"
    )

    gw = res["streamops gateway"].ns_per_item
    sdk = res["openai SDK"].ns_per_item
    ratio = statistics.median(s / g for s, g in zip(sdk, gw, strict=True))
    gw_med = statistics.median(gw)
    in_rate = 1e9 / gw_med
    out_rate = in_rate * out_chunks / items
    print()
    print(f"  streamops gateway:   {gw_med / 1000:8.2f} us/input chunk  = {in_rate:12,.0f} input chunks/s")
    print(f"                       {out_chunks:,} chunks out for {items:,} in = {out_rate:12,.0f} output chunks/s")
    print(f"  streamops SSEParser: {statistics.median(res['streamops SSEParser'].ns_per_item) / 1000:8.2f} us/chunk")
    sdk_med = statistics.median(sdk)
    print(f"  openai SDK (parse):  {sdk_med / 1000:8.2f} us/chunk = {1e9 / sdk_med:12,.0f} chunks/s")
    target = Target("gateway: openai SDK parse alone / streamops parse + re-encode (times faster)", ratio, TARGET, ">=")
    print(f"  target: {target.line()}")
    res.targets.append(target)
    res.info["checks"] = {
        "reread_equal": ok,
        "excluded": excluded,
        "input_chunks_per_s": in_rate,
        "output_chunks_per_s": out_rate,
        "output_chunks": out_chunks,
        "sdk_vs_gateway": ratio,
    }
    print(f"\nTotal wall time {time.perf_counter() - started:.1f} s")
    return [res]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="3 timed rounds (under 30 s)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 9, quick 3)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--progress", action="store_true", help="report each round on stderr")
    args = p.parse_args(argv)
    results = run(args.quick, rounds=args.rounds, progress=args.progress)
    if args.json:
        write_json(args.json, results, {"checks": results[0].info.get("checks", {})})
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
