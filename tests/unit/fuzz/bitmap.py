"""BITMAP: mutated bytes reinterpreted as pixels of every format with random geometry."""

from __future__ import annotations

import random
from types import ModuleType

from tests.unit.fuzz import FuzzTarget
from tests.unit.fuzz.lz import PALETTES
from tests.unit.fuzz.lz import seeds as lz_seeds


def feed(mod: ModuleType, data: bytes, seed: object, rng: random.Random) -> bool:
    fmt = rng.choice((*range(12), 0x106))  # 0x106: the 16_565 pseudo-format
    width, height = rng.randrange(0, 40), rng.randrange(0, 12)
    stride = rng.randrange(0, 170)
    out = None if rng.random() < 0.5 else bytearray(rng.randrange(0, 4 * 40 * 12))
    palette = rng.choice(PALETTES)
    try:
        mod.bitmap_decode(fmt, data, width, height, stride, rng.random() < 0.5, palette,
                          out, rng.choice((0, 0, 4 * width + 4, 3)))
    except mod.Error:
        return False
    return True


TARGET = FuzzTarget("bitmap", 25, lz_seeds, feed)
