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
