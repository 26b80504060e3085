"""Incremental JSON parsing of streamed text: ``json_path`` deltas and partial values.

:class:`JsonStreamParser` is sans-IO and pure Python: feed it text as it arrives (in pieces
cut anywhere, even inside an escape sequence, a surrogate pair or a number) and it returns
what the new text added:

- :class:`JsonDelta` ``(path, delta)``: for a string value, the characters newly decoded
  (escapes such as ``\\n``, ``\\"``, ``\\u00e9`` and surrogate pairs ``\\ud83d\\ude00``
  decoded, never split); for a number, ``true``, ``false`` or ``null``, its JSON text, once,
  when it is complete. A string's deltas concatenate to its value; an empty string gives one
  empty delta, so every scalar value gives at least one delta;
- :class:`JsonValueEnd` ``(path)``: the value at ``path`` (a scalar, an object or an array)
  is complete; a good moment to take a snapshot with :attr:`JsonStreamParser.partial`.

Paths are JSONPath: ``$`` is the root, ``.key`` a member whose name is an ASCII identifier
(``[A-Za-z_][A-Za-z0-9_]*``), ``["key with.dot"]`` any other member (the name as a JSON
string literal), ``[2]`` an array item: ``$.items[2].name``, ``$["first name"]``.

Tolerance (the default, ``lenient=True``), for what models write around their JSON:

- text before the first ``{`` or ``[`` is skipped (a preamble such as "Here it is:", a
  Markdown fence opening with ```` ```json ````, whitespace): the root must then be an object
  or an array. If the text ends without any ``{`` or ``[``, :meth:`~JsonStreamParser.close`
  parses the whole text (fence removed) as a scalar JSON value (``42``, ``"yes"``) instead,
  so its events come only then; a root string that contains ``{`` or ``[`` needs
  ``lenient=False``;
- whitespace is allowed wherever JSON allows it;
- anything after the root value closes (a closing fence, a remark) is ignored.

With ``lenient=False`` the text must be exactly one JSON value (any kind) with optional
whitespace around it.

A member name that appears twice in an object (invalid in practice, allowed by JSON) streams
its deltas twice under the same path; the last value wins, as with ``json.loads``.

Malformed JSON raises :class:`JsonStreamError` with the offset (in characters from the start
of all the text fed) of the offending character; :meth:`~JsonStreamParser.close` raises it
too, with ``truncated=True``, when the text ended inside the value.

Cost: linear in the input; each character is looked at once (runs of plain string
characters, whitespace and digits are scanned with regular expressions, in C). Nothing is
re-parsed when more text arrives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

from .errors import JsonStreamError

__all__ = [
    "JsonDelta",
    "JsonEvent",
    "JsonStreamError",
    "JsonStreamParser",
    "JsonValueEnd",
    "json_path_child",
]


class JsonDelta(NamedTuple):
    """New text of the value at ``path``: decoded string characters, or the whole JSON text
    of a completed number/``true``/``false``/``null``."""

    path: str
    """JSONPath of the value."""
    delta: str
    """The characters to append (strings) or the scalar's JSON text."""


class JsonValueEnd(NamedTuple):
    """The value at ``path`` is complete (a scalar, or an object/array that just closed)."""

    path: str
    """JSONPath of the value."""


JsonEvent: TypeAlias = JsonDelta | JsonValueEnd
"""What :meth:`JsonStreamParser.feed` and :meth:`JsonStreamParser.close` return."""


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WS = re.compile(r"[ \t\n\r]*")
_STR_RUN = re.compile(r'[^"\\\x00-\x1f]+')
_NUM_RUN = re.compile(r"[0-9eE.+\-]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}\Z")
_ROOT_START = re.compile(r"[{\[]")
_WS_CHARS = frozenset(" \t\n\r")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


def json_path_child(path: str, key: str | int) -> str:
    """The JSONPath of member ``key`` (a string) or item ``key`` (an int) under ``path``.

    ``json_path_child("$", "city")`` is ``$.city``; ``json_path_child("$", "a.b")`` is
    ``$["a.b"]``; ``json_path_child("$.items", 2)`` is ``$.items[2]``.
    """
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


