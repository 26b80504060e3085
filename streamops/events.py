"""The event model: one discriminated union of small typed events, one kind per fact.

Every event is a keyword-only ``slots`` dataclass with a literal ``kind`` (the discriminator)
and the same envelope:

- ``run_id``: the run this event belongs to (``""`` when unknown);
- ``agent``: the agent's name, or a ``/``-separated path for nested agents (``"planner/researcher"``:
  the researcher, run by the planner as a tool or handed off to by it); :attr:`BaseEvent.agent_path`
  gives it as a tuple;
- ``parent_run_id``: the ``run_id`` of the run that started this one (an agent used as a tool, a
  sub-agent, a LangGraph subgraph), ``""`` for a top-level run;
- ``seq``: position within the run, monotonic, starting at 0;
- ``ts``: wall-clock time the event was created, in seconds since the epoch;
- ``raw``: the provider's own payload, kept for debugging (not compared by ``==``).

Deltas carry the id that ties them together: ``block_id`` for text, reasoning and refusal
blocks, ``call_id`` for tool calls. Kind names follow the Vercel AI SDK stream parts and
AG-UI (``text-delta``, ``tool-call-start``, ...).

Events are plain dataclasses rather than frozen ones: construction is on the hot path and a
frozen dataclass costs about 3x as much to build (``benchmarks/bench_core.py`` prints both).
Treat them as immutable: operators never mutate an event, they build a new one with
:func:`derive` (every field copied, the envelope included, then the changes applied), or, for
an event of another class, with :func:`envelope` (``ReasoningDelta(**envelope(e), delta=...)``).
Either way a field added to the envelope (:class:`BaseEvent`) is carried by every operator
without a change outside this module.

JSON: :func:`to_json` and :func:`from_json` round-trip every event losslessly (``raw`` must
hold JSON data for that); :func:`from_json` validates with a pydantic ``TypeAdapter`` and
raises :class:`~streamops.errors.EventValidationError` on bad input. pydantic is imported on
first use, not at ``import streamops``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar, Union, get_args

from .errors import EventValidationError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "ENVELOPE_FIELDS",
    "EVENT_KINDS",
    "AgentHandoff",
    "BaseEvent",
    "BlockEdge",
    "BlockEnd",
    "BlockStart",
    "BlockType",
    "CustomEvent",
    "ErrorEvent",
    "Event",
    "FinalOutput",
    "FinishReason",
    "ObjectDelta",
    "PartialObject",
    "RawEvent",
    "ReasoningDelta",
    "ReasoningSignature",
    "RedactedReasoning",
    "RefusalDelta",
    "RunEnd",
    "RunStart",
    "RunStatus",
    "StepEnd",
    "StepStart",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolError",
    "ToolProgress",
    "ToolResult",
    "Usage",
    "UsageEvent",
    "derive",
    "deriver",
    "envelope",
    "event_adapter",
    "from_json",
    "json_bytes",
    "model_json",
    "to_dict",
    "to_json",
    "utf8",
    "validate_event",
]

FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "error", "cancelled"]
"""Normalized finish reason. The provider's own value is kept beside it as ``raw_finish_reason``."""

RunStatus: TypeAlias = Literal["completed", "failed", "cancelled", "max_steps", "length", "budget_exceeded"]
"""How a run ended: normally, on an error, cancelled, out of steps, out of output tokens, or
stopped by a token or cost budget."""


