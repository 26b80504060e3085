"""A fake tool-calling LangChain chat model for the adapter tests (GenericFakeChatModel streams
text only): each call pops the next scripted ``AIMessage`` and streams it the way real chat
models do: text word by word, reasoning as ``reasoning`` content blocks, each tool call as
``tool_call_chunks`` (id and name in the first chunk, the arguments in two pieces), then a
last chunk with ``usage_metadata`` and ``finish_reason``."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field


class FakeToolModel(BaseChatModel):
    """Scripted chat model: ``script`` is the list of replies, in order; ``reasoning`` maps a
    reply index to reasoning text streamed before it; ``fail_at`` raises mid-stream of that
    reply (after its first chunk)."""

    script: list[AIMessage]
    reasoning: dict[int, str] = Field(default_factory=dict)
    fail_at: int | None = None
    calls: int = 0
    sent: int = 0

    @property
    def _llm_type(self) -> str:
        return "fake-tool-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeToolModel:  # type: ignore[override]
        return self

    def _chunks(self) -> Iterator[AIMessageChunk]:
        i = self.calls
        self.calls += 1
        msg = self.script[i]
        if i in self.reasoning:
            for word in re.findall(r"\S+\s*", self.reasoning[i]):
                yield AIMessageChunk(content=[{"type": "reasoning", "reasoning": word, "index": 0}])
        text = msg.content if isinstance(msg.content, str) else ""
        for n, word in enumerate(re.findall(r"\s*\S+", text)):
            if self.fail_at == i and n == 1:
                raise RuntimeError("model connection lost")
            self.sent += 1
            yield AIMessageChunk(content=word)
        for k, tc in enumerate(msg.tool_calls):
            args = json.dumps(tc["args"])
            half = len(args) // 2
            yield AIMessageChunk(
                content="", tool_call_chunks=[{"name": tc["name"], "args": args[:half], "id": tc["id"], "index": k}]
            )
            rest = {"name": None, "args": args[half:], "id": None, "index": k}
            yield AIMessageChunk(content="", tool_call_chunks=[rest])
        yield AIMessageChunk(
            content="",
            usage_metadata={"input_tokens": 10 + i, "output_tokens": 5 + i, "total_tokens": 15 + 2 * i},
            response_metadata={"finish_reason": "tool_calls" if msg.tool_calls else "stop"},
            chunk_position="last",
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunk: AIMessageChunk | None = None
        for c in self._chunks():
            chunk = c if chunk is None else chunk + c
        assert chunk is not None
        return ChatResult(generations=[ChatGeneration(message=chunk)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for c in self._chunks():
            yield ChatGenerationChunk(message=c)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for c in self._chunks():
            yield ChatGenerationChunk(message=c)
