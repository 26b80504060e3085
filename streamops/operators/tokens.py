"""Token operators: ``count_tokens`` (a live estimate reconciled with the provider's usage)
and ``budget`` (end a run mid-stream when it spends too much).

Tokenizer: the tiktoken encodings bundled with LiteLLM (``o200k_base``, ``cl100k_base``,
``p50k_base``), read from LiteLLM's package folder with tiktoken's cache variable, so nothing
is downloaded. Neither litellm nor tiktoken is imported until an operator first runs; loading
an encoding takes 0.5-2 s once per process and happens in a worker thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._stream import Stream, _GenSource
from ..events import (
    BaseEvent,
    ReasoningDelta,
    RefusalDelta,
    RunEnd,
    RunStart,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)

__all__ = ["TokenCount", "TokenCounter", "budget", "count_tokens", "load_encoding"]

T = TypeVar("T")

_ENCODINGS: dict[str, Any] = {}
_LOCK = threading.Lock()


def load_encoding(name: str = "o200k_base") -> Callable[[str], int]:
    """A function counting the tokens of a text with tiktoken encoding ``name``, offline.

    The encoding files come from LiteLLM's bundled tokenizer folder (``o200k_base``,
    ``cl100k_base`` and ``p50k_base`` are there). Blocking (0.5-2 s on first call); cached.

    Raises:
        RuntimeError: tiktoken or litellm is not installed (``pip install "streamops[litellm]"``),
            or the encoding is not bundled (it would have to be downloaded).
    """
    with _LOCK:
        enc = _ENCODINGS.get(name)
        if enc is None:
            import importlib.util

            spec = importlib.util.find_spec("litellm")
            if spec is None or not spec.submodule_search_locations:
                raise RuntimeError(
                    'token counting needs the encodings bundled with litellm: pip install "streamops[litellm]"'
                )
            folder = os.path.join(spec.submodule_search_locations[0], "litellm_core_utils", "tokenizers")
            os.environ.setdefault("TIKTOKEN_CACHE_DIR", folder)
            try:
                import tiktoken
            except ImportError as exc:  # pragma: no cover - tiktoken comes with litellm
                raise RuntimeError('token counting needs tiktoken: pip install "streamops[litellm]"') from exc
            try:
                enc = tiktoken.get_encoding(name)
            except Exception as exc:
                raise RuntimeError(f"tiktoken encoding {name!r} is not bundled with litellm here ({exc})") from None
            _ENCODINGS[name] = enc
    encode = enc.encode_ordinary
    return lambda text: len(encode(text))


@dataclass(slots=True, kw_only=True)
class TokenCount:
    """Token figures of one run (one agent's model response or agent run)."""

    agent: str = ""
    """The agent's name."""
    run_id: str = ""
    """The run's id."""
    estimated_output: int = 0
    """Output tokens counted so far by the tokenizer (text, reasoning, refusal, tool arguments)."""
    provider: Usage | None = None
    """The provider's own figures, once reported (cumulative reports overlaid, incremental
    ones added)."""
    _tails: dict[tuple[str, str | None], str] = field(default_factory=dict, repr=False)

    @property
    def output_tokens(self) -> int:
        """The provider's output tokens when reported, else the estimate."""
        if self.provider is not None and self.provider.output_tokens is not None:
            return self.provider.output_tokens
        return self.estimated_output

    @property
    def input_tokens(self) -> int | None:
        """The provider's input tokens, when reported."""
        return None if self.provider is None else self.provider.input_tokens

    @property
    def source(self) -> str:
        """``"provider"`` when the output figure is the provider's, else ``"estimated"``."""
        if self.provider is not None and self.provider.output_tokens is not None:
            return "provider"
        return "estimated"


class TokenCounter:
    """Live token counts per run, shared with the code that reads them (a UI, a budget).

    ``counter.runs`` maps ``(agent, run_id)`` to :class:`TokenCount`; ``counter.total()`` sums
    them. Updated by :func:`count_tokens` as events pass.
    """

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], TokenCount] = {}

    def get(self, event: BaseEvent) -> TokenCount:
        """The count of the event's run (created on first use)."""
        key = (event.agent, event.run_id)
        c = self.runs.get(key)
        if c is None:
            c = self.runs[key] = TokenCount(agent=event.agent, run_id=event.run_id)
        return c

    def total(self) -> Usage:
        """Input and output tokens over all runs (output: provider figure where reported,
        estimate elsewhere)."""
        total = Usage(input_tokens=None, output_tokens=0)
        for c in self.runs.values():
            total = total + Usage(input_tokens=c.input_tokens, output_tokens=c.output_tokens)
        return total


