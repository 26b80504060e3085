"""The local model adapter, run for real: llama-cpp-python with SmolLM2-135M-Instruct.

The model is loaded once for the module. Every generation is short (at most 60 tokens) and
greedy (temperature 0), so answers are deterministic and comparable with llama-cpp's own
non-streamed ``create_chat_completion``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from streamops.adapters.local import (
    DEFAULT_MODEL_NAME,
    ContextWindowError,
    LocalModel,
    LocalModelError,
    ModelNotInstalledError,
    _Generation,
    smollm2_path,
)

from streamops import Accumulator, RunEnd, RunStart, TextDelta, UsageEvent, from_json, to_json

pytestmark = pytest.mark.slow

SHORT = [{"role": "user", "content": "What is 2+2? Answer briefly."}]
"""Ends on its own (finish reason stop) after about a dozen tokens."""
FRENCH = [{"role": "user", "content": "Say hello in French, then write an emoji."}]
JAPANESE = [{"role": "user", "content": "Write a short sentence in Japanese with an emoji."}]
"""SmolLM2 answers in kana: most characters are split across two or three tokens."""


@pytest.fixture(scope="module")
def model() -> Iterator[LocalModel]:
    m = LocalModel()
    m.load()
    yield m
    m.close()


def _no_thread_busy(model: LocalModel) -> bool:
    """The model's own thread has no job running or queued, and no thread of anyio's pool is
    taken (the model never uses one)."""
    owner = model._owner
    idle = owner is None or owner.idle
    return idle and anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0


async def _collect(stream: Any) -> list[Any]:
    return [ev async for ev in stream]


def _check_well_formed(events: list[Any]) -> None:
    assert isinstance(events[0], RunStart)
    assert events[0].model == DEFAULT_MODEL_NAME
    assert isinstance(events[-2], UsageEvent)
    assert isinstance(events[-1], RunEnd)
    assert all(isinstance(e, TextDelta) for e in events[1:-2])
    assert [e.seq for e in events] == list(range(len(events)))
    assert len({e.run_id for e in events}) == 1


@pytest.mark.anyio
async def test_stream_matches_llama_non_streamed(model: LocalModel) -> None:
    events = await _collect(model.stream(SHORT, max_tokens=48, temperature=0))
    _check_well_formed(events)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3

    acc = Accumulator()
    for e in events:
        acc.add(e)
    msg = acc.message()

    ref: Any = model.llama.create_chat_completion(SHORT, max_tokens=48, temperature=0)
    assert msg.text == ref["choices"][0]["message"]["content"]
    assert msg.text.strip()
    assert msg.finish_reason == ref["choices"][0]["finish_reason"] == "stop"
    assert msg.raw_finish_reason == "stop"
    assert msg.status == "completed"

    # Usage: counted with the model's own tokenizer, and as llama-cpp counts it.
    usage = events[-2].usage
    assert events[-2].source == "provider"
    assert events[-1].usage == usage == msg.usage
    prompt_text, _ = model.format_prompt(SHORT)
    assert usage.input_tokens == len(model.tokenize(prompt_text, special=True)) > 0
    assert usage.input_tokens == ref["usage"]["prompt_tokens"]
    assert usage.output_tokens == ref["usage"]["completion_tokens"] > 0
    # Every sampled token is on exactly one delta, and they decode to the text.
    tokens = [t for d in deltas for t in d.raw["tokens"]]
    assert len(tokens) == usage.output_tokens
    assert model.llama.detokenize(tokens).decode("utf-8") == msg.text
    assert not model.busy
    assert _no_thread_busy(model)


@pytest.mark.anyio
async def test_max_tokens_gives_length(model: LocalModel) -> None:
    events = await _collect(model.stream(FRENCH, max_tokens=6, temperature=0))
    _check_well_formed(events)
    end = events[-1]
    assert end.finish_reason == "length"
    assert end.raw_finish_reason == "length"
    assert end.status == "length"
    assert end.usage.output_tokens == 6
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    ref: Any = model.llama.create_chat_completion(FRENCH, max_tokens=6, temperature=0)
    assert text == ref["choices"][0]["message"]["content"]
    assert ref["choices"][0]["finish_reason"] == "length"


@pytest.mark.anyio
async def test_non_ascii_output_never_has_replacement_chars(model: LocalModel) -> None:
    events = await _collect(model.stream(JAPANESE, max_tokens=40, temperature=0))
    _check_well_formed(events)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    text = "".join(d.delta for d in deltas)
    assert any(ord(c) > 0x3000 for c in text), text  # the model did answer in kana/kanji
    assert "\ufffd" not in text
    # Some characters really were split across tokens: their delta carries several tokens,
    # and no single one of those tokens decodes on its own.
    split = [d for d in deltas if len(d.raw["tokens"]) > 1]
    assert split
    d = split[0]
    with pytest.raises(UnicodeDecodeError):
        model.llama.detokenize(d.raw["tokens"][:1]).decode("utf-8")
    assert model.llama.detokenize(d.raw["tokens"]).decode("utf-8") == d.delta
    assert events[-1].finish_reason == "length"
    assert events[-1].usage.output_tokens == 40
    # llama-cpp's create_chat_completion skips its max_tokens check while a character is
    # incomplete, so it may run over max_tokens (it reports 41 completion tokens here) to end
    # the character; the adapter keeps max_tokens and drops the partial character instead.
    ref: Any = model.llama.create_chat_completion(JAPANESE, max_tokens=40, temperature=0)
    ref_text = ref["choices"][0]["message"]["content"]
    assert ref_text.startswith(text)
    assert len(ref_text) - len(text) <= 1
    assert ref["usage"]["completion_tokens"] >= 40


class _ReplayLlama:
    """Stands in for ``llama_cpp.Llama`` in the decode path: "generates" fixed token ids,
    detokenizes them with the real model."""

    def __init__(self, model: LocalModel, tokens: list[int]) -> None:
        self._tokens = tokens
        self.detokenize = model.llama.detokenize

    def generate(self, prompt: list[int], **kwargs: Any) -> Iterator[int]:
        return iter(self._tokens)


def _replay(model: LocalModel, text: str, *, stop: list[str] | None = None, max_tokens: int = 100) -> Any:
    tokens = model.tokenize(text)
    gen = _Generation(
        llm=_ReplayLlama(model, [*tokens, model.llama.token_eos()]),
        prompt_tokens=[],
        max_tokens=max_tokens,
        stop=stop or [],
        sampling={},
        is_eog=lambda t: t == model.llama.token_eos(),
    )
    steps = []
    while True:
        step = gen.step()
        steps.append(step)
        if step.finish_reason is not None:
            return tokens, steps


def test_emoji_split_across_tokens_is_emitted_whole(model: LocalModel) -> None:
    tokens, steps = _replay(model, "Party 🎉 time")
    # The tokenizer splits the emoji's four bytes over three tokens.
    pieces = [model.llama.detokenize([t]) for t in tokens]
    assert any(b"\xf0" in p and not p.endswith(b"\xf0\x9f\x8e\x89") for p in pieces)
    texts = [s.text for s in steps]
    assert "".join(texts) == "Party 🎉 time"
    assert any("🎉" in t for t in texts)
    assert all("\ufffd" not in t for t in texts)
    assert "" in texts[:-1]  # the tokens holding a partial emoji produced no text
    assert steps[-1].finish_reason == "stop"


def test_cut_inside_a_character_drops_the_partial_bytes(model: LocalModel) -> None:
    tokens = model.tokenize("ok 🎉")
    n_before_emoji = len(model.tokenize("ok"))
    _, steps = _replay(model, "ok 🎉", max_tokens=n_before_emoji + 1)
    assert len(tokens) > n_before_emoji + 1
    # The space decodes; the emoji's first two bytes are dropped, never shown as U+FFFD.
    assert "".join(s.text for s in steps) == "ok "
    assert steps[-1].finish_reason == "length"


def test_stop_strings_are_held_back_and_cut(model: LocalModel) -> None:
    _, steps = _replay(model, "one two three four", stop=["thr", "zzz"])
    assert "".join(s.text for s in steps) == "one two "
    assert steps[-1].finish_reason == "stop"
    # A prefix that turns out not to be a stop string is released.
    _, steps = _replay(model, "one two three four", stop=["three five"])
    assert "".join(s.text for s in steps) == "one two three four"
    assert steps[-1].finish_reason == "stop"  # the end-of-generation token


@pytest.mark.anyio
async def test_early_close_stops_generation_within_one_token(model: LocalModel) -> None:
    n_prompt = len(model.prompt_tokens(FRENCH))
    consumed: list[int] = []
    async with model.stream(FRENCH, max_tokens=60, temperature=0).iterate() as it:
        async for ev in it:
            if isinstance(ev, TextDelta):
                consumed.extend(ev.raw["tokens"])
                if len(consumed) >= 3:
                    break
    # Closed: the model is free and no worker thread is computing.
    assert not model.busy
    assert _no_thread_busy(model)
    assert model.cancel_event is None
    # llama.cpp evaluated at most the tokens we consumed (+1 in flight): nothing ran on.
    assert model.llama.n_tokens - n_prompt <= len(consumed) + 1
    # The model can be used again at once, and answers as before.
    events = await _collect(model.stream(FRENCH, max_tokens=5, temperature=0))
    _check_well_formed(events)
    assert events[-1].finish_reason == "length"


@pytest.mark.anyio
async def test_cancellation_stops_generation(model: LocalModel) -> None:
    n_prompt = len(model.prompt_tokens(FRENCH))
    consumed = 0
    with anyio.CancelScope() as scope:
        async for ev in model.stream(FRENCH, max_tokens=60, temperature=0):
            if isinstance(ev, TextDelta):
                consumed += len(ev.raw["tokens"])
                if consumed >= 2:
                    scope.cancel()
    assert scope.cancelled_caught
    # The generator's finally ran when the cancelled await unwound it.
    assert not model.busy
    assert _no_thread_busy(model)
    assert model.llama.n_tokens - n_prompt <= consumed + 1
    events = await _collect(model.stream(SHORT, max_tokens=4, temperature=0))
    _check_well_formed(events)


@pytest.mark.anyio
async def test_cancel_event_ends_the_run_as_cancelled(model: LocalModel) -> None:
    events = []
    async for ev in model.stream(FRENCH, max_tokens=60, temperature=0):
        events.append(ev)
        if isinstance(ev, TextDelta):
            assert model.cancel_event is not None
            # Another thread asks for the stop.
            t = threading.Thread(target=model.cancel_event.set)
            t.start()
            t.join()
    _check_well_formed(events)
    end = events[-1]
    assert end.status == "cancelled"
    assert end.finish_reason == "cancelled"
    assert end.raw_finish_reason is None
    assert end.usage.output_tokens == 1
    assert not model.busy


@pytest.mark.anyio
async def test_closing_a_busy_model_is_refused(model: LocalModel) -> None:
    async with model.stream(SHORT, max_tokens=8, temperature=0).iterate() as it:
        await it.__anext__()
        assert model.busy
        with pytest.raises(LocalModelError, match="busy"):
            model.close()
    assert not model.busy


@pytest.mark.anyio
async def test_concurrent_streams_take_turns(model: LocalModel) -> None:
    results: dict[str, str] = {}

    async def run(name: str, messages: list[dict[str, str]]) -> None:
        acc = Accumulator()
        async for ev in model.stream(messages, max_tokens=12, temperature=0):
            acc.add(ev)
        results[name] = acc.message().text

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "short", SHORT)
        tg.start_soon(run, "french", FRENCH)
    for name, messages in (("short", SHORT), ("french", FRENCH)):
        ref: Any = model.llama.create_chat_completion(messages, max_tokens=12, temperature=0)
        assert results[name] == ref["choices"][0]["message"]["content"]


@pytest.mark.anyio
async def test_prompt_string_and_events_round_trip_json(model: LocalModel) -> None:
    prompt = "The capital of France is"
    events = await _collect(model.stream(prompt, max_tokens=8, temperature=0, run_id="r1", agent="local"))
    _check_well_formed(events)
    assert {e.run_id for e in events} == {"r1"}
    assert {e.agent for e in events} == {"local"}
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    ref: Any = model.llama.create_completion(prompt, max_tokens=8, temperature=0)
    assert text == ref["choices"][0]["text"]
    assert events[-2].usage.input_tokens == ref["usage"]["prompt_tokens"]
    for e in events:
        back = from_json(to_json(e))
        assert back == e
        assert back.raw == e.raw


@pytest.mark.anyio
async def test_prompt_longer_than_the_context_window() -> None:
    small = LocalModel(n_ctx=32)
    try:
        with pytest.raises(ContextWindowError) as info:
            await _collect(small.stream("word " * 100, max_tokens=4))
        assert info.value.n_ctx == 32
        assert not small.busy
    finally:
        small.close()


def test_model_file_is_located_without_importing_the_package() -> None:
    path = smollm2_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()


def test_missing_model_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelNotInstalledError, match=r"streamops\[local\]"):
        smollm2_path()
    with pytest.raises(FileNotFoundError):
        LocalModel().load()
    with pytest.raises(ModelNotInstalledError, match=r"streamops\[local\]"):
        LocalModel(tmp_path / "absent.gguf").load()


@pytest.mark.anyio
async def test_missing_model_fails_the_stream() -> None:
    with pytest.raises(ModelNotInstalledError):
        await _collect(LocalModel("/nonexistent/model.gguf").stream("hi"))


def test_extra_buffer_types_are_off_by_default_and_the_defaults_restored(model: LocalModel) -> None:
    """The model loads with llama.cpp's ``use_extra_bufts`` off (its AMX kernel faults on some
    VMs: see ``LocalModel``), and the load leaves llama-cpp's default parameters as they were."""
    import llama_cpp.llama_cpp as low_level

    llm: Any = model.load()
    assert model.use_extra_bufts is False
    assert llm.model_params.use_extra_bufts is False
    assert low_level.llama_model_default_params().use_extra_bufts is True
    # A prompt of many tokens is evaluated as one batch: the path that faulted.
    out = llm.create_completion("Why is the sky blue? " * 8, max_tokens=4, temperature=0)
    assert out["usage"]["prompt_tokens"] > 8


