"""Structural rules the code must keep.

- PEP 789: no async generator in the library holds a task group or a terminal's iteration
  (which opens one) across a ``yield``; context managers (``@asynccontextmanager``) are the
  place for them.
- Layering: events <- core <- operators <- adapters/agent <- sinks <- serve/cli; no module
  imports a higher floor, and no import cycle exists, lazy (function-level) imports included.
"""

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


# ----------------------------------------------------------------------------- layering
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("events", ("streamops.errors", "streamops.events")),
    (
        "core",
        (
            "streamops._stream",
            "streamops._host",
            "streamops._bridge",
            "streamops._pump",
            "streamops._lazy",
            "streamops.jsonstream",
            "streamops.sse",
            "streamops.rx",
            "streamops.models",
            "streamops.testing",
        ),
    ),
    ("operators", ("streamops.operators",)),
    ("adapters/agent", ("streamops.adapters", "streamops.agent", "streamops.tools")),
    ("sinks", ("streamops.sinks",)),
    ("stores", ("streamops.stores",)),
    ("serve/cli", ("streamops.serve", "streamops.bench", "streamops.cli", "streamops.__main__")),
)
"""The floors, lowest first: a module may import its own floor and the floors below it, never
one above (not even in a function). ``streamops`` itself (the re-export surface) sits above
them all and nothing in the library may import it."""


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "adapters":  # installed as streamops.adapters (pyproject's package-dir)
        parts = ["streamops", *parts]
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def _floor(module: str) -> int:
    for i, (_, prefixes) in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is on no floor: add it to FLOORS in tests/test_structure.py")


