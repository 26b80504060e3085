"""The terminal renderer: recorded provider streams rendered live (a ``rich`` console forced to
be a terminal) and plain (a console that is not one)."""

from __future__ import annotations

import io
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from streamops.adapters import parse_sse_bytes

from streamops._host import hosted
from streamops._stream import Stream
from streamops.events import (
    BaseEvent,
    CustomEvent,
    ErrorEvent,
    PartialObject,
    ReasoningDelta,
    ReasoningSignature,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallEnd,
    ToolResult,
    Usage,
)
from streamops.operators.combine import merge
from streamops.sinks.render import TerminalRenderer
from tests.conftest import RECORDED

RECORDINGS = sorted(RECORDED.glob("*/*.sse"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
WORD = re.compile(r"[^\W_]{2,}")
SHOW_CURSOR = "\x1b[?25h"


def events_of(path: Path) -> list[BaseEvent]:
    return parse_sse_bytes(path.read_bytes(), on_malformed="event")


def text_of(events: list[BaseEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, TextDelta))


def terminal(width: int = 100, height: int = 40) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=width, height=height, color_system="standard"), buf


def render_live(events: list[Any], *, width: int = 100, height: int = 40, **options: Any) -> tuple[str, str]:
    """Render on a fake terminal; return (raw output with escape codes, visible text)."""
    console, buf = terminal(width, height)
    renderer = TerminalRenderer(console=console, **options)
    assert renderer.live
    for e in events:
        renderer.send(e)
    renderer.close()
    raw = buf.getvalue()
    return raw, ANSI.sub("", raw)


def words(text: str) -> list[str]:
    return WORD.findall(text)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_live_rendering_shows_the_text_tools_and_ends(path: Path) -> None:
    events = events_of(path)
    raw, shown = render_live(events)
    assert raw.endswith(SHOW_CURSOR), "the live display was not stopped (cursor still hidden)"
    flat = " ".join(shown.split())
    # Every word of the answer is on screen (Markdown drops only its own syntax).
    missing = [w for w in words(text_of(events)) if w not in flat]
    assert not missing, missing[:10]
    for e in events:
        if isinstance(e, ToolCallEnd):
            assert f"tool call · {e.name}" in shown
        elif isinstance(e, ToolResult):
            assert f"tool result · {e.name}" in shown
        elif isinstance(e, ErrorEvent):
            assert f"error {e.error_type}: " in shown
        elif isinstance(e, RunEnd):
            assert f"run end: {e.status}" in shown
    if any(isinstance(e, ToolCallEnd) for e in events):
        assert "╭─" in shown and "╰─" in shown  # tool calls are panels


def test_tool_calls_and_results_are_panels_and_reasoning_is_dimmed() -> None:
    events = events_of(RECORDED / "anthropic" / "messages_thinking_then_tool_use_fantasy.sse")
    events = [
        *events[:-1],
        ToolResult(call_id="c1", name="weather", result={"temperature": 21, "sky": "clear"}),
        ErrorEvent(error_type="RateLimit", message="slow down"),
        events[-1],
    ]
    raw, shown = render_live(events)
    lines = shown.splitlines()
    # the last one: the finished call (the live frame drew it while its arguments streamed)
    call = max(i for i, line in enumerate(lines) if "tool call · weather" in line)
    assert lines[call].lstrip().startswith("╭─")
    assert '"location": "Florence, Italy"' in lines[call + 2]  # pretty JSON arguments
    assert any("tool result · weather" in line for line in lines)
    assert '"temperature": 21' in shown
    reasoning = "".join(e.delta for e in events if isinstance(e, ReasoningDelta))
    first = reasoning.split()[0]
    assert re.search(r"\x1b\[2;3m[^\x1b]*" + re.escape(first), raw), "reasoning is not dim italic"
    assert re.search(r"\x1b\[1;31merror RateLimit: slow down", raw), "the error is not bold red"


def test_markdown_is_rendered_while_streaming_and_at_the_end() -> None:
    md = "# Title\n\nSome **bold** and `code`.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n"
    deltas = [TextDelta(delta=md[i : i + 3], block_id="t") for i in range(0, len(md), 3)]
    _, shown = render_live([RunStart(model="m"), *deltas, RunEnd(finish_reason="stop")], markdown=True)
    assert "**" not in shown and "```" not in shown and "# Title" not in shown
    assert "Title" in shown and "bold" in shown and "print('hi')" in shown
    assert "• one" in shown and "• two" in shown


def interleaved(*streams: tuple[str, list[BaseEvent]]) -> list[BaseEvent]:
    """A merged multi-agent sequence: the events of each labelled stream, round robin."""
    labelled = [[replace(e, agent=name) for e in evs] for name, evs in streams]
    out: list[BaseEvent] = []
    for i in range(max(len(evs) for evs in labelled)):
        out += [evs[i] for evs in labelled if i < len(evs)]
    return out


def test_merged_two_agents_get_labelled_panels_side_by_side() -> None:
    a = events_of(RECORDED / "anthropic" / "messages_thinking_signature_pyd.sse")
    b = events_of(RECORDED / "anthropic" / "messages_multi_tool_use_oll.sse")
    raw, shown = render_live(interleaved(("alpha", a), ("beta", b)), agents=["alpha", "beta"])
    # Both panels on one row, each titled with its agent's name in its own colour.
    titles = [line for line in shown.splitlines() if "alpha" in line and "beta" in line]
    assert titles and titles[-1].startswith("╭─ alpha") and "╭─ beta" in titles[-1]
    assert re.search(r"\x1b\[[0-9;]*36m alpha ", raw) and re.search(r"\x1b\[[0-9;]*35m beta ", raw)
    flat = " ".join(shown.split())
    assert "Here are the basic steps for safely" in flat
    assert "tool call · get_weather" in shown
    assert shown.count("· completed") >= 2  # each panel's subtitle: model and status


def test_merged_agents_stack_on_a_narrow_terminal_and_labels_come_from_the_events() -> None:
    a = events_of(RECORDED / "openai" / "chat_text_usage_openai_python.sse")
    _, shown = render_live(interleaved(("one", a), ("two", a), ("three", a)), width=60)  # no agents=
    tops = [line for line in shown.splitlines() if line.startswith("╭─ ")]
    assert [t.split()[1] for t in tops[-3:]] == ["one", "two", "three"]  # stacked, in order


def test_streaming_frames_show_the_tail_within_the_terminal_height() -> None:
    console, buf = terminal(width=60, height=12)
    renderer = TerminalRenderer(console=console, agents=["a", "b"])
    heights: list[int] = []
    inner = renderer._frame

    def frame() -> Any:
        renderable = inner()
        heights.append(len(console.render_lines(renderable, pad=False)))
        return renderable

    renderer._frame = frame  # type: ignore[method-assign]
    for i in range(200):
        renderer.send(TextDelta(agent="a" if i % 2 else "b", delta=f"line {i}\n\n"))
    assert renderer._live is not None
    renderer._live.refresh()
    during = list(heights)
    renderer.close()
    assert during and max(during) <= 12  # fits the terminal while streaming
    shown = ANSI.sub("", buf.getvalue())
    assert "lines above" in shown
    assert "line 0" in shown and "line 199" in shown  # the last frame shows everything


def test_live_refresh_rate_is_bounded() -> None:
    console, _ = terminal()
    renderer = TerminalRenderer(console=console, labels=False, refresh_per_second=10)
    calls = 0
    inner = renderer._frame

    def frame() -> Any:
        nonlocal calls
        calls += 1
        return inner()

    renderer._frame = frame  # type: ignore[method-assign]
    started = time.monotonic()
    for i in range(600):
        renderer.send(TextDelta(delta=f"w{i} "))
        time.sleep(0.001)
    elapsed = time.monotonic() - started
    renderer.close()
    assert calls <= elapsed * 10 + 4, (calls, elapsed)  # not one frame per delta


def test_plain_mode_emits_exactly_the_streamed_text() -> None:
    events = events_of(RECORDED / "anthropic" / "messages_joke_emoji_oll.sse")
    text = text_of(events)
    assert text
    buf = io.StringIO()
    renderer = TerminalRenderer(buf)  # a file that is not a terminal
    assert not renderer.live
    for e in events:
        if isinstance(e, TextDelta):
            renderer.send(e)
    renderer.close()
    assert buf.getvalue() == text + "\n"


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_plain_mode_keeps_every_text_delta_verbatim(path: Path) -> None:
    events = events_of(path)
    buf = io.StringIO()
    renderer = TerminalRenderer(buf, labels=False)
    for e in events:
        renderer.send(e)
    renderer.close()
    out = buf.getvalue()
    assert "\x1b[" not in out  # no escape codes down a pipe
    pos = 0
    for e in events:  # each delta, in order, byte for byte
        if isinstance(e, TextDelta) and e.delta:
            found = out.find(e.delta, pos)
            assert found >= 0, e.delta
            pos = found + len(e.delta)
    for e in events:
        if isinstance(e, RunEnd):
            assert f"run end: {e.status}" in out


def test_plain_mode_labels_merged_agents() -> None:
    a = events_of(RECORDED / "openai" / "chat_text_usage_openai_python.sse")
    buf = io.StringIO()
    renderer = TerminalRenderer(buf)
    for e in interleaved(("alpha", a), ("beta", a)):
        renderer.send(e)
    renderer.close()
    lines = buf.getvalue().splitlines()
    assert any(line.startswith("alpha ") for line in lines)
    assert any(line.startswith("beta ") for line in lines)


@pytest.mark.anyio
async def test_a_real_merge_renders_both_labels(anyio_backend: str) -> None:
    a = events_of(RECORDED / "openai" / "chat_text_usage_openai_python.sse")
    b = events_of(RECORDED / "anthropic" / "messages_minimal_text_pyd.sse")
    console, buf = terminal()
    renderer = TerminalRenderer(console=console)
    async with hosted():
        merged = merge({"writer": Stream.from_iterable(a), "critic": Stream.from_iterable(b)})
        async with merged.iterate() as it:
            async for e in it:
                renderer.send(e)
    renderer.close()
    shown = ANSI.sub("", buf.getvalue())
    assert "╭─ writer" in shown and "╭─ critic" in shown
    assert " ".join(text_of(a).split()[:3]) in " ".join(shown.split())


def test_panels_wrap_long_lines_even_on_a_soft_wrap_console() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=60, height=30, soft_wrap=True)
    renderer = TerminalRenderer(console=console, agents=["a", "b", "c"])
    long = "The most obvious color is white, but there are many more colors that can be considered."
    for name in ("a", "b", "c"):
        renderer.send(TextDelta(agent=name, delta=long))
        renderer.send(RunEnd(agent=name))
    renderer.close()
    shown = ANSI.sub("", buf.getvalue())
    assert shown.count("considered.") >= 3  # wrapped inside each panel, not cropped at its border


