"""LZ4 images: every format, both row orders, linked blocks, strides, hostile data."""

from __future__ import annotations

import random

import lz4.block
import pytest

from atp_notebook.errors import CodecError, InvalidArgument, RemoteProtocolError
from atp_notebook.spice.codecs import BitmapFormat, decode_lz4
from tests.unit.codec_streams import place
from tests.unit.gil_probe import ticks_during
from tests.unit.lz4_streams import (
    BIT16,
    BIT24,
    BIT32,
    LZ4_FORMATS,
    RGBA,
    lz4_blocks,
    lz4_case,
    lz4_payload,
)

SIZES = [(1, 1), (2, 1), (1, 3), (7, 3), (9, 4), (31, 7), (67, 33)]


@pytest.mark.parametrize("fmt", LZ4_FORMATS, ids=lambda f: BitmapFormat(f).name)
@pytest.mark.parametrize("top_down", [True, False], ids=["top-down", "bottom-up"])
def test_every_format_one_block(fmt: int, top_down: bool) -> None:
    rng = random.Random(fmt * 2 + top_down)
    for width, height in SIZES:
        case = lz4_case(fmt, width, height, top_down, rng)
        img = decode_lz4(case.data, width, height)
        assert (img.width, img.height, img.stride) == (width, height, width * 4)
        assert img.bitmap_format == fmt and img.top_down == top_down
        assert bytes(img.pixels) == case.expected, (width, height)


@pytest.mark.parametrize("fmt", LZ4_FORMATS, ids=lambda f: BitmapFormat(f).name)
@pytest.mark.parametrize("blocks", [2, 3, 7])
def test_linked_blocks(fmt: int, blocks: int) -> None:
    rng = random.Random(fmt * 10 + blocks)
    for top_down in (True, False):
        case = lz4_case(fmt, 45, 20, top_down, rng, blocks=blocks)
        assert bytes(decode_lz4(case.data, 45, 20).pixels) == case.expected


def test_later_block_copies_from_an_earlier_one() -> None:
    """The second block is nothing but a copy of the first: decoded alone it cannot work."""
    rng = random.Random(1)
    row = bytes(rng.getrandbits(8) for _ in range(64 * 4))
    blocks = lz4_blocks(row * 2, [len(row), len(row)])
    assert len(blocks[1]) < 20
    with pytest.raises(lz4.block.LZ4BlockError):
        lz4.block.decompress(blocks[1], uncompressed_size=len(row))
    img = decode_lz4(lz4_payload(True, BIT32, blocks), 64, 2)
    assert bytes(img.pixels) == row * 2


def test_blocks_beyond_the_64k_window() -> None:
    # 300 rows of 1 KiB in 12 blocks: each block links to the 64 KiB before it
    rng = random.Random(7)
    case = lz4_case(BIT32, 256, 300, True, rng, blocks=12)
    assert bytes(decode_lz4(case.data, 256, 300).pixels) == case.expected


def test_what_the_real_server_sends() -> None:
    # research §8: td=1, fmt=8, one block per image (a 32x10 strip: one block -> 1280 bytes)
    rng = random.Random(2)
    raw = bytes(rng.choice((0, 0x80, 0xFF)) for _ in range(32 * 10 * 4))
    block = lz4.block.compress(raw, store_size=False)
    data = b"\x01\x08" + len(block).to_bytes(4, "big") + block
    img = decode_lz4(memoryview(data), 32, 10)
    assert bytes(img.pixels) == raw and img.bitmap_format is BitmapFormat.BIT32


@pytest.mark.parametrize(
    ("fmt", "pixel", "expected"),
    [
        # x555 little-endian: 0x7c00 red, 0x03e0 green, 0x001f blue; bit 15 ignored
        (BIT16, b"\x00\x7c", b"\x00\x00\xff\x00"),
        (BIT16, b"\xe0\x83", b"\x00\xff\x00\x00"),
        (BIT16, b"\x1f\x00", b"\xff\x00\x00\x00"),
        (BIT16, b"\x10\x42", b"\x84\x84\x84\x00"),  # 16 in each channel -> 0x84
        (BIT24, b"\x01\x02\x03", b"\x01\x02\x03\x00"),
        (BIT32, b"\x01\x02\x03\x04", b"\x01\x02\x03\x04"),  # X kept as sent
        (RGBA, b"\x01\x02\x03\x80", b"\x01\x02\x03\x80"),
    ],
)
def test_pixel_conversion_byte_level(fmt: int, pixel: bytes, expected: bytes) -> None:
    data = lz4_payload(True, fmt, lz4_blocks(pixel * 3, [len(pixel) * 3]))
    assert bytes(decode_lz4(data, 3, 1).pixels) == expected * 3


