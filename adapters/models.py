"""The models an agent can use, by name: :func:`resolve_model` (what ``Agent(model=...)``,
the CLI's ``--model`` and the server's ``model=`` go through) and :class:`LiteLLMModel`.

- ``None``, ``"local"``, ``"smollm2"``: one shared :class:`~streamops.adapters.local.LocalModel`
  per process (SmolLM2-135M-Instruct; created on first request, loaded on first use);
- ``"replay:PATH[,PATH...]"``: a :class:`~streamops.adapters.replay.ReplayModel` of those
  recorded bodies (paths may not contain commas);
- any other string: a :class:`LiteLLMModel` (``"openai/gpt-4o"``,
  ``"anthropic/claude-sonnet-4-5"``...), which needs the provider's key in the environment;
- a :class:`~streamops.models.Model`: itself.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Unpack

import anyio.to_thread

from streamops._stream import Stream
from streamops.events import BaseEvent
from streamops.models import Model, ModelCall, StreamOptions, ToolSpec

from .litellm import import_litellm, litellm_stream
from .local import LocalModel
from .replay import ReplayModel

__all__ = ["LOCAL_NAMES", "LiteLLMModel", "LocalModel", "resolve_model", "shared_local_model"]

LOCAL_NAMES = frozenset({"local", "smollm2"})
"""The specs that name the shared local model (besides ``None``)."""

REPLAY_PREFIX = "replay:"

_local: LocalModel | None = None
_local_lock = threading.Lock()


def shared_local_model() -> LocalModel:
    """The process-wide :class:`~streamops.adapters.local.LocalModel` (created on the first
    call, thread-safe; the model file loads on its first use, not here)."""
    global _local
    model = _local
    if model is None:
        with _local_lock:
            if _local is None:
                _local = LocalModel()
            model = _local
    return model


class LiteLLMModel:
    """A model reached through LiteLLM (``litellm.acompletion(..., stream=True)``).

    Args:
        model: LiteLLM's model name, ``"provider/model"`` (``"openai/gpt-4o"``).
        defaults: keyword arguments for every request (``api_base``, ``api_key``,
            ``temperature``, ``max_tokens``...), passed to
            :func:`~streamops.adapters.litellm.litellm_stream` (so ``keep_raw``,
            ``on_malformed`` and ``think_tags=True``, which splits inline
            ``<think>...</think>`` reasoning into reasoning deltas, go to the parser).

    Each ``stream(...)`` call asks for usage (``stream_options={"include_usage": True}``,
    unless ``defaults`` has its own ``stream_options``), sends ``tools`` as OpenAI function
    tools, and turns ``output_schema`` into ``response_format={"type": "json_schema",
    "json_schema": {"name": "output", "schema": ..., "strict": False}}`` (LiteLLM translates
    both for non-OpenAI providers). LiteLLM runs on asyncio only.

    MCP: recent LiteLLM (1.106 here) routes every request with ``tools`` through its MCP gateway check,
    which imports the ``mcp`` package (an extra of LiteLLM's proxy, usually not installed): the
    request then fails with ``APIConnectionError: ... No module named 'mcp'``. The tools sent
    here are always function tools, never MCP tools, so when that check cannot be imported the
    request passes LiteLLM's own ``_skip_mcp_handler=True`` (the flag LiteLLM uses internally
    for the same purpose; versions without the MCP gateway never get it).
    """

    def __init__(self, model: str, **defaults: Any) -> None:
        if not model:
            raise ValueError("LiteLLMModel needs a model name, such as 'openai/gpt-4o'")
        self.name = model
        self.model = model
        self.defaults = defaults

    def __repr__(self) -> str:
        return f"LiteLLMModel({self.model!r})"

    def request_kwargs(
        self, *, tools: Sequence[ToolSpec] = (), output_schema: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The keyword arguments a ``stream`` call gives ``litellm_stream`` (besides the model,
        messages, ``run_id`` and ``agent``)."""
        kwargs: dict[str, Any] = {"stream_options": {"include_usage": True}, **self.defaults}
        if tools:
            kwargs["tools"] = [t.to_openai() for t in tools]
        if output_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": dict(output_schema), "strict": False},
            }
        return kwargs

    def stream(self, messages: Sequence[Mapping[str, Any]], **options: Unpack[StreamOptions]) -> Stream[BaseEvent]:
        """A lazy stream of the model's response (each iteration sends a new request); see
        :func:`~streamops.adapters.litellm.litellm_stream` for the events and errors."""
        call = ModelCall.of(messages, options)
        kwargs = self.request_kwargs(tools=call.tools, output_schema=call.output_schema)
        return Stream.defer(_litellm_run, self.model, [dict(m) for m in messages], kwargs, call.run_id, call.agent)


_mcp_check_broken: bool | None = None


def _mcp_check_is_broken() -> bool:
    """True when this LiteLLM has the MCP gateway check on tool requests and that check cannot
    be imported (``mcp`` missing). Blocking (imports); the answer is cached."""
    global _mcp_check_broken
    if _mcp_check_broken is None:
        import_litellm()
        try:
            importlib.import_module("litellm.responses.mcp.chat_completions_handler")
        except ImportError as exc:
            # A missing litellm module: an older LiteLLM without the MCP gateway (and
            # without the flag). Anything else (``mcp``): the check is there and broken.
            _mcp_check_broken = not (exc.name or "").startswith("litellm")
        else:
            _mcp_check_broken = False
    return _mcp_check_broken


async def _litellm_run(
    model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any], run_id: str | None, agent: str
) -> AsyncGenerator[BaseEvent, None]:
    """One request (each iteration of :meth:`LiteLLMModel.stream`'s stream sends a new one)."""
    if kwargs.get("tools") and "_skip_mcp_handler" not in kwargs:
        broken = _mcp_check_broken
        if broken is None:
            broken = await anyio.to_thread.run_sync(_mcp_check_is_broken)
        if broken:
            kwargs = {**kwargs, "_skip_mcp_handler": True}
    stream = litellm_stream(model, messages, run_id=run_id, agent=agent, **kwargs)
    async with aclosing(stream.__aiter__()) as events:  # no task group across a yield (PEP 789)
        async for event in events:
            yield event


def resolve_model(spec: str | Model | None = None) -> Model:
    """The model named by ``spec`` (see the module docstring).

    Raises:
        ValueError: ``spec`` is empty (or blank), or ``"replay:"`` names no file.
        TypeError: ``spec`` is neither a string, ``None``, nor a model.
        OSError: a replay file cannot be read.
    """
    if spec is None:
        return shared_local_model()
    if isinstance(spec, str):
        name = spec.strip()
        if not name:
            raise ValueError("empty model name: pass 'local', 'replay:PATH[,PATH...]' or a LiteLLM model name")
        if name.lower() in LOCAL_NAMES:
            return shared_local_model()
        if name.lower().startswith(REPLAY_PREFIX):
            paths = [p.strip() for p in name[len(REPLAY_PREFIX) :].split(",") if p.strip()]
            if not paths:
                raise ValueError(f"{spec!r} names no recorded body: use 'replay:PATH[,PATH...]'")
            return ReplayModel(paths)
        return LiteLLMModel(name)
    if isinstance(spec, Model):
        return spec
    raise TypeError(f"not a model or a model name: {spec!r}")
