"""Test-only GLZ encoder: streams for every GLZ type, with the pixels a decoder must produce.

Written from the format description (research notes display.md §1.4, §1.5, §8), independent
of the C decoder. Header, big-endian: u32 magic "  ZL", u32 version 0x00010001, u8 (type |
top_down << 4), u32 width, height, stride, u64 image id, u32 win_head_dist. Body as LZ but
with a reference layout of its own: ctrl = length << 5 | long_form << 4 | offset bits 0-3
(length 7: extension bytes added while 255), one byte of offset bits 4-11, then a byte whose
top 2 bits count the bytes after it. Short form (offset < 4096): its low 6 bits and those
bytes (<< 6, << 14, << 22) are the image distance. Long form: bit 5 = one more byte of
offset bits 17-24 at the end, bits 0-4 = offset bits 12-16, the bytes the image distance
(<< 0, << 8, << 16). Image distance 0 = a copy inside the image, offset + 1 units back;
otherwise image (id - distance) at `offset` units from its start. Lengths count from 1 unit
for RGB24/RGB32, 2 for RGB16, 3 for palette bytes and the alpha pass.

:class:`GlzTestEncoder` keeps a dictionary as the server does (ids from 0, a window of
``max_pixels``: before an image is added the oldest images go until the rest and the new
image fit; ``win_head_dist`` = id - the oldest id left) and references earlier images of the
same type inside that window, as the server's encoder does.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.unit.codec_streams import (
    PLT_BITS,
    PLT_TO_BITMAP,
    encode_literals,
    pack_indices,
    palette_pixel,
    widen5,
)

GLZ_MAGIC = 0x20205A4C
GLZ_VERSION = 0x00010001
HEADER_SIZE = 33
PLT1_LE, PLT1_BE, PLT4_LE, PLT4_BE, PLT8 = 1, 2, 3, 4, 5
RGB16, RGB24, RGB32, RGBA = 6, 7, 8, 9
ALL_GLZ_TYPES = (PLT1_LE, PLT1_BE, PLT4_LE, PLT4_BE, PLT8, RGB16, RGB24, RGB32, RGBA)
RGB_TYPES = (RGB16, RGB24, RGB32, RGBA)
SHORT_OFFSET = 1 << 12
MEDIUM_OFFSET = 1 << 17
MAX_OFFSET = 1 << 25
MAX_IMAGE_DIST = (1 << 30) - 1


def min_len(lz_type: int, alpha_pass: bool = False) -> int:
    if alpha_pass or lz_type in PLT_BITS:
        return 3
    return 2 if lz_type == RGB16 else 1


def glz_header(lz_type: int, width: int, height: int, stride: int, top_down: bool,
               image_id: int, win_head_dist: int) -> bytes:
    return struct.pack(">IIBIIIQI", GLZ_MAGIC, GLZ_VERSION, lz_type | (int(top_down) << 4),
                       width, height, stride, image_id, win_head_dist)


def stride_of(lz_type: int, width: int) -> int:
    if lz_type in PLT_BITS:
        return (width * PLT_BITS[lz_type] + 7) // 8
    return width * {RGB16: 2, RGB24: 3}.get(lz_type, 4)


def encode_reference(length: int, image_dist: int, offset: int, least: int) -> bytes:
    """A reference of ``length`` units: ``offset`` units back (image_dist 0), else from the
    start of the image ``image_dist`` back."""
    assert length >= least and 0 <= image_dist <= MAX_IMAGE_DIST
    ofs = offset - 1 if image_dist == 0 else offset
    assert 0 <= ofs < MAX_OFFSET
    field_len = length - least + 1
    long_form = ofs >= SHORT_OFFSET
    out = bytearray([(min(field_len, 7) << 5) | (16 if long_form else 0) | (ofs & 15)])
    if field_len >= 7:
        extra = field_len - 7
        while extra >= 255:
            out.append(255)
            extra -= 255
        out.append(extra)
    out.append((ofs >> 4) & 255)
    if not long_form:
        nbytes = next(k for k, top in enumerate((1 << 6, 1 << 14, 1 << 22, 1 << 30))
                      if image_dist < top)
        out.append((nbytes << 6) | (image_dist & 63))
        out += bytes((image_dist >> (6 + 8 * k)) & 255 for k in range(nbytes))
    else:
        longer = ofs >= MEDIUM_OFFSET
        nbytes = next(k for k, top in enumerate((1, 1 << 8, 1 << 16, 1 << 24))
                      if image_dist < top)
        out.append((nbytes << 6) | (32 if longer else 0) | ((ofs >> 12) & 31))
        out += bytes((image_dist >> (8 * k)) & 255 for k in range(nbytes))
        if longer:
            out.append((ofs >> 17) & 255)
    return bytes(out)


Key = tuple[int, ...]


@dataclass
class PassUnits:
    """One pass of one image: what matching compares, and each unit's literal bytes."""

    keys: list[int]
    literals: list[bytes]
    least: int
    index: dict[Key, list[int]] = field(default_factory=dict)


