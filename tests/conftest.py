"""Shared test setup: every async test runs on asyncio and on trio (anyio's pytest plugin)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("default")

RECORDED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "recorded"
"""The recorded provider streams (``../shared/fixtures/recorded`` beside the checkout)."""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
