"""QUIC decoder: round trips through the test encoder, hand-built bit streams, hostile input."""

from __future__ import annotations

import random
import struct
import threading

import pytest

from atp_notebook.errors import CodecError, InvalidArgument, RemoteProtocolError
from atp_notebook.spice.codecs import DecodedImage, QuicType, decode_quic
from tests.unit.gil_probe import ticks_during
from tests.unit.quic_streams import (
    ALL_TYPES,
    CONTENTS,
    GRAY,
    MAGIC,
    RGB16,
    RGB24,
    RGB32,
    RGBA,
    Coverage,
    QuicCase,
    encode,
    quic_case,
)

SIZES = [(1, 1), (1, 2), (2, 1), (1, 7), (7, 1), (2, 2), (3, 3), (4, 3), (5, 5), (16, 9),
         (33, 17), (70, 3), (3, 70), (65, 66)]
# beyond the small table: every wait-mask level (12288 pixels on one schedule), rows split
# where the wait mask grows (2048 pixels), and runs long enough for the last melcode state
LARGE = [(RGB32, 128, 100, "photo"), (RGBA, 128, 100, "noise"), (RGB16, 2100, 3, "text"),
         (GRAY, 40000, 2, "flat"), (RGB16, 40000, 2, "flat")]


def _check(case: QuicCase) -> DecodedImage:
    img = decode_quic(case.stream)
    assert (img.width, img.height, img.stride) == (case.width, case.height, case.width * 4)
    assert img.quic_type == case.qtype
    assert bytes(img.pixels) == case.expected, (case.qtype, case.width, case.height)
    return img


@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: QuicType(t).name)
@pytest.mark.parametrize("content", list(CONTENTS))
def test_round_trip_every_type_size_and_content(qtype: int, content: str) -> None:
    for width, height in SIZES:
        _check(quic_case(qtype, width, height, content, random.Random(width * 71 + height)))


def test_the_tables_reach_every_part_of_the_model() -> None:
    """The round trips above and below exercise each bucket, each code with both kinds of
    codeword, every wait-mask level, the last melcode state and counter halving."""
    cov = Coverage()
    for qtype in ALL_TYPES:
        for content in CONTENTS:
            for width, height in SIZES:
                quic_case(qtype, width, height, content, random.Random(width * 71 + height), cov)
    for qtype, width, height, content in LARGE:
        _check(quic_case(qtype, width, height, content, random.Random(width), cov))
    assert cov.buckets == {(8, b) for b in range(8)} | {(5, b) for b in range(5)}
    assert cov.codes == {(8, k, esc) for k in range(8) for esc in (False, True)} | {
        (5, k, esc) for k in range(5) for esc in (False, True)}
    assert cov.max_wmidx == 6
    assert cov.max_melcstate == 31
    assert cov.halvings > 0 and cov.runs > 0


def _words(bits: str) -> bytes:
    """A bit string, most significant bit first, as little-endian words plus the zero word
    spice-common's encoder ends with."""
    bits += "0" * (-len(bits) % 32)
    words = [int(bits[i : i + 32], 2) for i in range(0, len(bits), 32)] + [0]
    return struct.pack(f"<{len(words)}I", *words)


def _stream(qtype: int, width: int, height: int, bits: str) -> bytes:
    return struct.pack("<5I", MAGIC, 0, qtype, width, height) + _words(bits)


def _px(*pixels: tuple[int, int, int, int]) -> bytes:
    return b"".join(bytes(p) for p in pixels)


