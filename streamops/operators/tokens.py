"""Token operators: ``count_tokens`` (a live estimate reconciled with the provider's usage)
and ``budget`` (end a run mid-stream when it spends too much).

Tokenizer: the tiktoken encodings bundled with LiteLLM (``o200k_base``, ``cl100k_base``,
``p50k_base``), read from LiteLLM's package folder with tiktoken's cache variable, so nothing
is downloaded. Neither litellm nor tiktoken is imported until an operator first runs; loading
an encoding takes 0.5-2 s once per process and happens in a worker thread, as does importing
litellm for its price table (``budget(max_cost=...)`` without ``price``: 1-3 s, once).

Live counting is incremental: each delta's text is counted once, in pieces cut where tiktoken's
pre-tokenizer always cuts too (before a space after a non-space, after a line break, between a
letter or digit and what follows it that is not one), so the sum of the pieces' counts is
exactly the count of the whole text. The text after the last such cut is held until more
arrives. Held text with no such cut point (a long run of CJK or Thai, a long word) is counted
anyway once it exceeds :data:`MAX_HELD` characters, cut before its last character: each such
cut can shift the estimate by about one token (see :attr:`TokenCount.approximate_cuts`). The
cost is linear in the text: held text is never re-tokenized as it grows.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .._stream import Stream
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
    envelope,
)

__all__ = ["MAX_HELD", "TokenCount", "TokenCounter", "budget", "count_tokens", "load_encoding"]

T = TypeVar("T")

_ENCODINGS: dict[str, Any] = {}
_LOCK = threading.Lock()

MAX_HELD = 256
"""Characters of one block's text held uncounted, at most, when it has no exact cut point."""

_SCAN_AFTER = 32
"""Characters of held text with no space cut after which the other exact cut points are
looked for (see :func:`_observe`)."""

_CUTS: Any = None
"""Where tiktoken's pre-tokenizer (``o200k_base``, ``cl100k_base``, ``p50k_base``) always
cuts: every piece it makes ends there, whatever text follows. Compiled on first use."""


def _cuts() -> Any:
    global _CUTS
    if _CUTS is None:
        import regex  # type: ignore[import-untyped]

        _CUTS = regex.compile(
            # Before a space that follows a non-space ("a b" -> "a", " b").
            r"(?<=\S)(?= )"
            # After a line break that follows a non-space, before a non-space ("a\nb" -> "a",
            # "\n", "b"); not after a run of whitespace (p50k cuts "\n\nb" as "\n", "\n", "b"
            # but "\n\n" as one piece), nor before "/" (o200k keeps "!\n/" as one piece).
            r"|(?<=\S[\r\n])(?=[^\s/])"
            # After a letter or digit, before punctuation or a symbol ("日本。" -> "日本", "。",
            # "a," -> "a", ","); not before "'" (a contraction: "don't") or a combining mark.
            r"|(?<=[\p{L}\p{N}])(?=[^\s\p{L}\p{N}\p{M}'])"
            # Between a letter and a digit, either way ("a1" -> "a", "1").
            r"|(?<=\p{L})(?=\p{N})|(?<=\p{N})(?=\p{L})"
        )
    return _CUTS


def _last_cut(text: str, start: int) -> int:
    """The last exact cut point of ``text`` at or after ``start`` (0 when none)."""
    cut = 0
    for m in _cuts().finditer(text, start):
        cut = m.start()
    return cut


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

            try:
                spec = importlib.util.find_spec("litellm")  # located, never imported here
            except (ImportError, ValueError):
                spec = None
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
    approximate_cuts: int = 0
    """How many times held text with no exact cut point was counted in two parts anyway (after
    :data:`MAX_HELD` characters of CJK, Thai, a long word...); each can shift
    ``estimated_output`` by about one token. 0: the estimate is exactly the tokenizer's count
    of the whole text."""
    _tails: dict[tuple[str, str | None], str] = field(default_factory=dict, repr=False)
    """Per delta block: its text after the last cut, not counted yet (no cut point inside)."""

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
        held = c._tails.get(key, "")
        text = held + event.delta
        # Fast path: the last space that follows a non-space (one of the exact cut points, and
        # in prose there is one in nearly every delta). Only text that has none after
        # _SCAN_AFTER characters (CJK, Thai, code, a long word) is scanned for the other cut
        # points; the scan costs a few microseconds, the fast path a fraction of one. Each
        # piece is tokenized once and the held text is bounded, so the cost is linear.
        cut = text.rfind(" ")
        while cut > 0 and text[cut - 1].isspace():
            cut = text.rfind(" ", 0, cut)
        if cut <= 0:
            cut = _last_cut(text, 1) if len(text) > _SCAN_AFTER else 0
        if cut:
            c.estimated_output += count(text[:cut])
            text = text[cut:]
        if len(text) > MAX_HELD:  # no exact cut in sight: count it anyway, all but the last char
            cut = len(text) - 1
            lowest = max(1, cut - 8)  # a pathological run of combining marks is cut anyway
            while cut > lowest and _joined(text, cut):
                cut -= 1
            c.estimated_output += count(text[:cut])
            c.approximate_cuts += 1
            text = text[cut:]
        c._tails[key] = text
        return c
    if isinstance(event, UsageEvent) and event.source == "provider":
        c = counter.get(event)
        c.provider = event.folded(c.provider)
        return c
    if isinstance(event, RunEnd):
        c = counter.get(event)
        _count_tails(c, count)
        if event.usage is not None:
            c.provider = event.usage if c.provider is None else c.provider.merged(event.usage)
        return c
    return None


