"""The models an agent can use: ``resolve_model``, ``ReplayModel``,
``LiteLLMModel`` (offline, against a local HTTP server serving a recorded body) and the local
SmolLM2 model with an output schema (for real)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import streamops.adapters.models as models_mod
from streamops.adapters.litellm import import_litellm
from streamops.adapters.local import LocalModel, OutputSchemaError
from streamops.adapters.models import LiteLLMModel, resolve_model, shared_local_model
from streamops.adapters.replay import ReplayExhaustedError, ReplayModel

from streamops import Accumulator, Message, RunEnd, RunStart, TextDelta, ToolCallStart
from streamops.errors import StreamopsError
from streamops.models import Model, ToolSpec
from streamops.testing import virtual_backends
from tests.adapters.test_litellm import serve_sse
from tests.conftest import RECORDED

STEP1 = RECORDED / "openai" / "chat_parallel_tools_openai_python.sse"
"""Two parallel tool calls (GetWeatherArgs, get_stock_price), finish reason tool_calls."""
STEP2 = RECORDED / "openai" / "chat_after_tool_text_llm.sse"
"""A text answer, finish reason stop."""
ANTHROPIC = RECORDED / "anthropic" / "messages_parallel_tool_use_fantasy.sse"

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Edinburgh and the AAPL price?"}]
TOOLS = [
    ToolSpec(
        name="get_stock_price",
        description="The price of a stock.",
        parameters={"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]},
    )
]
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def _expected(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".expected.json").read_text())  # type: ignore[no-any-return]


def _message(events: list[Any]) -> Message:
    acc = Accumulator()
    for e in events:
        acc.add(e)
    return acc.message()


def _check(msg: Message, exp: dict[str, Any]) -> None:
    assert msg.text == (exp["text"] or "")
    assert [(c.id, c.name, c.arguments) for c in msg.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in exp["tool_calls"]
    ]
    assert msg.raw_finish_reason == exp["finish_reason"]


def _check_envelope(events: list[Any], run_id: str, agent: str) -> None:
    assert isinstance(events[0], RunStart)
    assert isinstance(events[-1], RunEnd)
    assert {(e.run_id, e.agent) for e in events} == {(run_id, agent)}
    assert [e.seq for e in events] == list(range(len(events)))


# --------------------------------------------------------------------------- resolve


def test_local_names_resolve_to_one_shared_local_model() -> None:
    m = resolve_model(None)
    assert isinstance(m, LocalModel)
    assert isinstance(m, Model)
    assert resolve_model("local") is m
    assert resolve_model("smollm2") is m
    assert resolve_model(" Local ") is m
    assert resolve_model() is m
    assert shared_local_model() is m


def test_shared_local_model_is_created_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models_mod, "_local", None)
    created: list[int] = []
    real_init = LocalModel.__init__

    def counting_init(self: LocalModel, *args: Any, **kwargs: Any) -> None:
        created.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(LocalModel, "__init__", counting_init)
    barrier = threading.Barrier(16)
    got: list[Model] = []

    def worker() -> None:
        barrier.wait()
        got.append(resolve_model("local"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 16
    assert len({id(m) for m in got}) == 1
    assert created == [1]


def test_replay_spec_resolves_to_a_replay_model() -> None:
    m = resolve_model(f"replay:{STEP1}, {STEP2}")
    assert isinstance(m, ReplayModel)
    assert m.name == "replay"
    assert m.paths == [STEP1, STEP2]
    assert isinstance(resolve_model(f"replay:{STEP1}"), ReplayModel)


def test_other_names_resolve_to_litellm_models() -> None:
    m = resolve_model("openai/gpt-4o")
    assert isinstance(m, LiteLLMModel)
    assert isinstance(m, Model)
    assert m.name == "openai/gpt-4o"


def test_a_model_resolves_to_itself() -> None:
    m = ReplayModel([STEP1])
    assert resolve_model(m) is m
    assert resolve_model(m) is m


@pytest.mark.parametrize("spec", ["", "   ", "replay:", "replay: , "])
def test_empty_specs_are_errors(spec: str) -> None:
    with pytest.raises(ValueError, match=r"empty model name|names no recorded body"):
        resolve_model(spec)


def test_a_non_model_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        resolve_model(42)  # type: ignore[arg-type]


def test_missing_replay_file_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_model(f"replay:{tmp_path / 'nope.sse'}")


# --------------------------------------------------------------------------- replay


@pytest.mark.anyio
async def test_replay_plays_recorded_steps_in_order_and_records_calls() -> None:
    model = ReplayModel([STEP1, STEP2])
    assert isinstance(model, Model)
    messages = [dict(m) for m in MESSAGES]

    first = await model.stream(messages, tools=TOOLS, run_id="r1", agent="bot").collect()
    _check_envelope(first, "r1", "bot")
    _check(_message(first), _expected(STEP1))
    assert any(isinstance(e, ToolCallStart) for e in first)

    messages.append({"role": "assistant", "content": None, "tool_calls": []})  # the agent's next turn
    second = await model.stream(messages, run_id="r2", agent="bot/sub").collect()
    _check_envelope(second, "r2", "bot/sub")
    _check(_message(second), _expected(STEP2))

    assert model.remaining == 0
    assert [c["run_id"] for c in model.calls] == ["r1", "r2"]
    assert model.calls[0]["messages"] == MESSAGES  # a copy: later appends don't show
    assert model.calls[0]["tools"] == TOOLS
    assert model.calls[1]["messages"] == messages
    assert model.calls[1]["tools"] == []
    assert model.calls[0]["output_schema"] is None


@pytest.mark.anyio
async def test_replay_of_another_api_and_explicit_api() -> None:
    model = ReplayModel([ANTHROPIC, ANTHROPIC], api="anthropic")
    events = await model.stream(MESSAGES, run_id="a1", agent="x").collect()
    _check_envelope(events, "a1", "x")
    _check(_message(events), _expected(ANTHROPIC))
    auto = await ReplayModel([ANTHROPIC]).stream(MESSAGES, run_id="a1", agent="x").collect()
    assert [type(e) for e in auto] == [type(e) for e in events]


@pytest.mark.anyio
async def test_replay_stream_is_lazy_and_reiterable() -> None:
    model = ReplayModel([STEP2])
    stream = model.stream(MESSAGES, output_schema=ANSWER_SCHEMA)
    assert model.calls[0]["output_schema"] == ANSWER_SCHEMA
    a = await stream.collect()
    b = await stream.collect()
    assert _message(a).text == _message(b).text == _expected(STEP2)["text"]
    assert a[0].run_id != b[0].run_id  # no run_id given: a fresh one per iteration


def test_replay_past_the_end_is_a_typed_index_error() -> None:
    model = ReplayModel([STEP1])
    model.stream(MESSAGES)
    with pytest.raises(ReplayExhaustedError, match="1 recorded bodies and this is call 2") as info:
        model.stream(MESSAGES)
    assert isinstance(info.value, IndexError)
    assert isinstance(info.value, StreamopsError)
    assert len(model.calls) == 2  # the failed call is recorded (what did the agent send?)


def test_replay_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ReplayModel([])
    with pytest.raises(ValueError, match="delay"):
        ReplayModel([STEP1], delay=-1)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_backends(), ids=["asyncio-virtual", "trio-virtual"])
async def test_replay_delay_spaces_events_in_time() -> None:
    model = ReplayModel([STEP2, STEP2], delay=0.25)
    times: list[float] = []
    t0 = anyio.current_time()
    events = []
    async for e in model.stream(MESSAGES, run_id="d"):
        times.append(anyio.current_time() - t0)
        events.append(e)
    assert len(events) > 5
    assert times[0] == pytest.approx(0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.25] * len(gaps))
    _check(_message(events), _expected(STEP2))

    # Stopping early stops the clock too.
    t1 = anyio.current_time()
    async with model.stream(MESSAGES).iterate() as it:
        n = 0
        async for _ in it:
            n += 1
            if n == 3:
                break
    assert anyio.current_time() - t1 == pytest.approx(0.5)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", virtual_backends(), ids=["asyncio-virtual", "trio-virtual"])
async def test_replay_without_delay_takes_no_time() -> None:
    t0 = anyio.current_time()
    events = await ReplayModel([STEP1]).stream(MESSAGES).collect()
    assert len(events) > 5
    assert anyio.current_time() == t0


# --------------------------------------------------------------------------- LiteLLM


def test_litellm_request_kwargs() -> None:
    m = LiteLLMModel("openai/gpt-4o", temperature=0)
    assert m.request_kwargs() == {"stream_options": {"include_usage": True}, "temperature": 0}
    kw = m.request_kwargs(tools=TOOLS, output_schema=ANSWER_SCHEMA)
    assert kw["tools"] == [TOOLS[0].to_openai()]
    assert kw["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": ANSWER_SCHEMA, "strict": False},
    }
    own = LiteLLMModel("openai/gpt-4o", stream_options={"include_usage": False})
    assert own.request_kwargs()["stream_options"] == {"include_usage": False}


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    mod = import_litellm()  # once: the import takes seconds
    quiet = mod.suppress_debug_info
    mod.suppress_debug_info = True
    yield mod
    mod.suppress_debug_info = quiet


@pytest.mark.anyio
# LiteLLM is asyncio-only: it awaits asyncio futures in its OpenAI handler (on trio,
# acompletion fails with "trio.run received unrecognized yield message <Future ...>").
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
# LiteLLM itself reads pydantic's deprecated instance ``model_fields`` while building
# tool-call chunks (see tests/adapters/test_litellm.py).
@pytest.mark.filterwarnings("ignore:Accessing the 'model_.*fields' attribute on the instance:DeprecationWarning")
async def test_litellm_model_sends_tools_and_response_format(litellm: Any) -> None:
    async with serve_sse(STEP1.read_bytes()) as server:
        model = LiteLLMModel("openai/gpt-4o", api_base=server.base_url, api_key="sk-test")
        assert isinstance(model, Model)
        events = await model.stream(
            MESSAGES, tools=TOOLS, output_schema=ANSWER_SCHEMA, run_id="l1", agent="bot"
        ).collect()
        plain = await model.stream(MESSAGES, run_id="l2").collect()
    _check_envelope(events, "l1", "bot")
    assert events[0].model == "gpt-4o"
    _check(_message(events), _expected(STEP1))
    _check(_message(plain), _expected(STEP1))

    sent, sent_plain = server.requests
    assert sent["model"] == "gpt-4o"
    assert sent["messages"] == MESSAGES
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["tools"] == [TOOLS[0].to_openai()]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": ANSWER_SCHEMA, "strict": False},
    }
    assert not [k for k in sent if k.startswith("_")]  # no LiteLLM-internal flag leaks to the provider
    assert "tools" not in sent_plain
    assert "response_format" not in sent_plain
    assert sent_plain["stream_options"] == {"include_usage": True}


# --------------------------------------------------------------------------- local model


@pytest.fixture(scope="module")
def local() -> Iterator[LocalModel]:
    m = LocalModel()
    m.load()
    yield m
    m.close()


@pytest.mark.slow
def test_local_model_is_a_model(local: LocalModel) -> None:
    assert isinstance(local, Model)
    assert local.name == "SmolLM2-135M-Instruct"


@pytest.mark.slow
@pytest.mark.anyio
async def test_local_output_schema_constrains_the_answer_to_json(local: LocalModel) -> None:
    # The call an agent makes: the Model protocol's arguments only. The grammar makes the text
    # JSON of the schema.
    model: Model = local
    with anyio.fail_after(60):
        events = await model.stream(
            [{"role": "user", "content": "What is the capital of France?"}],
            output_schema=ANSWER_SCHEMA,
            run_id="loc",
            agent="bot",
        ).collect()
    _check_envelope(events, "loc", "bot")
    assert not any(isinstance(e, ToolCallStart) for e in events)
    assert any(isinstance(e, TextDelta) for e in events)
    msg = _message(events)
    assert msg.finish_reason == "stop"
    data = json.loads(msg.text)
    assert isinstance(data, dict)
    assert set(data) == {"answer"}
    assert isinstance(data["answer"], str)
    # With tools as well (issue 15 item 12: they were ignored), the answer is a call of one of
    # them with JSON arguments, or JSON of the schema: nothing else.
    with anyio.fail_after(60):
        events = await model.stream(
            [{"role": "user", "content": "What is the capital of France?"}],
            tools=TOOLS,
            output_schema=ANSWER_SCHEMA,
            run_id="loc",
            agent="bot",
        ).collect()
    _check_envelope(events, "loc", "bot")
    msg = _message(events)
    if msg.tool_calls:
        assert msg.finish_reason == "tool_calls" and msg.text == ""
        assert {c.name for c in msg.tool_calls} <= {t.name for t in TOOLS}
        assert all(isinstance(json.loads(c.arguments), dict) for c in msg.tool_calls)
    else:
        assert set(json.loads(msg.text)) == {"answer"}


@pytest.mark.slow
@pytest.mark.anyio
async def test_local_output_schema_with_several_fields(local: LocalModel) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}, "capital": {"type": "boolean"}},
        "required": ["city", "population", "capital"],
    }
    events = await local.stream(
        [{"role": "user", "content": "Tell me about Paris."}], output_schema=schema, max_tokens=120, temperature=0
    ).collect()
    msg = _message(events)
    assert msg.finish_reason == "stop"
    data = json.loads(msg.text)
    assert isinstance(data["city"], str)
    assert isinstance(data["population"], int)
    assert isinstance(data["capital"], bool)


@pytest.mark.slow
@pytest.mark.anyio
async def test_local_bad_output_schema_is_a_typed_error(local: LocalModel) -> None:
    with pytest.raises(OutputSchemaError, match="frobnicate"):
        await local.stream(MESSAGES, output_schema={"type": "frobnicate"}).collect()
    assert not local.busy


# --------------------------------------------------------------------------- one stream signature
@pytest.mark.parametrize("cls", [ReplayModel, LiteLLMModel, LocalModel])
def test_every_model_takes_the_stream_options_written_once(cls: type[Any]) -> None:
    # The options every model takes (tools, output_schema, run_id, agent) are declared once,
    # in streamops.models.StreamOptions: no model spells them out again.
    import inspect

    from streamops.models import StreamOptions

    params = inspect.signature(cls.stream).parameters
    assert not set(StreamOptions.__annotations__) & set(params)
    var = [p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert len(var) == 1 and str(var[0].annotation) == "Unpack[StreamOptions]"


def test_an_unknown_stream_option_is_a_type_error_as_before() -> None:
    from streamops.models import ModelCall

    call = ModelCall.of([{"role": "user", "content": "x"}], {"run_id": "r", "agent": "a"})
    assert (call.tools, call.output_schema, call.run_id, call.agent) == ((), None, "r", "a")
    with pytest.raises(TypeError, match="max_tokens"):
        ReplayModel([STEP1]).stream([], max_tokens=5)  # type: ignore[call-arg]
