"""decode_image: a SpiceImage's union read per type, palettes through the cache, the descriptor
checked, HIGH_BITS_SET applied. Message bodies are built by hand as spice.proto lays them out
(pointers are offsets into the body); the codecs' own streams come from the test encoders."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import GlzWindow, LzType
from atp_notebook.spice.codecs.images import HIGH_BITS_SET, ImageState, decode_image
from atp_notebook.spice.proto.constants import ImageType
from atp_notebook.spice.proto.display import SpiceImage
from tests.unit.codec_streams import PLT8, RGB32, RGBA, lz_case
from tests.unit.glz_streams import GlzTestEncoder

PAL_CACHE_ME, PAL_FROM_CACHE, TOP_DOWN = 1, 2, 4
BMP_8BIT, BMP_32BIT, BMP_RGBA = 5, 8, 9
# a prefix standing in for the rest of a draw message, so that offsets are not 0
PREFIX = b"\xee" * 21


def image(kind: int, union: bytes, width: int, height: int, flags: int = 0,
          tail: bytes = b"") -> SpiceImage:
    body = PREFIX + union + tail
    return SpiceImage(0x1_0000_0001, kind, flags, width, height, body, len(PREFIX))


def palette_blob(unique: int, entries: list[int]) -> bytes:
    return struct.pack(f"<QH{len(entries)}I", unique, len(entries), *entries)


def bitmap_union(fmt: int, flags: int, width: int, height: int, stride: int, pixels: bytes,
                 palette_field: bytes) -> bytes:
    return struct.pack("<BBIII", fmt, flags, width, height, stride) + palette_field + pixels


def bgrx(pixels: bytes) -> list[bytes]:
    return [pixels[i:i + 4] for i in range(0, len(pixels), 4)]


def test_bitmap_32bit_bottom_up_comes_out_top_down() -> None:
    rows = [bytes([r, r, r, 7]) * 3 for r in (1, 2)]  # bottom row first on the wire
    union = bitmap_union(BMP_32BIT, 0, 3, 2, 12, rows[0] + rows[1], struct.pack("<I", 0))
    img = decode_image(image(ImageType.BITMAP, union, 3, 2), ImageState())
    assert bytes(img.pixels) == rows[1] + rows[0]


def test_bitmap_palette_by_pointer_is_cached_and_then_used_by_id() -> None:
    state = ImageState()
    entries = [0x00102030, 0x00405060]
    pixels = bytes([0, 1, 1, 0])
    # the palette lies after the union: its pointer is its offset in the body
    head = struct.calcsize("<BBIII") + 4
    pointer = len(PREFIX) + head + len(pixels)
    union = bitmap_union(BMP_8BIT, PAL_CACHE_ME | TOP_DOWN, 4, 1, 4, pixels,
                         struct.pack("<I", pointer))
    first = decode_image(image(ImageType.BITMAP, union, 4, 1,
                               tail=palette_blob(77, entries)), state)
    want = [b"\x30\x20\x10\x00", b"\x60\x50\x40\x00"]
    assert bgrx(bytes(first.pixels)) == [want[0], want[1], want[1], want[0]]
    by_id = bitmap_union(BMP_8BIT, PAL_FROM_CACHE | TOP_DOWN, 4, 1, 4, bytes([1, 1, 0, 0]),
                         struct.pack("<Q", 77))
    second = decode_image(image(ImageType.BITMAP, by_id, 4, 1), state)
    assert bgrx(bytes(second.pixels)) == [want[1], want[1], want[0], want[0]]


def test_a_palette_id_never_cached_names_the_id() -> None:
    union = bitmap_union(BMP_8BIT, PAL_FROM_CACHE, 1, 1, 1, b"\0", struct.pack("<Q", 4242))
    with pytest.raises(CodecError, match="palette 0x1092 is not in the cache"):
        decode_image(image(ImageType.BITMAP, union, 1, 1), ImageState())


def test_lz_plt_reads_its_palette_through_the_pointer() -> None:
    case = lz_case(PLT8, 5, 3, True, random.Random(3))
    assert case.palette is not None
    head = 1 + 4 + 4
    pointer = len(PREFIX) + head + len(case.stream)
    union = struct.pack("<BII", 0, len(case.stream), pointer) + case.stream
    img = decode_image(image(ImageType.LZ_PLT, union, 5, 3,
                             tail=palette_blob(5, case.palette)), ImageState())
    assert bytes(img.pixels) == case.expected


def test_lz_rgb_and_the_descriptor_must_agree_on_the_size() -> None:
    case = lz_case(RGB32, 6, 4, True, random.Random(4))
    union = struct.pack("<I", len(case.stream)) + case.stream
    assert bytes(decode_image(image(ImageType.LZ_RGB, union, 6, 4), ImageState()).pixels) \
        == case.expected
    with pytest.raises(CodecError, match=r"6x4 image, the descriptor says 6x5"):
        decode_image(image(ImageType.LZ_RGB, union, 6, 5), ImageState())


@pytest.mark.parametrize("kind", [ImageType.LZ_RGB, ImageType.QUIC, ImageType.JPEG,
                                  ImageType.LZ4, ImageType.GLZ_RGB])
def test_a_data_size_past_the_message_is_a_codec_error_at_its_offset(kind: int) -> None:
    union = struct.pack("<I", 1000) + b"x" * 10
    with pytest.raises(CodecError) as info:
        decode_image(image(kind, union, 2, 2), ImageState(glz=GlzWindow(1 << 20)))
    assert info.value.offset == len(PREFIX)
    assert "data_size 1000" in info.value.reason


def test_high_bits_set_makes_x_0xff_for_rgb_images_only() -> None:
    case = lz_case(RGB32, 3, 2, True, random.Random(5))
    union = struct.pack("<I", len(case.stream)) + case.stream
    img = decode_image(image(ImageType.LZ_RGB, union, 3, 2, flags=HIGH_BITS_SET), ImageState())
    assert all(px[3] == 0xFF and px[:3] == want[:3]
               for px, want in zip(bgrx(bytes(img.pixels)), bgrx(case.expected), strict=True))
    alpha = lz_case(RGBA, 3, 2, True, random.Random(6))
    union = struct.pack("<I", len(alpha.stream)) + alpha.stream
    img = decode_image(image(ImageType.LZ_RGB, union, 3, 2, flags=HIGH_BITS_SET), ImageState())
    assert img.lz_type is LzType.RGBA
    assert bytes(img.pixels) == alpha.expected  # alpha kept as sent


def test_high_bits_set_with_a_padded_out_stride_leaves_the_padding() -> None:
    rows = bytes(range(24))
    union = bitmap_union(BMP_32BIT, TOP_DOWN, 3, 2, 12, rows, struct.pack("<I", 0))
    out = bytearray(b"\x55" * 40)
    decode_image(image(ImageType.BITMAP, union, 3, 2, flags=HIGH_BITS_SET), ImageState(), out,
                 out_stride=20)
    assert out[12:20] == b"\x55" * 8 and out[32:40] == b"\x55" * 8
    assert [out[i] for i in (3, 7, 11, 23, 27, 31)] == [0xFF] * 6


def test_glz_and_zlib_glz_decode_against_the_sessions_window() -> None:
    rng = random.Random(7)
    encoder = GlzTestEncoder(1 << 16)
    first = encoder.random_image(RGB32, 8, 4, rng)
    second = encoder.random_image(RGB32, 8, 4, rng)  # may copy from the first
    state = ImageState(glz=GlzWindow(1 << 16))
    union = struct.pack("<I", len(first.stream)) + first.stream
    one = decode_image(image(ImageType.GLZ_RGB, union, 8, 4), state)
    packed = zlib.compress(second.stream)
    union = struct.pack("<II", len(second.stream), len(packed)) + packed
    two = decode_image(image(ImageType.ZLIB_GLZ_RGB, union, 8, 4), state)
    assert (bytes(one.pixels), bytes(two.pixels)) == (first.expected, second.expected)
    assert state.glz is not None and state.glz.images == 2


def test_a_glz_image_without_a_window_says_so() -> None:
    with pytest.raises(CodecError, match="no GLZ window"):
        decode_image(image(ImageType.GLZ_RGB, struct.pack("<I", 4) + b"abcd", 1, 1),
                     ImageState())


@pytest.mark.parametrize("kind", [ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS,
                                  ImageType.SURFACE])
def test_references_to_caches_and_surfaces_are_not_the_codecs_job(kind: int) -> None:
    with pytest.raises(InvalidArgument, match="carries no pixels"):
        decode_image(image(kind, struct.pack("<I", 0), 1, 1), ImageState())


@pytest.mark.parametrize("kind", [2, 99, 110, 255])
def test_an_unknown_image_type_is_a_codec_error(kind: int) -> None:
    with pytest.raises(CodecError, match=f"unknown image type {kind}"):
        decode_image(image(kind, b"\0" * 8, 1, 1), ImageState())


@pytest.mark.parametrize("cut", range(0, 9))
def test_a_truncated_bitmap_header_is_a_codec_error(cut: int) -> None:
    union = bitmap_union(BMP_32BIT, TOP_DOWN, 1, 1, 4, b"\1\2\3\4", struct.pack("<I", 0))
    with pytest.raises(CodecError):
        decode_image(image(ImageType.BITMAP, union[:cut], 1, 1), ImageState())


def test_a_stream_larger_than_its_descriptor_is_refused_before_it_touches_out() -> None:
    # into a whole surface with a stride, a 6x4 stream under a 3x2 descriptor would write
    # outside the draw's region: the header's size is checked first, out stays as it was
    case = lz_case(RGB32, 6, 4, True, random.Random(8))
    surface = bytearray(b"\x55" * (6 * 4 * 4))
    union = struct.pack("<I", len(case.stream)) + case.stream
    with pytest.raises(CodecError, match=r"6x4 image, the descriptor says 3x2"):
        decode_image(image(ImageType.LZ_RGB, union, 3, 2), ImageState(), surface,
                     out_stride=24)
    assert surface == b"\x55" * len(surface)
    rows = bytes(range(24))
    union = bitmap_union(BMP_32BIT, TOP_DOWN, 3, 2, 12, rows, struct.pack("<I", 0))
    with pytest.raises(CodecError, match=r"3x2 image, the descriptor says 2x2"):
        decode_image(image(ImageType.BITMAP, union, 2, 2), ImageState(), surface)
    assert surface == b"\x55" * len(surface)


def test_a_glz_image_of_the_wrong_size_still_enters_the_window() -> None:
    rng = random.Random(9)
    encoder = GlzTestEncoder(1 << 16)
    pixels = [rng.getrandbits(24) for _ in range(32)]
    first = encoder.encode(RGB32, 8, 4, pixels, rng)
    second = encoder.encode(RGB32, 8, 4, pixels, rng)
    assert second.refs.get("cross")  # the second copies from the first
    state = ImageState(glz=GlzWindow(1 << 16))
    out = bytearray(b"\x55" * 64)
    with pytest.raises(CodecError, match="8x4 image, the descriptor says 4x4"):
        decode_image(image(ImageType.GLZ_RGB, struct.pack("<I", len(first.stream))
                           + first.stream, 4, 4), state, out)
    assert out == b"\x55" * 64
    two = decode_image(image(ImageType.GLZ_RGB, struct.pack("<I", len(second.stream))
                             + second.stream, 8, 4), state)
    assert bytes(two.pixels) == second.expected
