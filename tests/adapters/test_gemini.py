"""Gemini streamGenerateContent parser: every recorded stream against its expected.json, every
byte split, streamed ``partialArgs``, real google-genai objects and client, and hand-made bad
inputs."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamops.adapters.gemini import GeminiParser, gemini_usage, parse_gemini_sdk, parse_gemini_sse

from streamops import Accumulator, Message
from streamops.errors import StreamFormatError, TruncatedStreamError
from streamops.events import (
    BaseEvent,
    ErrorEvent,
    RawEvent,
    ReasoningDelta,
    ReasoningSignature,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageEvent,
    from_json,
    to_json,
)
from streamops.sse import SSEDecoder
from tests._http import parse_head

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded"
with (RECORDED / "INDEX.tsv").open(encoding="utf-8") as _f:
    ROWS = [r for r in csv.DictReader(_f, delimiter="\t") if r["api"] == "gemini"]
NAMES = [r["file"] for r in ROWS]


def body_of(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def expected_of(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / name.replace(".sse", ".expected.json")).read_text("utf-8"))
    return data


def parse_chunks(chunks: list[bytes], **kw: Any) -> list[BaseEvent]:
    """The sans-IO pipeline: SSE decoder -> parser, for a body split into ``chunks``."""
    kw.setdefault("run_id", "r")
    parser = GeminiParser(**kw)
    dec = SSEDecoder()
    out: list[BaseEvent] = []
    for chunk in chunks:
        for sse in dec.feed(chunk):
            out.extend(parser.feed_json(sse.event, sse.data))
    for sse in dec.flush():
        out.extend(parser.feed_json(sse.event, sse.data))
    out.extend(parser.close())
    return out


def fold(events: list[Any]) -> Message:
    acc = Accumulator()
    for ev in events:
        acc.add(ev)
    return acc.message()


def key(m: Message) -> tuple[Any, ...]:
    return (
        m.text,
        m.reasoning,
        [(c.id, c.name, c.arguments) for c in m.tool_calls],
        m.raw_finish_reason,
        m.finish_reason,
        m.usage,
        m.error,
        m.status,
        m.model,
        m.response_id,
        m.reasoning_signatures,
    )


def expected_tokens(usage: dict[str, Any]) -> tuple[int, int]:
    """The documented derivation: input = promptTokenCount; output = candidates + thoughts."""
    return usage["promptTokenCount"], usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)


def check(name: str, m: Message) -> None:
    exp = expected_of(name)
    assert m.text == exp["text"]
    assert m.reasoning == exp["reasoning"]
    got = [(c.id, c.name, c.arguments) for c in m.tool_calls]
    want = [(c["id"], c["name"], c["arguments"]) for c in exp["tool_calls"]]
    assert len(got) == len(want)
    for n, ((gid, gname, gargs), (eid, ename, eargs)) in enumerate(zip(got, want, strict=True)):
        assert (gname, gargs) == (ename, eargs)
        # Gemini's own id when it sent one, else the documented synthesized f"{name}-{n}"
        assert gid == (eid if eid is not None else f"{ename}-{n}")
    assert m.raw_finish_reason == exp["finish_reason"]
    assert m.usage is not None
    assert (m.usage.input_tokens, m.usage.output_tokens) == expected_tokens(exp["usage"])
    u = exp["usage"]
    assert m.usage.total_tokens == u["totalTokenCount"] - u.get("toolUsePromptTokenCount", 0)
    assert m.error is None and exp["error"] is None
    assert m.status == "completed"


# ---------------------------------------------------------------------------- recorded
def test_every_gemini_fixture_is_covered() -> None:
    assert len(NAMES) == 8


@pytest.mark.parametrize("name", NAMES)
def test_recorded_matches_expected(name: str) -> None:
    events = parse_chunks([body_of(name)])
    check(name, fold(events))
    assert [e.seq for e in events] == list(range(len(events)))
    assert {e.run_id for e in events} == {"r"}
    assert isinstance(events[0], RunStart) and events[0].model and events[0].response_id
    assert isinstance(events[-1], RunEnd)
    assert not any(isinstance(e, (ErrorEvent, ToolCallDelta)) for e in events)
    starts = [e.call_id for e in events if isinstance(e, ToolCallStart)]
    assert starts == [e.call_id for e in events if isinstance(e, ToolCallEnd)]
    for e in events:
        if isinstance(e, ToolCallEnd):
            json.loads(e.arguments)


@pytest.mark.parametrize("name", NAMES)
def test_every_byte_split_gives_the_same_message(name: str) -> None:
    """One byte per read makes every offset a read boundary; bodies up to 6 kB are also split
    in two at every offset (the larger ones get the multi-split property test below)."""
    body = body_of(name)
    whole = key(fold(parse_chunks([body], keep_raw=False)))
    assert key(fold(parse_chunks([body[i : i + 1] for i in range(len(body))], keep_raw=False))) == whole
    if len(body) <= 6000:
        for k in range(1, len(body)):
            assert key(fold(parse_chunks([body[:k], body[k:]], keep_raw=False))) == whole, k


@given(st.data())
def test_random_multi_splits(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    body = body_of(name)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(body) - 1), max_size=30)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    check(name, fold(parse_chunks(chunks, keep_raw=False)))


def test_crlf_and_lf_bodies_agree() -> None:
    name = "gemini/gemini_reasoning_story_utf8_oi.sse"
    body = body_of(name)
    assert b"\r\n" in body
    assert key(fold(parse_chunks([body.replace(b"\r\n", b"\n")]))) == key(fold(parse_chunks([body])))


def test_thoughts_signatures_and_blocks() -> None:
    events = parse_chunks([body_of("gemini/gemini_reasoning_story_utf8_oi.sse")])
    kinds = [type(e).__name__ for e in events if isinstance(e, (TextDelta, ReasoningDelta))]
    assert kinds[0] == "ReasoningDelta" and kinds[-1] == "TextDelta"
    assert {e.block_id for e in events if isinstance(e, ReasoningDelta)} == {"reasoning-0"}
    assert {e.block_id for e in events if isinstance(e, TextDelta)} == {"text-1"}
    sigs = [e for e in events if isinstance(e, ReasoningSignature)]
    assert len(sigs) == 1 and sigs[0].block_id == "text-1"


def test_synthesized_and_given_call_ids() -> None:
    parser = GeminiParser()
    dec = SSEDecoder()
    events: list[BaseEvent] = []
    for sse in dec.feed(body_of("gemini/gemini_function_call_thought_signature_pyd.sse")):
        events.extend(parser.feed_json(sse.event, sse.data))
    events.extend(parser.close())
    assert parser.synthesized_ids == ["get_country-0"]
    start = next(e for e in events if isinstance(e, ToolCallStart))
    assert (start.call_id, start.index) == ("get_country-0", 0)
    # the function call's thoughtSignature seals that call
    assert [e.block_id for e in events if isinstance(e, ReasoningSignature)] == ["get_country-0"]
    events = parse_chunks([body_of("gemini/gemini_reasoning_multi_tools_oi.sse")])
    assert [(e.call_id, e.index) for e in events if isinstance(e, ToolCallEnd)] == [("dv8szvqe", 0), ("j80tal12", 1)]


def test_usage_derivation_and_events() -> None:
    u = gemini_usage(
        {
            "promptTokenCount": 10,
            "cachedContentTokenCount": 4,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 7,
            "toolUsePromptTokenCount": 3,
        }
    )
    assert u is not None
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cache_read_tokens) == (10, 12, 7, 4)
    assert gemini_usage({"trafficType": "ON_DEMAND"}) is None
    # a usage event only when the figures change; the run end carries the last
    events = parse_chunks([body_of("gemini/gemini_reasoning_multi_tools_oi.sse")])
    usages = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert [(x.input_tokens, x.output_tokens) for x in usages] == [(71, 109), (71, 126)]
    end = events[-1]
    assert isinstance(end, RunEnd) and end.usage == usages[-1]
    assert (end.finish_reason, end.raw_finish_reason, end.status) == ("stop", "STOP", "completed")


def test_grounding_metadata_is_kept_raw() -> None:
    events = parse_chunks([body_of("gemini/gemini_grounding_web_search_pyd.sse")])
    raws = [e for e in events if isinstance(e, RawEvent)]
    assert raws and all(r.event_type == "groundingMetadata" for r in raws)


def test_events_round_trip_through_json() -> None:
    for ev in parse_chunks([body_of("gemini/gemini_reasoning_multi_tools_oi.sse")]):
        assert from_json(to_json(ev)) == ev


# ---------------------------------------------------------------------------- partialArgs
def fc_chunk(fc: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"functionCall": fc}]}}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], "modelVersion": "gemini-x", "responseId": "resp1"}


def run_payloads(payloads: list[Any], **kw: Any) -> list[BaseEvent]:
    parser = GeminiParser(run_id="r", **kw)
    out: list[BaseEvent] = []
    for p in payloads:
        out.extend(parser.feed_payload(p))
    out.extend(parser.close())
    return out


def test_partial_args_all_value_kinds() -> None:
    def arg(path: str, more: bool = False, **value: Any) -> dict[str, Any]:
        a: dict[str, Any] = {"jsonPath": path, **value}
        if more:
            a["willContinue"] = True
        return a

    events = run_payloads(
        [
            fc_chunk({"name": "f", "willContinue": True}),
            fc_chunk({"partialArgs": [arg("$.s", True, stringValue="ab")], "willContinue": True}),
            fc_chunk({"partialArgs": [arg("$.s", True, stringValue="c")], "willContinue": True}),
            fc_chunk({"partialArgs": [arg("$.s", stringValue="")], "willContinue": True}),
            fc_chunk(
                {
                    "partialArgs": [
                        arg("$.n", numberValue=2.0),
                        arg("$.x", numberValue=1.5),
                        arg("$.b", boolValue=False),
                        arg("$.z", nullValue="NULL_VALUE"),
                        arg("$.list[1].k", stringValue="v"),
                        arg("$['odd key'].deep[0][0]", numberValue=3),
                        arg("$.s2", stringValue="new"),
                    ],
                    "willContinue": True,
                }
            ),
            fc_chunk({}, finish="STOP"),
        ]
    )
    end = next(e for e in events if isinstance(e, ToolCallEnd))
    assert json.loads(end.arguments) == {
        "s": "abc",
        "n": 2,
        "x": 1.5,
        "b": False,
        "z": None,
        "list": [None, {"k": "v"}],
        "odd key": {"deep": [[3]]},
        "s2": "new",
    }
    assert end.arguments.startswith('{"s": "abc", "n": 2, ')
    assert (end.call_id, end.name) == ("f-0", "f")
    assert [type(e).__name__ for e in events].count("ToolCallStart") == 1


def test_streamed_call_left_open_is_ended_at_close_and_next_call_ends_previous() -> None:
    events = run_payloads(
        [
            fc_chunk({"name": "a", "willContinue": True}),
            fc_chunk({"partialArgs": [{"jsonPath": "$.q", "stringValue": "x"}], "willContinue": True}),
            fc_chunk({"name": "b", "args": {"k": 1}, "id": "idb"}, finish="STOP"),
        ]
    )
    ends = [(e.call_id, e.arguments) for e in events if isinstance(e, ToolCallEnd)]
    assert ends == [("a-0", '{"q": "x"}'), ("idb", '{"k": 1}')]
    events = run_payloads(
        [
            fc_chunk({"name": "a", "willContinue": True}),
            fc_chunk({"partialArgs": [{"jsonPath": "$.q", "stringValue": "x", "willContinue": True}]}),
        ],
        on_malformed="event",
    )
    assert [type(e).__name__ for e in events][-3:] == ["ToolCallEnd", "ErrorEvent", "RunEnd"]


@pytest.mark.parametrize(
    "fc",
    [
        {"partialArgs": [{"jsonPath": "$.q", "stringValue": "x"}]},  # no call open
        {"name": "f", "willContinue": True, "partialArgs": [{"jsonPath": "q", "stringValue": "x"}]},
        {"name": "f", "willContinue": True, "partialArgs": [{"jsonPath": "$.q"}]},
        {"name": "f", "willContinue": True, "partialArgs": [{"jsonPath": "$[0]", "stringValue": "x"}]},
    ],
    ids=["orphan", "bad-path", "no-value", "index-into-object"],
)
def test_bad_partial_args(fc: dict[str, Any]) -> None:
    with pytest.raises(StreamFormatError):
        run_payloads([fc_chunk(fc)])
    stop = {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]}
    events = run_payloads([fc_chunk(fc), stop], on_malformed="event")
    assert [e.error_type for e in events if isinstance(e, ErrorEvent)] == ["malformed_stream"]
    assert fold(events).status == "completed"


# ---------------------------------------------------------------------------- bad input
START = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"}}],'
    b' "modelVersion": "gemini-x", "responseId": "r1"}\r\n\r\n'
)
REST = (
    b'data: {"candidates": [{"content": {"parts": [{"text": " world"}], "role": "model"},'
    b' "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,'
    b' "totalTokenCount": 5}, "modelVersion": "gemini-x", "responseId": "r1"}\r\n\r\n'
)


def test_hand_made_stream_is_fine() -> None:
    m = fold(parse_chunks([START + REST]))
    assert (m.text, m.raw_finish_reason, m.status, m.model, m.response_id) == (
        "Hello world",
        "STOP",
        "completed",
        "gemini-x",
        "r1",
    )


def test_invalid_json() -> None:
    bad = b'data: {"candidates": [oops\r\n\r\n'
    with pytest.raises(StreamFormatError) as info:
        parse_chunks([START + bad + REST])
    assert not isinstance(info.value, TruncatedStreamError)
    events = parse_chunks([START + bad + REST], on_malformed="event")
    m = fold(events)
    assert (m.text, m.raw_finish_reason, m.status) == ("Hello world", "STOP", "completed")
    assert [e.error_type for e in events if isinstance(e, ErrorEvent)] == ["malformed_stream"]


def test_truncated_body() -> None:
    with pytest.raises(TruncatedStreamError):
        parse_chunks([START])
    events = parse_chunks([START], on_malformed="event")
    m = fold(events)
    assert m.text == "Hello"
    assert m.error is not None and m.error.type == "truncated_stream" and m.status == "failed"


@pytest.mark.parametrize(
    "junk",
    [bytes(range(256)) * 2 + b"\n", b"\x00\xff\xfe\x80garbage\n\n"],
    ids=["all-bytes", "junk-line"],
)
def test_binary_junk(junk: bytes) -> None:
    assert key(fold(parse_chunks([START + junk + REST]))) == key(fold(parse_chunks([START + REST])))
    with pytest.raises(TruncatedStreamError):
        parse_chunks([junk])
    with pytest.raises(StreamFormatError):
        parse_chunks([START + b"data: " + junk.replace(b"\n", b"").replace(b"\r", b"") + b"\n\n" + REST])


@pytest.mark.parametrize(
    "data",
    [b"[1, 2]", b'"text"', b'{"candidates": [{"content": {"parts": "nope"}}]}', b'{"candidates": [5]}'],
    ids=["array", "string", "parts-not-list", "candidate-not-object"],
)
def test_bad_shapes(data: bytes) -> None:
    with pytest.raises(StreamFormatError):
        parse_chunks([START + b"data: " + data + b"\n\n" + REST])
    m = fold(parse_chunks([START + b"data: " + data + b"\n\n" + REST], on_malformed="event"))
    assert m.text == "Hello world"


@pytest.mark.parametrize("mode", ["raise", "event"])
def test_error_payload_mid_stream(mode: str) -> None:
    err = b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
    events = parse_chunks([START + err + REST], on_malformed=mode)
    m = fold(events)
    assert m.text == "Hello"
    assert m.error is not None and (m.error.type, m.error.message) == ("UNAVAILABLE", "The model is overloaded.")
    assert m.status == "failed" and m.finish_reason == "error"
    err_ev = next(e for e in events if isinstance(e, ErrorEvent))
    assert err_ev.code == "503"
    # an `event: error` frame carrying the same payload is handled alike
    m2 = fold(parse_chunks([START + b"event: error\n" + err + REST]))
    assert key(m2) == key(m)


def test_prompt_blocked() -> None:
    payload = {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-x", "responseId": "r"}
    end = run_payloads([payload])[-1]
    assert isinstance(end, RunEnd)
    assert (end.raw_finish_reason, end.finish_reason, end.status) == ("SAFETY", "content_filter", "completed")


# ---------------------------------------------------------------------------- async + SDK
@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES[::3])
async def test_async_sse_driver(name: str) -> None:
    body = body_of(name)

    async def chunks() -> Any:
        for i in range(0, len(body), 61):
            yield body[i : i + 61]

    check(name, fold([e async for e in parse_gemini_sse(chunks())]))
    check(name, fold([e async for e in parse_gemini_sse([body])]))


@pytest.mark.anyio
async def test_async_sse_driver_raises_after_earlier_events() -> None:
    got: list[Any] = []
    agen = parse_gemini_sse([START])
    with pytest.raises(TruncatedStreamError):
        while True:
            got.append(await agen.__anext__())
    assert fold(got).text == "Hello"


# ---------------------------------------------------------------------------- google-genai
def _drop(data: Any, loc: tuple[Any, ...]) -> None:
    for step in loc[:-1]:
        data = data[step]
    del data[loc[-1]]


def sdk_responses(name: str) -> list[Any]:
    """The recorded stream as real ``google.genai.types.GenerateContentResponse`` objects, one
    per ``data:`` line. The SDK's models forbid unknown fields; its own response parsing drops
    them first, so fields this SDK version does not know (``usageMetadata.serviceTier``) are
    dropped here too."""
    from google.genai import types
    from pydantic import ValidationError

    out: list[Any] = []
    dec = SSEDecoder()
    for sse in dec.feed(body_of(name)) + dec.flush():
        data = json.loads(sse.data)
        while True:
            try:
                out.append(types.GenerateContentResponse.model_validate(data))
                break
            except ValidationError as exc:
                errors = exc.errors()
                if any(e["type"] != "extra_forbidden" for e in errors):
                    raise
                for e in errors:
                    _drop(data, e["loc"])
    return out


def fields(events: list[BaseEvent]) -> list[dict[str, Any]]:
    """Each event's fields but ``ts`` and ``raw`` (an SDK dump drops fields the SDK does not know)."""
    return [{f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name not in ("ts", "raw")} for e in events]


