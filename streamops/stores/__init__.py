"""Run stores: where runs' events outlive the process that produced them.

One interface, :class:`RunStore`, three backends: :class:`MemoryStore` (this process),
:class:`SQLiteStore` (one machine, durable), :class:`RedisStore` (many machines, Redis
Streams). Write with the :func:`publish` operator (or :meth:`RunStore.publish`), read back with
:meth:`RunStore.read`, :meth:`RunStore.follow` / :meth:`RunStore.entries` (resume after an SSE
id, then the live tail) and :meth:`RunStore.watch` (runs as they start); :func:`follow_all`
merges the live runs of many producers. :func:`open_store` opens one from a URL
(``memory:``, ``sqlite:PATH``, ``redis://HOST:PORT/DB``). See docs/distributed.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import RedisNeedsAsyncioError
from ._base import Entry, GapError, LeaseLostError, RunInfo, RunState, RunStore, entry_id
from .memory import MemoryStore
from .publish import publish
from .sqlite import SQLiteStore
from .subscribe import follow_all

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = [
    "Entry",
    "GapError",
    "LeaseLostError",
    "MemoryStore",
    "RedisNeedsAsyncioError",
    "RedisStore",
    "RunInfo",
    "RunState",
    "RunStore",
    "SQLiteStore",
    "entry_id",
    "follow_all",
    "open_store",
    "publish",
]


def __getattr__(name: str) -> Any:  # RedisStore imports nothing heavy, but redis-py is optional
    if name == "RedisStore":
        from .redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str, **options: Any) -> RunStore:
    """The store a URL names: ``memory:``, ``sqlite:PATH`` (``sqlite:///abs/path`` too), or
    ``redis://HOST:PORT/DB`` / ``rediss://`` / ``unix://``. ``options`` go to its constructor
    (``max_events``, ``ttl``, ``lease``...).

    Raises:
        ValueError: an unknown scheme, or ``sqlite:`` without a path.
    """
    if url in ("memory:", "memory://", "memory"):
        return MemoryStore(**options)
    if url.startswith("sqlite:"):
        path = url[len("sqlite:") :]
        if path.startswith("//"):  # sqlite:///abs/path, sqlite://rel/path
            path = path[2:]
        if not path:
            raise ValueError(f"sqlite: needs a file path, e.g. sqlite:runs.db (got {url!r})")
        return SQLiteStore(path, **options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore

        return RedisStore(url, **options)
    raise ValueError(f"unknown store URL {url!r}: use memory:, sqlite:PATH or redis://HOST:PORT/DB")
