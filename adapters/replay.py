"""A model that replays recorded SSE bodies: agent runs without a network, a key or a GPU.

:class:`ReplayModel` is a :class:`streamops.models.Model` whose ``n``-th ``stream(...)`` call
(step) plays the ``n``-th recorded response body, parsed by
:func:`~streamops.adapters.parse_sse` (any supported API, detected from the body unless
``api`` says it)::

    model = ReplayModel(["step1_tool_calls.sse", "step2_answer.sse"])
    # or: resolve_model("replay:step1_tool_calls.sse,step2_answer.sse")
    async for event in model.stream(messages, tools=tools, run_id="r1", agent="bot"): ...
    model.calls[0]["messages"]  # what the agent sent for step 1

The bodies are read when the model is built (they are small), so a missing file fails at once
and a replay does no I/O. With ``delay`` the events are spaced in time, so a replay looks like
a live stream (for demos, UIs, and time operators under test).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal, Unpack

import anyio

from streamops._stream import Stream
from streamops.errors import ReplayExhaustedError
from streamops.events import BaseEvent
from streamops.models import ModelCall, StreamOptions

from . import API, parse_sse

__all__ = ["ReplayExhaustedError", "ReplayModel"]


class ReplayModel:
    """Replays recorded SSE response bodies, one per ``stream(...)`` call.

    Args:
        paths: the recorded bodies, in call order: call ``n`` (from 0) plays ``paths[n]``.
        api: the bodies' wire API (``"openai-chat"``, ``"openai-responses"``,
            ``"anthropic"``, ``"gemini"``); default detected from each body.
        delay: seconds to wait before each event after the first (``anyio.sleep``), so the
            replay unfolds like a live stream; ``0`` plays it at once.

    Attributes:
        name: ``"replay"``.
        calls: one dict per ``stream(...)`` call, in order, with what it was called with:
            ``messages`` (a deep copy, as sent), ``tools`` (the :class:`ToolSpec` list),
            ``output_schema``, ``run_id``, ``agent``. A call past the last body is recorded
            too, before it raises.

    Raises:
        OSError: a body cannot be read (``FileNotFoundError``...).
        ValueError: ``paths`` is empty, or ``delay`` is negative.
    """

    name: str = "replay"

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        api: API | Literal["auto"] = "auto",
        delay: float = 0.0,
    ) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise ValueError("ReplayModel needs at least one recorded body")
        if delay < 0:
            raise ValueError(f"delay must be >= 0, not {delay}")
        self.paths: list[Path] = [Path(p) for p in paths]
        self.api: API | Literal["auto"] = api
        self.delay = delay
        self.calls: list[dict[str, Any]] = []
        self._bodies = [p.read_bytes() for p in self.paths]
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int:
        """How many recorded bodies are left to play."""
        return max(0, len(self._bodies) - len(self.calls))

    def stream(self, messages: Sequence[Mapping[str, Any]], **options: Unpack[StreamOptions]) -> Stream[BaseEvent]:
        """The events of the next recorded body, with this ``run_id`` (default: a fresh uuid
        hex per iteration) and ``agent``.

        The call is recorded in :attr:`calls` and takes its body now; the returned stream is
        lazy and re-iterable (each iteration plays that same body again). ``tools`` and
        ``output_schema`` are only recorded: the body says what the model answered.

        Raises:
            ReplayExhaustedError: every recorded body has been played (this is call
                ``len(paths) + 1`` or later).
        """
        call = ModelCall.of(messages, options)
        tools, output_schema, run_id, agent = call.tools, call.output_schema, call.run_id, call.agent
        with self._lock:
            n = len(self.calls)
            self.calls.append(
                {
                    "messages": copy.deepcopy([dict(m) for m in messages]),
                    "tools": list(tools),
                    "output_schema": None if output_schema is None else copy.deepcopy(dict(output_schema)),
                    "run_id": run_id,
                    "agent": agent,
                }
            )
        if n >= len(self._bodies):
            raise ReplayExhaustedError(
                f"ReplayModel has {len(self._bodies)} recorded bodies and this is call {n + 1}: "
                f"the agent asked for more steps than were recorded ({', '.join(map(str, self.paths))})"
            )
        events = parse_sse(self._bodies[n], api=self.api, run_id=run_id, agent=agent)
        if self.delay <= 0:
            return events
        return Stream(_Delayed(events, self.delay))


class _Delayed:
    """Re-iterable source: the events of ``events``, ``delay`` seconds apart."""

    __slots__ = ("_delay", "_events")

    def __init__(self, events: Stream[BaseEvent], delay: float) -> None:
        self._events = events
        self._delay = delay

    def __aiter__(self) -> AsyncGenerator[BaseEvent, None]:
        return self._play()

    async def _play(self) -> AsyncGenerator[BaseEvent, None]:
        first = True
        async with aclosing(self._events.__aiter__()) as it:  # no task group across a yield (PEP 789)
            async for event in it:
                if not first:
                    await anyio.sleep(self._delay)
                first = False
                yield event