@pytest.mark.parametrize(
    ("qtype", "width", "height", "bits", "expected"),
    [
        # first pixel, every channel with code 7 (the start): value (x - 0) folded, then
        # Golomb-Rice 1 + 7 bits: R 0x10 -> 32 -> 1_0100000, G 0x20 -> 64, B 0x30 -> 96
        (RGB32, 1, 1, "10100000" "11000000" "11100000", _px((0x30, 0x20, 0x10, 0))),
        # RGB24 decodes like RGB32; the second pixel repeats the first: error 0 under code
        # 7 (its contexts, 32/64/96, are in buckets the first update did not touch)
        (RGB24, 2, 1, "10100000" "11000000" "11100000" + "10000000" * 3,
         _px((0x30, 0x20, 0x10, 0), (0x30, 0x20, 0x10, 0))),
        # RGB16: 5 bits a channel, code 4: R 31 folds to 1 -> 1_0001, G 0 -> 1_0000,
        # B 1 -> 2 -> 1_0010; widened like x555 (1 -> 0x08, 31 -> 0xff)
        (RGB16, 1, 1, "10001" "10000" "10010", _px((0x08, 0x00, 0xFF, 0))),
        # GRAY 0x80 folds to 255: an escape under code 7 (0 + 7 bits of 255 - 128);
        # decoded to V, V, V, 0
        (GRAY, 1, 1, "01111111", _px((0x80, 0x80, 0x80, 0))),
        # RGBA: the colours, then the alpha pass; alpha 0xff folds to 1 -> 1_0000001, and
        # lands in the X byte as is (spice-common does not invert it)
        (RGBA, 1, 1, "10000000" * 3 + "10000001", _px((0, 0, 0, 0xFF))),
        # a flat 4x2: row 0 is pixel 0 under code 7, then (the first update made bucket 0
        # choose code 0) "1" per channel; row 1 codes pixels 0-2 the same way, then pixel 3
        # starts a run (above-left == above, the two to the left equal): one whole
        # expected run of 2^0 (a 1) and a 0 with no remainder bits
        (RGB32, 4, 2, "10000000" * 3 + "111" * 3 + "111" * 3 + "10", _px((0, 0, 0, 0)) * 8),
    ],
    ids=["rgb32", "rgb24-two", "rgb16", "gray", "rgba", "run"],
)
def test_hand_built_streams(qtype: int, width: int, height: int, bits: str,
                            expected: bytes) -> None:
    img = decode_quic(_stream(qtype, width, height, bits))
    assert bytes(img.pixels) == expected
    assert img.quic_type == qtype
    # without the trailing word the 32-bit window after the last codeword falls short
    with pytest.raises(CodecError, match=r"ends before|cannot hold"):
        decode_quic(_stream(qtype, width, height, bits)[:-4])


def test_hand_built_stream_agrees_with_the_encoder() -> None:
    rows = [[(0, 0, 0)] * 4] * 2
    assert encode(RGB32, rows) == _stream(RGB32, 4, 2, "10000000" * 3 + "111" * 6 + "10")


def test_caller_buffer_with_wider_stride_and_any_buffer_type() -> None:
    case = quic_case(RGBA, 13, 9, "text", random.Random(4))
    for extra in (4, 12, 100):
        stride = 13 * 4 + extra
        out = bytearray([0xAB] * (stride * 8 + 13 * 4))
        view = memoryview(out)
        img = decode_quic(memoryview(case.stream), view, out_stride=stride)
        assert img.pixels is view and img.stride == stride
        for y in range(9):
            row = out[y * stride : (y + 1) * stride]
            assert row[: 13 * 4] == case.expected[y * 52 : (y + 1) * 52]
            assert set(row[13 * 4 :]) <= {0xAB}  # the padding is left alone
    assert bytes(decode_quic(bytearray(case.stream)).pixels) == case.expected


def test_error_is_typed_and_names_codec_and_offset() -> None:
    with pytest.raises(CodecError) as info:
        decode_quic(b"CIUQ" + b"\0" * 20)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.codec == "quic" and info.value.offset == 0
    assert "quic" in str(info.value) and "byte 0" in str(info.value)


def _header(magic: int = MAGIC, version: int = 0, qtype: int = RGB32, width: int = 2,
            height: int = 2) -> bytes:
    return struct.pack("<5I", magic, version, qtype, width, height) + b"\0" * 64


@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        (_header(magic=0x51554943), 0, "magic"),
        (_header(version=1), 4, "version"),
        (_header(version=0x00010000), 4, "version"),
        (_header(qtype=0), 8, "type"),
        (_header(qtype=6), 8, "type"),
        (_header(width=0), 12, "empty"),
        (_header(height=0), 12, "empty"),
        (_header(width=16385, height=16384), 12, "larger"),
        (_header(width=0xFFFFFFFF, height=0xFFFFFFFF), 12, "larger"),
        (_header(width=1 << 28, height=2), 12, "larger"),
        # plausible sizes, but too few bits for even one per codeword: refused up front
        (_header(width=16384, height=16384), 84, "cannot hold"),
        (_header(width=1 << 28, height=1), 84, "cannot hold"),
        (b"QUIC", 4, "header"),
        (b"", 0, "header"),
    ],
)
def test_bad_headers(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(CodecError, match=words) as info:
        decode_quic(data)
    assert info.value.offset == offset and info.value.codec == "quic"


@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: QuicType(t).name)
def test_truncated_at_every_length(qtype: int) -> None:
    case = quic_case(qtype, 7, 5, "text", random.Random(qtype))
    for cut in range(len(case.stream)):
        with pytest.raises(CodecError) as info:
            decode_quic(case.stream[:cut])
        assert info.value.codec == "quic" and 0 <= info.value.offset <= cut
    # bytes past the last whole word, or words past the image, are ignored (as by
    # spice-common, which reads only as far as the image needs)
    assert bytes(decode_quic(case.stream + b"\xff\xff\xff").pixels) == case.expected
    assert bytes(decode_quic(case.stream + b"\xff" * 64).pixels) == case.expected


