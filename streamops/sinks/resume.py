"""Resuming a streamed response: event ids, the resume error, and the run a response follows.

An SSE body gives each event a unique ``id:`` line; a client that went away sends the last one
back (``Last-Event-ID``) and a response that follows a run (:class:`ResumableRun`, implemented
by :class:`streamops.serve.runlog.RunHandle`) replays what came after it. Ids:

- ``{run_id}:{seq}`` for an event whose ``seq`` is greater than that of every earlier event of
  its run (the usual case: :func:`event_id`);
- ``{run_id}:{seq}.{n}`` for any other event, ``n`` being its position in the sequence
  (0-based). Operators legitimately repeat a seq (``smooth()``, ``count_tokens()``, merged runs).

The run id is percent-encoded (UTF-8, RFC 3986 style) so that the id is printable ASCII without
spaces: it can never break out of an SSE ``id:`` line, and it survives the trip back in an HTTP
``Last-Event-ID`` header unchanged. :func:`parse_event_id` reads both forms.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Literal, Protocol, TypeAlias, runtime_checkable
from urllib.parse import quote, unquote

from ..errors import ResumeUnavailableError
from ..events import BaseEvent

__all__ = [
    "DisconnectPolicy",
    "EventIds",
    "ResumableRun",
    "ResumeUnavailableError",
    "RunEventLog",
    "event_id",
    "parse_event_id",
]

DisconnectPolicy: TypeAlias = Literal["cancel", "continue"]
"""What happens to a run when its HTTP/WebSocket client goes away: ``"cancel"`` it, or let it
``"continue"`` (in a :class:`RunRegistry`, where it can be re-joined)."""

# Printable ASCII except "%" (the escape) and " " (HTTP strips it at the ends of a header).
_ID_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
# What follows the last colon of an id: the seq, then ".{n}" when the seq was repeated.
_ID_TAIL = re.compile(r"(-?[0-9]+)(?:\.[0-9]+)?", re.ASCII)


def event_id(event: BaseEvent) -> str:
    """The event's plain id for SSE ``id:`` / ``Last-Event-ID``: ``{run_id}:{seq}``.

    The run id is percent-encoded (UTF-8; a lone surrogate as its UTF-8-like bytes, read back by
    :func:`parse_event_id`), so the result is printable ASCII with no space,
    CR, LF or NUL, whatever the run id holds. ``":"`` in a run id is kept: the seq is after the
    last colon. A :class:`RunLog` or an SSE body gives this id to an event whose seq is new in
    its run, and ``{run_id}:{seq}.{n}`` to one whose seq is not (see the module docstring).
    """
    return f"{quote(event.run_id, safe=_ID_SAFE, errors='surrogatepass')}:{event.seq}"


def parse_event_id(value: str) -> tuple[str, int]:
    """Split an id written by a :class:`RunLog` or an SSE body into ``(run_id, seq)``.

    Both forms are read: ``{run_id}:{seq}`` (:func:`event_id`) and ``{run_id}:{seq}.{n}``
    (a repeated seq, ``n`` a position: a non-negative integer).

    Raises:
        ValueError: ``value`` is not of one of those forms with integers.
    """
    run, colon, tail = value.rpartition(":")
    m = _ID_TAIL.fullmatch(tail)
    if not colon or m is None:
        raise ValueError(f"not a streamops event id: {value!r}")
    return unquote(run, errors="surrogatepass"), int(m[1])


class EventIds:
    """Gives each event of one sequence (a log, an SSE body) its unique id (``{run_id}:{seq}``,
    or ``{run_id}:{seq}.{n}`` for a repeated seq; see the module docstring). Remembers the
    highest seq of each run: memory grows with runs, not events. Used by the SSE encoder and
    the run logs of :mod:`streamops.serve` and :mod:`streamops.stores`."""

    __slots__ = ("_count", "_top")

    def __init__(self) -> None:
        self._top: dict[str, int] = {}
        self._count = 0

    def next_id(self, event: BaseEvent) -> str:
        """The id of ``event``, the next event of the sequence."""
        n = self._count
        self._count = n + 1
        run, seq = event.run_id, event.seq
        top = self._top.get(run)
        if top is None or seq > top:
            self._top[run] = seq
            return event_id(event)
        return f"{event_id(event)}.{n}"


class RunEventLog(Protocol):
    """The log of a run as a resuming response reads it (a run store implements it)."""

    def check(self, last_event_id: str | None) -> None:
        """Raise :class:`ResumeUnavailableError` now if the events after ``last_event_id``
        cannot be delivered exactly once."""

    def id_of(self, event: BaseEvent) -> str:
        """The id the log gave ``event``, an event its ``follow()`` just yielded."""
        ...


@runtime_checkable
class ResumableRun(Protocol):
    """A run that a response follows instead of iterating a stream itself
    (:class:`streamops.serve.runlog.RunHandle`, or a store's run)."""

    @property
    def log(self) -> RunEventLog:
        """The run's event log."""
        ...

    @property
    def on_disconnect(self) -> DisconnectPolicy:
        """The policy the run was started with."""
        ...

    @property
    def followers(self) -> int:
        """How many followers are attached right now."""
        ...

    def follow(self, last_event_id: str | None = None) -> AsyncIterator[BaseEvent]:
        """Replay the events after ``last_event_id``, then tail the run live until it ends.

        Raises:
            ResumeUnavailableError: the events after the id cannot be delivered exactly once.
        """
        ...

    def cancel(self, *, grace: float = 5.0) -> None:
        """Cancel the run (idempotent)."""
        ...
