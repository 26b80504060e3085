"""The async drivers behind every adapter function: :func:`drive_sse` for raw SSE bytes and
:func:`drive_payloads` for SDK stream objects (or dicts). ``parse_sse``, ``parse_payloads``
and each ``parse_<api>_sse`` / ``parse_<api>_sdk`` / ``parse_litellm`` are one call to one of
them; what differs between SDKs is a row of :data:`SDK_HOOKS`.

Both drivers:

- accept a sync or async iterable (``drive_sse`` also one ``bytes`` body); a sync one that
  is not an in-memory container (a sync SDK stream, ``httpx``'s ``iter_raw()``) is read on
  a thread of its own, in one context, one ``next()`` per item, so a blocking read never
  blocks the event loop (see :class:`_SyncReader`);
- yield each event as soon as the input completing it is read, and stop reading once the
  parser has emitted the run end;
- on malformed input (``on_malformed="raise"``) yield every event before it, then raise the
  :class:`~streamops.errors.StreamFormatError` / :class:`~streamops.errors.TruncatedStreamError`;
- close what they read from in ``finally`` (exhausted, stopped early, failed or cancelled),
  shielded from cancellation for at most :data:`CLEANUP_SECONDS`: the iterator they took, an
  ``openai``/``anthropic`` ``AsyncStream``'s internal generator (whose ``finally`` closes the
  HTTP response), and the source object itself. A sync iterator is closed only if it is a
  generator, so a file object passed in is left open; if the consumer left while a sync
  read was blocked, the source object is closed at once (aborting an HTTP read) and the
  iterator on the reader's thread when that read returns. Every close is attempted even if
  one raises (:func:`close_quietly`).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, cast

import anyio

from streamops.errors import StreamFormatError
from streamops.events import BaseEvent

from ._base import ParserOptions
from ._owner import OwnerThread, wait_for
from ._sansio import API, PayloadParser, SSEParser

if TYPE_CHECKING:
    from streamops.events import Event

__all__ = [
    "CLEANUP_SECONDS",
    "SDK",
    "SDK_HOOKS",
    "SDKHooks",
    "SSESource",
    "close_quietly",
    "drive_payloads",
    "drive_sse",
    "openai_error_body",
]

T = TypeVar("T")

SSESource: TypeAlias = bytes | Iterable[bytes] | AsyncIterable[bytes]
"""A raw SSE body: one ``bytes``, or byte chunks split anywhere (``httpx``'s ``aiter_raw()``)."""

CLEANUP_SECONDS = 5.0
"""Cleanup (closing a source or an SDK stream) runs shielded from cancellation, for at most
this long, so a cancelled consumer still releases the provider's connection."""

_MAX_CHAIN = 16
"""How many exceptions of a chain (``__cause__``, ``__context__``, LiteLLM's
``original_exception``) are searched for the provider's in-stream error."""


# ---------------------------------------------------------------------- closing and iterating
async def close_quietly(*objs: Any) -> None:
    """Close each of ``objs`` that can be closed (``aclose()``, else ``close()``; awaited when
    it returns an awaitable; ``None`` is skipped), shielded from cancellation for at most
    :data:`CLEANUP_SECONDS`.

    Every close is attempted, also after an earlier one raised (a failing SDK stream must not
    leave the HTTP response or the source open). Then the first error is re-raised, with a note
    for each later one. Closes cut short by the :data:`CLEANUP_SECONDS` deadline end quietly:
    the shielding scope absorbs its own cancellation, as it always did.
    """
    first: BaseException | None = None
    cancelled: BaseException | None = None  # the deadline's: the shielded scope absorbs it
    with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
        cancelled_exc = anyio.get_cancelled_exc_class()
        for obj in objs:
            close = getattr(obj, "aclose", None) or getattr(obj, "close", None)
            if close is None:
                continue
            try:
                res = close()
                if inspect.isawaitable(res):
                    await res
            except cancelled_exc as exc:  # the deadline passed: the rest still get a (cancelled) close
                cancelled = cancelled or exc
            except BaseException as exc:
                if first is None:
                    first = exc
                else:
                    first.add_note(f"closing {type(obj).__name__} also raised {type(exc).__name__}: {exc}")
        error, first, cancelled = first or cancelled, None, None
        if error is not None:
            try:
                raise error
            finally:
                del error  # no reference cycle through this frame


_IN_MEMORY: tuple[type[Any], ...] = (
    list, tuple, range, dict, set, frozenset, str, bytes, type(iter(())), type(iter([])),
)  # fmt: skip
"""Sync iterables whose iteration cannot block (no I/O behind ``next()``): iterated on the
event loop. Any other sync iterable is read in a worker thread (see :class:`_SyncReader`)."""

_END: Any = object()
"""What :meth:`_SyncReader.next` returns at the end (``StopIteration`` cannot cross a thread
boundary into a future)."""


class _SyncReader:
    """Reads a sync iterator on a thread of its own (an :class:`OwnerThread`, started on the
    first read), one ``next()`` per item, so a blocking read (an SDK's sync stream, ``httpx``'s
    ``iter_raw()``, a socket) never blocks the event loop.

    Every ``next()`` and the final close run on that one thread and in one
    :class:`contextvars.Context` (a copy of the reader's creator's): an iterator that sets a
    context variable in one ``next()`` (a tracing span) sees it in the next and can reset it,
    and one that is not thread-safe is never entered by two threads. An iterator bound to the
    thread that made it (an sqlite cursor made on the loop's thread) cannot be read here:
    pass a list or an async iterable instead.

    :meth:`stop` ends the reading. If a ``next()`` is still blocked (the consumer was
    cancelled), the source object (not the iterator: a generator cannot be closed while it
    runs) is closed at once from the caller, which aborts the blocking read of an HTTP
    response, and the iterator is closed on the reader's thread once that ``next()`` returns;
    the thread then ends.
    """

    __slots__ = ("_it", "_objs", "_thread")

    def __init__(self, it: Iterator[Any], closeable: tuple[Any, ...]) -> None:
        self._it = it
        self._objs = closeable
        self._thread: OwnerThread | None = None

    async def next(self) -> Any:
        """The next item, or :data:`_END`. A cancellation abandons the wait at once (the
        ``next()`` runs on to its end on the reader's thread)."""
        thread = self._thread
        if thread is None:
            thread = self._thread = OwnerThread("streamops-sync-source", context=contextvars.copy_context())
            thread.start()
        it = self._it
        return await wait_for(thread.submit(lambda: next(it, _END)), shield=False)

    async def stop(self) -> None:
        """Close the iterator and the source (on the reader's thread, waited for up to
        :data:`CLEANUP_SECONDS`, shielded) and end the thread. If a ``next()`` is still
        running, the source is closed from here first and the rest is not waited for."""
        thread = self._thread
        if thread is None:  # never read: nothing runs, close here
            await close_quietly(*self._objs)
            return
        self._thread = None
        busy = thread.running or not thread.jobs.empty()
        if busy:
            _close_now(self._objs[1])  # aborts a blocking HTTP read; the iterator waits its turn
        closing = thread.submit(self._close_on_thread)
        thread.stop()
        if not busy:
            with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
                await wait_for(closing, shield=True)
            if closing.done() and closing.exception() is not None:
                raise cast(BaseException, closing.exception())

    def _close_on_thread(self) -> None:
        first: BaseException | None = None
        for obj in self._objs:
            try:
                _close_now(obj, swallow=False)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first


def _close_now(obj: Any, *, swallow: bool = True) -> None:
    """``obj.close()`` (a coroutine it returns is closed unawaited: no loop here), if it has
    one; with ``swallow``, an exception is dropped (nobody is left to receive it)."""
    close = getattr(obj, "close", None)
    if close is None:
        return
    try:
        res = close()
        if inspect.iscoroutine(res):
            res.close()
    except Exception:
        if not swallow:
            raise


async def _iterate(source: Iterable[T] | AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """The items of a sync or async iterable; closes what it read from however it stops (see
    the module docstring).

    A sync iterable is read in worker threads (one ``next()`` per item, see
    :class:`_SyncReader`), except in-memory containers (:data:`_IN_MEMORY`: lists, tuples,
    a whole ``bytes`` body...), whose iteration cannot block and is done on the loop.
    """
    if isinstance(source, AsyncIterable):
        ait = aiter(source)
        try:
            async for item in ait:
                yield item
        finally:
            inner = getattr(source, "_iterator", None)  # the SDKs' AsyncStream generator
            await close_quietly(
                ait,
                inner if inspect.isasyncgen(inner) and inner is not ait else None,
                None if source is ait else source,
            )
        return
    it = iter(source)
    closeable = (it if isinstance(it, GeneratorType) else None, None if source is it else source)
    if isinstance(source, _IN_MEMORY):
        try:
            for item in it:
                yield item
        finally:
            await close_quietly(*closeable)
        return
    reader = _SyncReader(it, closeable)
    try:
        while True:
            item = await reader.next()
            if item is _END:
                break
            yield item
    finally:
        await reader.stop()


def _step(
    parser: SSEParser | PayloadParser, call: Callable[..., list[Any]], *args: Any
) -> tuple[list[Event], StreamFormatError | None]:
    """``call(*args)`` -> (its events, ``None``); if it raises a format error, (the events
    before the bad input, the error), for the driver to yield and then raise."""
    try:
        return call(*args), None
    except StreamFormatError as exc:
        return cast("list[Event]", parser.out), exc


async def _drive(
    parser: SSEParser | PayloadParser,
    source: Iterable[Any] | AsyncIterable[Any],
    feed: Callable[[Any], list[Any]],
    recover: Callable[[Exception], list[Any]] | None = None,
) -> AsyncGenerator[Event, None]:
    """The one loop: ``feed`` each item of ``source`` to ``parser`` and yield the events, then
    those of ``parser.close()`` (see the module docstring). ``recover(exc)``, for an exception
    raised while reading, returns the events it stands for, or re-raises it."""
    items = _iterate(source)
    try:
        try:
            async for item in items:
                out, err = _step(parser, feed, item)
                for ev in out:
                    yield ev
                if err is not None:
                    raise err
                if parser.ended:
                    break
        except Exception as exc:
            if recover is None or isinstance(exc, StreamFormatError):
                raise
            out, err = _step(parser, recover, exc)
            for ev in out:
                yield ev
            if err is not None:
                raise err from exc
        out, err = _step(parser, parser.close)
        for ev in out:
            yield ev
        if err is not None:
            raise err
    finally:
        await items.aclose()


def drive_sse(source: SSESource, api: API | Literal["auto"], options: ParserOptions) -> AsyncGenerator[Event, None]:
    """The events of a raw SSE body, parsed by :class:`~._sansio.SSEParser` ``(api,
    **options)`` (``api="auto"``: detected from the first events)."""
    parser = SSEParser(api, **options)
    chunks = (bytes(source),) if isinstance(source, bytes | bytearray | memoryview) else source
    return _drive(parser, chunks, parser.feed)


def drive_payloads(
    source: Iterable[Any] | AsyncIterable[Any], api: API | Literal["auto"], options: ParserOptions, sdk: SDK
) -> AsyncGenerator[Event, None]:
    """The events of an SDK stream (or of dicts), parsed by :class:`~._sansio.PayloadParser`
    ``(api, **options)``; ``sdk`` names the row of :data:`SDK_HOOKS` that turns items into
    payloads and in-stream SDK exceptions into error payloads."""
    parser = PayloadParser(api, **options)
    hooks = SDK_HOOKS[sdk]
    dump, skip, error_payload = hooks.dump, hooks.skip, hooks.error_payload

    def feed(item: Any) -> list[BaseEvent]:
        payload = dump(item)
        if skip and type(payload) is dict and payload.get("type") in skip:
            return []
        return parser.feed(payload)

    def recover(exc: Exception) -> list[BaseEvent]:
        error = error_payload(exc)
        if error is None:
            raise exc
        return parser.feed(error[1], error[0])

    return _drive(parser, source, feed, recover)


# ---------------------------------------------------------------------- per-SDK hooks
def _dumper(**kwargs: Any) -> Callable[[Any], Any]:
    """An item -> payload function: a dict as it is, else ``model_dump(**kwargs)`` (pydantic
    SDKs), else ``to_dict()``, else the item (the parser reports what it cannot read)."""

    def dump(item: Any) -> Any:
        if isinstance(item, dict):
            return item
        model_dump = getattr(item, "model_dump", None)
        if model_dump is not None:
            return model_dump(**kwargs)
        to_dict = getattr(item, "to_dict", None)
        return item if to_dict is None else to_dict()

    return dump


def openai_error_body(exc: BaseException) -> dict[str, Any] | None:
    """The error object of an in-stream error the ``openai`` SDK raised as a plain
    ``openai.APIError`` (it raises on any chunk with an ``error`` field); ``None`` for other
    exceptions (connection and HTTP status errors propagate)."""
    try:
        import openai
    except ImportError:  # pragma: no cover - the SDK raised it, so it is installed
        return None
    if type(exc) is not openai.APIError:
        return None
    body = exc.body
    if isinstance(body, dict):
        return body
    return {"message": exc.message, "type": "api_error"}


def _chained_openai_error_body(exc: BaseException) -> dict[str, Any] | None:
    """:func:`openai_error_body` of the first exception of ``exc``'s chain that has one
    (LiteLLM wraps the ``openai.APIError`` in exceptions of its own)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < _MAX_CHAIN:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        body = openai_error_body(e)
        if body is not None:
            return body
        original = getattr(e, "original_exception", None)
        todo.extend([e.__context__, e.__cause__, original if isinstance(original, BaseException) else None])
    return None


ErrorPayload: TypeAlias = tuple[str | None, dict[str, Any]]
"""An SSE event name (or ``None``) and the payload to feed the parser, as if it came in the
stream."""


def _no_error_payload(exc: BaseException) -> ErrorPayload | None:
    return None


def _chat_error(exc: BaseException) -> ErrorPayload | None:
    body = openai_error_body(exc)
    return None if body is None else ("error", {"error": body})


def _responses_error(exc: BaseException) -> ErrorPayload | None:
    body = openai_error_body(exc)
    return None if body is None else (None, {"type": "error", "error": body})


def _litellm_error(exc: BaseException) -> ErrorPayload | None:
    body = _chained_openai_error_body(exc)
    return None if body is None else ("error", {"error": body})


@dataclass(frozen=True, slots=True)
class SDKHooks:
    """What :func:`drive_payloads` does differently for one SDK."""

    dump: Callable[[Any], Any]
    """One item of the stream -> the payload fed to the parser."""
    error_payload: Callable[[BaseException], ErrorPayload | None] = _no_error_payload
    """An exception raised by the stream -> the error payload it stands for (fed to the parser,
    which ends the run as failed), or ``None``: the exception propagates."""
    skip: frozenset[str] = frozenset()
    """Payload ``type`` values that are not wire events (skipped)."""


SDK: TypeAlias = Literal["generic", "openai-chat", "openai-responses", "anthropic", "gemini", "litellm"]

ANTHROPIC_HELPER_EVENTS = frozenset({"text", "thinking", "signature", "input_json", "citation"})
"""Event types the ``anthropic`` SDK's ``MessageStream`` adds on top of the wire events (each
repeats a delta with a snapshot)."""

SDK_HOOKS: dict[SDK, SDKHooks] = {
    # parse_payloads: any SDK's objects, or dicts.
    "generic": SDKHooks(_dumper(mode="json", exclude_unset=True, by_alias=True)),
    # openai builds objects without validation: a newer item type must not warn. It raises
    # openai.APIError on an in-stream error chunk/event.
    "openai-chat": SDKHooks(_dumper(warnings=False), _chat_error),
    "openai-responses": SDKHooks(_dumper(warnings=False), _responses_error),
    # The MessageStream helper events repeat the wire deltas; an `event: error` frame makes
    # the SDK raise anthropic.APIStatusError, which propagates.
    "anthropic": SDKHooks(_dumper(), skip=ANTHROPIC_HELPER_EVENTS),
    # google-genai objects -> the REST camelCase dicts the parser reads.
    "gemini": SDKHooks(_dumper(mode="json", by_alias=True, exclude_none=True)),
    # LiteLLM's ModelResponseStream chunks; its exceptions wrap openai.APIError.
    "litellm": SDKHooks(_dumper(), _litellm_error),
}
"""One row per SDK: how :func:`drive_payloads` reads its stream."""
