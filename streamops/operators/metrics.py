"""Stream metrics: time to first token, tokens per second, inter-chunk gaps, stalls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._stream import End, Push, Stage
from ..events import BaseEvent, ReasoningDelta, RefusalDelta, RunEnd, RunStart, TextDelta, UsageEvent

__all__ = ["RunStats", "StreamMetrics", "metrics"]


@dataclass(slots=True, kw_only=True)
class RunStats:
    """Timing of one run, in seconds of the clock given to :func:`metrics`."""

    agent: str = ""
    """The agent's name."""
    run_id: str = ""
    """The run's id."""
    started: float = 0.0
    """When the run started: its run start event, or the start of the iteration."""
    first_chunk_at: float | None = None
    """When its first text, reasoning or refusal delta passed."""
    last_chunk_at: float | None = None
    """When its latest delta passed."""
    ended_at: float | None = None
    """When its run end passed."""
    chunks: int = 0
    """Text, reasoning and refusal deltas seen."""
    chars: int = 0
    """Characters in those deltas."""
    output_tokens: int | None = None
    """Output tokens from the latest usage event (provider or estimated), if any."""
    tokens_source: str | None = None
    """``provider`` or ``estimated``: where ``output_tokens`` came from."""
    max_gap: float = 0.0
    """Longest gap between consecutive deltas, seconds."""
    stalls: int = 0
    """Gaps between consecutive deltas longer than the ``stall`` threshold."""
    gaps: list[float] = field(default_factory=list, repr=False)
    """Every gap between consecutive deltas, seconds."""

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from the run's start to its first delta."""
        return None if self.first_chunk_at is None else self.first_chunk_at - self.started

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second between the first and the last delta (``None`` without
        token figures or with a single delta)."""
        if self.output_tokens is None or self.first_chunk_at is None or self.last_chunk_at is None:
            return None
        span = self.last_chunk_at - self.first_chunk_at
        return None if span <= 0 else self.output_tokens / span

    @property
    def chunks_per_second(self) -> float | None:
        """Deltas per second between the first and the last delta."""
        if self.first_chunk_at is None or self.last_chunk_at is None:
            return None
        span = self.last_chunk_at - self.first_chunk_at
        return None if span <= 0 else self.chunks / span


class StreamMetrics:
    """Per-run stats filled by :func:`metrics`: ``runs`` maps ``(agent, run_id)`` to
    :class:`RunStats`, in order of first appearance."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], RunStats] = {}


def _default_clock() -> float:
    import anyio

    return anyio.current_time()


def metrics(
    into: StreamMetrics | None = None,
    *,
    stall: float = 2.0,
    clock: Callable[[], float] | None = None,
) -> Stage[Any, Any]:
    """Measure each run as its events pass: time to first token, tokens per second,
    inter-chunk gaps and stalls (gaps longer than ``stall`` seconds). Read them from ``into``.

    ``clock`` gives the time in seconds (default: the event loop's clock,
    ``anyio.current_time()``, so virtual clocks work in tests).

    - Emits: every event unchanged, when it arrives.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails.
    - Cancels: when the downstream stops; holds only the figures.

    Marble: ``start "a" -(3s)- "b" end | metrics(m, stall=2)`` gives the same events and
    ``m.runs[...].stalls == 1``.

    Raises:
        ValueError: ``stall`` is not positive.
    """
    if not stall > 0:
        raise ValueError(f"metrics(): stall must be > 0 seconds, got {stall!r}")
    m = into if into is not None else StreamMetrics()
    now = clock if clock is not None else _default_clock
    deltas = (TextDelta, ReasoningDelta, RefusalDelta)

    def bind(down: Push, end: End) -> tuple[Push, End]:
        t0 = now()
        runs = m.runs

        def push(x: Any) -> None:
            if isinstance(x, BaseEvent):
                key = (x.agent, x.run_id)
                r = runs.get(key)
                t = now()
                if r is None:
                    r = runs[key] = RunStats(agent=x.agent, run_id=x.run_id, started=t0)
                if isinstance(x, deltas):
                    if r.last_chunk_at is None:
                        r.first_chunk_at = t
                    else:
                        gap = t - r.last_chunk_at
                        r.gaps.append(gap)
                        if gap > r.max_gap:
                            r.max_gap = gap
                        if gap > stall:
                            r.stalls += 1
                    r.last_chunk_at = t
                    r.chunks += 1
                    r.chars += len(x.delta)
                elif isinstance(x, UsageEvent):
                    if x.usage.output_tokens is not None and (
                        x.source == "provider" or r.tokens_source != "provider"
                    ):
                        r.output_tokens = x.usage.output_tokens
                        r.tokens_source = x.source
                elif isinstance(x, RunStart):
                    r.started = t
                elif isinstance(x, RunEnd):
                    r.ended_at = t
                    if x.usage is not None and x.usage.output_tokens is not None:
                        r.output_tokens = x.usage.output_tokens
                        r.tokens_source = "provider"
            down(x)

        return push, end

    return Stage(bind, "metrics")
