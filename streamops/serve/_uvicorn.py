"""A request-head timeout for uvicorn (issue 13 item 9b).

uvicorn (0.3x-0.5x) bounds a request head's *size* (h11's 16 KiB ``h11_max_incomplete_event_size``)
and the idle time *between* requests (``timeout_keep_alive``, cancelled by the first byte of the
next request), but not the time a client takes to send a head: a client that sends one byte of
header every few seconds holds its connection (and a file descriptor) forever, and 200 such
clients exhaust a small server. nginx calls the missing setting ``client_header_timeout``
(default 60 s).

:func:`head_timeout_protocol` builds a subclass of uvicorn's own HTTP protocol (httptools when
installed, else h11, as uvicorn's ``http="auto"`` picks) that closes a connection whose next
request head is not complete ``seconds`` after the server started waiting for it: when the
connection opened, and each time a response completed. Pass it to uvicorn as
``uvicorn.Config(app, http=head_timeout_protocol(10))``; ``streamops serve --head-timeout``
does. The protocol of a connection upgraded to a WebSocket is uvicorn's WebSocket one, which
this leaves alone.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

__all__ = ["DEFAULT_HEAD_TIMEOUT", "HEAD_TIMEOUT_ENV", "env_protocol_path", "head_timeout_protocol"]

DEFAULT_HEAD_TIMEOUT = 10.0
"""Seconds a client has to send a request head (method, target, headers). Browsers and HTTP
clients send a head in one write; 10 s leaves room for a slow mobile link."""

HEAD_TIMEOUT_ENV = "STREAMOPS_HEAD_TIMEOUT"
"""Environment variable the protocol of ``head_timeout_protocol(None)`` reads its seconds
from (``streamops serve --processes N`` sets it for its worker processes)."""


def _auto_base() -> type[asyncio.Protocol]:
    """uvicorn's ``http="auto"`` choice: httptools when importable, else h11."""
    try:
        import httptools  # type: ignore[import-not-found]  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def head_timeout_protocol(
    seconds: float | None = DEFAULT_HEAD_TIMEOUT, base: type[asyncio.Protocol] | None = None
) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class that closes a connection whose request head takes longer
    than ``seconds`` (see the module docstring).

    Args:
        seconds: the head timeout; ``None``: read from ``$STREAMOPS_HEAD_TIMEOUT`` for each
            connection (default :data:`DEFAULT_HEAD_TIMEOUT` when unset).
        base: uvicorn's protocol class to extend (``H11Protocol`` or ``HttpToolsProtocol``);
            default: what uvicorn's ``http="auto"`` picks.

    Raises:
        ValueError: ``seconds`` is not positive.
    """
    if seconds is not None and not seconds > 0:
        raise ValueError(f"the head timeout must be a positive number of seconds, not {seconds!r}")
    parent: Any = base or _auto_base()

    class HeadTimeoutProtocol(parent):  # type: ignore[misc]
        head_timeout = seconds

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer: asyncio.TimerHandle | None = None
            # uvicorn's protocols keep the request being answered in ``cycle`` (None before the
            # first head); without it, nothing is cut rather than live requests
            self._head_watch = hasattr(self, "cycle")
            limit = self.head_timeout
            if limit is None:
                limit = float(os.environ.get(HEAD_TIMEOUT_ENV, DEFAULT_HEAD_TIMEOUT))
            self._head_seconds: float = limit

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            if not self._head_watch or self.transport.is_closing():
                return
            waiting_on = self.cycle
            self._head_timer = self.loop.call_later(self._head_seconds, self._head_timed_out, waiting_on)

        def _head_timed_out(self, waiting_on: Any) -> None:
            self._head_timer = None
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:  # closed, or a WebSocket now
                return
            if self.cycle is not waiting_on:  # a new request's head arrived meanwhile
                return
            if waiting_on is not None and not waiting_on.response_complete:  # a pipelined request is in flight
                return
            transport.close()

    HeadTimeoutProtocol.__qualname__ = HeadTimeoutProtocol.__name__ = f"HeadTimeout{parent.__name__}"
    return HeadTimeoutProtocol


def env_protocol_path() -> str:
    """The import path (``module:attribute``) of a protocol class whose timeout comes from
    ``$STREAMOPS_HEAD_TIMEOUT``, for uvicorn's ``http=`` option when it starts worker processes
    (they import the class by that path)."""
    return f"{__name__}:EnvHeadTimeout"


def __getattr__(name: str) -> Any:
    if name == "EnvHeadTimeout":
        cls = head_timeout_protocol(None)
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
