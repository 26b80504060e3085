"""Event sequences the plain terminal output is pinned on (``tests/sinks/test_text.py``).

``cases()`` gives each case's name, events and ``TerminalRenderer`` options. The expected plain
output of every case is ``tests/fixtures/render_plain.json``, written once by the renderer as it
was before it became an encoder (commit b2df955, ``streamops/sinks/render.py``'s plain mode;
two entries changed on purpose, listed in ``tests/sinks/test_text.py``) and never regenerated
by a test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import streamops.events as ev
from tests.conftest import RECORDED
from tests.sinks.test_render import RECORDINGS, events_of, interleaved

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "render_plain.json"


def nested_run() -> list[ev.BaseEvent]:
    """An agent that calls another agent as a tool: the inner run's events (its own run id,
    ``parent_run_id`` the outer run's, agent ``researcher``) come between the outer call and
    its result."""
    top = {"run_id": "outer", "agent": "writer"}
    sub = {"run_id": "inner", "parent_run_id": "outer", "agent": "researcher"}
    return [
        ev.RunStart(**top, model="gpt-x"),
        ev.TextDelta(**top, delta="Let me ask ", block_id="t0"),
        ev.TextDelta(**top, delta="the researcher.", block_id="t0"),
        ev.ToolCallStart(**top, call_id="c1", name="researcher"),
        ev.ToolCallDelta(**top, call_id="c1", delta='{"q": "tides"}'),
        ev.ToolCallEnd(**top, call_id="c1", name="researcher", arguments='{"q": "tides"}'),
        ev.RunStart(**sub, model="gpt-y"),
        ev.ReasoningDelta(**sub, delta="The moon\npulls.", block_id="r0"),
        ev.TextDelta(**sub, delta="Tides come from\nthe moon", block_id="t0"),
        ev.UsageEvent(**sub, usage=ev.Usage(input_tokens=3, output_tokens=4)),
        ev.TextDelta(**sub, delta=" and the sun.\n", block_id="t0"),
        ev.RunEnd(**sub, status="completed", finish_reason="stop", usage=ev.Usage(output_tokens=9)),
        ev.ToolResult(**top, call_id="c1", name="researcher", result="Tides come from the moon and the sun."),
        ev.TextDelta(**top, delta="The moon ", block_id="t1"),
        ev.TextDelta(**top, delta="and the sun.", block_id="t1"),
        ev.RunEnd(**top, status="completed", finish_reason="stop"),
    ]


def error_mid_block(agent: str = "") -> list[ev.BaseEvent]:
    """A text block broken by an error, a run that goes on, and events the terminal does not
    show (progress, custom, a partial object, usage) between deltas of one block."""
    a = {"agent": agent}
    return [
        ev.RunStart(**a, model="m"),
        ev.TextDelta(**a, delta="Half a ", block_id="t"),
        ev.TextDelta(**a, delta="sent", block_id="t"),
        ev.ErrorEvent(**a, error_type="ProviderError", message="overloaded [retrying]"),
        ev.TextDelta(**a, delta="ence.\nNext ", block_id="t"),
        ev.UsageEvent(**a, usage=ev.Usage(input_tokens=1)),
        ev.TextDelta(**a, delta="line", block_id="t"),
        ev.CustomEvent(**a, name="note", data={"x": 1}),
        ev.TextDelta(**a, delta=" goes", block_id="t"),
        ev.PartialObject(**a, value={"a": 1}),
        ev.TextDelta(**a, delta=" on.", block_id="t"),
        ev.ToolProgress(**a, call_id="c", name="t", data=1),
        ev.TextDelta(**a, delta="\n", block_id="t"),
        ev.RunEnd(**a, status="failed"),
    ]


def cases() -> Iterator[tuple[str, list[Any], dict[str, Any]]]:
    """``(name, events, options)`` for every pinned case."""
    for path in RECORDINGS:
        name = f"{path.parent.name}/{path.stem}"
        events = events_of(path)
        yield name, events, {"labels": False}
        yield f"{name} | no reasoning", events, {"labels": False, "show_reasoning": False}
        yield f"{name} | merged", interleaved(("alpha", events), ("beta", events)), {}
    a = events_of(RECORDED / "anthropic" / "messages_thinking_signature_pyd.sse")
    b = events_of(RECORDED / "anthropic" / "messages_multi_tool_use_oll.sse")
    two = interleaved(("alpha", a), ("beta", b))
    yield "two agents", two, {}
    yield "two agents | unlabelled", two, {"labels": False}
    yield "two agents | no reasoning", two, {"show_reasoning": False}
    yield "nested run", nested_run(), {}
    yield "nested run | unlabelled", nested_run(), {"labels": False}
    yield "error mid-block", error_mid_block(), {}
    yield "error mid-block | labelled", error_mid_block("alpha"), {}