def _library_modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Every library module by name: ``(path, is_package)``."""
    files = [*sorted((root / "streamops").rglob("*.py")), *sorted((root / "adapters").rglob("*.py"))]
    modules = {}
    for p in files:
        name, is_pkg = _module_name(p, root)
        modules[name] = (p, is_pkg)
    return modules


def _dynamic_targets(node: ast.AST, package: str, lazy_exports: bool) -> list[str] | None:
    """The modules a statement imports without an ``import`` statement, or ``None``:
    ``importlib.import_module("a.b")`` with a literal name, and the submodules a package's
    ``_MODULES`` table names when the package hands it to ``LazyExports`` (streamops/_lazy.py)."""
    if isinstance(node, ast.Call) and _called_name(node) == "import_module" and node.args:
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return [arg.value]
    if lazy_exports and isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(isinstance(t, ast.Name) and t.id == "_MODULES" for t in targets):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            return [f"{package}.{k}" for k in keys]
    return None


def _imports(root: Path) -> list[tuple[str, str, bool, int]]:
    """Every import between library modules: ``(importer, imported, type_only, line)``, module
    level or inside functions (lazy imports count, and so do ``importlib.import_module("...")``
    and a ``LazyExports`` table); ``type_only``: under ``if TYPE_CHECKING``."""
    modules = _library_modules(root)
    out = []
    for name, (path, is_pkg) in modules.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        type_only = {
            id(x)
            for n in ast.walk(tree)
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
            for b in n.body
            for x in ast.walk(b)
        }
        package = name if is_pkg else name.rpartition(".")[0]
        lazy_exports = is_pkg and "LazyExports(" in text
        for node in ast.walk(tree):
            dynamic = _dynamic_targets(node, package, lazy_exports)
            if dynamic is not None:
                targets = dynamic
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = package
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for t in targets:
                if t in modules and t != name:
                    out.append((name, t, id(node) in type_only, node.lineno))
    return out


def _layer_violations(imports: list[tuple[str, str, bool, int]]) -> list[str]:
    bad = []
    for src, dst, _, line in imports:
        if src == "streamops":
            continue
        if dst == "streamops":
            bad.append(f"{src}:{line} imports the top-level package streamops")
            continue
        if _floor(dst) > _floor(src):
            bad.append(f"{src}:{line} ({FLOORS[_floor(src)][0]}) imports {dst} ({FLOORS[_floor(dst)][0]})")
    return bad


def _cycles(imports: list[tuple[str, str, bool, int]]) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module) among runtime
    imports, lazy ones included (``TYPE_CHECKING`` imports never run, so they close no cycle)."""
    graph: dict[str, set[str]] = {}
    for src, dst, type_only, _ in imports:
        if not type_only:
            graph.setdefault(src, set()).add(dst)
            graph.setdefault(dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_a_higher_floor() -> None:
    imports = _imports(ROOT)
    assert len(imports) > 100
    bad = _layer_violations(imports)
    assert not bad, "imports from a lower floor to a higher one:\n" + "\n".join(bad)


def test_every_module_is_on_a_floor_and_every_floor_entry_exists() -> None:
    # A module that imports nothing would escape the layering check if it were on no floor;
    # a stale entry (a module renamed away) would let a new module of that name in unplaced.
    modules = set(_library_modules(ROOT)) - {"streamops"}
    unplaced = []
    for m in sorted(modules):
        try:
            _floor(m)
        except AssertionError:
            unplaced.append(m)
    assert unplaced == [], f"modules on no floor (add them to FLOORS): {unplaced}"
    stale = [p for _, prefixes in FLOORS for p in prefixes if p not in modules]
    assert stale == [], f"FLOORS names modules that do not exist: {stale}"


def test_no_import_cycle_even_through_lazy_imports() -> None:
    cycles = _cycles(_imports(ROOT))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_layering_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    (tmp_path / "streamops" / "operators").mkdir(parents=True)
    (tmp_path / "adapters").mkdir()
    (tmp_path / "streamops" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "streamops" / "events.py").write_text(
        "def f():\n    from .operators import text\n", encoding="utf-8"
    )  # lazy, upward
    (tmp_path / "streamops" / "operators" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "streamops" / "operators" / "text.py").write_text(
        "from ..events import f\nimport streamops.sinks\n", encoding="utf-8"
    )
    (tmp_path / "adapters" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from streamops.operators import text\n",
        encoding="utf-8",
    )
    (tmp_path / "streamops" / "sinks").mkdir()
    (tmp_path / "streamops" / "sinks" / "__init__.py").write_text(
        "_MODULES = {'sse': ('x',)}\n_EXPORTS = LazyExports(globals(), _MODULES)\n", encoding="utf-8"
    )
    (tmp_path / "streamops" / "sinks" / "sse.py").write_text(
        "import importlib\ndef f():\n    return importlib.import_module('streamops.sinks')\n", encoding="utf-8"
    )
    imports = _imports(tmp_path)
    assert ("streamops.adapters", "streamops.operators.text", True, 3) in imports
    assert _layer_violations(imports) == [
        "streamops.events:2 (events) imports streamops.operators (operators)",
        "streamops.events:2 (events) imports streamops.operators.text (operators)",
        "streamops.operators.text:2 (operators) imports streamops.sinks (sinks)",
    ]
    assert sorted(_cycles(imports)) == [
        ["streamops.events", "streamops.operators.text"],
        ["streamops.sinks", "streamops.sinks.sse"],  # a LazyExports table and an import_module call
    ]


# ----------------------------------------------------------------------------- async property tests


def _async_given_with_data(files: list[Path]) -> list[str]:
    """Async tests whose ``@given`` passes ``st.data()``: drawing inside an async test body
    lets hypothesis' ``StopTest`` (a BaseException, raised when a draw overruns) kill anyio's
    test-runner task, whose exception is then never retrieved; asyncio logs it into a later
    test (it failed test_combine's "nothing logged" check in full runs). Draw in ``@given``."""
    out = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.AsyncFunctionDef):
                continue
            for dec in node.decorator_list:
                name = getattr(dec.func, "id", getattr(dec.func, "attr", "")) if isinstance(dec, ast.Call) else ""
                if name != "given" or not isinstance(dec, ast.Call):
                    continue
                for arg in [*dec.args, *(k.value for k in dec.keywords)]:
                    if isinstance(arg, ast.Call) and getattr(arg.func, "attr", getattr(arg.func, "id", "")) == "data":
                        out.append(f"{path.name}:{node.lineno} {node.name}")
    return out


def test_no_async_property_test_draws_in_its_body() -> None:
    files = sorted((ROOT / "tests").rglob("test_*.py"))
    assert len(files) > 20
    assert _async_given_with_data(files) == []


def test_the_draw_rule_catches_what_it_forbids(tmp_path: Path) -> None:
    bad = tmp_path / "test_bad.py"
    bad.write_text(
        "from hypothesis import given, strategies as st\n"
        "@given(data=st.data())\n"
        "async def test_a(data): ...\n"
        "@given(st.data(), st.integers())\n"
        "async def test_b(data, n): ...\n"
        "@given(data=st.data())\n"
        "def test_sync_ok(data): ...\n"
        "@given(n=st.integers())\n"
        "async def test_async_ok(n): ...\n",
        encoding="utf-8",
    )
    assert [f.split(" ")[1] for f in _async_given_with_data([bad])] == ["test_a", "test_b"]
