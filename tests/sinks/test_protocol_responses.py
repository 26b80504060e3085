"""The Vercel and AG-UI responses over a real uvicorn server: the one response class of every
sink gives them what the SSE sink has (a failing stream ends with its error and the protocol's
end, a client that leaves cancels the stream or lets it continue, heartbeats in silences).

uvicorn runs on asyncio only, so these tests do too."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio
import httpx
import pytest
from ag_ui.core import EventType
from starlette.applications import Starlette
from starlette.routing import Route

import streamops as so
from streamops.events import BaseEvent, CustomEvent, ErrorEvent, RunStart, TextDelta, ToolCallEnd, from_json
from streamops.sinks import agui_response, sse_response, vercel_response
from streamops.sse import SSEDecoder
from tests.serve.test_runlog import forever

from ._uvicorn import eventually, serve
from .test_agui import EVENT, check_agui
from .test_vercel import check_ui_stream

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

Respond = Callable[..., Any]
SINKS = {"vercel": vercel_response, "agui": agui_response}
sinks = pytest.mark.parametrize("respond", list(SINKS.values()), ids=list(SINKS))


def app_for(make: Callable[[], Any]) -> Starlette:
    async def endpoint(request: Any) -> Any:
        return make()

    return Starlette(routes=[Route("/chat", endpoint, methods=["POST"])])


def frames(body: bytes) -> list[str]:
    """The ``data`` of each SSE event of the body (heartbeat comments dispatch none)."""
    d = SSEDecoder()
    return [e.data for e in d.feed(body) + d.flush()]


def check(respond: Respond, data: list[str]) -> list[dict[str, Any]]:
    """The body's frames checked by the protocol's own checker; the parsed payloads."""
    if respond is vercel_response:
        assert data[-1] == "[DONE]"
        assert data.count("[DONE]") == 1
        parts = [json.loads(x) for x in data[:-1]]
        check_ui_stream(parts)
        return parts
    events = [EVENT.validate_json(x) for x in data]
    check_agui(events)
    return [json.loads(x) for x in data]


@sinks
async def test_a_failing_stream_ends_with_its_error_and_the_protocols_end(respond: Respond) -> None:
    async def boom() -> AsyncGenerator[BaseEvent, None]:
        yield RunStart(run_id="r", seq=0)
        yield TextDelta(run_id="r", seq=1, delta="a", block_id="0")
        raise RuntimeError("upstream 529")

    app = app_for(lambda: respond(so.Stream.from_async_iterable(boom())))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            r = await client.post("/chat")
    assert r.headers["content-type"].startswith("text/event-stream")
    parts = check(respond, frames(r.content))
    if respond is vercel_response:
        assert {"type": "error", "errorText": "RuntimeError: upstream 529"} in parts
        assert parts[-1]["type"] == "abort"
    else:
        errors = [p for p in parts if p["type"] == EventType.CUSTOM and p["name"] == "error"]
        assert errors[0]["value"]["errorType"] == "RuntimeError"
        assert errors[0]["value"]["message"] == "upstream 529"


@sinks
async def test_client_disconnect_closes_the_stream_within_a_second(respond: Respond) -> None:
    closed: list[str] = []
    app = app_for(lambda: respond(so.Stream.from_async_iterable(forever(closed))))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("POST", "/chat") as r:
                got = b""
                async for chunk in r.aiter_bytes():
                    got += chunk
                    if got.count(b"data: ") >= 4:
                        break
            gone = time.monotonic()
        await eventually(lambda: closed, within=1)
        assert time.monotonic() - gone < 1
    assert closed == ["closed"]


@sinks
async def test_continue_iterates_to_the_end_after_the_client_left(respond: Respond) -> None:
    done: list[int] = []

    async def paced() -> AsyncGenerator[BaseEvent, None]:
        try:
            for i in range(30):
                await anyio.sleep(0.01)
                yield TextDelta(run_id="r", seq=i, delta="x", block_id="0")
            done.append(i)
        finally:
            done.append(-1)

    app = app_for(lambda: respond(so.Stream.from_async_iterable(paced()), on_disconnect="continue"))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("POST", "/chat") as r:
                async for _ in r.aiter_bytes():
                    break
            await eventually(lambda: done, within=4)
    assert done == [29, -1]


@sinks
async def test_heartbeats_fill_the_silences(respond: Respond) -> None:
    async def slow() -> AsyncGenerator[BaseEvent, None]:
        yield RunStart(run_id="r", seq=0)
        await anyio.sleep(0.3)
        yield TextDelta(run_id="r", seq=1, delta="a", block_id="0")

    app = app_for(lambda: respond(so.Stream.from_async_iterable(slow()), heartbeat=0.05))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            r = await client.post("/chat")
    assert r.content.count(b": ping\n\n") >= 3
    check(respond, frames(r.content))


async def test_bad_options_are_refused() -> None:
    stream = so.Stream.from_iterable([])
    for respond in SINKS.values():
        with pytest.raises(ValueError, match="heartbeat"):
            respond(stream, heartbeat=0)
        with pytest.raises(ValueError, match="on_disconnect"):
            respond(stream, on_disconnect="drop")


# ------------------------------------------------------------------ an encoder that raises
class Closed:
    def __init__(self) -> None:
        self.closed = False


def _bad_event_for(respond: Respond) -> Any:
    """An item the sink's own encoder fails on: not an event (SSE), a custom event whose name
    is not text (AG-UI's models refuse it), a tool call end without argument text (Vercel)."""
    if respond is sse_response:
        return {"kind": "text-delta", "delta": "a dict, not an event"}
    if respond is agui_response:
        return CustomEvent(run_id="r", seq=2, name=123, data=None)  # type: ignore[arg-type]
    return ToolCallEnd(run_id="r", seq=2, call_id="c", name="f", arguments=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("respond", [sse_response, agui_response, vercel_response], ids=["sse", "agui", "vercel"])
async def test_an_encoder_that_raises_sends_its_error_frame_once_and_closes_the_source(respond: Respond) -> None:
    probe = Closed()

    async def events() -> AsyncGenerator[Any, None]:
        try:
            yield RunStart(run_id="r", seq=0)
            yield TextDelta(run_id="r", seq=1, delta="a", block_id="0")
            yield _bad_event_for(respond)
            yield TextDelta(run_id="r", seq=3, delta="never sent", block_id="0")
        finally:
            probe.closed = True

    app = app_for(lambda: respond(so.Stream.from_async_iterable(events())))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            r = await client.post("/chat")
    assert r.status_code == 200 and probe.closed
    assert b"never sent" not in r.content
    data = frames(r.content)
    if respond is sse_response:
        last = from_json(data[-1])
        assert isinstance(last, ErrorEvent) and last.error_type == "EventValidationError"
        assert last.run_id == "r" and last.seq == 2  # after the last event read that was one
        assert sum(from_json(x).kind == "error" for x in data) == 1
        return
    parts = check(respond, data)  # the protocol's own end, once
    if respond is vercel_response:
        assert [p["type"] for p in parts[-2:]] == ["error", "abort"]
        assert parts[-2]["errorText"].startswith("AttributeError:")
    else:
        errors = [p for p in parts if p["type"] == EventType.CUSTOM and p["name"] == "error"]
        assert len(errors) == 1 and errors[0]["value"]["errorType"] == "ValidationError"
        assert parts[-1]["type"] == EventType.RUN_ERROR


class _Fails:
    """An encoder whose error frames fail too: the body just ends (what was written stays)."""

    def encode_frames(self, event: BaseEvent) -> bytes:
        if isinstance(event, TextDelta):
            raise ValueError("cannot encode")
        return b"data: ok\n\n"

    def close_frames(self) -> bytes:
        return b"data: end\n\n"

    def error_frames(self, error: ErrorEvent) -> bytes:
        raise RuntimeError("cannot encode the error either")


async def test_when_the_error_frames_raise_too_the_body_just_ends() -> None:
    from streamops.sinks._asgi import encoder_response
    from streamops.sinks.encoder import Encoder

    probe = Closed()
    assert isinstance(_Fails(), Encoder)

    async def events() -> AsyncGenerator[BaseEvent, None]:
        try:
            yield RunStart(run_id="r")
            yield TextDelta(run_id="r", delta="x")
            yield TextDelta(run_id="r", delta="y")
        finally:
            probe.closed = True

    app = app_for(lambda: encoder_response(events(), _Fails(), headers={"content-type": "text/event-stream"}))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            r = await client.post("/chat")
    assert r.status_code == 200 and r.content == b"data: ok\n\n" and probe.closed