def _count_tails(c: TokenCount, count: Callable[[str], int]) -> bool:
    """Count the held text of every block of ``c``; say whether there was any."""
    any_held = False
    for tail in c._tails.values():
        if tail:
            c.estimated_output += count(tail)
            any_held = True
    c._tails.clear()
    return any_held


def _joined(text: str, i: int) -> bool:
    """Whether ``text[i]`` extends the character before it (a combining mark or variation
    selector, an emoji skin tone, a zero-width joiner or the character after one)."""
    import unicodedata

    ch = text[i]
    return unicodedata.category(ch)[0] == "M" or "\u200d" in (ch, text[i - 1]) or "\U0001f3fb" <= ch <= "\U0001f3ff"


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
    - Completes: when the upstream completes, after counting the text still held for runs
      that got no run end (and, with ``emit_every``, one last estimate for each of them).
    - Fails: when the upstream fails; with ``RuntimeError`` at start when the tokenizer
      cannot be loaded.
    - Cancels: when the downstream stops.
    - Buffers: per delta block, the text after its last exact cut point (to count whole
      pieces; see the module docstring), at most :data:`MAX_HELD` characters.

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
        last_event: dict[tuple[str, str], BaseEvent] = {}
        async with aclosing(up.__aiter__()) as it:
            async for ev in it:
                c = _observe(the_counter, count, ev) if isinstance(ev, BaseEvent) else None
                if c is not None:
                    last_event[(c.agent, c.run_id)] = ev
                if c is not None and emit_every is not None and c.source == "estimated":
                    key = (c.agent, c.run_id)
                    last = reported.get(key, 0)
                    due = isinstance(ev, RunEnd) or c.estimated_output - last >= emit_every
                    if due and c.estimated_output != last:
                        reported[key] = c.estimated_output
                        yield UsageEvent(
                            **envelope(ev, ts=time.time(), raw=None),
                            usage=Usage(output_tokens=c.estimated_output),
                            source="estimated",
                            cumulative=True,
                        )
                yield ev
        # The stream ended: runs that got no run end (a bare list of deltas, a stream cut
        # short upstream) still hold their last piece; count it, and report the estimate.
        for c in list(the_counter.runs.values()):
            if _count_tails(c, count) and emit_every is not None and c.source == "estimated":
                key = (c.agent, c.run_id)
                if c.estimated_output != reported.get(key, 0):
                    reported[key] = c.estimated_output
                    src = last_event.get(key)
                    # A run this iteration never saw (a counter shared with an earlier stream):
                    # only its run id and agent are known.
                    env = (
                        envelope(src, ts=time.time(), raw=None)
                        if src is not None
                        else {"run_id": c.run_id, "agent": c.agent}
                    )
                    yield UsageEvent(
                        **env,
                        usage=Usage(output_tokens=c.estimated_output),
                        source="estimated",
                        cumulative=True,
                    )

    def op(up: Stream[Any]) -> Stream[Any]:
        return Stream.defer(gen, up)

    return op


_PRICE_TABLE: Mapping[str, Any] | None = None
_PRICE_LOCK = threading.Lock()


