"""merge, concat and task_scope: ordering, provenance, errors, closing, context, fairness."""

from __future__ import annotations

import contextvars
import gc
import sys
import warnings
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamops import ErrorEvent, Stream, TextDelta, ToolCallEnd
from streamops import task_scope as exported_task_scope
from streamops.errors import TaskHostRequired
from streamops.operators import filter, map, take
from streamops.operators.combine import concat, merge, task_scope
from tests._tasks import live_tasks

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


async def _pause(kind: int) -> None:
    if kind == 1:
        await anyio.lowlevel.checkpoint()
    elif kind == 2:
        await anyio.sleep(0.0001)


async def gen(
    name: str,
    n: int,
    *,
    log: list[str] | None = None,
    pauses: list[int] | None = None,
    fail_at: int | None = None,
    error: BaseException | None = None,
) -> AsyncGenerator[Any, None]:
    try:
        for i in range(n):
            if pauses:
                await _pause(pauses[i % len(pauses)])
            if fail_at == i:
                raise error if error is not None else Boom(name)
            yield (name, i)
    finally:
        if log is not None:
            log.append(f"closed {name}")


# ------------------------------------------------------------------------- ordering (property)
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 25), st.lists(st.integers(0, 2), min_size=1, max_size=5)),
        min_size=0,
        max_size=6,
    ),
    buffer=st.sampled_from([1, 2, 3, 16]),
)
async def test_merge_loses_nothing_and_keeps_per_source_order(plan: list[tuple[int, list[int]]], buffer: int) -> None:
    sources = [gen(f"s{k}", n, pauses=pauses) for k, (n, pauses) in enumerate(plan)]
    out = await merge(*sources, buffer=buffer).collect()
    assert len(out) == sum(n for n, _ in plan)
    for k, (n, _) in enumerate(plan):
        assert [i for name, i in out if name == f"s{k}"] == list(range(n))


async def test_merge_empty_and_single() -> None:
    assert await merge().collect() == []
    assert await merge(gen("a", 3)).collect() == [("a", 0), ("a", 1), ("a", 2)]


async def test_merge_accepts_streams_and_is_reiterable_over_reiterable_sources() -> None:
    m = merge(Stream.from_iterable([1, 2]), Stream.from_iterable([3]))
    assert sorted(await m.collect()) == [1, 2, 3]
    assert sorted(await m.collect()) == [1, 2, 3]


# ------------------------------------------------------------------------- provenance
async def test_merge_labels_stamp_agent_only_when_missing() -> None:
    async def run(agent: str) -> AsyncGenerator[Any, None]:
        yield TextDelta(delta="x", run_id="r1", seq=0)
        yield TextDelta(delta="y", run_id="r1", seq=1, agent=agent)
        yield "not an event"

    out = await merge({"researcher": run("named"), "writer": run("")}).collect()
    events = [e for e in out if isinstance(e, TextDelta)]
    assert sorted((e.agent, e.delta) for e in events) == [
        ("named", "y"),
        ("researcher", "x"),
        ("writer", "x"),
        ("writer", "y"),
    ]
    assert all(e.run_id == "r1" for e in events)
    assert out.count("not an event") == 2
    # an event that already names its agent is passed as the same object
    original = TextDelta(delta="z", agent="kept")

    async def one() -> AsyncGenerator[Any, None]:
        yield original

    assert (await merge({"label": one()}).collect())[0] is original


# ------------------------------------------------------------------------- errors
async def test_first_error_cancels_siblings_and_is_reraised_as_itself() -> None:
    log: list[str] = []
    err = Boom("the one")
    sources = [gen("bad", 5, log=log, pauses=[2], fail_at=2, error=err)]
    sources += [gen(f"slow{k}", 1000, log=log, pauses=[2]) for k in range(5)]
    with pytest.raises(Boom) as info:
        await merge(*sources).collect()
    assert info.value is err
    assert sorted(log) == sorted(["closed bad"] + [f"closed slow{k}" for k in range(5)])


