"""Lazy re-exports for a package's ``__init__`` (PEP 562 module ``__getattr__``).

The package says which of its modules defines each exported name; a name is imported from its
module on first access and then kept as a plain attribute of the package. Used by
:mod:`streamops.sinks` and :mod:`streamops.serve`, whose modules need optional dependencies
(starlette, ag-ui, a2a-sdk) that importing the package must not pull in.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["LazyExports"]


class LazyExports:
    """The exports of one package, resolved on first access.

    ``namespace`` is the package's ``globals()`` (its ``__name__`` names the package, its
    ``__all__`` the public names); ``modules`` maps each submodule (relative name) to the names
    it exports through the package. The package's ``__getattr__`` calls :meth:`get`, its
    ``__dir__`` calls :meth:`names`.
    """

    __slots__ = ("_namespace", "_package", "_where")

    def __init__(self, namespace: dict[str, Any], modules: Mapping[str, Iterable[str]]) -> None:
        self._namespace = namespace
        self._package: str = namespace["__name__"]
        self._where = {name: module for module, names in modules.items() for name in names}

    def get(self, name: str) -> Any:
        """The exported object ``name``, imported from its module and cached in the package.

        Raises:
            AttributeError: ``name`` is not exported by the package (what ``getattr`` expects).
        """
        module = self._where.get(name)
        if module is None:
            raise AttributeError(f"module {self._package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{self._package}.{module}"), name)
        self._namespace[name] = value  # the next lookup is a plain attribute
        return value

    def names(self) -> list[str]:
        """What ``dir(package)`` lists: its attributes so far and every exported name."""
        return sorted({*self._namespace, *self._namespace.get("__all__", ())})
