"""streamops.adapters.from_run picks the framework adapter from the object given."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic_ai")
pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from streamops.adapters import from_run

import streamops as so

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """pydantic-ai and LangChain run on asyncio only."""
    return "asyncio"


async def test_from_run_pydantic_ai_and_langchain() -> None:
    agent = Agent(TestModel(custom_output_text="hello from pydantic-ai"))
    pa = await from_run(agent.run_stream_events("hi")).collect()
    assert "".join(e.delta for e in pa if isinstance(e, so.TextDelta)) == "hello from pydantic-ai"
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello from langchain")]))
    lc = await from_run(model.astream_events("hi", version="v2")).collect()
    assert "".join(e.delta for e in lc if isinstance(e, so.TextDelta)) == "hello from langchain"


@pytest.mark.parametrize("obj", [object(), [1, 2], "text", None])
def test_anything_else_is_a_type_error_naming_the_kinds(obj: object) -> None:
    with pytest.raises(TypeError, match=r"openai-agents.*pydantic-ai.*LangChain"):
        from_run(obj)