# --------------------------------------------------------------------------- the model's thread
_LLAMA_CALLS = ("tokenize", "detokenize", "eval", "sample", "generate", "close")


@pytest.fixture
def llama_threads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, threading.Thread]]:
    """Records ``(call, id(llama), thread)`` for each load and each call of the llama methods
    the adapter uses; fails any use of anyio's worker thread pool meanwhile. (Other tests'
    ``Llama`` objects may be garbage collected meanwhile, calling ``close``: look at the calls
    of the objects loaded here.)"""
    import llama_cpp
    import streamops.adapters.local as local_mod

    calls: list[tuple[str, int, threading.Thread]] = []

    def recorded(name: str, method: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append((name, id(self), threading.current_thread()))
            return method(self, *args, **kwargs)

        return call

    for name in _LLAMA_CALLS:
        monkeypatch.setattr(llama_cpp.Llama, name, recorded(name, getattr(llama_cpp.Llama, name)))
    quiet_llama = local_mod._quiet_llama

    def load(*args: Any, **kwargs: Any) -> Any:
        llm = quiet_llama(*args, **kwargs)
        calls.append(("load", id(llm), threading.current_thread()))
        return llm

    monkeypatch.setattr(local_mod, "_quiet_llama", load)

    async def no_pool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("anyio's worker thread pool was used")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_pool)
    return calls


