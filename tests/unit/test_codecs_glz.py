"""GLZ decoder: round trips through the test encoder, byte-level references, hostile input."""

from __future__ import annotations

import random
import struct

import pytest

from atp_notebook.errors import CodecError, InvalidArgument, RemoteProtocolError
from atp_notebook.spice.codecs import GlzWindow, LzType, decode_glz
from tests.unit.codec_streams import encode_literals, place
from tests.unit.glz_streams import (
    ALL_GLZ_TYPES,
    PLT8,
    RGB16,
    RGB24,
    RGB32,
    RGBA,
    GlzCase,
    GlzTestEncoder,
    encode_reference,
    glz_header,
    random_palette,
    random_pixels,
)

SIZES = [(1, 1), (2, 1), (1, 3), (7, 3), (8, 2), (9, 4), (17, 5), (31, 7), (67, 33)]
PX = bytes([1, 2, 3])
PX2 = bytes([4, 5, 6])


def hdr(width: int, height: int = 1, image_id: int = 0, dist: int = 0, *,
        lz_type: int = RGB32, top_down: bool = True, stride: int | None = None) -> bytes:
    if stride is None:
        stride = width * {RGB16: 2, RGB24: 3, PLT8: 1}.get(lz_type, 4)
    return glz_header(lz_type, width, height, stride, top_down, image_id, dist)


def lit(*pixels: bytes) -> bytes:
    return encode_literals(list(pixels))


def ref(length: int, image_dist: int, offset: int, least: int = 1) -> bytes:
    return encode_reference(length, image_dist, offset, least)


@pytest.mark.parametrize("lz_type", ALL_GLZ_TYPES, ids=lambda t: LzType(t).name)
@pytest.mark.parametrize("top_down", [True, False], ids=["top-down", "bottom-up"])
def test_round_trip_every_type_and_size(lz_type: int, top_down: bool) -> None:
    rng = random.Random(lz_type * 2 + top_down)
    enc = GlzTestEncoder(4000)
    window = GlzWindow(4000, wait_timeout=0)
    for width, height in SIZES:
        for _ in range(2):
            case = enc.random_image(lz_type, width, height, rng, top_down=top_down)
            img = decode_glz(case.stream, window, palette=case.palette)
            assert (img.width, img.height, img.stride) == (width, height, width * 4)
            assert img.lz_type == lz_type and img.top_down == top_down
            assert bytes(img.pixels) == case.expected, (width, height, case.refs)
            # the window holds what the server's window holds after this image
            assert window.ids() == enc.held_ids()


def _derived(enc: GlzTestEncoder, lz_type: int, rng: random.Random, count: int,
             width: int, height: int, *, top_down: bool = True) -> list[GlzCase]:
    """Images that each reuse parts of the previous ones: references across images."""
    palette = random_palette(lz_type, rng) if lz_type <= PLT8 else None
    base = random_pixels(lz_type, width, height, rng, palette)
    cases = []
    for _ in range(count):
        pixels = list(base)
        for _ in range(rng.randrange(0, 4)):  # a few changed pixels
            pixels[rng.randrange(len(pixels))] = rng.choice(base)
        if rng.random() < 0.5:  # or a shifted copy
            shift = rng.randrange(1, width + 1)
            pixels = pixels[shift:] + pixels[:shift]
        pal = palette
        if palette is not None and rng.random() < 0.3:  # same indexes, other colours
            pal = [rng.getrandbits(32) for _ in palette]
        cases.append(enc.encode(lz_type, width, height, pixels, rng, palette=pal,
                                top_down=top_down, literal_rate=0.02))
        base = pixels
    return cases


@pytest.mark.parametrize("lz_type", ALL_GLZ_TYPES, ids=lambda t: LzType(t).name)
def test_chains_of_references_across_images(lz_type: int) -> None:
    rng = random.Random(100 + lz_type)
    enc = GlzTestEncoder(6 * 41 * 9)
    window = GlzWindow(6 * 41 * 9)
    cases = _derived(enc, lz_type, rng, 20, 41, 9, top_down=lz_type % 2 == 0)
    for case in cases:
        img = decode_glz(case.stream, window, palette=case.palette)
        assert bytes(img.pixels) == case.expected, case.refs
    assert window.ids() == enc.held_ids()
    assert sum(c.refs.get("cross", 0) for c in cases) > 10
    # images that fell out of the server's window were released: at most one window held
    assert window.pixels <= window.max_pixels and len(enc.held) < 20


