"""QUIC streams from the test encoder: every type, small sizes, every kind of content.

Most inputs decode into a fresh buffer; some into a caller's buffer that may be too small or
have a wider (or too narrow) stride.
"""

from __future__ import annotations

import random
from types import ModuleType

from tests.unit.fuzz import FuzzTarget
from tests.unit.quic_streams import ALL_TYPES, CONTENTS, QuicCase, quic_case


def seeds(rng: random.Random) -> list[tuple[bytes, object]]:
    cases = [
        quic_case(t, rng.choice((1, 2, 3, 5, 9, 17, 33)), rng.choice((1, 2, 3, 7)),
                  rng.choice(list(CONTENTS)), rng)
        for t in ALL_TYPES
        for _ in range(8)
    ]
    # rows split where the wait mask grows (every 2048 pixels of a schedule)
    cases += [quic_case(t, 2100, 2, "text", rng) for t in ALL_TYPES]
    return [(c.stream, c) for c in cases]


def feed(mod: ModuleType, data: bytes, seed: object, rng: random.Random) -> bool:
    assert isinstance(seed, QuicCase)
    out_stride = rng.choice((0, 0, 0, seed.width * 4 + 8, 5))
    out = None
    if rng.random() < 0.3:
        size = len(seed.expected)
        out = bytearray(rng.choice((size, size + 64, max(0, size - 4), 4096)))
    try:
        mod.quic_decode(data, out, out_stride)
    except mod.Error:
        return False
    return True


TARGET = FuzzTarget("quic", 20, seeds, feed)