# Parser modes.
_PRE = 0  # lenient: skipping text before the root "{" or "["
_VALUE = 1  # a value must start here (after ":", after "," in an array, at a strict root)
_VALUE_OR_CLOSE = 2  # a value or "]" (right after "[")
_KEY = 3  # a member name must start here (after "," in an object)
_KEY_OR_CLOSE = 4  # a member name or "}" (right after "{")
_COLON = 5  # ":" after a member name
_AFTER = 6  # after a value inside a container: "," or the closing bracket
_STR = 7  # inside a string (value or member name)
_ESC = 8  # inside an escape sequence of a string
_NUM = 9  # inside a number
_LIT = 10  # inside true/false/null
_DONE = 11  # the root value is complete

_EXPECTED = {
    _VALUE: "a value",
    _VALUE_OR_CLOSE: "a value or ']'",
    _KEY: "a member name (a string)",
    _KEY_OR_CLOSE: "a member name (a string) or '}'",
    _COLON: "':'",
}


class _Frame:
    """An open object or array."""

    __slots__ = ("child_path", "container", "is_obj", "key", "path")

    def __init__(self, container: Any, is_obj: bool, path: str) -> None:
        self.container = container
        self.is_obj = is_obj
        self.path = path
        self.key: str = ""  # objects: the member being parsed
        self.child_path = ""  # objects: the path of that member


