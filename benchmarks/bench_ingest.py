"""Ingest: raw SSE bytes of recorded chat streams -> events, against the official SDKs and LiteLLM.

Run::

    python benchmarks/bench_ingest.py            # 9 timed rounds per case (about a minute)
    python benchmarks/bench_ingest.py --quick    # 3 timed rounds (under 30 s)
    python benchmarks/bench_ingest.py --json out.json

Input: every ``chat.completions`` body of ``fixtures/recorded/INDEX.tsv`` that the ``openai``
SDK can parse (the two whose error chunk makes the SDK raise ``openai.APIError`` are excluded,
and named in the output), each pre-split into network-sized reads of 1-4 KiB (seeded, the same
split for every contender). One pass = every body once. The unit is one *chunk*: one SSE event
with data, ``[DONE]`` excluded (= one ``ChatCompletionChunk`` the SDK yields).

Contenders (interleaved round by round, process CPU time, medians; see ``_harness.py``):

- ``streamops SSEParser``: sans-IO ``SSEParser("openai-chat")``, ``feed(read)`` per read,
  then ``close()``; the events are kept in a list.
- ``streamops parse_sse``: ``await parse_sse(async read iterator, api="openai-chat").collect()``.
- ``openai SDK``: ``openai.AsyncOpenAI`` over ``httpx.MockTransport`` (client built once,
  outside the timing), ``async for chunk in await client.chat.completions.create(...,
  stream=True)``; the handler streams the same reads with ``content-type: text/event-stream``.
- ``openai SDK empty body``: the same requests answered with an empty body: the SDK's
  per-request cost. ``SDK net`` (SDK minus this, paired by round) is the SDK's parse alone.
- ``litellm``: ``litellm.acompletion(model="openai/gpt-4o", stream=True, client=<the same
  mocked AsyncOpenAI>)``: LiteLLM's ``CustomStreamWrapper`` over the SDK stream (its logging
  tasks are awaited inside the pass, so they are billed to LiteLLM).

A second case does the Anthropic Messages bodies: ``SSEParser("anthropic")`` against
``anthropic.AsyncAnthropic(...).messages.create(stream=True)`` (over ``httpx2.MockTransport``:
the installed ``anthropic`` uses ``httpx2``) and ``litellm.acompletion(model="anthropic/...",
stream=True, client=<litellm AsyncHTTPHandler over httpx.MockTransport>)``: LiteLLM's own
Anthropic path (``aiter_sse_lines(response.aiter_text())`` -> ``ModelResponseIterator
.chunk_parser`` -> ``CustomStreamWrapper``), not the ``anthropic`` SDK. There the unit is every
SSE event with data (``ping`` included: the SDK decodes it too, then drops it).

A third case does the OpenAI Responses bodies: ``SSEParser("openai-responses")`` against the
``openai`` SDK's ``responses.create(stream=True)`` and ``litellm.aresponses(model="openai/gpt-4o",
stream=True, client=<litellm AsyncHTTPHandler over httpx.MockTransport>)``: LiteLLM's
``ResponsesAPIStreamingIterator`` (the SDK's ``SSEDecoder`` over ``response.aiter_bytes()``, then
LiteLLM's own event parsing and logging). Unit: every SSE event with data; the body whose error
event makes the SDK raise is excluded and named.

Every contender returns, per body, choice 0's text and tool-call arguments (chat), the text and
the arguments of ``tool_use`` blocks (Anthropic; server tool inputs such as code execution's are
not tool calls), or the output text and function-call arguments (Responses); they are checked
equal. Target (printed as PASS/FAIL, never asserted): the sans-IO parser at least 10x faster per
chunk than the OpenAI SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import statistics
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Case, CaseResult, Target, verdict, write_json
from streamops.adapters import SSEParser, parse_sse

from streamops.events import BaseEvent, TextDelta, ToolCallDelta
from streamops.sse import SSEDecoder

# LiteLLM fetches its model cost map over the network at import unless told not to; set before
# any import of it (the suite runner preloads it after importing this module).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

TARGET = 10.0
"""The sans-IO parser must be at least this many times faster per chunk than the OpenAI SDK."""

RECORDED = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "recorded"
MESSAGES = [{"role": "user", "content": "hi"}]

# ------------------------------------------------------------------------------------ input


class Body:
    """One recorded body, pre-split into reads."""

    def __init__(self, file: str, data: bytes, reads: list[bytes], chunks: int) -> None:
        self.file = file
        self.data = data
        self.reads = reads
        self.chunks = chunks


def split_reads(data: bytes, rng: random.Random, lo: int = 1024, hi: int = 4096) -> list[bytes]:
    out = []
    i = 0
    while i < len(data):
        n = rng.randint(lo, hi)
        out.append(data[i : i + n])
        i += n
    return out


def count_chunks(data: bytes) -> int:
    d = SSEDecoder()
    return sum(1 for e in d.feed(data) + d.flush() if e.data and e.data.strip() != "[DONE]")


def load(api: str, seed: int = 20240501) -> list[Body]:
    rows = csv.DictReader((RECORDED / "INDEX.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t")
    rng = random.Random(seed)
    out = []
    for row in rows:
        if row["api"] != api:
            continue
        data = (RECORDED / row["file"]).read_bytes()
        out.append(Body(row["file"], data, split_reads(data, rng), count_chunks(data)))
    return out


async def areads(reads: list[bytes]) -> AsyncIterator[bytes]:
    for r in reads:
        yield r


# ------------------------------------------------------------------------------------ results


def parse_bodies(bodies: list[Body], parser: Callable[[], SSEParser]) -> list[Any]:
    """Each body's reads through a new sans-IO parser (``feed`` each read, then ``close``),
    folded to what the case compares."""
    out = []
    for b in bodies:
        p = parser()
        evs: list[BaseEvent] = []
        for r in b.reads:
            evs += p.feed(r)
        evs += p.close()
        out.append(fold_events(evs))
    return out


def fold_events(events: list[BaseEvent]) -> tuple[str, str]:
    text = []
    args = []
    for e in events:
        if type(e) is TextDelta:
            text.append(e.delta)
        elif type(e) is ToolCallDelta:
            args.append(e.delta)
    return "".join(text), "".join(args)


def fold_chat_chunks(chunks: list[Any]) -> tuple[str, str]:
    text = []
    args = []
    for ch in chunks:
        for c in ch.choices or ():
            if c.index != 0 or c.delta is None:
                continue
            if c.delta.content:
                text.append(c.delta.content)
            for tc in c.delta.tool_calls or ():
                if tc.function is not None and tc.function.arguments:
                    args.append(tc.function.arguments)
    return "".join(text), "".join(args)


# ------------------------------------------------------------------------------------ mocks


class Router:
    """The body to answer with, by request: header ``x-body`` is its position in the list."""

    def __init__(self, bodies: list[Body]) -> None:
        self.bodies = bodies
        self.empty = False

    def response(self, httpx_mod: Any, request: Any) -> Any:
        if self.empty:
            return httpx_mod.Response(200, headers={"content-type": "text/event-stream"}, content=b"")
        body = self.bodies[int(request.headers["x-body"])]
        return httpx_mod.Response(200, headers={"content-type": "text/event-stream"}, content=areads(body.reads))


def openai_client(router: Router) -> Any:
    import httpx
    import openai

    transport = httpx.MockTransport(lambda req: router.response(httpx, req))
    return openai.AsyncOpenAI(
        api_key="x", base_url="http://test/v1", http_client=httpx.AsyncClient(transport=transport), max_retries=0
    )


def anthropic_client(router: Router) -> Any:
    import anthropic

    try:
        import httpx2 as hx  # the installed anthropic SDK rejects plain httpx clients
    except ImportError:  # pragma: no cover - older SDKs take httpx
        import httpx as hx
    transport = hx.MockTransport(lambda req: router.response(hx, req))
    return anthropic.AsyncAnthropic(
        api_key="x", base_url="http://test", http_client=hx.AsyncClient(transport=transport), max_retries=0
    )


def import_litellm(notes: list[str]) -> Any:
    """``litellm`` (imported once, outside the timing), or ``None`` when it is not installed (or
    left out with ``--no-litellm``), with a note saying so."""
    try:
        t0 = time.perf_counter()
        import litellm
    except ImportError:
        notes.append("litellm not installed: skipped (pip install litellm)")
        return None
    took = time.perf_counter() - t0
    if took > 0.05:
        notes.append(f"import litellm took {took:.1f} s (not timed)")
    # LiteLLM's logging dumps its Responses events through pydantic, which warns on the usage
    # field it fills in itself; the warning is still raised (and billed), only not shown.
    warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)
    return litellm


def litellm_http_client(router: Router) -> Any:
    """LiteLLM's own ``AsyncHTTPHandler`` (its httpx client) over an ``httpx.MockTransport``
    answering with the router's reads: what ``acompletion`` uses for Anthropic and
    ``aresponses`` for OpenAI, instead of the vendors' SDKs."""
    import httpx
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    return AsyncHTTPHandler(transport=httpx.MockTransport(lambda req: router.response(httpx, req)))


def litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


async def drain_other_tasks() -> None:
    """Wait for the tasks a contender left on the loop (LiteLLM's logging), inside its pass."""
    me = asyncio.current_task()
    for _ in range(100):
        rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not rest:
            return
        await asyncio.wait(rest, timeout=1.0)


# ------------------------------------------------------------------------------------ cases


def chat_case(bodies: list[Body], notes: list[str]) -> Case:
    items = sum(b.chunks for b in bodies)
    case = Case(
        f"ingest: OpenAI chat SSE bytes -> events ({len(bodies)} recorded bodies, "
        f"{sum(len(b.data) for b in bodies) / 1024:.0f} KiB)",
        items=items,
        baseline="openai SDK",
        unit="chunk",
    )

    def run_parser() -> Any:
        return parse_bodies(bodies, lambda: SSEParser("openai-chat"))

    async def run_parse_sse() -> Any:
        out = []
        for b in bodies:
            evs = await parse_sse(areads(b.reads), api="openai-chat").collect()
            out.append(fold_events(evs))
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
            chunks = [ch async for ch in stream]
            out.append(fold_chat_chunks(chunks))
        return out

    async def run_sdk_empty() -> Any:
        router.empty = True
        n = 0
        for i in range(len(bodies)):
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-body": str(i)}
            )
            n += len([ch async for ch in stream])
        return n

    import openai

    case.add("streamops SSEParser", run_parser, note="sans-IO feed(1-4 KiB reads) + close()")
    case.add("streamops parse_sse", run_parse_sse, note="await parse_sse(async reads).collect()")
    case.add("openai SDK", run_sdk, note=f"openai {openai.__version__}, AsyncOpenAI over httpx.MockTransport")
    case.add("openai SDK empty body", run_sdk_empty, note="same requests, empty body: per-request cost")

    litellm = import_litellm(notes)
    if litellm is not None:

        async def run_litellm() -> Any:
            router.empty = False
            out = []
            for i in range(len(bodies)):
                stream = await litellm.acompletion(
                    model="openai/gpt-4o",
                    api_base="http://test/v1",
                    api_key="x",
                    messages=MESSAGES,
                    stream=True,
                    client=client,
                    extra_headers={"x-body": str(i)},
                )
                chunks = [ch async for ch in stream]
                out.append(fold_chat_chunks(chunks))
            await drain_other_tasks()
            return out

        case.add("litellm", run_litellm, note=f"litellm {litellm_version()} acompletion(stream=True), same client")
    return case


