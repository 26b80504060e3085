"""The LiteLLM adapter, for real and offline: ``litellm.acompletion`` talks HTTP to a server
on 127.0.0.1 that serves recorded provider SSE bodies.

asyncio only: LiteLLM awaits asyncio futures inside its OpenAI handler (on trio,
``acompletion`` fails with "trio.run received unrecognized yield message <Future ...>").
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from streamops.adapters.litellm import import_litellm, litellm_stream, parse_litellm

from streamops import Accumulator, ErrorEvent, Message, RunEnd, RunStart, TextDelta
from tests._http import parse_head

pytestmark = [
    # LiteLLM 1.106 itself reads ``model_fields``/``model_computed_fields`` on an instance while building
    # tool-call chunks (pydantic 2.11 deprecates that); with warnings as errors it would fail
    # inside LiteLLM's stream. Only that warning is ignored.
    pytest.mark.filterwarnings("ignore:Accessing the 'model_.*fields' attribute on the instance:DeprecationWarning"),
]

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded"

MESSAGES = [{"role": "user", "content": "hi"}]

CASES = [
    "openai/chat_text_usage_openai_python",  # text + usage chunk
    "openai/chat_parallel_tools_openai_python",  # two tool calls by index
    "openai/chat_tool_call_openai_python",
    "openai/chat_gpt5_after_tools_utf8_fantasy",  # non-ASCII text
    "openai/chat_max_tokens_length_openai_python",  # finish reason length
    "deepseek/chat_deepseek_reasoning_content_emoji_pyd",  # reasoning_content
]


@pytest.fixture
def anyio_backend() -> str:
    # LiteLLM is asyncio-only (see the module docstring).
    return "asyncio"


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    mod = import_litellm()  # once per module: the import takes seconds
    quiet = mod.suppress_debug_info
    mod.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on stdout
    yield mod
    mod.suppress_debug_info = quiet


@dataclass
class _Server:
    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnected: anyio.Event = field(default_factory=anyio.Event)
    disconnected_at: float | None = None


@asynccontextmanager
async def serve_sse(body: bytes, *, stall_after: int | None = None) -> AsyncIterator[_Server]:
    """An HTTP/1.1 server on 127.0.0.1 answering every POST with ``body`` as
    ``text/event-stream``. With ``stall_after=n`` it sends only the first ``n`` SSE events,
    then waits for the client to disconnect and records when it did."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = _Server(base_url=f"http://127.0.0.1:{port}/v1")

    async def handle(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            buf = b""
            while (req := parse_head(buf)) is None:
                buf += await conn.receive()
            rest = req.body
            while len(rest) < req.content_length:
                rest += await conn.receive()
            server.requests.append(json.loads(rest))
            await conn.send(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\nconnection: close\r\n\r\n"
            )
            if stall_after is None:
                await conn.send(body)
                return
            events = body.split(b"\n\n")
            await conn.send(b"\n\n".join(events[:stall_after]) + b"\n\n")
            try:
                while await conn.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
            server.disconnected_at = time.monotonic()
            server.disconnected.set()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def _body(name: str) -> bytes:
    return (RECORDED / f"{name}.sse").read_bytes()


def _expected(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"{name}.expected.json").read_text())  # type: ignore[no-any-return]


def _check_message(msg: Message, exp: dict[str, Any]) -> None:
    assert msg.text == (exp["text"] or "")
    assert msg.reasoning == exp["reasoning"]
    assert [(c.id, c.name, c.arguments) for c in msg.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in exp["tool_calls"]
    ]
    assert msg.finish_reason == exp["finish_reason"]
    assert msg.raw_finish_reason == exp["finish_reason"]
    if exp["usage"] is not None:
        assert msg.usage is not None
        assert msg.usage.input_tokens == exp["usage"]["prompt_tokens"]
        assert msg.usage.output_tokens == exp["usage"]["completion_tokens"]
        reasoning = (exp["usage"].get("completion_tokens_details") or {}).get("reasoning_tokens")
        assert msg.usage.reasoning_tokens == reasoning


