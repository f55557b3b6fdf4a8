"""16-bit 565 pixels (a 16_565 surface's layout) through decode_bitmap(..., rgb565=True)."""

from __future__ import annotations

import random
import struct

import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.spice.codecs import BitmapFormat, decode_bitmap
from tests.unit.codec_streams import place


def widen(v: int, bits: int) -> int:
    """A channel of ``bits`` bits widened to 8 by repeating its top bits (as pixman does)."""
    v <<= 8 - bits
    return v | (v >> bits)


def expand_565(row: bytes, width: int) -> bytes:
    out = bytearray()
    for x in range(width):
        v = row[2 * x] | row[2 * x + 1] << 8
        out += bytes([widen(v & 31, 5), widen((v >> 5) & 63, 6), widen(v >> 11, 5), 0])
    return bytes(out)


@pytest.mark.parametrize(
    ("word", "bgrx"),
    [
        (0xF800, (0, 0, 255, 0)),      # red: bits 15-11
        (0x07E0, (0, 255, 0, 0)),      # green: bits 10-5, six of them
        (0x001F, (255, 0, 0, 0)),      # blue: bits 4-0
        (0xFFFF, (255, 255, 255, 0)),
        (0x0000, (0, 0, 0, 0)),
        (0x0020, (0, 4, 0, 0)),        # the lowest green step: 1 << 2
        (0x8410, (0x84, 0x82, 0x84, 0)),  # half of each: 16/32/16
    ],
)
def test_565_byte_level(word: int, bgrx: tuple[int, int, int, int]) -> None:
    img = decode_bitmap(6, struct.pack("<H", word), 1, 1, 2, top_down=True, rgb565=True)
    assert tuple(bytes(img.pixels)) == bgrx


def test_565_is_not_x555() -> None:
    data = struct.pack("<H", 0x07E0)  # all green in 565; in x555 half green, half red
    x555 = bytes(decode_bitmap(6, data, 1, 1, 2, top_down=True).pixels)
    rgb565 = bytes(decode_bitmap(6, data, 1, 1, 2, top_down=True, rgb565=True).pixels)
    assert rgb565 == bytes([0, 255, 0, 0]) and x555 != rgb565


@pytest.mark.parametrize("top_down", [True, False], ids=["top-down", "bottom-up"])
def test_565_rows_strides_and_order(top_down: bool) -> None:
    rng = random.Random(top_down)
    for width, height in [(1, 1), (3, 2), (17, 5), (64, 9)]:
        for pad in (0, 2, 6):
            stride = width * 2 + pad
            rows = [rng.randbytes(stride) for _ in range(height)]
            expected = b"".join(expand_565(r, width) for r in rows)
            sent = rows if top_down else rows[::-1]
            img = decode_bitmap(BitmapFormat.BIT16, b"".join(sent), width, height, stride,
                                top_down=top_down, rgb565=True)
            assert bytes(img.pixels) == expected, (width, height, pad)
            ostride = width * 4 + 8
            out = bytearray([0xEE] * (ostride * height))
            decode_bitmap(6, memoryview(b"".join(sent)), width, height, stride,
                          top_down=top_down, rgb565=True, out=out, out_stride=ostride)
            assert bytes(out[: ostride * (height - 1) + width * 4]) == place(
                expected, width, height, ostride, 0xEE)


@pytest.mark.parametrize("fmt", [BitmapFormat.BIT8, BitmapFormat.BIT24, BitmapFormat.BIT32])
def test_rgb565_only_for_16_bit(fmt: BitmapFormat) -> None:
    with pytest.raises(InvalidArgument, match="rgb565"):
        decode_bitmap(fmt, bytes(8), 1, 1, 4, top_down=True, rgb565=True, palette=[0])