async def test_error_not_wrapped_in_iterate_nor_in_task_scope() -> None:
    err = Boom("x")
    with pytest.raises(Boom) as info:
        async with merge(gen("a", 5, fail_at=1, error=err), gen("b", 100, pauses=[1])).iterate() as it:
            async for _ in it:
                pass
    assert info.value is err
    log: list[str] = []
    with pytest.raises(Boom) as info2:
        async with task_scope():
            async for _ in merge(gen("a", 5, fail_at=1, error=err, pauses=[2]), gen("b", 100, pauses=[1], log=log)):
                pass
    assert info2.value is err
    assert log == ["closed b"]


async def test_consumer_error_leaves_iterate_as_itself() -> None:
    err = Boom("consumer")
    with pytest.raises(Boom) as info:
        async with merge(gen("a", 50), gen("b", 50)).iterate() as it:
            async for _ in it:
                raise err
    assert info.value is err


async def test_items_before_the_error_are_emitted() -> None:
    async def src() -> AsyncGenerator[int, None]:
        yield 1
        yield 2
        raise Boom("late")

    got: list[int] = []
    with pytest.raises(Boom):
        async with task_scope():
            async for x in merge(src()):
                got.append(x)
    assert got == [1, 2]


async def test_on_error_continue_emits_error_event_and_keeps_others() -> None:
    async def bad() -> AsyncGenerator[Any, None]:
        yield TextDelta(delta="a", run_id="run-bad", seq=0)
        await anyio.lowlevel.checkpoint()
        raise Boom("kaput")

    async def good() -> AsyncGenerator[Any, None]:
        for i in range(5):
            await anyio.lowlevel.checkpoint()
            yield TextDelta(delta=str(i), run_id="run-good", seq=i)

    out = await merge({"bad": bad(), "good": good()}, on_error="continue").collect()
    errors = [e for e in out if isinstance(e, ErrorEvent)]
    assert len(errors) == 1
    e = errors[0]
    assert (e.agent, e.run_id, e.error_type, e.message, e.seq) == ("bad", "run-bad", "Boom", "kaput", 1)
    assert [x.delta for x in out if isinstance(x, TextDelta) and x.agent == "good"] == ["0", "1", "2", "3", "4"]
    assert out.index(e) > out.index(next(x for x in out if getattr(x, "delta", None) == "a"))


# ------------------------------------------------------------------------- closing / cancellation
@pytest.mark.parametrize("mode", ["iterate", "take", "first", "scope", "scope_abandoned"])
async def test_break_out_of_100_sources_closes_every_source(
    mode: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # garbage an earlier test left (e.g. a dead task whose exception asyncio logs when it is
    # collected) is collected first, so the checks below see only what this test leaves
    gc.collect()
    caplog.clear()
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)  # "Exception ignored in ..."
    before = live_tasks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log: list[str] = []
        sources = [gen(f"s{k}", 10_000, log=log, pauses=[0, 1, 2]) for k in range(100)]
        merged = merge(*sources)
        got = 0
        if mode == "iterate":
            async with merged.iterate() as it:
                async for _ in it:
                    got += 1
                    if got == 250:
                        break
        elif mode == "take":
            got = len(await (merged | take(250)).collect())
        elif mode == "first":
            await merged.first()
            got = 250
        elif mode == "scope":
            # a bare `async for` in a hand-opened host, closed by the consumer
            async with task_scope():
                async with aclosing(merged.__aiter__()) as agen:
                    async for _ in agen:
                        got += 1
                        if got == 250:
                            break
                assert len(log) == 100  # closing the iterator closed every source, inside the scope
        else:
            # a bare `async for` abandoned with `break`: leaving the scope cancels what the unclosed
            # iterator left running, and every source is closed by then
            agen = merged.__aiter__()
            async with task_scope():
                async for _ in agen:
                    got += 1
                    if got == 250:
                        break
            assert len(log) == 100
            await agen.aclose()  # nothing left to do, but the generator itself must be finished
        gc.collect()
        await anyio.sleep(0.01)
    assert got == 250
    assert sorted(log) == sorted(f"closed s{k}" for k in range(100))
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)
    # and silently: no warning, nothing printed or logged, no exception swallowed by a finalizer
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    assert capfd.readouterr() == ("", "")
    assert [r.getMessage() for r in caplog.records] == []
    assert [f"{u.exc_type.__name__}: {u.exc_value} in {u.object!r}" for u in unraisable] == []


