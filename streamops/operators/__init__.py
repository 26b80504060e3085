"""Operators over streams, one module per family (select, transform, aggregate, ...).

Everything listed here is also exported by the top-level ``streamops`` package (its
``__all__`` includes this one's). Sans-IO helpers stay public in their family's module only
(``streamops.operators.text.ThinkTagSplitter``); the errors operators raise are in
``streamops.errors``."""

from .aggregate import Accumulator, ErrorInfo, Message, ToolCall, accumulate, assemble
from .blocks import BlockSplitter, blocks
from .combine import concat, merge
from .errors import errors_as_events
from .metrics import RunStats, StreamMetrics, metrics
from .select import filter, of_agent, of_type, take, take_until
from .share import DROPPED_DELTAS, Shared, share, tee
from .structured import structured
from .text import smooth, think_tags
from .time import batch, debounce, throttle, timeout
from .tokens import TokenCount, TokenCounter, budget, count_tokens
from .transform import Sequencer, map, restamp, scan, tap

__all__ = [
    "Accumulator",
    "BlockSplitter",
    "DROPPED_DELTAS",
    "ErrorInfo",
    "Message",
    "RunStats",
    "Sequencer",
    "Shared",
    "StreamMetrics",
    "TokenCount",
    "TokenCounter",
    "ToolCall",
    "accumulate",
    "assemble",
    "batch",
    "blocks",
    "budget",
    "concat",
    "count_tokens",
    "debounce",
    "errors_as_events",
    "filter",
    "map",
    "merge",
    "metrics",
    "of_agent",
    "of_type",
    "restamp",
    "scan",
    "share",
    "smooth",
    "structured",
    "take",
    "take_until",
    "tap",
    "tee",
    "think_tags",
    "throttle",
    "timeout",
]
