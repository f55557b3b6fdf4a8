"""JPEG and JPEG_ALPHA images, decoded by libjpeg-turbo through simplejpeg.

spice-server compresses with libjpeg, baseline, quality 85, RGB input (server
``jpeg-encoder.c``; research display.md §1.4); rows are always top-down. JPEG_ALPHA adds the
alpha plane as an LZ stream of type XXXA (spice-common ``canvas_get_jpeg_alpha``).

simplejpeg was the fastest binding measured (1024x768 quality-85 frames, B,G,R,X into the
output buffer, no copy): noise 332, text 261, gradient 1021, flat 1532 Mpix/s, against
PyTurboJPEG 1.8 (needs the system libturbojpeg) 331/260/1002/1515 and Pillow (decode, then
``tobytes("raw", "BGRX")`` and a copy) 250/203/489/616. libjpeg-turbo fills X with 255; it is
cleared to 0 here, as every other decoder leaves it (the cost: 1-10 % on those frames).

Sizes are checked before anything is allocated: the frame header's size against the image
descriptor's (when given) and against the same pixel cap as the C decoders; only baseline
and extended sequential frames (what libjpeg writes by default) are taken, so a hostile
progressive file cannot make the decoder loop over thousands of scans.

Example::

    img = decode_jpeg(data, width=desc.width, height=desc.height)
    bytes(img.pixels[:4])                  # B, G, R, 0 of the top-left pixel
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import simplejpeg

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import Buffer, DecodedImage, _check_out, _stride, decode_lz

__all__ = ["JPEG_ALPHA_TOP_DOWN", "MAX_PIXELS", "JpegFrame", "decode_jpeg", "decode_jpeg_alpha",
           "read_jpeg_frame"]

#: Largest image decoded, in pixels: the C decoders' cap (src/common.h MAX_PIXELS).
MAX_PIXELS = 1 << 28
#: JPEG_ALPHA flags bit 0: the alpha plane's rows are top-down (else bottom-up).
JPEG_ALPHA_TOP_DOWN = 1

_SOI, _SOS, _EOI = 0xD8, 0xDA, 0xD9
# SOF0 baseline and SOF1 extended sequential (Huffman); SOF2..SOF15 (progressive, lossless,
# arithmetic) are refused. C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_SOF_TAKEN = {0xC0, 0xC1}
_SOF_ALL = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# markers without a length field: TEM and RST0..7
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_JPEG_ALPHA_HEADER = struct.Struct("<BII")  # flags, jpeg_size, data_size
_LZ_HEADER = struct.Struct(">7I")  # magic, version, type, width, height, stride, top_down
_LZ_XXXA = 10
_X_MASK = np.uint32(0x00FFFFFF)


@dataclass(frozen=True, slots=True)
class JpegFrame:
    """What a JPEG's frame header (SOFn) says; ``offset`` is where the marker starts."""

    width: int
    height: int
    components: int
    offset: int


def read_jpeg_frame(data: Buffer) -> JpegFrame:
    """Walk the markers from SOI to the frame header and return the image's size.

    Raises CodecError for anything but an 8-bit sequential frame with a size.
    """
    buf = memoryview(data).cast("B")
    n = len(buf)
    if n < 2 or buf[0] != 0xFF or buf[1] != _SOI:
        raise CodecError("jpeg", 0, "not a JPEG: no SOI marker")
    pos = 2
    while True:
        if pos + 2 > n:
            raise CodecError("jpeg", pos, "the data ends before the frame header")
        if buf[pos] != 0xFF:
            raise CodecError("jpeg", pos, f"expected a marker, found byte {buf[pos]:#04x}")
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (_SOS, _EOI, _SOI):
            raise CodecError("jpeg", pos, f"marker {marker:#04x} before the frame header")
        if pos + 4 > n:
            raise CodecError("jpeg", pos, "the data ends inside a marker's length")
        length = buf[pos + 2] << 8 | buf[pos + 3]
        if length < 2 or pos + 2 + length > n:
            raise CodecError("jpeg", pos + 2, f"a segment of {length} bytes does not fit")
        if marker in _SOF_ALL:
            return _frame(buf, pos, marker, length)
        pos += 2 + length


