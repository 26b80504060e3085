"""``Pump``: pull a source in a task so the consumer can wait for items with a deadline.

Wrapping ``anext()`` in a timeout cancels the pull that is in flight: the async generator
being pulled is then finished and its pending item lost. A pump pulls the source in a task of
the current host (see :mod:`streamops._host`) and parks each item in a small buffer; the
consumer waits on the buffer, and a wait that times out loses nothing, because the item stays
where it is until the next :meth:`Pump.get`. :func:`pump_timed` is the loop of the operators
built on it that hold items until a deadline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from ._host import current_host
from ._stream import Marker

if TYPE_CHECKING:
    import anyio

__all__ = ["TIMED_OUT", "Pump", "TimedBind", "pump_timed"]

T = TypeVar("T")


TIMED_OUT: Final = Marker("TIMED_OUT")
"""Returned by :meth:`Pump.get` when the deadline passed before an item arrived."""


class Pump(Generic[T]):
    """Pulls ``source`` in a task of the current host, at most ``capacity`` items ahead.

    - :meth:`start` starts the task (raises ``TaskHostRequired`` under a bare ``async for``).
    - :meth:`get` returns the next item, :data:`TIMED_OUT` when ``deadline`` (an
      ``anyio.current_time()`` value, seconds) passes first, raises ``StopAsyncIteration`` at
      the end of the source, and re-raises the source's exception as itself.
    - :meth:`aclose` cancels the task and waits until the source has been closed.
    """

    __slots__ = (
        "_capacity",
        "_closed",
        "_done",
        "_error",
        "_interrupted",
        "_items",
        "_name",
        "_scope",
        "_source",
        "_space",
        "_waiter",
    )

    def __init__(self, source: AsyncIterable[T], operator: str, *, capacity: int = 1) -> None:
        self._source = source
        self._name = operator
        self._capacity = max(1, capacity)
        self._items: deque[T] = deque()
        self._waiter: anyio.Event | None = None
        self._space: anyio.Event | None = None
        self._done = False
        self._error: Exception | None = None
        self._interrupted = False  # the task was cancelled from outside, not by aclose()
        self._scope: anyio.CancelScope | None = None
        self._closed: anyio.Event | None = None

    def start(self) -> None:
        """Start pulling in a task of the current host."""
        import anyio

        tg = current_host(self._name)
        self._closed = anyio.Event()
        self._scope = anyio.CancelScope()
        tg.start_soon(self._run, name=f"streamops {self._name} pump")

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            w.set()

    async def _run(self) -> None:
        import anyio

        assert self._scope is not None and self._closed is not None
        it = self._source.__aiter__()
        try:
            with self._scope:
                try:
                    async for x in it:
                        self._items.append(x)
                        self._wake()
                        while len(self._items) >= self._capacity:
                            self._space = anyio.Event()
                            await self._space.wait()
                except Exception as exc:
                    self._error = exc
        except anyio.get_cancelled_exc_class():
            if not self._scope.cancel_called:
                self._interrupted = True
            raise
        finally:
            self._done = True
            self._wake()
            try:
                aclose: Any = getattr(it, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            finally:
                self._closed.set()

    async def get(self, deadline: float | None = None) -> T | Marker:
        """The next item; see the class docstring."""
        import anyio

        items = self._items
        while not items:
            if self._done:
                if self._error is not None:
                    raise self._error
                if self._interrupted:
                    # The source was cancelled from outside (a deadline around the consumer),
                    # it did not end: the consumer is in the same cancelled scope and sees the
                    # cancellation here rather than a complete stream.
                    self._interrupted = False
                    await anyio.lowlevel.checkpoint()
                raise StopAsyncIteration
            ev = self._waiter = anyio.Event()
            if deadline is None:
                await ev.wait()
            else:
                with anyio.move_on_after(deadline - anyio.current_time()):
                    await ev.wait()
                if not ev.is_set() and not items and not self._done:
                    if self._waiter is ev:
                        self._waiter = None
                    return TIMED_OUT
        x = items.popleft()
        space = self._space
        if space is not None:
            self._space = None
            space.set()
        return x

    async def aclose(self) -> None:
        """Stop pulling and wait until the source is closed."""
        import anyio

        if self._scope is None or self._closed is None:
            return
        self._scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._closed.wait()


U = TypeVar("U")

TimedBind = Callable[[list[U]], tuple[Callable[[Any], float | None], Callable[[], None]]]
"""``bind(out)`` of :func:`pump_timed`: the ``(step, finish)`` of one iteration, which put what
goes out in ``out``."""


async def pump_timed(source: AsyncIterable[Any], operator: str, bind: TimedBind[U]) -> AsyncGenerator[U, None]:
    """The loop of an operator that reads ``source`` through a :class:`Pump` and acts on time
    (``debounce``, ``throttle``, ``smooth(max_delay=...)``).

    ``bind(out)`` is called once per iteration and gives ``(step, finish)``: ``step(item)`` is
    told each item of ``source``, or :data:`TIMED_OUT` once the deadline it last returned has
    passed, and returns the next deadline (an ``anyio.current_time()`` value in seconds, or
    ``None``: wait for the next item however long it takes); ``finish()`` is told when
    ``source`` ends or fails (before its error is re-raised). Both put what goes out in
    ``out``, which is emitted after each call. The pump is closed however the loop ends.
    """
    out: list[U] = []
    step, finish = bind(out)
    pump: Pump[Any] = Pump(source, operator)
    pump.start()
    deadline: float | None = None
    try:
        while True:
            try:
                x = await pump.get(deadline)
            except StopAsyncIteration:
                break
            except Exception:
                finish()  # what is held goes out before the source's error
                for y in out:
                    yield y
                raise
            deadline = step(x)
            if out:
                for y in out:
                    yield y
                out.clear()
        finish()
        for y in out:
            yield y
    finally:
        await pump.aclose()
