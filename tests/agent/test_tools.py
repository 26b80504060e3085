"""@tool: arguments schema from the signature and docstring, validation, execution (worker
threads, concurrency, timeouts, cancellation), ToolContext progress, JSON results."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import json
import threading
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from streamops.errors import StreamopsError, ToolTimeout
from streamops.models import ToolSpec
from streamops.tools import Tool, ToolArgumentsError, ToolContext, tool

# --- types the tools below use (module level: `from __future__ import annotations` resolves
# hints in the module's namespace) ------------------------------------------------------------


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Address(BaseModel):
    """A postal address."""

    street: str = Field(description="Street and number.")
    city: str
    zip: str | None = None


class TreeNode(BaseModel):
    value: int
    children: list[TreeNode] = []


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Forecast(BaseModel):
    city: str
    temps: list[float]
    unit: Unit
    day: datetime.date


# --- schema ------------------------------------------------------------------------------------


def test_schema_types_required_defaults() -> None:
    @tool
    def search(query: str, limit: int = 10, exact: bool = False, ratio: float = 0.5, tags: list[int] = []) -> str:  # noqa: B006
        """Search the index."""
        return query

    assert isinstance(search, Tool)
    assert search.name == "search"
    assert search.description == "Search the index."
    assert search.timeout is None
    assert search.parameters == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "default": 10},
            "exact": {"type": "boolean", "default": False},
            "ratio": {"type": "number", "default": 0.5},
            "tags": {"type": "array", "items": {"type": "integer"}, "default": []},
        },
        "required": ["query"],
    }
    assert list(search.parameters["properties"]) == ["query", "limit", "exact", "ratio", "tags"]


def test_schema_descriptions_google_style() -> None:
    @tool
    def weather(city: str, days: int = 1, unit: Unit = Unit.CELSIUS) -> str:
        """Weather forecast
        for a city.

        Uses the national weather service; this paragraph is not part of the description.

        Args:
            city: City name,
                in English.
            days (int): How many days ahead, 1 to 7.
            unit: Temperature unit.

        Returns:
            The forecast.
        """
        return city

    assert weather.description == "Weather forecast for a city."
    props = weather.parameters["properties"]
    assert props["city"] == {"type": "string", "description": "City name, in English."}
    assert props["days"] == {"type": "integer", "default": 1, "description": "How many days ahead, 1 to 7."}
    assert props["unit"] == {
        "type": "string",
        "enum": ["celsius", "fahrenheit"],
        "default": "celsius",
        "description": "Temperature unit.",
    }
    assert weather.parameters["required"] == ["city"]


def test_schema_descriptions_sphinx_style() -> None:
    @tool
    def convert(amount: float, currency: str = "EUR") -> float:
        """Convert money.

        :param amount: The amount, in US dollars.
        :param str currency: ISO 4217 code of the target
            currency.
        :returns: the converted amount.
        """
        return amount

    assert convert.description == "Convert money."
    assert convert.parameters["properties"] == {
        "amount": {"type": "number", "description": "The amount, in US dollars."},
        "currency": {"type": "string", "default": "EUR", "description": "ISO 4217 code of the target currency."},
    }


def test_schema_field_description_wins_over_docstring() -> None:
    @tool
    def f(
        a: Annotated[int, Field(description="From Field.", ge=0)],
        b: Annotated[str, Field(max_length=5)] = "x",
    ) -> None:
        """Do f.

        Args:
            a: From the docstring.
            b: B from the docstring.
        """

    assert f.parameters["properties"] == {
        "a": {"type": "integer", "minimum": 0, "description": "From Field."},
        "b": {"type": "string", "maxLength": 5, "default": "x", "description": "B from the docstring."},
    }


def test_schema_nested_model_enum_optional_literal_inlined() -> None:
    @tool
    def ship(
        to: Address, unit: Unit | None = None, mode: Literal["air", "sea"] = "sea", points: list[Point] | None = None
    ) -> None:
        """Ship a parcel."""

    schema = ship.parameters
    assert "$defs" not in schema
    assert "$ref" not in json.dumps(schema)
    assert "title" not in json.dumps(schema)
    props = schema["properties"]
    assert props["to"] == {
        "type": "object",
        "description": "A postal address.",
        "properties": {
            "street": {"type": "string", "description": "Street and number."},
            "city": {"type": "string"},
            "zip": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["street", "city"],
    }
    assert props["unit"] == {
        "anyOf": [{"type": "string", "enum": ["celsius", "fahrenheit"]}, {"type": "null"}],
        "default": None,
    }
    assert props["mode"] == {"type": "string", "enum": ["air", "sea"], "default": "sea"}
    assert props["points"] == {
        "anyOf": [
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                    "required": ["x", "y"],
                    # a dataclass takes the tool's extra="forbid": the schema says so on every
                    # pydantic (2.14 does it itself, earlier versions did not)
                    "additionalProperties": False,
                },
            },
            {"type": "null"},
        ],
        "default": None,
    }
    # the schema says what validation does: unknown keys in a point are rejected, in an
    # address (a BaseModel, extra="ignore") they are dropped
    with pytest.raises(ToolArgumentsError):
        ship.validate({"to": {"street": "1 Main St", "city": "X"}, "points": [{"x": 1, "y": 2, "z": 3}]})
    ship.validate({"to": {"street": "1 Main St", "city": "X", "floor": 2}})
    assert schema["required"] == ["to"]


def test_schema_recursive_model_keeps_defs() -> None:
    @tool
    def walk(tree: TreeNode) -> int:
        """Sum a tree."""
        return tree.value

    schema = walk.parameters
    assert schema["properties"]["tree"] == {"$ref": "#/$defs/TreeNode"}
    assert schema["$defs"] == {
        "TreeNode": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/TreeNode"}, "default": []},
            },
            "required": ["value"],
        }
    }


def test_schema_no_parameters_and_spec() -> None:
    @tool(name="now-utc", description="The current time.", timeout=2.5)
    def now() -> str:
        """Ignored docstring."""
        return "12:00"

    assert now.name == "now-utc"
    assert now.timeout == 2.5
    assert now.parameters == {"type": "object", "additionalProperties": False, "properties": {}, "required": []}
    assert now.spec == ToolSpec(name="now-utc", description="The current time.", parameters=now.parameters)
    assert now.spec.to_openai() == {
        "type": "function",
        "function": {"name": "now-utc", "description": "The current time.", "parameters": now.parameters},
    }
    json.dumps(now.spec.to_openai())


def test_schema_excludes_tool_context_and_handles_awkward_names() -> None:
    @tool
    async def fetch(ctx: ToolContext, schema: str, copy: int = 0, json: bool = False) -> None:
        """Fetch."""

    assert fetch.parameters["properties"] == {
        "schema": {"type": "string"},
        "copy": {"type": "integer", "default": 0},
        "json": {"type": "boolean", "default": False},
    }
    assert fetch.parameters["required"] == ["schema"]


def test_schema_resolves_types_local_to_the_enclosing_function() -> None:
    class Local(BaseModel):
        n: int

    @tool
    def f(item: Local) -> int:
        return item.n

    assert f.parameters["properties"]["item"]["properties"] == {"n": {"type": "integer"}}
    assert f.description == ""


def test_no_annotation_means_any() -> None:
    @tool
    def f(x, y=2):  # type: ignore[no-untyped-def]
        return x

    assert f.parameters["properties"] == {"x": {}, "y": {"default": 2}}
    assert f.parameters["required"] == ["x"]


def test_decoration_errors() -> None:
    with pytest.raises(TypeError, match=r"\*args"):

        @tool
        def f(*args: int) -> None: ...

    with pytest.raises(TypeError, match=r"\*\*kw"):

        @tool
        def g(a: int, **kw: int) -> None: ...

    with pytest.raises(TypeError, match="generator"):

        @tool
        def h() -> Any:
            yield 1

    with pytest.raises(TypeError, match="generator"):

        @tool
        async def h2() -> Any:
            yield 1

    with pytest.raises(ValueError, match="tool name"):
        tool(lambda x: x)

    with pytest.raises(ValueError, match="tool name"):
        tool(name="has space")(len)

    with pytest.raises(ValueError, match="timeout"):

        @tool(timeout=0)
        def t() -> None: ...

    class Opaque:
        pass

    with pytest.raises(TypeError, match="pydantic cannot handle"):

        @tool
        def o(x: Opaque) -> None: ...


def test_tool_keeps_the_plain_function() -> None:
    def add(a: int, b: int = 1) -> int:
        """Add numbers."""
        return a + b

    wrapped = tool(add)
    assert wrapped(2, b=3) == 5
    assert wrapped.fn is add
    assert wrapped.__name__ == "add"
    assert wrapped.__doc__ == "Add numbers."
    assert wrapped.__wrapped__ is add  # type: ignore[attr-defined]
    assert "add" in repr(wrapped)


@pytest.mark.anyio
async def test_async_tool_direct_call() -> None:
    @tool
    async def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42


# --- validation --------------------------------------------------------------------------------


@tool
def book(city: str, nights: int, guests: list[int], address: Address | None = None) -> dict[str, Any]:
    """Book a room."""
    return {"city": city, "nights": nights, "guests": guests, "address": address}


@pytest.mark.anyio
async def test_invalid_json_text() -> None:
    with pytest.raises(ToolArgumentsError, match="not valid JSON") as info:
        await book.invoke('{"city": "Oslo", "nigh', call_id="c1")
    err = info.value
    assert isinstance(err, StreamopsError)
    assert isinstance(err, ValueError)
    assert err.tool == "book"
    assert "book" in str(err)
    assert '{"city": "Oslo", "nigh' in str(err)
    assert err.errors[0]["type"] == "json_invalid"


@pytest.mark.anyio
async def test_validation_errors_name_every_field() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        await book.invoke('{"nights": "many", "guests": [1, "x"], "address": {"city": "Oslo"}, "pets": 2}', call_id="c")
    message = str(info.value)
    assert "invalid arguments for tool 'book'" in message
    assert "city: missing required argument" in message
    assert "nights: Input should be a valid integer" in message
    assert "'many'" in message
    assert "guests[1]: Input should be a valid integer" in message
    assert "address.street: missing required argument" in message
    assert "pets: unexpected argument" in message
    assert {tuple(e["loc"]) for e in info.value.errors} >= {("city",), ("nights",), ("guests", 1), ("pets",)}


@pytest.mark.anyio
@pytest.mark.parametrize(("text", "what"), [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number")])
async def test_arguments_must_be_an_object(text: str, what: str) -> None:
    with pytest.raises(ToolArgumentsError, match=f"must be a JSON object, not {what}"):
        await book.invoke(text, call_id="c")


@pytest.mark.anyio
async def test_valid_arguments_are_converted() -> None:
    seen: dict[str, Any] = {}

    @tool
    def f(n: int, unit: Unit, where: Address, /, flag: bool = True) -> str:
        seen.update(n=n, unit=unit, where=where, flag=flag)
        return "ok"

    text = '{"n": "3", "unit": "fahrenheit", "where": {"street": "Main St 1", "city": "Oslo"}}'
    assert await f.invoke(text, call_id="c") == "ok"
    assert seen == {"n": 3, "unit": Unit.FAHRENHEIT, "where": Address(street="Main St 1", city="Oslo"), "flag": True}
    assert isinstance(seen["where"], Address)
    # a mapping works as well as JSON text
    assert await f.invoke(
        {"n": 4, "unit": Unit.CELSIUS, "where": {"street": "s", "city": "c"}, "flag": False}, call_id="c"
    )
    assert seen["n"] == 4
    assert seen["flag"] is False


@pytest.mark.anyio
@pytest.mark.parametrize("text", ["", "  ", "null", "{}"])
async def test_no_arguments(text: str) -> None:
    @tool
    def ping() -> str:
        return "pong"

    assert await ping.invoke(text, call_id="c") == "pong"


@given(
    st.text(max_size=40)
    | st.builds(json.dumps, st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=5)))
)
def test_validate_raises_only_tool_arguments_error(text: str) -> None:
    message = ""
    try:
        args, kwargs = book.validate(text)
    except ToolArgumentsError as exc:
        message = str(exc)
    else:
        assert args == []
        assert set(kwargs) == {"city", "nights", "guests", "address"}
    if message:
        assert message.startswith(("invalid arguments for tool 'book'", "arguments of tool 'book'"))


# --- execution ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sync_tool_runs_in_a_worker_thread_async_on_the_loop() -> None:
    @tool
    def sync_where() -> int:
        return threading.get_ident()

    @tool
    async def async_where() -> int:
        return threading.get_ident()

    loop_thread = threading.get_ident()
    assert await sync_where.invoke("{}", call_id="a") != loop_thread
    assert await async_where.invoke("{}", call_id="b") == loop_thread


@pytest.mark.anyio
async def test_sync_tools_run_in_parallel() -> None:
    # Each call waits at the barrier until the other has arrived: the test only passes if
    # both calls are in their threads at the same time.
    barrier = threading.Barrier(2, timeout=10)

    @tool
    def meet(who: str) -> str:
        barrier.wait()
        return who

    results: dict[str, Any] = {}

    async def call(who: str) -> None:
        results[who] = await meet.invoke({"who": who}, call_id=who)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a")
            tg.start_soon(call, "b")
    assert results == {"a": "a", "b": "b"}


@pytest.mark.anyio
async def test_async_tools_run_concurrently() -> None:
    arrived = {"a": anyio.Event(), "b": anyio.Event()}

    @tool
    async def meet(who: str, other: str) -> str:
        arrived[who].set()
        await arrived[other].wait()
        return who

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(meet.invoke, {"who": "a", "other": "b"}, call_id="a"))
            tg.start_soon(functools.partial(meet.invoke, {"who": "b", "other": "a"}, call_id="b"))


@pytest.mark.anyio
async def test_async_tool_timeout_cancels_it() -> None:
    cleaned_up = []

    @tool(timeout=0.05)
    async def slow() -> str:
        try:
            await anyio.sleep(10)
        finally:
            cleaned_up.append(True)
        return "late"

    with anyio.fail_after(5), pytest.raises(ToolTimeout) as info:
        await slow.invoke("{}", call_id="c")
    err = info.value
    assert isinstance(err, TimeoutError)
    assert isinstance(err, StreamopsError)
    assert (err.tool, err.seconds) == ("slow", 0.05)
    assert str(err) == "tool 'slow' did not finish within 0.05 s"
    assert cleaned_up == [True]


@pytest.mark.anyio
async def test_sync_tool_timeout_abandons_the_thread() -> None:
    release = threading.Event()
    started = threading.Event()
    finished = threading.Event()
    contexts: list[ToolContext] = []
    reports: list[Any] = []

    @tool(timeout=0.5)
    def stuck(ctx: ToolContext) -> str:
        contexts.append(ctx)
        started.set()
        release.wait(5)
        ctx.progress("after the timeout")  # nobody listens any more: a no-op
        finished.set()
        return "late"

    try:
        with anyio.fail_after(4), pytest.raises(ToolTimeout, match=r"'stuck' did not finish within 0\.5 s"):
            await stuck.invoke("{}", call_id="c", progress=reports.append)
        # The worker thread started within the 0.5 s (at 0.05 s a loaded machine sometimes had not
        # started it: anyio then never runs the function).
        assert await anyio.to_thread.run_sync(started.wait, 5)
        assert contexts[0].cancelled
        assert not finished.is_set()  # invoke returned while the thread was still running
    finally:
        release.set()
    assert await anyio.to_thread.run_sync(finished.wait, 5)  # the abandoned thread ends on its own
    assert reports == []


@pytest.mark.anyio
async def test_cancelling_a_sync_call_returns_at_once() -> None:
    release = threading.Event()
    contexts: list[ToolContext] = []

    @tool
    def stuck(ctx: ToolContext) -> None:
        contexts.append(ctx)
        release.wait(5)

    try:
        with anyio.fail_after(4):
            with anyio.move_on_after(0.05) as scope:
                await stuck.invoke("{}", call_id="c")
            assert scope.cancelled_caught
        assert contexts[0].cancelled
    finally:
        release.set()


@pytest.mark.anyio
async def test_the_tools_own_timeout_error_is_not_a_tool_call_timeout() -> None:
    @tool(timeout=5)
    async def f() -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError, match="upstream") as info:
        await f.invoke("{}", call_id="c")
    assert not isinstance(info.value, ToolTimeout)


class Boom(Exception):
    pass


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_tools_exception_propagates_as_itself(kind: str) -> None:
    def fail_sync(x: int) -> None:
        raise Boom(f"bad {x}")

    async def fail_async(x: int) -> None:
        raise Boom(f"bad {x}")

    t = tool(fail_sync if kind == "sync" else fail_async, name="fail", timeout=5)
    with pytest.raises(Boom, match="bad 7"):
        await t.invoke('{"x": 7}', call_id="c")


@pytest.mark.anyio
async def test_progress_from_async_and_sync_tools() -> None:
    loop_thread = threading.get_ident()
    reports: list[tuple[Any, int]] = []

    def on_progress(data: Any) -> None:
        reports.append((data, threading.get_ident()))

    @tool
    async def a_job(steps: int, ctx: ToolContext) -> str:
        for i in range(steps):
            ctx.progress({"step": i, "call": ctx.call_id, "tool": ctx.name})
        return "done"

    @tool
    def s_job(ctx: ToolContext, steps: int) -> str:
        for i in range(steps):
            ctx.progress(Point(x=i, y=0))
        return "done"

    assert await a_job.invoke('{"steps": 2}', call_id="c1", progress=on_progress) == "done"
    assert reports == [
        ({"step": 0, "call": "c1", "tool": "a_job"}, loop_thread),
        ({"step": 1, "call": "c1", "tool": "a_job"}, loop_thread),
    ]
    reports.clear()
    # from the worker thread, reports are delivered on the loop's thread, before invoke returns
    assert await s_job.invoke('{"steps": 2}', call_id="c2", progress=on_progress) == "done"
    assert reports == [({"x": 0.0, "y": 0.0}, loop_thread), ({"x": 1.0, "y": 0.0}, loop_thread)]
    # without a callback, progress is a no-op
    assert await s_job.invoke('{"steps": 2}', call_id="c3") == "done"


def test_tool_context_direct_use() -> None:
    got: list[Any] = []
    ctx = ToolContext("t1", name="x", progress=got.append)
    ctx.progress(Unit.CELSIUS)
    assert got == ["celsius"]
    assert ctx.call_id == "t1"
    assert not ctx.cancelled
    ToolContext("t2").progress("nobody listens")


@pytest.mark.anyio
async def test_results_are_json_data() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    @tool
    def forecast() -> Forecast:
        return Forecast(city="Oslo", temps=[1.5, 2], unit=Unit.CELSIUS, day=datetime.date(2025, 1, 2))

    @tool
    async def point() -> Point:
        return Point(1, 2)

    @tool
    def misc() -> dict[str, Any]:
        return {"when": datetime.datetime(2025, 1, 2, 3, 4, 5), "set": {3}, "tuple": (1, "a"), "opaque": Opaque()}

    @tool
    def plain() -> list[Any]:
        return [1, "a", None, True, 2.5]

    assert await forecast.invoke("{}", call_id="c") == {
        "city": "Oslo",
        "temps": [1.5, 2.0],
        "unit": "celsius",
        "day": "2025-01-02",
    }
    assert await point.invoke("{}", call_id="c") == {"x": 1, "y": 2}
    result = await misc.invoke("{}", call_id="c")
    assert result == {"when": "2025-01-02T03:04:05", "set": [3], "tuple": [1, "a"], "opaque": "opaque!"}
    assert await plain.invoke("{}", call_id="c") == [1, "a", None, True, 2.5]
    json.dumps(result)


@pytest.mark.anyio
async def test_callable_object_and_bound_method() -> None:
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def bump(self, by: int = 1) -> int:
            """Bump the counter."""
            self.n += by
            return self.n

    class AsyncEcho:
        __name__ = "echo"

        async def __call__(self, text: str) -> str:
            return text

    counter = Counter()
    bump = tool(counter.bump)
    assert bump.parameters["properties"] == {"by": {"type": "integer", "default": 1}}
    assert await bump.invoke('{"by": 5}', call_id="c") == 5

    echo = tool(AsyncEcho(), name="echo")
    assert echo.parameters["required"] == ["text"]
    assert await echo.invoke('{"text": "hi"}', call_id="c") == "hi"


def test_unresolvable_type_hint_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot resolve the type hints of tool 'f'"):

        @tool
        def f(x: Nowhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.anyio
async def test_optional_context_parameter_is_injected() -> None:
    @tool
    async def f(x: int, ctx: ToolContext | None = None) -> str:
        return ctx.call_id if ctx is not None else "none"

    assert f.parameters["properties"] == {"x": {"type": "integer"}}
    assert await f.invoke('{"x": 1}', call_id="call-9") == "call-9"
    assert await f(1) == "none"