def test_caller_buffer_with_wider_stride() -> None:
    rng = random.Random(3)
    enc = GlzTestEncoder(10000)
    window = GlzWindow(10000)
    for lz_type in ALL_GLZ_TYPES:
        for top_down in (True, False):
            case = enc.random_image(lz_type, 13, 9, rng, top_down=top_down)
            stride = 13 * 4 + 12
            out = bytearray([0xAB] * (stride * 8 + 13 * 4))
            view = memoryview(out)
            img = decode_glz(memoryview(case.stream), window, view, out_stride=stride,
                             palette=case.palette)
            assert img.pixels is view and img.stride == stride
            assert bytes(out) == place(case.expected, 13, 9, stride, 0xAB)


@pytest.mark.parametrize(
    ("width", "body", "expected"),
    [
        # one literal: control 0, B,G,R; X is 0
        (1, b"\x00" + PX, PX + b"\0"),
        # a run: length field 1 = 1 pixel, offset 0 (+1) = the previous pixel
        (3, lit(PX, PX2) + b"\x20\x00\x00", PX + b"\0" + PX2 + b"\0" + PX2 + b"\0"),
        # overlapping: 4 pixels from 2 back repeat the pair
        (6, lit(PX, PX2) + b"\x81\x00\x00", (PX + b"\0" + PX2 + b"\0") * 3),
        # length field 7 + 255 + 3 = 265 pixels of a run
        (266, lit(PX) + b"\xe0\xff\x03\x00\x00", (PX + b"\0") * 266),
        # an image-distance byte with 1 extra byte that still says 0: inside this image
        (2, lit(PX) + b"\x20\x00\x40\x00", (PX + b"\0") * 2),
    ],
)
def test_rgb32_byte_level(width: int, body: bytes, expected: bytes) -> None:
    img = decode_glz(hdr(width) + body, GlzWindow(1000))
    assert bytes(img.pixels) == expected


def _row(n: int) -> tuple[bytes, bytes]:
    """n distinct literal pixels and their decoded form."""
    pixels = [bytes([i & 255, (i >> 8) & 255, 7]) for i in range(n)]
    return encode_literals(pixels), b"".join(p + b"\0" for p in pixels)


@pytest.mark.parametrize("back", [3, 4095, 4096, 4097, (1 << 17) - 1, 1 << 17, 140_000])
def test_intra_offsets_short_medium_long(back: int) -> None:
    """Offsets < 4096 use the short form, < 2^17 the long form, beyond it one more byte."""
    body, decoded = _row(back)
    stream = hdr(back + 3) + body + ref(3, 0, back)
    px = bytes(decode_glz(stream, GlzWindow(back + 3)).pixels)
    assert px[back * 4 :] == decoded[:12]


def test_reference_encoding_bytes() -> None:
    # short form, offset 0x123 - 1 biased, intra: ctrl 0x20|2, byte 0x12, image byte 0
    assert ref(1, 0, 0x123) == b"\x22\x12\x00"
    # long form: offset 0x12345 (medium): ctrl 0x30|5, 0x34, then bits 12-16 = 0x12
    assert ref(1, 0, 0x12346) == b"\x35\x34\x12"
    # long form with the extra byte: offset 0x123456 -> bit 5 set, last byte 0x123456 >> 17
    assert ref(1, 0, 0x123457) == b"\x36\x45\x23\x09"
    # another image 300 back at offset 5: short form, one extra distance byte
    assert ref(1, 300, 5) == bytes([0x25, 0x00, 0x40 | (300 & 63), 300 >> 6])
    # RGB16 lengths start at 2, palette and alpha at 3
    assert ref(2, 0, 1, least=2)[0] >> 5 == 1 and ref(9, 0, 1, least=3)[0] >> 5 == 7