def anthropic_case(bodies: list[Body], notes: list[str]) -> Case:
    import anthropic

    items = sum(b.chunks for b in bodies)
    case = Case(
        f"ingest: Anthropic Messages SSE bytes -> events ({len(bodies)} recorded bodies)",
        items=items,
        baseline="anthropic SDK",
        unit="chunk",
    )

    def run_parser() -> Any:
        # on_malformed="event": one recorded body is truncated
        return parse_bodies(bodies, lambda: SSEParser("anthropic", on_malformed="event"))

    router = Router(bodies)
    client = anthropic_client(router)

    async def run_sdk() -> Any:
        out = []
        for i in range(len(bodies)):
            stream = await client.messages.create(
                model="claude", max_tokens=16, messages=MESSAGES, stream=True, extra_headers={"x-body": str(i)}
            )
            text, args = [], []
            tool_blocks = set()  # indexes of tool_use blocks (not server_tool_use)
            async for ev in stream:
                if ev.type == "content_block_delta":
                    if ev.delta.type == "text_delta":
                        text.append(ev.delta.text)
                    elif ev.delta.type == "input_json_delta" and ev.index in tool_blocks:
                        args.append(ev.delta.partial_json)
                elif ev.type == "content_block_start" and ev.content_block.type == "tool_use":
                    tool_blocks.add(ev.index)
            out.append(("".join(text), "".join(args)))
        return out

    case.add("streamops SSEParser", run_parser, note="sans-IO feed(1-4 KiB reads) + close()")
    case.add("anthropic SDK", run_sdk, note=f"anthropic {anthropic.__version__}, over httpx2.MockTransport")

    litellm = import_litellm(notes)
    if litellm is not None:
        lrouter = Router(bodies)
        lclient = litellm_http_client(lrouter)

        async def run_litellm() -> Any:
            out = []
            for i in range(len(bodies)):
                stream = await litellm.acompletion(
                    # a model in LiteLLM's cost map: it looks the request's model up for max_tokens
                    model="anthropic/claude-sonnet-4-5-20250929",
                    api_base="http://test",
                    api_key="x",
                    max_tokens=16,
                    messages=MESSAGES,
                    stream=True,
                    client=lclient,
                    extra_headers={"x-body": str(i)},
                )
                chunks = [ch async for ch in stream]
                out.append(fold_chat_chunks(chunks))
            await drain_other_tasks()
            return out

        case.add(
            "litellm",
            run_litellm,
            note=f"litellm {litellm_version()} acompletion(anthropic/, stream=True): its own SSE lines + "
            "ModelResponseIterator, AsyncHTTPHandler over httpx.MockTransport",
        )
    return case