async def sse_events(name: str) -> list[dict[str, Any]]:
    """:func:`fields` of the events of the raw recorded bytes."""
    return fields([e async for e in parse_gemini_sse(body_of(name), run_id="r")])


@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES)
async def test_sdk_objects_give_the_same_events(name: str) -> None:
    """Real SDK objects, async (``client.aio.models.generate_content_stream``) and sync
    (``client.models.generate_content_stream``), give exactly the events of the raw bytes."""
    objs = sdk_responses(name)
    wire = await sse_events(name)

    async def agen() -> Any:
        for obj in objs:
            yield obj

    def gen() -> Any:
        yield from objs

    got = [e async for e in parse_gemini_sdk(agen(), run_id="r")]
    assert fields(got) == wire
    check(name, fold(got))
    assert fields([e async for e in parse_gemini_sdk(gen(), run_id="r")]) == wire
    # their REST camelCase dumps, as plain dicts; raw= is the dump
    dumps = [o.model_dump(mode="json", by_alias=True, exclude_none=True) for o in objs]
    assert fields([e async for e in parse_gemini_sdk(dumps, run_id="r")]) == wire
    assert isinstance(got[0], RunStart) and got[0].raw == dumps[0]


@pytest.mark.anyio
async def test_sdk_stream_left_early_is_closed() -> None:
    objs = sdk_responses(NAMES[0])

    async def agen() -> Any:
        for obj in objs:
            yield obj

    stream = agen()
    events = parse_gemini_sdk(stream)
    async for _ev in events:
        break
    await events.aclose()
    assert stream.ag_frame is None  # the SDK's async generator was closed


