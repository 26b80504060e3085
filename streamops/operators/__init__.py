"""Operators over streams, one module per family (select, transform, aggregate, ...)."""

from .aggregate import Accumulator, ErrorInfo, Message, ToolCall, accumulate, assemble
from .blocks import BlockSplitter, blocks
from .combine import concat, merge
from .errors import errors_as_events
from .metrics import RunStats, StreamMetrics, metrics
from .select import filter, of_type, take, take_until
from .share import DROPPED_DELTAS, ReplayUnavailableError, Shared, SlowConsumerError, share, tee
from .structured import structured
from .text import ThinkTagSplitter, smooth, think_tags
from .time import batch, debounce, throttle, timeout
from .tokens import TokenCount, TokenCounter, budget, count_tokens
from .transform import map, scan, tap

__all__ = [
    "Accumulator",
    "BlockSplitter",
    "DROPPED_DELTAS",
    "ErrorInfo",
    "Message",
    "ReplayUnavailableError",
    "RunStats",
    "Shared",
    "SlowConsumerError",
    "StreamMetrics",
    "ThinkTagSplitter",
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
    "of_type",
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