def fold_responses_events(events: list[Any]) -> tuple[str, str]:
    text = [e.delta for e in events if e.type == "response.output_text.delta"]
    args = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    return "".join(text), "".join(args)


def responses_case(bodies: list[Body], notes: list[str]) -> Case:
    """The Responses API bodies: ``SSEParser("openai-responses")`` against the ``openai`` SDK's
    ``client.responses.create(stream=True)`` and ``litellm.aresponses(stream=True)``; the unit
    is one SSE event with data."""
    import openai

    items = sum(b.chunks for b in bodies)
    case = Case(
        f"ingest: OpenAI Responses SSE bytes -> events ({len(bodies)} recorded bodies)",
        items=items,
        baseline="openai SDK",
        unit="chunk",
    )

    def run_parser() -> Any:
        return parse_bodies(bodies, lambda: SSEParser("openai-responses"))

    router = Router(bodies)
    client = openai_client(router)

    async def run_sdk() -> Any:
        out = []
        for i in range(len(bodies)):
            stream = await client.responses.create(
                model="gpt-4o", input="hi", stream=True, extra_headers={"x-body": str(i)}
            )
            out.append(fold_responses_events([ev async for ev in stream]))
        return out

    case.add("streamops SSEParser", run_parser, note="sans-IO feed(1-4 KiB reads) + close()")
    case.add("openai SDK", run_sdk, note=f"openai {openai.__version__} responses.create(stream=True)")

    litellm = import_litellm(notes)
    if litellm is not None:
        lrouter = Router(bodies)
        lclient = litellm_http_client(lrouter)

        async def run_litellm() -> Any:
            out = []
            for i in range(len(bodies)):
                stream = await litellm.aresponses(
                    model="openai/gpt-4o",
                    api_base="http://test/v1",
                    api_key="x",
                    input="hi",
                    stream=True,
                    client=lclient,
                    extra_headers={"x-body": str(i)},
                )
                out.append(fold_responses_events([ev async for ev in stream]))
            await drain_other_tasks()
            return out

        case.add(
            "litellm",
            run_litellm,
            note=f"litellm {litellm_version()} aresponses(stream=True): ResponsesAPIStreamingIterator, "
            "AsyncHTTPHandler over httpx.MockTransport",
        )
    return case


def responses_parsed(bodies: list[Body]) -> tuple[list[Body], list[str]]:
    """The Responses bodies the OpenAI SDK parses, and why the others are left out."""
    client = openai_client(Router(bodies))
    keep, why = [], []

    async def probe() -> None:
        for i, b in enumerate(bodies):
            try:
                stream = await client.responses.create(
                    model="gpt-4o", input="hi", stream=True, extra_headers={"x-body": str(i)}
                )
                n = len([ev async for ev in stream])
            except Exception as exc:  # the SDK raises openai.APIError on an error event
                why.append(f"{b.file}: the SDK raises {type(exc).__name__} ({str(exc)[:60]!r})")
                continue
            if n != b.chunks:
                why.append(f"{b.file}: the SDK yields {n} events, the body holds {b.chunks}")
                continue
            keep.append(b)

    asyncio.run(probe())
    return keep, why


