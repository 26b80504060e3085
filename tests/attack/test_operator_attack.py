"""The operator attack suite (issue 13): random source failures and random cancellation over
``merge``, ``share``, ``tee``, ``smooth``, ``timeout`` and ``budget``, on asyncio and trio.

Hypothesis draws the sources (length, where one fails, where they await), the stages piped
after a merge, and how the consumer stops (reads to the end, breaks after k items, is
cancelled from outside after k items or after a deadline). Whatever is drawn:

- the consumer sees only the source's own exception (the same object), a typed
  :class:`~streamops.errors.StreamTimeout`, or :class:`~streamops.SlowConsumerError` for a
  ``policy="fail"`` subscriber: never an ``ExceptionGroup``;
- every source that started is closed (its ``finally`` ran) once the consumer is done;
- no task is left (``tests/_tasks.py``);
- per-source order is kept, and a consumer that read to the end of sources that did not fail
  got every item.

Counts (examples tried, handled cleanly) go to :data:`COUNTS`, printed at the end of the run.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamops as so
from streamops.errors import StreamTimeout
from streamops.operators.share import SlowConsumerError, share, tee
from streamops.operators.text import smooth
from streamops.operators.time import timeout
from streamops.operators.tokens import budget
from tests._tasks import live_tasks

pytestmark = pytest.mark.anyio

COUNTS: dict[str, tuple[int, int]] = {}
"""Attack name -> (examples tried, handled cleanly); printed by tests/conftest.py."""


EXAMPLES = int(os.environ.get("STREAMOPS_ATTACK_EXAMPLES", "150"))
"""Hypothesis examples per test and backend (150: about 10 s for the file on a loaded 2-core
machine); raise it for a longer hunt."""


def _tally(name: str, clean: bool) -> None:
    tried, ok = COUNTS.get(name, (0, 0))
    COUNTS[name] = (tried + 1, ok + clean)


class Boom(Exception):
    """A source's own failure."""


class Source:
    """An async generator of ``n`` text deltas of run ``name``, failing with :class:`Boom` before
    item ``fail_at``; before each item it does nothing (a burst), yields to the loop, or sleeps
    1 ms, as ``pauses`` says (cycled). Records whether it started and whether it was closed."""

    def __init__(self, name: str, n: int, fail_at: int | None, pauses: list[int]) -> None:
        self.name, self.n, self.fail_at, self.pauses = name, n, fail_at, pauses or [0]
        self.started = self.closed = False
        self.raised: Boom | None = None

    async def gen(self) -> AsyncGenerator[so.BaseEvent, None]:
        self.started = True
        try:
            for i in range(self.n):
                pause = self.pauses[i % len(self.pauses)]
                if pause == 1:
                    await anyio.lowlevel.checkpoint()
                elif pause == 2:
                    await anyio.sleep(0.001)
                if i == self.fail_at:
                    self.raised = Boom(f"{self.name} failed at {i}")
                    raise self.raised
                yield so.TextDelta(delta=f"{self.name}{i} ", run_id=self.name, block_id="0", seq=i)
        finally:
            self.closed = True


