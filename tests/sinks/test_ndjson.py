"""The NDJSON sink: one JSON line per event, decoding lines split across chunks, the response."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import streamops as so
from streamops.errors import EventValidationError
from streamops.events import BaseEvent, ErrorEvent, TextDelta, from_json
from streamops.sinks.ndjson import ndjson_encode, ndjson_events, ndjson_response
from tests.core.test_events import all_events, assert_same_event
from tests.serve.test_runlog import forever, run_events

from ._uvicorn import eventually, serve
from .test_sse import HOSTILE


@pytest.mark.parametrize("text", HOSTILE)
def test_one_event_is_one_line(text: str) -> None:
    ev = TextDelta(run_id=text, agent=text, seq=1, delta=text)
    line = ndjson_encode(ev)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert_same_event(from_json(line), ev)


@settings(max_examples=60)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(events=st.lists(all_events, max_size=8), seed=st.integers(0, 2**32))
def test_round_trip_split_anywhere(backend: str, events: list[BaseEvent], seed: int) -> None:
    body = b"".join(ndjson_encode(e) for e in events)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(body) + 1), min(6, len(body) + 1)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    got = anyio.run(ndjson_events(chunks).collect, backend=backend)
    assert len(got) == len(events)
    for a, b in zip(got, events, strict=True):
        assert_same_event(a, b)


@pytest.mark.anyio
async def test_every_split_point_of_a_body_decodes_the_same() -> None:
    events = run_events(3)
    body = b"".join(ndjson_encode(e) for e in events)
    for i in range(len(body) + 1):
        assert await ndjson_events([body[:i], body[i:]]).collect() == events


@pytest.mark.anyio
async def test_crlf_blank_lines_str_chunks_and_a_last_line_without_newline() -> None:
    a, b, c = (ndjson_encode(e).decode().rstrip("\n") for e in run_events(1))
    chunks = [f"{a}\r\n\r\n  \n{b}", "\n", c]
    got = await ndjson_events(chunks).collect()
    assert got == run_events(1)


@pytest.mark.anyio
async def test_a_bad_line_fails_after_everything_before_it() -> None:
    good = run_events(2)

    async def chunks() -> AsyncGenerator[bytes, None]:
        body = b"".join(ndjson_encode(e) for e in good)
        yield body[:-3]  # the last good line split across two chunks
        yield body[-3:]
        yield b'{"kind": "nope"}\n'
        yield ndjson_encode(good[0])

    got: list[BaseEvent] = []
    with pytest.raises(EventValidationError, match="kind"):
        async for e in ndjson_events(chunks()):
            got.append(e)
    assert got == good
    with pytest.raises(EventValidationError):
        await ndjson_events([b"not json\n"]).collect()
    with pytest.raises(TypeError, match=r"\[body\]"):
        await ndjson_events(b"{}\n").collect()  # type: ignore[arg-type]


# uvicorn runs on asyncio only, so the tests that serve over a real socket run on asyncio.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@asyncio_only
@pytest.mark.anyio
async def test_ndjson_response_over_a_real_server() -> None:
    events = run_events(4)

    async def boom() -> AsyncGenerator[BaseEvent, None]:
        for e in events:
            yield e
        raise ValueError("bad upstream")

    async def endpoint(request: Request) -> Response:
        return ndjson_response(so.Stream.from_async_iterable(boom()))

    app = Starlette(routes=[Route("/events", endpoint)])
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as r:
                assert r.headers["content-type"] == "application/x-ndjson"
                got = await ndjson_events(r.aiter_bytes()).collect()
    assert got[:-1] == events
    assert isinstance(got[-1], ErrorEvent) and got[-1].error_type == "ValueError"


@asyncio_only
@pytest.mark.anyio
async def test_ndjson_client_disconnect_cancels_the_upstream_within_a_second() -> None:
    closed: list[str] = []

    async def endpoint(request: Request) -> Response:
        return ndjson_response(so.Stream.from_async_iterable(forever(closed)))

    app = Starlette(routes=[Route("/events", endpoint)])
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as r:
                n = 0
                async for _ in r.aiter_lines():
                    n += 1
                    if n == 3:
                        break
            gone = time.monotonic()
        await eventually(lambda: closed, within=1)
        assert time.monotonic() - gone < 1
    with pytest.raises(ValueError, match="on_disconnect"):
        ndjson_response(so.Stream.from_iterable([]), on_disconnect="nope")  # type: ignore[arg-type]
