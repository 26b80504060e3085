"""Structured output of an agent run: the types around it. The parsing and validation is
:func:`streamops.operators.structured`, a stage of the run's pipeline."""

from __future__ import annotations

from typing import Any

__all__ = ["partial_type", "schema_of"]

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
    """The JSON Schema of ``output_type`` (pydantic's), ``None`` for no output type."""
    if output_type is None:
        return None
    from pydantic import TypeAdapter

    return TypeAdapter(output_type).json_schema()
