"""The parser attack suite (issue 13, "Your own attack suite", the parsers bullet): every
recorded provider stream, truncated at every byte and mutated at random, through
``SSEParser("auto")`` under both ``on_malformed`` policies. Counts inputs tried and handled
cleanly; ``tests/attack/test_parsers.py`` runs a CI-sized share and asserts every input was
handled cleanly; run this module for a bigger sweep::

    python -m tests.attack._parsers                       # every byte + 20,000 mutations
    python -m tests.attack._parsers --mutations 200000 --seed 7

An input is handled cleanly when:

- the only exceptions are :class:`~streamops.errors.StreamFormatError` and its subclasses
  (``TruncatedStreamError``, ``LimitExceededError``); with ``on_malformed="event"`` nothing is
  raised except for a body with no complete SSE event with data at all (documented on
  ``SSEParser``) or a limit passed;
- a parse that ran to its end ends with exactly one ``RunEnd``;
- nothing received before the damage is lost: the events before the damaged event are the
  undamaged body's events for the same bytes (kinds, deltas, ids; timestamps and raw aside);
- every event serialises (``to_json``) and no input takes more than :data:`SLOW_SECONDS`
  (no hang).

Truncation at every byte is exact but cheap: the parser is fed one byte at a time, and the
truncated parse at byte ``k`` is ``close()`` on a copy of the parser that has read
``body[:k]``. ``SSEParser.close()`` discards the decoder's unfinished event (the SSE rule) and
depends only on the events dispatched so far, so the copy's result is computed once per
dispatched event and counted for every byte that leaves the parser in that state (each byte
is still fed and its ``feed`` checked).

Mutations (seeded ``random.Random``), each applied to one SSE event of a recorded body:
byte flips; invalid UTF-8 (a lone continuation byte, a truncated sequence, an overlong
encoding, a surrogate encoded in UTF-8); JSON value swaps in the event's payload: a lone
surrogate escape (``"\\ud83d"``), nesting 5,000 deep, a 5,000-digit integer, ``1e999``,
``NaN``, and a value of every other JSON type.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamops.adapters import SSEParser

from streamops.errors import LimitExceededError, StreamFormatError
from streamops.events import BaseEvent, RunEnd, to_json

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "recorded"
ROWS = list(csv.DictReader((RECORDED / "INDEX.tsv").read_text(encoding="utf-8").splitlines(), delimiter="\t"))
BODIES: dict[str, bytes] = {r["file"]: (RECORDED / r["file"]).read_bytes() for r in ROWS}
POLICIES = ("raise", "event")
SLOW_SECONDS = 5.0
"""An input whose parse takes longer than this counts as a hang (not handled cleanly)."""


@dataclasses.dataclass
class Tally:
    """Inputs tried and handled cleanly, per attack kind; the failures' descriptions."""

    tried: Counter[str] = dataclasses.field(default_factory=Counter)
    clean: Counter[str] = dataclasses.field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    failures: list[str] = dataclasses.field(default_factory=list)

    def add(self, kind: str, outcome: str, problem: str | None, n: int = 1) -> None:
        self.tried[kind] += n
        self.outcomes[(kind, outcome)] += n
        if problem is None:
            self.clean[kind] += n
        elif len(self.failures) < 20:
            self.failures.append(f"{kind}: {problem}")

    def report(self) -> str:
        lines = [f"{'attack':<28} {'inputs tried':>13} {'handled cleanly':>16}  outcomes"]
        for kind in sorted(self.tried):
            outs = ", ".join(f"{o} {n}" for (k, o), n in sorted(self.outcomes.items()) if k == kind)
            lines.append(f"{kind:<28} {self.tried[kind]:>13,} {self.clean[kind]:>16,}  {outs}")
        total, clean = sum(self.tried.values()), sum(self.clean.values())
        lines.append(f"{'total':<28} {total:>13,} {clean:>16,}")
        lines.extend(f"FAILED {f}" for f in self.failures)
        return "\n".join(lines)


def proj(e: BaseEvent) -> tuple[Any, ...]:
    """An event without its timestamp and raw payload: what must match."""
    return tuple(getattr(e, f.name) for f in dataclasses.fields(e) if f.name not in ("ts", "raw"))


def outcome_of(events: list[BaseEvent], exc: BaseException | None) -> str:
    if exc is not None:
        return type(exc).__name__
    return "error events" if any(e.kind == "error" for e in events) else "ok"


def check(
    events: list[BaseEvent], exc: BaseException | None, policy: str, seconds: float, start: int = 0
) -> str | None:
    """What is wrong with one parse's result (``None``: handled cleanly), apart from the
    prefix check, which needs the reference. ``events[:start]`` were checked already (they
    hold no run end and serialise)."""
    if seconds > SLOW_SECONDS:
        return f"took {seconds:.1f} s"
    if exc is not None:
        if not isinstance(exc, StreamFormatError):
            return f"untyped {type(exc).__name__}: {exc}"
        if policy == "event" and not isinstance(exc, LimitExceededError) and "no SSE event with data" not in str(exc):
            return f"raised {exc!r} with on_malformed='event'"
    else:
        ends = [i for i, e in enumerate(events[start:], start) if isinstance(e, RunEnd)]
        if ends != [len(events) - 1]:
            return f"run ends at {ends} of {len(events)} events"
    return serialises(events[start:])


