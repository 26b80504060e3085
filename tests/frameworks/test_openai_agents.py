"""OpenAI Agents SDK runs through streamops.adapters.openai_agents: the SDK's real HTTP client
(openai.AsyncOpenAI) against a server on 127.0.0.1 replaying recorded Responses streams
(tests/fixtures/recorded/openai/), no key, no network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

pytest.importorskip("agents")

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI
from streamops.adapters import from_run
from streamops.adapters.openai_agents import from_openai_agents

import streamops as so

from .._http import parse_head
from ..conftest import RECORDED

pytestmark = pytest.mark.anyio
set_tracing_disabled(True)


@pytest.fixture
def anyio_backend() -> str:
    """The Agents SDK runs its run loop as an asyncio task: asyncio only."""
    return "asyncio"


def _body(name: str) -> bytes:
    return (RECORDED / "openai" / f"{name}.sse").read_bytes()


class _Server:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.targets: list[str] = []
        self.closed = 0
        self.closed_event = anyio.Event()


@asynccontextmanager
async def replay(bodies: list[bytes], *, hang_after: int | None = None) -> AsyncIterator[_Server]:
    """An HTTP/1.1 server on 127.0.0.1 answering the n-th request with ``bodies[n]`` as
    ``text/event-stream``; with ``hang_after``, it sends that many bytes of the body and then
    waits until the client closes the connection (counted in ``closed``)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = _Server(f"http://127.0.0.1:{port}/v1")

    async def handle(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            buf = b""
            while (req := parse_head(buf)) is None:
                buf += await conn.receive()
            n = len(server.targets)
            server.targets.append(req.target)
            rest = req.body
            while len(rest) < req.content_length:
                rest += await conn.receive()
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            body = bodies[min(n, len(bodies) - 1)]
            if hang_after is None:
                await conn.send(head + body)
                return
            await conn.send(head + body[:hang_after])
            try:
                while await conn.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                pass
            server.closed += 1
            server.closed_event.set()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    raise ValueError("multiply is broken")


def _agent(base_url: str) -> Agent[Any]:
    client = AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    return Agent(name="calc", model=OpenAIResponsesModel("gpt-4o", client), tools=[add, multiply])


async def test_two_model_calls_parallel_tools_and_a_tool_error() -> None:
    bodies = [_body("responses_parallel_function_calls_gpt4o_fantasy"), _body("responses_after_tool_utf8_llm")]
    async with replay(bodies) as server:
        run = Runner.run_streamed(_agent(server.base_url), "2+3 and 2*3")
        events = await from_openai_agents(run).collect()
    assert len(server.targets) == 2 and all(t == "/v1/responses" for t in server.targets)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end"
    assert [e.seq for e in events] == list(range(len(events)))
    assert kinds.count("step-start") == 2 and kinds.count("step-end") == 2
    ends = {e.call_id: e for e in events if isinstance(e, so.ToolCallEnd)}
    assert {(e.name, e.arguments) for e in ends.values()} == {("add", '{"a":2,"b":3}'), ("multiply", '{"a":2,"b":3}')}
    results = {e.call_id: e.result for e in events if isinstance(e, so.ToolResult)}
    add_id = next(c for c, e in ends.items() if e.name == "add")
    mul_id = next(c for c, e in ends.items() if e.name == "multiply")
    assert results[add_id] == 5
    # the SDK hands a failing tool's error to the model as its output (a generic message)
    assert "error occurred while running the tool" in str(results[mul_id])
    # the second model call is kept: its text is the run's answer
    text = "".join(e.delta for e in events if isinstance(e, so.TextDelta))
    assert text == "1231 × 2331 = **2,869,461**"
    finals = [e for e in events if isinstance(e, so.FinalOutput)]
    assert [f.value for f in finals] == [text]
    steps = [e for e in events if isinstance(e, so.StepEnd)]
    assert [s.finish_reason for s in steps] == ["tool_calls", "stop"]
    end = events[-1]
    assert isinstance(end, so.RunEnd) and end.status == "completed"
    assert end.usage is not None and (end.usage.input_tokens, end.usage.output_tokens) == (104 + 94, 51 + 18)
    assert all(e.agent == "calc" for e in events if e.seq > kinds.index("custom"))


async def test_provider_error_mid_run_is_an_error_event() -> None:
    bodies = [_body("responses_error_insufficient_quota_vercel")]
    async with replay(bodies) as server:
        events = await from_run(Runner.run_streamed(_agent(server.base_url), "hi")).collect()  # picks openai-agents
    errors = [e for e in events if isinstance(e, so.ErrorEvent)]
    assert errors and any("quota" in (e.message + (e.code or "")) for e in errors)
    assert isinstance(events[-1], so.RunEnd) and events[-1].status == "failed"


async def test_break_mid_run_cancels_and_closes_the_http_request() -> None:
    body = _body("responses_after_tool_utf8_llm")
    cut = body.index(b"response.output_text.delta") + 400
    async with replay([body], hang_after=cut) as server:
        run = Runner.run_streamed(_agent(server.base_url), "hi")
        with anyio.fail_after(10):
            async with aclosing(from_openai_agents(run).__aiter__()) as it:
                async for ev in it:
                    if isinstance(ev, so.TextDelta):
                        break
            await server.closed_event.wait()
    assert server.closed == 1
    assert run.is_complete
