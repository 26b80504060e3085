"""Errors of the run stores that both the interface (:mod:`._base`) and the publisher
(:mod:`.publish`) use (a module of its own: ``_base`` imports ``publish`` lazily)."""

from __future__ import annotations

from ..errors import StreamopsError

__all__ = ["GapError"]


class GapError(StreamopsError, ValueError):
    """An append at position ``first`` of run ``run_id`` would leave a gap: only ``stored``
    events are stored (``first > stored``). The store lost events a publisher had stored (Redis
    restarted without its last writes), or the caller skipped positions. A ``ValueError``."""

    def __init__(self, run_id: str, first: int, stored: int) -> None:
        super().__init__(f"append at position {first} of run {run_id!r} leaves a gap: {stored} events are stored")
        self.run_id = run_id
        self.first = first
        self.stored = stored
