"""The parser attack suite, CI share (issue 13): every recorded provider stream truncated at
every byte, under both ``on_malformed`` policies, and 1,000 randomly mutated bodies (byte
flips, invalid UTF-8, JSON value swaps: lone surrogates, 5,000-deep nesting, 5,000-digit
integers, ``1e999``, ``NaN``, every wrong JSON type), each under both policies. Every input
must be handled cleanly (only typed errors, no hang, the events before the damage kept, every
event serialisable): see :mod:`tests.attack._parsers`, which also runs bigger sweeps and
prints the counts (``python -m tests.attack._parsers``)."""

from __future__ import annotations

import pytest

from tests.attack import _parsers as attack


@pytest.mark.parametrize("policy", attack.POLICIES)
def test_truncation_at_every_byte_of_every_recorded_stream(policy: str) -> None:
    tally = attack.Tally()
    for file in sorted(attack.BODIES):
        attack.truncate_every_byte(file, policy, tally)
    n = sum(len(b) + 1 for b in attack.BODIES.values())
    assert tally.tried["truncate@every byte"] == n  # every cut, from 0 bytes to the whole body
    assert tally.clean == tally.tried, tally.report()
    # the damage is real: most cuts end in a typed truncation, as the body stops early
    typed = "TruncatedStreamError" if policy == "raise" else "error events"
    assert tally.outcomes[("truncate@every byte", typed)] > n // 2, tally.report()


@pytest.mark.parametrize("seed", [13, 14])
def test_random_mutations_of_recorded_streams(seed: int) -> None:
    tally = attack.Tally()
    attack.run_mutations(500, seed, tally)
    assert sum(tally.tried.values()) == 1000
    assert tally.clean == tally.tried, tally.report()
    assert set(tally.tried) == {"byte flip", "invalid UTF-8", "JSON swap"}
    errors = sum(n for (_, outcome), n in tally.outcomes.items() if outcome != "ok")
    assert errors > 100, tally.report()  # the mutations do reach the parsers
