"""ReactiveX interop: ``Stream.from_observable`` and ``to_observable`` (asyncio and trio)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import reactivex
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from streamops import Stream, map, take
from streamops.errors import BufferOverflowError, StreamopsError
from tests._util import Boom, Counter, Probe, drain

# ----------------------------------------------------------------------------- helpers


class Tracked:
    """A cold observable that emits ``items`` synchronously on subscribe, then ends as told
    (``"complete"``, an exception, or ``None`` to stay open), and records disposal."""

    def __init__(self, items: list[Any], end: str | BaseException | None = "complete") -> None:
        self.items = items
        self.end = end
        self.subscribed = 0
        self.disposed = threading.Event()

    def observable(self) -> reactivex.Observable[Any]:
        def subscribe(observer: Any, scheduler: Any = None) -> Disposable:
            self.subscribed += 1
            for x in self.items:
                observer.on_next(x)
            if self.end == "complete":
                observer.on_completed()
            elif isinstance(self.end, BaseException):
                observer.on_error(self.end)
            return Disposable(self.disposed.set)

        return reactivex.create(subscribe)


async def wait_for(cond: Callable[[], object], limit: float = 5.0) -> None:
    """Poll ``cond`` (state changed by Rx callbacks or other threads, which cannot set an
    anyio event) until it holds."""
    with anyio.fail_after(limit):
        while not cond():  # noqa: ASYNC110
            await anyio.sleep(0.001)


# ----------------------------------------------------------------------------- from_observable
# These run on asyncio and trio: the bridge uses only anyio.


@pytest.mark.anyio
async def test_subject_pushed_from_the_loop() -> None:
    subject: Subject[int] = Subject()
    s = Stream.from_observable(subject) | map(lambda x: x * 10)
    got: list[int] = []

    async def consume() -> None:
        got.extend(await s.collect())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await wait_for(lambda: subject.observers)
            for i in range(5):
                subject.on_next(i)
                if i % 2:
                    await anyio.lowlevel.checkpoint()
            subject.on_completed()
    assert got == [0, 10, 20, 30, 40]
    assert subject.observers == []


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["to_thread", "thread"])
async def test_subject_pushed_from_another_thread(how: str) -> None:
    subject: Subject[int] = Subject()
    s = Stream.from_observable(subject, max_buffer=8)
    got: list[int] = []
    pushers: set[int] = set()

    def push_all() -> None:
        pushers.add(threading.get_ident())
        for i in range(200):
            subject.on_next(i)  # blocks until the item is buffered on the loop
        subject.on_completed()

    async def consume() -> None:
        async with s.iterate() as it:
            async for x in it:
                got.append(x)
                if x % 7 == 0:
                    await anyio.lowlevel.checkpoint()  # a slow-ish consumer

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await wait_for(lambda: subject.observers)
            if how == "to_thread":
                await anyio.to_thread.run_sync(push_all)
            else:
                t = threading.Thread(target=push_all)
                t.start()
                await wait_for(lambda: not t.is_alive())
    # in order, nothing lost: the 8-item buffer never overflowed because each off-loop push
    # waits until the item is buffered (the default overflow policy would have failed)
    assert got == list(range(200))
    assert threading.get_ident() not in pushers


@pytest.mark.anyio
async def test_completion_after_draining_the_buffer() -> None:
    src = Tracked([1, 2, 3])
    got, error = await drain(Stream.from_observable(src.observable()))
    assert (got, error) == ([1, 2, 3], None)
    assert src.disposed.is_set()


@pytest.mark.anyio
async def test_error_after_draining_the_buffer() -> None:
    err = Boom("rx")
    src = Tracked(["a", "b"], end=err)
    got, error = await drain(Stream.from_observable(src.observable()))
    assert got == ["a", "b"]
    assert error is err
    assert src.disposed.is_set()


@pytest.mark.anyio
async def test_error_from_a_subject_later() -> None:
    subject: Subject[int] = Subject()
    err = Boom("later")
    result: dict[str, Any] = {}

    async def consume() -> None:
        result["got"], result["error"] = await drain(Stream.from_observable(subject))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await wait_for(lambda: subject.observers)
            subject.on_next(1)
            await anyio.sleep(0.01)
            subject.on_next(2)
            subject.on_error(err)
    assert result == {"got": [1, 2], "error": err}


@pytest.mark.anyio
async def test_overflow_error() -> None:
    src = Tracked(list(range(10)))
    got, error = await drain(Stream.from_observable(src.observable(), max_buffer=3))
    assert got == [0, 1, 2]  # what was buffered is delivered first
    assert isinstance(error, BufferOverflowError)
    assert isinstance(error, StreamopsError)
    assert error.capacity == 3
    assert src.disposed.is_set()


@pytest.mark.anyio
async def test_overflow_drop_oldest() -> None:
    src = Tracked(list(range(10)))
    s = Stream.from_observable(src.observable(), max_buffer=3, overflow="drop_oldest")
    assert await drain(s) == ([7, 8, 9], None)


@pytest.mark.anyio
async def test_overflow_drop_newest() -> None:
    src = Tracked(list(range(10)))
    s = Stream.from_observable(src.observable(), max_buffer=3, overflow="drop_newest")
    assert await drain(s) == ([0, 1, 2], None)


@pytest.mark.anyio
async def test_overflow_while_the_consumer_is_behind() -> None:
    subject: Subject[int] = Subject()
    s = Stream.from_observable(subject, max_buffer=2, overflow="drop_newest")
    with anyio.fail_after(5):
        async with s.iterate() as it:
            first = asyncio_free_anext(it)
            async with anyio.create_task_group() as tg:
                tg.start_soon(first.run)
                await wait_for(lambda: subject.observers)
                subject.on_next(0)
            assert first.value == 0
            for i in range(1, 6):  # nobody pulls now: only 2 fit
                subject.on_next(i)
            subject.on_completed()
            rest = [x async for x in it]
    assert rest == [1, 2]


class asyncio_free_anext:  # noqa: N801 - a tiny helper used like a function
    """Await one ``__anext__`` in a task (works on both backends)."""

    def __init__(self, it: Any) -> None:
        self.it = it
        self.value: Any = None

    async def run(self) -> None:
        self.value = await self.it.__anext__()


def test_max_buffer_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        Stream.from_observable(reactivex.empty(), max_buffer=0)


@pytest.mark.anyio
@pytest.mark.parametrize("stop", ["break", "first", "take"])
async def test_early_stop_disposes_the_subscription(stop: str) -> None:
    src = Tracked([1, 2, 3, 4], end=None)  # never completes
    s = Stream.from_observable(src.observable())
    with anyio.fail_after(5):
        if stop == "break":
            async with s.iterate() as it:
                async for x in it:
                    assert x == 1
                    break
        elif stop == "first":
            assert await s.first() == 1
        else:
            assert await (s | take(2)).collect() == [1, 2]
    assert src.subscribed == 1
    assert src.disposed.is_set()


@pytest.mark.anyio
async def test_subject_observer_removed_on_break() -> None:
    subject: Subject[int] = Subject()
    got: list[int] = []

    async def consume() -> None:
        async with Stream.from_observable(subject).iterate() as it:
            async for x in it:
                got.append(x)
                break

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await wait_for(lambda: subject.observers)
            subject.on_next(1)
    assert got == [1]
    assert subject.observers == []
    subject.on_next(2)  # nobody listens any more: no error, nothing delivered
    assert got == [1]


@pytest.mark.anyio
async def test_cancelled_consumer_disposes_the_subscription() -> None:
    src = Tracked([], end=None)
    with anyio.move_on_after(0.05) as scope:
        await Stream.from_observable(src.observable()).collect()
    assert scope.cancelled_caught
    assert src.disposed.is_set()


@pytest.mark.anyio
async def test_subscribes_lazily_and_per_iteration() -> None:
    src = Tracked([1, 2])
    s = Stream.from_observable(src.observable())
    assert src.subscribed == 0
    assert await s.collect() == [1, 2]
    assert await s.collect() == [1, 2]
    assert src.subscribed == 2


# ----------------------------------------------------------------------------- to_observable
# asyncio-specific (asyncio tasks, AsyncIOScheduler); the both-backend tests are further down.

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class Recorder:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.errors: list[BaseException] = []
        self.completed = 0
        self.done = asyncio.Event()

    def subscribe(self, obs: reactivex.Observable[Any]) -> Any:
        return obs.subscribe(on_next=self.items.append, on_error=self.on_error, on_completed=self.on_completed)

    def on_error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.done.set()

    def on_completed(self) -> None:
        self.completed += 1
        self.done.set()


@pytest.mark.anyio
@asyncio_only
async def test_to_observable_items_and_completion(anyio_backend: str) -> None:
    before = asyncio.all_tasks()
    rec = Recorder()
    probe = Probe([1, 2, 3])
    disposable = rec.subscribe((probe.stream() | map(lambda x: x + 1)).to_observable())
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.items == [2, 3, 4]
    assert (rec.completed, rec.errors) == (1, [])
    assert probe.closed
    disposable.dispose()  # after completion: harmless
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


@pytest.mark.anyio
@asyncio_only
async def test_to_observable_error(anyio_backend: str) -> None:
    rec = Recorder()
    probe = Probe(["a"], raise_at=1)
    rec.subscribe(probe.stream().to_observable())
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.items == ["a"]
    assert rec.errors == [probe.error]
    assert rec.errors[0] is probe.error
    assert rec.completed == 0
    assert probe.closed


@pytest.mark.anyio
@asyncio_only
async def test_to_observable_dispose_cancels_and_closes_the_stream(anyio_backend: str) -> None:
    before = asyncio.all_tasks()
    counter = Counter()
    three = asyncio.Event()

    async def slow(x: int) -> int:
        await asyncio.sleep(0.001)
        return x

    rec = Recorder()

    def on_next(x: int) -> None:
        rec.items.append(x)
        if len(rec.items) == 3:
            three.set()

    disposable = (
        (counter.stream() | map(slow))
        .to_observable()
        .subscribe(on_next=on_next, on_error=rec.on_error, on_completed=rec.on_completed)
    )
    await asyncio.wait_for(three.wait(), 5)
    disposable.dispose()
    for _ in range(10):
        await asyncio.sleep(0)
        if counter.closed and asyncio.all_tasks() == before:
            break
    assert counter.closed
    assert asyncio.all_tasks() == before  # the task is gone
    n = len(rec.items)
    await asyncio.sleep(0.02)
    assert len(rec.items) == n  # nothing after the disposal
    assert (rec.completed, rec.errors) == (0, [])


@pytest.mark.anyio
@asyncio_only
async def test_to_observable_then_back(anyio_backend: str) -> None:
    s = Stream.from_iterable(range(50)) | map(lambda x: -x)
    back = Stream.from_observable(s.to_observable(), max_buffer=100)
    assert await back.collect() == [-x for x in range(50)]


@pytest.mark.anyio
@asyncio_only
async def test_to_observable_dropped_disposable_still_completes(anyio_backend: str) -> None:
    # dropping the disposable is not disposing: the subscription runs on to completion
    rec = Recorder()
    gate = asyncio.Event()

    async def wait_gate(x: int) -> int:
        await gate.wait()
        return x

    rec.subscribe((Stream.from_iterable([1, 2]) | map(wait_gate)).to_observable())
    await asyncio.sleep(0)
    gc.collect()
    gate.set()
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.items == [1, 2]
    assert rec.completed == 1


@pytest.mark.anyio
@asyncio_only
async def test_an_asyncio_scheduler_timer_feeds_a_stream(anyio_backend: str) -> None:
    """Rx's own ``AsyncIOScheduler`` drives the observable (its timer calls ``on_next`` from the
    loop): the stream takes three ticks, then disposes the timer."""
    from reactivex import operators as ops
    from reactivex.scheduler.eventloop import AsyncIOScheduler

    scheduler = AsyncIOScheduler(asyncio.get_running_loop())
    pushed: list[int] = []
    ticks = reactivex.interval(0.01, scheduler=scheduler).pipe(ops.do_action(on_next=pushed.append))
    got = await asyncio.wait_for((Stream.from_observable(ticks) | take(3)).collect(), 5)
    assert got == [0, 1, 2]
    n = len(pushed)
    await asyncio.sleep(0.1)  # ten more periods: a timer still subscribed would push again
    assert len(pushed) == n <= 4


@pytest.mark.anyio
@asyncio_only
async def test_to_observable_composes_with_rx_operators_on_an_asyncio_scheduler(anyio_backend: str) -> None:
    """A stream's observable piped through Rx operators that hop onto ``AsyncIOScheduler``."""
    from reactivex import operators as ops
    from reactivex.scheduler.eventloop import AsyncIOScheduler

    scheduler = AsyncIOScheduler(asyncio.get_running_loop())
    probe = Probe(list(range(6)))
    rec = Recorder()
    rec.subscribe(
        probe.stream().to_observable().pipe(ops.filter(lambda x: x % 2 == 0), ops.observe_on(scheduler)),
    )
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.items == [0, 2, 4]
    assert (rec.completed, rec.errors) == (1, [])
    assert probe.closed


