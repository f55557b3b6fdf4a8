"""LZ4 images from the test builder: every format, both row orders, one or several linked
blocks; the descriptor's size is sometimes off, as a hostile server could send it."""

from __future__ import annotations

import random
from types import ModuleType

from tests.unit.fuzz import FuzzTarget
from tests.unit.lz4_streams import LZ4_FORMATS, Lz4Case, lz4_case


def seeds(rng: random.Random) -> list[tuple[bytes, object]]:
    cases = []
    for fmt in LZ4_FORMATS:
        for _ in range(6):
            height = rng.choice((1, 2, 5, 9, 40))
            blocks = rng.randint(1, min(height, 4))
            cases.append(lz4_case(fmt, rng.choice((1, 3, 8, 33, 300)), height,
                                  rng.random() < 0.5, rng, blocks=blocks))
    return [(c.data, c) for c in cases]


def feed(mod: ModuleType, data: bytes, seed: object, rng: random.Random) -> bool:
    assert isinstance(seed, Lz4Case)
    width, height = seed.width, seed.height
    if rng.random() < 0.2:
        width = max(0, width + rng.choice((-1, 1, 7, 1 << 14, -width)))
    if rng.random() < 0.2:
        height = max(0, height + rng.choice((-1, 1, 3, 1 << 14, -height)))
    out_stride = rng.choice((0, 0, 0, width * 4 + 8, 5))
    out = None
    if rng.random() < 0.5:
        size = len(seed.expected)
        out = bytearray(rng.choice((size, size + 64, max(0, size - 4), 4096)))
    try:
        mod.lz4_decode(data, width, height, out, out_stride)
    except mod.Error:
        return False
    return True


TARGET = FuzzTarget("lz4", 10, seeds, feed)