@dataclass
class GlzCase:
    image_id: int
    lz_type: int
    width: int
    height: int
    top_down: bool
    win_head_dist: int
    stream: bytes
    expected: bytes               # width * 4 per row, top-down
    palette: list[int] | None
    pixels: int                   # what the window counts
    passes: list[PassUnits]
    refs: dict[str, int] = field(default_factory=dict)   # how many of each kind it holds


def _match(keys: list[int], i: int, other: list[int], j: int, limit: int) -> int:
    n = 0
    while n < limit and i + n < len(keys) and j + n < len(other) and other[j + n] == keys[i + n]:
        n += 1
    return n


def encode_pass(unit: PassUnits, row_units: int, sources: list[tuple[int, PassUnits]],
                rng: random.Random, refs: dict[str, int], *, literal_rate: float = 0.1,
                truncate_rate: float = 0.3) -> bytes:
    """Encode one pass greedily; ``sources`` are (image distance, that image's pass)."""
    keys, least = unit.keys, unit.least
    n = len(keys)
    out = bytearray()
    pending: list[bytes] = []
    seen = unit.index
    i = 0
    while i < n:
        key = tuple(keys[i : i + least])
        best = (0, 0, 0)  # length, image distance, offset
        if len(key) == least:
            near = list(seen.get(key, ()))[-3:]
            near += [j for j in (i - 1, i - row_units) if 0 <= j < i]
            if i > 1 and rng.random() < 0.1:
                near.append(rng.randrange(max(0, i - MAX_OFFSET + 1), i))
            for j in near:
                if i - j > MAX_OFFSET:
                    continue
                length = _match(keys, i, keys, j, 1 << 20)
                if length > best[0]:
                    best = (length, 0, i - j)
            for dist, src in sources:
                for j in [*src.index.get(key, [])[-2:], i]:
                    if j >= MAX_OFFSET:
                        continue
                    length = _match(keys, i, src.keys, j, 1 << 20)
                    if length > best[0] or (length == best[0] and length and rng.random() < 0.3):
                        best = (length, dist, j)
        length, dist, offset = best
        if length >= least and rng.random() >= literal_rate:
            if rng.random() < truncate_rate:  # shorter than it could be: more references
                length = rng.randint(least, length)
            out += encode_literals(pending)
            pending = []
            out += encode_reference(length, dist, offset, least)
            kind = "cross" if dist else ("overlap" if offset < length else "intra")
            refs[kind] = refs.get(kind, 0) + 1
            step = length
        else:
            pending.append(unit.literals[i])
            step = 1
        for k in range(i, i + step):
            if k + least <= n:
                seen.setdefault(tuple(keys[k : k + least]), []).append(k)
        i += step
    out += encode_literals(pending)
    return bytes(out)


def random_pixels(lz_type: int, width: int, height: int, rng: random.Random,
                  palette: Sequence[int] | None = None) -> list[int]:
    """A picture of few colours (palette indexes for the PLT types), rows top-down."""
    if lz_type in PLT_BITS:
        assert palette
        colors = [rng.randrange(len(palette)) for _ in range(rng.choice((1, 2, 3, 8)))]
    else:
        colors = [rng.getrandbits(32) for _ in range(rng.choice((1, 2, 3, 8, 200)))]
    return [rng.choice(colors) for _ in range(width * height)]


