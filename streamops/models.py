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
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from ._stream import Stream
    from .events import BaseEvent

__all__ = ["ChatMessage", "Model", "ToolSpec"]

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


@runtime_checkable
class Model(Protocol):
    """A model an agent can call: one streamed response per call.

    ``stream(messages, tools=..., output_schema=..., run_id=..., agent=...)`` returns a lazy
    stream of that response's events, as the adapters produce them: ``RunStart``, text /
    reasoning / refusal deltas, tool-call start / delta / end, ``UsageEvent``, and ``RunEnd``
    with the finish reason (or an ``ErrorEvent`` and a failed ``RunEnd``). Closing the stream
    early closes the provider request. ``output_schema`` (a JSON Schema) asks for a JSON answer
    of that shape, by whatever means the model has (``response_format``, a grammar, or an
    instruction).
    """

    name: str
    """The model's name, for run starts and stats."""

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[ToolSpec] = (),
        output_schema: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        agent: str = "",
    ) -> Stream[BaseEvent]: ...
