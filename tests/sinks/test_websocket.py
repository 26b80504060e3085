"""The WebSocket sink, served by a real uvicorn server to a real ``websockets`` client: the
Origin check, one JSON text message per event, a normal close, disconnect cancels upstream."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator

import anyio
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

import streamops as so
from streamops.events import BaseEvent, ErrorEvent, TextDelta, from_json
from streamops.sinks.websocket import origin_allowed, websocket_sink
from tests.serve.test_runlog import forever, run_events

from ._uvicorn import eventually, serve

# uvicorn runs on asyncio only, so the tests that serve over a real socket run on asyncio.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

ALLOWED = ["https://app.example", "http://localhost:3000/"]


class Tracked:
    """A source of events that records whether it was started and whether its finally ran."""

    def __init__(self, events: list[BaseEvent], *, pause: float = 0.0, fail: bool = False) -> None:
        self.events = events
        self.pause = pause
        self.fail = fail
        self.started = False
        self.closed = False

    async def gen(self) -> AsyncGenerator[BaseEvent, None]:
        self.started = True
        try:
            for e in self.events:
                await anyio.sleep(self.pause)
                yield e
            if self.fail:
                raise ConnectionError("provider went away")
        finally:
            self.closed = True


def app_for(stream_factory: object, **kw: object) -> Starlette:
    async def endpoint(websocket: WebSocket) -> None:
        stream = stream_factory()  # type: ignore[operator]
        await websocket_sink(websocket, stream, allowed_origins=ALLOWED, **kw)  # type: ignore[arg-type]

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


@asyncio_only
@pytest.mark.anyio
async def test_an_allowed_origin_gets_every_event_then_a_normal_close() -> None:
    src = Tracked(run_events(5))
    app = app_for(lambda: so.Stream.from_async_iterable(src.gen()))
    async with serve(app) as url:
        with anyio.fail_after(5):
            async with connect(ws_url(url), origin="https://APP.example") as ws:  # type: ignore[arg-type]
                messages = [m async for m in ws]  # ends at the normal close (1000)
                assert ws.close_code == 1000
    assert all(isinstance(m, str) for m in messages)
    assert [from_json(m) for m in messages] == src.events
    assert json.loads(messages[1])["kind"] == "text-delta"
    assert src.closed


@asyncio_only
@pytest.mark.anyio
@pytest.mark.parametrize("origin", ["https://evil.example", "https://app.example.evil.example", "null", None])
async def test_another_origin_is_refused_before_the_stream_starts(origin: str | None) -> None:
    src = Tracked(run_events(5))
    app = app_for(lambda: so.Stream.from_async_iterable(src.gen()))
    async with serve(app) as url:
        with anyio.fail_after(5), pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(url), origin=origin):  # type: ignore[arg-type]
                pass
    assert info.value.response.status_code == 403
    assert not src.started


@asyncio_only
@pytest.mark.anyio
async def test_no_origin_is_allowed_only_when_asked() -> None:
    src = Tracked(run_events(1))
    app = app_for(lambda: so.Stream.from_async_iterable(src.gen()), allow_missing_origin=True)
    async with serve(app) as url:
        with anyio.fail_after(5):
            async with connect(ws_url(url)) as ws:
                messages = [m async for m in ws]
    assert len(messages) == 3


@asyncio_only
@pytest.mark.anyio
async def test_a_failing_stream_sends_an_error_event_and_closes_1011() -> None:
    src = Tracked(run_events(1), fail=True)
    app = app_for(lambda: so.Stream.from_async_iterable(src.gen()))
    async with serve(app) as url:
        with anyio.fail_after(5):
            async with connect(ws_url(url), origin="https://app.example") as ws:  # type: ignore[arg-type]
                messages = []
                with pytest.raises(ConnectionClosedError):
                    while True:
                        messages.append(await ws.recv())
                assert ws.close_code == 1011
    err = from_json(messages[-1])
    assert isinstance(err, ErrorEvent) and err.error_type == "ConnectionError" and err.seq == 3


@asyncio_only
@pytest.mark.anyio
async def test_client_disconnect_cancels_the_upstream_within_a_second() -> None:
    closed: list[str] = []
    app = app_for(lambda: so.Stream.from_async_iterable(forever(closed)))
    async with serve(app) as url:
        with anyio.fail_after(5):
            async with connect(ws_url(url), origin="http://localhost:3000") as ws:  # type: ignore[arg-type]
                for _ in range(3):
                    assert isinstance(from_json(await ws.recv()), TextDelta)
                await ws.send("ignored by the server")
            gone = time.monotonic()
        await eventually(lambda: closed, within=1)
        assert time.monotonic() - gone < 1


@asyncio_only
@pytest.mark.anyio
async def test_an_abrupt_client_drop_cancels_the_upstream_too() -> None:
    closed: list[str] = []
    app = app_for(lambda: so.Stream.from_async_iterable(forever(closed)))
    async with serve(app) as url:
        with anyio.fail_after(5):
            ws = await connect(ws_url(url), origin="https://app.example")  # type: ignore[arg-type]
            await ws.recv()
            ws.transport.abort()  # no closing handshake
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        await eventually(lambda: closed, within=1)


def test_origin_allowed() -> None:
    assert origin_allowed("https://app.example", ALLOWED)
    assert origin_allowed("HTTPS://App.Example/", ALLOWED)
    assert origin_allowed("http://localhost:3000", ALLOWED)
    assert not origin_allowed("http://localhost:3001", ALLOWED)
    assert not origin_allowed("https://app.example:443x", ALLOWED)
    assert not origin_allowed(None, ALLOWED)
    assert origin_allowed(None, ALLOWED, allow_missing=True)
    assert origin_allowed("https://anything", ["*"]) and origin_allowed(None, ["*"])
    assert not origin_allowed("https://app.example", [])


@pytest.mark.anyio
async def test_a_single_string_of_origins_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not one string"):
        await websocket_sink(None, so.Stream.from_iterable([]), allowed_origins="https://app.example")  # type: ignore[arg-type]
