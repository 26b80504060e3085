"""``run_tools``: the operator that runs a model response's tool calls (the agent's steps use
it; it works on any model stream)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamops import Stream
from streamops.agent import run_tools
from streamops.events import (
    BaseEvent,
    ErrorEvent,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolError,
    ToolProgress,
    ToolResult,
)
from streamops.tools import ToolContext, tool


@tool
async def double(x: int, ctx: ToolContext) -> int:
    """Twice ``x``; reports its progress once."""
    ctx.progress({"x": x})
    await anyio.sleep(0.001 * (x % 3))  # calls finish out of order
    return 2 * x


@tool
def fail(x: int) -> int:
    """Always raises (a sync tool: runs in a worker thread)."""
    raise ValueError(f"no {x}")


TOOLS = {t.name: t for t in (double, fail)}

calls = st.lists(st.tuples(st.sampled_from(["double", "fail", "nope"]), st.integers(0, 50)), max_size=5)


def _response(rows: list[tuple[str, int]], *, error: bool = False) -> list[BaseEvent]:
    env: dict[str, Any] = {"run_id": "r", "agent": "a"}
    out: list[BaseEvent] = [RunStart(**env, seq=0), TextDelta(**env, seq=1, delta="hi")]
    for i, (name, x) in enumerate(rows):
        out.append(ToolCallStart(**env, seq=len(out), call_id=f"c{i}", name=name))
        out.append(ToolCallEnd(**env, seq=len(out), call_id=f"c{i}", name=name, arguments=json.dumps({"x": x})))
    if error:
        out.append(ErrorEvent(**env, seq=len(out), error_type="overloaded", message="try later"))
    out.append(RunEnd(**env, seq=len(out), status="failed" if error else "completed"))
    return out


@settings(max_examples=25)
@given(rows=calls, error=st.booleans(), backend=st.sampled_from(["asyncio", "trio"]))
def test_every_call_gets_one_result_keyed_by_its_id_after_the_response(
    rows: list[tuple[str, int]], error: bool, backend: str
) -> None:
    response = _response(rows, error=error)
    out = Stream.from_iterable(response).pipe(run_tools(TOOLS)).to_list(backend=backend)
    assert out[: len(response)] == response  # the response first, unchanged
    added = out[len(response) :]
    if error:
        assert added == []  # a response that reported an error runs none of its calls
        return
    ends = {r.call_id: r for r in added if isinstance(r, (ToolResult, ToolError))}
    assert len(ends) == len([r for r in added if isinstance(r, (ToolResult, ToolError))]) == len(rows)
    for i, (name, x) in enumerate(rows):
        r = ends[f"c{i}"]
        assert r.name == name
        if name == "double":
            assert isinstance(r, ToolResult) and r.result == 2 * x
            progress = [p for p in added if isinstance(p, ToolProgress) and p.call_id == f"c{i}"]
            assert [p.data for p in progress] == [{"x": x}]
            assert added.index(progress[0]) < added.index(r)  # progress before its result
        elif name == "fail":
            assert isinstance(r, ToolError) and r.error_type == "ValueError" and f"no {x}" in r.message
        else:
            assert isinstance(r, ToolError) and r.error_type == "UnknownTool"
    # the envelope of the response's last event, the next seqs after it
    assert {(e.run_id, e.agent) for e in added} <= {("r", "a")}
    assert [e.seq for e in added] == list(range(response[-1].seq + 1, response[-1].seq + 1 + len(added)))


@pytest.mark.anyio
async def test_a_bare_async_for_runs_the_calls_and_leaving_stops_a_running_call() -> None:
    out = [e async for e in Stream.from_iterable(_response([("double", 4), ("double", 5)])) | run_tools(TOOLS)]
    assert sorted(e.result for e in out if isinstance(e, ToolResult)) == [8, 10]

    stopped: list[str] = []

    @tool
    async def forever(x: int, ctx: ToolContext) -> int:
        """Never returns by itself."""
        ctx.progress("started")
        try:
            await anyio.sleep(3600)
        finally:
            stopped.append("stopped")
        return x

    stream = Stream.from_iterable(_response([("forever", 1)])) | run_tools({"forever": forever})
    with anyio.fail_after(5):
        async with stream.iterate() as it:
            async for ev in it:
                if isinstance(ev, ToolProgress):  # the call is running now
                    break
    assert stopped == ["stopped"]  # closed: the running call was cancelled and awaited
