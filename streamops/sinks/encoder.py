"""The encoder protocol: what every sink is (sans-IO), and its body as a stream of bytes.

An :class:`Encoder` turns events into the bytes of one response body, in three calls:
``encode_frames(event)`` for each event, ``close_frames()`` once when the events ended, and
``error_frames(error)`` instead of ``close_frames()`` when the events, or the encoder itself,
raised (``error`` is the :class:`~streamops.events.ErrorEvent` standing for the exception,
:func:`~streamops.operators.errors.error_event`). Each returns bytes (``b""`` for nothing).
The encoders of this package: :class:`~streamops.sinks.sse.SSEEncoder`,
:class:`~streamops.sinks.ndjson.NDJSONEncoder`, :class:`~streamops.sinks.openai.ChunkEncoder`,
:class:`~streamops.sinks.vercel.VercelEncoder`, :class:`~streamops.sinks.agui.AGUIEncoder`,
:class:`~streamops.sinks.a2a.A2AEncoder`, :class:`~streamops.sinks.text.PlainTextEncoder`
(plain text, the terminal renderer's plain mode).

Two drivers serve any encoder: :func:`encoded` (the body as a lazy :class:`~streamops.Stream`
of bytes) and :func:`streamops.sinks._asgi.encoder_response` (a starlette response with
heartbeats and a disconnect policy; what every ``*_response`` function returns).

:class:`ItemEncoder` is the base of the protocol encoders that map an event to protocol items
first (chunk dicts, AG-UI or A2A models): they write ``encode(event) -> list`` and
``close() -> list`` (sans-IO, tested item by item) and ``frame(item) -> bytes``; the base
gives the three frame methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from .._stream import End, Push, Stage, Stream
from ..events import BaseEvent, ErrorEvent, RunEnd
from ..operators.blocks import BlockSplitter
from ..operators.errors import errors_as_events
from ._nesting import Nesting

__all__ = ["BlockEncoder", "Encoder", "ItemEncoder", "encoded"]

F = TypeVar("F")


@runtime_checkable
class Encoder(Protocol):
    """Sans-IO: events in, the bytes of one body out. One encoder per body."""

    def encode_frames(self, event: BaseEvent) -> bytes:
        """The frames for one event (``b""`` for none)."""
        ...

    def close_frames(self) -> bytes:
        """The frames that end a body whose events ended (closing blocks, a terminator)."""
        ...

    def error_frames(self, error: ErrorEvent) -> bytes:
        """The frames that end a body whose events or encoder raised; ``error`` stands for the
        exception. Called at most once, instead of :meth:`close_frames`."""
        ...


class ItemEncoder(Generic[F]):
    """Base of an encoder that maps events to protocol items, then frames each item.

    Subclasses define :meth:`encode`, :meth:`close` and :meth:`frame`; :attr:`terminator` is
    written after :meth:`close`'s frames (``data: [DONE]`` for the OpenAI and AI SDK streams).
    """

    __slots__ = ()

    terminator: bytes = b""
    """Bytes that end every body, after the closing frames."""

    def encode(self, event: BaseEvent) -> list[F]:
        """The protocol items for one event (possibly none)."""
        raise NotImplementedError

    def close(self) -> list[F]:
        """The items that end a stream (whatever is still open); ``[]`` if nothing is owed."""
        raise NotImplementedError

    def frame(self, item: F) -> bytes:
        """One item as its wire frame."""
        raise NotImplementedError

    def encode_frames(self, event: BaseEvent) -> bytes:
        """:meth:`encode`'s items, each framed by :meth:`frame`, concatenated."""
        items = self.encode(event)
        if not items:
            return b""
        if len(items) == 1:
            return self.frame(items[0])
        return b"".join(map(self.frame, items))

    def close_frames(self) -> bytes:
        """:meth:`close`'s items framed, then :attr:`terminator`."""
        return b"".join(map(self.frame, self.close())) + self.terminator

    def error_frames(self, error: ErrorEvent) -> bytes:
        """``error`` encoded as any ``ErrorEvent`` of the stream is, then :meth:`close_frames`."""
        return self.encode_frames(error) + self.close_frames()