sources = st.lists(
    st.tuples(
        st.integers(0, 12),
        st.one_of(st.none(), st.integers(0, 12)),
        st.lists(st.integers(0, 2), min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=4,
)
stops = st.one_of(
    st.just(("all", 0)),
    st.tuples(st.just("take"), st.integers(0, 10)),
    st.tuples(st.just("cancel"), st.integers(0, 10)),
    st.tuples(st.just("deadline"), st.sampled_from([0.0, 0.001, 0.003, 0.01])),
)


async def consume(stream: so.Stream[Any], stop: tuple[str, float]) -> tuple[list[Any], BaseException | None]:
    """Pull ``stream`` as ``stop`` says; ``(items, the exception it raised or None)``."""
    how, k = stop
    got: list[Any] = []
    error: BaseException | None = None
    with anyio.move_on_after(k if how == "deadline" else math.inf) as scope:
        try:
            async with stream.iterate() as it:
                async for item in it:
                    got.append(item)
                    if how == "take" and len(got) >= k:
                        break
                    if how == "cancel" and len(got) >= k:
                        scope.cancel()
                        await anyio.lowlevel.checkpoint()
        except (Boom, StreamTimeout, SlowConsumerError) as exc:
            error = exc
    return got, error


def per_source_order_kept(got: list[Any]) -> bool:
    seen: dict[str, int] = {}
    for ev in got:
        if isinstance(ev, so.TextDelta):
            if ev.seq <= seen.get(ev.run_id, -1):
                return False
            seen[ev.run_id] = ev.seq
    return True


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=sources,
    stages=st.lists(st.sampled_from(["smooth", "timeout", "budget"]), unique=True, max_size=3),
    stop=stops,
    idle=st.sampled_from([0.002, 5.0]),
)
async def test_merge_pipelines_under_random_failures_and_cancellation(
    specs: list[tuple[int, int | None, list[int]]], stages: list[str], stop: tuple[str, float], idle: float
) -> None:
    srcs = [Source(f"s{i}", n, fail_at, pauses) for i, (n, fail_at, pauses) in enumerate(specs)]
    before = live_tasks()
    stream: so.Stream[Any] = so.merge(*(s.gen() for s in srcs))
    for stage in stages:
        if stage == "smooth":
            stream = stream | smooth("word")
        elif stage == "timeout":
            stream = stream | timeout(idle=idle)
        else:
            stream = stream | budget(max_tokens=40, tokenizer=lambda text: len(text.encode()))
    got, error = await consume(stream, stop)
    closed = all(s.closed for s in srcs if s.started)
    no_tasks = not (live_tasks() - before)
    raised = {id(s.raised) for s in srcs if s.raised is not None}
    typed = error is None or isinstance(error, StreamTimeout) or id(error) in raised
    complete = True
    if stop[0] == "all" and error is None and not stages and not raised:
        complete = len(got) == sum(s.n for s in srcs)
    clean = closed and no_tasks and typed and complete and ("smooth" in stages or per_source_order_kept(got))
    _tally("merge | smooth/timeout/budget pipelines", clean)
    assert closed, [(s.name, s.started, s.closed) for s in srcs]
    assert no_tasks, live_tasks() - before
    assert typed, repr(error)
    assert complete, (len(got), [s.n for s in srcs])
    assert "smooth" in stages or per_source_order_kept(got)


subscribers = st.lists(
    st.one_of(
        st.just(("all", 0)),
        st.tuples(st.just("take"), st.integers(0, 10)),
        st.tuples(st.just("cancel"), st.integers(0, 10)),
        st.tuples(st.just("deadline"), st.sampled_from([0.0, 0.002, 0.01])),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=sources.map(lambda s: s[0]),
    subs=subscribers,
    via=st.sampled_from(["share", "tee"]),
    policy=st.sampled_from(["block", "drop_deltas", "fail"]),
    buffer=st.integers(1, 8),
    leave_early=st.booleans(),
)
async def test_share_and_tee_under_random_failures_and_cancellation(
    spec: tuple[int, int | None, list[int]],
    subs: list[tuple[str, float]],
    via: str,
    policy: Any,
    buffer: int,
    leave_early: bool,
) -> None:
    """k subscribers, each stopping its own way; the block may also be left while they run
    (``leave_early``: the hub is closed under them)."""
    src = Source("s", *spec)
    before = live_tasks()
    results: list[tuple[list[Any], BaseException | None]] = [([], None)] * len(subs)

    async def run(i: int, stream: so.Stream[Any], stop: tuple[str, float]) -> None:
        results[i] = await consume(stream, stop)

    with anyio.fail_after(30):
        if via == "share":
            async with share(src.gen(), buffer=buffer, policy=policy) as hub:
                streams = [hub.subscribe() for _ in subs]
                async with anyio.create_task_group() as tg:
                    for i, (stream, stop) in enumerate(zip(streams, subs, strict=True)):
                        tg.start_soon(run, i, stream, stop)
                    if leave_early:
                        await anyio.lowlevel.checkpoint()
                        await hub.aclose()
        else:
            async with (
                tee(src.gen(), len(subs), buffer=buffer, policy=policy) as branches,
                anyio.create_task_group() as tg,
            ):
                for i, (stream, stop) in enumerate(zip(branches, subs, strict=True)):
                    tg.start_soon(run, i, stream, stop)
    closed = not src.started or src.closed
    no_tasks = not (live_tasks() - before)
    typed = all(
        e is None or e is src.raised or (isinstance(e, SlowConsumerError) and policy == "fail") for _, e in results
    )
    ordered = all(per_source_order_kept(got) for got, _ in results)
    complete = True
    if policy == "block" and src.raised is None and not leave_early:
        complete = all(len(got) == src.n for (got, e), stop in zip(results, subs, strict=True) if stop[0] == "all")
    clean = closed and no_tasks and typed and ordered and complete
    _tally("share/tee subscribers", clean)
    assert closed and no_tasks, (closed, live_tasks() - before)
    assert typed, [repr(e) for _, e in results]
    assert ordered and complete


async def test_a_source_failing_under_a_consumer_deadline_is_never_wrapped(anyio_backend: str) -> None:
    """The race of issue 13 item 5: a source fails right after its first item while the
    consumer's deadline (0.2 ms) is about to pass. The consumer sees the source's error, or
    nothing (the deadline came first), never an ``ExceptionGroup``; 500 trials (on trio, before
    the fix, about 40 of them were wrapped)."""
    outcomes: dict[str, int] = {}
    for _ in range(500):

        async def failing() -> AsyncGenerator[int, None]:
            yield 0
            raise Boom("right after the first item")

        async def slow() -> AsyncGenerator[int, None]:
            await anyio.sleep(1)
            yield 1

        _, error = await consume(so.merge(failing(), slow()), ("deadline", 0.0002))
        key = "none" if error is None else type(error).__name__
        outcomes[key] = outcomes.get(key, 0) + 1
    assert set(outcomes) <= {"none", "Boom"}, outcomes