def test_url_safe_signature_of_an_sdk_dump_is_made_standard() -> None:
    """google-genai holds ``thoughtSignature`` as bytes and dumps them URL-safe base64."""
    part = {"text": "hi", "thoughtSignature": "ab-_cd=="}
    payload = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}]}
    sigs = [e.signature for e in run_payloads([payload]) if isinstance(e, ReasoningSignature)]
    assert sigs == ["ab+/cd=="]


class _Server:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.targets: list[str] = []


@asynccontextmanager
async def serve_body(body: bytes) -> AsyncIterator[_Server]:
    """An HTTP/1.1 server on 127.0.0.1 answering every request with ``body`` as
    ``text/event-stream``; it records each request target."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = _Server(f"http://127.0.0.1:{port}")

    async def handle(conn: anyio.abc.SocketStream) -> None:
        async with conn:
            buf = b""
            while (req := parse_head(buf)) is None:
                buf += await conn.receive()
            server.targets.append(req.target)
            rest = req.body
            while len(rest) < req.content_length:
                rest += await conn.receive()
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n" + body)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # google-genai's async client uses aiohttp
# google-genai subclasses aiohttp.ClientSession, which aiohttp warns about; not ours to fix
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
@pytest.mark.parametrize(
    ("name", "vertex"),
    [(n, False) for n in NAMES] + [(n, True) for n in NAMES if "vertex" in n],
)
async def test_real_genai_client_over_http(name: str, vertex: bool) -> None:
    """A real ``genai.Client`` (Gemini API, or Vertex AI express mode) streaming a recorded body
    from 127.0.0.1: the SDK's own HTTP, SSE and response parsing, then the adapter."""
    from google import genai

    wire = await sse_events(name)
    async with serve_body(body_of(name)) as server:
        client = genai.Client(api_key="x", vertexai=vertex, http_options={"base_url": server.base_url})
        async with client.aio as aclient:
            stream = await aclient.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
            got = fields([e async for e in parse_gemini_sdk(stream, run_id="r")])
        assert got == wire
        # the sync client, read by the adapter in worker threads
        with client:
            stream2 = client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
            assert fields([e async for e in parse_gemini_sdk(stream2, run_id="r")]) == wire
    assert len(server.targets) == 2
    assert all(t.endswith(":streamGenerateContent?alt=sse") for t in server.targets)