class BlockEncoder(ItemEncoder[F]):
    """Base of an :class:`ItemEncoder` over block events (AG-UI, Vercel, A2A, plain text): every
    event goes through a :class:`~streamops.operators.blocks.BlockSplitter`, and :meth:`_one` gets the
    events with their block starts and ends in order, so no encoder re-derives "the current
    block, close it, open the next".

    Subclasses define :meth:`_begin` (the items that open the body, once), :meth:`_one` (the
    items of one event, block events included) and :meth:`_end` (the items that end the run:
    for its ``RunEnd``, or ``None`` from :meth:`close`); each appends to ``self._out``.

    Attributes:
        finished: the run's end was encoded; nothing more is.
    """

    def __init__(self) -> None:
        self.finished = False
        self._out: list[F] = []
        self._nesting = Nesting()
        self._splitter = BlockSplitter(self._lowered)

    def _lowered(self, event: BaseEvent) -> None:
        # a nested run's start/end and a handoff become custom events (streamops.sinks._nesting),
        # after the splitter has closed the nested run's blocks
        self._one(self._nesting.lower(event))

    def _begin(self, run_id: str) -> None:
        """Append the items that open the body, the first time (``run_id``: the first event's)."""
        raise NotImplementedError

    def _one(self, event: BaseEvent) -> None:
        """Append the items of one event (block events included)."""
        raise NotImplementedError

    def _end(self, event: RunEnd | None) -> None:
        """Append the items that end the run (``event``: its run end; ``None``: none came) and
        set :attr:`finished`."""
        raise NotImplementedError

    def encode(self, event: BaseEvent) -> list[F]:
        """The items for one event (possibly none); nothing after the run's end."""
        if self.finished:
            return []
        self._begin(event.run_id)
        self._splitter.push(event)
        out, self._out = self._out, []
        return out

    def close(self) -> list[F]:
        """The items that end a stream which stopped without a run end: the ends of the blocks
        still open, then :meth:`_end` ``(None)``; nothing if the run end was encoded."""
        if self.finished:
            return []
        self._begin("")
        self._splitter.end()
        self._end(None)
        out, self._out = self._out, []
        return out

    def error_frames(self, error: ErrorEvent) -> bytes:
        """The items an :meth:`encode` that raised had made (block ends already taken from the
        splitter), then ``error`` and :meth:`close` as :meth:`ItemEncoder.error_frames`."""
        pending, self._out = self._out, []
        return b"".join(map(self.frame, pending)) + super().error_frames(error)


def encoded(stream: AsyncIterable[BaseEvent], encoder: Encoder) -> Stream[bytes]:
    """The body ``encoder`` writes for ``stream``, as a lazy stream of bytes.

    - Emits: the frames of each event, when the event arrives (none when they are ``b""``);
      one item per frame for an :class:`ItemEncoder`.
    - Completes: after :meth:`Encoder.close_frames` (when not empty; an :class:`ItemEncoder`'s
      terminator is an item of its own).
    - Fails: when ``stream`` raises an ``Exception``: after the frames of its ``ErrorEvent``
      (:func:`~streamops.operators.errors.error_event`) and the closing frames, with the
      exception itself; when the encoder raises, with its exception.
    - Cancels: when the consumer stops; ``stream`` is closed on every exit. Buffers nothing.

    An encoder holds one body's state: the stream can be iterated once. The encoding is a
    fused stage behind the one generator that watches ``stream`` for a failure.

    Marble: (``a b`` events, ``A B`` their frames, ``Z`` the closing frames, ``X`` a failure,
    ``E`` its ErrorEvent's frames)::

        a b |  ->  A B Z |
        a b X  ->  A B E Z X
    """

    def bind(down: Push, end: End) -> tuple[Push, End]:
        if isinstance(encoder, ItemEncoder):  # one bytes item per frame
            return _item_frames(encoder, down, end)
        encode = encoder.encode_frames

        def push(ev: Any) -> None:
            frames = encode(ev)
            if frames:
                down(frames)

        def flush() -> None:
            tail = encoder.close_frames()
            if tail:
                down(tail)
            end()

        return push, flush

    return Stream.from_async_iterable(stream) | errors_as_events(reraise=True) | Stage(bind, "encode")


def _item_frames(encoder: ItemEncoder[Any], down: Push, end: End) -> tuple[Push, End]:
    encode, frame = encoder.encode, encoder.frame

    def push(ev: Any) -> None:
        for item in encode(ev):
            down(frame(item))

    def flush() -> None:
        for item in encoder.close():
            down(frame(item))
        if encoder.terminator:
            down(encoder.terminator)
        end()

    return push, flush
