"""Plain text: events as the lines a person reads down a pipe or in a log, text deltas verbatim.

:class:`PlainTextEncoder` is the plain mode of :class:`~streamops.sinks.render.TerminalRenderer`
(what it writes when the output is not a terminal) and an
:class:`~streamops.sinks.encoder.Encoder` of its own: ``encoded(stream, PlainTextEncoder())`` is
that text as UTF-8 bytes.

- Text and refusal deltas are written as they come, byte for byte; reasoning deltas too, after
  ``thinking: `` (unless ``show_reasoning=False``).
- A tool call (when it ends: ``tool call name(arguments)``), a tool result
  (``tool result name -> repr(result)``), a tool error, an error, a run start's model and the
  run end each get a line of their own.
- With labels (``labels=True`` and an event whose ``agent`` is not empty) every line starts with
  the agent's name, and text and reasoning come in whole lines, so the agents of a merged stream
  take turns line by line, never word by word: a line is written at its ``\\n`` or when its block
  ends (the :class:`~streamops.events.BlockEnd` of the splitter).
- Without labels the deltas are the output: a block's deltas continue the current line, and so
  do the next blocks of the same agent and kind (nothing is inserted between them); the line
  ends, with a ``\\n``, before anything else is written.

Blocks come from :class:`~streamops.operators.blocks.BlockSplitter` (the
:class:`~streamops.sinks.encoder.BlockEncoder` base). Events that are never shown
(``ToolProgress``, ``CustomEvent``, ``PartialObject``, ``ReasoningSignature``) are not fed to
it, so they never split a block. Nested runs and handoffs are not lowered to custom events:
each agent keeps its label.

Items are :data:`Piece` pairs ``(text, style)``; the style (a ``rich`` style name, ``""`` for
none) is for a terminal, :meth:`PlainTextEncoder.frame` writes the text only.
"""

from __future__ import annotations

from collections.abc import Callable

import streamops.events as ev

from .encoder import BlockEncoder

__all__ = ["Piece", "PlainTextEncoder"]

Piece = tuple[str, str]
"""``(text, style)``: a piece of the output and the ``rich`` style it has on a terminal (``""``:
none)."""

UNSHOWN = (ev.ToolProgress, ev.CustomEvent, ev.PartialObject, ev.ReasoningSignature)
"""Events the terminal does not show: they are not fed to the block splitter, so they never end
a block (a structured output's ``PartialObject`` events come between its text deltas, Gemini
sends a ``ReasoningSignature`` in the middle of an answer's text)."""

_NL: Piece = ("\n", "")


def run_end_line(event: ev.RunEnd) -> str:
    """``run end: completed, finish stop (end_turn), tokens in 12 out 48``; what is unknown is
    left out (never a literal ``None``)."""
    parts = [f"run end: {event.status}"]
    if event.finish_reason is not None:
        raw = event.raw_finish_reason
        parts.append(f"finish {event.finish_reason}" + (f" ({raw})" if raw and raw != event.finish_reason else ""))
    u = event.usage
    if u is not None:
        figures = [f"{name} {n}" for name, n in (("in", u.input_tokens), ("out", u.output_tokens)) if n is not None]
        if figures:
            parts.append("tokens " + " ".join(figures))
    return ", ".join(parts)


