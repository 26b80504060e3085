"""LangChain / LangGraph runs -> streamops events.

Source: ``runnable.astream_events(input, version="v2")`` of any LangChain runnable (a chat
model, a chain, a LangGraph graph), as the async iterator of event dicts it returns.
langchain-core is not imported here: the events are read by their documented keys
(``event``, ``name``, ``run_id``, ``parent_ids``, ``data``; LangChain docs, "Streaming" ->
"astream_events v2") and message chunks by their attributes.

Mapping (the LangChain event dict is each event's ``raw``):

- the first event -> :class:`RunStart`; the root runnable's ``on_chain_end`` (the one with no
  ``parent_ids``) -> :class:`FinalOutput` (its ``output``), then the run end;
- ``on_chat_model_start`` -> :class:`StepStart` (one step a chat model call, numbered in
  order of start; ``block_id`` of its deltas = the model call's ``run_id``);
- ``on_chat_model_stream``: an ``AIMessageChunk``'s ``content`` (a string, or content blocks
  ``text`` / ``reasoning`` / ``thinking``) -> :class:`TextDelta` / :class:`ReasoningDelta`;
  its ``tool_call_chunks`` -> :class:`ToolCallStart` (at the chunk with the id and name) and
  :class:`ToolCallDelta` (later chunks are tied to the call by their ``index``); other
  content blocks -> :class:`RawEvent`;
- ``on_chat_model_end`` -> :class:`ToolCallEnd` for each of the message's ``tool_calls`` (the
  arguments as streamed; as JSON text for a call that was not streamed),
  :class:`UsageEvent` from ``usage_metadata`` (per call, not cumulative) and :class:`StepEnd`
  (``finish_reason`` from ``response_metadata``);
- ``on_tool_end`` -> :class:`ToolResult` (``call_id`` = the ``ToolMessage``'s
  ``tool_call_id``; a ``ToolMessage`` with ``status="error"`` -> :class:`ToolError`);
  ``on_tool_error`` -> :class:`ToolError` (``error_type`` = the exception's class name);
- ``on_custom_event`` -> :class:`CustomEvent`; every other event (``on_chain_*`` of inner
  runnables, ``on_tool_start``, ``on_chain_stream``, retrievers, prompts) -> :class:`RawEvent`
  (``event_type`` = the event name), never dropped;
- the end of the iterator -> :class:`RunEnd` (the summed usage of the model calls, the last
  call's finish reason); an exception raised by the iterator -> :class:`ErrorEvent` and a
  failed :class:`RunEnd`, after every event before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, ClassVar, Unpack

import streamops.events as ev
from streamops._stream import Stream

from ._base import ParserOptions, normalize_finish_reason
from ._framework import FrameworkParser, agen_from, args_text, drive_framework, join_path

__all__ = [
    "LangChainParser",
    "LangGraphParser",
    "from_langchain",
    "from_langgraph",
    "is_langchain_events",
    "is_langgraph_stream",
]


class _Model:
    __slots__ = ("calls", "step")

    def __init__(self, step: int) -> None:
        self.step = step
        self.calls: dict[int, str] = {}  # tool call chunk index -> call_id


class LangChainParser(FrameworkParser):
    """Sans-IO parser of ``astream_events(version="v2")`` dicts (see the module docstring for
    the mapping): ``feed(event)`` -> events, ``fail(exc)``, ``close()``."""

    api: ClassVar[str] = "langchain"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._models: dict[str, _Model] = {}
        self._usage: ev.Usage | None = None
        self._raw_finish: str | None = None
        self._root: str | None = None

    def on_payload(self, event_type: str | None, event: Any) -> None:
        """Map one ``astream_events`` v2 event dict."""
        if type(event) is not dict or not isinstance(event.get("event"), str):
            self.malformed(f"langchain: not an astream_events v2 event: {type(event).__name__}", repr(event)[:200])
            return
        if not self.started:
            self.started = True
            self._root = str(event.get("run_id"))
            self.emit_start(event)
        kind: str = event["event"]
        data = event.get("data") or {}
        run_id = str(event.get("run_id"))
        if kind == "on_chat_model_stream":
            self._chunk(event, run_id, data.get("chunk"))
        elif kind == "on_chat_model_start":
            self.step += 1
            self._models[run_id] = _Model(self.step)
            self.emit(ev.StepStart, event, step=self.step)
        elif kind == "on_chat_model_end":
            self._model_end(event, run_id, data.get("output"))
        elif kind == "on_tool_end":
            self._tool_end(event, data)
        elif kind == "on_tool_error":
            err = data.get("error")
            self.emit(
                ev.ToolError,
                event,
                call_id=str(data.get("tool_call_id") or run_id),
                name=str(event.get("name") or ""),
                message=str(err),
                error_type=type(err).__name__,
            )
        elif kind == "on_custom_event":
            self.emit(ev.CustomEvent, event, name=str(event.get("name") or ""), data=data)
        elif kind == "on_chain_end" and run_id == self._root and not event.get("parent_ids"):
            self.emit(ev.FinalOutput, event, value=data.get("output"))
        else:
            self.unknown(kind, event)

    def emit_start(self, event: dict[str, Any]) -> None:
        self.start_run(event, None, None, "name", "run_id")

    def _chunk(self, event: dict[str, Any], run_id: str, chunk: Any) -> None:
        model = self._models.get(run_id)
        if model is None:  # a stream event without its start: a step of its own
            self.step += 1
            model = self._models[run_id] = _Model(self.step)
            self.emit(ev.StepStart, event, step=model.step)
        content = getattr(chunk, "content", None)
        if isinstance(content, str):
            if content:
                self.emit(ev.TextDelta, event, delta=content, block_id=run_id)
        elif isinstance(content, list):
            for block in content:
                self._block(event, run_id, block)
        for tc in getattr(chunk, "tool_call_chunks", None) or ():
            index = tc.get("index")
            key = index if isinstance(index, int) else len(model.calls)
            call_id = model.calls.get(key)
            if call_id is None:
                call_id = model.calls[key] = str(tc.get("id") or f"{run_id}:{key}")
                self.call_start(event, call_id, str(tc.get("name") or ""), key)
            self.call_delta(event, call_id, args_text(tc.get("args")), key)

    def _block(self, event: dict[str, Any], run_id: str, block: Any) -> None:
        if isinstance(block, str):
            if block:
                self.emit(ev.TextDelta, event, delta=block, block_id=run_id)
            return
        btype = block.get("type") if isinstance(block, dict) else None
        if btype == "text" and isinstance(block.get("text"), str):
            if block["text"]:
                self.emit(ev.TextDelta, event, delta=block["text"], block_id=run_id)
        elif btype in ("reasoning", "thinking") and isinstance(block.get(btype), str):
            if block[btype]:
                self.emit(ev.ReasoningDelta, event, delta=block[btype], block_id=f"{run_id}:reasoning")
        else:
            self.unknown("content_block", event)

    def _model_end(self, event: dict[str, Any], run_id: str, msg: Any) -> None:
        model = self._models.pop(run_id, None)
        step = model.step if model is not None else self.step
        for k, tc in enumerate(getattr(msg, "tool_calls", None) or ()):
            call_id = str(tc.get("id") or (model.calls.get(k) if model is not None else None) or f"{run_id}:{k}")
            streamed = call_id in self.calls_started
            self.call_end(event, call_id, str(tc.get("name") or ""), None if streamed else args_text(tc.get("args")), k)
        um = getattr(msg, "usage_metadata", None)
        usage = None
        if um:
            details = um.get("output_token_details") or {}
            idetails = um.get("input_token_details") or {}
            usage = ev.Usage(
                input_tokens=um.get("input_tokens"),
                output_tokens=um.get("output_tokens"),
                reasoning_tokens=details.get("reasoning"),
                cache_read_tokens=idetails.get("cache_read"),
                cache_write_tokens=idetails.get("cache_creation"),
            )
            self._usage = usage if self._usage is None else self._usage + usage
            self.emit(ev.UsageEvent, event, usage=usage, cumulative=False)
        meta = getattr(msg, "response_metadata", None) or {}
        raw_finish = meta.get("finish_reason") or meta.get("stop_reason")
        raw_finish = raw_finish if isinstance(raw_finish, str) else None
        self._raw_finish = raw_finish
        self.emit(
            ev.StepEnd,
            event,
            step=step,
            finish_reason=normalize_finish_reason(raw_finish),
            raw_finish_reason=raw_finish,
            usage=usage,
        )

    def _tool_end(self, event: Any, data: dict[str, Any]) -> None:
        out: Any = data.get("output")
        info = event if type(event) is dict else {}
        call_id = getattr(out, "tool_call_id", None) or data.get("tool_call_id") or str(info.get("run_id"))
        name = str(getattr(out, "name", None) or info.get("name") or "")
        if getattr(out, "status", None) == "error":
            self.emit(ev.ToolError, event, call_id=call_id, name=name, message=str(out.content), error_type="error")
        else:
            result = out.content if type(out).__name__ == "ToolMessage" else out
            self.emit(ev.ToolResult, event, call_id=call_id, name=name, result=result)

    def on_close(self) -> None:
        """The iterator ended: the run end with the summed usage and the last finish reason."""
        self.end_run(status="completed", raw_finish_reason=self._raw_finish, usage=self._usage)


class LangGraphParser(LangChainParser):
    """Sans-IO parser of LangGraph ``graph.astream(input, stream_mode=["messages", "updates",
    "custom"], subgraphs=True)`` items, ``(namespace, mode, data)`` tuples (a 2-tuple
    ``(mode, data)`` without ``subgraphs``):

    - ``messages`` with an ``AIMessageChunk``: as ``on_chat_model_stream`` above, one step per
      message id (:class:`StepStart` at its first chunk; :class:`StepEnd` with the message's
      finish reason and usage, after the :class:`ToolCallEnd` of its calls, when a chunk
      says ``chunk_position="last"``, another message starts, or the stream ends);
    - ``messages`` with a ``ToolMessage`` -> :class:`ToolResult` (``status="error"`` ->
      :class:`ToolError`);
    - ``custom`` -> :class:`CustomEvent` (``name="custom"``); ``updates`` -> :class:`RawEvent`
      (``event_type="updates"``);
    - a subgraph (an item whose namespace is not empty, ``("researcher:<task id>",)``) is a
      run of its own inside this one, mapped as above by a parser of its own: ``run_id`` =
      the task id, ``parent_run_id`` = the enclosing graph's run, ``agent`` = the enclosing
      path plus the node name (``"researcher"``, ``"team/researcher"`` under ``agent="team"``;
      deeper subgraphs nest further), its own ``seq`` from 0, :class:`RunStart` at its first
      item and :class:`RunEnd` when the enclosing graph's ``updates`` item reports the node
      done (or when the stream ends).
    """

    api: ClassVar[str] = "langgraph"

    def __init__(self, **options: Unpack[ParserOptions]) -> None:
        super().__init__(**options)
        self._open: str | None = None
        self._open_usage: ev.Usage | None = None
        self._open_finish: str | None = None
        self._open_tools: list[tuple[str, str, int]] = []

    def on_payload(self, event_type: str | None, item: Any) -> None:
        """Map one ``astream`` item."""
        if type(item) is not tuple or len(item) not in (2, 3):
            self.malformed(f"langgraph: not an astream item (namespace, mode, data): {type(item).__name__}")
            return
        ns, mode, data = item if len(item) == 3 else ((), *item)
        self.start_once()
        if ns:
            self.out.extend(self._subgraph(str(ns[0])).feed((tuple(ns[1:]), mode, data)))
            return
        if mode == "messages":
            msg, _meta = data
            kind = type(msg).__name__
            if kind in ("AIMessageChunk", "AIMessage"):
                self._message(item, msg)
            elif kind == "ToolMessage":
                self._end_message()
                self._tool_end(item, {"output": msg})
            else:
                self.unknown(f"messages:{kind}", item)
        elif mode == "custom":
            self.emit(ev.CustomEvent, item, name="custom", data=data)
        else:
            if mode == "updates" and isinstance(data, dict):
                for key in [k for k in self.children if k.split(":", 1)[0] in data]:
                    self.end_sub_run(key)  # the subgraph's node is done: its run end first
            self.unknown(str(mode), item)

    def _subgraph(self, part: str) -> FrameworkParser:
        """The parser of the subgraph run named by namespace element ``part``
        (``"<node>:<task id>"``), made at its first item."""
        child = self.children.get(part)
        if child is None:
            node, _, task = part.partition(":")
            child = self.children[part] = LangGraphParser(
                run_id=task or None,
                agent=join_path(self.agent, node),
                parent_run_id=self.run_id,
                keep_raw=self.keep_raw,
                on_malformed=self.on_malformed,
            )
        return child

    def _message(self, item: Any, msg: Any) -> None:
        mid = str(getattr(msg, "id", None) or "")
        if mid != self._open:
            self._end_message()
            self._open = mid
            self.step += 1
            self._models[mid] = _Model(self.step)
            self.emit(ev.StepStart, item, step=self.step)
        self._chunk(item, mid, msg)
        um = getattr(msg, "usage_metadata", None)
        if um:
            u = ev.Usage(input_tokens=um.get("input_tokens"), output_tokens=um.get("output_tokens"))
            self._open_usage = u if self._open_usage is None else self._open_usage + u
        meta = getattr(msg, "response_metadata", None) or {}
        fr = meta.get("finish_reason") or meta.get("stop_reason")
        if isinstance(fr, str):
            self._open_finish = fr
        if getattr(msg, "chunk_position", None) == "last":
            self._end_message()

    def _end_message(self) -> None:
        mid = self._open
        if mid is None:
            return
        self._open = None
        model = self._models.pop(mid, None)
        for call_id in list(model.calls.values()) if model is not None else ():
            self.call_end(None, call_id, "", None)
        usage, finish = self._open_usage, self._open_finish
        self._open_usage = self._open_finish = None
        if usage is not None:
            self._usage = usage if self._usage is None else self._usage + usage
            self.emit(ev.UsageEvent, None, usage=usage, cumulative=False)
        self._raw_finish = finish
        self.emit(
            ev.StepEnd,
            None,
            step=model.step if model is not None else self.step,
            finish_reason=normalize_finish_reason(finish),
            raw_finish_reason=finish,
            usage=usage,
        )

    def on_close(self) -> None:
        """The stream ended: end the subgraph runs still open (completed: the graph ended
        normally), the open message's step, then the run."""
        for key in list(self.children):
            self.end_sub_run(key)
        self._end_message()
        super().on_close()


