"""The display's compositing loops (raster_over, raster_rop3): pixel buffers cut from the
mutated bytes, with counts, strides of one word (solid brushes) and flags that sometimes
do not fit them, as a buggy caller could pass them. A call either runs, and its first pixel
equals a plain-Python computation, or raises ValueError for the lengths; nothing else."""

from __future__ import annotations

import random
from types import ModuleType

from tests.unit.fuzz import FuzzTarget


def seeds(rng: random.Random) -> list[tuple[bytes, object]]:
    return [(bytes(rng.getrandbits(8) for _ in range(n)), None)
            for n in (0, 4, 8, 12, 40, 64, 252, 1024) for _ in range(3)]


def _div255(v: int) -> int:
    return (2 * v + 255) // 510


def _over_first(src: bytes, dst: bytes, mask: bytes | None, alpha: int, flags: int) -> bytes:
    s, d = list(src[:4]), list(dst[:4])
    if flags & 1:
        s[3] = 255
    if flags & 2:
        d[3] = 255
    m = alpha if mask is None else _div255(alpha * mask[0])
    s = [_div255(c * m) for c in s]
    out = [min(255, s[c] + _div255(d[c] * (255 - s[3]))) for c in range(4)]
    if flags & 4:
        out[3] = 0
    return bytes(out)


def _cut(data: bytes, rng: random.Random, count: int) -> bytes:
    size = rng.choice((count * 4, count * 4, count * 4, max(0, count * 4 - 1), 4, 0))
    start = rng.randrange(len(data) + 1)
    return (data[start:] + data)[:size].ljust(size, b"\x5a")


def feed(mod: ModuleType, data: bytes, seed: object, rng: random.Random) -> bool:
    count = rng.choice((len(data) // 4, len(data) // 4, 1, 0, 3, 1 << 29, -1))
    n = max(0, min(count, 4096))
    try:
        if rng.random() < 0.5:
            src, dst = _cut(data, rng, n), _cut(data, rng, n)
            mask = None if rng.random() < 0.5 else _cut(data, rng, n)[: rng.choice((n, n - 1))]
            out = bytearray(rng.choice((n * 4, n * 4, max(0, n * 4 - 2))))
            alpha = rng.choice((0, 1, 128, 255, 255, 256))
            flags = rng.choice((0, 1, 2, 3, 4, 7, 8))
            mod.raster_over(src, dst, mask, out, count, alpha, flags)
            if count > 0:
                assert bytes(out[:4]) == _over_first(src, dst, mask, alpha, flags)
        else:
            p, s, d = (_cut(data, rng, n) for _ in range(3))
            out = bytearray(rng.choice((n * 4, max(0, n * 4 - 3))))
            code = rng.choice((rng.randrange(256), 0xCC, 0xF0, 0x96, 256))
            mod.raster_rop3(code, p, s, d, out, count)
            if count > 0:
                pv, sv, dv = (int.from_bytes(b[:4], "little") for b in (p, s, d))
                want = 0
                for bit in range(32):
                    k = (pv >> bit & 1) << 2 | (sv >> bit & 1) << 1 | (dv >> bit & 1)
                    want |= (code >> k & 1) << bit
                assert int.from_bytes(out[:4], "little") == want
    except ValueError:
        return False
    return True


TARGET = FuzzTarget("raster", 10, seeds, feed)
