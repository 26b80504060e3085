"""The live tasks of the running event loop, on asyncio and on trio: "no task is left behind" checks."""

from __future__ import annotations

from typing import Any

import sniffio


def live_tasks() -> set[Any]:
    """Every task alive right now on the current backend (the caller's own and the test runner's
    included): compare a set taken before a test's work with one taken after it."""
    backend = sniffio.current_async_library()
    if backend == "asyncio":
        import asyncio

        return set(asyncio.all_tasks())
    if backend == "trio":
        import trio

        found: set[Any] = set()
        todo = [trio.lowlevel.current_root_task()]
        while todo:
            task = todo.pop()
            if task is None or task in found:
                continue
            found.add(task)
            for nursery in task.child_nurseries:
                todo.extend(nursery.child_tasks)
        return found
    raise RuntimeError(f"live_tasks: unsupported async library {backend!r}")
