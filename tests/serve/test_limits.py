"""The server at its limits: a run cut short by the agent's ``max_steps`` while only its own
(server-side) tools were called, and a registry full of running runs (503)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from starlette.applications import Starlette

import streamops as so
from streamops.agent import Agent
from streamops.serve.app import ChatCompletionRequest, create_app
from tests._models import FakeModel, ModelCall
from tests.serve.test_agent_factory import WEATHER, Factory

pytestmark = pytest.mark.anyio

BODY = {"messages": [{"role": "user", "content": "The weather in Paris?"}]}


def out_of_steps(request: ChatCompletionRequest) -> Agent:
    """The weather agent allowed one step: its model asks for the agent's own tool, and the
    run ends there (``max_steps``)."""
    agent = Factory(WEATHER).agent()
    agent.max_steps = 1
    return agent


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_run_out_of_steps_on_server_tools_ends_with_length_not_tool_calls(anyio_backend: str) -> None:
    """The client was asked for no tool call: ``finish_reason: "tool_calls"`` with no
    ``tool_calls`` would send an OpenAI client looking for calls that are not there."""
    app = create_app(agent_factory=out_of_steps, a2a=False)
    async with asgi_client(app) as client:
        r = await client.post("/v1/chat/completions", json=BODY)
        choice = r.json()["choices"][0]
        assert (choice["finish_reason"], choice["message"].get("tool_calls")) == ("length", None)
        assert choice["message"]["content"] == "Let me look that up. "
        r = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
        chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
        choices = [c["choices"][0] for c in chunks if c["choices"]]
        assert [c["finish_reason"] for c in choices if c["finish_reason"]] == ["length"]
        assert not any("tool_calls" in c["delta"] for c in choices)
        # the run log keeps what really happened
        run_id = r.headers["x-streamops-run-id"]
        log = await client.get(f"/runs/{run_id}/events")
        ends = [json.loads(line[6:]) for line in log.text.splitlines() if line.startswith("data: {")]
        assert ends[-1]["kind"] == "run-end" and ends[-1]["status"] == "max_steps"
        assert ends[-1]["finish_reason"] == "tool_calls"


@asynccontextmanager
async def asgi_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in process (its lifespan entered), no socket."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


class Gate(FakeModel):
    """A model whose stream waits until ``release`` is set, then answers one word."""

    name = "gate"

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.started = anyio.Event()

    async def respond(self, call: ModelCall) -> AsyncGenerator[so.BaseEvent, None]:
        env = call.env
        self.started.set()
        yield so.RunStart(model=self.name, **env)
        await self.release.wait()
        yield so.TextDelta(delta="done", **env)
        yield so.RunEnd(finish_reason="stop", **env)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_registry_full_of_running_runs_answers_503_until_one_ends(anyio_backend: str) -> None:
    gate = Gate()
    app = create_app(model=gate, max_runs=1, a2a=False)
    async with asgi_client(app) as client:
        first: list[httpx.Response] = []

        async def hold() -> None:
            first.append(await client.post("/v1/chat/completions", json=BODY))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(hold)
                await gate.started.wait()
                busy = await client.post("/v1/chat/completions", json=BODY)
                assert busy.status_code == 503
                error = busy.json()["error"]
                assert error["type"] == "server_error" and "1 runs are running" in error["message"]
                gate.release.set()
            assert first[0].status_code == 200
            assert first[0].json()["choices"][0]["message"]["content"] == "done"
            again = await client.post("/v1/chat/completions", json=BODY)  # the ended run made room
            assert again.status_code == 200
