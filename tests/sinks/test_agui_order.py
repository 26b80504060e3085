"""AG-UI event order: ``RUN_STARTED`` first, exactly one of ``RUN_FINISHED``/``RUN_ERROR``
last (``RUN_ERROR`` when the run failed, a source that raised included), and one
``TOOL_CALL_START`` per call id, before its ``TOOL_CALL_ARGS`` and ``TOOL_CALL_END``. Every
event is checked by the ``ag_ui.core`` models (see :func:`tests.sinks.test_agui.check_agui`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from ag_ui.core import BaseEvent as AGUIEvent
from ag_ui.core import EventType

import streamops as so
from streamops.sinks.agui import AGUIEncoder

from .test_agui import EVENT, check_agui

E: dict[str, Any] = {"run_id": "r"}
T = EventType


def check_order(events: list[AGUIEvent]) -> list[dict[str, Any]]:
    wire = check_agui(events)
    assert events[0].type == T.RUN_STARTED
    assert sum(e.type == T.RUN_STARTED for e in events) == 1
    assert events[-1].type in (T.RUN_FINISHED, T.RUN_ERROR)
    assert sum(e.type in (T.RUN_FINISHED, T.RUN_ERROR) for e in events) == 1
    started: dict[str, int] = {}
    for i, ev in enumerate(events):
        d: Any = ev
        if ev.type == T.TOOL_CALL_START:
            assert d.tool_call_id not in started, f"second TOOL_CALL_START for {d.tool_call_id}"
            started[d.tool_call_id] = i
        elif ev.type in (T.TOOL_CALL_ARGS, T.TOOL_CALL_END):
            assert started.get(d.tool_call_id, len(events)) < i
    return wire


def encode_all(events: list[so.BaseEvent]) -> list[AGUIEvent]:
    enc = AGUIEncoder(thread_id="th")
    return [x for e in events for x in enc.encode(e)] + enc.close()


def test_a_repeated_tool_call_start_gives_one_start() -> None:
    events: list[so.BaseEvent] = [
        so.RunStart(**E),
        so.ToolCallStart(call_id="c", name="get", **E),
        so.ToolCallStart(call_id="c", name="get", **E),
        so.ToolCallDelta(call_id="c", delta='{"a":', **E),
        so.ToolCallStart(call_id="c", name="get", **E),
        so.ToolCallDelta(call_id="c", delta="1}", **E),
        so.ToolCallEnd(call_id="c", name="get", arguments='{"a":1}', **E),
        so.RunEnd(**E),
    ]
    wire = check_order(encode_all(events))
    assert [(w["type"], w.get("toolCallId")) for w in wire[1:-1]] == [
        ("TOOL_CALL_START", "c"),
        ("TOOL_CALL_ARGS", "c"),
        ("TOOL_CALL_ARGS", "c"),
        ("TOOL_CALL_END", "c"),
    ]
    assert wire[-1]["type"] == "RUN_FINISHED" and wire[-1]["outcome"] == {"type": "success"}


def test_interleaved_calls_with_repeated_starts() -> None:
    events: list[so.BaseEvent] = [
        so.RunStart(**E),
        so.ToolCallStart(call_id="a", name="f", **E),
        so.ToolCallStart(call_id="b", name="g", **E),
        so.ToolCallStart(call_id="a", name="f", **E),
        so.ToolCallDelta(call_id="b", delta="[]", **E),
        so.ToolCallStart(call_id="b", name="g", **E),
        so.ToolCallDelta(call_id="a", delta="{}", **E),
        so.ToolCallEnd(call_id="a", name="f", arguments="{}", **E),
        so.ToolCallEnd(call_id="b", name="g", arguments="[]", **E),
        so.RunEnd(**E),
    ]
    wire = check_order(encode_all(events))
    assert [w["type"] for w in wire].count("TOOL_CALL_START") == 2


def test_a_repeated_start_cut_off_before_its_end() -> None:
    events: list[so.BaseEvent] = [
        so.RunStart(**E),
        so.ToolCallStart(call_id="c", name="get", **E),
        so.ToolCallStart(call_id="c", name="get", **E),
    ]
    wire = check_order(encode_all(events))
    assert [w["type"] for w in wire] == ["RUN_STARTED", "TOOL_CALL_START", "TOOL_CALL_END", "RUN_FINISHED"]


async def failing() -> AsyncIterator[so.BaseEvent]:
    yield so.RunStart(**E)
    yield so.TextDelta(delta="par", **E)
    yield so.ToolCallStart(call_id="c", name="get", **E)
    yield so.ToolCallStart(call_id="c", name="get", **E)
    raise ConnectionError("upstream reset")


@pytest.mark.anyio
async def test_a_source_that_raises_ends_with_run_error() -> None:
    frames: list[bytes] = []
    with pytest.raises(ConnectionError, match="upstream reset"):
        async for f in AGUIEncoder(thread_id="th").encode_stream(failing()):
            frames.append(f)
    events = [EVENT.validate_json(f[len(b"data: ") : -2]) for f in frames]
    wire = check_order(events)
    assert [w["type"] for w in wire[-3:]] == ["CUSTOM", "TOOL_CALL_END", "RUN_ERROR"]
    assert wire[-3]["name"] == "error"
    assert wire[-1]["message"] == "upstream reset" and wire[-1]["code"] == "ConnectionError"
    assert not any(w["type"] == "RUN_FINISHED" for w in wire)


def test_an_error_event_then_no_run_end_ends_with_run_error() -> None:
    events: list[so.BaseEvent] = [
        so.RunStart(**E),
        so.TextDelta(delta="x", **E),
        so.ErrorEvent(error_type="overloaded", message="try later", **E),
    ]
    wire = check_order(encode_all(events))
    assert wire[-1] == {"type": "RUN_ERROR", "message": "try later", "code": "overloaded"} | (
        {"timestamp": wire[-1]["timestamp"]} if "timestamp" in wire[-1] else {}
    )


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_a_run_without_error_still_finishes(status: so.RunStatus) -> None:
    wire = check_order(encode_all([so.RunStart(**E), so.TextDelta(delta="x", **E), so.RunEnd(status=status, **E)]))
    assert wire[-1]["type"] == "RUN_FINISHED"
    assert wire[-1]["outcome"]["type"] == ("success" if status == "completed" else "cancelled")
    cut = check_order(encode_all([so.RunStart(**E), so.TextDelta(delta="x", **E)]))
    assert cut[-1]["type"] == "RUN_FINISHED" and cut[-1]["outcome"] == {"type": "cancelled"}
