"""The SSE sink: encoding (injection-proof ids and data), decoding back, and sse_response served
by a real uvicorn server to a real httpx client: headers, heartbeats, disconnects, resume."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

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
from streamops.agent import Agent
from streamops.errors import EventValidationError
from streamops.events import EVENT_KINDS, BaseEvent, ErrorEvent, RunEnd, TextDelta, from_json
from streamops.serve.runlog import RunRegistry
from streamops.sinks.resume import ResumeUnavailableError, event_id, parse_event_id
from streamops.sinks.sse import SSEEncoder, sse_events, sse_response
from streamops.sse import SSEDecoder
from tests._models import SlowModel
from tests.core.test_events import all_events, assert_same_event
from tests.serve.test_runlog import forever, run_events

from ._uvicorn import eventually, serve

HOSTILE = [
    "\r\n\r\ndata: evil",
    "\n\ndata: evil\n\n",
    "\r",
    "a\rb",
    "\0",
    "id\0x",
    "\r\nid: 666\r\n",
    "\u2028\u2029\x85",
    " leading space",
    "trailing space ",
    ":",
    "%41%",
    "日本語",
    "",
]


def decode_all(body: bytes, *, chunk: int | None = None) -> tuple[list[Any], SSEDecoder]:
    dec = SSEDecoder()
    out: list[Any] = []
    if chunk is None:
        out += dec.feed(body)
    else:
        for i in range(0, len(body), chunk):
            out += dec.feed(body[i : i + chunk])
    out += dec.flush()
    return out, dec


# ----------------------------------------------------------------------------------- encoding


def test_encode_writes_id_event_and_data_lines() -> None:
    ev = TextDelta(run_id="r1", agent="a", seq=7, ts=1.5, delta="hi", block_id="b")
    body = SSEEncoder().encode(ev)
    assert body == (
        b"id: r1:7\nevent: text-delta\n"
        b'data: {"run_id":"r1","agent":"a","parent_run_id":"","seq":7,"ts":1.5,"raw":null,'
        b'"kind":"text-delta","delta":"hi","block_id":"b"}'
        b"\n\n"
    )


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_the_event_field_is_the_kind(kind: str) -> None:
    fields: dict[str, Any] = {
        "delta": "",
        "signature": "",
        "data": "",
        "call_id": "c",
        "name": "n",
        "arguments": "",
        "message": "m",
        "error_type": "e",
        "usage": so.Usage(),
        "json_path": "$",
        "from_agent": "a",
        "to_agent": "a/b",
    }
    cls = EVENT_KINDS[kind]
    ev = cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})
    [sse], _ = decode_all(SSEEncoder().encode(ev))
    assert sse.event == kind


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_run_ids_agents_and_deltas_cannot_inject(hostile: str) -> None:
    ev = TextDelta(run_id=hostile, agent=hostile, seq=3, delta=hostile, block_id=hostile)
    body = SSEEncoder().encode(ev)
    head, _, data = body.partition(b"\ndata: ")
    # Exactly four lines, whatever the text held: id, event, data, blank.
    assert not any(c in head for c in (b"\r", b"\0")) and head.count(b"\n") == 1
    assert data.endswith(b"\n\n") and not any(c in data[:-2] for c in (b"\r", b"\n", b"\0"))
    for chunk in (None, 1, 3):
        events, dec = decode_all(body + b": ping\n\n", chunk=chunk)
        assert len(events) == 1
        [sse] = events
        assert sse.event == "text-delta"
        assert parse_event_id(sse.id) == (hostile, 3)
        assert dec.last_event_id == event_id(ev)
        assert_same_event(from_json(sse.data), ev)


def test_heartbeat_and_preamble() -> None:
    enc = SSEEncoder(retry_ms=2500)
    assert enc.heartbeat().startswith(b":") and enc.heartbeat().endswith(b"\n\n")
    assert enc.preamble() == b"retry: 2500\n\n"
    assert SSEEncoder().preamble() == b""
    events, dec = decode_all(enc.preamble() + enc.heartbeat() + enc.heartbeat())
    assert events == [] and dec.retry == 2500 and dec.last_comment is not None
    with pytest.raises(ValueError, match="retry_ms"):
        SSEEncoder(retry_ms=-1)


def test_only_streamops_events_are_encoded() -> None:
    with pytest.raises(EventValidationError, match="not a streamops event"):
        SSEEncoder().encode(so.BaseEvent())

    class Mine(TextDelta):
        pass

    with pytest.raises(EventValidationError):
        SSEEncoder().encode(Mine(delta="x"))


# ----------------------------------------------------------------------------------- decoding


@settings(max_examples=60)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(events=st.lists(all_events, max_size=8), seed=st.integers(0, 2**32), retry=st.none() | st.integers(0, 10**6))
def test_round_trip_through_sse(backend: str, events: list[BaseEvent], seed: int, retry: int | None) -> None:
    """Property: any events, encoded (with heartbeats between) and split at random byte
    offsets, decode back to the same events."""
    enc = SSEEncoder(retry_ms=retry)
    rng = random.Random(seed)
    body = enc.preamble() + b"".join(enc.encode(e) + (enc.heartbeat() if rng.random() < 0.3 else b"") for e in events)
    cuts = sorted(rng.sample(range(len(body) + 1), min(5, len(body) + 1)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    got = anyio.run(sse_events(chunks).collect, backend=backend)
    assert len(got) == len(events)
    for a, b in zip(got, events, strict=True):
        assert_same_event(a, b)


@pytest.mark.anyio
async def test_sse_events_reads_async_chunks_and_fails_after_the_good_events() -> None:
    enc = SSEEncoder()
    good = run_events(2)

    async def chunks() -> AsyncGenerator[bytes, None]:
        for e in good:
            yield enc.encode(e)
        yield b"event: text-delta\ndata: {not json}\n\n"
        yield enc.encode(good[0])

    got: list[BaseEvent] = []
    with pytest.raises(EventValidationError):
        async for e in sse_events(chunks()):
            got.append(e)
    assert got == good
    with pytest.raises(TypeError):
        await sse_events(b"data: x\n\n").collect()  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_decoded_remote_stream_merges_like_a_local_one() -> None:
    from streamops.operators.combine import merge

    enc = SSEEncoder()
    remote = sse_events([enc.encode(e) for e in run_events(3, run_id="remote")])
    local = so.Stream.from_iterable(run_events(3, run_id="local"))
    got = await merge(remote, local).collect()
    assert sorted((e.run_id, e.seq) for e in got) == sorted(
        [("remote", i) for i in range(5)] + [("local", i) for i in range(5)]
    )


# ----------------------------------------------------------------------------------- responses
# uvicorn runs on asyncio only, so every test that serves over a real socket runs on asyncio.

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class Source:
    """A paced source of one run's events that records when its ``finally`` ran."""

    def __init__(self, n: int, pause: float = 0.01, run_id: str = "r1") -> None:
        self.events = run_events(n, run_id=run_id)
        self.pause = pause
        self.yielded = 0
        self.closed_at: float | None = None

    async def gen(self) -> AsyncGenerator[BaseEvent, None]:
        try:
            for e in self.events:
                await anyio.sleep(self.pause)
                self.yielded += 1
                yield e
        finally:
            self.closed_at = time.monotonic()

    def stream(self) -> so.Stream[BaseEvent]:
        return so.Stream.from_async_iterable(self.gen())


