"""Newline-delimited JSON (NDJSON, ``application/x-ndjson``): one event's JSON per line, and back.

Each line is :func:`~streamops.events.to_json` of one event followed by ``\\n``. Compact JSON
never contains a raw newline (JSON escapes control characters inside strings), so a line is
always exactly one event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from types import GeneratorType
from typing import TYPE_CHECKING

from .._stream import Stream
from ..events import BaseEvent, ErrorEvent, from_json, to_json, utf8
from .resume import DisconnectPolicy

if TYPE_CHECKING:
    from starlette.responses import StreamingResponse

__all__ = ["NDJSON_HEADERS", "NDJSONEncoder", "ndjson_encode", "ndjson_events", "ndjson_response"]

NDJSON_HEADERS: dict[str, str] = {
    "Content-Type": "application/x-ndjson",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
"""The response headers of an NDJSON stream."""


def ndjson_encode(event: BaseEvent) -> bytes:
    """One event as one line of UTF-8 JSON: ``to_json(event) + b"\\n"``."""
    return to_json(event) + b"\n"


class NDJSONEncoder:
    """The :class:`~streamops.sinks.encoder.Encoder` of an NDJSON body: one line per event
    (:func:`ndjson_encode`), nothing at the end, the ``ErrorEvent`` line for a failure."""

    __slots__ = ()

    def encode_frames(self, event: BaseEvent) -> bytes:
        """One event's line."""
        return to_json(event) + b"\n"

    def close_frames(self) -> bytes:
        """Nothing: the body ends with its last line."""
        return b""

    def error_frames(self, error: ErrorEvent) -> bytes:
        """The ``ErrorEvent``'s line."""
        return to_json(error) + b"\n"


def ndjson_response(stream: Stream[BaseEvent], *, on_disconnect: DisconnectPolicy = "cancel") -> StreamingResponse:
    """A starlette response streaming ``stream`` as NDJSON (``Content-Type: application/x-ndjson``).

    The stream is iterated by the response (``stream.iterate()``, so operators that run tasks
    work). When the client goes away, ``"cancel"`` closes the stream at once (its ``finally``
    blocks run, the provider request is closed); ``"continue"`` keeps iterating it to its end,
    discarding the events. If the stream raises, an ``ErrorEvent`` line (``error_type`` the
    exception's class name) is written last.

    Raises:
        ValueError: ``on_disconnect`` is not ``"cancel"`` or ``"continue"``.
    """
    from ._asgi import encoder_response

    return encoder_response(stream, NDJSONEncoder(), headers=dict(NDJSON_HEADERS), on_disconnect=on_disconnect)


def _as_bytes(chunk: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(chunk, str):
        return utf8(chunk)
    return bytes(chunk)


async def _decode(
    chunks: AsyncIterable[bytes | str] | Iterable[bytes | str],
) -> AsyncGenerator[BaseEvent, None]:
    if isinstance(chunks, bytes | bytearray | memoryview | str):
        raise TypeError("ndjson_events() takes an iterable of lines or chunks, not one body: pass [body]")
    pending: list[bytes] = []

    def lines(chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            if chunk:
                pending.append(chunk)
            return []
        parts = chunk.split(b"\n")
        last = parts.pop()
        if pending:
            pending.append(parts[0])
            parts[0] = b"".join(pending)
            pending.clear()
        if last:
            pending.append(last)
        return parts

    def decode(line: bytes) -> BaseEvent | None:
        line = line.strip()  # \r of CRLF, blank lines, surrounding whitespace
        if not line:
            return None
        return from_json(line)

    if isinstance(chunks, AsyncIterable):
        ait = aiter(chunks)
        try:
            async for chunk in ait:
                for line in lines(_as_bytes(chunk)):
                    event = decode(line)
                    if event is not None:
                        yield event
        finally:
            aclose = getattr(ait, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        it = iter(chunks)
        try:
            for chunk in it:
                for line in lines(_as_bytes(chunk)):
                    event = decode(line)
                    if event is not None:
                        yield event
        finally:
            if isinstance(it, GeneratorType):
                it.close()
    event = decode(b"".join(pending))
    if event is not None:
        yield event


def ndjson_events(lines_or_chunks: AsyncIterable[bytes | str] | Iterable[bytes | str]) -> Stream[BaseEvent]:
    """Decode NDJSON back into events.

    ``lines_or_chunks``: lines, or chunks of the body split anywhere (a line may span several
    chunks; a chunk may hold several lines), as ``bytes`` or ``str``, sync or async (such as
    ``response.aiter_bytes()`` of httpx). Lines end with LF or CRLF; blank lines are skipped; a
    last line without a line end is decoded too.

    Raises (while iterating, after every event before the bad line):
        EventValidationError: a line is not JSON, or not a valid event.
        TypeError: ``lines_or_chunks`` is one ``bytes``/``str`` body itself (pass ``[body]``).
    """
    return Stream.defer(_decode, lines_or_chunks)