def _observe(counter: TokenCounter, count: Callable[[str], int], event: Any) -> TokenCount | None:
    """Fold one event into the counter; return its run's count when it changed."""
    if isinstance(event, (TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta)):
        c = counter.get(event)
        key = (event.kind, event.call_id if isinstance(event, ToolCallDelta) else event.block_id)
        text = c._tails.get(key, "") + event.delta
        # Count up to the last space that follows a non-space: tiktoken's pre-tokenizer never
        # makes a piece that spans such a cut, so the count is exactly that of the whole text;
        # the tail waits for more text.
        cut = text.rfind(" ")
        while cut > 0 and text[cut - 1].isspace():
            cut = text.rfind(" ", 0, cut)
        if cut > 0:
            c.estimated_output += count(text[:cut])
            text = text[cut:]
        c._tails[key] = text
        return c
    if isinstance(event, UsageEvent) and event.source == "provider":
        c = counter.get(event)
        if c.provider is None:
            c.provider = event.usage
        elif event.cumulative:
            c.provider = c.provider.merged(event.usage)
        else:
            c.provider = c.provider + event.usage
        return c
    if isinstance(event, RunEnd):
        c = counter.get(event)
        for tail in c._tails.values():
            if tail:
                c.estimated_output += count(tail)
        c._tails.clear()
        if event.usage is not None:
            c.provider = event.usage if c.provider is None else c.provider.merged(event.usage)
        return c
    return None


def count_tokens(
    counter: TokenCounter | None = None,
    *,
    encoding: str = "o200k_base",
    tokenizer: Callable[[str], int] | None = None,
    emit_every: int | None = 64,
) -> Callable[[Stream[Any]], Stream[Any]]:
    """Count tokens live with a real tokenizer, reconciled with the provider's usage.

    Counts per run (``agent``, ``run_id``), so a merged stream of several agents keeps one
    count per agent. Every text, reasoning, refusal and tool-argument delta is counted with
    ``tokenizer`` (default: tiktoken ``encoding``, offline, see :func:`load_encoding`); a
    provider ``usage`` event or a run end with usage replaces the estimate with the provider's
    figures (cumulative reports overlay, incremental ones add, as each event's ``cumulative``
    says: Anthropic and Gemini report running totals, OpenAI one final figure). Read the
    figures from ``counter`` (a :class:`TokenCounter`) while the stream runs.

    - Emits: every event unchanged; and, when ``emit_every`` is set, a
      ``UsageEvent(source="estimated")`` for a run each time its estimate grows by
      ``emit_every`` tokens since the last one, and right before its run end when the
      provider gave no usage.
    - Completes: when the upstream completes.
    - Fails: when the upstream fails; with ``RuntimeError`` at start when the tokenizer
      cannot be loaded.
    - Cancels: when the downstream stops.
    - Buffers: per delta block, the text after its last whitespace (to count whole pieces).

    Marble: ``"Hello" " world" end | count_tokens(emit_every=None)`` gives the same events,
    and ``counter.total().output_tokens == 2``.
    """
    the_counter = counter if counter is not None else TokenCounter()

    async def gen(up: Stream[Any]) -> AsyncGenerator[Any, None]:
        count = tokenizer
        if count is None:
            import anyio.to_thread

            count = await anyio.to_thread.run_sync(load_encoding, encoding)
        reported: dict[tuple[str, str], int] = {}
        async with aclosing(up.__aiter__()) as it:
            async for ev in it:
                c = _observe(the_counter, count, ev) if isinstance(ev, BaseEvent) else None
                if c is not None and emit_every is not None and c.source == "estimated":
                    key = (c.agent, c.run_id)
                    last = reported.get(key, 0)
                    due = isinstance(ev, RunEnd) or c.estimated_output - last >= emit_every
                    if due and c.estimated_output != last:
                        reported[key] = c.estimated_output
                        yield UsageEvent(
                            run_id=ev.run_id,
                            agent=ev.agent,
                            seq=ev.seq,
                            usage=Usage(output_tokens=c.estimated_output),
                            source="estimated",
                            cumulative=True,
                        )
                yield ev

    def op(up: Stream[Any]) -> Stream[Any]:
        return Stream(_GenSource(gen, up))

    return op


