"""Errors as events: turning a failing stream into one that ends with an ``ErrorEvent``."""

from __future__ import annotations

from ..events import BaseEvent, ErrorEvent

__all__ = ["error_event"]


def error_event(exc: BaseException, last: BaseEvent | None) -> ErrorEvent:
    """The ``ErrorEvent`` that stands for ``exc``, raised by a stream after ``last`` (``None``:
    before any event): same run and agent as ``last``, the next seq (0 with no ``last``),
    ``error_type`` the exception's class name, ``message`` its ``str()``."""
    return ErrorEvent(
        run_id=last.run_id if last is not None else "",
        agent=last.agent if last is not None else "",
        seq=last.seq + 1 if last is not None else 0,
        error_type=type(exc).__name__,
        message=str(exc),
    )
