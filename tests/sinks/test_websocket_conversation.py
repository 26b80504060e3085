"""A conversation on one WebSocket (issue 15, item 16): several turns per connection, the
history kept between them, a disconnect mid-turn cancels that turn's run. Served by a real
uvicorn to a real ``websockets`` client (asyncio: uvicorn runs on asyncio only), and driven
through the ASGI interface on asyncio and trio."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from streamops.adapters.replay import ReplayModel
from websockets.asyncio.client import ClientConnection, connect

import streamops as so
from streamops.agent import Agent
from streamops.events import ErrorEvent, RunEnd, from_json
from streamops.models import ChatMessage
from streamops.sinks.websocket import INVALID_MESSAGE, websocket_conversation
from tests.conftest import RECORDED

from ._uvicorn import eventually, serve

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

ORIGIN = "https://app.example"
SHORT = RECORDED / "anthropic" / "messages_minimal_text_pyd.sse"
LONG = RECORDED / "anthropic" / "messages_joke_emoji_oll.sse"


def app_for(agent: Agent, ended: list[list[ChatMessage]], **kw: Any) -> Starlette:
    async def endpoint(websocket: WebSocket) -> None:
        ended.append(await websocket_conversation(websocket, agent, allowed_origins=[ORIGIN], **kw))

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


async def turn(ws: ClientConnection, content: str) -> list[so.BaseEvent]:
    """Send one user message; receive that turn's events up to its RunEnd."""
    await ws.send(json.dumps({"role": "user", "content": content}))
    events: list[so.BaseEvent] = []
    while not isinstance(events[-1:] and events[-1], RunEnd):
        events.append(from_json(await ws.recv()))
    return events


def text_of(events: list[so.BaseEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, so.TextDelta))


@asyncio_only
@pytest.mark.anyio
async def test_two_turns_on_one_socket_the_second_sees_the_first() -> None:
    model = ReplayModel([SHORT, LONG])
    ended: list[list[ChatMessage]] = []
    async with serve(app_for(Agent(model, instructions="Be brief."), ended)) as url:
        with anyio.fail_after(5):
            async with connect(url.replace("http", "ws") + "/ws", origin=ORIGIN) as ws:  # type: ignore[arg-type]
                first = await turn(ws, "hi")
                second = await turn(ws, "a joke?")
                assert ws.close_code is None  # still open after two turns
            await eventually(lambda: ended, within=2)
    assert isinstance(first[0], so.RunStart) and first[-1].status == "completed"  # type: ignore[attr-defined]
    assert second[-1].status == "completed"  # type: ignore[attr-defined]
    assert first[0].run_id != second[0].run_id  # one run per turn
    answer = {"role": "assistant", "content": text_of(first)}
    assert model.calls[0]["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert model.calls[1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        answer,
        {"role": "user", "content": "a joke?"},
    ]
    assert ended == [
        [
            {"role": "user", "content": "hi"},
            answer,
            {"role": "user", "content": "a joke?"},
            {"role": "assistant", "content": text_of(second)},
        ]
    ]


@asyncio_only
@pytest.mark.anyio
async def test_a_disconnect_mid_turn_cancels_that_turns_run() -> None:
    runs: list[RunEnd] = []
    model = ReplayModel([SHORT, LONG], delay=0.05)  # the second turn takes ~3 s
    agent = Agent(model, hooks=so.Hooks(on_stream_end=runs.append))
    ended: list[list[ChatMessage]] = []
    async with serve(app_for(agent, ended)) as url:
        with anyio.fail_after(5):
            async with connect(url.replace("http", "ws") + "/ws", origin=ORIGIN) as ws:  # type: ignore[arg-type]
                await turn(ws, "hi")
                await ws.send(json.dumps({"content": "a joke?"}))
                while not isinstance(from_json(await ws.recv()), so.TextDelta):
                    pass
            await eventually(lambda: len(runs) == 2, within=1)
    assert [r.status for r in runs] == ["completed", "cancelled"]
    assert len(model.calls) == 2
    assert [m["role"] for m in ended[0]] == ["user", "assistant", "user"]  # the cancelled turn's prompt


