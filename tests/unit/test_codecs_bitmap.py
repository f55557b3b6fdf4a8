"""BITMAP conversion to B, G, R, X: every format, both row orders, strides, hostile sizes."""

from __future__ import annotations

import random
import struct

import pytest

from atp_notebook.errors import CodecError
from atp_notebook.spice.codecs import BitmapFormat, decode_bitmap
from tests.unit.codec_streams import pack_indices, palette_pixel, place, widen5

BITS = {1: 1, 2: 1, 3: 4, 4: 4, 5: 8, 6: 16, 7: 24, 8: 32, 9: 32, 10: 8}


def bitmap_case(
    fmt: int, width: int, height: int, stride_pad: int, rng: random.Random
) -> tuple[bytes, int, list[int] | None, bytes]:
    """(data top-down, stride, palette, expected top-down pixels)."""
    bits = BITS[fmt]
    stride = (width * bits + 7) // 8 + stride_pad
    palette = None
    rows = []
    expected = bytearray()
    if fmt <= 5:
        npal = rng.randint(2, 1 << bits) if bits < 8 else rng.randint(1, 256)
        palette = [rng.getrandbits(32) for _ in range(npal)]
        for _ in range(height):
            idx = [rng.randrange(npal) for _ in range(width)]
            rows.append(pack_indices(fmt, idx, stride, rng.getrandbits(8)))
            expected += b"".join(palette_pixel(palette[i]) for i in idx)
        return b"".join(rows), stride, palette, bytes(expected)
    for _ in range(height):
        raw = bytes(rng.getrandbits(8) for _ in range(stride))
        rows.append(raw)
        for x in range(width):
            if fmt == 6:
                v = raw[2 * x] | raw[2 * x + 1] << 8
                expected += bytes([widen5(v), widen5(v >> 5), widen5(v >> 10), 0])
            elif fmt == 7:
                expected += raw[3 * x : 3 * x + 3] + b"\0"
            elif fmt in (8, 9):
                expected += raw[4 * x : 4 * x + 4]
            else:
                expected += bytes([0, 0, 0, raw[x]])
    return b"".join(rows), stride, palette, bytes(expected)


def flip(data: bytes, stride: int, height: int) -> bytes:
    return b"".join(data[r * stride : (r + 1) * stride] for r in reversed(range(height)))


@pytest.mark.parametrize("fmt", list(BitmapFormat), ids=lambda f: f.name)
@pytest.mark.parametrize("top_down", [True, False], ids=["top-down", "bottom-up"])
def test_every_format(fmt: BitmapFormat, top_down: bool) -> None:
    rng = random.Random(fmt * 2 + top_down)
    for width, height in [(1, 1), (2, 3), (7, 2), (8, 1), (9, 5), (17, 4), (67, 33)]:
        for pad in (0, 1, 3):
            data, stride, pal, expected = bitmap_case(fmt, width, height, pad, rng)
            src = data if top_down else flip(data, stride, height)
            img = decode_bitmap(fmt, src, width, height, stride, top_down=top_down, palette=pal)
            assert bytes(img.pixels) == expected, (width, height, pad)
            # the last row may stop at its pixels (no trailing stride padding)
            short = src[: stride * (height - 1) + (width * BITS[fmt] + 7) // 8]
            out = bytearray([0xEE] * (4 * width * height + 40 * height))
            decode_bitmap(fmt, memoryview(short), width, height, stride, top_down=top_down,
                          palette=pal, out=out, out_stride=4 * width + 40)
            assert bytes(out[: 4 * width * height + 40 * (height - 1)]) == place(
                expected, width, height, 4 * width + 40, 0xEE)


@pytest.mark.parametrize(
    ("fmt", "data", "expected"),
    [
        (BitmapFormat.BIT1_LE, b"\x01", [1, 0, 0, 0, 0, 0, 0, 0]),
        (BitmapFormat.BIT1_BE, b"\x01", [0, 0, 0, 0, 0, 0, 0, 1]),
        (BitmapFormat.BIT4_LE, b"\x21\x03", [1, 2, 3]),
        (BitmapFormat.BIT4_BE, b"\x12\x30", [1, 2, 3]),
        (BitmapFormat.BIT8, b"\x02\x00\x01", [2, 0, 1]),
    ],
)
def test_palette_byte_level(fmt: BitmapFormat, data: bytes, expected: list[int]) -> None:
    pal = [0x00102030, 0x00405060, 0x00708090, 0xFFA0B0C0]
    img = decode_bitmap(fmt, data, len(expected), 1, len(data), top_down=True, palette=pal)
    assert bytes(img.pixels) == b"".join(palette_pixel(pal[i]) for i in expected)
    # a palette buffer of little-endian u32 entries works the same
    raw = struct.pack("<4I", *pal)
    img2 = decode_bitmap(fmt, data, len(expected), 1, len(data), top_down=True, palette=raw)
    assert img2.pixels == img.pixels


def test_x555_byte_level() -> None:
    # 0x7fff white, 0x7c00 red, 0x03e0 green, 0x001f blue, bit 15 ignored
    data = struct.pack("<5H", 0x7FFF, 0x7C00, 0x03E0, 0x001F, 0x8000)
    img = decode_bitmap(6, data, 5, 1, 10, top_down=True)
    assert bytes(img.pixels) == bytes(
        [255, 255, 255, 0, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0]
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0, b"\0" * 4, 1, 1, 4), "unknown bitmap format"),
        ((11, b"\0" * 4, 1, 1, 4), "unknown bitmap format"),
        ((8, b"\0" * 4, 0, 1, 4), "empty"),
        ((8, b"\0" * 7, 2, 1, 8), "needs 8 bytes"),
        ((8, b"\0" * 8, 2, 1, 7), "shorter than a row"),
        ((8, b"\0" * 15, 2, 2, 8), "needs 16 bytes"),
        ((8, b"\0" * 8, 1 << 20, 1 << 20, 8), "larger than"),
        ((5, b"\0" * 4, 4, 1, 4), "needs a palette"),
    ],
)
def test_hostile_sizes(args: tuple[int, bytes, int, int, int], words: str) -> None:
    fmt, data, w, h, stride = args
    with pytest.raises(CodecError, match=words) as info:
        decode_bitmap(fmt, data, w, h, stride, top_down=True)
    assert info.value.codec == "bitmap"


def test_palette_index_past_palette_names_offset() -> None:
    data = b"\x00\x01" + b"\x00\x07"
    with pytest.raises(CodecError, match="palette index 7") as info:
        decode_bitmap(5, data, 2, 2, 2, top_down=True, palette=[0, 1, 2])
    assert info.value.offset == 3


def test_output_too_small() -> None:
    with pytest.raises(CodecError, match="does not fit"):
        decode_bitmap(8, b"\0" * 16, 2, 2, 8, top_down=True, out=bytearray(15))
    with pytest.raises(CodecError, match="stride"):
        decode_bitmap(8, b"\0" * 16, 2, 2, 8, top_down=True, out=bytearray(64), out_stride=7)
