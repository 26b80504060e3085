"""Testing helpers: virtual clocks, so time operators can be tested in milliseconds.

- asyncio: :class:`VirtualClockEventLoop` (pass ``loop_factory=VirtualClockEventLoop`` to
  ``asyncio.Runner``, or ``("asyncio", {"loop_factory": VirtualClockEventLoop})`` as anyio's
  pytest ``anyio_backend``);
- trio: ``trio.testing.MockClock(autojump_threshold=0)`` (``("trio", {"clock": ...})``);
- :func:`virtual_backends` gives both, ready for a pytest ``anyio_backend`` fixture.

Under a virtual clock, whenever every task is waiting on a timer, the clock jumps to the next
timer instead of sleeping: ``await anyio.sleep(3600)`` returns at once with
``anyio.current_time()`` one hour later. Real I/O and worker threads still take real time
while the loop waits for them, but a timer that is due meanwhile fires early; use a virtual
clock for code whose waiting is all timers.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

__all__ = ["VirtualClockEventLoop", "virtual_backends"]


class VirtualClockEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose ``time()`` is virtual and jumps to the next timer when
    nothing is ready (instead of blocking in ``select``)."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        self._virtual_now = 0.0
        sel: Any = self._selector  # type: ignore[attr-defined]
        real_select = sel.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready: list[tuple[selectors.SelectorKey, int]] = real_select(0)
            if ready or timeout == 0:
                return ready
            if timeout is None:
                return real_select(None)  # type: ignore[no-any-return]
            self._virtual_now += timeout
            return []

        sel.select = select

    def time(self) -> float:
        """The virtual time, in seconds (starts at 0)."""
        return self._virtual_now


def virtual_backends() -> list[tuple[str, dict[str, Any]]]:
    """``anyio_backend`` values for asyncio and trio with virtual clocks (trio must be installed)."""
    from trio.testing import MockClock

    return [
        ("asyncio", {"loop_factory": VirtualClockEventLoop}),
        ("trio", {"clock": MockClock(autojump_threshold=0)}),
    ]
