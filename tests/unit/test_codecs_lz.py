"""LZ decoder: round trips through the test encoder, byte-level cases, hostile input."""

from __future__ import annotations

import random
import struct

import pytest

from atp_notebook.errors import CodecError, InvalidArgument, RemoteProtocolError
from atp_notebook.spice.codecs import LzType, decode_lz
from tests.unit.codec_streams import (
    A8,
    ALL_LZ_TYPES,
    PLT8,
    RGB16,
    RGB24,
    RGB32,
    RGBA,
    XXXA,
    encode_reference,
    lz_case,
    lz_header,
    place,
)
from tests.unit.gil_probe import ticks_during

SIZES = [(1, 1), (2, 1), (1, 3), (7, 3), (8, 2), (9, 4), (17, 5), (31, 7), (67, 33)]


@pytest.mark.parametrize("lz_type", ALL_LZ_TYPES, ids=lambda t: LzType(t).name)
@pytest.mark.parametrize("top_down", [True, False], ids=["top-down", "bottom-up"])
def test_round_trip_every_type_and_size(lz_type: int, top_down: bool) -> None:
    rng = random.Random(lz_type * 2 + top_down)
    for width, height in SIZES:
        for _ in range(3):
            case = lz_case(lz_type, width, height, top_down, rng)
            out = bytearray(case.prefill) if case.prefill is not None else None
            img = decode_lz(case.stream, out, palette=case.palette)
            assert (img.width, img.height, img.stride) == (width, height, width * 4)
            assert img.lz_type == lz_type and img.top_down == top_down
            assert bytes(img.pixels) == case.expected, (width, height)


@pytest.mark.parametrize("lz_type", ALL_LZ_TYPES, ids=lambda t: LzType(t).name)
@pytest.mark.parametrize("extra", [4, 12, 100])
def test_caller_buffer_with_wider_stride(lz_type: int, extra: int) -> None:
    rng = random.Random(extra)
    for top_down in (True, False):
        case = lz_case(lz_type, 13, 9, top_down, rng)
        stride = 13 * 4 + extra
        out = bytearray([0xAB] * (stride * 8 + 13 * 4))
        if case.prefill is not None:
            out[:] = place(case.prefill, 13, 9, stride, 0xAB)
        view = memoryview(out)
        img = decode_lz(memoryview(case.stream), view, out_stride=stride, palette=case.palette)
        assert img.pixels is view and img.stride == stride
        assert bytes(out) == place(case.expected, 13, 9, stride, 0xAB)


def test_palette_as_buffer_and_bytes_input() -> None:
    case = lz_case(PLT8, 11, 3, True, random.Random(5))
    assert case.palette is not None
    pal = struct.pack(f"<{len(case.palette)}I", *case.palette)
    img = decode_lz(bytearray(case.stream), palette=memoryview(pal))
    assert bytes(img.pixels) == case.expected


def test_far_and_near_distances_round_trip() -> None:
    # a row longer than the near window, repeated: references reach back > 8191 pixels
    rng = random.Random(9)
    for width in (8191, 8192, 9000):
        case = lz_case(RGB32, width, 3, False, rng)
        assert bytes(decode_lz(case.stream).pixels) == case.expected


def _rgb32(width: int, body: bytes, height: int = 1, top_down: bool = True) -> bytes:
    return bytes(decode_lz(lz_header(RGB32, width, height, width * 4, top_down) + body).pixels)


PX = bytes([1, 2, 3])
PX2 = bytes([4, 5, 6])


@pytest.mark.parametrize(
    ("width", "body", "expected"),
    [
        # one literal pixel: control 0 = 1 literal, B,G,R; X is 0
        (1, b"\x00" + PX, PX + b"\0"),
        # two literals then a run: length field 1 -> 1 pixel (RGB32 bias), distance byte 0 -> 1
        (3, b"\x01" + PX + PX2 + b"\x20\x00", PX + b"\0" + PX2 + b"\0" + PX2 + b"\0"),
        # distance byte 1 -> 2 pixels back, length field 2 -> 2 pixels
        (4, b"\x01" + PX + PX2 + b"\x40\x01", (PX + b"\0" + PX2 + b"\0") * 2),
        # length field 7 + extension byte 0 -> 7 pixels
        (8, b"\x00" + PX + b"\xe0\x00\x00", (PX + b"\0") * 8),
        # length field 7 + 255 + 0 -> 262 pixels
        (263, b"\x00" + PX + b"\xe0\xff\x00\x00", (PX + b"\0") * 263),
        # length field 7 + 255 + 3 -> 265 pixels
        (266, b"\x00" + PX + b"\xe0\xff\x03\x00", (PX + b"\0") * 266),
    ],
)
def test_rgb32_byte_level(width: int, body: bytes, expected: bytes) -> None:
    assert _rgb32(width, body) == expected


