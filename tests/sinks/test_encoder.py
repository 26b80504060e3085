"""The encoder protocol: every sink's encoder is an ``Encoder``; ``encoded()`` is any encoder's
body as a stream of bytes (frames, closing frames, a failure's error frames then its raise)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from streamops import Stream
from streamops.events import BaseEvent, ErrorEvent, RunStart, TextDelta, ToolCallEnd, from_json
from streamops.sinks import (
    A2AEncoder,
    AGUIEncoder,
    ChunkEncoder,
    Encoder,
    NDJSONEncoder,
    SSEEncoder,
    VercelEncoder,
    encoded,
)

pytestmark = pytest.mark.anyio


def test_every_sink_encoder_is_an_encoder() -> None:
    for enc in (SSEEncoder(), NDJSONEncoder(), ChunkEncoder(model="m"), VercelEncoder(), AGUIEncoder(), A2AEncoder()):
        assert isinstance(enc, Encoder), type(enc).__name__


async def _failing(closed: list[bool]) -> AsyncGenerator[BaseEvent, None]:
    try:
        yield RunStart(run_id="r", seq=0)
        yield TextDelta(run_id="r", seq=1, delta="a\n", block_id="0")
        raise ConnectionError("reset")
    finally:
        closed.append(True)


async def test_a_failing_source_ends_with_the_error_frames_then_raises() -> None:
    closed: list[bool] = []
    lines: list[bytes] = []
    with pytest.raises(ConnectionError, match="reset"):
        async for chunk in encoded(_failing(closed), NDJSONEncoder()):
            lines.append(chunk)
    events = [from_json(x) for x in lines]
    assert [e.kind for e in events] == ["run-start", "text-delta", "error"]
    last = events[-1]
    assert isinstance(last, ErrorEvent) and (last.error_type, last.run_id, last.seq) == ("ConnectionError", "r", 2)
    assert closed == [True]


async def test_an_item_encoder_gives_one_item_per_frame_and_its_terminator_last() -> None:
    events = [RunStart(run_id="r"), TextDelta(run_id="r", delta="hi", block_id="0")]
    frames = await encoded(Stream.from_iterable(events), VercelEncoder()).collect()
    assert all(f.startswith(b"data: ") and f.count(b"\n\n") == 1 for f in frames)
    assert frames[-1] == b"data: [DONE]\n\n"
    types = [f.split(b'"type":"')[1].split(b'"')[0] for f in frames[:-1]]
    assert types == [b"start", b"text-start", b"text-delta", b"text-end", b"abort"]


def test_an_item_encoder_that_raised_keeps_the_items_it_had_made() -> None:
    enc = VercelEncoder()
    enc.encode(TextDelta(run_id="r", delta="a", block_id="0"))
    bad = ToolCallEnd(run_id="r", call_id="c", name="f", arguments=None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        enc.encode(bad)  # the text block's end was made before the failure
    body = enc.error_frames(ErrorEvent(run_id="r", error_type="AttributeError", message="no arguments"))
    assert body.index(b'"text-end"') < body.index(b'"error"') < body.index(b'"abort"')
    assert body.count(b'"text-end"') == 1 and body.endswith(b"data: [DONE]\n\n")