def _price_of(model: str | None) -> tuple[float, float] | None:
    """(input, output) USD per token from LiteLLM's local price table, or ``None``."""
    if not model:
        return None
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    info = litellm.model_cost.get(model) or litellm.model_cost.get(model.split("/")[-1])
    if not info:
        return None
    return float(info.get("input_cost_per_token") or 0.0), float(info.get("output_cost_per_token") or 0.0)


def budget(
    *,
    max_tokens: int | None = None,
    max_cost: float | None = None,
    price: tuple[float, float] | None = None,
    counter: TokenCounter | None = None,
    encoding: str = "o200k_base",
    tokenizer: Callable[[str], int] | None = None,
) -> Callable[[Stream[Any]], Stream[Any]]:
    """End the stream when a run spends more than ``max_tokens`` or ``max_cost``.

    Tokens are input plus output, per run: the provider's figures where reported, the live
    tokenizer estimate (see :func:`count_tokens`) for the output before that. Cost, in US
    dollars, is tokens times ``price`` = (input, output) dollars per token, or LiteLLM's local
    price table for the model named by the run start (``LITELLM_LOCAL_MODEL_COST_MAP=True``:
    never fetched).

    - Emits: every event until the budget is exceeded; then a
      ``RunEnd(status="budget_exceeded")`` for that run (with the usage so far) and nothing
      more.
    - Completes: right after that run end (the upstream is closed, which cancels the provider
      request), or when the upstream completes.
    - Fails: when the upstream fails; ``ValueError`` at once for bad limits.
    - Cancels: when the downstream stops.
    - Buffers: as :func:`count_tokens`.

    Marble: ``"a" "b" "c" ... | budget(max_tokens=2)`` gives ``"a" "b" RunEnd(budget_exceeded)``.

    Raises:
        ValueError: neither limit given, or a limit is not positive.
    """
    if max_tokens is None and max_cost is None:
        raise ValueError("budget(): give max_tokens, max_cost, or both")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"budget(): max_tokens must be >= 1, got {max_tokens}")
    if max_cost is not None and not max_cost > 0:
        raise ValueError(f"budget(): max_cost must be > 0 dollars, got {max_cost}")
    the_counter = counter if counter is not None else TokenCounter()

    async def gen(up: Stream[Any]) -> AsyncGenerator[Any, None]:
        count = tokenizer
        if count is None:
            import anyio.to_thread

            count = await anyio.to_thread.run_sync(load_encoding, encoding)
        prices: dict[tuple[str, str], tuple[float, float] | None] = {}
        async with aclosing(up.__aiter__()) as it:
            async for ev in it:
                if isinstance(ev, RunStart) and max_cost is not None and price is None:
                    prices[(ev.agent, ev.run_id)] = _price_of(ev.model)
                c = _observe(the_counter, count, ev) if isinstance(ev, BaseEvent) else None
                if c is not None and not isinstance(ev, RunEnd):
                    spent_in = c.input_tokens or 0
                    spent_out = c.output_tokens
                    if c.source == "estimated":  # count the held tails too: never undercount
                        spent_out += sum(count(tail) for tail in c._tails.values() if tail)
                    over = max_tokens is not None and spent_in + spent_out > max_tokens
                    if max_cost is not None and not over:
                        p = price if price is not None else prices.get((c.agent, c.run_id))
                        if p is not None:
                            over = spent_in * p[0] + spent_out * p[1] > max_cost
                    if over:
                        yield RunEnd(
                            run_id=ev.run_id,
                            agent=ev.agent,
                            seq=ev.seq + 1,
                            status="budget_exceeded",
                            usage=Usage(input_tokens=c.input_tokens, output_tokens=spent_out),
                        )
                        return
                yield ev

    def op(up: Stream[Any]) -> Stream[Any]:
        return Stream(_GenSource(gen, up))

    return op

