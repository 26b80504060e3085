"""OpenAI Agents SDK runs (``Runner.run_streamed(agent, input)``) -> streamops events.

Source: the ``RunResultStreaming`` itself (the stream reads its ``stream_events()``), or the
async iterator of ``stream_events()``. The SDK is imported lazily (only its objects are read,
by class name and attribute).

Mapping (the SDK's object is each event's ``raw``):

- the first event -> :class:`RunStart`;
- ``RawResponsesStreamEvent``: its ``data`` (a Responses streaming event) is parsed by
  :class:`~streamops.adapters.openai_responses.ResponsesParser`, a fresh one per model call
  (each ``response.created`` starts one), so a run of several model calls keeps every call:
  the call's run start -> :class:`StepStart` (step numbers from 0), its run end ->
  :class:`StepEnd` (finish reason, raw finish reason and usage of that call), everything
  between (text, reasoning, tool calls with argument deltas and ids, usage, errors) as the
  Responses parser maps it, re-stamped with this run's ``run_id``, ``agent`` and ``seq``;
- ``RunItemStreamEvent`` ``tool_output`` -> :class:`ToolResult` (``call_id`` = the raw item's
  ``call_id``); ``handoff_occured`` / ``handoff_requested`` / ``tool_called`` /
  ``message_output_created`` / ``reasoning_item_created`` and other items ->
  :class:`RawEvent` (``event_type`` = the item event name; their content was already streamed);
- ``AgentUpdatedStreamEvent`` -> :class:`AgentHandoff` (``from_agent`` ""  at the run's first
  agent, then the agent handing off; ``to_agent`` the new agent's name, under the ``agent``
  option's path when one is given); events after it carry the new agent as ``agent`` (a
  handoff replaces the last name of the path: it is the same run, not a sub-run);
- with ``sub_runs=`` (a :class:`~streamops.adapters.SubRuns` also given as ``on_stream=`` to
  ``Agent.as_tool``): each agent used as a tool streams its own run inside this one, mapped
  as above with its own ``run_id``, ``parent_run_id`` = this run's, ``agent`` =
  ``"<parent agent>/<tool agent>"``, ended (:class:`RunEnd`) just before the call's
  :class:`ToolResult`;
- the end of the stream -> :class:`FinalOutput` (``final_output`` of the run, when the source
  is the ``RunResultStreaming``) and :class:`RunEnd` (usage summed over the model calls, the
  last call's finish reason); an exception raised by the SDK (``MaxTurnsExceeded``, a
  guardrail, an HTTP error) -> :class:`ErrorEvent` and a failed :class:`RunEnd`, after every
  event before it.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, ClassVar, Unpack

import streamops.events as ev
from streamops._stream import Stream

from ._base import ParserOptions
from ._framework import FrameworkParser, SubRuns, drive_framework
from .openai_responses import ResponsesParser

__all__ = ["OpenAIAgentsParser", "from_openai_agents", "is_openai_agents_run"]


class OpenAIAgentsParser(FrameworkParser):
    """Sans-IO parser of ``RunResultStreaming.stream_events()`` objects (see the module
    docstring): ``feed(event)`` -> events, ``fail(exc)``, ``close()``."""

    api: ClassVar[str] = "openai-agents"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._inner: ResponsesParser | None = None
        self._usage: ev.Usage | None = None
        self._raw_finish: str | None = None
        self.final_output: Any = None
        self.has_final_output = False

    def on_payload(self, event_type: str | None, event: Any) -> None:
        """Map one ``stream_events()`` object."""
        self.start_once(event)
        name = type(event).__name__
        if name == "RawResponsesStreamEvent":
            self._raw(event)
        elif name == "RunItemStreamEvent":
            self._item(event)
        elif name == "AgentUpdatedStreamEvent":
            self.switch_agent(event, str(getattr(event.new_agent, "name", "") or ""))
        else:
            self.unknown(name, event)

    def _raw(self, event: Any) -> None:
        data = event.data
        ptype = getattr(data, "type", None)
        if type(ptype) is str and ptype.endswith(".delta"):
            # a delta event's fields are plain values: its attribute dict is the payload (a
            # model_dump costs more than the rest of the event's way through the adapter)
            payload: Any = data.__dict__
        elif hasattr(data, "model_dump"):
            payload = data.model_dump(mode="json", exclude_unset=True)
        else:
            payload = data
            ptype = payload.get("type") if isinstance(payload, dict) else None
        inner = self._inner
        if inner is None or ptype == "response.created":
            inner = self._inner = ResponsesParser(
                run_id=self.run_id, agent=self.agent, parent_run_id=self.parent_run_id, keep_raw=self.keep_raw
            )
        # the inner parser numbers its events from this run's seq, with this run's agent; its
        # run start and run end become this run's step start and step end (same seq)
        inner.seq = self.seq
        inner.agent = self.agent
        raw = event if self.keep_raw else None
        out = self.out
        for e in inner.feed_payload(payload):
            if isinstance(e, ev.RunStart):
                self.step += 1
                e = ev.StepStart(**ev.envelope(e), step=self.step)
            elif isinstance(e, ev.RunEnd):
                if e.usage is not None:
                    self._usage = e.usage if self._usage is None else self._usage + e.usage
                self._raw_finish = e.raw_finish_reason
                e = ev.StepEnd(
                    **ev.envelope(e),
                    step=self.step,
                    finish_reason=e.finish_reason,
                    raw_finish_reason=e.raw_finish_reason,
                    usage=e.usage,
                )
                self._inner = None
            elif isinstance(e, ev.ToolCallStart):
                self.calls_started.add(e.call_id)  # the sub-runs it may start are found by it
            e.raw = raw
            out.append(e)
        self.seq = inner.seq

    def _item(self, event: Any) -> None:
        item = event.item
        if event.name == "tool_output":
            raw_item = item.raw_item
            call_id = raw_item.get("call_id") if isinstance(raw_item, dict) else getattr(raw_item, "call_id", None)
            name = str(getattr(getattr(item, "agent", None), "name", "") or "")
            tool = getattr(item, "tool_name", None) or name
            self.end_sub_run(str(call_id or ""))
            self.emit(ev.ToolResult, event, call_id=str(call_id or ""), name=str(tool), result=item.output)
        else:
            self.unknown(str(event.name), event)

    def set_final_output(self, value: Any) -> None:
        """Record the run's final output (emitted as :class:`FinalOutput` at the end)."""
        self.final_output = value
        self.has_final_output = True

    def on_close(self) -> None:
        """The stream ended: the final output, then the run end."""
        if self.has_final_output:
            self.emit(ev.FinalOutput, None, value=self.final_output)
        self.end_run(status="completed", raw_finish_reason=self._raw_finish, usage=self._usage)