def _two_images(second_body: bytes, width: int = 4, dist: int = 1) -> tuple[GlzWindow, bytes]:
    window = GlzWindow(1000)
    first = hdr(4) + lit(PX, PX2, b"\x07\x08\x09", b"\x0a\x0b\x0c")
    decode_glz(first, window)
    return window, hdr(width, 1, 1, dist) + second_body


def test_reference_into_an_earlier_image() -> None:
    window, stream = _two_images(ref(2, 1, 1) + lit(PX) + ref(1, 1, 3), width=4)
    img = decode_glz(stream, window)
    assert bytes(img.pixels) == PX2 + b"\0" + b"\x07\x08\x09\0" + PX + b"\0" + b"\x0a\x0b\x0c\0"
    assert window.ids() == (0, 1)


@pytest.mark.parametrize("lz_type", [RGB16, RGBA, PLT8], ids=["RGB16", "RGBA", "PLT8"])
def test_same_image_again_is_one_reference(lz_type: int) -> None:
    rng = random.Random(lz_type)
    enc = GlzTestEncoder(1000)
    window = GlzWindow(1000)
    palette = random_palette(lz_type, rng) if lz_type == PLT8 else None
    pixels = random_pixels(lz_type, 20, 5, rng, palette)
    first = enc.encode(lz_type, 20, 5, pixels, rng, palette=palette, literal_rate=1.0)
    again = enc.encode(lz_type, 20, 5, pixels, rng, palette=palette, literal_rate=0.0)
    assert again.refs.get("cross", 0) >= 1
    for case in (first, again):
        assert bytes(decode_glz(case.stream, window, palette=case.palette).pixels) == case.expected


def test_image_distance_levels() -> None:
    """Distances needing 0-3 extra bytes in both forms: 63/64, 16383/16384; 255/256, 65536."""
    window = GlzWindow(1 << 20, wait_timeout=0)
    big = 5000  # image 0 is wide enough for long-form offsets (>= 4096)
    body, decoded = _row(big)
    decode_glz(hdr(big, 1, 0, 0) + body, window)
    one = lit(b"\x01\x01\x01")
    # image id -> the offset into image 0 its reference uses (>= 4096: the long form)
    forms = {63: 10, 64: 10, 255: 4100, 256: 4100, 16384: 10, 65536: 4100}
    for image_id in range(1, 65537):
        if image_id not in forms:
            decode_glz(hdr(1, 1, image_id, image_id) + one, window)
            continue
        offset = forms[image_id]
        stream = hdr(1, 1, image_id, image_id) + ref(1, image_id, offset)
        assert bytes(decode_glz(stream, window).pixels) == decoded[offset * 4 : offset * 4 + 4]
    assert window.images == 65537


def test_rgb16_ignores_bit_15_and_widens() -> None:
    stream = hdr(2, lz_type=RGB16) + b"\x01" + b"\xff\xff" + b"\x7c\x00"
    px = bytes(decode_glz(stream, GlzWindow(10)).pixels)
    assert px == b"\xff\xff\xff\x00" + b"\x00\x00\xff\x00"


def test_rgba_is_an_rgb_pass_then_an_alpha_pass() -> None:
    body = lit(PX, PX2) + b"\x01\x80\x90"
    px = bytes(decode_glz(hdr(2, lz_type=RGBA) + body, GlzWindow(10)).pixels)
    assert px == PX + b"\x80" + PX2 + b"\x90"


def test_bottom_up_rows_are_flipped_and_references_count_stream_order() -> None:
    window = GlzWindow(100)
    decode_glz(hdr(1, 2, 0, 0, top_down=False) + lit(PX, PX2), window)
    # image 1 copies stream unit 0 (the bottom row of image 0) into its first stream unit
    img = decode_glz(hdr(1, 2, 1, 1, top_down=True) + ref(1, 1, 0) + lit(PX2), window)
    assert bytes(img.pixels) == PX + b"\0" + PX2 + b"\0"