def is_langchain_events(obj: Any) -> bool:
    """True for the async iterator ``astream_events()`` returns (checked by the module of its
    code, without importing LangChain)."""
    return agen_from(obj, "langchain_core")


def from_langchain(events: AsyncIterable[Any], **options: Unpack[ParserOptions]) -> Stream[ev.BaseEvent]:
    """A stream of the events of a LangChain / LangGraph run, from
    ``runnable.astream_events(input, version="v2")``. ``options``: ``run_id``, ``agent``,
    ``keep_raw``, ``on_malformed`` (:class:`ParserOptions`).

    Emits, completes and fails as every framework adapter (docs/frameworks.md); malformed
    input is an item that is not an event dict. Cancels: stopping early closes the iterator
    (``aclose()``), which cancels the run.
    """
    return Stream.defer(_drive, events, options)


def _drive(events: AsyncIterable[Any], options: ParserOptions) -> Any:
    return drive_framework(LangChainParser(**options), events)


def is_langgraph_stream(obj: Any) -> bool:
    """True for the async iterator a LangGraph graph's ``astream()`` returns (checked by the
    module of its code, without importing LangGraph)."""
    return agen_from(obj, "langgraph")


def from_langgraph(items: AsyncIterable[Any], **options: Unpack[ParserOptions]) -> Stream[ev.BaseEvent]:
    """A stream of the events of a LangGraph run, from ``graph.astream(input,
    stream_mode=["messages", "updates", "custom"], subgraphs=True)`` (see
    :class:`LangGraphParser` for the mapping). ``options`` as for :func:`from_langchain`.

    Emits, completes and fails as every framework adapter (docs/frameworks.md); malformed
    input is an item that is not a ``(namespace, mode, data)`` tuple. Cancels: as
    :func:`from_langchain`.
    """
    return Stream.defer(_drive_graph, items, options)


def _drive_graph(items: AsyncIterable[Any], options: ParserOptions) -> Any:
    return drive_framework(LangGraphParser(**options), items)