def test_plain_mode_prints_whole_lines_per_agent() -> None:
    # piped `streamops run --agents N`: the agents' deltas interleave word by word, the
    # output takes turns line by line, each line whole and labelled
    a = "Roses are red,\nviolets are blue,\nsugar is sweet"
    b = "One fish\ntwo fish"
    evs: list[Any] = []
    for i in range(0, max(len(a), len(b)), 4):
        if a[i : i + 4]:
            evs.append(TextDelta(delta=a[i : i + 4], agent="alpha", block_id="t"))
        if b[i : i + 4]:
            evs.append(TextDelta(delta=b[i : i + 4], agent="beta", block_id="t"))
    evs.append(RunEnd(agent="beta", status="completed", finish_reason="stop"))
    buf = io.StringIO()
    renderer = TerminalRenderer(buf)
    for e in evs:
        renderer.send(e)
    renderer.close()
    lines = buf.getvalue().splitlines()
    assert [ln for ln in lines if ln.startswith("alpha ")] == [
        "alpha Roses are red,",
        "alpha violets are blue,",
        "alpha sugar is sweet",
    ]
    assert [ln for ln in lines if ln.startswith("beta ")] == [
        "beta One fish",
        "beta two fish",
        "beta run end: completed, finish stop",
    ]
    assert len(lines) == 6


