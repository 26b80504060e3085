"""Shared test setup: every async test runs on asyncio and on trio (anyio's pytest plugin)."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("default")

RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded"
"""The recorded provider streams (``tests/fixtures/recorded``, vendored from the providers recordings)."""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the damaged-stream outcome counts of ``tests/adapters/test_fuzz.py`` and the attack
    suites' counts (``tests/attack``: inputs tried, handled cleanly), for those that ran."""
    attacks = [
        (name, counts)
        for mod_name, mod in sorted(sys.modules.items())
        if mod_name.startswith("tests.attack.")
        for name, counts in sorted(getattr(mod, "COUNTS", {}).items())
    ]
    if attacks:
        w = max(len(name) for name, _ in attacks)
        terminalreporter.section("attack suites: inputs tried / handled cleanly")
        for name, (tried, clean) in attacks:
            terminalreporter.write_line(f"{name:<{w}}  {tried:>7}  {clean:>7}")
        tried_all = sum(t for _, (t, _) in attacks)
        clean_all = sum(c for _, (_, c) in attacks)
        terminalreporter.write_line(f"{'total':<{w}}  {tried_all:>7}  {clean_all:>7}")
    _fuzz_summary(terminalreporter)


def _fuzz_summary(terminalreporter: Any) -> None:
    mod = sys.modules.get("tests.adapters.test_fuzz")
    counts = getattr(mod, "FUZZ_COUNTS", None)
    if not counts:
        return
    outcomes: tuple[str, ...] = mod.OUTCOMES  # type: ignore[union-attr]
    rows = sorted({(kind, policy) for kind, policy, _ in counts})
    w = max(len(f"{k} / {p}") for k, p in rows)
    tr = terminalreporter
    tr.section("fuzz: damaged recorded streams, outcomes per damage kind / policy")
    tr.write_line(f"{'damage / on_malformed':<{w}}  " + "  ".join(f"{o:>20}" for o in outcomes))
    totals: Counter[str] = Counter()
    for kind, policy in rows:
        cells = [counts.get((kind, policy, o), 0) for o in outcomes]
        totals.update(dict(zip(outcomes, cells, strict=True)))
        tr.write_line(f"{f'{kind} / {policy}':<{w}}  " + "  ".join(f"{c:>20}" for c in cells))
    tr.write_line(f"{'total':<{w}}  " + "  ".join(f"{totals[o]:>20}" for o in outcomes))
