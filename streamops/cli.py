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
from typing import Annotated, Any

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


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``streamops`` console script."""
    return app(args=argv)