def _model_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("streamops-local-")}


@pytest.mark.anyio
async def test_every_llama_call_of_a_model_runs_on_its_own_thread(
    llama_threads: list[tuple[str, int, threading.Thread]],
) -> None:
    m = LocalModel(name="own-thread")
    try:
        for messages in (FRENCH, SHORT):  # two successive runs; the first one loads the model
            events = await _collect(m.stream(messages, max_tokens=6, temperature=0))
            assert isinstance(events[-1], RunEnd)
            assert events[-1].usage.output_tokens >= 1
        (loaded,) = [llm for name, llm, _ in llama_threads if name == "load"]
        assert loaded == id(m.llama)
        calls = [(name, t) for name, llm, t in llama_threads if llm == loaded]
        names = [name for name, _ in calls]
        assert names[0] == "load"
        assert {"tokenize", "generate", "eval", "sample", "detokenize"} <= set(names)
        assert names.count("generate") == 2
        assert names.count("sample") >= 2 * 6
        threads = {t for _, t in calls}
        assert len(threads) == 1
        (thread,) = threads
        # Not the event loop's thread, not a pool thread: the model's own, named after it.
        assert thread is not threading.current_thread()
        assert thread is not threading.main_thread()
        assert thread.name == "streamops-local-own-thread"
        assert thread.daemon
        assert thread.is_alive()
        # The sync API runs there too (called here from the event loop's thread).
        del llama_threads[:]
        assert m.tokenize("hello")
        assert m.prompt_tokens(SHORT)
        assert {t for _, llm, t in llama_threads if llm == loaded} == {thread}
        assert _no_thread_busy(m)
    finally:
        m.close()
    # The model is closed on its thread, then the thread ends.
    assert [t for name, llm, t in llama_threads if llm == loaded and name == "close"][:1] == [thread]
    assert not thread.is_alive()


