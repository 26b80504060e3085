"""Issue 13 item 3: JSON nested about 1,000 deep, or holding a 5,000-digit integer, is a
typed error from every parser (``StreamFormatError``, or an ``ErrorEvent`` with
``on_malformed="event"``), never ``RecursionError``/``ValueError``; ``streamops replay`` exits 2
with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamops.adapters._sansio import parser_for

from streamops.errors import StreamFormatError
from streamops.events import ErrorEvent, TextDelta, to_json

APIS = ["openai-chat", "openai-responses", "anthropic", "gemini"]


def body(depth: int, extra: str = "") -> str:
    nested = "[" * depth + "]" * depth
    return (
        '{"type":"x","id":"a","choices":[{"index":0,"delta":{"content":"hi"}}],'
        f'"candidates":[{{"content":{{"parts":[{{"text":"hi"}}]}}}}],"v":{nested}{extra}}}'
    )


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("depth", [900, 5000])
@pytest.mark.parametrize("mode", ["raise", "event"])
def test_deep_nesting_is_a_typed_error_and_keeps_what_came_before(api: str, depth: int, mode: str) -> None:
    p = parser_for(api, on_malformed=mode)  # type: ignore[arg-type]
    name = "message_start" if api == "anthropic" else None
    good = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}'
    before = p.feed_json("content_block_delta", good) if api == "anthropic" else []
    try:
        out = p.feed_json(name, body(depth))
    except StreamFormatError:
        assert mode == "raise"
        out = p.out
    for e in before + out:
        to_json(e)  # serialisable, whatever the payload kept in raw
    if mode == "event":
        assert all(not isinstance(e, ErrorEvent) or "too deep" in e.message for e in out)
    if api == "anthropic":
        assert [e.delta for e in before if isinstance(e, TextDelta)] == ["ok"]


@pytest.mark.parametrize("api", APIS)
def test_a_huge_integer_is_a_typed_error(api: str) -> None:
    p = parser_for(api)
    with pytest.raises(StreamFormatError):
        p.feed_json(None, '{"type":"x","n":' + "9" * 5000 + "}")


def test_replay_of_a_deeply_nested_body_exits_2_with_one_line(tmp_path: Path) -> None:
    """A body of nothing but a deeply nested event holds no stream of a known API: exit 2 and
    one line (was: exit 1 and a RecursionError traceback)."""
    f = tmp_path / "deep.sse"
    f.write_text("data: " + "[" * 5000 + "]" * 5000 + "\n\n")
    r = subprocess.run(
        [sys.executable, "-m", "streamops", "replay", str(f), "--events"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("streamops: "), r.stderr
    assert "Traceback" not in r.stderr
