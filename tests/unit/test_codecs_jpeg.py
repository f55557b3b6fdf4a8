"""JPEG and JPEG_ALPHA: libjpeg-turbo's decode into B,G,R,X, checked against Pillow's decode of
the same bytes (libjpeg's own); sizes checked before decoding; hostile headers and payloads."""

from __future__ import annotations

import io
import random
import struct

import pytest
from PIL import Image

from atp_notebook.errors import CodecError, InvalidArgument, RemoteProtocolError
from atp_notebook.spice.codecs import decode_jpeg, decode_jpeg_alpha
from atp_notebook.spice.codecs.jpeg import MAX_PIXELS, read_jpeg_frame
from tests.unit.codec_streams import RGB32, XXXA, lz_case, place


def picture(width: int, height: int, kind: str, rng: random.Random) -> Image.Image:
    if kind == "noise":
        return Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    if kind == "gradient":
        return Image.frombytes("RGB", (width, height), bytes(
            v for y in range(height) for x in range(width)
            for v in (x * 255 // width, y * 255 // height, (x + y) % 256)))
    return Image.new("RGB", (width, height), (rng.randrange(256), 90, 160))


def jpeg_bytes(img: Image.Image, **kw: object) -> bytes:
    b = io.BytesIO()
    img.save(b, "JPEG", quality=85, **kw)  # what spice-server uses (dcc.cpp jpeg_quality)
    return b.getvalue()


def reference(data: bytes) -> bytes:
    """Pillow's decode of the same bytes (libjpeg-turbo with its defaults) as B, G, R, 0."""
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes("raw", "BGRX")


SIZES = [(1, 1), (2, 3), (8, 8), (17, 9), (64, 48), (300, 7)]


@pytest.mark.parametrize("kind", ["noise", "gradient", "flat"])
def test_decode_equals_libjpeg_reference(kind: str) -> None:
    """Tolerance: none. Both sides are libjpeg-turbo with its default (ISLOW, fancy
    upsampling) settings; every channel of every pixel is equal, X is 0."""
    rng = random.Random(kind)
    for width, height in SIZES:
        for subsampling in (0, 2):  # 4:4:4 and 4:2:0 (Pillow's and libjpeg's default)
            data = jpeg_bytes(picture(width, height, kind, rng), subsampling=subsampling)
            img = decode_jpeg(data, width=width, height=height)
            assert (img.width, img.height, img.stride) == (width, height, width * 4)
            assert bytes(img.pixels) == reference(data), (width, height, subsampling)


def test_grayscale_and_input_buffers() -> None:
    data = jpeg_bytes(Image.new("L", (9, 4), 100))
    expected = reference(data)
    assert expected[:4] == bytes([100, 100, 100, 0])
    for src in (data, bytearray(data), memoryview(b"xx" + data)[2:]):
        assert bytes(decode_jpeg(src).pixels) == expected


@pytest.mark.parametrize("extra", [4, 100])
def test_caller_buffer_packed_and_with_wider_stride(extra: int) -> None:
    data = jpeg_bytes(picture(13, 9, "noise", random.Random(extra)))
    expected = reference(data)
    packed = bytearray([0xAB] * (13 * 4 * 9))
    img = decode_jpeg(data, memoryview(packed))
    assert bytes(packed) == expected and img.stride == 52
    stride = 13 * 4 + extra
    out = bytearray([0xAB] * (stride * 8 + 13 * 4))
    img = decode_jpeg(data, out, out_stride=stride)
    assert img.pixels is out and img.stride == stride
    assert bytes(out) == place(expected, 13, 9, stride, 0xAB)


def test_output_too_small_and_bad_arguments() -> None:
    data = jpeg_bytes(picture(5, 4, "flat", random.Random(1)))
    with pytest.raises(CodecError, match="does not fit"):
        decode_jpeg(data, bytearray(5 * 4 * 4 - 1))
    with pytest.raises(CodecError, match="stride"):
        decode_jpeg(data, bytearray(100), out_stride=19)
    with pytest.raises(InvalidArgument, match="writable"):
        decode_jpeg(data, bytes(80))
    with pytest.raises(InvalidArgument, match="both or neither"):
        decode_jpeg(data, width=5)


def test_size_differs_from_the_descriptor() -> None:
    data = jpeg_bytes(picture(5, 4, "flat", random.Random(1)))
    sof = read_jpeg_frame(data).offset
    assert data[sof : sof + 2] == b"\xff\xc0"
    for w, h in ((4, 4), (5, 5), (0, 0)):
        with pytest.raises(CodecError, match="descriptor says") as info:
            decode_jpeg(data, width=w, height=h)
        assert info.value.codec == "jpeg" and info.value.offset == sof


def _sof(width: int, height: int, marker: int = 0xC0, precision: int = 8) -> bytes:
    return struct.pack(">BBHBHHB", 0xFF, marker, 11, precision, height, width, 1) + b"\x01\x11\x00"


SOI = b"\xff\xd8"
APP0 = b"\xff\xe0\x00\x04ab"


@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        (b"", 0, "no SOI"),
        (b"\xff\xd9", 0, "no SOI"),
        (b"GIF89a", 0, "no SOI"),
        (SOI, 2, "ends before the frame header"),
        (SOI + b"\x00\x00", 2, "expected a marker"),
        (SOI + APP0 + b"\x12\x34", 8, "expected a marker"),
        (SOI + b"\xff\xda\x00\x02", 2, "before the frame header"),
        (SOI + b"\xff\xd9", 2, "before the frame header"),
        (SOI + b"\xff\xe0\x00", 2, "inside a marker's length"),
        (SOI + b"\xff\xe0\x00\x01", 4, "segment of 1 bytes"),
        (SOI + b"\xff\xe0\x00\x09abc", 4, "segment of 9 bytes"),
        (SOI + _sof(8, 8, marker=0xC2), 2, "SOF2 is not sequential"),
        (SOI + APP0 + _sof(8, 8, marker=0xC3), 8, "SOF3 is not sequential"),
        (SOI + _sof(8, 8, marker=0xC9), 2, "SOF9 is not sequential"),
        (SOI + _sof(8, 8, precision=12), 6, "12-bit"),
        (SOI + _sof(8, 0), 7, "DNL-sized"),
        (SOI + _sof(0, 8), 7, "empty"),
        (SOI + _sof(65535, 65535), 7, f"larger than {MAX_PIXELS}"),
        (SOI + b"\xff\xc0\x00\x05abc", 4, "frame header of 5 bytes"),
    ],
)
def test_hostile_headers(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(CodecError, match=words) as info:
        decode_jpeg(data)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.codec == "jpeg" and info.value.offset == offset, info.value


def test_fill_bytes_and_standalone_markers_before_the_frame() -> None:
    data = jpeg_bytes(picture(8, 8, "noise", random.Random(3)))
    padded = data[:2] + b"\xff\xd0\xff\xff" + data[2:]  # RST0, then a fill byte before APP0
    assert read_jpeg_frame(padded).offset == read_jpeg_frame(data).offset + 4
    assert bytes(decode_jpeg(padded).pixels) == reference(data)


def test_progressive_is_refused_before_decoding() -> None:
    data = jpeg_bytes(picture(16, 16, "noise", random.Random(4)), progressive=True)
    with pytest.raises(CodecError, match="SOF2 is not sequential"):
        decode_jpeg(data)


def test_corrupt_or_truncated_scan_is_a_codec_error() -> None:
    data = jpeg_bytes(picture(32, 32, "noise", random.Random(5)))
    sos = data.index(b"\xff\xda")
    for cut in (sos, sos + 20, len(data) // 2, len(data) - 2):
        with pytest.raises(CodecError, match="libjpeg-turbo") as info:
            decode_jpeg(data[:cut])
        assert info.value.codec == "jpeg"
    # a scan of zeros after a valid header: decodes or fails, never anything else
    broken = data[: sos + 14] + bytes(len(data) - sos - 14)
    try:
        assert len(decode_jpeg(broken).pixels) == 32 * 32 * 4
    except CodecError as exc:
        assert exc.codec == "jpeg"


# --- JPEG_ALPHA ----------------------------------------------------------------------------


def jpeg_alpha(jpeg: bytes, alpha: bytes, top_down: bool, tail: bytes = b"") -> bytes:
    head = struct.pack("<BII", 1 if top_down else 0, len(jpeg), len(jpeg) + len(alpha))
    return head + jpeg + alpha + tail


def with_alpha(bgrx: bytes, alpha_from: bytes) -> bytes:
    out = bytearray(bgrx)
    out[3::4] = alpha_from[3::4]
    return bytes(out)


@pytest.mark.parametrize("top_down", [True, False], ids=["top-down", "bottom-up"])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (7, 3), (33, 17)])
def test_jpeg_alpha_round_trip(top_down: bool, width: int, height: int) -> None:
    rng = random.Random(width * 2 + top_down)
    jpeg = jpeg_bytes(picture(width, height, "noise", rng))
    case = lz_case(XXXA, width, height, top_down, rng)  # expected[3::4]: alpha, top-down
    data = jpeg_alpha(jpeg, case.stream, top_down, tail=b"rest of the message")
    expected = with_alpha(reference(jpeg), case.expected)
    img = decode_jpeg_alpha(data, width=width, height=height)
    assert bytes(img.pixels) == expected and img.top_down == top_down
    stride = width * 4 + 12
    out = bytearray([0xAB] * (stride * height))
    decode_jpeg_alpha(memoryview(data), out, out_stride=stride)
    assert bytes(out[: stride * (height - 1) + width * 4]) == place(
        expected, width, height, stride, 0xAB)


def _alpha_case() -> tuple[bytes, bytes]:
    rng = random.Random(9)
    return jpeg_bytes(picture(6, 5, "noise", rng)), lz_case(XXXA, 6, 5, True, rng).stream


@pytest.mark.parametrize(
    ("build", "offset", "words"),
    [
        (lambda j, a: b"\x01\x00\x00", 3, "header needs 9 bytes"),
        (lambda j, a: jpeg_alpha(j, a, True)[:-1], 5, "data_size"),
        (lambda j, a: struct.pack("<BII", 1, len(j) + len(a) + 1, len(j) + len(a)) + j + a,
         1, "jpeg_size"),
        (lambda j, a: jpeg_alpha(j, a, False), 9 + len(_alpha_case()[0]) + 24, "row order"),
        (lambda j, a: jpeg_alpha(j, lz_case(RGB32, 6, 5, True, random.Random(1)).stream, True),
         9 + len(_alpha_case()[0]) + 8, "not XXXA"),
        (lambda j, a: jpeg_alpha(j, lz_case(XXXA, 5, 6, True, random.Random(1)).stream, True),
         9 + len(_alpha_case()[0]) + 12, "alpha plane is 5x6"),
        (lambda j, a: jpeg_alpha(j, a[:20], True), 9 + len(_alpha_case()[0]) + 20, "LZ header"),
        (lambda j, a: jpeg_alpha(b"\xff\xd8\xff\xc2" + j[4:], a, True), 11, "JPEG: .*SOF2"),
        (lambda j, a: jpeg_alpha(j[:2], a, True), 11, "JPEG: .*ends before"),
    ],
)
def test_jpeg_alpha_hostile(build: object, offset: int, words: str) -> None:
    jpeg, alpha = _alpha_case()
    assert callable(build)
    with pytest.raises(CodecError, match=words) as info:
        decode_jpeg_alpha(build(jpeg, alpha))
    assert info.value.codec == "jpeg_alpha" and info.value.offset == offset, info.value


def test_jpeg_alpha_bad_alpha_stream_and_descriptor() -> None:
    jpeg, alpha = _alpha_case()
    at = 9 + len(jpeg)
    with pytest.raises(CodecError, match=r"alpha plane: .*magic") as info:
        decode_jpeg_alpha(jpeg_alpha(jpeg, b"XXXX" + alpha[4:], True))
    assert info.value.offset == at
    with pytest.raises(CodecError, match="alpha plane") as info:
        decode_jpeg_alpha(jpeg_alpha(jpeg, alpha[:-1], True))
    assert at <= info.value.offset <= at + len(alpha)
    with pytest.raises(CodecError, match="descriptor says") as info:
        decode_jpeg_alpha(jpeg_alpha(jpeg, alpha, True), width=6, height=6)
    assert info.value.codec == "jpeg_alpha"
    with pytest.raises(CodecError, match="JPEG: libjpeg-turbo"):
        decode_jpeg_alpha(jpeg_alpha(jpeg[: len(jpeg) // 2], alpha, True))


def test_mutated_inputs_decode_or_raise_codec_error() -> None:
    """libjpeg-turbo is not in the sanitizer build; this checks that whatever it makes of
    mutated JPEG and JPEG_ALPHA data comes out as a decode or a CodecError, nothing else."""
    from tests.unit.codecs_fuzz_driver import mutate

    rng = random.Random(12)
    jpegs = [jpeg_bytes(picture(w, h, kind, rng), subsampling=s)
             for w, h in ((8, 8), (17, 9), (40, 24)) for kind in ("noise", "gradient")
             for s in (0, 2)]
    alphas = [jpeg_alpha(j, lz_case(XXXA, *Image.open(io.BytesIO(j)).size, td, rng).stream, td)
              for j in jpegs for td in (True, False)]
    corpus = jpegs + alphas
    decoded = failed = 0
    for i in range(3000):
        alpha = i % 3 == 0
        data = mutate(rng.choice(alphas if alpha else jpegs), corpus, rng)
        try:
            (decode_jpeg_alpha if alpha else decode_jpeg)(data)
            decoded += 1
        except CodecError as exc:
            assert exc.codec == ("jpeg_alpha" if alpha else "jpeg")
            failed += 1
    assert decoded > 100 and failed > 100, (decoded, failed)
