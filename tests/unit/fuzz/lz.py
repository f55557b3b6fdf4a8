"""LZ streams from the test encoder, every type, both row orders, with and without a palette."""

from __future__ import annotations

import random
from types import ModuleType

from tests.unit.codec_streams import ALL_LZ_TYPES, LzCase, lz_case
from tests.unit.fuzz import FuzzTarget

PALETTES = (None, b"", b"\x01\x02\x03\x00" * 2, bytes(range(256)) * 4)


def seeds(rng: random.Random) -> list[tuple[bytes, object]]:
    cases = [
        lz_case(t, rng.choice((1, 2, 5, 9, 16, 33)), rng.choice((1, 2, 3, 7)),
                rng.random() < 0.5, rng)
        for t in ALL_LZ_TYPES
        for _ in range(6)
    ]
    return [(c.stream, c) for c in cases]


def feed(mod: ModuleType, data: bytes, seed: object, rng: random.Random) -> bool:
    assert isinstance(seed, LzCase)
    if rng.random() < 0.3:
        palette = rng.choice(PALETTES)
    else:
        palette = b"".join(p.to_bytes(4, "little") for p in seed.palette) if seed.palette else None
    out_stride = rng.choice((0, 0, 0, seed.width * 4 + 8, 5))
    out = None
    if rng.random() < 0.5:
        size = len(seed.expected)
        out = bytearray(rng.choice((size, size + 64, max(0, size - 4), 4096)))
    try:
        mod.lz_decode(data, out, out_stride, palette)
    except mod.Error:
        return False
    return True


TARGET = FuzzTarget("lz", 75, seeds, feed)
