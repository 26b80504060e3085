"""Tools for agent runs: the :func:`tool` decorator and tool execution.

``@tool`` turns a plain function (sync or async) into a :class:`Tool`: a name, a description
and a JSON Schema of its arguments, all read from the function (type hints, defaults,
``Annotated[..., Field(description=...)]``, the docstring), plus :meth:`Tool.invoke`, which
runs one call the way a model asked for it::

    @tool(timeout=10)
    async def weather(city: str, days: int = 1) -> Forecast:
        \"\"\"Weather forecast for a city.

        Args:
            city: City name, in English.
            days: How many days ahead, 1 to 7.
        \"\"\"

    weather.spec.to_openai()         # {"type": "function", "function": {"name": "weather", ...}}
    await weather.invoke('{"city": "Oslo"}', call_id="call_1")   # the forecast, as JSON data
    await weather("Oslo")            # still the plain function

The arguments schema
--------------------
Built by pydantic from the signature, with ``validate_call``-like semantics: every parameter
becomes a property, parameters without a default are ``required``, defaults appear as
``default``, parameter types may be anything pydantic validates (pydantic models, dataclasses,
TypedDicts, enums, ``Literal``, ``Optional``, containers...). Unknown arguments are rejected
(``additionalProperties: false``). ``*args`` and ``**kwargs`` cannot be described to a model
and are rejected at decoration time. A parameter annotated :class:`ToolContext` is not part of
the schema: each call gets one injected.

Descriptions: the docstring's first paragraph describes the tool (unless ``description=`` is
given); Google-style (``Args:``), Sphinx-style (``:param x:``) and NumPy-style parameter docs
describe the parameters (an explicit ``Field(description=...)`` wins).

The schema is made to suit function calling across providers: pydantic's ``title`` keywords are
dropped (noise for the model), and ``$ref``\\s into ``$defs`` are inlined, so nested models and
enums appear in place. Only recursive types (a model that contains itself) cannot be inlined:
their definitions stay in a top-level ``$defs`` and are referenced with ``{"$ref":
"#/$defs/Name"}``, which OpenAI's function calling accepts.

Execution
---------
:meth:`Tool.invoke` validates the arguments (the JSON text the model streamed, or a dict),
calls the function (an async function directly on the event loop; a sync one in a worker thread,
so it never blocks the loop and several calls run in parallel) within the tool's ``timeout``,
and returns the result as JSON data (pydantic models, dataclasses, enums, dates... dumped the
way pydantic dumps them in JSON mode).

A worker thread cannot be interrupted: when a sync tool times out (or the call is cancelled),
:meth:`~Tool.invoke` returns at once and *abandons* the thread, which runs to its end on its
own; its result or exception is discarded. A sync tool that may run long should check
:attr:`ToolContext.cancelled` now and then and stop early; an async tool is cancelled properly
(its ``finally`` blocks run before ``invoke`` raises).

Pydantic is imported inside the functions that need it: ``import streamops.tools`` stays light;
the cost is paid when the first tool is decorated.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import threading
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .errors import ToolArgumentsError, ToolTimeout
from .models import ToolSpec

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .events import BaseEvent

__all__ = ["Tool", "ToolArgumentsError", "ToolContext", "tool"]

R = TypeVar("R")

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolContext:
    """What a running tool call can see and do; injected into a tool whose signature has a
    parameter annotated ``ToolContext`` (that parameter is not part of the arguments schema).

    The agent creates one per call; tests and direct calls can build one themselves:
    ``ToolContext(call_id="test", progress=print)``.
    """

    __slots__ = ("_cancelled", "_events", "_loop_thread", "_progress", "call_id", "name")

    def __init__(
        self,
        call_id: str,
        *,
        name: str = "",
        progress: Callable[[Any], None] | None = None,
        events: Callable[[BaseEvent], None] | None = None,
    ) -> None:
        self.call_id = call_id
        """The id of the call (the model's ``tool_calls[].id``)."""
        self.name = name
        """The tool's name."""
        self._progress = progress
        self._events = events
        self._cancelled = threading.Event()
        self._loop_thread: int | None = None

    @property
    def cancelled(self) -> bool:
        """True once the call has timed out or been cancelled: nobody waits for the result any
        more. Long sync tools should check it and return early."""
        return self._cancelled.is_set()

    def progress(self, data: Any) -> None:
        """Report progress (the agent turns each report into a ``ToolProgress`` event).

        ``data`` is converted to JSON data like a result. Callable from the tool's own code, in
        an async tool (on the event loop) or a sync one (in its worker thread: the report is
        handed to the event loop, and this call waits until it has been delivered). Threads the
        tool starts itself cannot report. A no-op without a progress callback, or once the call
        is :attr:`cancelled`.
        """
        callback = self._progress
        if callback is None or self.cancelled:
            return
        payload = _to_json_data(data)
        if self._loop_thread is None or threading.get_ident() == self._loop_thread:
            callback(payload)
        else:
            import anyio.from_thread

            anyio.from_thread.run_sync(callback, payload)


    def emit(self, event: BaseEvent) -> None:
        """Put an event of a run this call started (an agent it runs: see
        :meth:`streamops.Agent.as_tool`) into the calling agent's stream. The agent nests it:
        its ``agent`` path is prefixed with the calling agent's name, and its
        ``parent_run_id`` (when empty) becomes the calling run's ``run_id``; its own ``run_id``
        and ``seq`` are kept. The event is not folded into the calling run's message.

        Callable like :meth:`progress` (on the event loop, or from a sync tool's worker
        thread); a no-op without an events callback, or once the call is :attr:`cancelled`.
        """
        callback = self._events
        if callback is None or self.cancelled:
            return
        if self._loop_thread is None or threading.get_ident() == self._loop_thread:
            callback(event)
        else:
            import anyio.from_thread

            anyio.from_thread.run_sync(callback, event)


class Tool(Generic[R]):
    """A function a model can call: its name, description and arguments schema, and
    :meth:`invoke` to run a call. Made by :func:`tool`; still callable as the plain function.

    ``R`` is the function's return type (a coroutine for an async function).

    Raises:
        TypeError: the function takes ``*args`` or ``**kwargs``, is a generator, or has a
            parameter type pydantic cannot validate or describe.
        ValueError: the name is not 1 to 64 characters of ``[a-zA-Z0-9_-]``, or ``timeout`` is
            not a positive number.
    """

    name: str
    """The name the model calls the tool by."""
    description: str
    """What the tool does, for the model."""
    parameters: dict[str, Any]
    """JSON Schema of the arguments object (``{"type": "object", "properties": {...},
    "required": [...], "additionalProperties": false}``)."""
    timeout: float | None
    """Time limit of one call, in seconds (None: no limit)."""
    fn: Callable[..., R]
    """The decorated function."""
    __name__: str
    __qualname__: str

    def __init__(
        self,
        fn: Callable[..., R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        _localns: Mapping[str, Any] | None = None,
    ) -> None:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"a tool must return its result, not yield it: {fn!r} is a generator function")
        tool_name = name if name is not None else getattr(fn, "__name__", "")
        if not _NAME_RE.match(tool_name):
            raise ValueError(
                f"tool name {tool_name!r} is not valid: use 1 to 64 letters, digits, '_' or '-' (pass name=...)"
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        self.fn = fn
        self.name = tool_name
        self.timeout = timeout
        self._is_async = _is_async_callable(fn)
        doc = inspect.getdoc(fn) or ""
        summary, param_docs = _parse_docstring(doc)
        self.description = description if description is not None else summary
        self._model, self._params, self._context_param = _build_arguments_model(fn, tool_name, param_docs, _localns)
        self.parameters = _clean_schema(self._model.model_json_schema(schema_generator=_schema_generator()))
        functools.update_wrapper(self, fn)

    @property
    def spec(self) -> ToolSpec:
        """The tool as the model sees it (``spec.to_openai()`` for OpenAI's ``tools[]``)."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Call the plain function: no validation, no thread, no timeout."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name!r} of {self.fn!r}>"

    def validate(self, arguments: str | Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments to call the function with.

        ``arguments`` is the JSON text of the arguments object, as the model streamed it
        (empty text and ``null`` mean no arguments), or a mapping. Values are validated and
        converted by pydantic (``"3"`` becomes ``3`` for an ``int``, a dict becomes the model
        for a pydantic-model parameter); missing defaults are filled in.

        Raises:
            ToolArgumentsError: invalid JSON, not an object, or arguments the parameters
                reject; the message lists them all.
        """
        from pydantic import ValidationError

        try:
            if isinstance(arguments, str):
                text = arguments.strip()
                if not text or text == "null":
                    text = "{}"
                validated = self._model.model_validate_json(text)
            else:
                validated = self._model.model_validate(arguments)
        except ValidationError as exc:
            raise _arguments_error(self.name, arguments, exc) from None
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for field_name, param in self._params:
            value = getattr(validated, field_name)
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param.name] = value
        return args, kwargs

    async def invoke(
        self,
        arguments: str | Mapping[str, Any],
        *,
        call_id: str,
        progress: Callable[[Any], None] | None = None,
        events: Callable[[BaseEvent], None] | None = None,
    ) -> Any:
        """Run one call of the tool and return its result as JSON data.

        ``arguments``: the JSON text of the arguments object as the model streamed it (the
        ``arguments`` of a ``ToolCallEnd``) or a mapping; see :meth:`validate`. ``call_id``:
        the call's id, given to the :class:`ToolContext`. ``progress``: called on the event
        loop's thread with the JSON data of each :meth:`ToolContext.progress` report, before
        ``invoke`` returns. ``events``: called with each event the tool puts in the stream
        (:meth:`ToolContext.emit`), likewise.

        An async function runs in the calling task; a sync one in a worker thread
        (``anyio.to_thread.run_sync``), so calls of sync tools run in parallel. The result is
        converted with pydantic's JSON-mode dump (models, dataclasses, enums, datetimes...);
        an object pydantic cannot dump becomes its ``str()``.

        On timeout or cancellation an async tool is cancelled; a sync tool's thread cannot be
        interrupted, so it is abandoned: ``invoke`` raises at once, the thread runs to its end
        on its own and its outcome is discarded (``ToolContext.cancelled`` tells it to stop).

        Raises:
            ToolArgumentsError: the arguments are invalid (the tool was not called).
            ToolTimeout: the call ran longer than ``timeout`` seconds (``tool`` set).
            Exception: whatever the tool raised, as itself.
        """
        import anyio
        import anyio.to_thread

        args, kwargs = self.validate(arguments)
        context: ToolContext | None = None
        if self._context_param is not None:
            context = ToolContext(call_id, name=self.name, progress=progress, events=events)
            context._loop_thread = threading.get_ident()
            if self._context_param.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.insert(self._context_index, context)
            else:
                kwargs[self._context_param.name] = context
        fn = self.fn
        result: Any = None
        try:
            with anyio.move_on_after(self.timeout) as scope:
                if self._is_async:
                    result = await fn(*args, **kwargs)  # type: ignore[misc]
                else:
                    result = await anyio.to_thread.run_sync(
                        functools.partial(fn, *args, **kwargs), abandon_on_cancel=True
                    )
                    if inspect.isawaitable(result):  # a sync callable that returned a coroutine
                        result = await result
        except BaseException:
            if context is not None:
                context._cancelled.set()
            raise
        if scope.cancelled_caught:
            if context is not None:
                context._cancelled.set()
            raise ToolTimeout(self.timeout or 0.0, tool=self.name)
        return _to_json_data(result)

    @functools.cached_property
    def _context_index(self) -> int:
        """Position of a positional-only ToolContext parameter among the positional arguments."""
        assert self._context_param is not None
        params = inspect.signature(self.fn).parameters.values()
        positional = [p for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]
        return positional.index(self._context_param)


@overload
def tool(
    fn: Callable[..., R], /, *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Tool[R]: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Callable[[Callable[..., R]], Tool[R]]: ...


def tool(
    fn: Callable[..., R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> Tool[R] | Callable[[Callable[..., R]], Tool[R]]:
    """Make a function (sync or async) a :class:`Tool`; use as ``@tool`` or ``@tool(...)``.

    ``name`` defaults to the function's name; ``description`` to the first paragraph of its
    docstring; ``timeout`` (seconds, None for none) limits each call. The schema is built at
    once, so mistakes show at import time. Type hints are resolved in the function's module
    and in the namespace the decorator is applied in (classes defined in the enclosing
    function work too).

    Raises:
        TypeError: ``*args``/``**kwargs``, a generator function, or a parameter type pydantic
            cannot handle.
        ValueError: an invalid name or timeout.
    """
    localns = _caller_locals()

    def decorate(f: Callable[..., R]) -> Tool[R]:
        return Tool(f, name=name, description=description, timeout=timeout, _localns=localns)

    if fn is not None:
        return decorate(fn)
    return decorate


# --- helpers ---------------------------------------------------------------------------------


def _caller_locals() -> dict[str, Any] | None:
    """The local namespace of the code that applied the decorator (None at module level)."""
    frame = sys._getframe(2)
    if frame.f_locals is frame.f_globals:
        return None
    return dict(frame.f_locals)


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    # a callable object with an async __call__
    return not inspect.isroutine(fn) and not inspect.isclass(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _paragraphs(text: str) -> list[str]:
    """Paragraphs of ``text``, each with its lines joined by single spaces."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph of ``doc`` and its parameter descriptions (Google, Sphinx or NumPy)."""
    if not doc.strip():
        return "", {}
    import docstring_parser

    try:
        parsed = docstring_parser.parse(doc)
    except docstring_parser.ParseError:
        paragraphs = _paragraphs(doc)
        return (paragraphs[0] if paragraphs else ""), {}
    text = parsed.short_description or ""
    if parsed.long_description:
        text += ("\n\n" if parsed.blank_after_short_description else "\n") + parsed.long_description
    paragraphs = _paragraphs(text)
    params = {
        p.arg_name: "\n\n".join(_paragraphs(p.description))
        for p in parsed.params
        if p.description and p.args and p.args[0] in ("param", "parameter", "arg", "argument", "key", "keyword")
    }
    return (paragraphs[0] if paragraphs else ""), params


def _is_context(hint: Any) -> bool:
    """Whether a (resolved) annotation is ToolContext, Annotated[ToolContext, ...] or
    ToolContext | None."""
    if hint is ToolContext:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _is_context(typing.get_args(hint)[0])
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return len(args) == 1 and _is_context(args[0])
    return False


def _has_description(hint: Any) -> bool:
    """Whether an ``Annotated`` hint carries a ``Field(description=...)``."""
    from pydantic.fields import FieldInfo

    if typing.get_origin(hint) is not typing.Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in typing.get_args(hint)[1:])


def _build_arguments_model(
    fn: Callable[..., Any],
    tool_name: str,
    param_docs: Mapping[str, str],
    localns: Mapping[str, Any] | None,
) -> tuple[type[BaseModel], list[tuple[str, inspect.Parameter]], inspect.Parameter | None]:
    """A pydantic model of ``fn``'s arguments, the (field name, parameter) pairs, and the
    ToolContext parameter if any.

    Fields are named ``p0``, ``p1``... with the parameter names as aliases, so parameter names
    that clash with ``BaseModel`` attributes (``schema``, ``copy``, ``json``) or start with an
    underscore still work.
    """
    from pydantic import ConfigDict, Field, PydanticSchemaGenerationError, create_model
    from pydantic.errors import PydanticUserError

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {fn!r}: {exc}") from exc
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    hint_source = target if inspect.isroutine(target) or inspect.isclass(target) else type(target).__call__
    try:
        try:
            hints = typing.get_type_hints(hint_source, include_extras=True)
        except NameError:
            if not localns:
                raise
            # a type defined in the function that applied the decorator: retry with its locals
            # (only then, so the caller's local names never shadow the module's)
            hints = typing.get_type_hints(hint_source, localns=dict(localns), include_extras=True)
    except NameError as exc:
        raise TypeError(
            f"cannot resolve the type hints of tool {tool_name!r}: {exc} "
            "(define the types the parameters use before the decorated function)"
        ) from exc

    fields: dict[str, Any] = {}
    params: list[tuple[str, inspect.Parameter]] = []
    context_param: inspect.Parameter | None = None
    for param in signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            star = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise TypeError(
                f"tool {tool_name!r} takes {star}{param.name}: a tool's arguments must be named "
                "parameters, so the model can be told what they are"
            )
        hint = hints.get(param.name, Any)
        if _is_context(hint):
            if context_param is not None:
                raise TypeError(f"tool {tool_name!r} has two ToolContext parameters")
            context_param = param
            continue
        field_name = f"p{len(params)}"
        doc = param_docs.get(param.name)
        options: dict[str, Any] = {"alias": param.name}
        if param.default is not inspect.Parameter.empty:
            options["default"] = param.default
        if doc and not _has_description(hint):
            options["description"] = doc
        fields[field_name] = (hint, Field(**options))
        params.append((field_name, param))

    model_name = "".join(part.capitalize() for part in re.split(r"[_-]", tool_name) if part) + "Arguments"
    try:
        model: type[BaseModel] = create_model(
            model_name,
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False, protected_namespaces=()),
            **fields,
        )
        model.model_json_schema()  # fail now, not at the first call, if the schema cannot be made
    except (PydanticSchemaGenerationError, PydanticUserError) as exc:
        raise TypeError(f"tool {tool_name!r} has a parameter type pydantic cannot handle: {exc}") from exc
    return model, params, context_param


_GENERATOR: Any = None


def _schema_generator() -> Any:
    """pydantic's JSON schema generator, made to say ``additionalProperties: false`` for a
    nested dataclass or TypedDict whose validator rejects unknown keys (the tool's
    ``extra="forbid"`` reaches them): pydantic says so itself from 2.14 on, earlier versions
    left it out, so the schema is the same whichever pydantic is installed."""
    global _GENERATOR
    if _GENERATOR is None:
        from pydantic.json_schema import GenerateJsonSchema

        class _Generator(GenerateJsonSchema):
            def dataclass_schema(self, schema: Any) -> Any:
                return _forbid(schema, super().dataclass_schema(schema))

            def typed_dict_schema(self, schema: Any) -> Any:
                return _forbid(schema, super().typed_dict_schema(schema))

        _GENERATOR = _Generator
    return _GENERATOR


def _forbid(core: Any, json_schema: Any) -> Any:
    config = core.get("config") or {}
    if config.get("extra_fields_behavior") == "forbid" and isinstance(json_schema, dict):
        target = json_schema
        if "$ref" in target and "type" not in target:  # a reference: mark the definition
            return json_schema
        target.setdefault("additionalProperties", False)
    return json_schema


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop ``title``\\s and inline every non-recursive ``$ref`` (see the module docstring)."""
    defs: dict[str, Any] = schema.pop("$defs", {})
    prefix = "#/$defs/"

    def refs_in(node: Any, found: set[str]) -> set[str]:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix):
                found.add(ref[len(prefix) :])
            for value in node.values():
                refs_in(value, found)
        elif isinstance(node, list):
            for value in node:
                refs_in(value, found)
        return found

    graph = {name: refs_in(body, set()) for name, body in defs.items()}

    def reaches(start: str, goal: str) -> bool:
        seen: set[str] = set()
        todo = list(graph.get(start, ()))
        while todo:
            name = todo.pop()
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, ()))
        return False

    recursive = {name for name in defs if reaches(name, name)}

    def clean(node: Any) -> Any:
        """``node`` as a schema: titles dropped, non-recursive refs inlined."""
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in recursive:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**clean(defs[ref[len(prefix) :]]), **clean_keywords(siblings)}
        return clean_keywords(node)

    def clean_keywords(node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "title":
                continue
            if key in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas") and isinstance(
                value, dict
            ):
                out[key] = {name: clean(sub) for name, sub in value.items()}
            elif key in ("anyOf", "allOf", "oneOf", "prefixItems") and isinstance(value, list):
                out[key] = [clean(sub) for sub in value]
            elif key in (
                "items",
                "additionalProperties",
                "not",
                "contains",
                "propertyNames",
                "if",
                "then",
                "else",
                "unevaluatedProperties",
                "unevaluatedItems",
            ):
                out[key] = clean(value)
            else:  # data (default, enum, const, examples) or a scalar keyword: as is
                out[key] = value
        return out

    cleaned: dict[str, Any] = clean(schema)
    if recursive:
        cleaned["$defs"] = {name: clean(defs[name]) for name in sorted(recursive)}
    cleaned.setdefault("properties", {})
    cleaned.setdefault("required", [])
    return cleaned


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _arguments_error(tool_name: str, arguments: Any, exc: Any) -> ToolArgumentsError:
    """A ToolArgumentsError from a pydantic ValidationError, with a message for the model."""
    errors: list[dict[str, Any]] = exc.errors(include_url=False)
    if len(errors) == 1 and errors[0]["type"] == "json_invalid":
        text = arguments if isinstance(arguments, str) else repr(arguments)
        shown = text if len(text) <= 200 else text[:200] + "..."
        detail = errors[0].get("ctx", {}).get("error", errors[0]["msg"])
        return ToolArgumentsError(
            f"arguments of tool {tool_name!r} are not valid JSON ({detail}): {shown}", tool=tool_name, errors=errors
        )
    lines: list[str] = []
    for error in errors:
        loc = _format_loc(tuple(error["loc"]))
        if error["type"] == "model_type" and not loc:
            lines.append(f"the arguments must be a JSON object, not {_json_type(error['input'])}")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{loc}: unexpected argument")
        elif error["type"] == "missing":
            lines.append(f"{loc}: missing required argument")
        else:
            got = repr(error["input"])
            got = got if len(got) <= 60 else got[:57] + "..."
            lines.append(f"{loc}: {error['msg']} (got {got})" if loc else error["msg"])
    return ToolArgumentsError(
        f"invalid arguments for tool {tool_name!r}: " + "; ".join(lines), tool=tool_name, errors=errors
    )


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {str: "a string", list: "an array", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _to_json_data(value: Any) -> Any:
    """``value`` as JSON data: pydantic's JSON-mode dump, ``str()`` for what it cannot dump."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)