# ------------------------------------------------------------------------------------ main


def sdk_excluded(bodies: list[Body]) -> tuple[list[Body], list[str]]:
    """The bodies the OpenAI SDK parses, and why the others are left out."""
    router = Router(bodies)
    client = openai_client(router)
    keep, why = [], []

    async def probe() -> None:
        for i, b in enumerate(bodies):
            try:
                stream = await client.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-body": str(i)}
                )
                n = len([ch async for ch in stream])
            except Exception as exc:  # the SDK raises openai.APIError on an error chunk
                why.append(f"{b.file}: the SDK raises {type(exc).__name__} ({str(exc)[:60]!r})")
                continue
            if n != b.chunks:
                why.append(f"{b.file}: the SDK yields {n} chunks, the body holds {b.chunks}")
                continue
            keep.append(b)

    asyncio.run(probe())
    return keep, why


def paired(a: list[float], b: list[float], op: Any) -> float:
    return statistics.median(op(x, y) for x, y in zip(a, b, strict=True))


def run(
    quick: bool = False,
    *,
    rounds: int | None = None,
    litellm: bool = True,
    apis: tuple[str, ...] = ("chat", "anthropic", "responses"),
    progress: bool = False,
) -> list[CaseResult]:
    """Run the cases named in ``apis`` and print them; returns their results (targets and checks
    attached). The suite runner's entry."""
    rounds = rounds or (3 if quick else 9)
    started = time.perf_counter()
    if not litellm:
        sys.modules["litellm"] = None  # type: ignore[assignment]

    results: list[CaseResult] = []
    print(
        f"streamops bench_ingest: {rounds} timed rounds (+1 warmup) per case, contenders interleaved, "
        "process CPU time, medians; GC off during timed passes."
    )
    if "chat" in apis:
        chat_all = load("chat.completions")
        chat, excluded = sdk_excluded(chat_all)
        print(
            f"Input: {len(chat)} of {len(chat_all)} recorded chat.completions bodies "
            f"({sum(b.chunks for b in chat):,} chunks, {sum(len(b.data) for b in chat):,} bytes), "
            "each pre-split into 1-4 KiB reads (seeded)."
        )
        for why in excluded:
            print(f"  excluded: {why}")
        print("Unit: one chunk = one SSE event with data ([DONE] excluded) = one ChatCompletionChunk.\n")

        notes: list[str] = []
        case = chat_case(chat, notes)
        res = case.run(rounds=rounds, progress=progress)
        results.append(res)
        print(res.table())
        for note in notes:
            print(f"  note: {note}")

        names = [c.name for c in res.contenders]
        ok_eq, msg = CaseResult(
            res.name, res.items, res.rounds, None, [c for c in res.contenders if c.name != "openai SDK empty body"]
        ).check_equal()
        print(f"  check: {verdict(ok_eq)}  {msg if not ok_eq else 'text and tool arguments equal for every body'}")
        sdk = res["openai SDK"].ns_per_item
        empty = res["openai SDK empty body"].ns_per_item
        sans = res["streamops SSEParser"].ns_per_item
        asy = res["streamops parse_sse"].ns_per_item
        r_sans = paired(sdk, sans, lambda x, y: x / y)
        r_async = paired(sdk, asy, lambda x, y: x / y)
        net = paired(sdk, empty, lambda x, y: x - y)
        r_net = (
            paired(sdk, sans, lambda x, y: x / y)
            if net <= 0
            else statistics.median((x - e) / y for x, e, y in zip(sdk, empty, sans, strict=True))
        )
        print()
        print(f"  openai SDK:              {statistics.median(sdk) / 1000:8.1f} us/chunk (request included)")
        print(f"  openai SDK net:          {net / 1000:8.1f} us/chunk (minus the empty-body request)")
        print(f"  streamops SSEParser:     {statistics.median(sans) / 1000:8.2f} us/chunk")
        print(f"  streamops parse_sse:     {statistics.median(asy) / 1000:8.2f} us/chunk")
        checks: dict[str, Any] = {"excluded": excluded}
        if "litellm" in names:
            lit = res["litellm"].ns_per_item
            print(f"  litellm:                 {statistics.median(lit) / 1000:8.1f} us/chunk")
            r_lit = paired(lit, sans, lambda x, y: x / y)
            print(f"  info:   litellm / streamops SSEParser = {r_lit:.1f}x")
            checks["litellm_vs_sansio"] = r_lit
        pass_sans = r_sans >= TARGET
        print(
            f"  target: {verdict(pass_sans)}  openai SDK / streamops SSEParser = {r_sans:.1f}x faster "
            f"(target >= {TARGET:.0f}x)"
        )
        print(f"  info:   openai SDK net / streamops SSEParser = {r_net:.1f}x (request overhead removed)")
        print(
            f"  info:   openai SDK / streamops parse_sse (async) = {r_async:.1f}x "
            f"(target >= {TARGET:.0f}x: {verdict(r_async >= TARGET)})"
        )
        checks["chat"] = {
            "results_equal": ok_eq,
            "sdk_vs_sansio": r_sans,
            "sdk_vs_parse_sse": r_async,
            "sdk_net_vs_sansio": r_net,
            "sdk_net_ns_per_chunk": net,
            "target": TARGET,
            "pass": pass_sans,
        }
        res.targets.append(Target("ingest: openai SDK / streamops SSEParser (times faster)", r_sans, TARGET, ">="))
        res.info["checks"] = checks
        print()

    if "anthropic" in apis:
        anotes: list[str] = []
        try:
            acase = anthropic_case(load("messages"), anotes)
        except ImportError:
            print("anthropic not installed: Anthropic case skipped")
        else:
            ares = acase.run(rounds=rounds, progress=progress)
            results.append(ares)
            print(ares.table())
            for note in anotes:
                print(f"  note: {note}")
            ok_a, msg_a = ares.check_equal()
            what_a = "text and tool_use arguments equal for every body"
            print(f"  check: {verdict(ok_a)}  {msg_a if not ok_a else what_a}")
            r_a = ares.ratio("anthropic SDK", "streamops SSEParser")
            print(f"  info:   anthropic SDK / streamops SSEParser = {r_a:.1f}x")
            achecks: dict[str, Any] = {"results_equal": ok_a, "sdk_vs_sansio": r_a}
            if any(c.name == "litellm" for c in ares.contenders):
                r_al = ares.ratio("litellm", "streamops SSEParser")
                print(f"  info:   litellm / streamops SSEParser = {r_al:.1f}x")
                achecks["litellm_vs_sansio"] = r_al
            ares.info["checks"] = {"anthropic": achecks}
            print()

    if "responses" in apis:
        resp_all = load("responses")
        resp, excluded_r = responses_parsed(resp_all)
        for why in excluded_r:
            print(f"  excluded: {why}")
        rnotes: list[str] = []
        rres = responses_case(resp, rnotes).run(rounds=rounds, progress=progress)
        results.append(rres)
        print(rres.table())
        for note in rnotes:
            print(f"  note: {note}")
        ok_r, msg_r = rres.check_equal()
        print(f"  check: {verdict(ok_r)}  {msg_r if not ok_r else 'text and tool arguments equal for every body'}")
        r_r = rres.ratio("openai SDK", "streamops SSEParser")
        print(f"  info:   openai SDK / streamops SSEParser = {r_r:.1f}x")
        rchecks: dict[str, Any] = {"results_equal": ok_r, "sdk_vs_sansio": r_r, "excluded": excluded_r}
        if any(c.name == "litellm" for c in rres.contenders):
            r_rl = rres.ratio("litellm", "streamops SSEParser")
            print(f"  info:   litellm / streamops SSEParser = {r_rl:.1f}x")
            rchecks["litellm_vs_sansio"] = r_rl
        rres.info["checks"] = {"responses": rchecks}

    print(f"\nTotal wall time {time.perf_counter() - started:.1f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="3 timed rounds (under 30 s)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default 9, quick 3)")
    p.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--progress", action="store_true", help="report each round on stderr")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 9)
    results = run(args.quick, rounds=rounds, litellm=not args.no_litellm, progress=args.progress)
    if args.json:
        checks: dict[str, Any] = {}
        for r in results:
            checks.update(r.info.get("checks", {}))
        write_json(args.json, results, {"checks": checks, "rounds": rounds})
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
