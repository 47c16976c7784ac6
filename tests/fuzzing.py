"""Shared pieces of the property-based fuzz tests (tests/test_fuzz_*.py).

One hypothesis profile for all of them: derandomized (a CI run tries the same
inputs every time, so a failure reproduces), no example database on disk,
a per-example deadline that catches a parser gone quadratic. Budgets are
small enough that every fuzz file together runs in seconds; set
``EDGEAUDIT_FUZZ_SCALE=20`` (or more) for a longer, randomized local hunt.

``mutated(seeds)`` takes valid messages and flips, truncates, extends,
inserts, deletes and duplicates bytes, so the fuzzer gets past a parser's
first checks instead of dying on the magic number.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from profiles.errors import MalformedResponse

T = TypeVar("T")
SCALE = float(os.environ.get("EDGEAUDIT_FUZZ_SCALE", "1"))

settings.register_profile(
    "edgeaudit-fuzz",
    derandomize=SCALE <= 1,
    database=None,
    deadline=timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
_PROFILE = settings.get_profile("edgeaudit-fuzz")


def budget(examples: int) -> settings:
    """The fuzz profile with ``examples`` examples (times EDGEAUDIT_FUZZ_SCALE)."""
    return settings(_PROFILE, max_examples=max(1, int(examples * SCALE)))


INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x81, 0x84, 0xFF)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], max_ops: int = 4) -> bytes:
    """One of ``seeds`` with up to ``max_ops`` byte-level mutations."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(("flip", "set", "truncate", "extend", "insert", "delete", "duplicate", "char")))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            i = min(pos, len(data) - 1)
            data[i] = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "extend":
            data += draw(st.binary(max_size=64))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "duplicate":
            end = min(len(data), pos + draw(st.integers(1, 32)))
            data[pos:pos] = data[pos:end] * draw(st.integers(1, 8))
        elif op == "char":  # one character's UTF-8, for the text protocols: non-ASCII digits, controls, spaces
            data[pos:pos] = draw(st.characters(codec="utf-8")).encode()
    return bytes(data)


def inputs(seeds: Sequence[bytes], max_size: int = 2048) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or a valid seed mutated (most of the examples)."""
    return st.one_of(st.binary(max_size=max_size), mutated(seeds), mutated(seeds), mutated(seeds))


def parse_or_malformed(parse: Callable[[], T]) -> T | None:
    """The parse's result, or None when it raised MalformedResponse; any other exception fails the test."""
    try:
        return parse()
    except MalformedResponse:
        return None