def test_garbage_after_the_header() -> None:
    """Every bit string decodes as something (spice-common decodes 4 KiB of 1 bits as a
    40x30 RGB32 image, and so do we); garbage fails where it runs out first."""
    rng = random.Random(7)
    bodies = [
        b"\xff" * 400,
        bytes(rng.getrandbits(8) for _ in range(600)),
        b"\0" * 80,
        bytes(rng.getrandbits(8) for _ in range(5)),
    ]
    for qtype in ALL_TYPES:
        for body in bodies:
            stream = struct.pack("<5I", MAGIC, 0, qtype, 40, 30) + body
            with pytest.raises(CodecError, match=r"ends before|cannot hold") as info:
                decode_quic(stream)
            assert info.value.codec == "quic" and info.value.offset == len(stream)


def test_run_past_the_end_of_the_row() -> None:
    # the flat 4x2 above, but the run in row 1 says 2 pixels (two 1 bits) where 1 is left
    with pytest.raises(CodecError, match="run of 2 pixels") as info:
        decode_quic(_stream(RGB32, 4, 2, "10000000" * 3 + "111" * 6 + "110"))
    assert info.value.offset == 24  # the word holding the bit after the run


def test_run_of_ones_without_end() -> None:
    # a hostile run: 1 bits all the way (each a whole expected run, the longest 32768)
    with pytest.raises(CodecError, match=r"run of|ends before"):
        decode_quic(_stream(RGB32, 4, 2, "10000000" * 3 + "111" * 6 + "1" * 40000))
    with pytest.raises(CodecError, match="run of"):
        decode_quic(_stream(RGB32, 4, 2, "10000000" * 3 + "111" * 6 + "1" * 40000 + "0" * 64))


def test_escape_past_the_levels() -> None:
    # pixel 1's red under code 0 (chosen after pixel 0): an escape is 18 zeros and 8 bits
    # added to 18, so 0xff would be 273 -- no encoder writes it; spice-common would keep
    # its low byte, we refuse the stream
    bits = "10000000" * 3 + "0" * 18 + "11111111" + "1" + "1"
    with pytest.raises(CodecError, match="past the 256 levels"):
        decode_quic(_stream(RGB32, 2, 1, bits))
    assert bytes(decode_quic(_stream(RGB32, 2, 1, bits.replace("11111111", "11101101")))
                 .pixels) == _px((0, 0, 0, 0), (0, 0, 255 - 127, 0))


def test_output_buffer_too_small_or_stride_too_narrow() -> None:
    case = quic_case(RGB32, 5, 4, "noise", random.Random(3))
    with pytest.raises(CodecError, match="does not fit") as info:
        decode_quic(case.stream, bytearray(5 * 4 * 4 - 1))
    assert info.value.offset == 12
    with pytest.raises(CodecError, match="stride"):
        decode_quic(case.stream, bytearray(1000), out_stride=19)
    with pytest.raises(CodecError, match="stride"):
        decode_quic(case.stream, out_stride=19)
    # exactly big enough with a wide stride: the last row needs only width * 4 bytes
    out = bytearray(100 * 3 + 20)
    assert decode_quic(case.stream, out, out_stride=100).pixels is out
    with pytest.raises(InvalidArgument, match="writable"):
        decode_quic(case.stream, b"\0" * 80)
    with pytest.raises(InvalidArgument, match="out_stride"):
        decode_quic(case.stream, out_stride=0)


def test_two_threads_decode_at_once() -> None:
    cases = [quic_case(RGBA, 96, 64, "noise", random.Random(1)),
             quic_case(RGB32, 96, 64, "photo", random.Random(2))]
    results: list[list[bool]] = [[], []]
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        out = bytearray(96 * 64 * 4)
        for _ in range(200):
            results[k].append(bytes(decode_quic(cases[k].stream, out).pixels) == cases[k].expected)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[True] * 200, [True] * 200]


def test_gil_is_released_during_decode() -> None:
    big = quic_case(RGB32, 512, 256, "noise", random.Random(5))
    out = bytearray(512 * 256 * 4)

    during, decodes = ticks_during(lambda: decode_quic(big.stream, out))
    assert bytes(out) == big.expected
    # with the GIL held the spinner could not run at all during a call
    assert during > 1000 * decodes, (during, decodes)