def test_palette_types_expand_with_this_images_palette() -> None:
    window = GlzWindow(100)
    decode_glz(hdr(3, lz_type=PLT8) + lit(b"\0", b"\1", b"\2"), window, palette=[1, 2, 3])
    img = decode_glz(hdr(3, 1, 1, 1, lz_type=PLT8) + ref(3, 1, 0, least=3), window,
                     palette=[0x0A0B0C, 0x0D0E0F, 0x010203])
    assert bytes(img.pixels) == b"\x0c\x0b\x0a\0\x0f\x0e\x0d\0\x03\x02\x01\0"


# --- bad input ----------------------------------------------------------------------


def _bad(stream: bytes, window: GlzWindow | None = None, **kw: object) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode_glz(stream, window or GlzWindow(1000, wait_timeout=0), **kw)  # type: ignore[arg-type]
    assert info.value.codec == "glz"
    assert isinstance(info.value, RemoteProtocolError)
    return info.value


@pytest.mark.parametrize(
    ("stream", "offset", "words"),
    [
        (b"", 0, "header needs"),
        (hdr(1)[:32], 32, "header needs"),
        (b"XXXX" + hdr(1)[4:] + lit(PX), 0, "magic"),
        (hdr(1)[:4] + b"\0\0\0\1" + hdr(1)[8:] + lit(PX), 4, "version"),
        (hdr(1, lz_type=0) + lit(PX), 8, "type 0"),
        (hdr(1, lz_type=10) + lit(PX), 8, "type 10"),
        (hdr(1)[:8] + b"\x28" + hdr(1)[9:] + lit(PX), 8, "type byte"),
        (hdr(0) + lit(PX), 9, "empty"),
        (hdr(1, 0) + lit(PX), 9, "empty"),
        (hdr(65536, 65536) + lit(PX), 9, "larger than"),
        (hdr(2, stride=7) + lit(PX), 17, "stride"),
        (hdr(1, 1, 3, 4) + lit(PX), 29, "win_head_dist"),
        (hdr(2000) + lit(PX), 13, "does not fit the window"),
        (hdr(1) + b"\x01" + PX + PX2, 33, "overruns the image"),
        (hdr(2) + b"\x01" + PX + b"\x04", 33, "past the end of the stream"),
        (hdr(2) + lit(PX), 37, "ends with 1 of 2"),
        (hdr(2) + b"\x20\x00\x00" + lit(PX), 33, "before the start"),
        (hdr(3) + lit(PX) + b"\x60\x00\x00", 37, "overruns the image"),
        (hdr(3) + lit(PX) + b"\xe0\xff", 37, "longer than the image"),
        (hdr(300) + lit(PX) + b"\xe0\xff", 39, "inside a reference length"),
        (hdr(3) + lit(PX) + b"\x20\x00", 37, "inside a reference"),
        (hdr(3) + lit(PX) + b"\x20\x00\xc0\x01", 37, "inside a reference"),
        (hdr(3) + lit(PX) + b"\x30\x00\x20", 37, "inside a reference"),
        (hdr(1) + lit(PX) + b"\0", 37, "left over"),
        (hdr(2, 1, 5, 2) + lit(PX) + ref(1, 3, 0), 37, "outside this image's window"),
    ],
)
def test_bad_streams(stream: bytes, offset: int, words: str) -> None:
    err = _bad(stream)
    assert err.offset == offset and words in err.reason, err.reason


def test_every_truncation_is_a_codec_error() -> None:
    rng = random.Random(8)
    enc = GlzTestEncoder(2000)
    first = enc.random_image(RGBA, 20, 6, rng)
    second = enc.encode(RGBA, 20, 6, random_pixels(RGBA, 20, 6, rng), rng)
    for cut in range(len(second.stream)):
        window = GlzWindow(2000, wait_timeout=0)
        decode_glz(first.stream, window)
        err = _bad(second.stream[:cut], window)
        assert err.offset <= cut
    window = GlzWindow(2000, wait_timeout=0)
    decode_glz(first.stream, window)
    assert bytes(decode_glz(second.stream, window).pixels) == second.expected


