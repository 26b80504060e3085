"""Sans-IO measuring core of ``streamops bench``: one :class:`Recorder` per request turns
timestamped streamops events into a :class:`RequestTiming`; :func:`summarize` aggregates them.

Definitions follow vLLM's ``benchmarks/benchmark_serving.py`` (``vllm bench serve``) where it
has one; docs/benchmarking.md lists every metric and the differences.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from streamops.events import (
    BaseEvent,
    ErrorEvent,
    ReasoningDelta,
    RefusalDelta,
    RunEnd,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageEvent,
)

__all__ = ["PERCENTILES", "Recorder", "RequestTiming", "Stats", "Summary", "stats", "summarize"]

PERCENTILES = (50, 90, 95, 99)
"""The percentiles every latency figure is reported at."""

_OUTPUT = (TextDelta, ReasoningDelta, RefusalDelta, ToolCallStart, ToolCallDelta)


@dataclass(slots=True, kw_only=True)
class RequestTiming:
    """One request's measurements. Times in seconds, from the request's start (its scheduled
    arrival under ``--rate``, the moment it was sent otherwise); ``None`` when not reached.

    - ``target``: the target's label; ``index``: the request's number in the run (from 0).
    - ``concurrency`` / ``rate``: the load step it ran in (``None`` when not that load shape).
    - ``start_s``: its start, seconds after the run's start; ``queue_s``: scheduled arrival to
      send (open loop only: the client's own lag).
    - ``ttft_s``: time to the first output chunk (text, reasoning, refusal or tool-call delta).
    - ``ttfc_s``: time to the first *content* (text) chunk.
    - ``e2e_s``: time to the end of the response (the run end, or the error).
    - ``itl_s``: the gaps between successive output chunks (``chunks - 1`` values).
    - ``chunks``: output chunks (SSE events, or adapter events for model targets, carrying output).
    - ``output_tokens`` / ``input_tokens``: from the provider's usage when reported
      (``tokens_source == "usage"``), else ``output_tokens`` is counted from the text with
      ``count_tokens``' encoding (``"counted"``), else ``None`` (``"none"``).
    - ``error``: the kind of failure (``connect``, ``timeout``, ``http-401``, ``not-sse``,
      ``malformed``, ``truncated``, ``stream-error``, ``pipeline``...), ``None`` on success;
      ``error_detail``: its message.
    - ``pipeline_s``: with ``--pipeline``, the pipeline's added latency at the end of the
      response (its last event's time minus the raw last event's), else ``None``.
    """

    target: str
    index: int
    concurrency: int | None = None
    rate: float | None = None
    start_s: float = 0.0
    queue_s: float = 0.0
    ttft_s: float | None = None
    ttfc_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    chunks: int = 0
    output_tokens: int | None = None
    input_tokens: int | None = None
    tokens_source: str = "none"
    error: str | None = None
    error_detail: str = ""
    pipeline_s: float | None = None

    @property
    def ok(self) -> bool:
        """True when the request completed without error."""
        return self.error is None

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: ``(e2e - ttft) / (output_tokens - 1)``, as
        vLLM defines it; ``None`` with fewer than 2 output tokens."""
        if self.e2e_s is None or self.ttft_s is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this request (the fields above, plus ``tpot_s`` and ``ok``)."""
        out = asdict(self)
        out["tpot_s"] = self.tpot_s
        out["ok"] = self.ok
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestTiming:
        """Read back :meth:`to_json`'s object (derived fields are ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


class Recorder:
    """Sans-IO: feed one request's events with their arrival times; get its timing.

    ``feed(now, events)``: ``now`` is the monotonic time (seconds) the events arrived at,
    ``events`` the streamops events parsed from one read (or one adapter event). Events that
    carry output make one *chunk* per call (several deltas parsed from one SSE event are one
    chunk, as vLLM counts one per SSE ``data:`` line). ``fail(now, kind, detail)`` records an
    error; ``finish(now)`` returns the :class:`RequestTiming`. ``text`` keeps the output text
    for token counting.
    """

    __slots__ = ("_last", "_parts", "_t0", "_usage_in", "_usage_out", "timing")

    def __init__(self, timing: RequestTiming, t0: float) -> None:
        self.timing = timing
        self._t0 = t0
        self._last: float | None = None
        self._usage_out: int | None = None
        self._usage_in: int | None = None
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def feed(self, now: float, events: Iterable[BaseEvent]) -> None:
        """Record the events that arrived at ``now``."""
        output = False
        timing = self.timing
        for ev in events:
            if isinstance(ev, _OUTPUT):
                output = True
                if isinstance(ev, TextDelta):
                    if timing.ttfc_s is None and ev.delta:
                        timing.ttfc_s = now - self._t0
                    self._parts.append(ev.delta)
            elif isinstance(ev, UsageEvent):
                if ev.source == "provider":
                    self._take_usage(ev.usage.output_tokens, ev.usage.input_tokens)
            elif isinstance(ev, RunEnd):
                if ev.usage is not None:
                    self._take_usage(ev.usage.output_tokens, ev.usage.input_tokens)
            elif isinstance(ev, ErrorEvent) and timing.error is None:
                timing.error = "stream-error"
                timing.error_detail = f"{ev.error_type}: {ev.message}"
        if output:
            if self._last is None:
                timing.ttft_s = now - self._t0
            else:
                timing.itl_s.append(now - self._last)
            self._last = now
            timing.chunks += 1

    def _take_usage(self, out: int | None, inp: int | None) -> None:
        if out is not None:
            self._usage_out = out
        if inp is not None:
            self._usage_in = inp

    @property
    def needs_count(self) -> bool:
        """True when output text arrived but no usage reported its tokens."""
        return self._usage_out is None and bool(self._parts)

    def fail(self, kind: str, detail: str) -> None:
        """Record a failure of kind ``kind`` (the first one recorded wins)."""
        if self.timing.error is None:
            self.timing.error = kind
            self.timing.error_detail = detail[:300]

    def finish(self, now: float, count: Callable[[str], int | None] | None = None) -> RequestTiming:
        """End the request at ``now``; ``count`` (text -> tokens, ``None`` when it cannot count)
        counts output tokens when the provider reported none. Returns the timing."""
        timing = self.timing
        timing.e2e_s = now - self._t0
        timing.input_tokens = self._usage_in
        if self._usage_out is not None:
            timing.output_tokens = self._usage_out
            timing.tokens_source = "usage"
        elif count is not None and self._parts and (n := count(self.text)) is not None:
            timing.output_tokens = n
            timing.tokens_source = "counted"
        return timing


@dataclass(slots=True, kw_only=True)
class Stats:
    """Distribution of one metric: ``n`` values; ``mean``, ``max`` and ``p50``..``p99``
    (linear interpolation, as ``numpy.percentile``'s default); all ``None`` when ``n == 0``."""

    n: int
    mean: float | None = None
    max: float | None = None
    p: dict[int, float] = field(default_factory=dict)


def stats(values: Sequence[float]) -> Stats:
    """The :class:`Stats` of ``values``."""
    if not values:
        return Stats(n=0)
    s = sorted(values)
    out: dict[int, float] = {}
    for q in PERCENTILES:
        k = (len(s) - 1) * q / 100
        lo = math.floor(k)
        hi = min(lo + 1, len(s) - 1)
        out[q] = s[lo] + (s[hi] - s[lo]) * (k - lo)
    return Stats(n=len(s), mean=sum(s) / len(s), max=s[-1], p=out)


@dataclass(slots=True, kw_only=True)
class Summary:
    """Aggregate of one target at one load step.

    ``duration_s``: wall time of the step (first start to last end, seconds). ``completed`` /
    ``failed``: request counts; ``errors``: failures by kind. ``request_throughput``:
    completed requests per second; ``output_token_throughput``: output tokens of completed
    requests per second; ``chunk_throughput``: their chunks per second; ``goodput``: completed
    requests per second meeting every SLO (``None`` without SLOs). ``metrics``: distribution of
    ``ttft_s``, ``ttfc_s``, ``tpot_s``, ``itl_s`` (every gap of every request), ``e2e_s``,
    ``chunks_per_s`` and ``tokens_per_s`` (per stream: after the first chunk, as
    ``(n - 1) / (e2e - ttft)``). ``tokens_source``: how output tokens were known
    (``usage``, ``counted``, ``mixed``, ``none``). ``client_cpu_per_chunk_us``: the process's
    CPU time over the step per chunk received, in microseconds (``None`` when not measured).
    """

    target: str
    concurrency: int | None
    rate: float | None
    duration_s: float
    completed: int
    failed: int
    errors: dict[str, int]
    request_throughput: float
    output_token_throughput: float
    chunk_throughput: float
    goodput: float | None
    metrics: dict[str, Stats]
    tokens_source: str
    client_cpu_per_chunk_us: float | None = None
    pipeline_cpu_per_chunk_us: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this summary."""
        return asdict(self)


def _meets(t: RequestTiming, slo: Mapping[str, float]) -> bool:
    for name, limit in slo.items():
        # itl_s is the request's list of gaps: an ITL SLO applies to its largest
        value = max(t.itl_s, default=None) if name == "itl" else getattr(t, name + "_s", None)
        if value is None and name in ("tpot", "itl") and t.ttft_s is not None:
            # one output token (or one chunk): no gap to measure. vLLM's calculate_metrics
            # (benchmarks/serve.py) regards TPOT as 0 for goodput then; ITL likewise.
            value = 0.0
        if value is None or value > limit:
            return False
    return True


def summarize(
    timings: Sequence[RequestTiming],
    *,
    target: str,
    concurrency: int | None = None,
    rate: float | None = None,
    duration_s: float | None = None,
    slo: Mapping[str, float] | None = None,
    cpu_s: float | None = None,
) -> Summary:
    """Aggregate the timings of one target at one load step.

    ``duration_s`` defaults to first start to last end. ``slo`` maps ``ttft``, ``ttfc``,
    ``tpot``, ``e2e`` or ``itl`` (the request's largest gap) to a limit in seconds: a completed
    request meeting all of them counts toward goodput (vLLM's definition, where an SLO on ITL
    applies to every gap too). ``cpu_s``: the process CPU seconds spent over the step.
    """
    ok = [t for t in timings if t.ok]
    if duration_s is None:
        ends = [t.start_s + (t.e2e_s or 0.0) for t in timings]
        duration_s = max(ends, default=0.0) - min((t.start_s for t in timings), default=0.0)
    dur = duration_s if duration_s > 0 else float("nan")
    chunks = sum(t.chunks for t in ok)
    tokens = sum(t.output_tokens or 0 for t in ok)
    sources = {t.tokens_source for t in ok}
    per_chunk: list[float] = []
    per_token: list[float] = []
    for t in ok:
        if t.e2e_s is not None and t.ttft_s is not None and t.e2e_s > t.ttft_s:
            span = t.e2e_s - t.ttft_s
            if t.chunks > 1:
                per_chunk.append((t.chunks - 1) / span)
            if t.output_tokens and t.output_tokens > 1:
                per_token.append((t.output_tokens - 1) / span)
    metrics = {
        "ttft_s": stats([t.ttft_s for t in ok if t.ttft_s is not None]),
        "ttfc_s": stats([t.ttfc_s for t in ok if t.ttfc_s is not None]),
        "tpot_s": stats([v for t in ok if (v := t.tpot_s) is not None]),
        "itl_s": stats([g for t in ok for g in t.itl_s]),
        "e2e_s": stats([t.e2e_s for t in ok if t.e2e_s is not None]),
        "chunks_per_s": stats(per_chunk),
        "tokens_per_s": stats(per_token),
    }
    all_chunks = sum(t.chunks for t in timings)
    return Summary(
        target=target,
        concurrency=concurrency,
        rate=rate,
        duration_s=duration_s,
        completed=len(ok),
        failed=len(timings) - len(ok),
        errors=dict(Counter(t.error for t in timings if t.error is not None)),
        request_throughput=len(ok) / dur,
        output_token_throughput=tokens / dur,
        chunk_throughput=chunks / dur,
        goodput=None if not slo else sum(1 for t in ok if _meets(t, slo)) / dur,
        metrics=metrics,
        tokens_source="none" if not sources else sources.pop() if len(sources) == 1 else "mixed",
        client_cpu_per_chunk_us=None if cpu_s is None or not all_chunks else cpu_s / all_chunks * 1e6,
    )
