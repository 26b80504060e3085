"""A terminal renderer: events -> text on a terminal, as they arrive (uses ``rich``).

Text deltas are written as they come; reasoning is shown dimmed; tool calls, tool results,
errors and the run end each get a line of their own. With several agents in one stream each
agent's lines are labelled with its name in its own colour.
"""

from __future__ import annotations

from typing import IO, Any

from .events import (
    BaseEvent,
    ErrorEvent,
    ReasoningDelta,
    RefusalDelta,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallEnd,
    ToolError,
    ToolResult,
    UsageEvent,
)

__all__ = ["TerminalRenderer"]

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")


class TerminalRenderer:
    """A sink (``await stream.run(TerminalRenderer())``) that renders events on a terminal.

    ``file`` defaults to standard output; colours are used when it is a terminal. With
    ``labels`` (the default) each agent's output is prefixed with its name.
    """

    def __init__(self, file: IO[str] | None = None, *, show_reasoning: bool = True, labels: bool = True) -> None:
        from rich.console import Console

        self.console = Console(file=file, highlight=False, soft_wrap=True)
        self.show_reasoning = show_reasoning
        self.labels = labels
        self._mode: tuple[str, str] | None = None  # (agent, "text" | "reasoning")
        self._colours: dict[str, str] = {}

    def _label(self, agent: str) -> str:
        if not agent or not self.labels:
            return ""
        colour = self._colours.setdefault(agent, _COLOURS[len(self._colours) % len(_COLOURS)])
        return f"[bold {colour}]{agent}[/] "

    def _switch(self, agent: str, mode: str) -> None:
        if self._mode != (agent, mode):
            if self._mode is not None:
                self.console.print()
            label = self._label(agent)
            if label or mode == "reasoning":
                prefix = "[dim]thinking:[/] " if mode == "reasoning" else ""
                self.console.print(label + prefix, end="")
            self._mode = (agent, mode)

    def _line(self, agent: str, markup: str) -> None:
        if self._mode is not None:
            self.console.print()
            self._mode = None
        self.console.print(self._label(agent) + markup)

    def send(self, event: Any) -> None:
        """Render one event."""
        from rich.markup import escape

        if not isinstance(event, BaseEvent):
            self._line("", escape(str(event)))
            return
        agent = event.agent
        if isinstance(event, TextDelta):
            self._switch(agent, "text")
            self.console.print(escape(event.delta), end="")
        elif isinstance(event, ReasoningDelta):
            if self.show_reasoning:
                self._switch(agent, "reasoning")
                self.console.print(f"[dim italic]{escape(event.delta)}[/]", end="")
        elif isinstance(event, RefusalDelta):
            self._switch(agent, "text")
            self.console.print(f"[yellow]{escape(event.delta)}[/]", end="")
        elif isinstance(event, ToolCallEnd):
            self._line(agent, f"[bold]tool call[/] {escape(event.name)}({escape(event.arguments)})")
        elif isinstance(event, ToolResult):
            self._line(agent, f"[bold]tool result[/] {escape(event.name)} -> {escape(repr(event.result))}")
        elif isinstance(event, ToolError):
            self._line(agent, f"[bold red]tool error[/] {escape(event.name)}: {escape(event.message)}")
        elif isinstance(event, ErrorEvent):
            self._line(agent, f"[bold red]error[/] {escape(event.error_type)}: {escape(event.message)}")
        elif isinstance(event, RunStart):
            if event.model:
                self._line(agent, f"[dim]model {escape(event.model)}[/]")
        elif isinstance(event, UsageEvent):
            pass
        elif isinstance(event, RunEnd):
            u = event.usage
            tokens = "" if u is None else f", tokens in {u.input_tokens} out {u.output_tokens}"
            self._line(
                agent,
                f"[dim]run end: {event.status}, finish {event.finish_reason} ({event.raw_finish_reason}){tokens}[/]",
            )

    def close(self) -> None:
        """End the last line."""
        if self._mode is not None:
            self.console.print()
            self._mode = None