@pytest.mark.anyio
@pytest.mark.parametrize("name", CASES)
async def test_acompletion_stream_assembles_like_the_recording(litellm: Any, name: str) -> None:
    async with serve_sse(_body(name)) as server:
        resp = await litellm.acompletion(
            model="openai/gpt-4o",
            api_base=server.base_url,
            api_key="sk-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        events = [ev async for ev in parse_litellm(resp, run_id="r1", agent="llm")]
    assert server.requests[0]["stream"] is True
    assert server.requests[0]["model"] == "gpt-4o"
    assert isinstance(events[0], RunStart)
    assert events[0].model == "gpt-4o"  # LiteLLM reports the requested name
    assert isinstance(events[-1], RunEnd)
    assert [e.seq for e in events] == list(range(len(events)))
    assert {(e.run_id, e.agent) for e in events} == {("r1", "llm")}
    acc = Accumulator()
    for e in events:
        acc.add(e)
    msg = acc.message()
    _check_message(msg, _expected(name))
    assert msg.status == ("length" if msg.finish_reason == "length" else "completed")
    assert msg.error is None


@pytest.mark.anyio
async def test_litellm_stream_is_lazy_and_reiterable(litellm: Any) -> None:
    name = "openai/chat_parallel_tools_openai_python"
    async with serve_sse(_body(name)) as server:
        stream = litellm_stream(
            "openai/gpt-4o",
            MESSAGES,
            api_base=server.base_url,
            api_key="sk-test",
            stream_options={"include_usage": True},
        )
        await anyio.lowlevel.checkpoint()
        assert server.requests == []  # nothing sent until iterated
        first = await stream.collect()
        second = await stream.collect()
    assert len(server.requests) == 2
    assert server.requests[0]["stream_options"] == {"include_usage": True}
    for events in (first, second):
        acc = Accumulator()
        for e in events:
            acc.add(e)
        _check_message(acc.message(), _expected(name))
    assert first[0].run_id != second[0].run_id


@pytest.mark.anyio
async def test_in_stream_provider_error_becomes_an_error_event(litellm: Any) -> None:
    # Groq sent reasoning deltas, then an ``event: error`` frame; LiteLLM raises
    # MidStreamFallbackError, whose chain holds the provider's error object.
    name = "groq/chat_groq_error_event_midstream_pyd"
    exp = _expected(name)
    async with serve_sse(_body(name)) as server:
        events = await litellm_stream("openai/gpt-4o", MESSAGES, api_base=server.base_url, api_key="sk-test").collect()
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1
    assert errors[0].error_type == exp["error"]["type"] == "invalid_request_error"
    assert errors[0].code == exp["error"]["code"]
    assert errors[0].message == exp["error"]["message"]
    end = events[-1]
    assert isinstance(end, RunEnd)
    assert end.status == "failed"
    acc = Accumulator()
    for e in events:
        acc.add(e)
    assert acc.message().reasoning == exp["reasoning"]


@pytest.mark.anyio
async def test_connection_failure_propagates(litellm: Any) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    # Not an in-stream provider error: it propagates (LiteLLM maps the openai SDK's
    # APIConnectionError to its InternalServerError).
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        await litellm_stream(
            "openai/gpt-4o", MESSAGES, api_base=f"http://127.0.0.1:{port}/v1", api_key="sk-test", num_retries=0
        ).collect()


@pytest.mark.anyio
async def test_closing_early_closes_the_http_connection(litellm: Any) -> None:
    name = "openai/chat_text_usage_openai_python"
    async with serve_sse(_body(name), stall_after=4) as server:
        texts = []
        async with litellm_stream(
            "openai/gpt-4o", MESSAGES, api_base=server.base_url, api_key="sk-test"
        ).iterate() as it:
            async for ev in it:
                if isinstance(ev, TextDelta):
                    texts.append(ev.delta)
                    if len(texts) == 2:
                        break
            assert not server.disconnected.is_set()  # the server is still streaming
        closed_at = time.monotonic()
        with anyio.fail_after(1):
            await server.disconnected.wait()
    assert texts == ["I'm", " unable"]
    assert server.disconnected_at is not None
    assert server.disconnected_at - closed_at < 1.0


@pytest.mark.anyio
async def test_cancellation_closes_the_http_connection(litellm: Any) -> None:
    name = "openai/chat_text_usage_openai_python"
    async with serve_sse(_body(name), stall_after=4) as server:
        resp = await litellm.acompletion(
            model="openai/gpt-4o", api_base=server.base_url, api_key="sk-test", messages=MESSAGES, stream=True
        )
        seen = 0
        with anyio.CancelScope() as scope:
            # The consumer is cancelled while parse_litellm waits for a chunk that never comes.
            async for ev in parse_litellm(resp):
                if isinstance(ev, TextDelta):
                    seen += 1
                    if seen == 2:
                        scope.deadline = anyio.current_time() + 0.2
        assert scope.cancelled_caught
        cancelled_at = time.monotonic()
        with anyio.fail_after(1):
            await server.disconnected.wait()
    assert seen >= 2
    assert server.disconnected_at is not None
    assert server.disconnected_at - cancelled_at < 1.0


@pytest.mark.anyio
async def test_think_tags_option_splits_inline_reasoning(litellm: Any) -> None:
    """Issue 15 item 17: a DeepSeek-R1 body (recorded) whose reasoning is inline in the text;
    ``LiteLLMModel(..., think_tags=True)`` gives it as reasoning deltas, the answer as text."""
    from streamops.adapters.models import LiteLLMModel

    from streamops import ReasoningDelta

    name = "huggingface/chat_hf_together_think_tags_pyd"
    async with serve_sse(_body(name)) as server:
        model = LiteLLMModel("openai/deepseek-r1", api_base=server.base_url, api_key="sk-test", think_tags=True)
        events = await model.stream(MESSAGES).collect()
        plain = await litellm_stream(
            "openai/deepseek-r1", MESSAGES, api_base=server.base_url, api_key="sk-test"
        ).collect()
    raw = "".join(e.delta for e in plain if isinstance(e, TextDelta))
    before, after = raw.removeprefix("<think>").split("</think>", 1)
    assert "".join(e.delta for e in events if isinstance(e, ReasoningDelta)) == before
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == after
    assert "think>" not in after