def test_near_limit_and_far_escape() -> None:
    lits = b"".join(b"\x1f" + bytes([i, i, 255 - i]) * 32 for i in range(256))  # 8192 pixels
    ref = bytes(decode_lz(lz_header(RGB32, 8192, 1, 8192 * 4, True) + lits).pixels)
    # 31/254: the farthest near distance, 8191 pixels back
    near = _rgb32(8193, lits + b"\x3f\xfe")
    assert near[-4:] == ref[4:8]
    # 31/255 escapes to a 16-bit far distance: 8191 + 0 + 1 = 8192 pixels back
    far = _rgb32(8193, lits + b"\x3f\xff\x00\x00")
    assert far[-4:] == ref[0:4]
    assert encode_reference(1, 8192, 1) == b"\x3f\xff\x00\x00"
    assert encode_reference(1, 8191, 1) == b"\x3f\xfe"


@pytest.mark.parametrize(
    ("lz_type", "ctrl", "length"), [(RGB32, 0x20, 1), (RGB24, 0x20, 1), (RGB16, 0x20, 2),
                                    (PLT8, 0x20, 3), (A8, 0x20, 3), (XXXA, 0x20, 3),
                                    (RGB16, 0xE0, 8), (A8, 0xE0, 9)]
)
def test_length_bias_per_type(lz_type: int, ctrl: int, length: int) -> None:
    """The same control byte means a longer copy for types with a larger minimum match."""
    lit = {RGB32: 3, RGB24: 3, RGB16: 2}.get(lz_type, 1)
    stride = {RGB32: 4, RGB24: 3, RGB16: 2, XXXA: 4}.get(lz_type, 1)
    width = 1 + length
    body = b"\x00" + b"\x11" * lit + bytes([ctrl]) + (b"\x00" if ctrl >> 5 == 7 else b"") + b"\x00"
    stream = lz_header(lz_type, width, 1, width * stride, True) + body
    pal = list(range(256)) if lz_type == PLT8 else None
    img = decode_lz(stream, palette=pal)
    px = bytes(img.pixels)
    assert len(px) == width * 4 and px[:4] * width == px
    with pytest.raises(CodecError):  # one pixel wider: the stream falls short
        decode_lz(lz_header(lz_type, width + 1, 1, (width + 1) * stride, True) + body,
                  palette=pal)


def test_rgba_is_an_rgb_pass_then_an_alpha_pass() -> None:
    body = b"\x01" + PX + PX2 + b"\x01\x80\x90"
    px = bytes(decode_lz(lz_header(RGBA, 2, 1, 8, True) + body).pixels)
    assert px == PX + b"\x80" + PX2 + b"\x90"


def test_bottom_up_rows_are_flipped() -> None:
    body = b"\x01" + PX + PX2
    assert _rgb32(1, body, height=2, top_down=False) == PX2 + b"\0" + PX + b"\0"


def test_error_is_typed_and_names_codec_and_offset() -> None:
    stream = lz_header(RGB32, 2, 1, 8, True) + b"\x00" + PX + b"\x20\x05"
    with pytest.raises(CodecError) as info:
        decode_lz(stream)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.codec == "lz" and info.value.offset == 32
    assert "lz" in str(info.value) and "byte 32" in str(info.value)
    assert "before the start" in info.value.reason


@pytest.mark.parametrize("lz_type", ALL_LZ_TYPES, ids=lambda t: LzType(t).name)
def test_truncated_at_every_offset_and_trailing_bytes(lz_type: int) -> None:
    case = lz_case(lz_type, 9, 4, lz_type % 2 == 0, random.Random(lz_type))
    for cut in range(len(case.stream)):
        with pytest.raises(CodecError) as info:
            decode_lz(case.stream[:cut], palette=case.palette)
        assert 0 <= info.value.offset <= cut
    with pytest.raises(CodecError, match="left over"):
        decode_lz(case.stream + b"\0", palette=case.palette)