async def test_consumer_cancelled_closes_every_source() -> None:
    log: list[str] = []
    with anyio.move_on_after(0.05):
        async with merge(*[gen(f"s{k}", 10**9, log=log, pauses=[2]) for k in range(20)]).iterate() as it:
            async for _ in it:
                pass
    assert len(log) == 20


async def test_a_source_whose_close_awaits_is_closed_even_when_the_host_is_cancelled() -> None:
    log: list[str] = []

    async def slow_close(name: str) -> AsyncGenerator[int, None]:
        try:
            while True:
                yield 1  # never awaits: its task waits for buffer space, the source at this yield
        finally:
            await anyio.sleep(0.001)  # cleanup that awaits (an HTTP connection's close, say)
            log.append(f"closed {name}")

    agen = merge(slow_close("a"), slow_close("b"), buffer=1).__aiter__()
    async with task_scope():
        async for _ in agen:
            break  # abandoned: the scope's exit cancels the source tasks
    await agen.aclose()
    assert sorted(log) == ["closed a", "closed b"]


# ------------------------------------------------------------------------- task host
async def test_bare_async_for_outside_a_host_raises_task_host_required() -> None:
    before = live_tasks()
    log: list[str] = []
    merged = merge(gen("a", 10, log=log), gen("b", 10, log=log))
    for stream in (merged, merged | map(str)):
        agen = stream.__aiter__()
        with pytest.raises(TaskHostRequired, match=r"merge\(\)") as info:
            async for _ in agen:
                pytest.fail("a bare merge must not emit")
        assert "iterate()" in str(info.value)
        await agen.aclose()
    assert log == []  # no source ran
    assert live_tasks() - before == set()  # none left by this test (an earlier test's stray task may finish meanwhile)
    # the same stream then works through a terminal, and with a hand-opened host
    assert len(await merged.collect()) == 20
    async with task_scope():
        assert len([x async for x in merge(gen("c", 3), gen("d", 3))]) == 6


async def test_task_scope_is_the_core_host_and_is_exported() -> None:
    from streamops._host import _HOST

    assert exported_task_scope is task_scope
    assert _HOST.get() is None
    async with task_scope() as tg:
        assert _HOST.get() is tg
        async with task_scope() as inner:  # nested: the innermost host is current
            assert _HOST.get() is inner
        assert _HOST.get() is tg
    assert _HOST.get() is None


async def test_concat_needs_no_host() -> None:
    assert [x async for x in concat(gen("a", 2), gen("b", 1))] == [("a", 0), ("a", 1), ("b", 0)]


# ------------------------------------------------------------------------- context variables
VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def test_contextvars_set_by_a_source_persist_across_its_items() -> None:
    async def src(name: str) -> AsyncGenerator[tuple[str, str], None]:
        VAR.set(name)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
            yield name, VAR.get()

    VAR.set("consumer")
    out = await merge(src("a"), src("b"), src("c"), buffer=1).collect()
    assert len(out) == 60
    assert all(name == value for name, value in out)
    assert VAR.get() == "consumer"