class JsonStreamParser:
    """Parse one JSON document fed in pieces; see the module docstring for the events.

    Usage::

        parser = JsonStreamParser()
        for piece in pieces:
            for event in parser.feed(piece):
                ...
        parser.close()  # raises JsonStreamError if the document is incomplete
        value = parser.partial

    One parser parses one document; it is not thread-safe. After an error, every further
    :meth:`feed`/:meth:`close` raises the same error again.
    """

    __slots__ = (
        "_closed",
        "_consumed",
        "_cur",
        "_done_parts",
        "_error",
        "_esc",
        "_has_root",
        "_hi",
        "_is_key",
        "_lenient",
        "_lit",
        "_mode",
        "_pre",
        "_root",
        "_stack",
        "_str_path",
        "_tok",
        "_tok_path",
        "_tok_start",
    )

    def __init__(self, *, lenient: bool = True) -> None:
        self._lenient = lenient
        self._mode = _PRE if lenient else _VALUE
        self._stack: list[_Frame] = []
        self._root: Any = None
        self._has_root = False
        self._consumed = 0
        self._error: JsonStreamError | None = None
        self._closed = False
        self._pre: list[str] = []
        # the string being parsed: flushed pieces (one per feed) and this feed's pieces
        self._done_parts: list[str] = []
        self._cur: list[str] = []
        self._is_key = False
        self._str_path = ""
        self._hi = -1  # a high surrogate waiting for its low half, or -1
        self._esc = ""  # the escape sequence read so far (after the backslash)
        # the number or literal being parsed
        self._tok = ""
        self._tok_path = ""
        self._tok_start = 0
        self._lit = ""

    # ------------------------------------------------------------------------- public API
    @property
    def offset(self) -> int:
        """How many characters have been fed so far."""
        return self._consumed

    @property
    def complete(self) -> bool:
        """True once the root value is complete (the rest of the text is then ignored)."""
        return self._mode == _DONE

    @property
    def started(self) -> bool:
        """True once the root value has started (in lenient mode: a ``{`` or ``[`` was seen)."""
        return self._mode != _PRE

    @property
    def partial(self) -> Any:
        """The value parsed so far, as JSON data (``None`` before the root starts).

        Objects hold the members seen so far, arrays the items seen so far; a string in
        progress is included as its prefix; a number or literal in progress is left out
        (and so is a member whose value has not started). Once the document is complete,
        this equals ``json.loads`` of it.

        Each call builds new objects along the path to the value in progress (cost: the
        sizes of the open containers) and shares completed sub-values with the parser and
        with earlier snapshots: treat the result as read-only (``copy.deepcopy`` it first
        to change it).
        """
        stack = self._stack
        in_str = (self._mode == _STR or self._mode == _ESC) and not self._is_key
        if not stack:
            if in_str:
                return self._string_prefix()
            return self._root
        first = stack[0]
        top: Any = dict(first.container) if first.is_obj else list(first.container)
        root = top
        parent = first
        for frame in stack[1:]:
            child: Any = dict(frame.container) if frame.is_obj else list(frame.container)
            if parent.is_obj:
                top[parent.key] = child
            else:
                top[-1] = child
            top = child
            parent = frame
        if in_str:
            s = self._string_prefix()
            if parent.is_obj:
                top[parent.key] = s
            else:
                top.append(s)
        return root

    def feed(self, text: str) -> list[JsonEvent]:
        """Parse the next piece of text and return the events it produced.

        Raises:
            JsonStreamError: the text is not valid JSON (``events`` on the error holds what
                this piece produced before the offending character).
        """
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("JsonStreamParser.feed() after close()")
        out: list[JsonEvent] = []
        if text:
            try:
                self._run(text, out)
            except JsonStreamError as exc:
                exc.events = out
                self._error = exc
                raise
            self._consumed += len(text)
            if self._cur and not self._is_key and (self._mode == _STR or self._mode == _ESC):
                chunk = "".join(self._cur)
                self._cur.clear()
                self._done_parts.append(chunk)
                out.append(JsonDelta(self._str_path, chunk))
        return out

    def close(self) -> list[JsonEvent]:
        """Say the text has ended; return the last events (a number at the root completes).

        Raises:
            JsonStreamError: the text ended before the value was complete (``truncated`` is
                true), or (lenient mode) it held no ``{``/``[`` and is not a scalar JSON value.
        """
        if self._error is not None:
            raise self._error
        if self._closed:
            return []
        out: list[JsonEvent] = []
        mode = self._mode
        try:
            if mode == _NUM and not self._stack:
                self._end_number(out, self._consumed)
            elif mode == _PRE:
                out = self._scalar_fallback()
            elif mode != _DONE:
                raise JsonStreamError(
                    f"truncated JSON: the text ended {self._where()}", offset=self._consumed, truncated=True
                )
        except JsonStreamError as exc:
            exc.events = out
            self._error = exc
            raise
        self._closed = True
        return out

    # ------------------------------------------------------------------------- internals
    def _where(self) -> str:
        mode = self._mode
        if mode in (_STR, _ESC):
            return "inside a member name" if self._is_key else f"inside the string at {self._str_path}"
        if mode in (_NUM, _LIT):
            return f"inside the value at {self._tok_path}"
        if self._stack:
            return f"inside {self._stack[-1].path} (expecting {_EXPECTED.get(mode, 'more')})"
        return "before the value started"

    def _string_prefix(self) -> str:
        parts = self._done_parts
        if len(parts) > 1:
            joined = "".join(parts)
            parts[:] = [joined]
            return joined
        return parts[0] if parts else ""

    def _store(self, value: Any) -> None:
        """Put a completed scalar into the open container (or make it the root)."""
        stack = self._stack
        if stack:
            top = stack[-1]
            if top.is_obj:
                top.container[top.key] = value
            else:
                top.container.append(value)
            self._mode = _AFTER
        else:
            self._root = value
            self._has_root = True
            self._mode = _DONE

    def _child_path(self) -> str:
        stack = self._stack
        if not stack:
            return "$"
        top = stack[-1]
        if top.is_obj:
            return top.child_path
        return f"{top.path}[{len(top.container)}]"

    def _end_number(self, out: list[JsonEvent], offset: int) -> None:
        tok = self._tok
        m = _NUMBER.match(tok)
        if m is None:
            raise JsonStreamError(f"invalid number {tok[:40]!r}", offset=self._tok_start)
        value: Any = float(tok) if (m.group(1) or m.group(2)) else int(tok)
        path = self._tok_path
        out.append(JsonDelta(path, tok))
        self._store(value)
        out.append(JsonValueEnd(path))
        self._tok = ""

    def _scalar_fallback(self) -> list[JsonEvent]:
        full = "".join(self._pre)
        start = len(full) - len(full.lstrip())
        text = full.strip()
        if text.startswith("```"):
            nl = text.find("\n")
            cut = len(text) if nl < 0 else nl + 1
            start += cut
            text = text[cut:]
            if text.rstrip().endswith("```"):
                text = text.rstrip()[:-3]
            lead = len(text) - len(text.lstrip())
            start += lead
            text = text.strip()
        if not text:
            raise JsonStreamError("truncated JSON: no JSON value in the text", offset=self._consumed, truncated=True)
        sub = JsonStreamParser(lenient=False)
        try:
            events = sub.feed(text)
            events += sub.close()
        except JsonStreamError as exc:
            reason = f"no JSON object or array in the text, and it is not a JSON value ({exc.reason})"
            raise JsonStreamError(reason, offset=start + exc.offset, truncated=exc.truncated) from None
        self._root = sub._root
        self._has_root = True
        self._mode = _DONE
        return events

    def _run(self, text: str, out: list[JsonEvent]) -> None:
        i = 0
        n = len(text)
        base = self._consumed
        mode = self._mode
        cur = self._cur
        stack = self._stack
        str_run = _STR_RUN.match
        ws: Callable[[str, int], re.Match[str]] = _WS.match  # type: ignore[assignment]  # always matches
        ws_chars = _WS_CHARS
        while i < n:
            if mode == _STR:
                m = str_run(text, i)
                if m is not None:
                    if self._hi >= 0:
                        cur.append(chr(self._hi))
                        self._hi = -1
                    cur.append(m.group())
                    i = m.end()
                    if i == n:
                        break
                c = text[i]
                if c == '"':
                    i += 1
                    if self._hi >= 0:
                        cur.append(chr(self._hi))
                        self._hi = -1
                    if self._is_key:
                        self._done_parts.extend(cur)
                        key = "".join(self._done_parts)
                        top = stack[-1]
                        top.key = key
                        top.child_path = json_path_child(top.path, key)
                        mode = _COLON
                    else:
                        path = self._str_path
                        parts = self._done_parts
                        if cur:
                            chunk = "".join(cur)
                            out.append(JsonDelta(path, chunk))
                            parts.append(chunk)
                        elif not parts:
                            out.append(JsonDelta(path, ""))
                        value = parts[0] if len(parts) == 1 else "".join(parts)
                        self._store(value)
                        mode = self._mode
                        out.append(JsonValueEnd(path))
                    cur.clear()
                    self._done_parts = []
                elif c == "\\":
                    i += 1
                    mode = _ESC
                    self._esc = ""
                else:
                    raise JsonStreamError(f"control character {c!r} inside a string", offset=base + i)
            elif mode == _AFTER:
                c = text[i]
                if c in ws_chars:
                    i = ws(text, i).end()
                    continue
                top = stack[-1]
                if c == ",":
                    mode = _KEY if top.is_obj else _VALUE
                    i += 1
                elif c == ("}" if top.is_obj else "]"):
                    i += 1
                    stack.pop()
                    out.append(JsonValueEnd(top.path))
                    mode = _AFTER if stack else _DONE
                else:
                    close = "}" if top.is_obj else "]"
                    raise JsonStreamError(
                        f"expected ',' or '{close}' after a value in {top.path}, got {c!r}", offset=base + i
                    )
            elif mode == _ESC:
                esc = self._esc
                if not esc:
                    c = text[i]
                    i += 1
                    if c == "u":
                        self._esc = "u"
                        continue
                    decoded = _SIMPLE_ESCAPES.get(c)
                    if decoded is None:
                        raise JsonStreamError(f"invalid escape '\\{c}' in a string", offset=base + i - 2)
                    if self._hi >= 0:
                        cur.append(chr(self._hi))
                        self._hi = -1
                    cur.append(decoded)
                    mode = _STR
                    continue
                take = 5 - len(esc)
                piece = text[i : i + take]
                i += len(piece)
                esc += piece
                if len(esc) < 5:
                    self._esc = esc
                    break
                if _HEX4.match(esc, 1) is None:
                    raise JsonStreamError(f"invalid escape '\\{esc}' in a string", offset=base + i - 6)
                cp = int(esc[1:], 16)
                hi = self._hi
                if hi >= 0:
                    self._hi = -1
                    if 0xDC00 <= cp <= 0xDFFF:
                        cur.append(chr(0x10000 + ((hi - 0xD800) << 10) + (cp - 0xDC00)))
                        mode = _STR
                        continue
                    cur.append(chr(hi))
                if 0xD800 <= cp <= 0xDBFF:
                    self._hi = cp
                else:
                    cur.append(chr(cp))
                mode = _STR
            elif mode == _NUM:
                m = _NUM_RUN.match(text, i)
                if m is not None:
                    self._tok += m.group()
                    i = m.end()
                    if i == n:
                        break
                self._end_number(out, base + i)
                mode = self._mode
            elif mode in (_KEY, _KEY_OR_CLOSE):
                c = text[i]
                if c in ws_chars:
                    i = ws(text, i).end()
                    continue
                if c == '"':
                    i += 1
                    mode = _STR
                    self._is_key = True
                    self._done_parts = []
                elif c == "}" and mode == _KEY_OR_CLOSE:
                    i += 1
                    top = stack.pop()
                    out.append(JsonValueEnd(top.path))
                    mode = _AFTER if stack else _DONE
                else:
                    raise JsonStreamError(f"expected {_EXPECTED[mode]} in {stack[-1].path}, got {c!r}", offset=base + i)
            elif mode == _COLON:
                c = text[i]
                if c in ws_chars:
                    i = ws(text, i).end()
                    continue
                if c != ":":
                    raise JsonStreamError(
                        f"expected ':' after member name {stack[-1].key!r}, got {c!r}", offset=base + i
                    )
                i += 1
                mode = _VALUE
            elif mode in (_VALUE, _VALUE_OR_CLOSE):
                c = text[i]
                if c in ws_chars:
                    i = ws(text, i).end()
                    continue
                i += 1
                if c == '"':
                    mode = _STR
                    self._is_key = False
                    self._str_path = self._child_path()
                    self._done_parts = []
                elif c == "{" or c == "[":
                    path = self._child_path()
                    container: Any = {} if c == "{" else []
                    if stack:
                        top = stack[-1]
                        if top.is_obj:
                            top.container[top.key] = container
                        else:
                            top.container.append(container)
                    else:
                        self._root = container
                        self._has_root = True
                    stack.append(_Frame(container, c == "{", path))
                    mode = _KEY_OR_CLOSE if c == "{" else _VALUE_OR_CLOSE
                elif c == "-" or "0" <= c <= "9":
                    i -= 1
                    mode = _NUM
                    self._tok = ""
                    self._tok_path = self._child_path()
                    self._tok_start = base + i
                elif c in _LITERALS:
                    mode = _LIT
                    self._tok = c
                    self._lit = _LITERALS[c][0]
                    self._tok_path = self._child_path()
                    self._tok_start = base + i - 1
                elif c == "]" and mode == _VALUE_OR_CLOSE:
                    top = stack.pop()
                    out.append(JsonValueEnd(top.path))
                    mode = _AFTER if stack else _DONE
                else:
                    where = f" in {stack[-1].path}" if stack else ""
                    raise JsonStreamError(f"expected {_EXPECTED[mode]}{where}, got {c!r}", offset=base + i - 1)
            elif mode == _LIT:
                lit = self._lit
                tok = self._tok
                take = len(lit) - len(tok)
                piece = text[i : i + take]
                for k, ch in enumerate(piece):
                    if ch != lit[len(tok) + k]:
                        raise JsonStreamError(
                            f"invalid literal {(tok + piece[: k + 1])!r} (expected {lit!r})", offset=base + i + k
                        )
                i += len(piece)
                tok += piece
                if len(tok) < len(lit):
                    self._tok = tok
                    break
                out.append(JsonDelta(self._tok_path, lit))
                self._store(_LITERALS[lit[0]][1])
                out.append(JsonValueEnd(self._tok_path))
                self._tok = ""
                mode = self._mode
            elif mode == _PRE:
                m = _ROOT_START.search(text, i)
                if m is None:
                    self._pre.append(text[i:])
                    break
                self._pre.clear()  # kept only for the scalar fallback of close()
                i = m.start()
                mode = _VALUE
            else:  # _DONE
                if self._lenient:
                    break
                c = text[i]
                if c in ws_chars:
                    i = ws(text, i).end()
                    continue
                raise JsonStreamError(f"unexpected text after the JSON value: {c!r}", offset=base + i)
        self._mode = mode
