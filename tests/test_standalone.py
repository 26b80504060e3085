"""The checkout stands alone: no test, benchmark, doc example or library module reads a folder
outside it (a fresh clone must test with nothing beside it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"

# a path climbing out of the checkout: "../shared", ".parent / "shared"", parents[N] past the root
_OUTSIDE = re.compile(r"\.\./shared|\"shared\"\s*/|'shared'\s*/")


def _python_files() -> list[Path]:
    out: list[Path] = []
    for top in ("streamops", "adapters", "tests", "benchmarks", "docs"):
        out += [p for p in (ROOT / top).rglob("*.py") if "fixtures" not in p.parts]
    return out


def test_no_code_reads_outside_the_checkout() -> None:
    offenders = []
    for path in _python_files():
        text = path.read_text(encoding="utf-8")
        if path.name != "test_standalone.py" and _OUTSIDE.search(text):
            offenders.append(str(path.relative_to(ROOT)))
        # parents[k] resolved from a file k+1 folders deep reaches the checkout's parent
        depth = len(path.relative_to(ROOT).parts)
        for m in re.finditer(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\](\.parent)?", text):
            k = int(m.group(1)) + (1 if m.group(2) else 0)
            if k >= depth:
                offenders.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert offenders == []


def test_recorded_streams_are_vendored_with_their_index_and_provenance() -> None:
    index = (RECORDED / "INDEX.tsv").read_text(encoding="utf-8").splitlines()
    assert (RECORDED / "README.md").is_file()
    bodies = sorted(p for p in RECORDED.rglob("*") if p.is_file() and p.suffix not in {".json", ".md", ".tsv"})
    expected = sorted(RECORDED.rglob("*.expected.json"))
    assert len(bodies) == 67 and len(expected) == 67
    # every body the index names is present
    named = [line.split("\t")[0] for line in index[1:] if line.strip()]
    assert len(named) == 67 and all((RECORDED / n).is_file() for n in named)


def test_every_package_folder_is_listed_for_setuptools() -> None:
    # pyproject.toml lists packages explicitly: a package folder left out is missing from the
    # wheel (an editable install still finds it, so only a fresh wheel install would show it).
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"streamops.adapters"}
    for init in (ROOT / "streamops").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    for init in (ROOT / "adapters").rglob("__init__.py"):
        found.add(".".join(("streamops", "adapters", *init.parent.relative_to(ROOT / "adapters").parts)))
    assert found == listed


def test_every_test_path_ci_names_exists() -> None:
    # .ci/run names test folders for its newest-dependencies pass: a renamed folder would make
    # that pass fail (or, with --ignore, silently test less).
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    paths = set(re.findall(r"(?<![\w/])(tests/[\w./-]+)", script))
    assert paths and sorted(p for p in paths if not (ROOT / p.rstrip(".")).exists()) == []
