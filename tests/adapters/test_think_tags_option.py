"""``think_tags=True`` on the parsers (OpenAI-compatible chat, LiteLLM, local): reasoning a
model writes inline as ``<think>...</think>`` comes out as reasoning deltas (issue 15 item 17).
The body is a recorded DeepSeek-R1 stream (Together via Hugging Face) that does just that."""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamops.adapters import parse_sse_bytes

from streamops.events import BaseEvent, ReasoningDelta, RunEnd, TextDelta
from tests.conftest import RECORDED

BODY = (RECORDED / "huggingface" / "chat_hf_together_think_tags_pyd.sse").read_bytes()


def joined(events: list[BaseEvent], cls: type[Any]) -> str:
    return "".join(e.delta for e in events if isinstance(e, cls))  # type: ignore[attr-defined]


def test_recorded_deepseek_r1_body_split_into_reasoning_and_text() -> None:
    plain = parse_sse_bytes(BODY, api="openai-chat")
    raw_text = joined(plain, TextDelta)
    assert raw_text.startswith("<think>") and "</think>" in raw_text  # what it was before
    assert joined(plain, ReasoningDelta) == ""

    split = parse_sse_bytes(BODY, api="openai-chat", think_tags=True)
    reasoning, text = joined(split, ReasoningDelta), joined(split, TextDelta)
    before, after = raw_text[len("<think>") :].split("</think>", 1)
    assert (reasoning, text) == (before, after)
    assert reasoning.strip() and text.strip()
    # every reasoning delta comes before the first text delta, and the run still ends last
    kinds = [e.kind for e in split if isinstance(e, (TextDelta, ReasoningDelta))]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning-delta")
    assert isinstance(split[-1], RunEnd)
    assert [e.seq for e in split] == list(range(len(split)))  # the envelope stays monotonic
    assert all(e.run_id == split[0].run_id for e in split)


def test_recorded_body_split_at_every_tenth_byte_gives_the_same() -> None:
    from streamops.adapters import SSEParser

    whole = parse_sse_bytes(BODY, api="openai-chat", think_tags=True)
    for step in (1, 7, 10, 64):
        p = SSEParser("openai-chat", think_tags=True)
        got: list[BaseEvent] = []
        for i in range(0, len(BODY), step):
            got += p.feed(BODY[i : i + step])
        got += p.close()
        assert [(e.kind, getattr(e, "delta", None)) for e in got] == [
            (e.kind, getattr(e, "delta", None)) for e in whole
        ]


def _chunk(content: str | None = None, finish: str | None = None, tool: bool = False) -> str:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool:
        call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        delta["tool_calls"] = [call]
    payload = {"id": "x", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n"


def test_tags_split_across_deltas_and_a_held_tail_before_a_tool_call() -> None:
    body = "".join(
        [_chunk("<th"), _chunk("ink>plan</thi"), _chunk("nk>I call <"), _chunk(tool=True), _chunk(finish="tool_calls")]
    ).encode()
    events = parse_sse_bytes(body, api="openai-chat", think_tags=True)
    seen = [(e.kind, getattr(e, "delta", None)) for e in events]
    deltas = [x for x in seen if x[0] in ("text-delta", "reasoning-delta")]
    assert deltas == [("reasoning-delta", "plan"), ("text-delta", "I call "), ("text-delta", "<")]
    kinds = [k for k, _ in seen]
    assert kinds.index("tool-call-start") > max(i for i, k in enumerate(kinds) if k == "text-delta")


def test_a_held_partial_tag_is_not_lost_when_the_body_is_truncated() -> None:
    from streamops.adapters import SSEParser

    p = SSEParser("openai-chat", think_tags=True, on_malformed="event")
    events = p.feed((_chunk("<think>a") + _chunk("b</th")).encode()) + p.close()
    assert joined(events, ReasoningDelta) == "ab</th"
    assert events[-1].kind == "run-end"


@pytest.mark.parametrize("think", [False, True])
def test_off_by_default_and_text_without_tags_is_unchanged(think: bool) -> None:
    body = (_chunk("plain "), _chunk("answer <b>"), _chunk(finish="stop"))
    events = parse_sse_bytes("".join(body).encode(), api="openai-chat", think_tags=think)
    assert joined(events, TextDelta) == "plain answer <b>"
    assert joined(events, ReasoningDelta) == ""
