"""The streamed-body helpers of the sinks when their source fails or their consumer stops early.

``ChunkEncoder.encode_stream`` ends a failed source with the encoder's error chunk (never an invented
``"stop"`` finish) and ``data: [DONE]``, then re-raises; the ``encode_stream`` methods of the
Vercel, AG-UI and A2A encoders end a failed source as their ``*_response`` helpers do (the
``ErrorEvent`` for it, then the closing frames), then re-raise; and every one of them closes
its source however it stops (early ``aclose()``/``break``, failure, end).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

import streamops as so
from streamops.events import BaseEvent, RunStart, TextDelta, Usage, UsageEvent
from streamops.sinks.a2a import A2AEncoder, a2a_types_module
from streamops.sinks.agui import AGUIEncoder
from streamops.sinks.openai import DONE, ChunkEncoder
from streamops.sinks.vercel import VercelEncoder


class Source:
    """An async generator source that records whether its ``finally`` ran, and can fail after
    its events."""

    def __init__(self, events: list[BaseEvent], fail: Exception | None = None) -> None:
        self.events = events
        self.fail = fail
        self.closed = False
        self.started = False

    async def gen(self) -> AsyncGenerator[BaseEvent, None]:
        self.started = True
        try:
            for ev in self.events:
                yield ev
                await anyio.lowlevel.checkpoint()
            if self.fail is not None:
                raise self.fail
        finally:
            self.closed = True


def run_events() -> list[BaseEvent]:
    return [
        RunStart(run_id="r1", agent="a", seq=0),
        UsageEvent(run_id="r1", agent="a", seq=1, usage=Usage(input_tokens=3, output_tokens=2)),
        TextDelta(run_id="r1", agent="a", seq=2, delta="hi"),
        TextDelta(run_id="r1", agent="a", seq=3, delta=" there"),
    ]


def sse_json(frames: list[bytes]) -> list[Any]:
    """Every ``data:`` payload of the frames (a frame may hold several messages); ``[DONE]``
    kept as the string."""
    out: list[Any] = []
    for msg in b"".join(frames).split(b"\n\n"):
        if not msg:
            continue
        assert msg.startswith(b"data: ")
        data = msg[len(b"data: ") :]
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


# ============================================================================ ChunkEncoder.encode_stream
async def openai_frames(source: Source, **kw: Any) -> tuple[list[bytes], BaseException | None]:
    frames: list[bytes] = []
    try:
        enc = ChunkEncoder(model="m", completion_id="c", created=1, **kw)
        async with enc.encode_stream(source.gen()).iterate() as it:
            async for f in it:
                frames.append(f)
    except Exception as exc:
        return frames, exc
    return frames, None


@pytest.mark.anyio
async def test_openai_source_failure_ends_with_the_error_chunk_and_done_then_raises() -> None:
    boom = RuntimeError("boom")
    source = Source(run_events(), fail=boom)
    frames, raised = await openai_frames(source)
    assert raised is boom  # re-raised after the items
    assert source.closed
    assert frames[-1] == DONE
    wire = b"".join(frames)
    assert b'"finish_reason":"stop"' not in wire
    assert b'"finish_reason"' not in wire.replace(b'"finish_reason":null', b"")
    chunks = sse_json(frames)
    assert chunks[-1] == "[DONE]"
    assert chunks[-2] == {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "error": {"message": "boom", "type": "RuntimeError", "code": None},
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    assert sum("error" in c for c in chunks if isinstance(c, dict)) == 1
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[:-2]]
    assert contents == ["", "hi", " there"]


@pytest.mark.anyio
async def test_openai_source_failure_before_any_event_and_through_collect() -> None:
    source = Source([], fail=ValueError("no"))
    with pytest.raises(ValueError, match="no"):
        await ChunkEncoder(model="m").encode_stream(source.gen()).collect()
    frames, raised = await openai_frames(Source([], fail=ValueError("no")), include_usage=False)
    assert isinstance(raised, ValueError)
    chunks = sse_json(frames)
    assert chunks[0]["error"] == {"message": "no", "type": "ValueError", "code": None}
    assert chunks[-1] == "[DONE]" and len(chunks) == 2


@pytest.mark.anyio
async def test_openai_normal_completion_is_unchanged() -> None:
    source = Source(run_events())
    frames, raised = await openai_frames(source)
    assert raised is None and source.closed
    chunks = sse_json(frames)
    assert chunks[-1] == "[DONE]"
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert not any("error" in c for c in chunks if isinstance(c, dict))


@pytest.mark.anyio
async def test_openai_failing_stream_source_that_runs_tasks() -> None:
    """A streamops Stream that runs tasks (merge) as the source: hosted by the terminal."""
    source = Source(run_events(), fail=RuntimeError("merged failure"))
    merged = so.merge(source.gen())
    frames: list[bytes] = []
    with pytest.raises(RuntimeError, match="merged failure"):
        async with ChunkEncoder(model="m").encode_stream(merged).iterate() as it:
            async for f in it:
                frames.append(f)
    chunks = sse_json(frames)
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["error"]["message"] == "merged failure"
    assert source.closed
    ok = Source(run_events())
    frames = await ChunkEncoder(model="m").encode_stream(so.merge(ok.gen())).collect()
    assert frames[-1] == DONE and ok.closed


@pytest.mark.anyio
async def test_openai_early_exit_closes_the_source() -> None:
    source = Source(run_events() * 3)
    async with ChunkEncoder(model="m").encode_stream(source.gen()).iterate() as it:
        async for _ in it:
            break
    assert source.started and source.closed


def test_openai_sdk_raises_api_error_on_the_error_chunk() -> None:
    """The official SDK reads the body of a failed source: the text, then ``openai.APIError``."""
    import openai

    async def body() -> bytes:
        frames, raised = await openai_frames(Source(run_events(), fail=RuntimeError("upstream down")))
        assert isinstance(raised, RuntimeError)
        return b"".join(frames)

    wire = anyio.run(body)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=wire, headers={"content-type": "text/event-stream"})

    client = openai.OpenAI(
        api_key="k", base_url="http://test/v1", http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    text = []
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(openai.APIError, match="upstream down") as info:
        for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                assert choice.finish_reason is None
    assert "".join(text) == "hi there"
    assert info.value.body == {"message": "upstream down", "type": "RuntimeError", "code": None}


# ============================================================================ encode_stream
def vercel_body(source: Source) -> AsyncIterator[bytes]:
    return aiter(VercelEncoder(message_id="m").encode_stream(source.gen()))


def agui_body(source: Source) -> AsyncIterator[bytes]:
    return aiter(AGUIEncoder(thread_id="t", run_id="r1").encode_stream(source.gen()))


def a2a_body(source: Source) -> AsyncIterator[bytes]:
    return aiter(A2AEncoder(task_id="task", context_id="ctx").encode_stream(source.gen(), 7))


BODIES: dict[str, Callable[[Source], AsyncIterator[bytes]]] = {
    "vercel": vercel_body,
    "agui": agui_body,
    "a2a": a2a_body,
}


@pytest.mark.anyio
@pytest.mark.parametrize("sink", list(BODIES))
async def test_encode_stream_aclose_after_one_item_closes_the_source(sink: str) -> None:
    source = Source(run_events() * 3)
    body = BODIES[sink](source)
    first = await body.__anext__()
    assert first.startswith(b"data: ")
    assert source.started and not source.closed
    await body.aclose()  # type: ignore[attr-defined]
    assert source.closed


@pytest.mark.anyio
@pytest.mark.parametrize("sink", list(BODIES))
async def test_encode_stream_break_closes_the_source(sink: str) -> None:
    source = Source(run_events() * 3)
    body = BODIES[sink](source)
    try:
        async for _ in body:
            break
    finally:
        await body.aclose()  # type: ignore[attr-defined]
    assert source.closed


@pytest.mark.anyio
@pytest.mark.parametrize("sink", list(BODIES))
async def test_encode_stream_closes_a_source_iterator_that_is_not_a_generator(sink: str) -> None:
    """Any async iterable whose iterator has ``aclose`` is closed; one without is fine."""
    source = Source(run_events() * 3)

    class Wrapper:
        def __aiter__(self) -> AsyncGenerator[BaseEvent, None]:
            return source.gen()

    class NoClose:
        def __init__(self) -> None:
            self.items = iter(run_events())

        def __aiter__(self) -> NoClose:
            return self

        async def __anext__(self) -> BaseEvent:
            try:
                return next(self.items)
            except StopIteration:
                raise StopAsyncIteration from None

    enc: Any = {"vercel": VercelEncoder(), "agui": AGUIEncoder(), "a2a": A2AEncoder()}[sink]
    args = (7,) if sink == "a2a" else ()
    body = aiter(enc.encode_stream(Wrapper(), *args))
    await body.__anext__()
    await body.aclose()
    assert source.closed
    enc = {"vercel": VercelEncoder(), "agui": AGUIEncoder(), "a2a": A2AEncoder()}[sink]
    assert [f async for f in enc.encode_stream(NoClose(), *args)]


@pytest.mark.anyio
async def test_vercel_encode_stream_source_failure() -> None:
    boom = RuntimeError("boom")
    source = Source(run_events(), fail=boom)
    frames: list[bytes] = []
    with pytest.raises(RuntimeError, match="boom") as info:
        async for f in vercel_body(source):
            frames.append(f)
    assert info.value is boom
    assert source.closed
    parts = sse_json(frames)
    assert parts[-1] == "[DONE]"
    assert [p["type"] for p in parts[-5:-1]] == ["text-delta", "text-end", "error", "abort"]
    assert parts[-3] == {"type": "error", "errorText": "RuntimeError: boom"}


@pytest.mark.anyio
async def test_agui_encode_stream_source_failure() -> None:
    source = Source(run_events(), fail=RuntimeError("boom"))
    frames: list[bytes] = []
    with pytest.raises(RuntimeError, match="boom"):
        async for f in agui_body(source):
            frames.append(f)
    assert source.closed
    events = sse_json(frames)
    types = [e["type"] for e in events]
    assert types[-3:] == ["TEXT_MESSAGE_END", "CUSTOM", "RUN_ERROR"]  # a failed run ends with RUN_ERROR
    assert events[-2]["name"] == "error"
    assert "boom" in json.dumps(events[-2]["value"])


@pytest.mark.anyio
async def test_a2a_encode_stream_source_failure_ends_the_task_failed() -> None:
    t = a2a_types_module()
    source = Source(run_events(), fail=RuntimeError("boom"))
    frames: list[bytes] = []
    with pytest.raises(RuntimeError, match="boom"):
        async for f in a2a_body(source):
            frames.append(f)
    assert source.closed
    results = sse_json(frames)
    for r in results:
        t.SendStreamingMessageResponse.model_validate(r)
    final = results[-1]["result"]
    assert final["final"] is True
    assert final["status"]["state"] == "failed"
    assert final["status"]["message"]["parts"][0]["text"] == "RuntimeError: boom"
    assert sum(r["result"].get("final", False) for r in results) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("sink", list(BODIES))
async def test_encode_stream_normal_end_closes_and_does_not_raise(sink: str) -> None:
    source = Source(run_events())
    frames = [f async for f in BODIES[sink](source)]
    assert frames and source.closed
    assert b"boom" not in b"".join(frames)