def _load_price_table() -> Mapping[str, Any]:
    """LiteLLM's local model price table (``litellm.model_cost``, read from the package with
    ``LITELLM_LOCAL_MODEL_COST_MAP=True``: never fetched). Blocking: importing litellm takes
    1-3 s, so call it in a worker thread; cached for the process.

    Raises:
        RuntimeError: litellm is not installed.
    """
    global _PRICE_TABLE
    with _PRICE_LOCK:
        if _PRICE_TABLE is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            try:
                import litellm
            except ImportError as exc:
                raise RuntimeError(
                    'budget(max_cost=...) without price= reads litellm\'s price table: pip install "streamops[litellm]"'
                ) from exc
            _PRICE_TABLE = litellm.model_cost
        return _PRICE_TABLE


def _price_of(table: Mapping[str, Any], model: str | None) -> tuple[float, float] | None:
    """(input, output) USD per token of ``model`` in LiteLLM's price table, or ``None``."""
    if not model:
        return None
    info = table.get(model) or table.get(model.split("/")[-1])
    if not info:
        return None
    return float(info.get("input_cost_per_token") or 0.0), float(info.get("output_cost_per_token") or 0.0)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


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
    tokenizer estimate (see :func:`count_tokens`) for the output before that, held text
    included, so a run of text without spaces (CJK) is stopped within a few tokens of the
    limit too. Held text is only tokenized when it could tip the budget (its UTF-8 length
    bounds its tokens: a custom ``tokenizer`` must not count more tokens than bytes). Cost, in
    US dollars, is tokens times ``price`` = (input, output) dollars per token, or LiteLLM's
    local price table for the model named by the run start (``LITELLM_LOCAL_MODEL_COST_MAP=True``:
    never fetched). That table is loaded before the first event, in a worker thread (importing
    litellm takes 1-3 s, once per process), never on the event loop.

    - Emits: every event until the budget is exceeded; then a
      ``RunEnd(status="budget_exceeded")`` for that run (with the usage so far) and nothing
      more.
    - Completes: right after that run end (the upstream is closed, which cancels the provider
      request), or when the upstream completes. On a merged stream of several runs, one run
      over budget ends the whole stream: the other runs are closed with it and get no run end
      of their own here (apply ``budget`` to each run before ``merge`` to stop only that one).
    - Fails: when the upstream fails; ``ValueError`` at once for bad limits; with
      ``RuntimeError`` at start when the tokenizer cannot be loaded, or when ``max_cost`` is
      given without ``price`` and litellm is not installed.
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
        table: Mapping[str, Any] = {}
        if max_cost is not None and price is None:
            if _PRICE_TABLE is not None:
                table = _PRICE_TABLE
            else:  # import litellm off the event loop, once per process
                import anyio.to_thread

                table = await anyio.to_thread.run_sync(_load_price_table)
        prices: dict[tuple[str, str], tuple[float, float] | None] = {}

        def exceeds(spent_in: int, spent_out: int, p: tuple[float, float] | None) -> bool:
            if max_tokens is not None and spent_in + spent_out > max_tokens:
                return True
            return max_cost is not None and p is not None and spent_in * p[0] + spent_out * p[1] > max_cost

        async with aclosing(up.__aiter__()) as it:
            async for ev in it:
                if isinstance(ev, RunStart) and max_cost is not None and price is None:
                    prices[(ev.agent, ev.run_id)] = _price_of(table, ev.model)
                c = _observe(the_counter, count, ev) if isinstance(ev, BaseEvent) else None
                if c is not None and not isinstance(ev, RunEnd):
                    spent_in = c.input_tokens or 0
                    spent_out = c.output_tokens
                    p = price if price is not None else prices.get((c.agent, c.run_id))
                    over = exceeds(spent_in, spent_out, p)
                    if c.source == "estimated":
                        # Count the held text too (never undercount), but tokenize it only when
                        # its upper bound (one token per byte at most) could tip the budget.
                        held = [tail for tail in c._tails.values() if tail]
                        if held and (over or exceeds(spent_in, spent_out + sum(map(_utf8_len, held)), p)):
                            spent_out += sum(map(count, held))
                            over = exceeds(spent_in, spent_out, p)
                    if over:
                        yield RunEnd(
                            **envelope(ev, seq=ev.seq + 1, ts=time.time(), raw=None),
                            status="budget_exceeded",
                            usage=Usage(input_tokens=c.input_tokens, output_tokens=spent_out),
                        )
                        return
                yield ev

    def op(up: Stream[Any]) -> Stream[Any]:
        return Stream.defer(gen, up)

    return op