def random_palette(lz_type: int, rng: random.Random) -> list[int]:
    bits = PLT_BITS[lz_type]
    return [rng.getrandbits(32) for _ in range(rng.randint(2, 1 << bits))]


class GlzTestEncoder:
    """A GLZ dictionary of ``max_pixels`` as the server keeps it, and its encoder."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.held: list[GlzCase] = []
        self.next_id = 0

    def held_ids(self) -> tuple[int, ...]:
        return tuple(c.image_id for c in self.held)

    def encode(self, lz_type: int, width: int, height: int, pixels: Sequence[int],
               rng: random.Random, *, top_down: bool = True, palette: Sequence[int] | None = None,
               cross: bool = True, literal_rate: float = 0.1,
               truncate_rate: float = 0.3) -> GlzCase:
        """Encode ``pixels`` (0xAARRGGBB, or palette indexes), rows top-down."""
        rows = range(height)
        order = list(rows) if top_down else list(rows)[::-1]
        stride = stride_of(lz_type, width)
        expected = bytearray(width * height * 4)
        passes: list[PassUnits] = []
        if lz_type in PLT_BITS:
            assert palette is not None
            fmt = PLT_TO_BITMAP[lz_type]
            data = b"".join(
                pack_indices(fmt, pixels[y * width : (y + 1) * width], stride, rng.getrandbits(8))
                for y in order
            )
            passes.append(PassUnits(list(data), [bytes([b]) for b in data], 3))
            for k, idx in enumerate(pixels):
                expected[4 * k : 4 * k + 4] = palette_pixel(palette[idx])
            size = stride * height * (8 // PLT_BITS[lz_type])
            row_units = stride
        else:
            seq = [pixels[y * width + x] for y in order for x in range(width)]
            if lz_type == RGB16:
                passes.append(PassUnits([c & 0x7FFF for c in seq],
                                        [bytes([(c >> 8) & 255, c & 255]) for c in seq], 2))
            else:
                passes.append(PassUnits([c & 0xFFFFFF for c in seq],
                                        [bytes([c & 255, (c >> 8) & 255, (c >> 16) & 255])
                                         for c in seq], 1))
            if lz_type == RGBA:
                passes.append(PassUnits([c >> 24 for c in seq], [bytes([c >> 24]) for c in seq], 3))
            for k, c in enumerate(pixels):
                if lz_type == RGB16:
                    px = bytes([widen5(c), widen5(c >> 5), widen5(c >> 10), 0])
                elif lz_type == RGBA:
                    px = struct.pack("<I", c)
                else:
                    px = struct.pack("<I", c & 0xFFFFFF)
                expected[4 * k : 4 * k + 4] = px
            size = width * height
            row_units = width
        assert size <= self.max_pixels, "the server sends larger images as LZ"
        # the window head, as the server moves it before adding the image
        total = sum(c.pixels for c in self.held)
        while self.held and total + size > self.max_pixels:
            total -= self.held.pop(0).pixels
        image_id = self.next_id
        self.next_id += 1
        dist = image_id - self.held[0].image_id if self.held else 0
        refs: dict[str, int] = {}
        body = bytearray()
        for p, unit in enumerate(passes):
            sources = [(image_id - c.image_id, c.passes[p]) for c in self.held
                       if cross and c.lz_type == lz_type]
            body += encode_pass(unit, row_units, sources, rng, refs, literal_rate=literal_rate,
                                truncate_rate=truncate_rate)
        stream = glz_header(lz_type, width, height, stride, top_down, image_id, dist) + body
        case = GlzCase(image_id, lz_type, width, height, top_down, dist, stream,
                       bytes(expected), list(palette) if palette is not None else None, size,
                       passes, refs)
        self.held.append(case)
        return case

    def random_image(self, lz_type: int, width: int, height: int, rng: random.Random,
                     **kw: bool) -> GlzCase:
        palette = random_palette(lz_type, rng) if lz_type in PLT_BITS else None
        pixels = random_pixels(lz_type, width, height, rng, palette)
        return self.encode(lz_type, width, height, pixels, rng, palette=palette, **kw)
