"""Agent tool calls: a call the model gave no id gets a unique one (two calls of the same tool
in one step never collide), and a consumer that leaves while tools run closes the tool loop at
once (``aclosing``), with the tools' cleanup done before the iteration returns."""

from __future__ import annotations

import contextlib
import gc
import sys
import warnings
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import anyio
import pytest

import streamops as so
from streamops.agent import Agent
from streamops.tools import ToolContext, tool
from tests._models import FakeModel, ModelCall

pytestmark = pytest.mark.anyio


class ScriptedModel(FakeModel):
    """A model double: step ``i`` streams ``steps[i]`` (tool-call events built from
    ``(kind, call_id, name, arguments, index)`` rows) and records the messages it got."""

    name = "scripted"

    def __init__(self, steps: list[list[tuple[str, Any, str, str, int | None]]]) -> None:
        self.steps = steps
        self.received: list[list[dict[str, Any]]] = []

    def called(self, call: ModelCall) -> None:
        self.received.append(call.messages)

    async def respond(self, call: ModelCall) -> AsyncGenerator[so.BaseEvent, None]:
        rows = self.steps[call.index] if call.index < len(self.steps) else []
        env = call.env
        yield so.RunStart(model=self.name, **env)
        for kind, call_id, name, arguments, index in rows:
            if kind == "start":
                yield so.ToolCallStart(call_id=call_id, name=name, index=index, **env)
            elif kind == "delta":
                yield so.ToolCallDelta(call_id=call_id, delta=arguments, index=index, **env)
            else:
                yield so.ToolCallEnd(call_id=call_id, name=name, arguments=arguments, index=index, **env)
        if rows:
            yield so.RunEnd(finish_reason="tool_calls", raw_finish_reason="tool_calls", **env)
        else:
            yield so.TextDelta(delta="done", **env)
            yield so.RunEnd(finish_reason="stop", raw_finish_reason="stop", **env)


@tool
async def echo(x: int) -> int:
    """Echo ``x``."""
    await anyio.sleep(0.01 if x == 1 else 0)  # the second call finishes first
    return x * 10


def _check_pairs(events: list[so.BaseEvent], model: ScriptedModel, expect: dict[int, int]) -> None:
    ends = [e for e in events if isinstance(e, so.ToolCallEnd)]
    results = [e for e in events if isinstance(e, so.ToolResult)]
    assert len(ends) == len(expect)
    assert len(results) == len(expect)
    ids = [e.call_id for e in ends]
    assert all(ids)
    assert len(set(ids)) == len(ids)  # distinct, non-empty ids
    by_id = {r.call_id: r.result for r in results}
    for end in ends:  # each result is paired with its own call (same id, its own arguments)
        x = int(end.arguments.split(":")[1].strip(" }"))
        assert by_id[end.call_id] == expect[x]
    # the model's next request pairs each tool message with its call, by the same ids
    second = model.received[1]
    assistant = next(m for m in second if m["role"] == "assistant")
    assert [c["id"] for c in assistant["tool_calls"]] == ids
    tool_msgs = {m["tool_call_id"]: m["content"] for m in second if m["role"] == "tool"}
    assert tool_msgs == {cid: str(v) for cid, v in by_id.items()}


@pytest.mark.parametrize("missing", ["", None])
async def test_two_calls_of_the_same_tool_without_ids_get_distinct_ids(missing: Any) -> None:
    model = ScriptedModel(
        [
            [
                ("start", missing, "echo", "", None),
                ("delta", missing, "", '{"x": 1}', None),
                ("end", missing, "echo", '{"x": 1}', None),
                ("start", missing, "echo", "", None),
                ("end", missing, "echo", '{"x": 2}', None),
            ]
        ]
    )
    events = await Agent(model, tools=[echo]).stream("x").collect()
    _check_pairs(events, model, {1: 10, 2: 20})
    starts = [e.call_id for e in events if isinstance(e, so.ToolCallStart)]
    deltas = [e.call_id for e in events if isinstance(e, so.ToolCallDelta)]
    ends = [e.call_id for e in events if isinstance(e, so.ToolCallEnd)]
    assert starts == ends
    assert deltas == ends[:1]
    assert events[-1].status == "completed"  # type: ignore[attr-defined]

    result = await Agent(
        ScriptedModel([[("end", missing, "echo", '{"x": 1}', None), ("end", missing, "echo", '{"x": 2}', None)]]),
        tools=[echo],
    ).run("x")
    first_step = [c for c in result.message.tool_calls if c.name == "echo"]
    assert len(first_step) == 2
    assert len({c.id for c in first_step}) == 2
    assert {c.id: c.arguments for c in first_step}.keys() == result.message.tool_results.keys()
    for c in first_step:
        res = result.message.tool_results[c.id or ""]
        assert isinstance(res, so.ToolResult)
        assert res.result == (10 if '"x": 1' in c.arguments else 20)