class ASGIClient:
    """Drives a starlette app's WebSocket route through the ASGI interface itself (no server), so
    the sink runs on whichever backend the test runs on."""

    def __init__(self) -> None:
        self.to_app, self.app_inbox = anyio.create_memory_object_stream[dict[str, Any]](16)
        self.app_outbox, self.from_app = anyio.create_memory_object_stream[dict[str, Any]](16)

    async def run(self, app: Starlette) -> None:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/ws",
            "raw_path": b"/ws",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"origin", ORIGIN.encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
            "subprotocols": [],
        }
        await app(scope, self.app_inbox.receive, self.app_outbox.send)

    async def send_text(self, text: str) -> None:
        await self.to_app.send({"type": "websocket.receive", "text": text})

    async def receive_event(self) -> so.BaseEvent:
        message = await self.from_app.receive()
        assert message["type"] == "websocket.send", message
        return from_json(message["text"])


@pytest.mark.anyio
async def test_turns_bad_messages_and_disconnect_through_asgi() -> None:
    runs: list[RunEnd] = []
    model = ReplayModel([SHORT, SHORT, LONG], delay=0.01)
    agent = Agent(model, hooks=so.Hooks(on_stream_end=runs.append))
    ended: list[list[ChatMessage]] = []
    client = ASGIClient()

    async def until_run_end() -> list[so.BaseEvent]:
        events = [await client.receive_event()]
        while not isinstance(events[-1], RunEnd):
            events.append(await client.receive_event())
        return events

    with anyio.fail_after(5), client.to_app, client.app_inbox, client.app_outbox, client.from_app:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.run, app_for(agent, ended))
            await client.to_app.send({"type": "websocket.connect"})
            assert (await client.from_app.receive())["type"] == "websocket.accept"

            bad: list[tuple[str, Callable[[str], bool]]] = [
                ("not json", lambda m: m.startswith("not JSON")),
                ('["hi"]', lambda m: "JSON object" in m),
                ('{"role": "assistant", "content": "x"}', lambda m: "role 'user'" in m),
                ('{"content": 3}', lambda m: "string 'content'" in m),
            ]
            for text, says in bad:
                await client.send_text(text)
                err = await client.receive_event()
                assert isinstance(err, ErrorEvent) and err.error_type == INVALID_MESSAGE and says(err.message)

            await client.send_text('{"content": "one"}')
            await client.send_text('{"content": "two"}')  # queued while the first turn runs
            one = await until_run_end()
            two = await until_run_end()
            assert model.calls[1]["messages"] == [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": text_of(one)},
                {"role": "user", "content": "two"},
            ]
            await client.send_text('{"content": "three"}')
            while not isinstance(await client.receive_event(), so.TextDelta):
                pass
            await client.to_app.send({"type": "websocket.disconnect", "code": 1001})
    assert [r.status for r in runs] == ["completed", "completed", "cancelled"]
    assert [m["content"] for m in ended[0]] == ["one", text_of(one), "two", text_of(two), "three"]


@pytest.mark.anyio
async def test_too_many_queued_turns_close_the_connection_1008() -> None:
    runs: list[RunEnd] = []
    agent = Agent(ReplayModel([LONG], delay=0.05), hooks=so.Hooks(on_stream_end=runs.append))
    ended: list[list[ChatMessage]] = []
    client = ASGIClient()
    with anyio.fail_after(5), client.to_app, client.app_inbox, client.app_outbox, client.from_app:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.run, app_for(agent, ended, max_pending=1))
            await client.to_app.send({"type": "websocket.connect"})
            assert (await client.from_app.receive())["type"] == "websocket.accept"
            await client.send_text('{"content": "one"}')
            assert isinstance(await client.receive_event(), so.RunStart)  # the first turn runs
            await client.send_text('{"content": "two"}')  # waits
            await client.send_text('{"content": "three"}')  # one too many
            while (message := await client.from_app.receive())["type"] == "websocket.send":
                pass
    assert message == {"type": "websocket.close", "code": 1008, "reason": ""}
    assert [r.status for r in runs] == ["cancelled"]
    assert ended == [[{"role": "user", "content": "one"}]]


@pytest.mark.anyio
async def test_max_pending_below_one_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        await websocket_conversation(None, None, allowed_origins=[ORIGIN], max_pending=0)  # type: ignore[arg-type]
