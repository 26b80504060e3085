"""Structural rules the code must keep (PEP 789): no async generator in the library holds a
task group or a terminal's iteration (which opens one) across a ``yield``; context managers
(``@asynccontextmanager``) are the place for them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("iterate", "hosted", "task_scope", "create_task_group", "open_nursery")


def _async_generators(tree: ast.AST) -> list[ast.AsyncFunctionDef]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef):
            own = [
                n
                for n in ast.walk(node)
                if isinstance(n, (ast.Yield, ast.YieldFrom))
                and not any(
                    isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and f is not node
                    for f in _parents(node, n)
                )
            ]
            decorators = {d.id if isinstance(d, ast.Name) else getattr(d, "attr", "") for d in node.decorator_list}
            # an @asynccontextmanager's single yield *is* the body of the with-block: allowed
            if own and "asynccontextmanager" not in decorators:
                out.append(node)
    return out


def _parents(root: ast.AST, target: ast.AST) -> list[ast.AST]:
    path: list[ast.AST] = []

    def visit(n: ast.AST) -> bool:
        if n is target:
            return True
        for child in ast.iter_child_nodes(n):
            path.append(n)
            if visit(child):
                return True
            path.pop()
        return False

    visit(root)
    return path


def _called_name(expr: ast.expr) -> str:
    if isinstance(expr, ast.Call):
        f = expr.func
        if isinstance(f, ast.Attribute):
            return f.attr
        if isinstance(f, ast.Name):
            return f.id
    return ""


def test_no_async_generator_holds_a_task_group_across_a_yield() -> None:
    offenders = []
    files = [*sorted((ROOT / "streamops").rglob("*.py")), *sorted((ROOT / "adapters").rglob("*.py"))]
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in _async_generators(tree):
            for node in ast.walk(fn):
                if isinstance(node, ast.AsyncWith):
                    for item in node.items:
                        name = _called_name(item.context_expr)
                        has_yield = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node))
                        if name in FORBIDDEN and has_yield:
                            offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {fn.name}: async with {name}()")
    assert not offenders, "task group held across a yield:\n" + "\n".join(offenders)
