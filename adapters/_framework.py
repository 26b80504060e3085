"""The shared part of the agent-framework adapters (openai-agents, pydantic-ai, LangChain):
a sans-IO base that tracks steps and tool calls, and the one async driver that reads a
framework's stream, turns an exception raised mid-stream into a typed :class:`ErrorEvent`
(after every event before it) and closes the framework's run when the consumer stops early.

Framework objects are never imported here: each adapter module imports its framework lazily.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import anyio

from streamops.events import (
    BaseEvent,
    ErrorEvent,
    StepEnd,
    StepStart,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)

from ._base import ParserBase


def args_text(args: Any) -> str:
    """A tool call's arguments as JSON text (``None`` -> ``""``; a ``str`` as it is)."""
    if args is None:
        return ""
    if isinstance(args, str):
        return args
    return json.dumps(args, separators=(",", ":"), ensure_ascii=False, default=repr)


class FrameworkParser(ParserBase):
    """Sans-IO base of the framework adapters: ``feed(obj)`` maps one framework stream object
    to events (``on_payload(None, obj)``), ``fail(exc)`` reports an exception raised by the
    framework, ``close()`` ends the run. Step and tool-call bookkeeping lives here:
    :meth:`open_step` / :meth:`close_step` emit :class:`StepStart` / :class:`StepEnd` once per
    step, :meth:`call_start` / :meth:`call_delta` / :meth:`call_end` emit a tool call's events
    at most once each (a call already ended is never ended again)."""

    api: ClassVar[str] = "framework"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.started = False
        self.step = -1
        self.in_step = False
        self.calls_started: set[str] = set()
        self.calls_ended: set[str] = set()
        self.call_parts: dict[str, list[str]] = {}
        self.call_names: dict[str, str] = {}

    def feed(self, obj: Any) -> list[BaseEvent]:
        """Map one object of the framework's stream; return the new events."""
        return self.feed_payload(obj)

    # ---------------------------------------------------------------- steps
    def open_step(self, raw: Any = None) -> None:
        """Start the next step unless one is open."""
        if not self.in_step:
            self.step += 1
            self.in_step = True
            self.emit(StepStart, raw, step=self.step)

    def close_step(self, raw: Any = None, finish_reason: Any = None) -> None:
        """End the open step, if any."""
        if self.in_step:
            self.in_step = False
            self.emit(StepEnd, raw, step=self.step, finish_reason=finish_reason)

    # ---------------------------------------------------------------- tool calls
    def call_start(self, raw: Any, call_id: str, name: str, index: int | None = None) -> None:
        """Emit the call's :class:`ToolCallStart` once."""
        if call_id not in self.calls_started:
            self.calls_started.add(call_id)
            self.call_parts[call_id] = []
            self.call_names[call_id] = name
            self.emit(ToolCallStart, raw, call_id=call_id, name=name, index=index)

    def call_delta(self, raw: Any, call_id: str, delta: str, index: int | None = None) -> None:
        """Emit a :class:`ToolCallDelta` (an empty delta is skipped)."""
        if delta and call_id not in self.calls_ended:
            self.call_parts.setdefault(call_id, []).append(delta)
            self.emit(ToolCallDelta, raw, call_id=call_id, delta=delta, index=index)

    def call_end(self, raw: Any, call_id: str, name: str, arguments: str | None, index: int | None = None) -> None:
        """Emit the call's :class:`ToolCallEnd` once (its start first if it was never
        streamed); ``arguments=None`` means "the deltas seen"."""
        if call_id in self.calls_ended:
            return
        if call_id not in self.calls_started:
            self.call_start(raw, call_id, name, index)
            if arguments:
                self.call_delta(raw, call_id, arguments, index)
        if arguments is None:
            arguments = "".join(self.call_parts.get(call_id, ()))
        name = name or self.call_names.get(call_id, "")
        self.calls_ended.add(call_id)
        self.emit(ToolCallEnd, raw, call_id=call_id, name=name, arguments=arguments, index=index)

    # ---------------------------------------------------------------- errors and end
    def fail(self, exc: BaseException) -> list[BaseEvent]:
        """The framework raised ``exc`` mid-run: an :class:`ErrorEvent` (``error_type`` = the
        exception's class name, ``raw`` = the exception), then the failed run end."""
        self.out = []
        if not self.ended:
            if not self.started:
                self.started = True
                self.start_run(None, None, None, "model", "run_id")
            self.close_step()
            self.emit(ErrorEvent, exc, error_type=type(exc).__name__, message=str(exc) or type(exc).__name__)
            self.end_run(status="failed", finish_reason="error")
        return self.out

    def on_close(self) -> None:
        """The framework's stream ended: close the open step and end the run (completed)."""
        self.close_step()
        self.end_run(status="completed")


async def drive_framework(
    parser: FrameworkParser,
    source: AsyncIterable[Any],
    cancel: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[BaseEvent, None]:
    """The events of a framework's stream: each object fed to ``parser``; an ``Exception``
    raised by the framework becomes an :class:`ErrorEvent` and a failed :class:`RunEnd`
    (events before it are kept); then ``parser.close()``. An exception of the parser itself
    (:class:`~streamops.errors.StreamFormatError` on malformed input) propagates. When the consumer stops before the
    end (``aclose()``, ``break``, cancellation), ``cancel()`` is awaited, which cancels the
    framework's run (and so closes its HTTP request)."""
    it: AsyncIterator[Any] = aiter(source)
    done = False
    try:
        while True:
            try:
                obj = await anext(it)
            except StopAsyncIteration:
                break
            except Exception as exc:
                for ev in parser.fail(exc):
                    yield ev
                break
            for ev in parser.feed(obj):
                yield ev
        for ev in parser.close():
            yield ev
        done = True
    finally:
        with anyio.CancelScope(shield=True):
            if not done and cancel is not None:
                await cancel()
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
