"""Test-only builders for Spice LZ streams and BITMAP data, with the expected decode.

A small reference LZ *encoder* written from the format description (research notes
display.md §1.4): control byte < 32 starts ``ctrl + 1`` literal units; otherwise a back
reference whose length field is ``ctrl >> 5`` (7: more length bytes follow while 255), then
a distance byte (``(ctrl & 31) << 8`` + byte; 31/255 escapes to a 16-bit far distance added
to 8191), distances biased by 1. Reference lengths start at 1 unit for RGB32/RGB24, 2 for
RGB16 and 3 for palette, alpha and A8 streams. The expected pixels are B, G, R, X bytes,
rows top-down, computed here independently of the C decoder.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

LZ_MAGIC = 0x20205A4C
LZ_VERSION = 0x00010001
NEAR_LIMIT = 8191
MAX_DISTANCE = NEAR_LIMIT + 0xFFFF + 1

PLT1_LE, PLT1_BE, PLT4_LE, PLT4_BE, PLT8 = 1, 2, 3, 4, 5
RGB16, RGB24, RGB32, RGBA, XXXA, A8 = 6, 7, 8, 9, 10, 11
ALL_LZ_TYPES = (PLT1_LE, PLT1_BE, PLT4_LE, PLT4_BE, PLT8, RGB16, RGB24, RGB32, RGBA, XXXA, A8)
PLT_BITS = {PLT1_LE: 1, PLT1_BE: 1, PLT4_LE: 4, PLT4_BE: 4, PLT8: 8}
# LZ palette types and the BITMAP formats that pack their rows the same way
PLT_TO_BITMAP = {PLT1_LE: 1, PLT1_BE: 2, PLT4_LE: 3, PLT4_BE: 4, PLT8: 5}


def min_ref_len(lz_type: int) -> int:
    if lz_type in (RGB32, RGB24):
        return 1
    if lz_type == RGB16:
        return 2
    return 3


def lz_header(lz_type: int, width: int, height: int, stride: int, top_down: bool) -> bytes:
    return struct.pack(
        ">7I", LZ_MAGIC, LZ_VERSION, lz_type, width, height, stride, 1 if top_down else 0
    )


def encode_reference(length: int, distance: int, min_len: int) -> bytes:
    """One back reference of ``length`` units ``distance`` units back."""
    assert length >= min_len and 1 <= distance <= MAX_DISTANCE
    field = length - min_len + 1
    out = bytearray()
    if field < 7:
        ctrl_len, extra = field, None
    else:
        ctrl_len, extra = 7, field - 7
    ofs = distance - 1
    if ofs < NEAR_LIMIT:
        out.append((ctrl_len << 5) | (ofs >> 8))
        tail = bytes([ofs & 0xFF])
    else:
        far = ofs - NEAR_LIMIT
        out.append((ctrl_len << 5) | 31)
        tail = bytes([0xFF, far >> 8, far & 0xFF])
    if extra is not None:
        while extra >= 255:
            out.append(255)
            extra -= 255
        out.append(extra)
    out += tail
    return bytes(out)


def encode_literals(units: Sequence[bytes]) -> bytes:
    out = bytearray()
    for start in range(0, len(units), 32):
        chunk = units[start : start + 32]
        out.append(len(chunk) - 1)
        for u in chunk:
            out += u
    return bytes(out)


def encode_units(units: Sequence[bytes], min_len: int, rng: random.Random) -> bytes:
    """LZ-encode ``units`` (each the literal bytes of one unit), varying the choices."""
    n = len(units)
    out = bytearray()
    pending: list[bytes] = []
    seen: dict[tuple[bytes, ...], list[int]] = {}
    i = 0
    while i < n:
        best_len, best_dist = 0, 0
        key = tuple(units[i : i + min_len])
        candidates = list(seen.get(key, ()))[-4:]
        if i:
            candidates.append(i - 1)
        if i > 1 and rng.random() < 0.2:
            candidates.append(rng.randrange(max(0, i - MAX_DISTANCE), i))
        for j in candidates:
            if i - j > MAX_DISTANCE:
                continue
            length = 0
            while i + length < n and units[j + length] == units[i + length]:
                length += 1
            if length > best_len:
                best_len, best_dist = length, i - j
        if best_len >= min_len and rng.random() < 0.9:
            if rng.random() < 0.3:
                best_len = rng.randint(min_len, best_len)
            out += encode_literals(pending)
            pending = []
            out += encode_reference(best_len, best_dist, min_len)
            step = best_len
        else:
            pending.append(units[i])
            step = 1
        for k in range(i, i + step):
            if k + min_len <= n:
                seen.setdefault(tuple(units[k : k + min_len]), []).append(k)
        i += step
    out += encode_literals(pending)
    return bytes(out)


def widen5(v: int) -> int:
    v &= 31
    return (v << 3) | (v >> 2)


def unpack_indices(bitmap_fmt: int, row: bytes, width: int) -> list[int]:
    """Palette indexes of one packed row (BITMAP formats 1BIT_LE..8BIT)."""
    out = []
    for x in range(width):
        if bitmap_fmt == 1:
            out.append((row[x // 8] >> (x % 8)) & 1)
        elif bitmap_fmt == 2:
            out.append((row[x // 8] >> (7 - x % 8)) & 1)
        elif bitmap_fmt == 3:
            b = row[x // 2]
            out.append(b & 15 if x % 2 == 0 else b >> 4)
        elif bitmap_fmt == 4:
            b = row[x // 2]
            out.append(b >> 4 if x % 2 == 0 else b & 15)
        else:
            out.append(row[x])
    return out


def pack_indices(bitmap_fmt: int, indices: Sequence[int], stride: int, pad: int) -> bytes:
    """Pack one row of palette indexes; bits past the row are filled from ``pad``."""
    row = bytearray([pad] * stride)
    bits = {1: 1, 2: 1, 3: 4, 4: 4, 5: 8}[bitmap_fmt]
    for x, idx in enumerate(indices):
        if bits == 8:
            row[x] = idx
            continue
        per = 8 // bits
        byte, slot = divmod(x, per)
        shift = slot * bits if bitmap_fmt in (1, 3) else 8 - bits - slot * bits
        mask = ((1 << bits) - 1) << shift
        row[byte] = (row[byte] & ~mask & 0xFF) | (idx << shift)
    return bytes(row)


def palette_pixel(entry: int) -> bytes:
    return bytes([entry & 0xFF, (entry >> 8) & 0xFF, (entry >> 16) & 0xFF, 0])


@dataclass
class LzCase:
    lz_type: int
    width: int
    height: int
    top_down: bool
    stream: bytes
    expected: bytes          # width*4 per row, top-down
    palette: list[int] | None = None
    prefill: bytes | None = None  # XXXA: what `out` holds before (B, G, R kept)


def lz_case(lz_type: int, width: int, height: int, top_down: bool, rng: random.Random) -> LzCase:
    """A random image of ``lz_type``, its stream, and the pixels a decoder must produce."""
    ncolors = rng.choice((1, 2, 3, 8, 200))
    min_len = min_ref_len(lz_type)
    rows = list(range(height))
    order = rows if top_down else rows[::-1]  # image row held by each stream row
    expected = bytearray(width * height * 4)
    palette: list[int] | None = None
    prefill: bytes | None = None

    def put(x: int, y: int, px: bytes) -> None:
        expected[(y * width + x) * 4 : (y * width + x) * 4 + 4] = px

    if lz_type in PLT_BITS:
        bits = PLT_BITS[lz_type]
        fmt = PLT_TO_BITMAP[lz_type]
        npal = rng.randint(2, 1 << bits) if bits < 8 else rng.randint(1, 256)
        palette = [rng.getrandbits(32) for _ in range(npal)]
        stride = (width * bits + 7) // 8
        image = [[rng.randrange(min(npal, ncolors + 1)) for _ in range(width)] for _ in rows]
        units = []
        for y in order:
            packed = pack_indices(fmt, image[y], stride, rng.getrandbits(8))
            units += [bytes([b]) for b in packed]
        for y in rows:
            for x in range(width):
                put(x, y, palette_pixel(palette[image[y][x]]))
        body = encode_units(units, min_len, rng)
        return LzCase(lz_type, width, height, top_down,
                      lz_header(lz_type, width, height, stride, top_down) + body,
                      bytes(expected), palette)

    colors = [rng.getrandbits(32) for _ in range(ncolors)]
    image32 = [[rng.choice(colors) for _ in range(width)] for _ in rows]
    if lz_type in (RGB32, RGB24, RGBA):
        rgb = [bytes([c & 0xFF, (c >> 8) & 0xFF, (c >> 16) & 0xFF]) for y in order
               for c in image32[y]]
        body = encode_units(rgb, min_ref_len(RGB32), rng)
        keep_alpha = lz_type == RGBA
        if keep_alpha:
            alpha = [bytes([c >> 24]) for y in order for c in image32[y]]
            body += encode_units(alpha, min_ref_len(RGBA), rng)
        for y in rows:
            for x in range(width):
                c = image32[y][x]
                put(x, y, struct.pack("<I", c if keep_alpha else c & 0xFFFFFF))
        bpp = 3 if lz_type == RGB24 else 4
    elif lz_type == RGB16:
        units = []
        for y in order:
            for c in image32[y]:
                v = c & 0xFFFF  # bit 15 is not part of x555 and must be ignored
                units.append(bytes([v >> 8, v & 0xFF]))
        body = encode_units(units, min_len, rng)
        for y in rows:
            for x in range(width):
                v = image32[y][x]
                put(x, y, bytes([widen5(v), widen5(v >> 5), widen5(v >> 10), 0]))
        bpp = 2
    else:  # XXXA, A8
        units = [bytes([c >> 24]) for y in order for c in image32[y]]
        body = encode_units(units, min_len, rng)
        if lz_type == XXXA:
            prefill = bytes(rng.getrandbits(8) for _ in range(width * height * 4))
            expected[:] = prefill
        for y in rows:
            for x in range(width):
                a = image32[y][x] >> 24
                if lz_type == XXXA:
                    expected[(y * width + x) * 4 + 3] = a
                else:
                    put(x, y, bytes([0, 0, 0, a]))
        bpp = 4 if lz_type == XXXA else 1
    return LzCase(lz_type, width, height, top_down,
                  lz_header(lz_type, width, height, width * bpp, top_down) + body,
                  bytes(expected), None, prefill)


def place(expected: bytes, width: int, height: int, out_stride: int, fill: int) -> bytes:
    """``expected`` (packed rows) laid out with ``out_stride``; padding bytes stay ``fill``."""
    out = bytearray([fill] * (out_stride * (height - 1) + width * 4))
    for y in range(height):
        out[y * out_stride : y * out_stride + width * 4] = expected[
            y * width * 4 : (y + 1) * width * 4
        ]
    return bytes(out)
