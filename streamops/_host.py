"""The task host: where operators that own tasks (merge, time windows, prefetch) start them.

A terminal (``collect()``, ``run()``, ``first()``, ``last()``, ``iterate()``, the sync bridge)
opens an anyio task group in the consumer's own frame (a coroutine or an async context
manager, never an async generator) and publishes it in a context variable for the duration of
the iteration. Operators that need background tasks start them there with
:func:`current_host`, and cancel and await them when their own generator is closed. So no cancel
scope or task group is ever held across the ``yield`` of an async generator (PEP 789), and the
tasks never outlive the terminal that pulled them.

A bare ``async for`` over such a stream has no host: those operators raise
:class:`TaskHostRequired`, whose message says what to write instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from .errors import TaskHostRequired

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["TaskHostRequired", "current_host", "hosted"]

_HOST: ContextVar[TaskGroup | None] = ContextVar("streamops_task_host", default=None)


@asynccontextmanager
async def hosted() -> AsyncIterator[TaskGroup]:
    """Open a task group and make it the current host until the block exits.

    On exit, tasks still running (started by an iterator that was never closed) are cancelled.
    An exception from the block (or a single failing task) propagates as itself, not wrapped
    in an exception group; several at once propagate as the group.
    """
    import anyio  # imported here: `import streamops` stays light

    try:
        async with anyio.create_task_group() as tg:
            token = _HOST.set(tg)
            try:
                yield tg
            finally:
                _HOST.reset(token)
                # Operators cancel and await their own tasks when their stream is closed; what
                # is still running here belongs to an iterator nobody closed: cancel it.
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        one = _unwrap(group, anyio.get_cancelled_exc_class())
        if one is group:
            raise
        raise one from None


def _unwrap(group: BaseExceptionGroup[BaseException], cancelled: type[BaseException]) -> BaseException:
    """What :func:`hosted` raises for the group its task group raised.

    anyio wraps even a lone exception of the block in a group: it is raised as itself. On trio
    a failure that meets a cancellation (a source fails just as the consumer's deadline passes)
    comes as ``[error, Cancelled]``, and the outer cancel scope would strip the ``Cancelled``
    and leave ``ExceptionGroup([error])``: the failure wins and is raised as itself (the
    cancellation is level-triggered, so the next checkpoint inside the cancelled scope raises
    it again; nothing is lost). Several failures stay a group.
    """
    if len(group.exceptions) == 1:
        return group.exceptions[0]
    _, failures = group.split(cancelled)
    if (
        failures is not None
        and len(failures.exceptions) == 1
        and not isinstance(failures.exceptions[0], BaseExceptionGroup)
    ):
        return failures.exceptions[0]
    return group


def current_host(operator: str) -> TaskGroup:
    """The task group of the terminal that is pulling this stream.

    Raises:
        TaskHostRequired: the stream is iterated by a bare ``async for``.
    """
    tg = _HOST.get()
    if tg is None:
        raise TaskHostRequired(operator)
    return tg
