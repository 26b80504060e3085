"""``Stream.run(sink)``: the sink object's ``close()`` is awaited when it is async (and called
when it is sync), at the end, also when the stream fails."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from streamops import Stream
from tests._util import Boom, Probe

pytestmark = pytest.mark.anyio


class AsyncCloseSink:
    """A sink with an ``async def close()`` (no ``aclose``), like a network writer."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.closed = False

    def send(self, item: Any) -> None:
        self.items.append(item)

    async def close(self) -> None:
        await anyio.lowlevel.checkpoint()  # really suspends: the close must be awaited to finish
        self.closed = True


class SyncCloseSink:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.closed = False

    async def send(self, item: Any) -> None:
        self.items.append(item)

    def close(self) -> None:
        self.closed = True


async def test_an_async_close_of_the_sink_is_awaited() -> None:
    sink = AsyncCloseSink()
    assert await Stream.from_iterable([1, 2, 3]).run(sink) == 3
    assert sink.items == [1, 2, 3]
    assert sink.closed


async def test_an_async_close_of_the_sink_is_awaited_when_the_stream_fails() -> None:
    sink = AsyncCloseSink()
    with pytest.raises(Boom):
        await Probe([1, 2, 3], raise_at=2).stream().run(sink)
    assert sink.items == [1, 2]
    assert sink.closed


async def test_a_sync_close_of_the_sink_is_still_called() -> None:
    sink = SyncCloseSink()
    assert await Stream.from_iterable([1, 2]).run(sink) == 2
    assert sink.closed
