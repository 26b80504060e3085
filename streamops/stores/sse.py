"""Serving a stored run as Server-Sent Events: the ids are the store's, so a client resumes
with ``Last-Event-ID`` on any server process that opens the same store, or after a restart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UnknownRunError
from ..sinks.resume import ResumeUnavailableError
from ..sinks.sse import SSE_HEADERS, SSEEncoder
from ._base import RunStore

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

__all__ = ["store_sse_response"]


def store_sse_response(
    store: RunStore,
    run_id: str,
    *,
    last_event_id: str | None = None,
    heartbeat: float | None = 15.0,
    retry_ms: int | None = 3000,
) -> Response:
    """A starlette response streaming the stored run ``run_id`` as SSE: the events after
    ``last_event_id`` (``None``: the request's ``Last-Event-ID`` header; ``""``/absent: from the
    start), then the live tail until the run ends. Each event's ``id:`` is its store id.

    Answers ``404`` when the run is unknown (never started, expired) and ``409 Conflict`` when
    the id cannot be resumed exactly (malformed, another run's, never sent, evicted): the
    statuses of :func:`~streamops.sinks.sse.sse_response`, never a 500. A follower that falls
    behind retention mid-body ends the body (it reconnects and gets the 409). A client going
    away never cancels the run (its producer may be another process).

    Raises:
        ValueError: ``heartbeat`` is not positive or ``retry_ms`` is negative.
    """
    from starlette.responses import Response

    from ..sinks._asgi import EventStreamResponse, Write, check_heartbeat

    check_heartbeat(heartbeat)
    encoder = SSEEncoder(retry_ms=retry_ms)

    class _StoreResponse(EventStreamResponse):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal last_event_id
            if last_event_id is None:
                for name, value in scope.get("headers", ()):
                    if name.lower() == b"last-event-id":
                        last_event_id = value.decode("latin-1")
                        break
            try:
                info = await store.info(run_id)
                store._position(info, last_event_id)
            except UnknownRunError as exc:
                await Response(str(exc), status_code=404, media_type="text/plain")(scope, receive, send)
                return
            except ResumeUnavailableError as exc:
                await Response(str(exc), status_code=409, media_type="text/plain")(scope, receive, send)
                return
            await super().__call__(scope, receive, send)

    async def produce(write: Write) -> None:
        try:
            async with store.entries(run_id, last_event_id).iterate() as it:
                async for eid, event in it:
                    await write(encoder.encode(event, eid=eid))
        except ResumeUnavailableError:
            return

    options: dict[str, Any] = {
        "headers": dict(SSE_HEADERS),
        "preamble": encoder.preamble(),
        "heartbeat": encoder.heartbeat(),
        "heartbeat_interval": heartbeat,
    }
    return _StoreResponse(produce, on_disconnect="cancel", **options)
