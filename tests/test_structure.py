"""Structural rules the code must keep (PEP 789): no async generator in the library holds a
task group or a terminal's iteration (which opens one) across a ``yield``; context managers
(``@asynccontextmanager``) are the place for them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


ALLOWED = ("aclosing", "closing")
"""Context managers an async generator may hold across a ``yield``: they only close an
iterator, they open no task group or cancel scope. Anything else (a task group, a cancel scope,
``move_on_after``/``fail_after``, a terminal's ``iterate()``, a lock) held across a ``yield``
is exited in whatever task happens to resume or finalize the generator (PEP 789)."""


def _offenders(files: list[Path], root: Path = ROOT) -> list[str]:
    out = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in _async_generators(tree):
            for node in ast.walk(fn):
                if isinstance(node, (ast.AsyncWith, ast.With)) and any(
                    isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node)
                ):
                    for item in node.items:
                        name = _called_name(item.context_expr)
                        if name not in ALLOWED:
                            what = ast.unparse(item.context_expr)[:60]
                            out.append(f"{path.relative_to(root)}:{node.lineno} {fn.name}: with {what}")
    return out


def test_no_async_generator_holds_a_context_across_a_yield() -> None:
    files = [*sorted((ROOT / "streamops").rglob("*.py")), *sorted((ROOT / "adapters").rglob("*.py"))]
    assert len(files) > 20
    offenders = _offenders(files)
    assert not offenders, "context held across a yield (PEP 789):\n" + "\n".join(offenders)


def test_the_rule_catches_what_it_forbids(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import anyio\n"
        "async def a(s):\n"
        "    async with anyio.create_task_group() as tg:\n"
        "        yield 1\n"
        "async def b(s):\n"
        "    with anyio.move_on_after(1):\n"
        "        async for x in s:\n"
        "            yield x\n"
        "async def c(s):\n"
        "    async with s.iterate() as it:\n"
        "        yield 2\n"
        "async def ok(s):\n"
        "    async with aclosing(s.__aiter__()) as it:\n"
        "        yield 3\n"
        "    async with anyio.create_task_group():\n"
        "        pass\n"
        "    yield 4\n",
        encoding="utf-8",
    )
    found = _offenders([bad], tmp_path)
    assert [line.split(" ")[1].rstrip(":") for line in found] == ["a", "b", "c"]
