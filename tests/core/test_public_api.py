"""The public API: an honest ``__all__``, and a light, fast ``import streamops``."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import streamops
import streamops.errors
import streamops.events
import streamops.operators
import streamops.operators.text

PUBLIC_MODULES = (streamops.events, streamops.errors, streamops.operators)
HEAVY = ("pydantic", "pydantic_core", "anyio", "reactivex", "httpx", "openai", "anthropic", "litellm")


def test_all_names_exist() -> None:
    for name in streamops.__all__:
        assert hasattr(streamops, name), name


def test_all_is_sorted_and_has_no_duplicates() -> None:
    names = list(streamops.__all__)
    assert len(names) == len(set(names))
    assert names == sorted(names)


def test_every_public_name_of_the_package_is_in_all() -> None:
    missing = [
        name
        for name, value in vars(streamops).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in streamops.__all__
    ]
    assert missing == []


def test_reexported_names_of_public_modules_are_listed() -> None:
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ lists missing {name}"
            if hasattr(streamops, name):
                assert name in streamops.__all__, f"{name} (from {module.__name__})"
                assert getattr(streamops, name) is getattr(module, name), name


def test_listed_names_come_from_streamops() -> None:
    for name in streamops.__all__:
        value = getattr(streamops, name)
        if isinstance(value, (type, types.FunctionType)):
            assert value.__module__.startswith("streamops."), f"{name} is defined in {value.__module__}"


def test_star_import_gives_exactly_all() -> None:
    ns: dict[str, object] = {}
    exec("from streamops import *", ns)
    ns.pop("__builtins__")
    assert set(ns) == set(streamops.__all__)


def test_version_matches_distribution() -> None:
    from importlib.metadata import version

    assert streamops.__version__ == version("streamops")


_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import streamops
dt = time.perf_counter() - t0
print(json.dumps({"dt": dt, "modules": sorted(sys.modules)}))
"""


def _import_in_subprocess() -> tuple[float, list[str]]:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(out.stdout)
    return float(data["dt"]), list(data["modules"])


def test_import_does_not_pull_heavy_dependencies() -> None:
    _, modules = _import_in_subprocess()
    heavy = [m for m in modules if m.split(".")[0] in HEAVY]
    assert heavy == []
    assert "streamops" in modules  # the probe did import it


def test_parser_internals_and_second_names_are_not_top_level() -> None:
    # Parser/codec internals are public in their own module only; one name per concept.
    import streamops.jsonstream

    for name in (
        "JsonDelta",
        "JsonStreamParser",
        "JsonValueEnd",
        "JsonStreamError",
        "ThinkTagSplitter",
        "ToolCallTimeout",
    ):
        assert name not in streamops.__all__ and not hasattr(streamops, name), name
    assert streamops.jsonstream.JsonStreamParser is not None
    assert streamops.operators.text.ThinkTagSplitter is not None
    assert not hasattr(streamops.operators, "ThinkTagSplitter")


def test_every_operator_is_top_level_and_listed_once() -> None:
    # streamops.__all__ takes the operators' names from streamops.operators.__all__
    assert set(streamops.operators.__all__) <= set(streamops.__all__)
    assert "errors_as_events" in streamops.__all__


def test_errors_are_in_streamops_errors_only() -> None:
    # Users write ``from streamops.errors import StreamFormatError``; the top level holds no
    # error class (StageComplete is a stage's control-flow signal, not an error).
    assert len(streamops.errors.__all__) >= 16
    for name in streamops.errors.__all__:
        assert not hasattr(streamops, name), name
        assert issubclass(getattr(streamops.errors, name), streamops.errors.StreamopsError), name
    errors = [
        name
        for name in streamops.__all__
        if isinstance(getattr(streamops, name), type) and issubclass(getattr(streamops, name), BaseException)
    ]
    assert errors == ["StageComplete"]
    # the modules that raise them still offer them where they were
    from streamops.operators.share import ReplayUnavailableError, SlowConsumerError
    from streamops.tools import ToolArgumentsError

    assert SlowConsumerError is streamops.errors.SlowConsumerError
    assert ReplayUnavailableError is streamops.errors.ReplayUnavailableError
    assert ToolArgumentsError is streamops.errors.ToolArgumentsError
    # ... the stores, resume, server and JSON parser errors too (issue 16: defined in
    # streamops.errors only, offered by the modules that raise them)
    from importlib import import_module

    for name, modules in {
        "LeaseLostError": ("streamops.stores",),
        "RedisNeedsAsyncioError": ("streamops.stores",),
        "ResumeUnavailableError": ("streamops.sinks.resume", "streamops.sinks"),
        "RunLimitError": ("streamops.serve.runlog", "streamops.serve"),
        "JsonStreamError": ("streamops.jsonstream",),
    }.items():
        assert name in streamops.errors.__all__, name
        assert getattr(streamops.errors, name).__module__ == "streamops.errors", name
        for module in modules:
            assert getattr(import_module(module), name) is getattr(streamops.errors, name), (module, name)


def test_no_error_class_is_defined_outside_streamops_errors() -> None:
    """Every exception class of the library and its adapters is defined in streamops.errors,
    except private control-flow signals (a leading underscore, or StageComplete, never raised
    to users) and the server's internal BodyError (always turned into an HTTP answer)."""
    import ast
    from pathlib import Path

    root = Path(streamops.__file__).resolve().parent.parent
    allowed = {"StageComplete", "BodyError"}
    found = []
    for path in [*sorted((root / "streamops").rglob("*.py")), *sorted((root / "adapters").rglob("*.py"))]:
        if path.name == "errors.py" and path.parent.name == "streamops":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_") or node.name in allowed:
                continue
            bases = {ast.unparse(b).rpartition(".")[2] for b in node.bases}
            if any(b.endswith(("Error", "Exception", "Timeout")) for b in bases):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    assert found == []
