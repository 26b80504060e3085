"""``LazyExports``: a package's names imported from their module on first access (the
``__getattr__``/``__dir__`` of ``streamops.sinks`` and ``streamops.serve``)."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module

import pytest

from streamops._lazy import LazyExports


def test_a_name_is_imported_on_first_access_then_kept() -> None:
    import streamops.serve as serve

    listed = [name for names in serve._MODULES.values() for name in names]
    assert sorted(listed) == sorted(serve.__all__)
    for module, names in serve._MODULES.items():
        for name in names:
            value = getattr(serve, name)
            assert value is getattr(import_module(f"streamops.serve.{module}"), name), name
            assert vars(serve)[name] is value  # cached: the next lookup is a plain attribute
    assert set(serve.__all__) <= set(dir(serve))


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    import streamops.serve as serve

    with pytest.raises(AttributeError, match=r"'streamops\.serve' has no attribute 'nope'"):
        serve.nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(serve, "_nope")


def test_names_lists_the_attributes_and_the_public_names() -> None:
    exports = LazyExports({"__name__": "os", "__all__": ["path", "sep"], "x": 1}, {"path": ("sep",)})
    assert exports.names() == ["__all__", "__name__", "path", "sep", "x"]
    with pytest.raises(AttributeError, match="'os' has no attribute 'path'"):
        exports.get("path")  # exported by no module listed


def test_importing_serve_imports_none_of_its_modules() -> None:
    probe = "import json, sys, streamops.serve; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert "streamops.serve" in out.stdout
    assert "streamops.serve." not in out.stdout and "starlette" not in out.stdout
