"""The tool calls of one step: unique call ids, and the mailbox tool tasks report into."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, TypeVar

from ..events import (
    BaseEvent,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    derive,
)
from ..operators.aggregate import Message

if TYPE_CHECKING:
    import anyio

    from ..models import ChatMessage


__all__ = ["TOOL_CALL_EVENTS", "CallIds", "Mailbox", "assistant_message"]

TOOL_CALL_EVENTS = (ToolCallStart, ToolCallDelta, ToolCallEnd)
"""The events of a tool call as the model streams it."""

E = TypeVar("E", bound=BaseEvent)


class Mailbox:
    """Tool tasks put their events here; the run waits for them."""

    __slots__ = ("items", "pending", "waiter")

    def __init__(self) -> None:
        self.items: deque[BaseEvent] = deque()
        self.pending = 0
        self.waiter: anyio.Event | None = None

    def put(self, ev: BaseEvent) -> None:
        self.items.append(ev)
        w = self.waiter
        if w is not None:
            self.waiter = None
            w.set()


class CallIds:
    """Gives every tool call of one step a unique, non-empty ``call_id``.

    A model may stream a tool call without an id (the adapters make one up for providers that
    give none, a custom :class:`~streamops.models.Model` may not). Such a call's events get
    ``call-{step}-{n}``: an event without an id belongs to the call with the same ``index``,
    else (no ``index``) to the call still open (started, not yet ended), else it starts a new
    call. The id is given to the events (copies) before anything else sees them, so the
    consumer, the step's accumulator, the ``ToolResult``/``ToolError``/``ToolProgress`` events
    and the tool messages sent back to the model all pair on the same id; two calls of the same
    tool in one step never share one.
    """

    __slots__ = ("by_index", "n", "open", "seen", "step")

    def __init__(self, step: int) -> None:
        self.step = step
        self.n = 0
        self.by_index: dict[int, str] = {}
        self.open: str | None = None  # the call started last and not ended yet
        self.seen: set[str] = set()

    def fix(self, ev: E) -> E:
        """``ev``, or (a tool-call start/delta/end without an id) a copy with its call's id."""
        if not isinstance(ev, TOOL_CALL_EVENTS):
            return ev
        call: ToolCallStart | ToolCallDelta | ToolCallEnd = ev
        cid = call.call_id
        index = ev.index
        if cid:
            self.seen.add(cid)
            if index is not None:
                self.by_index.setdefault(index, cid)
        elif index is not None and index in self.by_index:
            cid = self.by_index[index]
        elif index is None and self.open is not None and not isinstance(ev, ToolCallStart):
            cid = self.open
        else:
            cid = self._new()
            if index is not None:
                self.by_index[index] = cid
        if isinstance(ev, ToolCallStart):
            self.open = cid
        elif isinstance(ev, ToolCallEnd) and self.open == cid:
            self.open = None
        return ev if call.call_id == cid else derive(ev, call_id=cid)

    def _new(self) -> str:
        while True:
            cid = f"call-{self.step}-{self.n}"
            self.n += 1
            if cid not in self.seen:
                self.seen.add(cid)
                return cid


def assistant_message(msg: Message) -> ChatMessage:
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
        for c in msg.tool_calls
        if c.name
    ]
    out: ChatMessage = {"role": "assistant", "content": msg.text or None}
    if calls:
        out["tool_calls"] = calls
    return out