def _frame(buf: memoryview, pos: int, marker: int, length: int) -> JpegFrame:
    if marker not in _SOF_TAKEN:
        raise CodecError("jpeg", pos, f"frame type SOF{marker - 0xC0} is not sequential"
                         " (the server writes baseline JPEG)")
    if length < 8:
        raise CodecError("jpeg", pos + 2, f"a frame header of {length} bytes")
    precision, height, width, components = struct.unpack_from(">BHHB", buf, pos + 4)
    if precision != 8:
        raise CodecError("jpeg", pos + 4, f"{precision}-bit samples (8 expected)")
    if width == 0 or height == 0:
        raise CodecError("jpeg", pos + 5, f"empty or DNL-sized frame {width}x{height}")
    if width * height > MAX_PIXELS:
        raise CodecError("jpeg", pos + 5, f"{width}x{height} is larger than {MAX_PIXELS} pixels")
    return JpegFrame(width, height, components, pos)


def _check_size(codec: str, frame: JpegFrame, at: int, width: int | None,
                height: int | None) -> None:
    if width is None and height is None:
        return
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{name} must be an int >= 0 (both or neither), not {value!r}")
    if (frame.width, frame.height) != (width, height):
        raise CodecError(codec, at + frame.offset, f"the JPEG is {frame.width}x{frame.height},"
                         f" the image descriptor says {width}x{height}")


def _decode_into(codec: str, data: Buffer, frame: JpegFrame, out: Buffer | None, stride: int,
                 *, clear_x: bool) -> tuple[Buffer, int]:
    """Decode to B, G, R, X rows in ``out`` (or a new bytearray); returns (pixels, stride)."""
    width, height = frame.width, frame.height
    row = width * 4
    ostride = stride or row
    pixels: Buffer = bytearray(max(ostride, row) * height) if out is None else out
    target = memoryview(pixels).cast("B")
    if ostride < row:
        raise CodecError(codec, 0, f"an image {width} pixels wide needs an output stride of at"
                         f" least {row}, not {ostride}")
    need = ostride * (height - 1) + row
    if len(target) < need:
        raise CodecError(codec, 0, f"a {width}x{height} image with output stride {ostride}"
                         f" does not fit {len(target)} bytes")
    try:
        if ostride == row:
            # straight into the output: no copy
            decoded = simplejpeg.decode_jpeg(data, "BGRX", buffer=target[: row * height])
        else:
            decoded = simplejpeg.decode_jpeg(data, "BGRX")
    except ValueError as exc:
        raise CodecError(codec, 0, f"libjpeg-turbo: {exc}") from None
    if decoded.shape != (height, width, 4):
        raise CodecError(codec, frame.offset, f"decoded {decoded.shape[1]}x{decoded.shape[0]},"
                         f" the frame header says {width}x{height}")
    words = decoded.view("<u4")[..., 0]
    if ostride == row:
        if clear_x:
            np.bitwise_and(words, _X_MASK, out=words)
    else:
        dst = np.ndarray((height, width), "<u4", buffer=target, strides=(ostride, 4))
        if clear_x:
            np.bitwise_and(words, _X_MASK, out=dst)
        else:
            dst[...] = words
    return pixels, ostride


def decode_jpeg(
    data: Buffer,
    out: Buffer | None = None,
    *,
    out_stride: int | None = None,
    width: int | None = None,
    height: int | None = None,
) -> DecodedImage:
    """Decode one JPEG image (its bytes, after the u32 data_size) into B, G, R, 0 rows.

    ``width`` and ``height`` are the image descriptor's: a JPEG of another size is a
    CodecError, found before decoding.
    """
    stride = _stride(out_stride)
    _check_out(out)
    frame = read_jpeg_frame(data)
    _check_size("jpeg", frame, 0, width, height)
    pixels, ostride = _decode_into("jpeg", data, frame, out, stride, clear_x=True)
    return DecodedImage(frame.width, frame.height, ostride, pixels)


