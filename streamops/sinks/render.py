"""A terminal renderer: events -> a live view on a terminal, plain text down a pipe (``rich``).

:class:`TerminalRenderer` is a sink (``send(event)`` / ``close()``). It has two modes:

- **live** (the default when the output is a terminal): the answer is shown as Markdown while
  it streams, in a ``rich`` ``Live`` display refreshed at a bounded rate (``refresh_per_second``,
  10 by default, on rich's refresh thread, whatever the event rate). Reasoning is dimmed, tool
  calls (with their arguments as they stream) and tool results are panels, errors are red. With
  one unlabelled agent each finished block (a paragraph run of text, a tool call, a result) is
  printed for good above the live area, which only holds what is still streaming. With labelled
  agents (a merged multi-agent stream) each agent gets a live panel of its own, in its own
  colour, titled with its name: side by side when the terminal is wide enough, else stacked;
  while streaming each panel shows the tail of its content that fits, the last frame shows all.
- **plain** (when the output is not a terminal, or ``live=False``): what
  :class:`~streamops.sinks.text.PlainTextEncoder` writes (text deltas byte for byte; reasoning,
  tool calls, tool results, errors and the run end a line each, prefixed with the agent's name
  when ``labels`` is on), in colour when the console has colours.

Both modes take their blocks (where a text, reasoning or tool-call block starts and ends) from
the block events of :class:`~streamops.operators.blocks.BlockSplitter`: the plain encoder is a
:class:`~streamops.sinks.encoder.BlockEncoder`, the live view feeds every shown event to a
splitter and keeps the blocks it opens and closes.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import streamops.events as ev

from ..operators.blocks import BlockSplitter
from .text import UNSHOWN, Piece, PlainTextEncoder, run_end_line

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.live import Live
    from rich.markdown import Markdown

__all__ = ["TerminalRenderer"]

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")
_MIN_COLUMN = 40  # narrowest panel for the side-by-side layout
_MAX_RESULT_LINES = 20  # longest tool result shown in a panel


def _pretty(value: Any, *, is_json_text: bool = False) -> str:
    """A tool argument string or result as indented JSON when it is JSON, else as text."""
    if is_json_text:
        try:
            value = json.loads(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _clip(text: str, lines: int) -> str:
    parts = text.splitlines()
    if len(parts) <= lines:
        return text
    return "\n".join([*parts[:lines], f"… ({len(parts) - lines} more lines)"])


@dataclass
class _Block:
    """A text, reasoning or refusal block still streaming, between its BlockStart and BlockEnd."""

    kind: ev.BlockType
    parts: list[str] = field(default_factory=list)


@dataclass
class _Call:
    """A tool call whose arguments are still streaming."""

    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Lane:
    """One agent's part of the display."""

    name: str
    colour: str
    items: list[RenderableType] = field(default_factory=list)  # finished, in order
    blocks: dict[str, _Block] = field(default_factory=dict)  # run id -> its open block
    calls: dict[str, _Call] = field(default_factory=dict)
    model: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class _LaneView:
    """A lane copied under the lock, for rendering on rich's refresh thread."""

    name: str
    colour: str
    items: tuple[RenderableType, ...]
    blocks: tuple[tuple[ev.BlockType, str], ...]
    calls: tuple[tuple[str, str], ...]
    model: str | None
    status: str | None


class _Tail:
    """Render ``renderable`` and keep only its last ``height`` lines (``None``: all of them)."""

    def __init__(self, renderable: RenderableType, height: int | None) -> None:
        self.renderable = renderable
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        # Wrapped whatever the console's soft_wrap (a panel would crop an unwrapped line).
        lines = console.render_lines(
            self.renderable, options.update(height=None, no_wrap=False, overflow="fold"), pad=False
        )
        while lines and not "".join(seg.text for seg in lines[0]).strip():
            del lines[0]  # rich's Markdown starts a list with a blank line, even at the top
        if self.height is not None and len(lines) > self.height:
            hidden = len(lines) - self.height + 1
            lines = [[Segment(f"⋮ {hidden} lines above", console.get_style("dim"))], *lines[-(self.height - 1) :]]
        for line in lines:
            yield from line
            yield Segment.line()