async def test_interleaved_calls_without_ids_are_told_apart_by_index() -> None:
    model = ScriptedModel(
        [
            [
                ("start", "", "echo", "", 0),
                ("start", "", "echo", "", 1),
                ("delta", "", "", '{"x": ', 0),
                ("delta", "", "", '{"x": ', 1),
                ("delta", "", "", "2}", 1),
                ("delta", "", "", "1}", 0),
                ("end", "", "echo", '{"x": 1}', 0),
                ("end", "", "echo", '{"x": 2}', 1),
            ]
        ]
    )
    events = await Agent(model, tools=[echo]).stream("x").collect()
    _check_pairs(events, model, {1: 10, 2: 20})


async def test_ids_the_model_gave_are_kept_and_ids_are_unique_across_steps() -> None:
    model = ScriptedModel(
        [
            [("end", "given", "echo", '{"x": 1}', None), ("end", "", "echo", '{"x": 2}', None)],
            [("end", "", "echo", '{"x": 3}', None)],
        ]
    )
    events = await Agent(model, tools=[echo]).stream("x").collect()
    ids = [e.call_id for e in events if isinstance(e, so.ToolCallEnd)]
    assert ids[0] == "given"
    assert len(set(ids)) == 3
    assert all(ids)
    assert sorted(e.call_id for e in events if isinstance(e, so.ToolResult)) == sorted(ids)


# --------------------------------------------------------------------------- leaving early
async def test_leaving_while_tools_run_closes_the_tool_loop_and_cleans_up_first(anyio_backend: str) -> None:
    log: list[str] = []
    started = 0

    @tool
    async def work(x: int, ctx: ToolContext) -> int:
        """Reports progress, then works forever."""
        nonlocal started
        started += 1
        try:
            ctx.progress({"x": x})
            await anyio.sleep(3600)
        finally:
            log.append(f"cleanup {x}")
        return x

    model = ScriptedModel(
        [[("end", "a", "work", '{"x": 1}', None), ("end", "b", "work", '{"x": 2}', None)]],
    )
    stream = Agent(model, tools=[work]).stream("x")
    before = _tasks(anyio_backend)
    with warnings.catch_warnings(record=True) as caught, finalized_asyncgens() as finalized:
        warnings.simplefilter("always")
        with anyio.fail_after(5):
            async with stream.iterate() as it:
                async for ev in it:
                    if isinstance(ev, so.ToolProgress):
                        break  # leave while the tools run: inside the agent's tool loop
            log.append("iteration returned")
            gc.collect()
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
    assert started == 2
    assert sorted(log[:2]) == ["cleanup 1", "cleanup 2"]
    assert log[2:] == ["iteration returned"]
    assert stream.result_end is not None
    assert stream.result_end.status == "cancelled"
    # closed in place: no finalizer task (asyncio) and no "garbage collected before it had been
    # exhausted" warning (trio)
    assert _tasks(anyio_backend) == before
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert [n for n in finalized if "_run_tools" in n] == []  # not left to the GC finalizer


@contextlib.contextmanager
def finalized_asyncgens() -> Iterator[list[str]]:
    """The names of the async generators handed to the event loop's finalizer hook (garbage
    collected before they were closed) while the block runs; the loop's own hook still runs."""
    names: list[str] = []
    hooks = sys.get_asyncgen_hooks()

    def finalizer(agen: Any) -> None:
        names.append(agen.__qualname__)
        if hooks.finalizer is not None:
            hooks.finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
    try:
        yield names
    finally:
        sys.set_asyncgen_hooks(*hooks)


def _tasks(backend: str) -> set[Any]:
    if backend != "asyncio":
        return set()
    import asyncio

    return set(asyncio.all_tasks())