def decode_jpeg_alpha(
    data: Buffer,
    out: Buffer | None = None,
    *,
    out_stride: int | None = None,
    width: int | None = None,
    height: int | None = None,
) -> DecodedImage:
    """Decode a JPEG_ALPHA image: the JPEG's B, G, R and the LZ XXXA plane's alpha as X.

    ``data`` is the image's union: u8 flags (bit 0 TOP_DOWN), u32 jpeg_size, u32 data_size,
    then data_size bytes (the JPEG, then the alpha plane's LZ stream); bytes after them are
    ignored (they belong to the rest of the message). The JPEG's rows are top-down; the alpha
    stream must say the same row order as the flags, be XXXA and have the JPEG's size.
    """
    stride = _stride(out_stride)
    _check_out(out)
    buf = memoryview(data).cast("B")
    head = _JPEG_ALPHA_HEADER.size
    if len(buf) < head:
        raise CodecError("jpeg_alpha", len(buf), f"the header needs {head} bytes")
    flags, jpeg_size, data_size = _JPEG_ALPHA_HEADER.unpack_from(buf)
    if data_size > len(buf) - head:
        raise CodecError("jpeg_alpha", 5, f"data_size {data_size}: only"
                         f" {len(buf) - head} bytes follow")
    if jpeg_size > data_size:
        raise CodecError("jpeg_alpha", 1, f"jpeg_size {jpeg_size} > data_size {data_size}")
    jpeg = buf[head : head + jpeg_size]
    alpha_at = head + jpeg_size
    alpha = buf[alpha_at : head + data_size]
    try:
        frame = read_jpeg_frame(jpeg)
    except CodecError as exc:
        raise CodecError("jpeg_alpha", head + exc.offset, f"JPEG: {exc.reason}") from None
    _check_size("jpeg_alpha", frame, head, width, height)
    _check_alpha_header(alpha, alpha_at, frame, bool(flags & JPEG_ALPHA_TOP_DOWN))
    try:
        pixels, ostride = _decode_into("jpeg_alpha", jpeg, frame, out, stride, clear_x=False)
    except CodecError as exc:
        raise CodecError("jpeg_alpha", head + exc.offset, f"JPEG: {exc.reason}") from None
    try:
        decode_lz(alpha, pixels, out_stride=ostride)  # writes the X bytes only
    except CodecError as exc:
        raise CodecError("jpeg_alpha", alpha_at + exc.offset,
                         f"alpha plane: {exc.reason}") from None
    return DecodedImage(frame.width, frame.height, ostride, pixels,
                        top_down=bool(flags & JPEG_ALPHA_TOP_DOWN))


def _check_alpha_header(alpha: memoryview, at: int, frame: JpegFrame, top_down: bool) -> None:
    """The LZ header must describe the JPEG's alpha plane; checked before any decoding."""
    if len(alpha) < _LZ_HEADER.size:
        raise CodecError("jpeg_alpha", at + len(alpha),
                         f"the alpha plane's LZ header needs {_LZ_HEADER.size} bytes")
    _, _, lz_type, w, h, _, lz_top_down = _LZ_HEADER.unpack_from(alpha)
    if lz_type != _LZ_XXXA:
        raise CodecError("jpeg_alpha", at + 8, f"the alpha plane is LZ type {lz_type},"
                         f" not XXXA ({_LZ_XXXA})")
    if (w, h) != (frame.width, frame.height):
        raise CodecError("jpeg_alpha", at + 12, f"the alpha plane is {w}x{h}, the JPEG"
                         f" {frame.width}x{frame.height}")
    if bool(lz_top_down) != top_down:
        raise CodecError("jpeg_alpha", at + 24, "the alpha plane's row order"
                         f" ({'top-down' if lz_top_down else 'bottom-up'}) is not the flags'")
