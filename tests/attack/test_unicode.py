"""Issue 13 item 2: UTF-16 surrogates escaped in JSON (``"\\ud83d\\ude00"``).

A pair split across two deltas is joined; a truly lone half becomes U+FFFD and is counted
(``parser.replaced_surrogates``); no sink and no ``to_json`` raise on any event, whatever its
strings hold.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamops.adapters._sansio import parser_for

from streamops.events import EVENT_KINDS, BaseEvent, TextDelta, ToolCallDelta, ToolCallEnd, from_json, to_json
from streamops.sinks.a2a import A2AEncoder
from streamops.sinks.agui import AGUIEncoder
from streamops.sinks.ndjson import ndjson_encode
from streamops.sinks.openai import ChunkEncoder
from streamops.sinks.sse import SSEEncoder

HI, LO = "\ud83d", "\ude00"


def chat(content: str) -> str:
    """An OpenAI Chat chunk whose delta.content is ``content``, escaped as ASCII JSON (the way
    providers that escape non-BMP characters send it)."""
    return json.dumps({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": content}}]})


def run_chat(contents: list[str]) -> tuple[list[BaseEvent], int]:
    p = parser_for("openai-chat")
    out: list[BaseEvent] = []
    for c in contents:
        out += p.feed_json(None, chat(c))
    out += p.feed_json(None, "[DONE]")
    return out, p.replaced_surrogates


def text_of(events: list[BaseEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, TextDelta))


def test_a_pair_split_across_two_deltas_is_joined() -> None:
    events, replaced = run_chat(["ab" + HI, LO + "cd"])
    assert text_of(events) == "ab\U0001f600cd"
    assert replaced == 0
    for e in events:
        assert from_json(to_json(e)) == e


def test_a_delta_that_is_only_the_high_half_emits_nothing_until_its_partner() -> None:
    events, replaced = run_chat([HI, LO])
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [d.delta for d in deltas] == ["\U0001f600"]
    assert replaced == 0
    assert [e.seq for e in events] == list(range(len(events)))


@pytest.mark.parametrize(
    ("contents", "want", "count"),
    [
        (["a" + HI, "b"], "a\ufffdb", 1),  # high half, then no low half
        (["a" + LO], "a\ufffd", 1),  # low half alone
        (["a" + HI], "a\ufffd", 1),  # high half at the very end of the stream
        ([LO + HI + "x"], "\ufffd\ufffdx", 2),  # reversed pair
        (["\ufffd" + HI + LO], "\ufffd\U0001f600", 0),  # a real U+FFFD is not counted
    ],
)
def test_a_lone_half_becomes_the_replacement_character_and_is_counted(
    contents: list[str], want: str, count: int
) -> None:
    events, replaced = run_chat(contents)
    assert text_of(events) == want
    assert replaced == count
    for e in events:
        to_json(e)


def test_halves_of_different_tool_calls_are_not_joined() -> None:
    p = parser_for("openai-chat")
    out: list[BaseEvent] = []
    for idx, args in ((0, HI), (1, LO)):
        call = {"index": idx, "id": f"call{idx}", "type": "function", "function": {"name": "f", "arguments": args}}
        out += p.feed_json(None, json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))
    out += p.feed_json(None, "[DONE]")
    deltas = [e for e in out if isinstance(e, ToolCallDelta)]
    assert [(d.call_id, d.delta) for d in deltas] == [("call0", "\ufffd"), ("call1", "\ufffd")]
    ends = [e for e in out if isinstance(e, ToolCallEnd)]
    assert [e.arguments for e in ends] == ["\ufffd", "\ufffd"]
    assert p.replaced_surrogates == 4  # each occurrence: in the two deltas and the two ends


def test_anthropic_and_gemini_join_split_pairs_too() -> None:
    a = parser_for("anthropic")
    out: list[BaseEvent] = []
    out += a.feed_json("message_start", json.dumps({"type": "message_start", "message": {"id": "m", "model": "x"}}))
    for piece in ("x" + HI, LO + "y"):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        out += a.feed_json("content_block_delta", json.dumps(delta))
    assert text_of(out) == "x\U0001f600y"
    g = parser_for("gemini")
    out = []
    for piece in ("x" + HI, LO + "y"):
        out += g.feed_json(None, json.dumps({"candidates": [{"content": {"parts": [{"text": piece}]}}]}))
    assert text_of(out) == "x\U0001f600y"


def test_lone_surrogates_in_raw_payloads_and_other_fields_are_replaced() -> None:
    p = parser_for("openai-responses")
    out = p.feed_json("x", json.dumps({"type": "response.unknown" + HI, "v": [LO, {HI: 1}]}))
    assert out, out
    for e in out:
        data = to_json(e)
        assert b"\xef\xbf\xbd" in data  # U+FFFD, not an error
    assert p.replaced_surrogates >= 3


# ------------------------------------------------------------------------------ every sink
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
"""Strings of any code point, lone surrogates included (hypothesis leaves them out by default)."""


json_data = st.recursive(
    any_text | st.integers(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(any_text, c, max_size=3),
    max_leaves=6,
)


def _event_of(cls: type[BaseEvent], draw: Any) -> BaseEvent:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {"run_id": draw(any_text), "agent": draw(any_text), "seq": 1}
    for f in dataclasses.fields(cls):
        if f.name in ("run_id", "agent", "seq", "ts", "kind"):
            continue
        hint = hints[f.name]
        if hint is str or hint == (str | None):
            kwargs[f.name] = draw(any_text)
        elif f.name in ("raw", "data", "result", "value"):
            kwargs[f.name] = draw(json_data)
        elif f.name == "usage" and f.default is dataclasses.MISSING:
            from streamops.events import Usage

            kwargs[f.name] = Usage(output_tokens=1)
    return cls(**kwargs)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(EVENT_KINDS)))
def test_no_sink_and_no_to_json_raise_on_any_event_with_any_strings(data: st.DataObject, kind: str) -> None:
    event = _event_of(EVENT_KINDS[kind], data.draw)
    text = to_json(event)
    text.decode("utf-8")  # valid UTF-8
    json.loads(text)
    ndjson_encode(event).decode("utf-8")
    SSEEncoder().encode(event).decode("utf-8")
    ChunkEncoder(model="m").encode_frames(event).decode("utf-8")
    AGUIEncoder().encode_frames(event).decode("utf-8")
    for r in A2AEncoder().encode(event):
        A2AEncoder.sse(A2AEncoder(), r, 1).decode("utf-8")


def test_a_pair_split_across_tool_call_deltas_is_joined_in_the_end_built_from_a_plain_chunk() -> None:
    """The parsers skip the surrogate checks for a chunk whose JSON text can hold no surrogate;
    strings kept from earlier chunks (a tool call's arguments) are still checked when an event
    built from a later, plain chunk carries them."""
    p = parser_for("openai-chat")
    out: list[BaseEvent] = []
    for args in ('{"e": "' + HI, LO + '"}'):
        call = {"index": 0, "id": "call0", "type": "function", "function": {"name": "f", "arguments": args}}
        out += p.feed_json(None, json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))
    finish = json.dumps({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    assert "\\u" not in finish
    out += p.feed_json(None, finish)
    out += p.feed_json(None, "[DONE]")
    (end,) = [e for e in out if isinstance(e, ToolCallEnd)]
    assert end.arguments == '{"e": "\U0001f600"}'
    assert json.loads(end.arguments) == {"e": "\U0001f600"}
    assert p.replaced_surrogates == 0


@pytest.mark.parametrize("escaped", [True, False])
def test_raw_and_escaped_lone_surrogates_in_the_json_text_are_both_caught(escaped: bool) -> None:
    """A lone surrogate reaches the parser escaped (``\\ude00``) or, from a ``str`` source,
    as the raw character: both are replaced."""
    data = json.dumps({"type": "response.unknown", "v": "a" + LO}, ensure_ascii=escaped)
    assert ("\\ude00" in data) is escaped
    p = parser_for("openai-responses")
    out = p.feed_json("x", data)
    assert p.replaced_surrogates == 1
    for e in out:
        assert b"\xef\xbf\xbd" in to_json(e)
