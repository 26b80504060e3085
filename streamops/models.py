"""What an agent needs from a model: the :class:`Model` protocol and the message and
tool-spec shapes. A pure contract: turning ``--model`` strings into models is the adapters'
job (:func:`streamops.adapters.models.resolve_model`).

Messages are OpenAI Chat Completions message dicts (the lingua franca LiteLLM and llama.cpp
chat templates accept): ``{"role": "system" | "user" | "assistant" | "tool", "content": str}``,
assistant messages with ``"tool_calls": [{"id", "type": "function", "function": {"name",
"arguments"}}]``, tool messages with ``"tool_call_id"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypedDict, Unpack, runtime_checkable

if TYPE_CHECKING:
    from ._stream import Stream
    from .events import BaseEvent

__all__ = ["ChatMessage", "Model", "ModelCall", "StreamOptions", "ToolSpec"]

ChatMessage: TypeAlias = dict[str, Any]
"""One OpenAI-style chat message (see the module docstring)."""


@dataclass(slots=True, kw_only=True)
class ToolSpec:
    """A tool as the model sees it."""

    name: str
    """The tool's name (``[a-zA-Z0-9_-]``, at most 64 characters, as OpenAI requires)."""
    description: str = ""
    """What the tool does, for the model."""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of the arguments object."""

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tools[]`` entry: ``{"type": "function", "function": {...}}``."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class StreamOptions(TypedDict, total=False):
    """The keyword arguments every :meth:`Model.stream` takes, written once: a model declares
    ``def stream(self, messages, **options: Unpack[StreamOptions])`` (plus any settings of its
    own as keyword arguments before it) and reads them with :meth:`ModelCall.of`."""

    tools: Sequence[ToolSpec]
    """Tools the model may call (default: none)."""
    output_schema: Mapping[str, Any] | None
    """A JSON Schema the answer must match (default ``None``: free text)."""
    run_id: str | None
    """The ``run_id`` of the response's events (default ``None``: the model makes one up)."""
    agent: str
    """The ``agent`` of the response's events (default ``""``)."""


@dataclass(slots=True, kw_only=True)
class ModelCall:
    """One :meth:`Model.stream` call: the messages and the :class:`StreamOptions`, defaults
    filled in."""

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[ToolSpec] = ()
    output_schema: Mapping[str, Any] | None = None
    run_id: str | None = None
    agent: str = ""

    @classmethod
    def of(cls, messages: Sequence[Mapping[str, Any]], options: StreamOptions) -> ModelCall:
        """The call of ``model.stream(messages, **options)``.

        Raises:
            TypeError: ``options`` holds a name that is not a :class:`StreamOptions` key (the
                ``TypeError`` of an unexpected keyword argument).
        """
        return cls(messages=messages, **options)


@runtime_checkable
class Model(Protocol):
    """A model an agent can call: one streamed response per call.

    ``stream(messages, tools=..., output_schema=..., run_id=..., agent=...)`` (the
    :class:`StreamOptions`, all optional) returns a lazy
    stream of that response's events, as the adapters produce them: ``RunStart``, text /
    reasoning / refusal deltas, tool-call start / delta / end, ``UsageEvent``, and ``RunEnd``
    with the finish reason (or an ``ErrorEvent`` and a failed ``RunEnd``). Closing the stream
    early closes the provider request. ``output_schema`` (a JSON Schema) asks for a JSON answer
    of that shape, by whatever means the model has (``response_format``, a grammar, or an
    instruction).
    """

    name: str
    """The model's name, for run starts and stats."""

    def stream(self, messages: Sequence[Mapping[str, Any]], **options: Unpack[StreamOptions]) -> Stream[BaseEvent]:
        """The response to ``messages`` (see :class:`StreamOptions` for the options)."""
        ...
