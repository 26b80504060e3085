"""Structured output: ``structured`` parses a run's streamed text as JSON, field by field.

The text deltas of each run are fed to a :class:`~streamops.jsonstream.JsonStreamParser`;
what it finds comes out as :class:`~streamops.events.ObjectDelta` events tagged with the
JSONPath of the value they extend (``$.city``, ``$.items[2].name``), snapshots of the value
so far as :class:`~streamops.events.PartialObject`, and, at the end of the run, the whole
output validated with pydantic as :class:`~streamops.events.FinalOutput`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, Literal

from .._stream import End, Push, Stage
from ..events import (
    BaseEvent,
    ErrorEvent,
    FinalOutput,
    ObjectDelta,
    PartialObject,
    RunEnd,
    RunStart,
    RunStatus,
    StepStart,
    TextDelta,
    envelope,
)
from ..jsonstream import JsonDelta, JsonStreamError, JsonStreamParser

__all__ = ["structured"]


class _Run:
    """The parsing state of one run."""

    __slots__ = ("error", "failed", "last", "parser")

    def __init__(self, lenient: bool) -> None:
        self.parser = JsonStreamParser(lenient=lenient)
        self.failed = False
        self.error: str | None = None  # malformed JSON, not reported yet (json_errors="at_end")
        self.last: BaseEvent | None = None


def structured(
    output_type: Any = None,
    *,
    snapshots: bool = True,
    keep_text: bool = False,
    lenient: bool = True,
    json_errors: Literal["at_once", "at_end"] = "at_once",
    finish_on: Collection[RunStatus] | None = None,
    nested: bool = True,
) -> Stage[Any, Any]:
    """Parse each run's text as JSON as it streams; validate it against ``output_type`` at the end.

    ``output_type`` is anything pydantic's ``TypeAdapter`` accepts (a ``BaseModel`` subclass,
    a dataclass, a ``TypedDict``, ``list[Item]``...), or ``None`` to skip validation and
    emit the parsed JSON data as is. pydantic is imported when ``structured()`` is called
    with a type, not before; a type pydantic cannot handle raises then.

    The text of a run is one JSON document. ``lenient`` (the default) tolerates what models
    write around it: text before the first ``{`` or ``[`` (a preamble, a ```` ```json ```` fence) is
    skipped, and text after the root value closes is ignored (see
    :mod:`streamops.jsonstream`; a text with no ``{``/``[`` at all is parsed, at the end, as
    a scalar such as ``42``). Each ``StepStart`` of a run starts a new document: the output
    of an agent run is the text of its last step. State is kept per ``run_id``: runs that
    interleave are parsed separately.

    - Emits: for each ``TextDelta``, the :class:`~streamops.events.ObjectDelta` events its text
      completes (``json_path``; ``delta`` is the new characters of a string, or the JSON text
      of a number/``true``/``false``/``null`` once complete), with the delta's envelope
      (``run_id``, ``agent``, ``seq``, ``ts``, ``raw``). The ``TextDelta`` itself is replaced
      by them (kept, before them, with ``keep_text=True``). Then, if ``snapshots`` and at
      least one value completed in that text, one :class:`~streamops.events.PartialObject`
      with the value so far (in-progress strings as their prefix; read-only: snapshots share
      completed sub-values). At the run's ``RunEnd``, before it (with its envelope): a
      :class:`~streamops.events.FinalOutput` holding the validated output dumped to JSON data
      (``TypeAdapter.dump_python(mode="json")``), or an :class:`~streamops.events.ErrorEvent`
      with ``error_type="output_json"`` (malformed JSON, truncated JSON, no text at all) or
      ``"output_validation"`` (pydantic's message). Malformed JSON is reported at once, when
      the offending text arrives; the run's later text is then dropped (kept with
      ``keep_text``) and its ``RunEnd`` adds nothing; with ``json_errors="at_end"`` that
      ``ErrorEvent`` comes at the run's end instead, where a ``FinalOutput`` would have come (the
      agent's choice: the consumer learns about the output once, when the run ends). A run
      that ends with a status not in ``finish_on`` (default: any status) ends its output
      silently: no ``FinalOutput`` and no error (the agent passes ``("completed", "length")``:
      a failed, cancelled or out-of-steps run has no answer to validate). With
      ``nested=False``, the events of runs nested in another (an event with a
      ``parent_run_id``: an agent used as a tool) pass unchanged, unparsed (the agent's
      choice: its output type is not theirs). Every other event passes unchanged.
    - Completes: when the upstream completes, after finishing every run that sent text but no
      ``RunEnd`` (``FinalOutput`` or ``ErrorEvent`` with the envelope of its last event).
    - Fails: when the upstream fails (no final output is emitted for unfinished runs then).
      Bad model output never fails the stream: it becomes an ``ErrorEvent``.
    - Cancels: when the downstream stops; the parser state is dropped.
    - Buffers: per open run, the parser's state: the value parsed so far (the size of the
      output), never the events.

    Marble: ``S T("{\\"a\\": \\"h") T("i\\", \\"n\\": 1") T("2}") E | structured()`` gives
    ``S D($.a,"h") D($.a,"i") P({a:"hi"}) D($.n,"12") P({a:"hi",n:12}) F({a:"hi",n:12}) E``
    (``D`` an ``ObjectDelta``, ``P`` a ``PartialObject``, ``F`` the ``FinalOutput``; the
    number ``12`` comes out whole once the ``}`` ends it).

    Raises:
        pydantic.errors.PydanticSchemaGenerationError: ``output_type`` is not a type pydantic
            can validate.
    """
    at_end = json_errors == "at_end"
    adapter: Any = None
    if output_type is not None:
        from pydantic import TypeAdapter

        adapter = TypeAdapter(output_type)

    def finish(st: _Run | None, src: BaseEvent, down: Push) -> None:
        if finish_on is not None and isinstance(src, RunEnd) and src.status not in finish_on:
            return
        env = envelope(src)
        if st is None:
            down(ErrorEvent(**env, error_type="output_json", message="the run produced no output text"))
            return
        if st.failed:
            if st.error is not None:
                down(ErrorEvent(**env, error_type="output_json", message=st.error))
            return
        parser = st.parser
        try:
            events = parser.close()
        except JsonStreamError as exc:
            status = getattr(src, "status", None)
            why = f" (the run ended with status {status!r})" if status not in (None, "completed") else ""
            message = f"structured output is not valid JSON: {exc}{why}"
            down(ErrorEvent(**env, error_type="output_json", message=message))
            return
        emit(st, events, src, down)
        value = parser.partial
        if adapter is not None:
            from pydantic import ValidationError

            try:
                validated = adapter.validate_json(json.dumps(value))
            except ValidationError as exc:
                down(ErrorEvent(**env, error_type="output_validation", message=str(exc)))
                return
            value = adapter.dump_python(validated, mode="json")
        down(FinalOutput(**env, value=value))

    def emit(st: _Run, events: list[Any], src: BaseEvent, down: Push) -> None:
        completed = False
        for ev in events:
            if type(ev) is JsonDelta:
                down(ObjectDelta(**envelope(src), json_path=ev.path, delta=ev.delta))
            else:
                completed = True
        if completed and snapshots:
            down(PartialObject(**envelope(src), value=st.parser.partial))

    def bind(down: Push, end: End) -> tuple[Push, End]:
        runs: dict[str, _Run] = {}

        def push(e: Any) -> None:
            if not nested and isinstance(e, BaseEvent) and e.parent_run_id:
                down(e)  # a nested run's event (an agent used as a tool): not this output's
                return
            if isinstance(e, TextDelta):
                if keep_text:
                    down(e)
                st = runs.get(e.run_id)
                if st is None:
                    st = runs[e.run_id] = _Run(lenient)
                st.last = e
                if st.failed:
                    return
                try:
                    events = st.parser.feed(e.delta)
                except JsonStreamError as exc:
                    st.failed = True
                    emit(st, exc.events, e, down)
                    message = f"structured output is not valid JSON: {exc}"
                    if at_end:
                        st.error = message
                    else:
                        down(ErrorEvent(**envelope(e), error_type="output_json", message=message))
                    return
                if events:
                    emit(st, events, e, down)
                return
            if isinstance(e, RunEnd):
                finish(runs.pop(e.run_id, None), e, down)
            elif isinstance(e, (RunStart, StepStart)):
                runs.pop(e.run_id, None)
            elif isinstance(e, BaseEvent):
                st = runs.get(e.run_id)
                if st is not None:
                    st.last = e
            down(e)

        def end_() -> None:
            for st in list(runs.values()):
                assert st.last is not None
                finish(st, st.last, down)
            runs.clear()
            end()

        return push, end_

    name = getattr(output_type, "__name__", None) or ("" if output_type is None else repr(output_type))
    return Stage(bind, f"structured({name})")
