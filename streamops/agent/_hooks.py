"""The hooks of an agent run: callbacks for push-style users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


__all__ = ["Hook", "Hooks"]


Hook = Callable[[Any], Awaitable[object] | object]


@dataclass(slots=True, kw_only=True)
class Hooks:
    """Callbacks for push-style users; each may be sync or async.

    A hook that raises does not stop the run: the error is reported as an
    ``ErrorEvent(error_type="hook_error")`` in the stream (and to ``on_error``, unless it is
    ``on_error`` itself that failed).
    """

    on_stream_start: Hook | None = None
    """Called with the ``RunStart`` event."""
    on_chunk: Hook | None = None
    """Called with every event, before the consumer gets it."""
    on_stream_end: Hook | None = None
    """Called with the ``RunEnd`` event, however the run ended (also when the consumer left)."""
    on_error: Hook | None = None
    """Called with every ``ErrorEvent`` and ``ToolError`` (provider errors, failed tools,
    failed hooks, output validation)."""
