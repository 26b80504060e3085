"""The docs stay true to the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operator_reference_is_generated_from_current_docstrings() -> None:
    spec = importlib.util.spec_from_file_location("gen_operators", ROOT / "docs" / "gen_operators.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "docs" / "operators.md").read_text(encoding="utf-8") == mod.render(), (
        "docs/operators.md is stale: run python docs/gen_operators.py"
    )


def test_performance_page_is_generated_from_the_benchmark_results() -> None:
    import json

    spec = importlib.util.spec_from_file_location("gen_performance", ROOT / "docs" / "gen_performance.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    page = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert page == mod.render(), "docs/performance.md is stale: run python docs/gen_performance.py"
    # A target that fails must be explained by hand under "Where a target holds only partly",
    # naming the target or its case.
    prose = mod.hand_written(page)
    heading = "Where a target holds only partly"
    assert heading in prose
    partly = prose[prose.index(heading) :].split("\n## ", 1)[0]
    data = json.loads((ROOT / "docs" / "performance.json").read_text(encoding="utf-8"))
    assert data["targets"], "docs/performance.json has no targets: not a full run?"
    assert not data["quick"], "docs/performance.json must come from a full run, not --quick"
    labels = {c["key"]: mod.case_label(c) for c in data["cases"]}
    for target in data["targets"]:
        named = target["name"] in partly or labels.get(target["case"], target["name"]) in partly
        assert target["pass"] or named, (
            f"target {target['name']!r} fails in docs/performance.json: docs/performance.md must say "
            f"why under {heading!r}, naming the target or its case"
        )


def test_every_operator_docstring_states_emits_completes_fails_cancels() -> None:
    import inspect

    import streamops.operators as ops

    for name in ops.__all__:
        obj = getattr(ops, name)
        if not inspect.isfunction(obj) or name == "assemble":
            continue
        doc = obj.__doc__ or ""
        for word in ("Emits:", "Completes:", "Fails:", "Cancels:", "Marble:"):
            assert word in doc, f"{name}: docstring lacks {word!r}"


def test_readme_starts_with_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    first, second = blocks[0].strip(), blocks[1].strip()
    assert first.startswith("pip install") and "streamops " in first
    assert second.startswith("pip install") and "pytest" in second
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert second in ci, ".ci/run must call the README's test command verbatim"


def test_readme_names_every_test_file_that_needs_more_than_pip() -> None:
    # the tests that run Node.js (the ai npm package) or Chromium: the README lists each file
    # and the step that installs what it needs; .ci/run performs those steps
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    needs: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        src = path.read_text(encoding="utf-8")
        if path.name != "test_docs.py" and ("webdriver" in src or "check_ui_stream.mjs" in src):
            needs.add(path.relative_to(ROOT).as_posix())
    assert "tests/serve/test_browser.py" in needs
    for name in sorted(needs):
        assert name in readme, f"README.md does not say that {name} needs more than pip"
    for step in ("npm ci --prefix tests/js", "chromium-driver"):
        assert step in readme and step in ci