@pytest.mark.anyio
async def test_two_models_run_on_two_threads_in_parallel(
    model: LocalModel, llama_threads: list[tuple[str, int, threading.Thread]]
) -> None:
    other = LocalModel(seed=1, name="other")
    try:
        texts: dict[str, str] = {}

        async def run(name: str, m: LocalModel) -> None:
            acc = Accumulator()
            async for ev in m.stream(FRENCH, max_tokens=8, temperature=0):
                acc.add(ev)
            texts[name] = acc.message().text

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "model", model)
            tg.start_soon(run, "other", other)
        assert texts["model"] == texts["other"]  # greedy: the same answer
        by_llama: dict[int, set[threading.Thread]] = {}
        for _, llm, thread in llama_threads:
            by_llama.setdefault(llm, set()).add(thread)
        assert {id(model.llama), id(other.llama)} <= set(by_llama)
        (t1,) = by_llama[id(model.llama)]
        (t2,) = by_llama[id(other.llama)]
        assert t1 is not t2
        assert {t1.name, t2.name} == {f"streamops-local-{model.name}", "streamops-local-other"}
    finally:
        other.close()
    assert not t2.is_alive()
    assert t1.is_alive()  # the other model's thread is untouched


def test_close_stops_and_joins_the_thread_and_the_model_reloads() -> None:
    before = _model_threads()
    m = LocalModel(name="closing")
    assert _model_threads() == before  # the thread starts on first use
    tokens = m.tokenize("Hello there")
    (thread,) = _model_threads() - before
    assert thread.name == "streamops-local-closing"
    m.close()
    assert thread not in threading.enumerate()
    assert not thread.is_alive()
    m.close()  # closing again is a no-op
    # Used after close: a new thread, the model loaded again, the same answers.
    assert m.tokenize("Hello there") == tokens
    (again,) = _model_threads() - before
    assert again is not thread
    with m:
        pass
    assert again not in threading.enumerate()
    assert _model_threads() == before


