"""streamops: LLM agent runs as composable, typed, async event streams.

The names users write daily are re-exported here (``Stream``, the events, the operators,
``Agent``, ``tool``); ``__all__`` lists them (a test keeps it honest). The rest is public in its
own module: the typed errors in ``streamops.errors`` (``from streamops.errors import
StreamFormatError``), parser and codec internals in theirs (``streamops.jsonstream``,
``streamops.sse``, ``streamops.operators.text``). Every operator of ``streamops.operators`` is
here (``__all__`` takes their names from ``streamops.operators.__all__``). Optional parts
import their dependencies lazily: ``streamops.rx`` (reactivex), ``streamops.adapters``
(provider SDKs).
"""

from . import events, operators
from ._stream import Operator, Stage, StageComplete, Stream
from .agent import Agent, AgentStream, Hooks, RunResult
from .events import (
    AgentHandoff,
    BaseEvent,
    CustomEvent,
    ErrorEvent,
    Event,
    FinalOutput,
    FinishReason,
    ObjectDelta,
    PartialObject,
    RawEvent,
    ReasoningDelta,
    ReasoningSignature,
    RedactedReasoning,
    RefusalDelta,
    RunEnd,
    RunStart,
    RunStatus,
    StepEnd,
    StepStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolError,
    ToolProgress,
    ToolResult,
    Usage,
    UsageEvent,
    from_json,
    to_json,
)
from .models import Model, ToolSpec
from .operators import *  # noqa: F403  (every operator: listed once, in operators.__all__)
from .operators.combine import task_scope
from .tools import Tool, ToolContext, tool

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentHandoff",
    "AgentStream",
    "BaseEvent",
    "CustomEvent",
    "ErrorEvent",
    "Event",
    "FinalOutput",
    "FinishReason",
    "Hooks",
    "Model",
    "ObjectDelta",
    "Operator",
    "PartialObject",
    "RawEvent",
    "ReasoningDelta",
    "ReasoningSignature",
    "RedactedReasoning",
    "RefusalDelta",
    "RunEnd",
    "RunResult",
    "RunStart",
    "RunStatus",
    "Stage",
    "StageComplete",
    "StepEnd",
    "StepStart",
    "Stream",
    "TextDelta",
    "Tool",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolContext",
    "ToolError",
    "ToolProgress",
    "ToolResult",
    "ToolSpec",
    "Usage",
    "UsageEvent",
    "__version__",
    "events",
    "from_json",
    "task_scope",
    "to_json",
    "tool",
]
__all__ += operators.__all__
__all__.sort()