def serialises(events: list[BaseEvent]) -> str | None:
    """What is wrong when ``to_json`` of each of ``events`` is attempted (``None``: nothing)."""
    for e in events:
        try:
            to_json(e)
        except Exception as err:
            return f"to_json raised {type(err).__name__} on a {e.kind} event"
    return None


def parse(body: bytes, policy: str, read: int = 4096) -> tuple[list[BaseEvent], BaseException | None, float]:
    """``body`` through ``SSEParser("auto")`` in ``read``-byte reads: events, exception, seconds."""
    t0 = time.perf_counter()
    p = SSEParser("auto", run_id="attack", on_malformed=policy)  # type: ignore[arg-type]
    events: list[BaseEvent] = []
    exc: BaseException | None = None
    try:
        for i in range(0, len(body), read):
            events += p.feed(body[i : i + read])
        events += p.close()
    except StreamFormatError as err:
        events += p.out
        exc = err
    except Exception as err:
        exc = err
    return events, exc, time.perf_counter() - t0


# ------------------------------------------------------------------------------- truncation
def truncate_every_byte(file: str, policy: str, tally: Tally) -> None:
    """Truncation of ``file`` at every byte (see the module docstring for how it stays cheap)."""
    body = BODIES[file]
    p = SSEParser("auto", run_id="attack", on_malformed=policy)  # type: ignore[arg-type]
    ref_events, _, _ = parse(body, policy)
    ref = [proj(e) for e in ref_events]
    got: list[BaseEvent] = []  # events returned by feed() so far
    memo: dict[Any, tuple[str, str | None]] = {}
    counts: Counter[tuple[str, str | None]] = Counter()
    failed: BaseException | None = None
    feed = p.feed
    for k in range(len(body) + 1):
        if k:
            if failed is None:
                t0 = time.perf_counter()
                try:
                    new = feed(body[k - 1 : k])
                    if new:
                        n = len(got)
                        got += new
                        problem = serialises(new)
                        if problem is None and [proj(e) for e in new] != ref[n : len(got)]:
                            problem = "events before the cut changed"
                        if problem is not None:
                            counts[("bad feed", f"{file}@{k}: {problem}")] += 1
                except StreamFormatError as err:
                    got += p.out
                    failed = err
                except Exception as err:
                    failed = err
                if failed is not None:
                    problem = check(got, failed, policy, time.perf_counter() - t0)
                    if problem is None and [proj(e) for e in got] != ref[: len(got)]:
                        problem = "events before the cut changed"
                    counts[(outcome_of(got, failed), problem and f"{file}@{k}: {problem}")] += 1
                    continue
            else:
                # the parser already failed at an earlier byte: every later cut fails the
                # same, typed way
                counts[(outcome_of(got, failed), None)] += 1
                continue
        key = len(got), p.api, p.ended
        if key not in memo:
            t0 = time.perf_counter()
            q = copy.deepcopy(p)
            events = list(got)
            exc: BaseException | None = None
            try:
                events += q.close()
            except StreamFormatError as err:
                events += q.out
                exc = err
            except Exception as err:
                exc = err
            problem = check(events, exc, policy, time.perf_counter() - t0, len(got) - (1 if p.ended else 0))
            memo[key] = (outcome_of(events, exc), problem and f"{file}@{k}: {problem}")
        counts[memo[key]] += 1
    for (outcome, problem), n in counts.items():
        tally.add("truncate@every byte", outcome, problem, n)


