"""Structured output of an agent run: the final answer's JSON streamed and validated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import (
    BaseEvent,
    ErrorEvent,
    FinalOutput,
    ObjectDelta,
    PartialObject,
)

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["OutputParser", "partial_type", "schema_of"]

_PARTIALS: dict[Any, Any] = {}


def partial_type(output_type: Any) -> Any:
    """The type a partial output of ``output_type`` validates as: a pydantic model becomes
    ``Partial<Name>``, the same fields each optional (default ``None``), nested models and
    the items of lists/dicts of models likewise; any other type is itself. Built once per
    type (pydantic's ``create_model``)."""
    cached = _PARTIALS.get(output_type)
    if cached is not None:
        return cached
    from typing import Optional, get_args, get_origin

    from pydantic import BaseModel, create_model

    out: Any = output_type
    if isinstance(output_type, type) and issubclass(output_type, BaseModel):
        fields: dict[str, Any] = {
            name: (Optional[partial_type(f.annotation)], None)  # noqa: UP045 - built at run time
            for name, f in output_type.model_fields.items()
        }
        out = create_model(f"Partial{output_type.__name__}", **fields)
    elif get_origin(output_type) in (list, dict):
        args = tuple(partial_type(a) for a in get_args(output_type))
        out = get_origin(output_type)[args]
    _PARTIALS[output_type] = out
    return out


def schema_of(output_type: Any) -> dict[str, Any] | None:
    if output_type is None:
        return None
    from pydantic import TypeAdapter

    return TypeAdapter(output_type).json_schema()


class OutputParser:
    """Streams the final answer's JSON as object deltas and validates it at the end."""

    def __init__(self, output_type: Any) -> None:
        from ..jsonstream import JsonStreamParser

        self.output_type = output_type
        self.parser = JsonStreamParser()
        self.text: list[str] = []
        self.error: str | None = None

    def feed(self, run: Run, text: str) -> list[BaseEvent]:
        self.text.append(text)
        if self.error is not None:
            return []
        from ..jsonstream import JsonStreamError

        try:
            events = self.parser.feed(text)
        except JsonStreamError as exc:
            self.error = str(exc)
            return []
        return self._convert(run, events)

    def _convert(self, run: Run, events: list[Any]) -> list[BaseEvent]:
        from ..jsonstream import JsonDelta

        out: list[BaseEvent] = []
        for e in events:
            if isinstance(e, JsonDelta):
                out.append(run.make(ObjectDelta, json_path=e.path, delta=e.delta))
            else:
                out.append(run.make(PartialObject, value=self.parser.partial))
        return out

    def finish(self, run: Run) -> list[BaseEvent]:
        from pydantic import TypeAdapter, ValidationError

        from ..jsonstream import JsonStreamError

        out: list[BaseEvent] = []
        if self.error is None:
            try:
                out += self._convert(run, self.parser.close())
            except JsonStreamError as exc:
                self.error = str(exc)
        if self.error is not None:
            out.append(run.make(ErrorEvent, error_type="output_json", message=self.error))
            return out
        adapter = TypeAdapter(self.output_type)
        try:
            value = adapter.validate_python(self.parser.partial)
        except ValidationError as exc:
            out.append(run.make(ErrorEvent, error_type="output_validation", message=str(exc)))
            return out
        out.append(run.make(FinalOutput, value=adapter.dump_python(value, mode="json")))
        return out
