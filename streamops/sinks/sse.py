"""Server-Sent Events out: events as a ``text/event-stream`` body, and back.

The format is the WHATWG HTML Living Standard, section 9.2 "Server-sent events" (the same spec
:mod:`streamops.sse` decodes). Each event is written as::

    id: {run_id}:{seq}
    event: {kind}
    data: {to_json(event)}
    <empty line>

- ``id`` is unique within the body: ``{run_id}:{seq}`` (:func:`~streamops.sinks.resume.event_id`)
  for an event whose seq is new in its run, ``{run_id}:{seq}.{n}`` for one that repeats a seq
  (``smooth()`` chunks, ``count_tokens()`` estimates), ``n`` its position in the body, or in
  the run's log when a run of a registry is followed (the log's own ids, so a resume is exact:
  see :mod:`streamops.sinks.resume`). The run id is percent-encoded, so the id is printable
  ASCII and can be sent back as ``Last-Event-ID`` to resume (see
  :class:`~streamops.serve.runlog.RunRegistry`);
- ``event`` is the event's ``kind`` (one of :data:`streamops.events.EVENT_KINDS`), so a browser
  ``EventSource`` can ``addEventListener("text-delta", ...)``;
- ``data`` is the event's compact JSON, on one line.

Injection is impossible by construction: the spec ends a line at CR, LF or CRLF and the decoder
drops an ``id`` holding NUL. JSON escapes all three inside ``data``; the ``id`` is percent-encoded;
the ``event`` name is checked against the fixed list of kinds. A hostile run id or delta
(``"\\r\\n\\r\\ndata: evil"``) stays inside its own field.

:func:`sse_response` serves a stream (or a run in a registry) from starlette with heartbeats,
a ``retry:`` hint, resume from ``Last-Event-ID``, and a policy for a client that goes away;
:func:`sse_events` decodes such a body back into events, so a remote agent's stream can be
merged like a local one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any

from .._stream import Stream
from ..errors import EventValidationError
from ..events import EVENT_KINDS, BaseEvent, ErrorEvent, from_json, to_json
from .resume import DisconnectPolicy, EventIds, ResumableRun, ResumeUnavailableError

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["SSE_HEADERS", "SSEEncoder", "sse_events", "sse_response"]

SSE_HEADERS: dict[str, str] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
"""The response headers of an event stream (``X-Accel-Buffering: no`` stops nginx buffering it)."""


class SSEEncoder:
    """Sans-IO encoder of events into ``text/event-stream`` bytes (UTF-8).

    Args:
        retry_ms: the reconnection time to suggest to clients, in milliseconds (sent once by
            :meth:`preamble`); ``None`` sends none. Must be >= 0.

    An encoder numbers the events it encodes to give each a unique id (see :meth:`encode`):
    use one encoder per body (per response).

    Raises:
        ValueError: ``retry_ms`` is negative.
    """

    __slots__ = ("_ids", "retry_ms")

    def __init__(self, *, retry_ms: int | None = None) -> None:
        if retry_ms is not None and (not isinstance(retry_ms, int) or retry_ms < 0):
            raise ValueError(f"retry_ms must be a non-negative int, got {retry_ms!r}")
        self.retry_ms = retry_ms
        self._ids = EventIds()

    def encode(self, event: BaseEvent, *, eid: str | None = None) -> bytes:
        """One event as ``id:``, ``event:`` and ``data:`` lines and an empty line (bytes).

        ``eid``: the ``id`` to send, as given by a :class:`~streamops.serve.runlog.RunLog`
        (:meth:`~streamops.serve.runlog.RunLog.id_of`); it must be printable ASCII without
        spaces. When ``None``, the encoder gives the next id of its body: ``{run_id}:{seq}``
        when the seq is new in its run, else ``{run_id}:{seq}.{n}`` (``n``: how many events
        this encoder numbered before), so no two events of a body share an id.

        Raises:
            EventValidationError: ``event`` is not one of the event kinds (:data:`EVENT_KINDS`).
            ValueError: ``eid`` is empty, or holds a space or a character that is not
                printable ASCII (one that could end the ``id:`` line).
        """
        kind = getattr(event, "kind", None)
        if kind not in EVENT_KINDS or type(event) is not EVENT_KINDS[kind]:
            raise EventValidationError(f"not a streamops event: {type(event).__name__} (kind {kind!r})")
        if eid is None:
            eid = self._ids.next_id(event)
        elif not (eid and eid.isascii() and eid.isprintable()) or " " in eid:
            raise ValueError(f"an SSE event id must be printable ASCII without spaces, got {eid!r}")
        return b"".join(
            (
                b"id: ",
                eid.encode("ascii"),
                b"\nevent: ",
                kind.encode(),
                b"\ndata: ",
                to_json(event),
                b"\n\n",
            )
        )

    def encode_frames(self, event: BaseEvent) -> bytes:
        """:meth:`encode` with the encoder's own ids (the :class:`~streamops.sinks.encoder.Encoder`
        protocol)."""
        return self.encode(event)

    def close_frames(self) -> bytes:
        """Nothing: an SSE body ends with its last event."""
        return b""

    def error_frames(self, error: ErrorEvent) -> bytes:
        """The ``ErrorEvent`` encoded as any event (it is the body's last)."""
        return self.encode(error)

    def heartbeat(self) -> bytes:
        """A comment line and an empty line: keeps proxies from timing the connection out;
        clients ignore it (it dispatches nothing)."""
        return b": ping\n\n"

    def preamble(self) -> bytes:
        """What starts the body: the ``retry:`` hint if :attr:`retry_ms` is set, else ``b""``."""
        if self.retry_ms is None:
            return b""
        return b"retry: %d\n\n" % self.retry_ms


# ----------------------------------------------------------------------------------- decoding


async def _decode_sse(chunks: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncGenerator[BaseEvent, None]:
    from ..sse import aiter_sse

    events = aiter_sse(chunks)
    try:
        async for sse in events:
            yield from_json(sse.data)
    finally:
        await events.aclose()


def sse_events(chunks: AsyncIterable[bytes] | Iterable[bytes]) -> Stream[BaseEvent]:
    """Decode a ``text/event-stream`` body written by :class:`SSEEncoder` back into events.

    ``chunks``: the body as bytes chunks split anywhere (a sync or async iterable, such as
    ``response.aiter_bytes()`` of httpx). Decoding follows the WHATWG rules
    (:class:`streamops.sse.SSEDecoder`): comments (heartbeats) and ``retry:`` are skipped, an
    unfinished last event is dropped. The ``data`` of each event is read with
    :func:`~streamops.events.from_json`.

    Raises (while iterating, after every event before the bad one):
        EventValidationError: an event's data is not a valid event.
        TypeError: ``chunks`` is a bytes object itself (pass ``[body]``).
    """
    return Stream.defer(_decode_sse, chunks)


# ----------------------------------------------------------------------------------- responses


def sse_response(
    source: Stream[BaseEvent] | ResumableRun,
    *,
    last_event_id: str | None = None,
    heartbeat: float | None = 15.0,
    retry_ms: int | None = 3000,
    on_disconnect: DisconnectPolicy = "cancel",
) -> Response:
    """A starlette response streaming ``source`` as Server-Sent Events.

    Args:
        source: a stream (iterated by the response itself, from its start), or a
            :class:`~streamops.serve.runlog.RunHandle` of a :class:`~streamops.serve.runlog.RunRegistry`
            (followed: replayed after ``last_event_id``, then tailed live until the run ends).
        last_event_id: resume after this event id (the ``Last-Event-ID`` request header). For a
            run handle, when ``None``, the request's own ``Last-Event-ID`` header is used; ``""``
            means from the start.
        heartbeat: seconds of silence after which a comment line is sent (keeps proxies and
            load balancers from closing an idle connection); ``None`` sends none.
        retry_ms: the reconnection delay suggested to the client, in milliseconds (a ``retry:``
            line at the start); ``None`` sends none.
        on_disconnect: when the client goes away mid-stream. ``"cancel"``: a stream is closed at
            once (its ``finally`` blocks run, the provider request is closed); a run handle is
            cancelled (:meth:`~streamops.serve.runlog.RunHandle.cancel`) unless it was started
            with ``on_disconnect="continue"`` or other clients still follow it. ``"continue"``:
            a run handle keeps running in its registry, to be re-joined with
            ``Last-Event-ID``; a stream keeps being iterated to its end by this response, its
            events discarded (there is nobody to re-join it: use a registry for that).

    Needs starlette (the ``server`` extra); :class:`SSEEncoder` and :func:`sse_events` do not.

    Headers: ``Content-Type: text/event-stream``, ``Cache-Control: no-cache``,
    ``X-Accel-Buffering: no``, ``Connection: keep-alive``. If the stream raises, an ``ErrorEvent``
    (``error_type`` the exception's class name) is sent last.

    Raises:
        ResumeUnavailableError: ``last_event_id`` was given and the events after it cannot be
            delivered exactly once (evicted, another run's, malformed), or it was given with a
            stream (only a run handle can resume). When the id comes from the request header
            instead, the response is ``409 Conflict`` (an ``EventSource`` does not retry that).
        ValueError: ``heartbeat`` is not positive, ``retry_ms`` is negative, or
            ``on_disconnect`` is not ``"cancel"``/``"continue"``.
    """
    from ._asgi import RunFollowResponse, check_disconnect_policy, check_heartbeat, encoder_response

    check_heartbeat(heartbeat)
    check_disconnect_policy(on_disconnect)
    encoder = SSEEncoder(retry_ms=retry_ms)
    options: dict[str, Any] = {
        "headers": dict(SSE_HEADERS),
        "preamble": encoder.preamble(),
        "heartbeat": encoder.heartbeat(),
        "heartbeat_interval": heartbeat,
    }
    if isinstance(source, ResumableRun):
        if last_event_id is not None:
            source.log.check(last_event_id)
        log = source.log

        def encode_logged(event: BaseEvent) -> bytes:
            # The event was just yielded by the log's follow(), with no await since: still in
            # the log, under the id it was given there, the one a resume looks up.
            return encoder.encode(event, eid=log.id_of(event))

        return RunFollowResponse(source, encode_logged, last_event_id, on_disconnect, **options)
    if last_event_id:
        raise ResumeUnavailableError(
            "a plain stream cannot be resumed from Last-Event-ID: start it in a RunRegistry and serve the RunHandle",
            last_event_id,
        )
    return encoder_response(source, encoder, on_disconnect=on_disconnect, **options)
