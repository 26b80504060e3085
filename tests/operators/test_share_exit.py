"""``share()``/``tee()`` blocks hand the block's real exception to the task group they own:
it propagates unchanged (same object, not wrapped in an exception group), the task group sees
it (an error exit, not a normal one), and what the task group returns is respected."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import anyio
import anyio.abc
import pytest

from streamops import share, tee
from tests._util import Boom, Counter

pytestmark = pytest.mark.anyio


class RecordingTaskGroup:
    """A real task group that records the exception its ``__aexit__`` is given (and can
    pretend it handled it)."""

    def __init__(self, tg: anyio.abc.TaskGroup, seen: list[BaseException | None], handles: bool) -> None:
        self._tg = tg
        self._seen = seen
        self._handles = handles

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tg, name)

    async def __aenter__(self) -> RecordingTaskGroup:
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self._seen.append(exc)
        if exc is not None:
            assert exc_type is type(exc)
            assert tb is exc.__traceback__
        try:
            handled = await self._tg.__aexit__(exc_type, exc, tb)
        except BaseException:
            if self._handles:  # a task group that handles what it is given (say, its own cancellation)
                return True
            raise
        return handled or self._handles


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """What the task groups created during the test saw on exit."""
    return _record(monkeypatch, handles=False)


def _record(monkeypatch: pytest.MonkeyPatch, *, handles: bool) -> list[BaseException | None]:
    out: list[BaseException | None] = []
    create = anyio.create_task_group
    monkeypatch.setattr(anyio, "create_task_group", lambda: RecordingTaskGroup(create(), out, handles))
    return out


async def test_an_error_in_the_share_block_propagates_unchanged_and_the_task_group_sees_it(
    seen: list[BaseException | None],
) -> None:
    source = Counter()
    err = Boom("body")
    got: list[int] = []
    with anyio.fail_after(5), pytest.raises(Boom) as info:
        async with share(source.gen()) as hub, aclosing(aiter(hub.subscribe())) as sub:
            async for x in sub:
                got.append(x)
                if x == 2:
                    raise err
    assert info.value is err  # not an exception group
    assert got == [0, 1, 2]
    assert seen == [err]
    assert source.closed


async def test_an_error_in_the_tee_block_propagates_unchanged_and_the_task_group_sees_it(
    seen: list[BaseException | None],
) -> None:
    source = Counter()
    err = Boom("body")
    with anyio.fail_after(5), pytest.raises(Boom) as info:
        async with tee(source.gen(), 2) as (a, _b), aclosing(aiter(a)) as it:
            async for x in it:
                if x == 1:
                    raise err
    assert info.value is err
    assert seen == [err]
    assert source.closed


async def test_a_normal_exit_is_a_normal_exit_for_the_task_group(seen: list[BaseException | None]) -> None:
    source = Counter()
    async with share(source.gen()) as hub, aclosing(aiter(hub.subscribe())) as sub:
        async for x in sub:
            if x == 1:
                break
    assert seen == [None]
    assert source.closed


async def test_a_cancelled_block_hands_the_cancellation_to_the_task_group(seen: list[BaseException | None]) -> None:
    source = Counter()
    with anyio.fail_after(5), anyio.move_on_after(0.02) as scope:
        async with share(source.gen(), buffer=1) as hub:
            sub = hub.subscribe()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert len(seen) == 1
    assert isinstance(seen[0], anyio.get_cancelled_exc_class())
    assert source.closed
    assert sub is not None


async def test_what_the_task_group_returns_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record(monkeypatch, handles=True)
    err = Boom("body")
    async with share(Counter().gen()):
        raise err  # handled by the (recording) task group: suppressed
    assert seen == [err]
