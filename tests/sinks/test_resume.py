"""End to end over a real server: a smoothed, token-counted run repeats seqs (word chunks of
one delta, estimated usage before the next event); a client that disconnects in the middle of
one delta's chunks and resumes with ``Last-Event-ID`` gets every event exactly once."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

import streamops as so
from streamops.events import BaseEvent, RunEnd, RunStart, TextDelta, from_json
from streamops.operators import count_tokens, smooth
from streamops.serve.runlog import RunRegistry
from streamops.sinks.sse import SSEEncoder, sse_response
from streamops.sse import SSEDecoder

from ._uvicorn import serve
from .test_sse import app_for, asyncio_only, decode_all, read_events

WORDS = [f"alpha{i} beta{i} gamma{i} delta{i}" for i in range(12)]


def source_events() -> list[BaseEvent]:
    out: list[BaseEvent] = [RunStart(run_id="r1", agent="bot", seq=0, ts=1000.0)]
    out += [
        TextDelta(run_id="r1", agent="bot", seq=i + 1, ts=1001.0 + i, delta=(" " if i else "") + w, block_id="t")
        for i, w in enumerate(WORDS)
    ]
    out.append(RunEnd(run_id="r1", agent="bot", seq=len(WORDS) + 1, ts=2000.0))
    return out


def pipeline(events: so.Stream[BaseEvent]) -> so.Stream[BaseEvent]:
    return events | smooth() | count_tokens(tokenizer=lambda t: len(t.split()), emit_every=3)


async def paced(pause: float) -> AsyncGenerator[BaseEvent, None]:
    for e in source_events():
        await anyio.sleep(pause)
        yield e


def key(e: BaseEvent) -> tuple[Any, ...]:
    """An event without its ``ts`` (an estimated usage event is stamped when it is made)."""
    return (e.kind, e.run_id, e.seq, getattr(e, "delta", None), getattr(e, "usage", None))  # type: ignore[attr-defined]


@asyncio_only
@pytest.mark.anyio
async def test_resume_in_the_middle_of_one_deltas_chunks_sees_every_event_once() -> None:
    expected = await pipeline(so.Stream.from_iterable(source_events())).collect()
    enc = SSEEncoder()  # one encoder for the body: it numbers the events as the run's log does
    expected_ids = [sse.id for e in expected for sse in SSEDecoder().feed(enc.encode(e))]
    assert len(set(expected_ids)) == len(expected_ids)
    # Disconnect right after a chunk that is followed by another chunk of the same delta.
    cut = next(
        k
        for k in range(len(expected) - 1)
        if "." in expected_ids[k]
        and isinstance(expected[k], TextDelta)
        and isinstance(expected[k + 1], TextDelta)
        and expected[k + 1].seq == expected[k].seq
    )

    registry = RunRegistry()

    async def endpoint(request: Request) -> Response:
        if request.path_params.get("run_id") is None:
            stream = pipeline(so.Stream.from_async_iterable(paced(0.01)))
            handle = registry.start(stream, run_id="job", on_disconnect="continue")
        else:
            handle = registry.get(request.path_params["run_id"])
        return sse_response(handle)  # Last-Event-ID read from the request

    seen: list[Any] = []
    async with serve(app_for(endpoint, registry)) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(10):
            async with client.stream("GET", "/events") as r:
                seen += await read_events(r, limit=cut + 1)
            last = seen[-1].id
            assert "." in last and last == expected_ids[cut]
            async with client.stream("GET", "/runs/job/events", headers={"Last-Event-ID": last}) as r:
                assert r.status_code == 200
                seen += await read_events(r)
            handle = registry.get("job")
            await handle.wait()
            # Any id of the run resumes exactly after it, repeated seqs included.
            for k in (cut - 1, cut + 1, len(expected) - 2):
                r = await client.get("/runs/job/events", headers={"Last-Event-ID": expected_ids[k]})
                assert r.status_code == 200
                assert [e.id for e in decode_all(r.content)[0]] == expected_ids[k + 1 :]

    got = [from_json(e.data) for e in seen]
    logged = handle.log.entries()
    assert got == [e for _, e in logged]  # every event once, in order, as logged
    assert [e.id for e in seen] == [i for i, _ in logged] == expected_ids
    assert [key(e) for e in got] == [key(e) for e in expected]


@asyncio_only
@pytest.mark.anyio
async def test_a_plain_smoothed_stream_body_has_unique_ids() -> None:
    app = app_for(lambda request: sse_response(pipeline(so.Stream.from_iterable(source_events()))))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        with anyio.fail_after(5):
            body = (await client.get("/events")).content
    ids = [e.id for e in decode_all(body)[0]]
    assert len(ids) > len(source_events()) and len(set(ids)) == len(ids)
