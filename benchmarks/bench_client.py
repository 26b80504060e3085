"""``streamops bench``'s own client cost: CPU per chunk against an ``openai``-SDK client doing
the same requests (llmperf style: ``AsyncOpenAI().chat.completions.create(stream=True)``, a
timestamp per chunk), and the streams one process holds at once.

A fast OpenAI-compatible server runs in a subprocess on 127.0.0.1 (so its CPU is not counted):
every response is a role chunk, ``chunks`` content chunks ``gap`` seconds apart, a usage chunk
and ``[DONE]``. Each contender runs the same requests at the same concurrency; its process
CPU time (``time.process_time``) over the round, divided by the content chunks it received,
is its CPU per chunk. Rounds interleave the contenders.

Run::

    python benchmarks/bench_client.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import CaseResult, ContenderResult, Target  # noqa: E402


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": "fast",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _serve(port_file: str, chunks: int, gap: float) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    words = [_chunk({"content": f" tok{i}"}) for i in range(chunks)]
    tail = (
        _chunk({}, "stop")
        + b'data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":1,"model":"fast","choices":[],'
        + b'"usage":{"prompt_tokens":8,"completion_tokens":' + str(chunks).encode() + b',"total_tokens":0}}\n\n'
        + b"data: [DONE]\n\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head_in = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head_in.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(head + _chunk({"role": "assistant", "content": ""}))
            for w in words:
                await asyncio.sleep(gap)
                writer.write(w)
                await writer.drain()
            writer.write(tail)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    _write(port_file, str(port))
    async with server:
        await server.serve_forever()


def _write(path: str, text: str) -> None:
    Path(path).write_text(text)


class Server:
    """The fast server in a subprocess; ``url`` is its ``/v1`` base."""

    def __init__(self, chunks: int, gap: float, tmp: Path) -> None:
        port_file = tmp / f"port-{os.getpid()}-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port_file), "--chunks", str(chunks), "--gap", str(gap)]
        )
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port_file.read_text()}/v1"
        port_file.unlink()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def _streamops(url: str, requests: int, concurrency: int) -> tuple[int, int, float]:
    """(completed, chunks, cpu seconds) of ``streamops bench``'s client."""
    from streamops.bench import BenchConfig, LoadStep, RequestParams, run_bench
    from streamops.bench import Target as BTarget

    cfg = BenchConfig(
        targets=[BTarget(kind="http", url=url, model="fast", api_key="x")],
        prompts=["hello"],
        steps=[LoadStep(concurrency=concurrency, requests=requests)],
        params=RequestParams(max_tokens=64, timeout=60),
    )
    cpu = time.process_time()
    result = await run_bench(cfg)
    cpu = time.process_time() - cpu
    [s] = result.summaries
    return s.completed, sum(r.chunks for r in result.requests if r.ok), cpu


async def _openai_sdk(url: str, requests: int, concurrency: int) -> tuple[int, int, float]:
    """(completed, chunks, cpu seconds) of an llmperf-style client on the ``openai`` SDK."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=60)
    sem = asyncio.Semaphore(concurrency)
    done = 0
    chunks = 0

    async def one() -> None:
        nonlocal done, chunks
        async with sem:
            t0 = time.perf_counter()
            ttft = None
            times: list[float] = []
            stream = await client.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "hello"}], stream=True,
                max_tokens=64, stream_options={"include_usage": True},
            )
            async for chunk in stream:
                now = time.perf_counter()
                if chunk.choices and chunk.choices[0].delta.content:
                    if ttft is None:
                        ttft = now - t0
                    times.append(now)
            chunks += len(times)
            done += 1

    cpu = time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    cpu = time.process_time() - cpu
    await client.close()
    return done, chunks, cpu


def run(quick: bool = False, *, rounds: int | None = None, requests: int | None = None,
        concurrency: int = 16, chunks: int | None = None, streams: int | None = None) -> list[CaseResult]:
    """The case: CPU per chunk of both clients (``rounds`` interleaved rounds of ``requests``
    requests at ``concurrency``), then ``streams`` streams at once through streamops' client."""
    import tempfile

    rounds = rounds or (2 if quick else 5)
    requests = requests or (32 if quick else 128)
    chunks = chunks or (50 if quick else 200)
    streams = streams or (500 if quick else 1000)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(chunks, 0.002, Path(tmp))
        try:
            contenders = {"openai SDK client": _openai_sdk, "streamops bench": _streamops}
            per: dict[str, list[float]] = {k: [] for k in contenders}
            for _ in range(rounds + 1):  # the first round warms up
                for name, fn in contenders.items():
                    done, got, cpu = asyncio.run(fn(server.url, requests, concurrency))
                    assert done == requests and got == requests * chunks, (name, done, got)
                    per[name].append(cpu / got * 1e9)
        finally:
            server.close()
        slow = Server(20, 0.03, Path(tmp))  # 0.6 s streams: all of them are open at once
        try:
            t = time.perf_counter()
            done, got, _ = asyncio.run(_streamops(slow.url, streams, streams))
            wall = time.perf_counter() - t
        finally:
            slow.close()
    case = CaseResult(
        name=f"client CPU per chunk ({requests} requests x {chunks} chunks, concurrency {concurrency})",
        items=requests * chunks, rounds=rounds, baseline="openai SDK client", unit="chunk",
        contenders=[ContenderResult(name=k, note="", ns_per_item=v[1:]) for k, v in per.items()],
    )
    case.info["concurrent_streams"] = {"streams": streams, "completed": done, "chunks": got, "wall_s": wall}
    ratio = case.ratio("streamops bench")
    case.targets = [
        Target("streamops bench client CPU per chunk / openai SDK client's", ratio, 0.2, "<="),
        Target("concurrent streams completed from one process", float(done), 500, ">=", unit=""),
    ]
    print(
        f"streamops bench_client: {rounds} rounds; CPU per chunk "
        + ", ".join(f"{k} {sorted(v[1:])[len(v[1:]) // 2] / 1e3:.1f} us" for k, v in per.items())
        + f"; ratio {ratio:.3f}; {done}/{streams} concurrent streams completed in {wall:.1f} s"
    )
    return [case]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--serve")
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.002)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.chunks, args.gap))
        return
    for case in run(args.quick):
        for t in case.targets:
            print(t.line())


if __name__ == "__main__":
    main()
