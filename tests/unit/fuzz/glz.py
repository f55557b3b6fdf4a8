"""GLZ streams from the test encoder, every type, decoded into a fresh window per input.

Each seed is a short scenario: a few images the target image may reference, then the target.
An input gets its own window (reproducible runs), most often pre-filled with the scenario's
earlier images so that references into other images are exercised, sometimes left empty
(references then fail), sometimes decoded twice (the failed-id and duplicate paths), and
sometimes allowed a very short wait for images that never come.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from types import ModuleType

from tests.unit.codec_streams import PLT_BITS
from tests.unit.fuzz import FuzzTarget
from tests.unit.glz_streams import (
    ALL_GLZ_TYPES,
    GlzTestEncoder,
    random_palette,
    random_pixels,
)

PALETTES = (None, b"", b"\x01\x02\x03\x00" * 2, bytes(range(256)) * 4)


def _pal(palette: list[int] | None) -> bytes | None:
    return None if palette is None else b"".join(p.to_bytes(4, "little") for p in palette)


@dataclass(frozen=True)
class GlzSeed:
    max_pixels: int
    prefill: tuple[tuple[bytes, bytes | None], ...]   # (stream, palette) in id order
    palette: bytes | None
    width: int
    height: int


def seeds(rng: random.Random) -> list[tuple[bytes, object]]:
    out: list[tuple[bytes, object]] = []
    for lz_type in ALL_GLZ_TYPES:
        for _ in range(6):
            width, height = rng.choice((1, 2, 5, 9, 16, 33)), rng.choice((1, 2, 3, 7))
            max_pixels = rng.choice((1, 2, 4)) * 40 * 8 + 64
            enc = GlzTestEncoder(max_pixels)
            palette = None
            if lz_type in PLT_BITS:
                palette = random_palette(lz_type, rng)
            base = random_pixels(lz_type, width, height, rng, palette)
            cases = []
            for _ in range(rng.randint(1, 4)):
                pixels = list(base)
                pixels[rng.randrange(len(pixels))] = rng.choice(base)
                cases.append(enc.encode(lz_type, width, height, pixels, rng, palette=palette,
                                        top_down=rng.random() < 0.5, literal_rate=0.05))
            *before, target = cases
            prefill = tuple((c.stream, _pal(c.palette)) for c in before)
            out.append((target.stream, GlzSeed(max_pixels, prefill, _pal(palette), width, height)))
    return out


def feed(mod: ModuleType, data: bytes, seed: object, rng: random.Random) -> bool:
    assert isinstance(seed, GlzSeed)
    window = mod.GlzWindow(seed.max_pixels, wait_timeout=0.0)
    if rng.random() < 0.8:
        for stream, palette in seed.prefill:
            mod.glz_decode(stream, window, None, 0, 0.0, palette)  # valid: must decode
    palette = rng.choice(PALETTES) if rng.random() < 0.3 else seed.palette
    out_stride = rng.choice((0, 0, 0, seed.width * 4 + 8, 5))
    out = None
    if rng.random() < 0.5:
        size = seed.width * seed.height * 4
        out = bytearray(rng.choice((size, size + 64, max(0, size - 4), 4096)))
    timeout = 0.0005 if rng.random() < 0.05 else 0.0
    decoded = True
    for _ in range(2 if rng.random() < 0.2 else 1):
        try:
            mod.glz_decode(data, window, out, out_stride, timeout, palette)
        except mod.Error:
            decoded = False
    if rng.random() < 0.1:
        window.clear()
        with contextlib.suppress(mod.Error):
            mod.glz_decode(data, window, out, out_stride, 0.0, palette)
    window.close()
    assert window.images == 0 and window.pixels == 0
    return decoded


TARGET = FuzzTarget("glz", 15, seeds, feed)
