"""The server's request limits (issue 13 item 9): request bodies read incrementally up to a
size limit and within a time limit, JSON decoded with a depth limit, and one count of the runs
that every run-starting route (Chat Completions, A2A ``message/stream`` and ``message/send``)
draws from.

Sans-IO where it can be: :func:`decode_json` and :class:`RunLimit` do no I/O;
:func:`read_body` is the thin async part (starlette's ``Request.stream()``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from .runlog import RunLimitError

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "BodyError",
    "RunLimit",
    "decode_json",
    "read_body",
]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""Request body limit, in bytes (4 MiB): a Chat Completions request of about a million
characters of prompt, far past SmolLM2's 8,192-token context and close to the largest
context windows served today. Past it: HTTP 413."""

DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a client has to send a whole request body once its head arrived. Past it: HTTP
408 (a client trickling its body would otherwise hold a connection and a handler forever)."""

MAX_JSON_DEPTH = 100
"""Nesting depth (objects and arrays) a request body may have. The deepest real requests
(a tool's JSON schema inside ``tools``) nest about 10-20 levels; Python's own decoder fails
near 1,000, and code that walks a decoded value recursively (pydantic, encoders) earlier."""


class BodyError(Exception):
    """A request body the server will not take: ``status`` is the HTTP status (400, 408, 413),
    ``code`` a short machine-readable reason (``invalid_json``, ``body_too_large``,
    ``body_timeout``, ``nested_too_deep``), ``str(exc)`` the message for the client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


async def read_body(request: Request, *, max_bytes: int, seconds: float | None) -> bytes:
    """The request's body, read chunk by chunk as the server receives it.

    At most ``max_bytes`` (plus one network chunk) are held: a body announced larger by its
    ``Content-Length`` is refused before any of it is read, and a chunked body is refused as
    soon as it grows past the limit.

    Raises:
        BodyError: 413 (``body_too_large``) past ``max_bytes``; 408 (``body_timeout``) when
            the whole body took longer than ``seconds``.
    """
    import anyio

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    buf = bytearray()
    with anyio.move_on_after(seconds if seconds is not None else float("inf")) as scope:
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                buf += chunk
                if len(buf) > max_bytes:
                    raise _too_large(max_bytes)
    if scope.cancelled_caught:
        raise BodyError(408, "body_timeout", f"the request body did not arrive within {seconds:g} s")
    return bytes(buf)


def _too_large(max_bytes: int) -> BodyError:
    return BodyError(413, "body_too_large", f"the request body is larger than the server's limit of {max_bytes} bytes")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of ``body`` (UTF-8, RFC 8259: ``NaN``/``Infinity`` are refused).

    Raises:
        BodyError: 400 with code ``invalid_json`` (not JSON, not UTF-8, an integer of more
            than 4,300 digits, nesting past the decoder's own recursion limit) or
            ``nested_too_deep`` (objects/arrays nested deeper than ``max_depth``).
    """
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise BodyError(400, "nested_too_deep", f"the request body nests deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, int digits limit, constants
        raise BodyError(400, "invalid_json", f"the request body is not valid JSON: {_short(exc)}") from None
    if _depth_over(value, max_depth):
        raise BodyError(400, "nested_too_deep", f"the request body nests deeper than {max_depth} levels")
    return value


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _depth_over(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests lists/dicts deeper than ``max_depth`` (iterative: no recursion)."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if d > max_depth:
            return True
        todo.extend((c, d + 1) for c in items if isinstance(c, (dict, list)))
    return False


class RunLimit:
    """One limit on the runs going at once, shared by every route that starts a run.

    ``running()`` counts the runs held elsewhere (the run registry's live runs: completions);
    :meth:`acquire` holds one more (an A2A task) until the returned release function is
    called (idempotent). :meth:`check` raises when ``max_runs`` are going.
    """

    def __init__(self, max_runs: int, running: Callable[[], int] = lambda: 0) -> None:
        if max_runs < 1:
            raise ValueError(f"max_runs must be >= 1, got {max_runs}")
        self.max_runs = max_runs
        self._running = running
        self.held = 0

    @property
    def going(self) -> int:
        """Runs going now: held here plus counted elsewhere."""
        return self.held + self._running()

    def check(self) -> None:
        """Raises :class:`RunLimitError` when ``max_runs`` runs are going."""
        if self.going >= self.max_runs:
            raise RunLimitError(self.max_runs)

    def acquire(self) -> Callable[[], None]:
        """Hold one run; returns the function that releases it (call it once the run ended).

        Raises:
            RunLimitError: ``max_runs`` runs are going.
        """
        self.check()
        self.held += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.held -= 1

        return release
