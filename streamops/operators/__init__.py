"""Operators over streams, one module per family (select, transform, aggregate, ...)."""

from .aggregate import Accumulator, ErrorInfo, Message, ToolCall, accumulate, assemble
from .select import filter, of_type, take, take_until
from .text import smooth
from .transform import map, scan, tap

__all__ = [
    "Accumulator",
    "ErrorInfo",
    "Message",
    "ToolCall",
    "accumulate",
    "assemble",
    "filter",
    "map",
    "of_type",
    "scan",
    "smooth",
    "take",
    "take_until",
    "tap",
]
