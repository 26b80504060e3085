"""The shared async drivers (``adapters/_drive.py``) behind every adapter entry point: events
before bad input are kept, reading stops at the run end, sources are closed (shielded)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from streamops.adapters import parse_payloads, parse_sse
from streamops.adapters.anthropic import parse_anthropic_sse
from streamops.adapters.gemini import parse_gemini_sdk
from streamops.adapters.openai_chat import parse_chat_sse
from streamops.adapters.openai_responses import parse_responses_sse

from streamops.errors import StreamFormatError, TruncatedStreamError

CHAT = (
    b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","model":"c","usage":{}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"hi"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)

Parse = Callable[[Any], AsyncIterator[Any]]
ENTRY_POINTS: list[tuple[str, Parse, bytes]] = [
    ("parse_sse/chat", lambda src: aiter(parse_sse(src)), CHAT),
    ("parse_chat_sse", lambda src: parse_chat_sse(src), CHAT),
    ("parse_sse/anthropic", lambda src: aiter(parse_sse(src)), ANTHROPIC),
    ("parse_anthropic_sse", lambda src: parse_anthropic_sse(src), ANTHROPIC),
]


async def kinds(events: AsyncIterator[Any]) -> list[str]:
    out: list[str] = []
    try:
        async for ev in events:
            out.append(type(ev).__name__)
    except StreamFormatError as exc:
        out.append(type(exc).__name__)
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("parse", [lambda b: aiter(parse_sse([b])), lambda b: parse_chat_sse([b])])
async def test_events_before_bad_input_in_the_same_chunk_are_yielded(parse: Parse) -> None:
    body = CHAT.split(b"data: [DONE]")[0].replace(b',"finish_reason":"stop"', b"") + b"data: {not json\n\n"
    assert await kinds(parse(body)) == ["RunStart", "TextDelta", "TextDelta", "StreamFormatError"]


@pytest.mark.anyio
async def test_events_before_truncation_at_close_are_yielded() -> None:
    # A tool block left open: its ToolCallEnd comes out of close(), then the truncation error.
    body = ANTHROPIC.split(b"event: content_block_delta")[0].replace(
        b'"content_block":{"type":"text","text":""}', b'"content_block":{"type":"tool_use","id":"t1","name":"f"}'
    )
    got = await kinds(parse_anthropic_sse([body]))
    assert got == ["RunStart", "UsageEvent", "ToolCallStart", "ToolCallEnd", "TruncatedStreamError"]
    with pytest.raises(TruncatedStreamError):
        _ = [e async for e in parse_anthropic_sse([body])]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "parse", "body"), ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
async def test_reading_stops_at_the_run_end_and_the_source_is_closed(name: str, parse: Parse, body: bytes) -> None:
    state = {"read_after_end": False, "closed": False}

    async def source() -> AsyncGenerator[bytes, None]:
        try:
            yield body
            state["read_after_end"] = True
            yield b"data: {not json\n\n"
        finally:
            state["closed"] = True

    got = await kinds(parse(source()))
    assert got[-1] == "RunEnd"
    assert state == {"read_after_end": False, "closed": True}

    def sync_source() -> Iterator[bytes]:
        try:
            yield body
            state["read_after_end"] = True
        finally:
            state["closed"] = True

    state["closed"] = False
    assert (await kinds(parse(sync_source())))[-1] == "RunEnd"
    assert state == {"read_after_end": False, "closed": True}


@pytest.mark.anyio
async def test_a_whole_body_as_bytes() -> None:
    assert await kinds(parse_responses_sse(b"")) == ["TruncatedStreamError"]
    assert (await kinds(parse_chat_sse(CHAT)))[-1] == "RunEnd"


class SlowClosingSource:
    """An SDK-like stream whose ``close()`` takes a while."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.closed = False

    async def _gen(self) -> AsyncGenerator[Any, None]:
        for item in self.items:
            yield item
        await anyio.sleep_forever()

    def __aiter__(self) -> AsyncGenerator[Any, None]:
        return self._gen()

    async def close(self) -> None:
        await anyio.sleep(0.01)
        self.closed = True


@pytest.mark.anyio
async def test_cancellation_still_closes_the_sdk_stream() -> None:
    chunk = {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]}
    stream = SlowClosingSource([chunk])
    seen: list[str] = []
    with anyio.move_on_after(0.05):
        async for ev in parse_gemini_sdk(stream):
            seen.append(type(ev).__name__)
    assert seen == ["RunStart", "TextDelta"]
    assert stream.closed


@pytest.mark.anyio
async def test_parse_payloads_auto_with_no_payload_yields_nothing() -> None:
    assert [e async for e in parse_payloads([])] == []
    with pytest.raises(StreamFormatError, match="cannot tell the API"):
        _ = [e async for e in parse_payloads([{"what": 1}])]