def test_references_into_another_image_are_checked() -> None:
    window, stream = _two_images(ref(3, 1, 2))  # units 2..5 of a 4-pixel image
    err = _bad(stream, window)
    assert err.offset == 33 and "which has 4" in err.reason
    # a reference to an image of another type: the server never references across types
    window, _ = _two_images(b"")
    err = _bad(hdr(1, 1, 1, 1, lz_type=RGB24) + ref(1, 1, 0), window)
    assert "of type 8" in err.reason


def test_palette_problems_keep_the_image() -> None:
    window = GlzWindow(100, wait_timeout=0)
    stream = hdr(2, lz_type=PLT8) + lit(b"\0", b"\5")
    assert "needs a palette" in _bad(stream, window).reason
    assert window.ids() == (0,)
    stream = hdr(2, 1, 1, 1, lz_type=PLT8) + lit(b"\0", b"\5")
    assert "past the palette" in _bad(stream, window, palette=[1, 2]).reason
    assert window.ids() == (0, 1)


def test_output_too_small_keeps_the_image_for_later_references() -> None:
    window = GlzWindow(100, wait_timeout=0)
    first = hdr(2) + lit(PX, PX2)
    err = _bad(first, window, out=bytearray(7))
    assert "does not fit" in err.reason and window.ids() == (0,)
    err = _bad(hdr(2, 1, 1, 1) + ref(2, 1, 0), window, out=bytearray(16), out_stride=5)
    assert "stride" in err.reason
    img = decode_glz(hdr(2, 1, 2, 2) + ref(2, 2, 0), window)
    assert bytes(img.pixels) == PX + b"\0" + PX2 + b"\0"


def test_window_stays_usable_after_bad_images() -> None:
    rng = random.Random(21)
    enc = GlzTestEncoder(3000)
    window = GlzWindow(3000, wait_timeout=0)
    for n in range(12):
        case = enc.random_image(RGB32, 11, 7, rng)
        if n % 3 == 1:  # a garbled image: its id is recorded as failed
            _bad(case.stream[:40] + b"\xff" * 10, window)
            enc.held.pop()  # and the encoder does not reference it later
            continue
        assert bytes(decode_glz(case.stream, window).pixels) == case.expected


def test_duplicate_and_stale_ids_are_refused() -> None:
    window = GlzWindow(100, wait_timeout=0)
    decode_glz(hdr(1) + lit(PX), window)
    assert "already in the window" in _bad(hdr(1) + lit(PX), window).reason
    decode_glz(hdr(1, 1, 1, 0) + lit(PX), window)  # releases image 0
    assert "older than the window" in _bad(hdr(1) + lit(PX), window).reason


def test_arguments() -> None:
    window = GlzWindow(10)
    with pytest.raises(InvalidArgument):
        decode_glz(hdr(1) + lit(PX), "window")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        decode_glz(hdr(1) + lit(PX), window, timeout=-1)
    with pytest.raises(InvalidArgument):
        decode_glz(hdr(1) + lit(PX), window, timeout=float("nan"))
    with pytest.raises(InvalidArgument):
        decode_glz(hdr(1) + lit(PX), window, out=b"\0" * 4)
    with pytest.raises(InvalidArgument):
        decode_glz(hdr(1) + lit(PX), window, out_stride=0)
    for bad in (0, -1, (1 << 25) + 1, True, 2.0):
        with pytest.raises(InvalidArgument):
            GlzWindow(bad)  # type: ignore[arg-type]
    for wait in (-1.0, float("inf"), float("nan"), None, "1"):
        with pytest.raises(InvalidArgument):
            GlzWindow(10, wait_timeout=wait)  # type: ignore[arg-type]
    assert window.ids() == () and window.pixels == 0
    assert GlzWindow(1 << 25).max_pixels == 1 << 25


def test_header_fields_struct() -> None:
    # the header is 33 bytes: the layout spice-gtk's decode_header reads
    h = hdr(3, 2, 0x0102030405060708, 7)
    assert len(h) == 33 and struct.unpack(">Q", h[21:29])[0] == 0x0102030405060708
    assert h[8] == RGB32 | 16
