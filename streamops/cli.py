"""The ``streamops`` command line (typer).

``streamops replay PATH`` plays a recorded SSE body through a streamops pipeline and renders
it as it would have appeared live; ``--summary`` prints the assembled message as one JSON
object instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncGenerator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="streamops",
    help="LLM agent runs as composable, typed, async event streams.",
    no_args_is_help=True,
    add_completion=False,
)


class ApiChoice(StrEnum):
    """``--api`` values."""

    auto = "auto"
    openai_chat = "openai-chat"
    openai_responses = "openai-responses"
    anthropic = "anthropic"
    gemini = "gemini"


@app.callback()
def _root() -> None:
    """LLM agent runs as composable, typed, async event streams."""


async def _chunks(body: bytes, size: int) -> AsyncGenerator[bytes, None]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _fail(message: str) -> None:
    typer.echo(f"streamops: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def replay(
    path: Annotated[Path, typer.Argument(help="A recorded SSE response body (.sse).")],
    api: Annotated[ApiChoice, typer.Option(help="The wire API; auto detects it from the body.")] = ApiChoice.auto,
    summary: Annotated[
        bool, typer.Option("--summary", help="Print the assembled message as one JSON object.")
    ] = False,
    delay: Annotated[
        float | None,
        typer.Option(help="Seconds between events when rendering (default 0.02 on a terminal, else 0)."),
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="Bytes per simulated network read.")] = 256,
    events: Annotated[bool, typer.Option("--events", help="Print the events as NDJSON instead.")] = False,
) -> None:
    """Replay a recorded provider stream as it would appear live.

    Exit status 0 when the file was read, even if the stream carried a provider error (it is
    shown, and reported in the summary's "error"); 2 with a one-line message when the file
    cannot be read or holds no event stream of a known API.
    """
    import anyio

    from streamops.adapters import parse_sse
    from streamops.errors import StreamFormatError
    from streamops.events import to_json
    from streamops.operators import Accumulator

    try:
        body = path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
        return
    if chunk_size < 1:
        _fail("--chunk-size must be at least 1")
    pause = delay if delay is not None else (0.02 if sys.stdout.isatty() and not summary else 0.0)
    acc = Accumulator()

    async def main() -> None:
        stream = parse_sse(_chunks(body, chunk_size), api=api.value, on_malformed="event")
        if summary:
            async with stream.iterate() as it:
                async for ev in it:
                    acc.add(ev)
            return
        if events:
            out = sys.stdout
            async with stream.iterate() as it:
                async for ev in it:
                    acc.add(ev)
                    out.write(to_json(ev).decode() + "\n")
            return
        from streamops.render import TerminalRenderer

        renderer = TerminalRenderer()
        async with stream.iterate() as it:
            async for ev in it:
                acc.add(ev)
                renderer.send(ev)
                if pause:
                    await anyio.sleep(pause)
        renderer.close()

    try:
        anyio.run(main)
    except StreamFormatError as exc:
        _fail(f"{path}: {exc}")
    if summary:
        typer.echo(json.dumps(acc.message().summary(), ensure_ascii=False))


class SmoothChoice(StrEnum):
    """``--smooth`` values."""

    word = "word"
    line = "line"
    none = "none"


def _stats_line(name: str, run: Any, count: Any) -> str:
    """One agent's stats: time to first token, tokens per second, tokens estimated/reported."""
    ttft = "-" if run is None or run.time_to_first_token is None else f"{run.time_to_first_token:.2f}s"
    est = "-" if count is None else str(count.estimated_output)
    reported = "-"
    if count is not None and count.provider is not None and count.provider.output_tokens is not None:
        reported = str(count.provider.output_tokens)
    tps = "-"
    if run is not None and run.first_chunk_at is not None and run.last_chunk_at is not None and count is not None:
        span = run.last_chunk_at - run.first_chunk_at
        if span > 0:
            tps = f"{count.output_tokens / span:.1f}"
    label = f"{name}: " if name else ""
    return f"{label}time to first token {ttft}, {tps} tokens/s, tokens {est} estimated / {reported} reported"


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        str | None,
        typer.Option(help="local (default: SmolLM2, offline), a LiteLLM model (openai/gpt-4o), or replay:a.sse,b.sse."),
    ] = None,
    agents: Annotated[int, typer.Option(min=1, max=16, help="Agents to run concurrently, merged live.")] = 1,
    smooth: Annotated[
        SmoothChoice | None,
        typer.Option(help="Re-chunk text: word, line or none (default: word; line with --agents > 1)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print NDJSON events instead of rendering.")] = False,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per answer (local model).")] = 256,
    instructions: Annotated[str | None, typer.Option(help="System message.")] = None,
) -> None:
    """Stream one or several agents' answers live, then print a stats line per agent.

    Ctrl-C cancels the runs cleanly (each ends with a cancelled run end) and still prints the
    stats.
    """
    import signal

    import anyio
    import anyio.to_thread

    from streamops._host import hosted
    from streamops.agent import Agent
    from streamops.events import RunEnd, to_json
    from streamops.operators.combine import merge
    from streamops.operators.metrics import StreamMetrics, metrics
    from streamops.operators.text import smooth as smooth_op
    from streamops.operators.tokens import TokenCounter, count_tokens

    mode = smooth or (SmoothChoice.line if agents > 1 else SmoothChoice.word)
    names = ["agent"] if agents == 1 else [f"agent-{i + 1}" for i in range(agents)]
    settings: dict[str, Any] = {}
    from streamops.adapters.models import LOCAL_NAMES, LocalModel

    if model is None or model.lower() in LOCAL_NAMES:

        models: list[Any] = [LocalModel(seed=i) for i in range(agents)]  # one per agent: they run in parallel
        settings["max_tokens"] = max_tokens
    else:
        models = [model] * agents
    crew = [
        Agent(m, name=n, instructions=instructions, model_settings=settings) for m, n in zip(models, names, strict=True)
    ]
    streams = [a.stream(prompt) for a in crew]
    counter = TokenCounter()
    stats = StreamMetrics()
    ends: list[RunEnd] = []

    async def main() -> None:
        for m in models:  # load local models up front (one at a time), so the agents start together
            load = getattr(m, "load", None)
            if load is not None:
                await anyio.to_thread.run_sync(load)
        source: Any = streams[0] if agents == 1 else merge(dict(zip(names, streams, strict=True)))
        tokenizer = None
        tokenize = getattr(models[0], "tokenize", None)
        if tokenize is not None:  # a local model: count with its own tokenizer (no litellm needed)

            def tokenizer(text: str) -> int:
                return len(tokenize(text))

        pipeline = source | count_tokens(counter, emit_every=None, tokenizer=tokenizer) | metrics(stats)
        if mode is not SmoothChoice.none:
            by: Literal["word", "line"] = "word" if mode is SmoothChoice.word else "line"
            pipeline = pipeline | smooth_op(by, max_delay=0.25)
        async with hosted() as tg:
            done = anyio.Event()

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        for s in streams:
                            s.cancel()
                        break
                await done.wait()

            tg.start_soon(watch_signals)
            try:
                if json_out:
                    out = sys.stdout
                    async with pipeline.iterate() as it:
                        async for ev in it:
                            if isinstance(ev, RunEnd):
                                ends.append(ev)
                            out.write(to_json(ev).decode() + "\n")
                            out.flush()
                else:
                    from streamops.render import TerminalRenderer

                    # live Markdown on a terminal (one panel per agent with --agents N), plain text otherwise
                    renderer = TerminalRenderer(labels=agents > 1, agents=names if agents > 1 else None)
                    try:
                        async with pipeline.iterate() as it:
                            async for ev in it:
                                if isinstance(ev, RunEnd):
                                    ends.append(ev)
                                renderer.send(ev)
                    finally:
                        renderer.close()  # always stop the live display (it hides the cursor)
            finally:
                done.set()
                tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        typer.echo("\ncancelled", err=True)
    stream_out = sys.stderr if json_out else sys.stdout
    for name in names:
        run_stats = next((r for r in stats.runs.values() if r.agent == name), None)
        count = next((c for c in counter.runs.values() if c.agent == name), None)
        print(_stats_line(name if agents > 1 else "", run_stats, count), file=stream_out)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    model: Annotated[
        str | None,
        typer.Option(help="local (default: SmolLM2, offline), a LiteLLM model (openai/gpt-4o), or replay:a.sse,b.sse."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=16, help="Local model instances: local generations at once.")
    ] = 2,
    max_tokens: Annotated[int, typer.Option(min=1, help="max_tokens when a request gives none.")] = 256,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    store: Annotated[
        str | None,
        typer.Option(help="Run store the runs are published into: memory:, sqlite:PATH, redis://HOST:PORT/DB."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(min=1, max=64, help="Server processes (uvicorn workers); more than 1 needs a shared --store."),
    ] = 1,
) -> None:
    """Serve an OpenAI-compatible POST /v1/chat/completions backed by an agent, each run's
    events at GET /runs/{id}/events, and the agent over A2A at POST /a2a with its card at
    GET /.well-known/agent-card.json when a2a-sdk is installed (see streamops.server).

    Exit status 0 on Ctrl-C / SIGTERM; 2 with a one-line message when the model cannot be set
    up (a missing replay file) or the server extra is not installed.
    """
    try:
        import uvicorn

        from streamops.server import create_app
    except ImportError as exc:
        _fail(f"the server needs the server extra (pip install 'streamops[server]'): {exc}")
        return
    try:
        application = create_app(model=model, workers=workers, default_max_tokens=max_tokens, store=store)
    except (OSError, ValueError) as exc:
        _fail(f"cannot set up the model {model!r}: {exc}")
        return
    if processes > 1:
        if store is None or store.startswith("memory"):
            _fail("--processes > 1 needs a store the processes share: --store sqlite:PATH or redis://HOST:PORT/DB")
            return
        import json
        import os

        from streamops.server import SERVE_ENV

        options = {"model": model, "workers": workers, "default_max_tokens": max_tokens, "store": store}
        os.environ[SERVE_ENV] = json.dumps(options)
        uvicorn.run(
            "streamops.server:app_from_env", factory=True, workers=processes, host=host, port=port, log_level=log_level
        )
        return
    uvicorn.run(application, host=host, port=port, log_level=log_level)


