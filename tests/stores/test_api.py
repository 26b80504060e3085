"""The stores' public surface is honest, and the package keeps to its floor: it imports from
events, core, operators and sinks, never from the server or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamops.stores as stores

PKG = Path(stores.__file__).resolve().parent


def test_all_names_exist_and_are_sorted() -> None:
    for name in stores.__all__:
        assert getattr(stores, name) is not None, name
    assert list(stores.__all__) == sorted(stores.__all__)


def test_no_import_upward_into_serve_or_cli() -> None:
    bad = []
    for path in sorted(PKG.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                if any(part in ("server", "cli", "serve") for part in mod.lstrip(".").split(".")):
                    bad.append(f"{path.name}: from {mod}")
            elif isinstance(node, ast.Import):
                bad += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("streamops.serve")]
    assert bad == []


def test_open_store_urls(tmp_path: Path) -> None:
    assert type(stores.open_store("memory:")).__name__ == "MemoryStore"
    s = stores.open_store(f"sqlite:{tmp_path / 'x.db'}")
    assert isinstance(s, stores.SQLiteStore) and s.path == str(tmp_path / "x.db")
    r = stores.open_store("redis://127.0.0.1:1/0", lease=2.0)
    assert isinstance(r, stores.RedisStore) and r.lease == 2.0
    for bad in ("sqlite:", "postgres://x", "nope"):
        with pytest.raises(ValueError, match=r"sqlite|store URL"):
            stores.open_store(bad)
    with pytest.raises(ValueError, match="max_events"):
        stores.MemoryStore(max_events=0)
    with pytest.raises(ValueError, match="lease"):
        stores.MemoryStore(lease=float("inf"))