def _hdr(**kw: int) -> bytes:
    f = {"magic": 0x20205A4C, "version": 0x00010001, "type": RGB32, "width": 2, "height": 2,
         "stride": 8, "top_down": 1} | kw
    return struct.pack(">7I", *f.values()) + b"\x00" + PX * 4


@pytest.mark.parametrize(
    ("header", "offset", "words"),
    [
        (_hdr(magic=0x4C5A2020), 0, "magic"),
        (_hdr(version=0x00010002), 4, "version"),
        (_hdr(type=0), 8, "type"),
        (_hdr(type=12), 8, "type"),
        (_hdr(width=0), 12, "empty"),
        (_hdr(height=0), 12, "empty"),
        (_hdr(width=0xFFFFFFFF, height=0xFFFFFFFF, stride=0xFFFFFFFC), 12, "larger"),
        (_hdr(width=0x40000001, height=4, stride=4), 12, "larger"),
        (_hdr(stride=7), 20, "stride"),
        (b"  ZL", 4, "header"),
    ],
)
def test_bad_headers(header: bytes, offset: int, words: str) -> None:
    with pytest.raises(CodecError, match=words) as info:
        decode_lz(header)
    assert info.value.offset == offset


def test_output_buffer_too_small_or_stride_too_narrow() -> None:
    case = lz_case(RGB32, 5, 4, True, random.Random(3))
    with pytest.raises(CodecError, match="does not fit"):
        decode_lz(case.stream, bytearray(5 * 4 * 4 - 1))
    with pytest.raises(CodecError, match="stride"):
        decode_lz(case.stream, bytearray(1000), out_stride=19)
    with pytest.raises(CodecError, match="stride"):
        decode_lz(case.stream, out_stride=19)
    # exactly big enough with a wide stride: the last row needs only width*4 bytes
    out = bytearray(100 * 3 + 20)
    decode_lz(case.stream, out, out_stride=100)
    with pytest.raises(InvalidArgument, match="writable"):
        decode_lz(case.stream, b"\0" * 80)  # read-only output


def test_overrun_and_back_reference_before_start() -> None:
    hdr = lz_header(RGB32, 2, 1, 8, True)
    with pytest.raises(CodecError, match="before the start"):
        decode_lz(hdr + b"\x20\x00")
    with pytest.raises(CodecError, match="overruns"):
        decode_lz(hdr + b"\x02" + PX * 3)
    with pytest.raises(CodecError, match="overruns"):
        decode_lz(hdr + b"\x00" + PX + b"\x40\x00")
    with pytest.raises(CodecError, match="longer than the image"):
        decode_lz(hdr + b"\x00" + PX + b"\xe0" + b"\xff" * 10)


def test_palette_index_out_of_range_and_missing_palette() -> None:
    hdr = lz_header(PLT8, 4, 1, 4, True)
    stream = hdr + b"\x03\x00\x01\x02\x05"
    assert bytes(decode_lz(stream, palette=list(range(6))).pixels)[12] == 5
    with pytest.raises(CodecError, match="palette index 5") as info:
        decode_lz(stream, palette=[1, 2, 3])
    assert info.value.offset == 3
    with pytest.raises(CodecError, match="needs a palette"):
        decode_lz(stream)


def test_gil_is_released_during_decode() -> None:
    width, height = 4096, 2048
    n = width * height
    # two literal pixels, then one reference of n - 2 pixels at distance 2
    extra = n - 2 - 7
    body = b"\x01" + PX + PX2 + b"\xe0" + b"\xff" * (extra // 255) + bytes([extra % 255]) + b"\x01"
    stream = lz_header(RGB32, width, height, width * 4, True) + body
    out = bytearray(n * 4)
    assert bytes(decode_lz(stream, out).pixels[-8:]) == PX + b"\0" + PX2 + b"\0"

    during, decodes = ticks_during(lambda: decode_lz(stream, out))
    # with the GIL held the spinner could not run at all during a call
    assert during > 1000 * decodes, (during, decodes)