def is_openai_agents_run(obj: Any) -> bool:
    """True for a ``RunResultStreaming`` (checked by class, without importing the SDK)."""
    return type(obj).__name__ == "RunResultStreaming" and type(obj).__module__.startswith("agents")


def from_openai_agents(
    run: Any, *, sub_runs: SubRuns | None = None, **options: Unpack[ParserOptions]
) -> Stream[ev.BaseEvent]:
    """A stream of the events of an OpenAI Agents SDK run: ``run`` is
    ``Runner.run_streamed(agent, input)`` (a ``RunResultStreaming``), or its
    ``stream_events()`` iterator (then no :class:`FinalOutput`). ``options``: ``run_id``,
    ``agent``, ``parent_run_id``, ``keep_raw`` (:class:`ParserOptions`). ``sub_runs``: the
    :class:`~streamops.adapters.SubRuns` given as ``on_stream=`` to the run's
    ``Agent.as_tool(...)`` tools, whose runs then stream inside this one (see the module
    docstring).

    Emits, completes and fails as every framework adapter (docs/frameworks.md). Cancels:
    stopping early calls the run's ``cancel()`` (its task is cancelled and its HTTP request
    closed) and closes the iterator.
    """
    return Stream.defer(_drive, run, options, sub_runs)


async def _drive(run: Any, options: ParserOptions, sub_runs: SubRuns | None) -> Any:
    parser = OpenAIAgentsParser(**options)
    result = run if hasattr(run, "stream_events") else None
    source = run.stream_events() if result is not None else run

    async def _cancel() -> None:
        if result is not None:
            result.cancel()

    async with aclosing(drive_framework(parser, _Final(source, result, parser), _cancel, sub_runs)) as events:
        async for event in events:
            yield event


class _Final:
    """The source, with the run's ``final_output`` handed to the parser when it ends."""

    def __init__(self, source: Any, result: Any, parser: OpenAIAgentsParser) -> None:
        self._source = source
        self._result = result
        self._parser = parser

    def __aiter__(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        async with aclosing(self._source) as src:
            async for event in src:
                yield event
        if self._result is not None and self._result.is_complete:
            self._parser.set_final_output(self._result.final_output)
