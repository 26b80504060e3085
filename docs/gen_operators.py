"""Write docs/operators.md from the operators' docstrings.

Run ``python docs/gen_operators.py`` after changing an operator; a test checks the page is
up to date.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "operators.md"


def render() -> str:
    """The operator reference page, as Markdown."""
    import streamops.operators as ops

    families: dict[str, list[str]] = {}
    for name in ops.__all__:
        obj = getattr(ops, name)
        if not inspect.isfunction(obj):
            continue
        family = obj.__module__.rsplit(".", 1)[-1]
        families.setdefault(family, []).append(name)
    lines = [
        "# Operator reference",
        "",
        "Generated from the docstrings by `python docs/gen_operators.py`; do not edit by hand.",
        "Every operator says when it emits, completes, fails and cancels, and what it buffers.",
        "",
    ]
    for family in sorted(families):
        module = sys.modules[f"streamops.operators.{family}"]
        lines += [f"## {family}", "", inspect.cleandoc(module.__doc__ or ""), ""]
        for name in families[family]:
            obj = getattr(ops, name)
            sig = str(inspect.signature(obj)).replace("'", "")
            lines += [f"### `{name}{sig}`", "", inspect.cleandoc(obj.__doc__ or ""), ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}")
