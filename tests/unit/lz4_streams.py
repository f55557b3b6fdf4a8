"""Test-only builders for Spice LZ4 image data, with the pixels a decoder must produce.

The layout is spice-server 0.15's (research display.md §1.4, §8): u8 top_down, u8
SpiceBitmapFmt, then blocks of [u32 big-endian size][LZ4 block]. The server compresses
``more_lines`` chunks of rows with ``LZ4_compress_fast_continue``; here each block is
compressed by the ``lz4`` package with the rows before it as its dictionary, which is the same
linking (a block may copy from what earlier blocks decoded). The expected pixels are computed
here, independently of the C decoder: B, G, R, X rows top-down.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import lz4.block

BIT16, BIT24, BIT32, RGBA = 6, 7, 8, 9
LZ4_FORMATS = (BIT16, BIT24, BIT32, RGBA)
BPP = {BIT16: 2, BIT24: 3, BIT32: 4, RGBA: 4}


def widen5(v: int) -> int:
    v &= 31
    return (v << 3) | (v >> 2)


def to_bgrx(fmt: int, row: bytes, width: int) -> bytes:
    """One packed source row as B, G, R, X pixels."""
    out = bytearray()
    for x in range(width):
        if fmt == BIT16:
            v = row[2 * x] | row[2 * x + 1] << 8
            out += bytes([widen5(v), widen5(v >> 5), widen5(v >> 10), 0])
        elif fmt == BIT24:
            out += row[3 * x : 3 * x + 3] + b"\0"
        else:
            out += row[4 * x : 4 * x + 4]
    return bytes(out)


def lz4_blocks(raw: bytes, chunks: Sequence[int]) -> list[bytes]:
    """Compress ``raw`` as linked blocks of the given byte lengths (summing to len(raw))."""
    assert sum(chunks) == len(raw)
    blocks, start = [], 0
    for n in chunks:
        part = raw[start : start + n]
        blocks.append(lz4.block.compress(part, store_size=False, dict=raw[:start]))
        start += n
    return blocks


def lz4_payload(top_down: bool, fmt: int, blocks: Sequence[bytes]) -> bytes:
    out = bytearray([1 if top_down else 0, fmt])
    for b in blocks:
        out += len(b).to_bytes(4, "big") + b
    return bytes(out)


@dataclass
class Lz4Case:
    fmt: int
    width: int
    height: int
    top_down: bool
    raw: bytes           # the packed rows as sent (stream order)
    chunks: list[int]    # rows per block
    data: bytes
    expected: bytes      # width*4 per row, top-down


def random_rows(fmt: int, width: int, height: int, rng: random.Random) -> bytes:
    """Rows that compress: runs, repeats of earlier rows (some far back) and noise."""
    row = width * BPP[fmt]
    rows: list[bytes] = []
    for y in range(height):
        pick = rng.random()
        if rows and pick < 0.4:
            rows.append(rng.choice(rows))
        elif pick < 0.7:
            px = bytes(rng.getrandbits(8) for _ in range(BPP[fmt]))
            rows.append((px * width)[:row])
        else:
            rows.append(bytes(rng.getrandbits(8) for _ in range(row)))
        assert len(rows[y]) == row
    return b"".join(rows)


def lz4_case(
    fmt: int, width: int, height: int, top_down: bool, rng: random.Random,
    blocks: int = 1,
) -> Lz4Case:
    """A random image sent as ``blocks`` linked blocks of whole rows (as more_lines gives)."""
    raw = random_rows(fmt, width, height, rng)
    row = width * BPP[fmt]
    cuts = sorted(rng.sample(range(1, height), blocks - 1)) if blocks > 1 else []
    bounds = [0, *cuts, height]
    chunks = [b - a for a, b in itertools.pairwise(bounds)]
    data = lz4_payload(top_down, fmt, lz4_blocks(raw, [n * row for n in chunks]))
    stream_rows = [to_bgrx(fmt, raw[y * row : (y + 1) * row], width) for y in range(height)]
    if not top_down:
        stream_rows.reverse()
    return Lz4Case(fmt, width, height, top_down, raw, chunks, data, b"".join(stream_rows))
