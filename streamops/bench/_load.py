"""Load shapes: a closed-loop concurrency step and an open-loop arrival-rate step, over
one or more targets measured interleaved."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from streamops.events import BaseEvent

from ._client import Pipeline, RequestParams, Target, run_request
from ._metrics import RequestTiming

if TYPE_CHECKING:
    import httpx

__all__ = ["LoadStep", "Progress", "arrival_times", "run_step"]


@dataclass(slots=True, kw_only=True)
class LoadStep:
    """One load step, per target: ``concurrency`` requests in flight (closed loop: the next
    starts when one ends), or ``rate`` arrivals per second (open loop: ``arrival`` spacing,
    ``poisson`` (exponential gaps) or ``constant``; requests start at their scheduled times
    whatever the responses do, so slow responses cannot hide queueing). The step sends
    ``requests`` requests per target, or as many as start within ``duration`` seconds."""

    concurrency: int | None = None
    rate: float | None = None
    arrival: Literal["poisson", "constant"] = "poisson"
    requests: int | None = None
    duration: float | None = None


@dataclass(slots=True)
class Progress:
    """Counters a live display reads: requests ``done`` and ``failed``, ``in_flight``, the
    ``chunks`` received, and the step's ``started`` time (``time.perf_counter``)."""

    done: int = 0
    failed: int = 0
    in_flight: int = 0
    chunks: int = 0
    started: float = field(default_factory=time.perf_counter)


def arrival_times(
    rate: float, *, n: int | None, duration: float | None, arrival: str, rng: random.Random
) -> list[float]:
    """Scheduled arrival times (seconds from the step's start) of an open-loop step: gaps of
    ``1 / rate`` (``constant``) or exponential with mean ``1 / rate`` (``poisson``, as vLLM's
    ``--request-rate`` with burstiness 1); ``n`` of them, or those before ``duration``.

    Raises:
        ValueError: ``rate <= 0``, or neither ``n`` nor ``duration`` given.
    """
    if rate <= 0:
        raise ValueError(f"the arrival rate must be > 0 requests/s, got {rate}")
    if n is None and duration is None:
        raise ValueError("an open-loop step needs a number of requests or a duration")
    out: list[float] = []
    t = 0.0
    while n is None or len(out) < n:
        if out or arrival == "poisson":
            t += rng.expovariate(rate) if arrival == "poisson" else 1.0 / rate
        if duration is not None and t >= duration:
            break
        out.append(t)
    return out


async def run_step(
    client: httpx.AsyncClient | None,
    targets: Sequence[Target],
    prompts: Sequence[str],
    params: RequestParams,
    step: LoadStep,
    *,
    seed: int = 0,
    count: Callable[[str], int | None] | None = None,
    pipeline: Pipeline | None = None,
    progress: Progress | None = None,
    keep: list[list[BaseEvent]] | None = None,
    keep_max: int = 50,
) -> list[RequestTiming]:
    """Run one load step on every target at once; return the timings in start order.

    Request ``i`` of a target sends ``prompts[i % len(prompts)]``. Under ``concurrency``,
    each target has that many workers; under ``rate``, each target gets its own arrival
    schedule (same seed: the same times), so the targets are loaded alike and interleaved.
    ``keep`` collects the raw events of up to ``keep_max`` completed requests.

    Raises:
        ValueError: the step has neither ``concurrency`` nor ``rate``, or no ``requests`` nor
            ``duration``; no prompts.
    """
    if not prompts:
        raise ValueError("no prompts")
    if step.requests is None and step.duration is None:
        raise ValueError("a load step needs a number of requests or a duration")
    prog = progress if progress is not None else Progress()
    timings: list[RequestTiming] = []
    clock = time.perf_counter
    start = prog.started = clock()

    async def one(target: Target, i: int, t_sched: float) -> None:
        t_send = clock()
        timing = RequestTiming(
            target=target.label,
            index=i,
            concurrency=step.concurrency,
            rate=step.rate,
            start_s=t_sched - start,
            queue_s=max(t_send - t_sched, 0.0),
        )
        events: list[BaseEvent] | None = [] if keep is not None and len(keep) < keep_max else None
        prog.in_flight += 1
        try:
            await run_request(
                client=client, target=target, prompt=prompts[i % len(prompts)], params=params,
                timing=timing, t0=t_sched, count=count, pipeline=pipeline, keep=events,
            )
        finally:
            prog.in_flight -= 1
        timings.append(timing)
        prog.done += 1
        prog.chunks += timing.chunks
        if not timing.ok:
            prog.failed += 1
        elif events is not None and keep is not None and len(keep) < keep_max:
            keep.append(events)

    async with anyio.create_task_group() as tg:
        if step.concurrency is not None:
            if step.concurrency < 1:
                raise ValueError(f"concurrency must be >= 1, got {step.concurrency}")
            deadline = None if step.duration is None else start + step.duration

            async def worker(target: Target, counter: list[int]) -> None:
                while True:
                    i = counter[0]
                    if step.requests is not None and i >= step.requests:
                        return
                    if deadline is not None and clock() >= deadline:
                        return
                    counter[0] += 1
                    await one(target, i, clock())

            for target in targets:
                counter = [0]
                for _ in range(step.concurrency):
                    tg.start_soon(worker, target, counter)
        elif step.rate is not None:
            schedules = [
                arrival_times(
                    step.rate, n=step.requests, duration=step.duration, arrival=step.arrival,
                    rng=random.Random(seed),
                )
                for _ in targets
            ]
            merged = sorted((t, k, i) for k, times in enumerate(schedules) for i, t in enumerate(times))
            for t, k, i in merged:
                delay = start + t - clock()
                if delay > 0:
                    await anyio.sleep(delay)
                tg.start_soon(one, targets[k], i, start + t)
        else:
            raise ValueError("a load step needs a concurrency or a rate")
    timings.sort(key=lambda t: (t.start_s, t.target))
    return timings