def _bench_runner() -> Path | None:
    """``benchmarks/run.py`` of a source checkout: in ``$STREAMOPS_BENCHMARKS`` when set, else
    beside the ``streamops`` package folder (an editable install); ``None`` when absent."""
    import os

    folder = os.environ.get("STREAMOPS_BENCHMARKS")
    base = Path(folder) if folder else Path(__file__).resolve().parent.parent / "benchmarks"
    runner = base / "run.py"
    return runner if runner.is_file() else None


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes, fewer rounds: under a minute.")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write machine-readable results here.")] = None,
    only: Annotated[
        str | None, typer.Option(help="Comma-separated cases (core, pipeline, smooth, ingest, merge, ...).")
    ] = None,
) -> None:
    """Run the benchmark suite: streamops and its peers side by side, in one process.

    The cases live in the ``benchmarks/`` folder of a source checkout (they need the recorded
    fixtures, and the peer libraries of the package's "bench" extra); they are not installed
    with the package. This runs ``benchmarks/run.py`` found beside the package, or in the
    folder named by ``$STREAMOPS_BENCHMARKS``. Exit status: the runner's (0 even when a
    target fails; 2 when the runner cannot be found).
    """
    import subprocess

    runner = _bench_runner()
    if runner is None:
        _fail(
            "the benchmark suite is not installed with the package: streamops bench needs a source "
            "checkout (git clone the repository, pip install -e '.[bench]', run it there), or "
            "STREAMOPS_BENCHMARKS set to its benchmarks/ folder"
        )
        return
    argv = [sys.executable, str(runner)]
    if quick:
        argv.append("--quick")
    if json_file is not None:
        argv += ["--json", str(json_file)]
    if only:
        argv += ["--only", only]
    typer.echo(f"running {runner}", err=True)
    raise typer.Exit(subprocess.call(argv))

def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``streamops`` console script."""
    return app(args=argv)