class PlainTextEncoder(BlockEncoder[Piece]):
    """Events -> plain text :data:`Piece` items (sans-IO; the rules are in the module docstring).

    ``encode(event)`` returns the pieces due for one event, ``close()`` those that end the output
    (the unfinished lines, a last ``\\n``); a merged stream's several run ends are each a line,
    none ends the output. :meth:`note` writes a line of free text.

    Args:
        labels: prefix each line with its agent's name (events whose agent is empty have none).
        show_reasoning: write reasoning deltas.
        label_style: the style of an agent's label (``bold`` by default).
    """

    def __init__(
        self, *, labels: bool = True, show_reasoning: bool = True, label_style: Callable[[str], str] | None = None
    ) -> None:
        super().__init__()
        self.labels = labels
        self.show_reasoning = show_reasoning
        self._label_style = label_style or (lambda agent: "bold")
        self._at: tuple[str, str] | None = None  # (agent, kind) of the line being written, unlabelled
        self._partial: dict[tuple[str, str], str] = {}  # labelled: (agent, kind) -> its unfinished line

    def frame(self, item: Piece) -> bytes:
        """The piece's text as UTF-8 (:func:`~streamops.events.utf8`: a lone surrogate becomes
        U+FFFD)."""
        return ev.utf8(item[0])

    def encode(self, event: ev.BaseEvent) -> list[Piece]:
        """The pieces for one event (none for an event the terminal does not show)."""
        if isinstance(event, UNSHOWN):
            return []
        return super().encode(event)

    def note(self, text: str) -> list[Piece]:
        """``text`` as a line of its own, unlabelled (the renderer's line for a non-event)."""
        self._line("", (text, ""))
        out, self._out = self._out, []
        return out

    def _lowered(self, event: ev.BaseEvent) -> None:
        self._one(event)  # a terminal has room for every run: nested runs keep their own lines

    def _begin(self, run_id: str) -> None:
        pass  # plain text has no header

    def _end(self, event: ev.RunEnd | None) -> None:
        self._newline()
        self.finished = True

    def _one(self, event: ev.BaseEvent) -> None:
        agent = event.agent
        if isinstance(event, ev.TextDelta):
            self._delta(event, "text")
        elif isinstance(event, ev.ReasoningDelta):
            if self.show_reasoning:
                self._delta(event, "reasoning")
        elif isinstance(event, ev.RefusalDelta):
            self._at_line(agent, "text")
            self._out.append((event.delta, "yellow"))
        elif isinstance(event, ev.BlockEnd):
            rest = self._partial.pop((agent, event.block), None)
            if rest is not None:
                self._whole_line(agent, event.block, rest)
        elif isinstance(event, ev.ToolCallEnd):
            self._line(agent, ("tool call", "bold"), (f" {event.name}({event.arguments})", ""))
        elif isinstance(event, ev.ToolResult):
            self._line(agent, ("tool result", "bold"), (f" {event.name} -> {event.result!r}", ""))
        elif isinstance(event, ev.ToolError):
            self._line(agent, ("tool error", "bold red"), (f" {event.name}: {event.message}", ""))
        elif isinstance(event, ev.ErrorEvent):
            self._line(agent, ("error", "bold red"), (f" {event.error_type}: {event.message}", ""))
        elif isinstance(event, ev.RunStart):
            if event.model:
                self._line(agent, (f"model {event.model}", "dim"))
        elif isinstance(event, ev.RunEnd):
            self._line(agent, (run_end_line(event), "dim"))

    def _label(self, agent: str) -> list[Piece]:
        if not agent or not self.labels:
            return []
        return [(agent, self._label_style(agent)), (" ", "")]

    def _newline(self) -> None:
        if self._at is not None:
            self._out.append(_NL)
            self._at = None

    def _at_line(self, agent: str, kind: str) -> None:
        """Continue the line of ``agent``'s ``kind`` text, or end the line and start one."""
        if self._at != (agent, kind):
            self._newline()
            self._out += self._label(agent)
            if kind == "reasoning":
                self._out += [("thinking:", "dim"), (" ", "")]
            self._at = (agent, kind)

    def _line(self, agent: str, *pieces: Piece) -> None:
        self._newline()
        self._out += [*self._label(agent), *pieces, _NL]

    def _delta(self, event: ev.TextDelta | ev.ReasoningDelta, kind: str) -> None:
        style = "" if kind == "text" else "dim italic"
        agent = event.agent
        if not (self.labels and agent):
            self._at_line(agent, kind)
            self._out.append((event.delta, style))
            return
        key = (agent, kind)  # per label: two runs of one agent name share its lines
        *lines, rest = (self._partial.pop(key, "") + event.delta).split("\n")
        for line in lines:
            self._whole_line(agent, kind, line)
        if rest:
            self._partial[key] = rest

    def _whole_line(self, agent: str, kind: str, line: str) -> None:
        self._newline()
        self._out += self._label(agent)
        if kind == "reasoning":
            self._out += [("thinking:", "dim"), (" ", ""), (line, "dim italic"), _NL]
        else:
            self._out += [(line, ""), _NL]
