"""A slow, obviously-correct pure-Python renderer: the reference the numpy draw operations
are compared against. A surface is a list of rows of 32-bit words; every draw is a loop over
pixels that asks, for each one, "is it inside bbox, the surface, some clip rect and the
mask?" and computes the new word bit by bit or channel by channel from the definitions in
spice.proto and spice-common (written from the description, not from the numpy code)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

Grid = list[list[int]]
Rect4 = tuple[int, int, int, int]  # left, top, right, bottom

INVERS_SRC, INVERS_BRUSH, INVERS_DEST = 1, 2, 4
OP_PUT, OP_OR, OP_AND, OP_XOR = 8, 16, 32, 64
OP_BLACKNESS, OP_WHITENESS, OP_INVERS, INVERS_RES = 128, 256, 512, 1024
M32 = 0xFFFFFFFF


def ropd_word(desc: int, s: int, d: int, src_flag: int, dest_flag: int = INVERS_DEST) -> int:
    """The word a ROP descriptor makes from source word s and destination word d."""
    ops: list[tuple[int, Callable[[int, int], int]]] = [
        (OP_PUT, lambda a, b: a), (OP_OR, operator.or_), (OP_AND, operator.and_),
        (OP_XOR, operator.xor)]
    for flag, op in ops:
        if desc & flag:
            a = s ^ M32 if desc & src_flag else s
            b = d ^ M32 if desc & dest_flag else d
            r = op(a, b)
            return r ^ M32 if desc & INVERS_RES else r
    if desc & OP_BLACKNESS:
        return 0
    if desc & OP_WHITENESS:
        return M32
    if desc & OP_INVERS:
        return d ^ M32
    return s


def rop3_word(code: int, p: int, s: int, d: int) -> int:
    out = 0
    for bit in range(32):
        index = ((p >> bit & 1) << 2) | ((s >> bit & 1) << 1) | (d >> bit & 1)
        out |= (code >> index & 1) << bit
    return out


def covered(x: int, y: int, width: int, height: int, bbox: Rect4,
            clip: Sequence[Rect4] | None) -> bool:
    if not (0 <= x < width and 0 <= y < height):
        return False
    left, top, right, bottom = bbox
    if not (left <= x < right and top <= y < bottom):
        return False
    if clip is None:
        return True
    return any(c[0] <= x < c[2] and c[1] <= y < c[3] for c in clip)


def mask_allows(x: int, y: int, bbox: Rect4, mask: tuple[Grid, int, int, bool] | None) -> bool:
    if mask is None:
        return True
    bits, mx, my, invert = mask
    u, v = x - bbox[0] + mx, y - bbox[1] + my
    if not (0 <= v < len(bits) and 0 <= u < len(bits[0])):
        return False
    return bool(bits[v][u]) != invert


def source_word(src: Grid, area: Rect4, bbox: Rect4, x: int, y: int) -> int:
    """Nearest-neighbour sample at the destination pixel's centre."""
    bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
    sw, sh = area[2] - area[0], area[3] - area[1]
    # centre of destination pixel in source units: (x - left + 1/2) * sw / bw
    u = area[0] + ((x - bbox[0]) * 2 + 1) * sw // (2 * bw)
    v = area[1] + ((y - bbox[1]) * 2 + 1) * sh // (2 * bh)
    return src[v][u]


def draw(grid: Grid, bbox: Rect4, clip: Sequence[Rect4] | None,
         mask: tuple[Grid, int, int, bool] | None,
         pixel: Callable[[int, int, int], int | None]) -> Grid:
    """A new grid where every covered pixel becomes pixel(x, y, old) (None: unchanged)."""
    out = [row[:] for row in grid]
    height, width = len(grid), len(grid[0])
    for y in range(height):
        for x in range(width):
            if covered(x, y, width, height, bbox, clip) and mask_allows(x, y, bbox, mask):
                new = pixel(x, y, grid[y][x])
                if new is not None:
                    out[y][x] = new
    return out


def div255(v: int) -> int:
    """v / 255 rounded to nearest, halves up."""
    return (2 * v + 255) // 510


def over_word(s: int, m: int, d: int) -> int:
    """OVER of premultiplied B,G,R,A word s through coverage m onto d, channel by channel."""
    sa = div255((s >> 24) * m)
    out = 0
    for shift in (0, 8, 16, 24):
        sc = div255((s >> shift & 255) * m)
        dc = d >> shift & 255
        out |= min(255, sc + div255(dc * (255 - sa))) << shift
    return out


def tile_word(tile: Grid, px: int, py: int, x: int, y: int) -> int:
    return tile[(y - py) % len(tile)][(x - px) % len(tile[0])]