# ------------------------------------------------------------------------- fairness
@pytest.mark.parametrize("buffer", [1, 4, 16])
async def test_a_source_that_never_awaits_cannot_starve_another(buffer: int) -> None:
    async def greedy() -> AsyncGenerator[str, None]:
        while True:
            yield "g"

    async def polite() -> AsyncGenerator[str, None]:
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
            yield "p"

    out: list[str] = []
    async with merge(greedy(), polite(), buffer=buffer).iterate() as it:
        async for x in it:
            out.append(x)
            if out.count("p") == 10:
                break
    # polite got all its items while greedy ran at most a few buffers ahead of each of them
    assert len(out) <= 10 * (2 * buffer + 2) + buffer


# ------------------------------------------------------------------------- composition
async def test_piping_keeps_the_scope_and_nested_merges_work() -> None:
    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x * 2

    inner = merge(Stream.from_iterable(range(5)), Stream.from_iterable(range(5, 10)))
    piped = merge(inner, Stream.from_iterable(range(10, 15))) | filter(lambda x: x % 2 == 0) | map(double)
    assert sorted(await piped.collect()) == [x * 2 for x in range(0, 15, 2)]
    assert await (merge(Stream.from_iterable([7])) | map(double)).first() == 14
    assert await merge(Stream.from_iterable([1, 2])).last() in (1, 2)
    seen: list[int] = []
    assert await merge(Stream.from_iterable([1, 2, 3])).run(seen.append) == 3
    assert sorted(seen) == [1, 2, 3]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_iter_sync_and_to_list_work_outside_any_loop(backend: str) -> None:
    m = merge(Stream.from_iterable([1, 2]), Stream.from_iterable([3]))
    assert sorted(m.to_list(backend=backend)) == [1, 2, 3]
    assert sorted(m.iter_sync(backend=backend)) == [1, 2, 3]
    piped = merge(Stream.from_iterable(range(10)), Stream.from_iterable(range(10, 20))) | map(lambda x: x * 2)
    assert sorted(piped.to_list(backend=backend)) == [x * 2 for x in range(20)]
    assert sorted(piped.iter_sync(backend=backend)) == [x * 2 for x in range(20)]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_iter_sync_stopped_early_closes_every_source(backend: str) -> None:
    log: list[str] = []
    it = merge(*[gen(f"s{k}", 10_000, log=log, pauses=[1]) for k in range(10)]).iter_sync(backend=backend)
    got = [x for _, x in zip(range(25), it, strict=False)]
    it.close()
    assert len(got) == 25
    assert sorted(log) == sorted(f"closed s{k}" for k in range(10))