def test_to_observable_without_a_running_loop_reports_runtime_error() -> None:
    errors: list[BaseException] = []
    Stream.from_iterable([1]).to_observable().subscribe(on_next=lambda x: None, on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    # without an on_error, Rx raises it from subscribe
    with pytest.raises(RuntimeError):
        Stream.from_iterable([1]).to_observable().subscribe(on_next=lambda x: None)


# ----------------------------------------------------------------------------- both backends
# issue 15 item 18: to_observable under trio (it failed with "no running event loop"), and a
# ReactiveX operator in a stream pipe (it returned an Observable quietly).


class AnyRecorder:
    """Records an observer's calls; backend-neutral (poll with ``wait_for``)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.errors: list[BaseException] = []
        self.completed = 0

    def subscribe(self, obs: reactivex.Observable[Any]) -> Any:
        return obs.subscribe(on_next=self.items.append, on_error=self.errors.append, on_completed=self.completed_)

    def completed_(self) -> None:
        self.completed += 1

    def done(self) -> bool:
        return bool(self.completed or self.errors)


@pytest.mark.anyio
async def test_to_observable_on_both_backends_items_error_and_round_trip() -> None:
    rec = AnyRecorder()
    probe = Probe([1, 2, 3])
    rec.subscribe((probe.stream() | map(lambda x: x * 10)).to_observable())
    await wait_for(rec.done)
    assert (rec.items, rec.completed, rec.errors) == ([10, 20, 30], 1, [])
    assert probe.closed

    failing = Probe(["a"], raise_at=1)
    rec = AnyRecorder()
    rec.subscribe(failing.stream().to_observable())
    await wait_for(rec.done)
    assert rec.items == ["a"]
    assert rec.errors == [failing.error] and rec.completed == 0
    assert failing.closed

    back = Stream.from_observable((Stream.from_iterable(range(20)) | map(lambda x: -x)).to_observable(), max_buffer=32)
    assert await back.collect() == [-x for x in range(20)]


@pytest.mark.anyio
async def test_to_observable_dispose_cancels_on_both_backends() -> None:
    counter = Counter()

    async def slow(x: int) -> int:
        await anyio.sleep(0.001)
        return x

    rec = AnyRecorder()
    disposable = rec.subscribe((counter.stream() | map(slow)).to_observable())
    await wait_for(lambda: len(rec.items) >= 3)
    disposable.dispose()
    await wait_for(lambda: counter.closed)
    n = len(rec.items)
    await anyio.sleep(0.02)
    assert len(rec.items) == n  # nothing after the disposal
    assert (rec.completed, rec.errors) == (0, [])


def test_to_observable_error_names_the_backends_when_no_loop_runs() -> None:
    with pytest.raises(RuntimeError, match="asyncio event loop or trio"):
        Stream.from_iterable([1]).to_observable().subscribe(on_next=lambda x: None)


def test_an_rx_operator_in_a_stream_pipe_is_a_clear_type_error() -> None:
    from reactivex import operators as ops

    s = Stream.from_iterable([1, 2])
    with pytest.raises(TypeError, match=r"to_observable\(\).*from_observable"):
        s | ops.map(lambda x: x + 1)
    with pytest.raises(TypeError, match="from_observable"):
        s.pipe(map(lambda x: x), ops.filter(lambda x: x > 1))
    with pytest.raises(TypeError, match=r"returned builtins\.list, not a Stream"):
        s | (lambda st: [1])  # type: ignore[operator]
    # the supported route: out to Rx, back to a stream
    rx_piped = s.to_observable().pipe(ops.map(lambda x: x + 1))
    assert isinstance(rx_piped, reactivex.Observable)
