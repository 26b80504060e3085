"""Errors as events: a stream that fails becomes one that ends with an ``ErrorEvent``.

:func:`errors_as_events` is what every sink uses to put a failure on the wire (an SSE ``error``
event, an AG-UI ``RUN_ERROR``, a Vercel ``error`` part, an OpenAI error chunk, an A2A ``failed``
status) instead of each writing its own "the source raised, so append an error event" loop;
:func:`error_event` builds that event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable

from .._stream import Stream, aclose_iterator
from ..events import BaseEvent, ErrorEvent, envelope

__all__ = ["error_event", "errors_as_events"]


def error_event(exc: BaseException, last: BaseEvent | None) -> ErrorEvent:
    """The ``ErrorEvent`` that stands for ``exc``, raised by a stream after ``last`` (``None``:
    before any event): ``last``'s envelope (run, agent, every envelope field but ``ts`` and
    ``raw``: see :func:`~streamops.events.envelope`), the next seq (0 with no ``last``),
    ``error_type`` the exception's class name, ``message`` its ``str()`` (its ``repr()`` when
    that is empty: ``TimeoutError()`` says more than nothing)."""
    message = str(exc) or repr(exc)
    if last is None:
        return ErrorEvent(error_type=type(exc).__name__, message=message)
    return ErrorEvent(
        **envelope(last, seq=last.seq + 1, ts=time.time(), raw=None), error_type=type(exc).__name__, message=message
    )


def errors_as_events(*, reraise: bool = False) -> Callable[[Stream[BaseEvent]], Stream[BaseEvent]]:
    """Turn a failing upstream into an :class:`~streamops.events.ErrorEvent` and the end.

    - Emits: every upstream event, unchanged, when it arrives; when the upstream raises an
      ``Exception``, one ``ErrorEvent`` for it (:func:`error_event`: the run and agent of the
      last event, the next seq, ``error_type`` the exception's class name).
    - Completes: when the upstream completes, or right after that ``ErrorEvent``.
    - Fails: only with ``reraise=True``: after the ``ErrorEvent``, with the upstream's
      exception itself (for a sink that must still see the failure, e.g. to end its body
      differently). ``BaseException`` s that are not ``Exception`` (cancellation,
      ``KeyboardInterrupt``) are never turned into events.
    - Cancels: when the downstream stops; the upstream is closed on every exit, before the
      ``ErrorEvent`` is emitted when it failed. Buffers nothing.

    Marble: (``a b`` then a ``ValueError`` X; E its ``ErrorEvent``)::

        a b X  | errors_as_events()              ->  a b E |
        a b X  | errors_as_events(reraise=True)  ->  a b E X
        a b |  | errors_as_events()              ->  a b |
    """

    def apply(stream: Stream[BaseEvent]) -> Stream[BaseEvent]:
        return Stream.defer(_errors_as_events, stream, reraise)

    return apply


async def _errors_as_events(source: AsyncIterable[BaseEvent], reraise: bool) -> AsyncGenerator[BaseEvent, None]:
    it = aiter(source)
    last: BaseEvent | None = None
    try:
        async for last in it:
            yield last
    except Exception as exc:
        await aclose_iterator(it)
        yield error_event(exc, last)
        if reraise:
            raise
    finally:
        await aclose_iterator(it)