async def test_merge_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="buffer"):
        merge(gen("a", 1), buffer=0)
    with pytest.raises(ValueError, match="on_error"):
        merge(gen("a", 1), on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mapping"):
        merge({"a": gen("a", 1)}, gen("b", 1))


# ------------------------------------------------------------------------- concat
async def test_concat_runs_one_after_another_and_closes_each_before_the_next() -> None:
    log: list[str] = []

    async def src(name: str, n: int) -> AsyncGenerator[str, None]:
        log.append(f"open {name}")
        try:
            for i in range(n):
                yield f"{name}{i}"
        finally:
            log.append(f"close {name}")

    out = await concat(src("a", 2), Stream.from_iterable(["x"]), src("b", 1)).collect()
    assert out == ["a0", "a1", "x", "b0"]
    assert log == ["open a", "close a", "open b", "close b"]


async def test_concat_stopping_early_closes_current_and_unstarted_sources() -> None:
    log: list[str] = []
    out: list[Any] = []
    async with concat(gen("a", 3, log=log), gen("b", 3, log=log), gen("c", 3, log=log)).iterate() as it:
        async for x in it:
            out.append(x)
            if x == ("b", 0):
                break
    assert out == [("a", 0), ("a", 1), ("a", 2), ("b", 0)]
    assert log == ["closed a", "closed b"]  # c never started: nothing of it ran
    assert await concat().collect() == []


async def test_concat_error_is_reraised_as_itself() -> None:
    err = Boom("c")
    with pytest.raises(Boom) as info:
        await concat(gen("a", 2), gen("b", 2, fail_at=1, error=err), gen("c", 2)).collect()
    assert info.value is err


async def test_concat_of_events_keeps_them_unchanged() -> None:
    e1 = TextDelta(delta="a")
    e2 = ToolCallEnd(call_id="c", name="t", arguments="{}")
    assert await concat(Stream.from_iterable([e1]), Stream.from_iterable([e2])).collect() == [e1, e2]


# --------------------------------------------------------------------- failure meets deadline
async def _fail_when_cancelled(scope: anyio.CancelScope, steps: int) -> AsyncGenerator[int, None]:
    for _ in range(steps):
        await anyio.lowlevel.checkpoint()
    scope.cancel()  # the consumer's deadline passes at the moment the source fails
    raise Boom("source failed")
    yield 0  # pragma: no cover


async def _forever(pause: bool) -> AsyncGenerator[int, None]:
    while True:
        yield 0
        await (anyio.lowlevel.checkpoint() if pause else anyio.sleep(1))


@pytest.mark.parametrize("terminal", ["collect", "iterate"])
async def test_a_failure_that_meets_the_consumers_cancellation_is_never_wrapped(terminal: str) -> None:
    """Issue 13 item 5: on trio the race gave ``ExceptionGroup([Boom])`` (the nursery raised
    ``[Boom, Cancelled]`` and the deadline's scope stripped the ``Cancelled``). Every step count
    and sibling kind: the outcome is the source's error itself or the cancellation, never a
    group."""
    outcomes: set[str] = set()
    for steps in range(8):
        for pause in (False, True):
            scope = anyio.CancelScope()
            outcome = "cancelled"
            try:
                with scope:
                    stream = merge(_fail_when_cancelled(scope, steps), _forever(pause))
                    if terminal == "collect":
                        await stream.collect()
                    else:
                        async with stream.iterate() as it:
                            async for _ in it:
                                pass
                    outcome = "completed"
            except Boom:
                outcome = "boom"
            except BaseExceptionGroup as group:  # pragma: no cover - the bug
                pytest.fail(f"steps={steps} pause={pause}: wrapped {group!r}")
            assert outcome != "completed", (steps, pause)
            outcomes.add(outcome)
    assert "boom" in outcomes


@pytest.mark.parametrize("operator", ["merge", "timeout"])
async def test_a_failure_at_the_deadline_gives_the_error_or_timeout_never_a_group_nor_a_result(operator: str) -> None:
    """The race of item 5 with a real deadline, 150 trials of random timing: before the fix
    about 5% of trials gave ``ExceptionGroup([Late])`` on trio, and about 2-4% returned a short
    list on asyncio (the deadline had cancelled the source tasks, and the consumer, woken by
    their end before the cancellation reached it, took it for the end of the sources). The
    same holds for the pump of ``timeout()`` (:mod:`streamops._pump`). The outcome must be the
    source's error or the deadline, never a group nor a result."""
    import random

    from streamops.operators.time import timeout

    rng = random.Random(13)

    class Late(Exception):
        pass

    async def failing(delay: float) -> AsyncGenerator[int, None]:
        yield 1
        await anyio.sleep(delay)
        raise Late

    async def ticking() -> AsyncGenerator[int, None]:
        while True:
            yield 0
            await anyio.sleep(0.0005)

    for _ in range(150):
        delay = rng.uniform(0.0, 0.003)
        stream = (
            merge(failing(delay), ticking())
            if operator == "merge"
            else Stream(failing(delay)).pipe(timeout(total=60.0))
        )
        try:
            with anyio.fail_after(max(0.0, delay + rng.uniform(-0.0004, 0.0004))):
                items = await stream.collect()
            pytest.fail(f"{operator} returned {len(items)} items after its sources were cancelled")
        except (Late, TimeoutError):
            pass