def app_for(endpoint: Callable[[Request], Any], registry: RunRegistry | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if registry is None:
            yield
        else:
            async with registry:
                yield

    return Starlette(routes=[Route("/events", endpoint), Route("/runs/{run_id}/events", endpoint)], lifespan=lifespan)


async def read_events(response: httpx.Response, limit: int | None = None) -> list[Any]:
    """The SSE events of a streamed httpx response, stopping after ``limit`` of them."""
    dec = SSEDecoder()
    out: list[Any] = []
    async for chunk in response.aiter_bytes():
        out += dec.feed(chunk)
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out + dec.flush()


@asyncio_only
@pytest.mark.anyio
async def test_sse_response_headers_preamble_and_events() -> None:
    src = Source(3, pause=0)
    app = app_for(lambda request: sse_response(src.stream(), retry_ms=1234))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as r:
                assert r.status_code == 200
                assert r.headers["content-type"] == "text/event-stream"
                assert r.headers["cache-control"] == "no-cache"
                assert r.headers["x-accel-buffering"] == "no"
                assert r.headers["connection"] == "keep-alive"
                body = await r.aread()
    assert body.startswith(b"retry: 1234\n\n")
    events, dec = decode_all(body)
    assert [from_json(e.data) for e in events] == src.events
    assert [e.id for e in events] == [event_id(e) for e in src.events]
    assert dec.retry == 1234
    assert src.closed_at is not None


@asyncio_only
@pytest.mark.anyio
async def test_heartbeats_fill_the_silences() -> None:
    src = Source(2, pause=0.25)
    app = app_for(lambda request: sse_response(src.stream(), heartbeat=0.05, retry_ms=None))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as r:
                body = await r.aread()
    assert body.count(b": ping\n\n") >= 6  # about 4 per 0.25 s of silence, 4 silences
    events, _ = decode_all(body)
    assert [from_json(e.data) for e in events] == src.events


@asyncio_only
@pytest.mark.anyio
async def test_a_failing_stream_ends_with_an_error_event() -> None:
    async def boom() -> AsyncGenerator[BaseEvent, None]:
        yield TextDelta(run_id="r", seq=0, delta="a")
        raise RuntimeError("upstream 529")

    app = app_for(lambda request: sse_response(so.Stream.from_async_iterable(boom())))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            got = await sse_events(_body(client, "/events")).collect()
    assert isinstance(got[-1], ErrorEvent)
    assert (got[-1].error_type, got[-1].message, got[-1].seq) == ("RuntimeError", "upstream 529", 1)


async def _body(client: httpx.AsyncClient, path: str, **kw: Any) -> AsyncGenerator[bytes, None]:
    async with client.stream("GET", path, **kw) as r:
        async for chunk in r.aiter_bytes():
            yield chunk


@asyncio_only
@pytest.mark.anyio
async def test_client_disconnect_cancels_the_upstream_within_a_second() -> None:
    closed: list[str] = []
    app = app_for(lambda request: sse_response(so.Stream.from_async_iterable(forever(closed))))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as r:
                got = await read_events(r, limit=3)
            gone = time.monotonic()  # the connection is closed here, mid-stream
        assert len(got) == 3
        await eventually(lambda: closed, within=1)
        assert time.monotonic() - gone < 1
    assert closed == ["closed"]


@asyncio_only
@pytest.mark.anyio
async def test_continue_keeps_iterating_a_plain_stream_after_the_client_left() -> None:
    src = Source(30, pause=0.01)
    app = app_for(lambda request: sse_response(src.stream(), on_disconnect="continue"))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as r:
                await read_events(r, limit=2)
            await eventually(lambda: src.closed_at is not None, within=4)
    assert src.yielded == len(src.events)


@asyncio_only
@pytest.mark.anyio
async def test_resume_after_a_disconnect_sees_every_event_exactly_once() -> None:
    """The must-show: a client disconnects mid-stream and reconnects with ``Last-Event-ID``;
    the union of what it saw is every event of the run, exactly once, in order."""
    registry = RunRegistry()
    src = Source(40, pause=0.01)

    async def endpoint(request: Request) -> Response:
        if request.path_params.get("run_id") is None:
            handle = registry.start(src.stream(), run_id="job", on_disconnect="continue")
        else:
            handle = registry.get(request.path_params["run_id"])
        return sse_response(handle, last_event_id=request.headers.get("last-event-id"))

    app = app_for(endpoint, registry)
    seen: list[Any] = []
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(10):
            async with client.stream("GET", "/events") as r:
                seen += await read_events(r, limit=7)
            await anyio.sleep(0.1)  # the run goes on meanwhile
            handle = registry.get("job")
            assert not handle.done and handle.followers == 0 and len(handle.log) > 7
            last = seen[-1].id
            async with client.stream("GET", "/runs/job/events", headers={"Last-Event-ID": last}) as r:
                assert r.status_code == 200
                seen += await read_events(r)
    got = [from_json(e.data) for e in seen]
    assert got == src.events
    assert [e.id for e in seen] == [event_id(e) for e in src.events]


@asyncio_only
@pytest.mark.anyio
async def test_disconnect_with_cancel_cancels_the_agent_run_in_the_registry() -> None:
    registry = RunRegistry()
    model = SlowModel([f"w{i} " for i in range(2000)], pause=0.01)
    holder: dict[str, Any] = {}

    async def endpoint(request: Request) -> Response:
        handle = holder["h"] = registry.start(Agent(model).stream("x", run_id="agent-run"))
        return sse_response(handle)

    async with serve(app_for(endpoint, registry)) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as r:
                await read_events(r, limit=5)
            await holder["h"].wait()
        end = holder["h"].log.after(None)[-1]
        assert isinstance(end, RunEnd) and end.status == "cancelled"
        assert model.closed == 1


@asyncio_only
@pytest.mark.anyio
async def test_cancel_waits_for_the_last_follower() -> None:
    """With two clients on one run, the first leaving does not cancel it for the second."""
    registry = RunRegistry()
    src = Source(30, pause=0.01)

    async def endpoint(request: Request) -> Response:
        if "job" not in registry:
            registry.start(src.stream(), run_id="job")
        return sse_response(registry.get("job"), last_event_id="")

    async with serve(app_for(endpoint, registry)) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            async with client.stream("GET", "/events") as second:
                async with client.stream("GET", "/events") as first:
                    await read_events(first, limit=2)
                await anyio.sleep(0.05)
                assert not registry.get("job").done
                rest = await read_events(second)
    assert [from_json(e.data) for e in rest] == src.events


@asyncio_only
@pytest.mark.anyio
async def test_an_unavailable_last_event_id_header_gets_409() -> None:
    registry = RunRegistry(capacity=3)
    src = Source(10, pause=0)

    async def endpoint(request: Request) -> Response:
        if "job" not in registry:
            registry.start(src.stream(), run_id="job")
        return sse_response(registry.get("job"))  # Last-Event-ID read from the request

    async with serve(app_for(endpoint, registry)) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            await client.get("/events")
            await registry.get("job").wait()
            for bad in ["r1:1", "someone-else:3", "junk"]:
                r = await client.get("/events", headers={"Last-Event-ID": bad})
                assert r.status_code == 409, bad
            r = await client.get("/events", headers={"Last-Event-ID": "r1:9"})
            assert r.status_code == 200
            assert [from_json(e.data) for e in decode_all(r.content)[0]] == src.events[10:]


@pytest.mark.anyio
async def test_sse_response_argument_errors() -> None:
    stream = so.Stream.from_iterable(run_events(1))
    with pytest.raises(ResumeUnavailableError, match="plain stream"):
        sse_response(stream, last_event_id="r1:0")
    with pytest.raises(ValueError, match="heartbeat"):
        sse_response(stream, heartbeat=0)
    with pytest.raises(ValueError, match="on_disconnect"):
        sse_response(stream, on_disconnect="drop")  # type: ignore[arg-type]
    async with RunRegistry() as registry:
        handle = registry.start(stream, run_id="x")
        await handle.wait()
        with pytest.raises(ResumeUnavailableError, match="another run"):
            sse_response(handle, last_event_id="other:0")
        assert sse_response(handle, last_event_id="r1:0").status_code == 200
