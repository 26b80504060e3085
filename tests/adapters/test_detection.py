"""API auto-detection of :class:`SSEParser`: events that tell nothing are held and replayed
once the API is known, and each is looked at once (no re-scan of the held ones per read)."""

from __future__ import annotations

from typing import Any

import pytest
from streamops.adapters import _sansio
from streamops.adapters._sansio import SSEParser

from streamops.events import TextDelta


def test_held_events_are_examined_once_then_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = _sansio.detect_one

    def counting(event_type: str | None, payload: Any) -> Any:
        calls.append(payload)
        return real(event_type, payload)

    monkeypatch.setattr(_sansio, "detect_one", counting)
    p = SSEParser()
    for i in range(200):  # telling nothing: no type, no choices, no candidates
        assert p.feed(b'data: {"n": %d}\n\n' % i) == []
    assert p.api is None
    assert len(calls) == 200  # one look per event, not 1 + 2 + ... + 200
    chunk = b'{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}'
    out = p.feed(b"data: " + chunk + b"\n\n")
    assert p.api == "openai-chat"
    assert [e.delta for e in out if isinstance(e, TextDelta)] == ["hi"]


# ---------------------------------------------------------------------------- detection window (issue 13 item 8)
def test_the_detection_window_caps_what_is_held_before_the_api_is_known() -> None:
    """Every undetected event was held until the end of the body: past ``max_detect``
    (characters of data, 100 more per event) the typed error; the default is 1 MiB."""
    from streamops.adapters._base import DEFAULT_MAX_DETECT

    from streamops.errors import LimitExceededError, StreamFormatError

    assert DEFAULT_MAX_DETECT == 1024 * 1024
    p = SSEParser(max_detect=10_000)
    with pytest.raises(LimitExceededError) as info:
        for i in range(1000):
            p.feed(b'data: {"n": %d}\n\n' % i)
    err = info.value
    assert isinstance(err, StreamFormatError)
    assert (err.limit_name, err.limit) == ("max_detect", 10_000)
    assert i < 100 and err.size > 10_000
    # one big undetected event at once
    with pytest.raises(LimitExceededError):
        SSEParser(max_detect=1000).feed(b'data: {"pad": "' + b"x" * 2000 + b'"}\n\n')


def test_held_chat_chunks_are_bounded_and_the_events_before_are_kept() -> None:
    """The OpenAI Chat parser held every chunk with no id, choices or usage until the run
    started (about 12x their wire size as dicts): within ``max_detect`` only."""
    from streamops.adapters.openai_chat import ChatCompletionsParser

    from streamops.errors import LimitExceededError

    p = ChatCompletionsParser(max_detect=5000)
    with pytest.raises(LimitExceededError, match="max_detect=5000"):
        for _ in range(1000):
            p.feed_json(None, '{"object": "chat.completion.chunk", "prompt_filter_results": []}')
    # within the window, held chunks come out after the run start (Azure's prompt-filter chunk)
    q = ChatCompletionsParser()
    assert q.feed_json(None, '{"id": "", "prompt_filter_results": []}') == []
    out = q.feed_json(None, '{"id": "c1", "choices": [{"index": 0, "delta": {"content": "hi"}}]}')
    assert [type(e).__name__ for e in out] == ["RunStart", "RawEvent", "TextDelta"]
    # decoded payloads (SDK path) count 100 each
    r = ChatCompletionsParser(max_detect=1000)
    with pytest.raises(LimitExceededError):
        for _ in range(20):
            r.feed_payload({"object": "chat.completion.chunk"})


@pytest.mark.anyio
async def test_parse_sse_takes_the_limits_and_yields_what_came_before() -> None:
    from streamops.adapters import parse_sse

    from streamops.errors import LimitExceededError

    chunk = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    body = chunk + b"data: " + b"q" * 5000
    got: list[str] = []
    with pytest.raises(LimitExceededError) as info:
        async for ev in parse_sse([body], max_line=4096):
            if isinstance(ev, TextDelta):
                got.append(ev.delta)
    assert got == ["hi"] and info.value.limit_name == "max_line"
    with pytest.raises(LimitExceededError, match="max_event"):
        await parse_sse([chunk, b"data: 1\n" * 3000], max_event=1000).collect()
