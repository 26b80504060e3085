"""Text operators: ``smooth`` re-chunks text and reasoning deltas on word, line, sentence,
regex or grapheme boundaries; ``think_tags`` splits reasoning written inline in the text
(``<think>...</think>``) into reasoning deltas.

Providers cut text where their tokenizer and network happen to cut it (``"Hel"``, ``"lo, w"``,
``"orld"``); a UI wants whole words, lines or sentences. ``smooth`` holds the text of the
current block and re-emits it in chunks that end on a boundary, without ever changing the
text: the output deltas concatenate to exactly the input deltas, whitespace included, and no
chunk ever splits a user-perceived character (a Unicode extended grapheme cluster: an emoji
ZWJ sequence, a skin-tone modifier, a flag, a letter and its combining marks). Scripts written
without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) are cut after every character in
``"word"`` mode, so they are never held until the end of the block.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, overload

from .._pump import TIMED_OUT, TimedBind, pump_timed
from .._stream import End, Push, Stage, Stream
from ..events import BaseEvent, ReasoningDelta, RunEnd, TextDelta, deriver, envelope

__all__ = ["ThinkTagSplitter", "smooth", "think_tags"]

Boundary = Literal["word", "line", "sentence", "grapheme"]
"""The built-in chunk boundaries of :func:`smooth`."""

# Characters of scripts written without spaces between words, plus their punctuation: in
# "word" mode each one is a chunk boundary by itself (before and after it). CJK ideographs
# (with extensions and compatibility ideographs), kana, bopomofo, CJK and full/half-width
# punctuation, Thai, Lao, Khmer, Myanmar. Combining marks inside these blocks (Thai vowel
# signs, kana voicing marks) are never cut off their base: every cut is also checked against
# the grapheme rules.
_NO_SPACE = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3001-\u303f"  # CJK symbols and punctuation (not U+3000, the ideographic space)
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u312f\u31a0-\u31bf"  # Bopomofo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff01-\uff9f"  # full-width forms, half-width katakana
    "\U00020000-\U0003ffff"  # CJK extensions B-I
)

# Each pattern matches just before a cut: the cut is ``m.end()``. Every built-in pattern ends
# with a lookahead that needs the character after the cut, so a cut is only ever made once
# that character has arrived: until then the text could still grow into the same chunk, or a
# combining mark could still attach to its last character.
_WORD = re.compile(rf"[\s{_NO_SPACE}](?=\S)|\S(?=[{_NO_SPACE}])")
"""Word: after a run of whitespace, before the next non-whitespace; and before and after each
character of a script without spaces (whitespace after it stays with it)."""
_LINE = re.compile(r"\n(?=[^\r\n])")
"""Line: after a run of line breaks (``\\n``, with any ``\\r``), before the next character."""
_SENTENCE = re.compile(
    r"(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f\uff61][\u300d\u300f\u201d\u2019\uff09)\]]*\s*)(?=\S)"
)
"""Sentence: after ``. ! ? …`` (any closing quotes or brackets) and the whitespace run that
follows; after ``。！？`` (and closers, and any whitespace) even with no whitespace."""

_X: Any = None
"""``regex.compile(r"\\X")``, compiled on first use (``import streamops`` stays light)."""
_UNSAFE_TAIL: Any = None
"""A last grapheme cluster that the next character could still extend."""


def _grapheme_re() -> Any:
    global _X, _UNSAFE_TAIL
    if _X is None:
        import regex  # type: ignore[import-untyped]

        _X = regex.compile(r"\X")
        _UNSAFE_TAIL = regex.compile(
            r"(?:\r|\u200d|\p{Extended_Pictographic}[\p{GCB=Extend}\u200d]*|\p{GCB=Prepend}|\p{InCB=Linker}"
            r"|\p{GCB=L}|\p{GCB=V})\Z|\A\p{Regional_Indicator}\Z"
        )
    return _X


_PLAIN: dict[str, bool] = {}
"""Per character: whether its Grapheme_Cluster_Break is Other, Control or LF. Between two
such characters there is always a cluster boundary (no rule joins them; CR is not one)."""
_PLAIN_RE: Any = None


def _plain(ch: str) -> bool:
    global _PLAIN_RE
    if _PLAIN_RE is None:
        import regex

        _PLAIN_RE = regex.compile(r"[\p{GCB=Other}\p{GCB=Control}\n]")
    ok = _PLAIN_RE.fullmatch(ch) is not None
    if len(_PLAIN) < 65536:  # a cache of the characters seen, bounded
        _PLAIN[ch] = ok
    return ok


def _is_boundary(s: str, lo: int, p: int) -> bool:
    """Whether ``0 < p < len(s)`` is a grapheme cluster boundary of ``s``; ``lo <= p`` must be
    one. The boundary at ``p`` depends only on ``s[:p + 1]``, so it is final once ``s[p]`` is
    known."""
    a = s[p - 1]
    b = s[p]
    # Fast paths. Nothing below U+0300 can attach to what precedes it (no Extend, ZWJ,
    # SpacingMark or regional indicator), and nothing below U+0600 attaches to what follows it
    # (no Prepend, no ZWJ, no Hangul jamo); only CR LF stays together. Then: two characters
    # whose break property is Other/Control/LF (CJK ideographs, kana, Thai consonants,
    # Cyrillic letters...) always have a boundary between them.
    if b < "\u0300" and a < "\u0600":
        return not (a == "\r" and b == "\n")
    pa = _PLAIN.get(a)
    if pa is None:
        pa = _plain(a)
    if pa:
        pb = _PLAIN.get(b)
        if pb is None:
            pb = _plain(b)
        if pb:
            return True
    x = _X if _X is not None else _grapheme_re()
    return len(x.findall(s, lo, p + 1)[-1]) == 1


def _max_cut(s: str, lo: int, limit: int) -> int:
    """The largest grapheme boundary ``q`` with ``lo < q <= limit`` (``s[limit]`` must exist;
    ``lo`` is a boundary). When the cluster at ``lo`` is longer than that, the end of that
    cluster if it is complete (followed by another character), else ``-1``."""
    if _is_boundary(s, lo, limit):
        return limit
    x = _X if _X is not None else _grapheme_re()
    ends = [m.end() for m in x.finditer(s, lo, limit + 1)]
    if len(ends) >= 2:
        return ends[-2]  # type: ignore[no-any-return]
    q: int = x.match(s, lo).end()
    return q if q < len(s) else -1


def _safe_len(s: str) -> int:
    """How much of ``s`` may be emitted when time runs out: all of it, unless its last
    grapheme cluster could still be extended by the next delta (it ends in a ZWJ, an emoji
    that could take a skin tone or a ZWJ, a lone regional indicator, a Prepend, a virama,
    a leading Hangul jamo). Letters that could still take a combining mark are not held."""
    z = s[-1]
    if z < "\u00a9" and z != "\r":  # ASCII, Latin-1 up to U+00A8: only a mark could extend them
        return len(s)
    x = _X if _X is not None else _grapheme_re()
    last: str = x.findall(s)[-1]
    if _UNSAFE_TAIL.search(last):
        return len(s) - len(last)
    return len(s)


def _same_block(e: Any, c: Any) -> bool:
    """``e`` continues the block of the delta ``c`` (``None``: no block open): same class,
    block id, run and agent."""
    return c is not None and (
        e.__class__ is c.__class__ and e.block_id == c.block_id and e.run_id == c.run_id and e.agent == c.agent
    )


def _make(src: Any, text: str) -> Any:
    """A delta of ``src``'s class with ``src``'s envelope and block id and ``text``."""
    if text == src.delta:
        return src  # the chunk is exactly this delta: pass it on, no copy
    return deriver(src.__class__, "delta")(src, text)


_Chunker = tuple[Push, End, Callable[[], None], Callable[[], bool]]


def _chunker(
    by: str | re.Pattern[str], max_chars: int, kinds: tuple[type[Any], ...]
) -> Callable[[Push, End], _Chunker]:
    """The sans-IO re-chunker: ``bind(down, end)`` returns ``(push, end, flush_soft, held)``.

    ``flush_soft()`` emits the held text except a last grapheme cluster that could still grow
    (used when ``max_delay`` runs out); ``held()`` says whether any text is held.
    """
    if by == "word":
        pattern, local = _WORD, True
    elif by == "line":
        pattern, local = _LINE, True
    elif by == "sentence":
        pattern, local = _SENTENCE, False
    elif by == "grapheme":
        pattern, local = None, False
    elif isinstance(by, re.Pattern):
        pattern, local = by, False
    else:
        raise ValueError(f"smooth(): by must be 'word', 'line', 'sentence', 'grapheme' or a compiled regex, got {by!r}")
    user = isinstance(by, re.Pattern)
    grapheme = by == "grapheme"

    word = by == "word"

    def bind(down: Push, end: End) -> _Chunker:
        # Each run (run_id, agent) has its own held text, so the runs of a merged stream are
        # re-chunked independently. The run of the last delta is "current": its state lives in
        # buf and cur (the hot path); the other runs' held text waits in ``parked``.
        buf = ""  # text held for the current block; always starts on a grapheme boundary
        cur: Any = None  # the last delta of the current block (None: no block yet)
        parked: dict[tuple[str, str], tuple[str, Any]] = {}  # other runs: (held text, last delta)
        kind_ok: dict[type[Any], bool] = {}
        search = pattern.search if pattern is not None else None

        def emit(s: str, lo: int, hi: int, src: Any) -> None:
            # Emit s[lo:hi] (hi a boundary, or the end of the block) in chunks <= max_chars.
            while hi - lo > max_chars:
                q = _max_cut(s, lo, lo + max_chars)
                if q < 0 or q > hi:
                    q = hi
                down(_make(src, s[lo:q]))
                lo = q
            if lo < hi:
                down(_make(src, s[lo:hi]))

        def split_held(n: int, e: Any, c: Any) -> None:
            # The held text is longer than max_chars: emit max_chars-sized pieces (backed off
            # to grapheme boundaries) and keep the rest.
            nonlocal buf
            s = buf
            lo = 0
            while len(s) - lo > max_chars:
                q = _max_cut(s, lo, lo + max_chars)
                if q < 0:
                    break  # one grapheme cluster, not complete yet
                down(_make(e if q > n else c, s[lo:q]))
                lo = q
            buf = s[lo:]

        def flush() -> None:
            nonlocal buf
            if buf:
                s = buf
                buf = ""
                emit(s, 0, len(s), cur)

        def flush_all() -> None:
            # The other runs' held text (in the order they were parked), then the current's.
            nonlocal cur
            while parked:
                s, c = parked.pop(next(iter(parked)))
                emit(s, 0, len(s), c)
            flush()
            cur = None

        def switch(e: Any) -> None:
            # Make ``e``'s run the current one: park the current run's held text, take out
            # ``e``'s run's.
            nonlocal buf, cur
            c = cur
            if c is not None:
                if c.run_id == e.run_id and c.agent == e.agent:
                    return
                if buf:
                    parked[(c.run_id, c.agent)] = (buf, c)
                    buf = ""
                cur = None
            if parked:
                got = parked.pop((e.run_id, e.agent), None)
                if got is not None:
                    buf, cur = got

        def begin(e: Any) -> bool:
            # ``e`` is not the next delta of the current block. Switch to ``e``'s run; if
            # ``e`` does not continue that run's held block, flush it (another event, another
            # block: the held text goes out first). Say whether ``e`` is a delta to re-chunk.
            nonlocal cur
            cls = e.__class__
            ok = kind_ok.get(cls)
            if ok is None:
                ok = kind_ok[cls] = issubclass(cls, kinds)
            if isinstance(e, BaseEvent):
                switch(e)
            else:
                flush_all()  # not an event of any run: everything held goes out first
            c = cur
            if ok and c is not None and cls is c.__class__ and e.block_id == c.block_id:
                return True  # the next delta of its run's held block
            if buf:
                flush()
            cur = None
            if not ok:
                down(e)
            return ok

        def push_local(e: Any) -> None:
            # word / line: the hot path. Each match of the pattern ends just before a cut and
            # looks at one character before it, so the search starts one character before
            # the new text.
            nonlocal buf, cur
            c = cur
            if c is None or not (
                e.__class__ is c.__class__ and e.block_id == c.block_id and e.run_id == c.run_id and e.agent == c.agent
            ):
                if not begin(e):
                    return
                c = cur
            n = len(buf)
            s = buf + e.delta if n else e.delta
            m = search(s, n - 1 if n else 0)  # type: ignore[misc]
            if m is not None:
                # All-ASCII text (str.isascii() is O(1)) needs no grapheme check: the only
                # ASCII cluster longer than one character is CR LF, and no built-in pattern
                # cuts between CR and LF.
                simple = s.isascii()
                copy = deriver(e.__class__, "delta")  # e and c are of one class (one block)
                last = 0
                while m is not None:
                    p = m.end()
                    if word and s[last].isspace() and s[last:p].isspace():
                        pass  # leading whitespace only: it goes out with the word after it
                    elif simple or _is_boundary(s, last, p):
                        src = e if p > n else c  # the delta that supplied the chunk's last character
                        if p - last > max_chars:
                            emit(s, last, p, src)
                        else:
                            t = s[last:p]  # _make, inlined: this runs for every chunk
                            down(src if t == src.delta else copy(src, t))
                        last = p
                    m = search(s, p)  # type: ignore[misc]
                if last:
                    s = s[last:]
            if word and s and s[-1].isspace() and s[-1] != "\r" and not s.isspace():
                # A word and the whitespace after it: the cut is certain, emit now (more
                # whitespace in the next delta goes out with the next word).
                emit(s, 0, len(s), e if e.delta else c)
                s = ""
            buf = s
            cur = e
            if len(s) > max_chars:
                split_held(n, e, c)

        def push_other(e: Any) -> None:
            # sentence / grapheme / a user regex (push_local inlines the same block test).
            nonlocal buf, cur
            c = cur
            if not _same_block(e, c):
                if not begin(e):
                    return
                c = cur
            n = len(buf)
            s = buf + e.delta if n else e.delta
            if grapheme:
                x = _X if _X is not None else _grapheme_re()
                clusters = x.findall(s)
                pos = 0
                for g in clusters[:-1]:
                    pos += len(g)
                    down(_make(e if pos > n else c, g))
                buf = clusters[-1] if clusters else ""
            elif not user:
                # sentence: a match can start well before the new text: search the held text.
                assert search is not None
                last = 0
                m = search(s)
                while m is not None:
                    p = m.end()
                    if _is_boundary(s, last, p):
                        emit(s, last, p, e if p > n else c)
                        last = p
                    m = search(s, p)
                buf = s[last:] if last else s
            else:
                # A user regex: cut after each non-empty match that is followed by at least one
                # more character; the held text is searched again from its start after a cut.
                assert pattern is not None
                buf = s
                done = 0  # characters of s already emitted
                while buf:
                    cut = 0
                    for m in pattern.finditer(buf):
                        p = m.end()
                        if p == 0:
                            continue
                        if p >= len(buf):
                            break
                        if _is_boundary(buf, 0, p):
                            cut = p
                            break
                    if not cut:
                        break
                    emit(buf, 0, cut, e if done + cut > n else c)
                    done += cut
                    buf = buf[cut:]
            cur = e
            if len(buf) > max_chars:
                split_held(n, e, c)

        push = push_local if local else push_other

        def end_() -> None:
            flush_all()
            end()

        def flush_soft() -> None:
            nonlocal buf
            s = buf
            if s:
                k = _safe_len(s)
                if k:
                    buf = s[k:]
                    emit(s, 0, k, cur)
            for key, (s, c) in list(parked.items()):
                k = _safe_len(s)
                if k:
                    emit(s, 0, k, c)
                    if k < len(s):
                        parked[key] = (s[k:], c)
                    else:
                        del parked[key]

        def held() -> bool:
            return bool(buf) or bool(parked)

        return push, end_, flush_soft, held

    return bind


@overload
def smooth(
    by: Boundary | re.Pattern[str] = "word",
    *,
    max_chars: int = 256,
    max_delay: None = None,
    kinds: tuple[type[Any], ...] = (TextDelta, ReasoningDelta),
) -> Stage[Any, Any]: ...
@overload
def smooth(
    by: Boundary | re.Pattern[str] = "word",
    *,
    max_chars: int = 256,
    max_delay: float,
    kinds: tuple[type[Any], ...] = (TextDelta, ReasoningDelta),
) -> Callable[[Stream[Any]], Stream[Any]]: ...
def smooth(
    by: Boundary | re.Pattern[str] = "word",
    *,
    max_chars: int = 256,
    max_delay: float | None = None,
    kinds: tuple[type[Any], ...] = (TextDelta, ReasoningDelta),
) -> Stage[Any, Any] | Callable[[Stream[Any]], Stream[Any]]:
    """Re-chunk text and reasoning deltas so that each chunk ends on a boundary.

    The deltas of one block (same class, ``block_id``, ``run_id`` and ``agent``) are held and
    re-emitted as new deltas that end on a boundary of ``by``. Each run (``run_id``,
    ``agent``) keeps its own held text, so the runs of a merged stream are re-chunked
    independently: smoothing a merged stream gives, run by run, what smoothing each run alone
    gives.

    - ``"word"`` (default): a word and the whitespace after it (``"Hello, "`` then
      ``"world"``), emitted as soon as that whitespace arrives (the Vercel AI SDK's
      ``smoothStream`` cuts the same way). Whitespace with no word before it in the held text
      (at the start of a block, or arriving after the word went out) goes out with the next
      word: ``" " " " "foo"`` gives ``"  foo"``, never a whitespace-only chunk (unless the
      block is only whitespace). Because of that early cut, a combining mark that a later
      delta puts on that whitespace starts the next chunk (the only cut that may not be a
      grapheme boundary; see docs/decisions.md). Each character of a script written without
      spaces (CJK ideographs, kana, CJK punctuation, Thai, Lao, Khmer, Myanmar) is a chunk of
      its own, with any whitespace that follows it.
    - ``"line"``: after a run of line breaks (``"\\n"``, with any ``"\\r"``), just before the
      next character.
    - ``"sentence"``: after ``.``, ``!``, ``?`` or ``…`` (and any closing quotes or
      brackets) followed by whitespace, after that whitespace; after ``。``, ``！`` or
      ``？`` even without whitespace. No abbreviation detection (``"e.g. x"`` is cut).
    - ``"grapheme"``: after every user-perceived character (extended grapheme cluster).
    - a compiled ``re.Pattern``: after each non-empty match in the held text (searched from
      its start, like the Vercel AI SDK's ``smoothStream``).

    Except after a word's whitespace, a cut is made only once the character after it has
    arrived, and only on a grapheme cluster boundary: emoji ZWJ sequences, skin tones, flags,
    letters with combining marks are never split, in any mode. The text is
    never changed: the output deltas of a block concatenate to its input deltas.

    The held text is also flushed:

    - when it exceeds ``max_chars`` characters (base64, code without spaces): pieces of at
      most ``max_chars`` characters, backed off to a grapheme boundary (a single grapheme
      cluster longer than that goes out whole); every chunk is at most ``max_chars`` long;
    - before any event that is not one of ``kinds`` (a tool call never overtakes text), for
      the event's run (an item that is not an event flushes every run);
    - when the block of its run changes (another ``block_id``, text <-> reasoning); a delta
      of another run or agent does not flush it;
    - before any event of its run that is not one of ``kinds``;
    - at the end of the stream, or when the upstream fails (held text first, then the error;
      the runs in the order their text was set aside, the last run's last);
    - with ``max_delay``: when text has been held for ``max_delay`` seconds (see below).

    Each output delta is a new delta of the same class with the envelope (``run_id``,
    ``agent``, ``seq``, ``ts``, ``raw``) and ``block_id`` of the input delta that supplied its
    last character (an input delta that already is exactly one chunk passes through as it
    is). Events of other kinds pass through unchanged; empty deltas are dropped.

    Without ``max_delay`` this is a fusable :class:`~streamops.Stage` (no task, no clock).
    With ``max_delay`` (seconds), no text is held longer than ``max_delay`` seconds after its
    first character arrived: when the time runs out, everything held is emitted, except a
    last grapheme cluster that the next delta could still extend (it ends in a ZWJ, an emoji
    that could take a skin tone, a lone regional indicator...), which waits for the next
    delta or the end. This form reads the upstream in a task: it must be iterated by a
    terminal that hosts tasks (``collect()``, ``run()``, ``first()``, ``last()``,
    ``async with stream.iterate()``); a bare ``async for`` raises
    :class:`~streamops.errors.TaskHostRequired`.

    - Emits: a chunk when its boundary is confirmed (the whitespace after a word, or the
      next character), when ``max_chars`` is exceeded, before a non-text event of its run,
      at a block change, at the end, and when ``max_delay`` runs out; other events as they
      arrive, after their run's held text.
    - Completes: when the upstream completes, after emitting the held text.
    - Fails: when the upstream fails, after emitting the held text.
    - Cancels: when the downstream stops; with ``max_delay`` the reading task is cancelled
      and the upstream closed before the stream's close returns.
    - Buffers: per run, the held text of its current block: at most ``max_chars`` characters
      (plus the delta being split); with ``max_delay``, also at most one upstream event in
      flight.

    Marble: ``"Hel" "lo, wo" "rld" T "!" | smooth()`` gives ``"Hello, " "world" T "!"``
    (``T`` a tool call; ``"world"`` goes out before it, ``"!"`` at the end).
    ``a:"Hel" b:"Bon" a:"lo " b:"jour"`` gives ``a:"Hello " b:"Bonjour"`` (two runs).
    ``"你好" "世界" | smooth()`` gives ``"你" "好" "世" "界"``.

    Raises:
        ValueError: an unknown ``by``, ``max_chars < 1``, or ``max_delay <= 0``.
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"smooth(): max_chars must be an int >= 1, got {max_chars!r}")
    if max_delay is not None and not max_delay > 0:
        raise ValueError(f"smooth(): max_delay must be > 0 seconds, got {max_delay!r}")
    bind_full = _chunker(by, max_chars, tuple(kinds))
    label = by if isinstance(by, str) else f"re({by.pattern!r})"

    if max_delay is None:

        def bind(down: Push, end: End) -> tuple[Push, End]:
            push, end_, _, _ = bind_full(down, end)
            return push, end_

        return Stage(bind, f"smooth({label})")

    delay = float(max_delay)
    name = f"smooth({label}, max_delay={delay:g})"

    def op(up: Stream[Any]) -> Stream[Any]:
        return Stream.defer(pump_timed, up, name, _timed(bind_full, delay))

    return op


def _timed(bind_full: Callable[[Push, End], _Chunker], delay: float) -> TimedBind[Any]:
    """``smooth`` with ``max_delay``, as the ``bind`` of :func:`streamops._pump.pump_timed`
    (a pump task of the terminal's host reads the upstream, a wait that times out loses
    nothing): the held text is flushed when its deadline passes."""

    def bind(out: list[Any]) -> tuple[Callable[[Any], float | None], Callable[[], None]]:
        import anyio

        push, end, flush_soft, held = bind_full(out.append, _noop)
        clock = anyio.current_time
        deadline: float | None = None  # when the held text must go out

        def step(x: Any) -> float | None:
            nonlocal deadline
            if x is TIMED_OUT:
                # Time is up: emit what may go out; the rest waits for the next delta.
                flush_soft()
                deadline = None
            else:
                push(x)
                if not held():
                    deadline = None
                elif deadline is None or out:
                    # The held text started with this delta (or its earlier part just went
                    # out): its first character arrived now.
                    deadline = clock() + delay
            return deadline

        return step, end

    return bind


def _noop() -> None:
    return None


# ----------------------------------------------------------------------------- think_tags


class ThinkTagSplitter:
    """Sans-IO splitter of one run's text into text and reasoning at inline tags (the core of
    :func:`think_tags`, for adapters that split while they parse).

    ``feed(text)`` returns the pieces that are certain, as ``(is_reasoning, text)`` pairs in
    order; a tail that could be the start of the next tag (``"<thi"``) is held until the next
    ``feed`` or ``flush()``, which emits it as what it then is (plain text or reasoning).
    """

    __slots__ = ("close", "inside", "open", "pending")

    def __init__(self, open_tag: str = "<think>", close_tag: str = "</think>", inside: bool = False) -> None:
        self.open = open_tag
        self.close = close_tag
        self.inside = inside
        self.pending = ""

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """The certain pieces of the text so far, ``(is_reasoning, text)``, non-empty, in order."""
        s = self.pending + text if self.pending else text
        out: list[tuple[bool, str]] = []
        pos = 0
        while True:
            tag = self.close if self.inside else self.open
            i = s.find(tag, pos)
            if i < 0:
                break
            if i > pos:
                out.append((self.inside, s[pos:i]))
            self.inside = not self.inside
            pos = i + len(tag)
        # hold the longest tail that is a proper prefix of the tag looked for next
        tag = self.close if self.inside else self.open
        keep = 0
        for k in range(min(len(tag) - 1, len(s) - pos), 0, -1):
            if s.endswith(tag[:k]):
                keep = k
                break
        cut = len(s) - keep
        if cut > pos:
            out.append((self.inside, s[pos:cut]))
        self.pending = s[cut:]
        return out

    def flush(self) -> list[tuple[bool, str]]:
        """The held tail, as what it is now (the end of the text, or another event came)."""
        s, self.pending = self.pending, ""
        return [(self.inside, s)] if s else []


def think_tags(open_tag: str = "<think>", close_tag: str = "</think>", *, opened: bool = False) -> Stage[Any, Any]:
    """Split reasoning written inline in the text (``<think>...</think>``) into reasoning deltas.

    Models such as the DeepSeek-R1 distills and Qwen3 (and many open models behind
    OpenAI-compatible servers) put their reasoning in the answer text between ``<think>`` and
    ``</think>``. Text deltas between ``open_tag`` and ``close_tag`` become
    :class:`~streamops.ReasoningDelta` events, the rest stays :class:`~streamops.TextDelta`;
    the tags themselves are dropped, every other character is kept (whitespace included).
    A tag may be split across deltas at any character: a delta's tail that could start a tag
    is held until the next delta of the same run tells. Tags are recognised anywhere in the
    text, each time (several think blocks in one answer are fine).

    ``opened=True`` starts inside a think block: for chat templates that put the opening tag
    in the prompt, so that the model writes only ``...</think>answer``.

    The state is kept per run (``run_id`` and ``agent``), so merged runs are split
    independently. Each output delta keeps the envelope (``run_id``, ``agent``, ``seq``,
    ``ts``, ``raw``) and ``block_id`` of the input delta being split (the later one, for a
    held tail). Other events, and reasoning deltas a provider already separated, pass through unchanged.

    - Emits: the certain part of each text delta at once (as text or reasoning); a held
      partial tag with the next delta of its run, before the next other event of its run,
      or at the end.
    - Completes: when the upstream completes, after emitting every held tail (as what it is
      then: an unfinished ``"<thi"`` is text; an unclosed think block stays reasoning).
    - Fails: when the upstream fails, after emitting the held tails.
    - Cancels: when the downstream stops (a fused stage: nothing of its own to cancel).
    - Buffers: per run, at most ``len(tag) - 1`` characters of a possible partial tag.

    Marble: ``"<thi" "nk>hmm</th" "ink>Hi" | think_tags()`` gives ``R"hmm" "Hi"`` (``R`` a
    reasoning delta).

    Raises:
        ValueError: an empty tag, or ``open_tag == close_tag``.
    """
    if not open_tag or not close_tag or open_tag == close_tag:
        raise ValueError(
            f"think_tags(): open_tag and close_tag must be different non-empty tags, got {open_tag!r}, {close_tag!r}"
        )

    def bind(down: Push, end: End) -> tuple[Push, End]:
        runs: dict[tuple[str, str], tuple[ThinkTagSplitter, list[Any]]] = {}

        def out(src: Any, pieces: list[tuple[bool, str]]) -> None:
            for reasoning, text in pieces:
                if reasoning:
                    down(ReasoningDelta(**envelope(src), delta=text, block_id=src.block_id))
                else:
                    down(_make(src, text))

        def push(e: Any) -> None:
            if isinstance(e, BaseEvent):
                key = (e.run_id, e.agent)
                if e.__class__ is TextDelta:
                    state = runs.get(key)
                    if state is None:
                        state = runs[key] = (ThinkTagSplitter(open_tag, close_tag, opened), [None])
                    state[1][0] = e
                    out(e, state[0].feed(e.delta))
                    return
                state = runs.get(key)
                if state is not None and state[0].pending:
                    out(state[1][0], state[0].flush())
                if isinstance(e, RunEnd):
                    runs.pop(key, None)
            down(e)

        def end_() -> None:
            for splitter, last in runs.values():
                out(last[0], splitter.flush())
            runs.clear()
            end()

        return push, end_

    return Stage(bind, "think_tags")