# ------------------------------------------------------------------------------- mutations
def events_of(body: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` byte ranges of the SSE events of ``body`` (blank-line separated)."""
    text = body.replace(b"\r\n", b"\n")
    if text != body:  # CRLF bodies: mutate them as LF bodies (the decoder treats both alike)
        return []
    out, start = [], 0
    while True:
        end = body.find(b"\n\n", start)
        if end < 0:
            break
        out.append((start, end + 2))
        start = end + 2
    return out


def _flip(payload: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(payload))
    return payload[:i] + bytes([payload[i] ^ (1 << rng.randrange(8))]) + payload[i + 1 :]


_BAD_UTF8 = [b"\x80", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff\xfe", b"\xf4\x90\x80\x80"]


def _bad_utf8(payload: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(payload) + 1)
    return payload[:i] + rng.choice(_BAD_UTF8) + payload[i:]


_SWAPS: list[tuple[str, Callable[[], Any]]] = [
    ("lone surrogate", lambda: "\ud83d"),
    ("low surrogate", lambda: "x\ude00y"),
    ("deep nesting", lambda: _Raw("[" * 5000 + "]" * 5000)),
    ("huge integer", lambda: _Raw("9" * 5000)),
    ("1e999", lambda: _Raw("1e999")),
    ("NaN", lambda: _Raw("NaN")),
    ("null", lambda: None),
    ("bool", lambda: True),
    ("int", lambda: 7),
    ("float", lambda: -0.5),
    ("string", lambda: "swapped"),
    ("list", lambda: ["a", 1]),
    ("object", lambda: {"type": "x", "text": 1}),
]


class _Raw:
    """JSON text written as is (values ``json.dumps`` cannot produce)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*path, i))
    return out


def _dump(obj: Any) -> str:
    if isinstance(obj, _Raw):
        return obj.text
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(_dump(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=True)


def _swap(payload: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    lines = payload.split(b"\n")
    data = [i for i, ln in enumerate(lines) if ln.startswith(b"data:")]
    if not data:
        return None
    i = rng.choice(data)
    try:
        obj = json.loads(lines[i][5:])
    except ValueError:
        return None
    paths = _paths(obj)
    path = rng.choice(paths[1:] or paths)
    name, make = rng.choice(_SWAPS)
    if not path:
        obj = make()
    else:
        parent = obj
        for p in path[:-1]:
            parent = parent[p]
        parent[path[-1]] = make()
    lines[i] = b"data: " + _dump(obj).encode()
    return b"\n".join(lines), name


def mutate(file: str, rng: random.Random) -> tuple[str, bytes, int] | None:
    """One mutation of one event of ``file``: (kind, damaged body, offset of the damaged event)."""
    body = BODIES[file]
    spans = events_of(body)
    if not spans:
        return None
    start, end = rng.choice(spans)
    event = body[start:end]
    r = rng.random()
    if r < 0.3:
        kind, damaged = "byte flip", _flip(event[:-2], rng) + b"\n\n"
    elif r < 0.5:
        kind, damaged = "invalid UTF-8", _bad_utf8(event[:-2], rng) + b"\n\n"
    else:
        swapped = _swap(event[:-2], rng)
        if swapped is None:
            return None
        damaged, name = swapped[0] + b"\n\n", swapped[1]
        kind = f"JSON swap: {name}"
    return kind, body[:start] + damaged + body[end:], start


_REFS: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
_PREFIX: dict[tuple[str, str, int], int] = {}


def _prefix_len(file: str, policy: str, start: int) -> int:
    """How many events the undamaged body's bytes before ``start`` complete."""
    key = (file, policy, start)
    if key not in _PREFIX:
        p = SSEParser("auto", run_id="attack", on_malformed=policy)  # type: ignore[arg-type]
        try:
            _PREFIX[key] = len(p.feed(BODIES[file][:start]))
        except StreamFormatError:
            _PREFIX[key] = 0
    return _PREFIX[key]


def run_mutations(n: int, seed: int, tally: Tally) -> None:
    """``n`` mutated bodies, each under both policies (``2 * n`` inputs)."""
    rng = random.Random(seed)
    files = sorted(BODIES)
    done = 0
    while done < n:
        file = rng.choice(files)
        m = mutate(file, rng)
        if m is None:
            continue
        kind, damaged, start = m
        done += 1
        for policy in POLICIES:
            key = (file, policy)
            if key not in _REFS:
                _REFS[key] = [proj(e) for e in parse(BODIES[file], policy)[0]]
            events, exc, seconds = parse(damaged, policy, read=rng.choice((64, 1024, 65536)))
            problem = check(events, exc, policy, seconds)
            before = _prefix_len(file, policy, start)
            # the events the bytes before the damaged event complete are kept (all of them,
            # or as many as came out before a raise)
            keep = min(before, len(events)) if exc is not None else before
            if problem is None and [proj(e) for e in events[:keep]] != _REFS[key][:keep]:
                problem = "events before the damaged event changed"
            where = f"{problem} [{file}, {kind}, on_malformed={policy}, event at byte {start}]"
            family = kind.split(":")[0] if kind.startswith("JSON") else kind
            tally.add(family, outcome_of(events, exc), problem and where)


def main() -> None:
    ap = argparse.ArgumentParser(description="parser attack suite: counts of inputs tried / handled cleanly")
    ap.add_argument("--mutations", type=int, default=20_000, help="mutated bodies (each under both policies)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--no-truncation", action="store_true", help="skip truncation at every byte")
    args = ap.parse_args()
    tally = Tally()
    t0 = time.perf_counter()
    if not args.no_truncation:
        for file in sorted(BODIES):
            for policy in POLICIES:
                truncate_every_byte(file, policy, tally)
    run_mutations(args.mutations, args.seed, tally)
    print(f"{len(BODIES)} recorded bodies, {sum(map(len, BODIES.values())):,} bytes; {time.perf_counter() - t0:.0f} s")
    print(tally.report())


if __name__ == "__main__":
    main()