def test_a_model_dropped_unclosed_ends_its_thread() -> None:
    import gc

    before = _model_threads()
    m = LocalModel(name="dropped")
    m.prompt_tokens("Hi")
    (thread,) = _model_threads() - before
    del m
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.anyio
async def test_sync_calls_from_the_event_loop_during_a_run_do_not_deadlock(model: LocalModel) -> None:
    """The CLI's token counter calls ``tokenize()`` from the event loop's thread while the
    model's thread may be computing a token. That token's wake-up of the loop must not wait
    for the loop (``anyio.from_thread.run_sync`` would: a deadlock, seen on both backends)."""
    done = anyio.Event()
    deltas = 0
    counted = 0

    async def consume() -> None:
        nonlocal deltas
        async for ev in model.stream(FRENCH, max_tokens=20, temperature=0):
            deltas += isinstance(ev, TextDelta)
        done.set()

    async def count() -> None:
        nonlocal counted
        while not done.is_set():
            counted += len(model.tokenize("hello world"))  # blocks the loop: a step may be in flight
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        tg.start_soon(count)
    assert deltas >= 10
    assert counted > 0
    assert not model.busy
    assert _no_thread_busy(model)


def test_importing_llama_cpp_leaves_no_unclosed_dev_null_at_exit() -> None:
    """llama-cpp-python opens /dev/null twice at import and never closes it; a process that
    used the local adapter printed ``ResourceWarning: unclosed file ... '/dev/null'`` at exit
    (seen at the end of every tests/cli run)."""
    import subprocess
    import sys

    code = "from streamops.adapters.local import _import_llama_cpp; _import_llama_cpp()"
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr
    assert "/dev/null" not in done.stderr, done.stderr