@dataclass(slots=True, kw_only=True)
class Usage:
    """Token usage, in tokens. ``None`` means "not reported", never zero by default."""

    input_tokens: int | None = None
    """Prompt (input) tokens, cache reads included."""
    output_tokens: int | None = None
    """Completion (output) tokens, reasoning tokens included."""
    reasoning_tokens: int | None = None
    """Output tokens spent on reasoning, where the provider reports them."""
    cache_read_tokens: int | None = None
    """Input tokens served from the provider's prompt cache."""
    cache_write_tokens: int | None = None
    """Input tokens written to the provider's prompt cache."""

    def __add__(self, other: Usage) -> Usage:
        """Sum two usages field by field; ``None + None`` stays ``None``."""
        return Usage(
            input_tokens=_add(self.input_tokens, other.input_tokens),
            output_tokens=_add(self.output_tokens, other.output_tokens),
            reasoning_tokens=_add(self.reasoning_tokens, other.reasoning_tokens),
            cache_read_tokens=_add(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens=_add(self.cache_write_tokens, other.cache_write_tokens),
        )

    def merged(self, newer: Usage) -> Usage:
        """Overlay ``newer`` on this usage: a field ``newer`` reports replaces this one.

        This is how cumulative reports combine (Anthropic's ``message_delta`` usage updates the
        ``message_start`` usage; OpenAI's final usage chunk replaces nothing but itself).
        """
        return Usage(
            input_tokens=self.input_tokens if newer.input_tokens is None else newer.input_tokens,
            output_tokens=self.output_tokens if newer.output_tokens is None else newer.output_tokens,
            reasoning_tokens=(self.reasoning_tokens if newer.reasoning_tokens is None else newer.reasoning_tokens),
            cache_read_tokens=(self.cache_read_tokens if newer.cache_read_tokens is None else newer.cache_read_tokens),
            cache_write_tokens=(
                self.cache_write_tokens if newer.cache_write_tokens is None else newer.cache_write_tokens
            ),
        )

    @property
    def total_tokens(self) -> int | None:
        """``input_tokens + output_tokens``, or ``None`` if neither is known."""
        return _add(self.input_tokens, self.output_tokens)


def _add(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


@dataclass(slots=True, kw_only=True)
class BaseEvent:
    """The envelope every event carries."""

    run_id: str = ""
    """Id of the run the event belongs to; ``""`` when the source did not say."""
    agent: str = ""
    """Agent name, or a ``/``-separated path for nested agents, outermost first
    (``"planner/researcher"``); ``""`` when unnamed. See :attr:`agent_path`."""
    parent_run_id: str = ""
    """``run_id`` of the run that started this event's run (the parent agent's run when an agent
    is used as a tool or runs a sub-agent; the graph's run for a LangGraph subgraph); ``""`` for a
    top-level run."""
    seq: int = 0
    """Position within the run: monotonic, starting at 0."""
    ts: float = field(default_factory=time.time)
    """Creation time, seconds since the epoch (``time.time()``)."""
    raw: Any = field(default=None, compare=False, repr=False)
    """The provider's own payload for this event (parsed JSON), for debugging. Not compared."""

    @property
    def agent_path(self) -> tuple[str, ...]:
        """:attr:`agent` as a path of agent names, outermost first: ``"planner/researcher"`` ->
        ``("planner", "researcher")``, ``""`` -> ``()``."""
        return tuple(self.agent.split("/")) if self.agent else ()


@dataclass(slots=True, kw_only=True)
class RunStart(BaseEvent):
    """A run (one model response, or a whole agent run) has started."""

    kind: Literal["run-start"] = "run-start"
    model: str | None = None
    """The model that answers, as the provider named it."""
    response_id: str | None = None
    """The provider's id for the response (``chatcmpl-...``, ``msg_...``, ``resp_...``)."""


@dataclass(slots=True, kw_only=True)
class RunEnd(BaseEvent):
    """A run has ended. Nothing of this run follows it."""

    kind: Literal["run-end"] = "run-end"
    status: RunStatus = "completed"
    """How the run ended."""
    finish_reason: FinishReason | None = None
    """Normalized reason the model stopped; ``None`` when the provider gave none."""
    raw_finish_reason: str | None = None
    """The provider's own finish/stop reason (``end_turn``, ``STOP``, ``tool_calls``...)."""
    usage: Usage | None = None
    """Total usage of the run, when known."""


@dataclass(slots=True, kw_only=True)
class StepStart(BaseEvent):
    """An agent step (one model call and the tool calls it asks for) has started."""

    kind: Literal["step-start"] = "step-start"
    step: int = 0
    """Step number, from 0."""


@dataclass(slots=True, kw_only=True)
class StepEnd(BaseEvent):
    """An agent step has ended."""

    kind: Literal["step-end"] = "step-end"
    step: int = 0
    """Step number, from 0."""
    finish_reason: FinishReason | None = None
    """Normalized reason the model stopped in this step."""
    raw_finish_reason: str | None = None
    """The provider's own finish reason for this step."""
    usage: Usage | None = None
    """Usage of this step."""


@dataclass(slots=True, kw_only=True)
class TextDelta(BaseEvent):
    """A piece of the answer's text. Whitespace-only deltas are kept, never dropped."""

    kind: Literal["text-delta"] = "text-delta"
    delta: str
    """The text to append."""
    block_id: str | None = None
    """Id of the text block (content part, choice) this delta belongs to."""


@dataclass(slots=True, kw_only=True)
class ReasoningDelta(BaseEvent):
    """A piece of the model's reasoning (thinking, reasoning summary, ``reasoning_content``)."""

    kind: Literal["reasoning-delta"] = "reasoning-delta"
    delta: str
    """The reasoning text to append."""
    block_id: str | None = None
    """Id of the reasoning block."""


@dataclass(slots=True, kw_only=True)
class ReasoningSignature(BaseEvent):
    """The signature that seals a reasoning block (Anthropic ``signature_delta``, Gemini
    ``thoughtSignature``); pass it back to the provider unchanged on the next turn."""

    kind: Literal["reasoning-signature"] = "reasoning-signature"
    signature: str
    """Opaque signature text."""
    block_id: str | None = None
    """Id of the reasoning block it seals."""


@dataclass(slots=True, kw_only=True)
class RedactedReasoning(BaseEvent):
    """A reasoning block the provider encrypted (Anthropic ``redacted_thinking``)."""

    kind: Literal["redacted-reasoning"] = "redacted-reasoning"
    data: str
    """Opaque encrypted payload, to be passed back unchanged."""
    block_id: str | None = None
    """Id of the block."""


@dataclass(slots=True, kw_only=True)
class RefusalDelta(BaseEvent):
    """A piece of a refusal message (OpenAI ``delta.refusal``)."""

    kind: Literal["refusal-delta"] = "refusal-delta"
    delta: str
    """The refusal text to append."""
    block_id: str | None = None
    """Id of the block."""


@dataclass(slots=True, kw_only=True)
class ToolCallStart(BaseEvent):
    """The model has started a tool call."""

    kind: Literal["tool-call-start"] = "tool-call-start"
    call_id: str
    """The call's id; results are keyed by it, never by tool name."""
    name: str
    """The tool's name."""
    index: int | None = None
    """Position of the call in the response (OpenAI's ``tool_calls[].index``)."""


@dataclass(slots=True, kw_only=True)
class ToolCallDelta(BaseEvent):
    """A fragment of a tool call's JSON arguments."""

    kind: Literal["tool-call-delta"] = "tool-call-delta"
    call_id: str
    """The call this fragment belongs to."""
    delta: str
    """A fragment of the arguments' JSON text; fragments concatenate to the whole text."""
    index: int | None = None
    """Position of the call in the response."""


@dataclass(slots=True, kw_only=True)
class ToolCallEnd(BaseEvent):
    """A tool call is complete."""

    kind: Literal["tool-call-end"] = "tool-call-end"
    call_id: str
    """The call's id."""
    name: str
    """The tool's name."""
    arguments: str
    """The whole arguments as one JSON text (possibly invalid JSON if the model was cut off)."""
    index: int | None = None
    """Position of the call in the response."""


@dataclass(slots=True, kw_only=True)
class ToolResult(BaseEvent):
    """A tool call returned."""

    kind: Literal["tool-result"] = "tool-result"
    call_id: str
    """The call this result answers."""
    name: str
    """The tool's name."""
    result: Any = None
    """The returned value (JSON data for a lossless round trip)."""


@dataclass(slots=True, kw_only=True)
class ToolError(BaseEvent):
    """A tool call failed: bad arguments, an exception in the tool, or its timeout."""

    kind: Literal["tool-error"] = "tool-error"
    call_id: str
    """The call that failed."""
    name: str
    """The tool's name."""
    message: str
    """What went wrong, as sent back to the model."""
    error_type: str = "error"
    """Error class name or category (``ValidationError``, ``TimeoutError``...)."""


@dataclass(slots=True, kw_only=True)
class ToolProgress(BaseEvent):
    """A running tool reported progress."""

    kind: Literal["tool-progress"] = "tool-progress"
    call_id: str
    """The running call."""
    name: str
    """The tool's name."""
    data: Any = None
    """The progress payload (JSON data)."""


@dataclass(slots=True, kw_only=True)
class UsageEvent(BaseEvent):
    """Token usage reported (or estimated) mid-stream."""

    kind: Literal["usage"] = "usage"
    usage: Usage
    """The usage figures."""
    source: Literal["provider", "estimated"] = "provider"
    """``provider`` when the provider reported it, ``estimated`` when a tokenizer counted it."""
    cumulative: bool = True
    """True when the figures are totals so far (they replace earlier ones); False when they
    are increments to add."""

    def folded(self, total: Usage | None) -> Usage:
        """``total`` (the usage known before this report, ``None`` for none) with this report
        folded in: overlaid when :attr:`cumulative` (see :meth:`Usage.merged`), added when not.
        The one rule every consumer of usage reports follows (accumulate, token counters,
        the OpenAI chunk encoder)."""
        if total is None:
            return self.usage
        return total.merged(self.usage) if self.cumulative else total + self.usage


@dataclass(slots=True, kw_only=True)
class ErrorEvent(BaseEvent):
    """An error reported inside the stream (a provider ``error`` event, a failed response)."""

    kind: Literal["error"] = "error"
    error_type: str
    """The provider's error type or code (``overloaded_error``, ``insufficient_quota``...)."""
    message: str
    """Human-readable message."""
    code: str | None = None
    """A further code, when the provider gives one."""


@dataclass(slots=True, kw_only=True)
class CustomEvent(BaseEvent):
    """An application-defined event."""

    kind: Literal["custom"] = "custom"
    name: str
    """The application's name for the event."""
    data: Any = None
    """Its payload (JSON data for a lossless round trip)."""


@dataclass(slots=True, kw_only=True)
class AgentHandoff(BaseEvent):
    """Control of the run passed from one agent to another (an OpenAI Agents SDK handoff, a
    LangGraph graph moving to another node's agent). Events after it carry the new agent in
    their envelope's ``agent``; this event's own ``agent`` is the path of the agent handing off
    (``""`` when the run had no agent before)."""

    kind: Literal["agent-handoff"] = "agent-handoff"
    from_agent: str
    """The agent that had control (its path, as in ``agent``); ``""`` at the run's first agent."""
    to_agent: str
    """The agent that has control from now on (its path, as in ``agent``)."""


@dataclass(slots=True, kw_only=True)
class RawEvent(BaseEvent):
    """A provider payload that has no event kind of its own (an unknown event type, a built-in
    tool item): kept whole rather than dropped."""

    kind: Literal["raw"] = "raw"
    event_type: str | None = None
    """The provider's event type (SSE ``event:`` or payload ``type``), if any."""
    data: Any = None
    """The payload."""


@dataclass(slots=True, kw_only=True)
class ObjectDelta(BaseEvent):
    """A piece of a structured output's JSON, tagged with the path of the value it extends
    (``$.city``, ``$.items[2].name``): string values stream as text deltas, other scalars
    arrive whole when complete."""

    kind: Literal["object-delta"] = "object-delta"
    json_path: str
    """JSONPath of the value (``$`` is the root, ``.key`` a member, ``[i]`` an array item)."""
    delta: str
    """The new characters of a string value, or the JSON text of a completed scalar."""


@dataclass(slots=True, kw_only=True)
class PartialObject(BaseEvent):
    """The structured output parsed so far, emitted whenever a value completes: JSON data,
    not yet validated."""

    kind: Literal["partial-object"] = "partial-object"
    value: Any = None
    """The partial object as JSON data (dicts, lists, strings, numbers...)."""


@dataclass(slots=True, kw_only=True)
class FinalOutput(BaseEvent):
    """The run's structured output, validated against its output type (as JSON data)."""

    kind: Literal["final-output"] = "final-output"
    value: Any = None
    """The validated output, dumped to JSON data."""


BlockType: TypeAlias = Literal["text", "reasoning", "refusal", "tool-call"]
"""What a block holds: text, reasoning or refusal deltas, or one tool call's argument deltas."""


@dataclass(slots=True, kw_only=True)
class BlockEdge(BaseEvent):
    """What a block's start and end both say (the base of :class:`BlockStart` and
    :class:`BlockEnd`; not an event kind itself)."""

    block: BlockType = "text"
    """What the block holds."""
    block_id: str | None = None
    """The ``block_id`` of the block's deltas (text, reasoning, refusal blocks)."""
    call_id: str | None = None
    """The tool call's id (``tool-call`` blocks)."""
    name: str | None = None
    """The tool's name (``tool-call`` blocks; at the end, the call end's when it came)."""


@dataclass(slots=True, kw_only=True)
class BlockStart(BlockEdge):
    """A block of one run and agent opens: the deltas that follow (of its type and ids) belong
    to it until its :class:`BlockEnd`. Emitted by :func:`streamops.operators.blocks` (as
    pydantic-ai's ``PartStartEvent`` and the AI SDK's ``text-start``); providers never send it.
    Its envelope is that of the block's first event."""

    kind: Literal["block-start"] = "block-start"


@dataclass(slots=True, kw_only=True)
class BlockEnd(BlockEdge):
    """The block opened by the :class:`BlockStart` with the same type and ids is over. Its
    envelope is that of the block's last event."""

    kind: Literal["block-end"] = "block-end"


Event: TypeAlias = Union[  # noqa: UP007
    RunStart,
    RunEnd,
    StepStart,
    StepEnd,
    TextDelta,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RefusalDelta,
    ToolCallStart,
    ToolCallDelta,
    ToolCallEnd,
    ToolResult,
    ToolError,
    ToolProgress,
    UsageEvent,
    ErrorEvent,
    CustomEvent,
    AgentHandoff,
    RawEvent,
    ObjectDelta,
    PartialObject,
    FinalOutput,
    BlockStart,
    BlockEnd,
]
"""Any streamops event; ``kind`` tells which."""

_EVENT_CLASSES: tuple[type[BaseEvent], ...] = get_args(Event)


def _kind_of(cls: type[BaseEvent]) -> str:
    kind = cls.__dataclass_fields__["kind"].default
    assert isinstance(kind, str)
    return kind


EVENT_KINDS: dict[str, type[BaseEvent]] = {_kind_of(cls): cls for cls in _EVENT_CLASSES}
"""Map from ``kind`` to event class."""

_adapter: TypeAdapter[Any] | None = None


def event_adapter() -> TypeAdapter[Any]:
    """The pydantic ``TypeAdapter`` for the :data:`Event` union (built on first call)."""
    global _adapter
    if _adapter is None:
        from pydantic import Field, TypeAdapter

        union = Union[_EVENT_CLASSES]  # type: ignore[valid-type]  # noqa: UP007
        _adapter = TypeAdapter(Annotated[union, Field(discriminator="kind")])
    return _adapter


def _raise_validation(exc: Exception) -> EventValidationError:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        errs = exc.errors(include_url=False)
        parts = []
        for e in errs[:5]:
            loc = ".".join(str(p) for p in e["loc"]) or "<event>"
            parts.append(f"{loc}: {e['msg']}")
        more = f" (+{len(errs) - 5} more)" if len(errs) > 5 else ""
        return EventValidationError(
            "invalid event: " + "; ".join(parts) + more,
            [dict(e) for e in errs],
        )
    return EventValidationError(f"invalid event: {exc}")


def validate_event(data: Any) -> Event:
    """Validate Python data (a dict as produced by :func:`to_dict`, or an event) into an event.

    Raises:
        EventValidationError: ``data`` is not a valid event; the message names the fields.
    """
    from pydantic import ValidationError

    try:
        return event_adapter().validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise _raise_validation(exc) from exc


def from_json(data: str | bytes | bytearray) -> Event:
    """Decode one event from its JSON text (as written by :func:`to_json`).

    Raises:
        EventValidationError: the text is not JSON, or not a valid event (unknown ``kind``,
            missing or mistyped field); the message names the fields.
    """
    from pydantic import ValidationError

    try:
        return event_adapter().validate_json(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise _raise_validation(exc) from exc


def to_dict(event: BaseEvent) -> dict[str, Any]:
    """The event as JSON-ready Python data (``kind`` included)."""
    return event_adapter().dump_python(event, mode="json")  # type: ignore[no-any-return]


def to_json(event: BaseEvent) -> bytes:
    """The event as compact UTF-8 JSON text. :func:`from_json` reverses it losslessly.

    Never raises on text that is not valid Unicode: a lone UTF-16 surrogate (which UTF-8
    cannot hold; a hostile or broken provider payload kept in ``raw``) is written as U+FFFD.
    Data nested too deep to serialise (about 1,000 levels) is written as a short ``repr``
    string. Parsers never put a lone surrogate in an event's own fields (they join pairs
    split across deltas and replace the rest).

    Never raises or warns on any value in ``raw`` or ``RawEvent.data`` either: a pydantic
    model there (an SDK object kept as the provider's payload) is written as its fields even
    when pydantic cannot serialise it (an ``openai`` object built without validation by
    ``construct_type``, as ``openai-agents`` does, may hold a value its schema does not allow,
    on which pydantic warns, or belong to a class that is not fully defined, on which it
    raises); any other object pydantic cannot write is its ``repr``, and one whose ``repr``
    fails is ``"<TypeName>"``. Serializer warnings are off: a kept payload is never checked
    against a schema."""
    adapter = event_adapter()
    try:
        return adapter.dump_json(event, fallback=repr, warnings=False)
    except (ValueError, RecursionError):  # a lone surrogate (UnicodeEncodeError), nesting, a model
        pass
    names = [n for n in event.__dataclass_fields__ if n != "kind"]
    try:
        changes = {n: _plain(v) for n in names if not isinstance(v := getattr(event, n), _SCALARS)}
        return adapter.dump_json(derive(event, **changes), fallback=_repr, warnings=False)
    except (ValueError, RecursionError):  # nested too deep to walk: such values as a short repr
        changes = {n: _short(v) for n in names if not isinstance(v := getattr(event, n), _SCALARS)}
        return adapter.dump_json(derive(event, **changes), fallback=_repr, warnings=False)


_CONTAINERS = (str, dict, list, tuple)
_SCALARS = (int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """``value`` as data pydantic writes without a schema: strings with lone surrogates
    replaced, dicts, lists and tuples walked, a pydantic model as the dict of its fields (its
    ``__dict__`` and extra fields: what ``model_construct``/``construct_type`` stored, with no
    serializer involved); anything else unchanged (left to the ``repr`` fallback)."""
    if isinstance(value, str):
        return value if value.isascii() else _fix_surrogates(value)
    if isinstance(value, dict):
        return {_plain(k) if isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(type(value), "__pydantic_fields__"):
        fields = getattr(value, "__dict__", None)
        if isinstance(fields, dict):
            out = {k: _plain(v) for k, v in fields.items()}
            extra = getattr(value, "__pydantic_extra__", None)
            if isinstance(extra, dict):
                out.update((k, _plain(v)) for k, v in extra.items() if isinstance(k, str))
            return out
    return value


def _repr(value: Any) -> str:
    """The ``repr`` fallback of :func:`to_json`'s slow path: valid Unicode, and
    ``"<TypeName>"`` when ``repr`` itself fails."""
    try:
        return _fix_surrogates(repr(value))
    except Exception:
        return f"<{type(value).__name__}>"


def _short(value: Any) -> Any:
    import reprlib

    if isinstance(value, str):
        return _fix_surrogates(value)
    try:
        return _fix_surrogates(reprlib.repr(value))
    except Exception:
        return f"<{type(value).__name__}>"


def utf8(text: str) -> bytes:
    """``text`` as UTF-8 bytes; a lone UTF-16 surrogate (which UTF-8 cannot hold) becomes
    U+FFFD instead of raising ``UnicodeEncodeError``. What the sinks frame text with."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _fix_surrogates(text).encode("utf-8")


def model_json(model: Any, **dump: Any) -> str:
    """``model.model_dump_json(**dump)`` for a pydantic model (a protocol's own message
    models: AG-UI, A2A), with lone surrogates in its strings written as U+FFFD instead of
    raising (see :func:`to_json`).

    Raises:
        ValueError: pydantic's, for any failure other than a lone surrogate.
    """
    try:
        return model.model_dump_json(**dump)  # type: ignore[no-any-return]
    except ValueError as exc:
        if "surrogates not allowed" not in str(exc):  # only that; any other failure is the caller's
            raise
        import json

        dump.pop("fallback", None)
        data = _valid_text(model.model_dump(mode="python", **dump))
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=repr)


def json_bytes(value: Any) -> bytes:
    """JSON data (dicts, lists, strings, numbers: a protocol's frame) as compact UTF-8 JSON,
    serialised as :func:`to_json` serialises events: what pydantic cannot dump is written as
    its ``repr()``, a lone surrogate as U+FFFD, and NaN and infinities as ``null`` (JSON has
    no such numbers; ``JSON.parse`` rejects them). Never raises on a value's content."""
    from pydantic_core import to_json as dump

    try:
        return dump(value, fallback=repr, inf_nan_mode="null")
    except (ValueError, RecursionError):
        pass
    try:
        return dump(_valid_text(value), fallback=repr, inf_nan_mode="null")
    except (ValueError, RecursionError):
        return dump(_short(value), fallback=repr, inf_nan_mode="null")


def _fix_surrogates(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _valid_text(value: Any) -> Any:
    """``value`` (strings, and lists, tuples and dicts of them) with lone surrogates replaced."""
    if isinstance(value, str):
        return _fix_surrogates(value)
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_valid_text(v) for v in value]
    return value


E = TypeVar("E", bound=BaseEvent)

_COPIERS: dict[type[Any], Any] = {}


def _copier(cls: type[Any]) -> Any:
    # One generated function per class, ``copy(event, *, field=<unchanged>...)``, that fills a
    # new object's slots from the event's or from the keyword given (what the dataclass
    # constructor does, minus defaults): about 2.5x faster than ``dataclasses.replace``
    # (``benchmarks/bench_derive.py`` prints both). An unknown keyword is Python's own
    # ``TypeError``.
    from dataclasses import fields

    names = [f.name for f in fields(cls) if f.name != "kind"]
    params = ", ".join(f"{n}=_K" for n in names)
    body = "".join(f"    o.{n} = e.{n} if {n} is _K else {n}\n" for n in names)
    src = f"def derive(e, /, *, {params}):\n    o = new(cls)\n    o.kind = e.kind\n{body}    return o\n"
    ns: dict[str, Any] = {"new": object.__new__, "cls": cls, "_K": _KEEP}
    exec(src, ns)
    fn = _COPIERS[cls] = ns["derive"]
    return fn


_KEEP = object()


def derive(event: E, /, **changes: Any) -> E:
    """A new event of ``event``'s class with all of its fields (the envelope ``run_id``,
    ``agent``, ``parent_run_id``, ``seq``, ``ts``, ``raw`` included, and any field added later), then
    ``changes`` applied: ``derive(delta, delta="Hel")``.

    The one way to make an event from another: a copy that names the fields by hand would
    silently drop a field added to the envelope. ``event`` itself is not changed; ``kind``
    cannot be changed.

    Raises:
        TypeError: a name in ``changes`` is not a field of ``event``'s class (or is ``kind``).
    """
    copy = _COPIERS.get(event.__class__)
    if copy is None:
        copy = _copier(event.__class__)
    try:
        return copy(event, **changes)  # type: ignore[no-any-return]
    except TypeError as exc:
        bad = sorted(set(changes) - set(event.__class__.__dataclass_fields__)) or ["kind"]
        raise TypeError(f"derive(): {event.__class__.__name__} has no changeable field {bad[0]!r}") from exc


_DERIVERS: dict[tuple[type[Any], tuple[str, ...]], Any] = {}


def deriver(cls: type[E], *names: str) -> Callable[..., E]:
    """The hot-path form of :func:`derive` for events of exactly ``cls`` changing ``names``:
    ``f = deriver(TextDelta, "delta")`` then ``f(event, "Hel")`` is ``derive(event,
    delta="Hel")`` at the cost of the constructor's slot filling (about half of
    :func:`derive`'s; ``benchmarks/bench_derive.py`` prints both). Generated once per
    ``(cls, names)`` and cached. ``f`` must be given events of exactly ``cls``.

    Raises:
        TypeError: a name is not a field of ``cls`` (or is ``kind``).
    """
    key = (cls, names)
    fn = _DERIVERS.get(key)
    if fn is not None:
        return fn  # type: ignore[no-any-return]
    from dataclasses import fields

    all_names = [f.name for f in fields(cls)]
    for n in names:
        if n not in all_names or n == "kind":
            raise TypeError(f"deriver(): {cls.__name__} has no changeable field {n!r}")
    args = "".join(f", {n}" for n in names)
    body = "".join(f"    o.{n} = {n}\n" if n in names else f"    o.{n} = e.{n}\n" for n in all_names)
    src = f"def derive(e{args}):\n    o = new(cls)\n{body}    return o\n"
    ns: dict[str, Any] = {"new": object.__new__, "cls": cls}
    exec(src, ns)  # code built from the class's own field names only
    fn = _DERIVERS[key] = ns["derive"]
    return fn  # type: ignore[no-any-return]


ENVELOPE_FIELDS: tuple[str, ...] = tuple(n for n in BaseEvent.__dataclass_fields__)
"""The names of the envelope fields every event carries (those of :class:`BaseEvent`, in
order: ``run_id``, ``agent``, ``parent_run_id``, ``seq``, ``ts``, ``raw``, and any added later)."""


def _envelope_getter() -> Callable[[BaseEvent], dict[str, Any]]:
    # ``{"run_id": e.run_id, ...}`` as one generated dict display: about 3x faster than a
    # loop over getattr (every operator that builds an event of another class calls it).
    items = ", ".join(f"{n!r}: e.{n}" for n in ENVELOPE_FIELDS)
    ns: dict[str, Any] = {}
    exec(f"def envelope(e):\n    return {{{items}}}\n", ns)  # code built from BaseEvent's field names only
    return ns["envelope"]  # type: ignore[no-any-return]


_get_envelope = _envelope_getter()


def envelope(event: BaseEvent, /, **changes: Any) -> dict[str, Any]:
    """``event``'s envelope (every :data:`ENVELOPE_FIELDS` field: ``run_id``, ``agent``,
    ``parent_run_id``, ``seq``, ``ts``, ``raw`` and any added later) as keyword arguments for a new event of
    another class, with ``changes`` applied::

        ReasoningDelta(**envelope(text_delta), delta="hmm", block_id=text_delta.block_id)
        ErrorEvent(**envelope(last, seq=last.seq + 1, raw=None), error_type=..., message=...)

    The one way to build an event of a new class that stands for another (:func:`derive`
    keeps the class): a constructor call that names ``run_id=e.run_id, agent=e.agent, ...`` by
    hand would silently drop a field added to the envelope. Costs about a dict display
    (~0.2 us; ``benchmarks/bench_derive.py``).

    Raises:
        TypeError: a name in ``changes`` is not an envelope field.
    """
    env = _get_envelope(event)
    if changes:
        for name in changes:
            if name not in env:
                fields_ = ", ".join(ENVELOPE_FIELDS)
                raise TypeError(f"envelope(): {name!r} is not an envelope field (one of {fields_})")
        env.update(changes)
    return env