@pytest.mark.parametrize("fmt", LZ4_FORMATS, ids=lambda f: BitmapFormat(f).name)
@pytest.mark.parametrize("extra", [4, 100])
def test_caller_buffer_with_wider_stride(fmt: int, extra: int) -> None:
    rng = random.Random(extra + fmt)
    for top_down in (True, False):
        case = lz4_case(fmt, 13, 9, top_down, rng, blocks=2)
        stride = 13 * 4 + extra
        out = bytearray([0xAB] * (stride * 8 + 13 * 4))
        view = memoryview(out)
        img = decode_lz4(bytearray(case.data), 13, 9, view, out_stride=stride)
        assert img.pixels is view and img.stride == stride
        assert bytes(out) == place(case.expected, 13, 9, stride, 0xAB)


def _one_block(raw: bytes, fmt: int = BIT32, top_down: bool = True) -> bytes:
    return lz4_payload(top_down, fmt, [lz4.block.compress(raw, store_size=False)])


GOOD = _one_block(bytes(range(64)))  # a 4x4 BIT32 image


@pytest.mark.parametrize(
    ("data", "size", "offset", "words"),
    [
        (b"", (4, 4), 0, "header needs 2 bytes"),
        (b"\x01", (4, 4), 1, "header needs 2 bytes"),
        (b"\x01\x05" + GOOD[2:], (4, 4), 1, "format 5"),
        (b"\x01\x0a" + GOOD[2:], (4, 4), 1, "format 10"),
        (b"\x01\xff" + GOOD[2:], (4, 4), 1, "format 255"),
        (GOOD, (0, 4), 0, "empty"),
        (GOOD, (4, 0), 0, "empty"),
        (GOOD, (1 << 16, 1 << 13), 0, "larger than"),
        # 2^20 pixels (4 MiB) from 67 bytes: more than LZ4 can expand to, checked before output
        (GOOD, (1024, 1024), len(GOOD), "cannot hold"),
        (b"\x01\x08", (4, 4), 2, "no LZ4 block"),
        (b"\x01\x08\x00\x00\x00", (4, 4), 2, "size needs 4 bytes"),
        (b"\x01\x08\x00\x00\x00\x00" + GOOD[6:], (4, 4), 2, "a block of 0 bytes"),
        (GOOD[:-1], (4, 4), 2, "a block of"),
        (b"\x01\x08\xff\xff\xff\xff" + GOOD[6:], (4, 4), 2, "a block of 4294967295"),
        # the image is complete but data follows
        (GOOD + b"\x00", (4, 4), len(GOOD), "left over"),
        (GOOD + GOOD[2:], (4, 4), len(GOOD), "left over"),
        # the block decodes to 64 bytes: too few for 4x5, too many for 4x3
        (GOOD, (4, 5), len(GOOD), "decode to 64 bytes, the image needs 80"),
        (GOOD, (4, 3), None, "corrupt or decodes past"),
        # an LZ4 block of one token asking for 15+ literals that are not there
        (b"\x01\x08\x00\x00\x00\x02\xf0\xff", (4, 4), None, "corrupt"),
        # an empty block (a token with no literals, no match)
        (b"\x01\x08\x00\x00\x00\x01\x00", (4, 4), 6, "decodes to nothing"),
        # a match reaching before the start of the image
        (b"\x01\x08\x00\x00\x00\x08\x14\x01\x10\x00\x00" + b"\x00" * 3, (4, 4), None, "corrupt"),
    ],
)
def test_hostile_data(data: bytes, size: tuple[int, int], offset: int | None, words: str) -> None:
    """``offset`` None: liblz4 found the error somewhere inside the first block."""
    with pytest.raises(CodecError, match=words) as info:
        decode_lz4(data, *size)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.codec == "lz4", info.value
    if offset is None:
        assert 6 <= info.value.offset <= len(data), info.value
    else:
        assert info.value.offset == offset, info.value


def test_truncated_at_every_offset() -> None:
    case = lz4_case(BIT24, 17, 6, False, random.Random(4), blocks=3)
    for cut in range(len(case.data)):
        with pytest.raises(CodecError) as info:
            decode_lz4(case.data[:cut], 17, 6)
        assert 0 <= info.value.offset <= cut


def test_bad_arguments_and_output_buffers() -> None:
    with pytest.raises(InvalidArgument, match="width"):
        decode_lz4(GOOD, -1, 4)
    with pytest.raises(InvalidArgument, match="height"):
        decode_lz4(GOOD, 4, True)
    with pytest.raises(InvalidArgument, match="writable"):
        decode_lz4(GOOD, 4, 4, bytes(64))
    with pytest.raises(InvalidArgument, match="out_stride"):
        decode_lz4(GOOD, 4, 4, out_stride=0)
    with pytest.raises(CodecError, match="does not fit"):
        decode_lz4(GOOD, 4, 4, bytearray(63))
    with pytest.raises(CodecError, match="stride"):
        decode_lz4(GOOD, 4, 4, bytearray(100), out_stride=15)


def test_gil_is_released_during_decode() -> None:
    width, height = 4096, 2048
    raw = bytes(width * height * 4)
    data = _one_block(raw)
    out = bytearray(len(raw))
    during, decodes = ticks_during(lambda: decode_lz4(data, width, height, out))
    # with the GIL held the spinner could not run at all during a call
    assert during > 1000 * decodes, (during, decodes)