@functools.cache
def _markdown_class() -> type[Markdown]:
    from markdown_it import MarkdownIt
    from rich.markdown import Markdown

    # rich's own parser allows raw HTML, and rich then draws nothing for it: a model's
    # "<think>" or "a <b> c" would vanish. With HTML off such tags are shown as text.
    parser = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")

    class TextMarkdown(Markdown):
        def __init__(self, markup: str) -> None:
            super().__init__("", hyperlinks=False)  # links as "text (url)": shown on every terminal
            self.markup = markup
            self.parsed = parser.parse(markup)

    return TextMarkdown


def _markdown(text: str) -> RenderableType:
    """``text`` as rich Markdown, raw HTML shown as text."""
    return _markdown_class()(text)


class TerminalRenderer:
    """A sink (``await stream.run(TerminalRenderer())``) that renders events on a terminal.

    Args:
        file: where to write (standard output by default). Ignored when ``console`` is given.
        console: a ``rich`` console to render on (its ``is_terminal`` chooses the mode).
        show_reasoning: show reasoning deltas (dimmed).
        labels: name each agent's output (a coloured panel title when live, a line prefix
            when plain). Unlabelled output from one agent is shown without panels.
        live: force the live (True) or plain (False) mode; by default live when the console
            is a terminal (and not a dumb one).
        agents: the names of the agents of a merged stream, in display order, so that their
            panels are laid out from the start; others get a panel when they first appear.
        refresh_per_second: the most redraws per second of the live display.
        markdown: render answer text as Markdown in the live view (headings, bold, lists,
            code blocks). Off by default: Markdown joins a paragraph's lines (a poem becomes
            one line) and renumbers lists (``1. Banana`` shows as `` 1 Banana``); the text is
            then shown as the model wrote it, line breaks kept. Plain mode never renders it.
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        *,
        console: Console | None = None,
        show_reasoning: bool = True,
        labels: bool = True,
        live: bool | None = None,
        agents: Sequence[str] | None = None,
        refresh_per_second: float = 10.0,
        markdown: bool = False,
    ) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(file=file, highlight=False)
        self.show_reasoning = show_reasoning
        self.labels = labels
        self.live = live if live is not None else (self.console.is_terminal and not self.console.is_dumb_terminal)
        self.refresh_per_second = refresh_per_second
        self.markdown = markdown
        self._colours: dict[str, str] = {}
        self._plain = PlainTextEncoder(
            labels=labels, show_reasoning=show_reasoning, label_style=lambda agent: f"bold {self._colour(agent)}"
        )
        # live mode
        self._lock = threading.Lock()
        self._splitter = BlockSplitter(self._apply)
        self._lanes: dict[str, _Lane] = {}
        self._panels = bool(labels and agents and len(agents) > 1)
        self._live: Live | None = None
        self._pending: list[RenderableType] = []
        self._final = False
        self._closed = False
        for name in agents or ():
            self._lane(name)

    def _colour(self, agent: str) -> str:
        return self._colours.setdefault(agent, _COLOURS[len(self._colours) % len(_COLOURS)])

    def send(self, event: Any) -> None:
        """Render one event (anything else is shown as its ``str()``, on a line of its own)."""
        if self.live:
            self._send_live(event)
        elif isinstance(event, ev.BaseEvent):
            self._write(self._plain.encode(event))
        else:
            self._write(self._plain.note(str(event)))

    def close(self) -> None:
        """Finish: end the last line (plain), or show the whole of every panel and stop (live).

        Idempotent; safe to call in a ``finally``.
        """
        if self._closed:
            return
        self._closed = True
        if not self.live:
            self._write(self._plain.close())
            return
        with self._lock:
            self._splitter.end()
            self._final = True
            pending, self._pending = self._pending, []
        self._print_finished(pending)
        if self._live is not None:
            self._live.stop()  # its last refresh draws the final frame, whole
            self._live = None

    def __enter__(self) -> TerminalRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, pieces: list[Piece]) -> None:
        """Plain mode: write the pieces as they are (no markup, emoji codes, tab expansion,
        wrapping or control-code stripping); styled ones through rich when it has colours."""
        from rich.text import Text

        console = self.console
        colour = console.color_system is not None
        for text, style in pieces:
            if style and colour:
                console.print(Text(text, style=style), end="", soft_wrap=True)
            else:
                console.file.write(text)
        console.file.flush()

    # -- live mode: state (event-loop thread, under the lock) ---------------------------------

    def _lane(self, agent: str) -> _Lane:
        lane = self._lanes.get(agent)
        if lane is None:
            lane = self._lanes[agent] = _Lane(agent, self._colour(agent))
            if self.labels and (agent or len(self._lanes) > 1):
                self._panels = True
        return lane

    def _add(self, lane: _Lane, item: RenderableType) -> None:
        """A finished item: printed for good above the live area, or kept in the lane's panel."""
        if self._panels:
            lane.items.append(item)
        else:
            self._pending.append(item)  # printed once the lock is released (rich's refresh takes it)

    def _block_renderable(self, kind: ev.BlockType, text: str) -> RenderableType:
        from rich.text import Text

        if kind == "reasoning":
            return Text(text, style="dim italic")
        if kind == "refusal":
            return Text(text, style="yellow")
        return _markdown(text) if self.markdown else Text(text)

    @staticmethod
    def _tool_panel(title: str, body: str, colour: str) -> RenderableType:
        from rich.panel import Panel
        from rich.text import Text

        return Panel(Text(body), title=Text(title, style=f"bold {colour}"), title_align="left", border_style=colour)

    def _block(self, lane: _Lane, event: ev.BlockStart | ev.BlockEnd) -> None:
        """Open or close a block (the splitter's block events)."""
        if event.block == "tool-call":
            assert event.call_id is not None
            if isinstance(event, ev.BlockStart):
                lane.calls[event.call_id] = _Call(event.name or "")
            else:
                lane.calls.pop(event.call_id, None)  # its panel came with its ToolCallEnd
        elif isinstance(event, ev.BlockStart):
            if event.block != "reasoning" or self.show_reasoning:
                lane.blocks[event.run_id] = _Block(event.block)
        else:
            block = lane.blocks.pop(event.run_id, None)
            if block is not None and block.parts:
                self._add(lane, self._block_renderable(block.kind, "".join(block.parts)))

    def _apply(self, event: ev.BaseEvent) -> None:
        """One event of the splitter's output (block events included), under the lock."""
        from rich.text import Text

        lane = self._lane(event.agent)
        if isinstance(event, (ev.TextDelta, ev.ReasoningDelta, ev.RefusalDelta)):
            block = lane.blocks.get(event.run_id)
            if block is not None:  # None: hidden reasoning
                block.parts.append(event.delta)
        elif isinstance(event, (ev.BlockStart, ev.BlockEnd)):
            self._block(lane, event)
        elif isinstance(event, ev.RunStart):
            lane.model = event.model
            lane.status = "running"
            if event.model and not self._panels:
                self._add(lane, Text(f"model {event.model}", style="dim"))
        elif isinstance(event, ev.ToolCallDelta):
            call = lane.calls.get(event.call_id)
            if call is not None:
                call.arguments.append(event.delta)
        elif isinstance(event, ev.ToolCallEnd):
            body = _pretty(event.arguments, is_json_text=True)
            self._add(lane, self._tool_panel(f"tool call · {event.name}", body, "blue"))
        elif isinstance(event, ev.ToolResult):
            body = _clip(_pretty(event.result), _MAX_RESULT_LINES)
            self._add(lane, self._tool_panel(f"tool result · {event.name}", body, "green"))
        elif isinstance(event, ev.ToolError):
            body = f"{event.error_type}: {event.message}"
            self._add(lane, self._tool_panel(f"tool error · {event.name}", body, "red"))
        elif isinstance(event, ev.ErrorEvent):
            self._add(lane, Text(f"error {event.error_type}: {event.message}", style="bold red"))
        elif isinstance(event, ev.RedactedReasoning):
            if self.show_reasoning:
                self._add(lane, Text("(redacted reasoning)", style="dim italic"))
        elif isinstance(event, ev.FinalOutput):
            self._add(lane, self._tool_panel("output", _clip(_pretty(event.value), _MAX_RESULT_LINES), "cyan"))
        elif isinstance(event, ev.RunEnd):
            lane.status = event.status
            self._add(lane, Text(run_end_line(event), style="dim"))

    def _send_live(self, event: Any) -> None:
        if self._closed:
            return
        with self._lock:
            if not isinstance(event, ev.BaseEvent):
                from rich.text import Text

                self._add(self._lane(""), Text(str(event)))
            elif not isinstance(event, UNSHOWN):
                self._splitter.push(event)
            pending, self._pending = self._pending, []
        if self._live is None:
            self._start()
        self._print_finished(pending)

    def _print_finished(self, items: list[RenderableType]) -> None:
        """Print finished items for good above the live area, each once.

        rich redraws the live area below every print with the frame of its last refresh; that
        frame still holds the text just finished, so it would be drawn a second time (and only
        erased later, by cursor moves a terminal cannot always honour: a Ctrl-C showed the
        answer's first line twice). So the frame drawn below is made the current one first,
        without drawing it (``Live.refresh`` would draw it once more); the erase before the
        print still uses the height of the frame last drawn.
        """
        if not items:
            return
        live = self._live
        if live is not None:
            # rich has no public call for "use the current frame without drawing it"; if its
            # private LiveRender moves, a refresh does the same at the cost of one extra draw
            live_render = getattr(live, "_live_render", None)
            if live_render is not None and hasattr(live_render, "set_renderable"):
                live_render.set_renderable(live.renderable)
            else:
                live.refresh()
        for item in items:
            self.console.print(item, soft_wrap=False)

    def _start(self) -> None:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            get_renderable=self._frame,
            auto_refresh=True,
            refresh_per_second=self.refresh_per_second,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self._live.start()

    # -- live mode: frames (rich's refresh thread) --------------------------------------------

    def _snapshot(self) -> tuple[list[_LaneView], bool, bool]:
        with self._lock:
            views = [
                _LaneView(
                    name=lane.name,
                    colour=lane.colour,
                    items=tuple(lane.items),
                    blocks=tuple((b.kind, "".join(b.parts)) for b in lane.blocks.values()),
                    calls=tuple((c.name, "".join(c.arguments)) for c in lane.calls.values()),
                    model=lane.model,
                    status=lane.status,
                )
                for lane in self._lanes.values()
            ]
            return views, self._panels, self._final

    def _open_parts(self, view: _LaneView) -> list[RenderableType]:
        parts = [self._block_renderable(*block) for block in view.blocks]
        for name, arguments in view.calls:
            parts.append(self._tool_panel(f"tool call · {name} …", arguments, "blue"))
        return parts

    def _frame(self) -> RenderableType:
        """The live area now: what is still streaming, or one panel per agent."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        views, panels, final = self._snapshot()
        height = self.console.height
        if not panels:
            parts = [p for v in views for p in self._open_parts(v)]
            return _Tail(Group(*parts), None if final else max(1, height - 1))
        if not views:
            return Text("")
        side = len(views) > 1 and self.console.width // len(views) >= _MIN_COLUMN
        if final:
            body_height: int | None = None
        elif side or len(views) == 1:
            body_height = max(1, height - 3)
        else:
            body_height = max(1, (height - 1) // len(views) - 2)
        cells: list[RenderableType] = []
        for v in views:
            content: list[RenderableType] = [*v.items, *self._open_parts(v)]
            if not content:
                content = [Text("waiting…", style="dim")]
            status = v.status or "waiting"
            subtitle = f"{v.model} · {status}" if v.model else status
            done = v.status is not None and v.status != "running"
            cells.append(
                Panel(
                    _Tail(Group(*content), body_height),
                    title=Text(v.name or "(unnamed)", style=f"bold {v.colour}"),
                    title_align="left",
                    subtitle=Text(subtitle, style="dim"),
                    subtitle_align="right",
                    border_style=f"dim {v.colour}" if done else v.colour,
                )
            )
        if not side:
            return Group(*cells)
        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in cells:
            grid.add_column(ratio=1)
        grid.add_row(*cells)
        return grid