def test_run_end_line_never_shows_none() -> None:
    buf = io.StringIO()
    renderer = TerminalRenderer(buf, labels=False)
    renderer.send(RunEnd(status="failed"))
    renderer.send(RunEnd(status="completed", finish_reason="stop", raw_finish_reason="end_turn",
                         usage=Usage(output_tokens=5)))  # fmt: skip
    renderer.close()
    assert buf.getvalue().splitlines() == [
        "run end: failed",
        "run end: completed, finish stop (end_turn), tokens out 5",
    ]


def test_live_text_is_shown_as_written_by_default() -> None:
    # a poem keeps its line breaks, a numbered list its numbers (Markdown only with markdown=True)
    text = "Roses are red,\nviolets are blue,\nsugar is sweet,\nand so are you.\n\n1. Banana\n2. Apple"
    deltas = [TextDelta(delta=text[i : i + 4], block_id="t") for i in range(0, len(text), 4)]
    _, shown = render_live([RunStart(model="m"), *deltas, RunEnd(finish_reason="stop")])
    lines = [ln.strip() for ln in shown.splitlines()]
    for line in text.splitlines():
        if line:
            assert line in lines, (line, shown)


def test_live_blocks_come_from_block_events() -> None:
    # a paragraph is one block whatever the terminal does not show comes inside it (a structured
    # output's partial objects, a signature, custom events); a new block is a new paragraph
    evs: list[Any] = [
        RunStart(model="m"),
        TextDelta(delta="Hello wor", block_id="t0"),
        PartialObject(value={"a": 1}),
        ReasoningSignature(signature="sig", block_id="t0"),
        CustomEvent(name="note"),
        TextDelta(delta="ld, whole.", block_id="t0"),
        TextDelta(delta="Second block.", block_id="t1"),
        RunEnd(finish_reason="stop"),
    ]
    _, shown = render_live(evs, labels=False)
    lines = [ln.strip() for ln in shown.splitlines()]
    assert "Hello world, whole." in lines
    assert "Second block." in lines


def test_live_two_runs_of_one_agent_keep_their_own_blocks() -> None:
    # an agent that runs twice at once (the same tool agent called in parallel): one lane, a
    # block per run, never one run's text inside the other's
    one, two = "first run says this", "second run says that"
    evs: list[Any] = []
    for a, b in zip(one.split(" "), two.split(" "), strict=True):
        evs += [TextDelta(run_id="r1", delta=f"{a} "), TextDelta(run_id="r2", delta=f"{b} ")]
    evs += [RunEnd(run_id="r1"), RunEnd(run_id="r2")]
    _, shown = render_live(evs, labels=False)
    lines = [ln.strip() for ln in shown.splitlines()]
    assert one in lines and two in lines
