"""Blocks: explicit start and end of every text, reasoning, refusal and tool-call block.

Providers stream deltas tagged with a ``block_id`` or ``call_id`` but say where a block ends
only sometimes (Anthropic's ``content_block_stop``) or never (OpenAI chat chunks). Protocols
that serve a run want both ends (the AI SDK's ``text-start``/``text-end``, AG-UI's
``TEXT_MESSAGE_START``/``TEXT_MESSAGE_END``, A2A's ``lastChunk``; pydantic-ai's
``PartStartEvent``/``PartEndEvent`` model the same thing). :func:`blocks` derives them once, as
:class:`~streamops.events.BlockStart`/:class:`~streamops.events.BlockEnd` events, so no sink
re-derives "the current block, close it, open the next". :class:`BlockSplitter` is the same
rule sans-IO, for an encoder that is fed events one by one.

The rule, per run and agent (``(run_id, agent)``: the runs of a merged stream keep their own
blocks):

- a content block (``text``, ``reasoning``, ``refusal``) opens at a delta of that kind (or a
  ``ReasoningSignature``, which belongs to its reasoning block) when no block of that kind and
  ``block_id`` is open; at most one content block is open at a time, so it ends when a delta of
  another kind or block arrives, or any other event of the run, except the events that carry
  no content of their own (``UsageEvent``, ``ObjectDelta``, ``RawEvent``, ``RunStart``), which
  pass inside it;
- a ``tool-call`` block opens at the first ``ToolCallStart`` of its ``call_id`` (a repeated
  start stays inside) or at a ``ToolCallEnd`` that had no start, and ends right after its
  ``ToolCallEnd``; calls may overlap each other (parallel calls), never a content block. A
  ``ToolCallDelta`` of a call that never started passes outside any block;
- every block still open ends before the run's ``RunEnd``, and at the end of the stream.

Block events already in the input are dropped and derived again, so ``blocks()`` applied twice
gives what it gives once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._stream import End, Push, Stage
from ..events import (
    BaseEvent,
    BlockEdge,
    BlockEnd,
    BlockStart,
    BlockType,
    ObjectDelta,
    RawEvent,
    ReasoningDelta,
    ReasoningSignature,
    RefusalDelta,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
    envelope,
)

__all__ = ["CONTENT_BLOCKS", "BlockSplitter", "blocks"]

CONTENT_BLOCKS: dict[type[BaseEvent], BlockType] = {
    TextDelta: "text",
    ReasoningDelta: "reasoning",
    RefusalDelta: "refusal",
    ReasoningSignature: "reasoning",
}
"""The block type each content event belongs to."""

_INSIDE = (UsageEvent, ObjectDelta, RawEvent, RunStart)  # no content of their own: pass inside a block
_Key = tuple[str, str]


@dataclass(slots=True)
class _Open:
    """An open block: what it holds, its ids, and its last event (the envelope of its end)."""

    block: BlockType
    block_id: str | None
    call_id: str | None
    name: str | None
    last: Any


def _start(o: _Open, ev: BaseEvent) -> BlockStart:
    env = envelope(ev, raw=None)
    return BlockStart(**env, block=o.block, block_id=o.block_id, call_id=o.call_id, name=o.name)


def _end(o: _Open) -> BlockEnd:
    env = envelope(o.last, raw=None)
    return BlockEnd(**env, block=o.block, block_id=o.block_id, call_id=o.call_id, name=o.name)


class BlockSplitter:
    """Sans-IO form of :func:`blocks`: ``push(event)`` hands ``emit`` the block events due
    before ``event``, ``event`` itself, and those due after it; ``end()`` hands it the ends of
    every block still open. ``feed``/``flush`` return them as a list instead (``emit`` not
    given). One splitter per stream; state is per ``(run_id, agent)``."""

    __slots__ = ("_calls", "_content", "_out", "emit")

    def __init__(self, emit: Callable[[BaseEvent], Any] | None = None) -> None:
        self._out: list[BaseEvent] = []
        self.emit: Callable[[BaseEvent], Any] = emit if emit is not None else self._out.append
        self._content: dict[_Key, _Open] = {}
        self._calls: dict[_Key, dict[str, _Open]] = {}

    def feed(self, event: BaseEvent) -> list[BaseEvent]:
        """The events :meth:`push` emits for ``event``, as a list."""
        self.push(event)
        out = self._out[:]
        self._out.clear()
        return out

    def flush(self) -> list[BaseEvent]:
        """The events :meth:`end` emits, as a list."""
        self.end()
        out = self._out[:]
        self._out.clear()
        return out

    def push(self, ev: BaseEvent) -> None:
        """Emit the block events due around ``ev``, and ``ev`` (block events are dropped)."""
        emit = self.emit
        cls = ev.__class__
        block = CONTENT_BLOCKS.get(cls)
        key = (ev.run_id, ev.agent)
        if block is not None:
            bid = ev.block_id  # type: ignore[attr-defined]
            o = self._content.get(key)
            if o is None or o.block != block or o.block_id != bid:
                if o is not None:
                    emit(_end(o))
                o = self._content[key] = _Open(block, bid, None, None, ev)
                emit(_start(o, ev))
            else:
                o.last = ev
            emit(ev)
            return
        if isinstance(ev, BlockEdge):  # derived again
            return
        if isinstance(ev, _INSIDE):
            emit(ev)
            return
        o = self._content.pop(key, None)
        if o is not None:
            emit(_end(o))
        if cls is ToolCallStart or cls is ToolCallDelta or cls is ToolCallEnd:
            self._tool(key, ev, emit)
            return
        if cls is RunEnd:
            calls = self._calls.pop(key, None)
            if calls:
                for c in calls.values():
                    emit(_end(c))
        emit(ev)

    def _tool(self, key: _Key, ev: Any, emit: Callable[[BaseEvent], Any]) -> None:
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = {}
        c = calls.get(ev.call_id)
        if c is None:
            if ev.__class__ is ToolCallDelta:  # a fragment of a call that never started
                emit(ev)
                return
            c = calls[ev.call_id] = _Open("tool-call", None, ev.call_id, ev.name, ev)
            emit(_start(c, ev))
        c.last = ev
        emit(ev)
        if ev.__class__ is ToolCallEnd:
            if ev.name:
                c.name = ev.name
            del calls[ev.call_id]
            emit(_end(c))

    def end(self) -> None:
        """Emit the end of every block still open (content blocks first, per run and agent)."""
        for key in dict.fromkeys([*self._content, *self._calls]):
            o = self._content.pop(key, None)
            if o is not None:
                self.emit(_end(o))
            for c in self._calls.pop(key, {}).values():
                self.emit(_end(c))


def blocks() -> Stage[BaseEvent, BaseEvent]:
    """Mark where each text, reasoning, refusal and tool-call block starts and ends, per run and
    agent (the rule is in this module's docstring).

    - Emits: every event unchanged and in order; a ``BlockStart`` right before the first event
      of each block, a ``BlockEnd`` right after its last event is known to be the last (before
      the event that ends it, after a ``ToolCallEnd``). Block events in the input are dropped
      (and derived again).
    - Completes: when the upstream completes, after the ends of the blocks still open.
    - Fails: when the upstream fails (the open blocks get no end: nothing after a failure).
    - Cancels: when the downstream stops. Buffers nothing; holds one open block per run and
      agent and its open tool calls. A fused stage.

    Marble: (``t`` text deltas of one block, ``c``/``C`` a tool call's start/end, ``[``/``]``
    block start/end, ``e`` the run end)::

        t t c C e |  | blocks()  ->  [ t t ] [ c C ] e |
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        splitter = BlockSplitter(down)

        def flush() -> None:
            splitter.end()
            end()

        return splitter.push, flush

    return Stage(bind, "blocks")
