"""Agent factories for the dispatch tests (``streamops worker --agent tests.serve._dispatch_agents:paced``).

``paced``: the user message is JSON ``{"tag": str, "n": int, "delay": float}``; the agent's
model streams ``n`` text deltas ``"{tag}-{i} "``, one every ``delay`` seconds: a run whose whole
event stream the test knows, and that lasts as long as the test needs (to kill its worker)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import anyio

import streamops as so
from streamops.agent import Agent
from streamops.serve.app import ChatCompletionRequest
from tests._models import FakeModel, ModelCall


def spec_of(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return dict(json.loads(str(messages[-1]["content"])))


def expected_text(tag: str, n: int) -> str:
    return "".join(f"{tag}-{i} " for i in range(n))


class PacedModel(FakeModel):
    name = "paced"

    async def respond(self, call: ModelCall) -> AsyncGenerator[so.BaseEvent, None]:
        spec, env = spec_of(call.messages), call.env
        yield so.RunStart(model=self.name, **env)
        for i in range(int(spec["n"])):
            await anyio.sleep(float(spec.get("delay", 0)))
            yield so.TextDelta(delta=f"{spec['tag']}-{i} ", **env)
        yield so.RunEnd(finish_reason="stop", raw_finish_reason="stop", **env)


def paced(request: ChatCompletionRequest) -> Agent:
    return Agent(PacedModel())
