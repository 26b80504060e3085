"""``streamops.sinks``: every sink module's public API, importable from the package, lazily."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from importlib import import_module

import pytest

import streamops.sinks as sinks

HEAVY = ("starlette", "pydantic", "pydantic_core", "ag_ui", "a2a")
SINK_MODULES = sorted(m.name for m in pkgutil.iter_modules(sinks.__path__) if not m.name.startswith("_"))


def test_all_is_sorted_without_duplicates() -> None:
    names = list(sinks.__all__)
    assert names == sorted(set(names))


def test_every_name_resolves_to_its_modules_object() -> None:
    for name in sinks.__all__:
        value = getattr(sinks, name)
        assert any(getattr(import_module(f"streamops.sinks.{m}"), name, None) is value for m in SINK_MODULES), name
    assert "DONE" in dir(sinks) and "sse_response" in dir(sinks)


def test_every_sink_modules_all_is_exported() -> None:
    assert [
        *("a2a", "agui", "encoder", "ndjson", "openai", "render", "resume", "sse", "text", "vercel", "websocket")
    ] == SINK_MODULES
    for m in SINK_MODULES:
        module = import_module(f"streamops.sinks.{m}")
        for name in module.__all__:
            assert name in sinks.__all__, f"{m}.{name}"
            assert getattr(sinks, name) is getattr(module, name), f"{m}.{name}"
            assert name in (sinks.__doc__ or ""), f"{name} is not in the package docstring"


def test_star_import_gives_exactly_all() -> None:
    ns: dict[str, object] = {}
    exec("from streamops.sinks import *", ns)
    ns.pop("__builtins__")
    assert set(ns) == set(sinks.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="nope"):
        sinks.nope  # type: ignore[attr-defined]  # noqa: B018


_PROBE = """
import json, sys
import streamops.sinks
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_package_imports_no_server_or_protocol_dependency() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60)
    modules = json.loads(out.stdout)
    assert "streamops.sinks" in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
    assert [m for m in modules if m.startswith("streamops.sinks.")] == []  # no sink module either
