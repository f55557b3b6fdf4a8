"""Spice image decoders, backed by C: BITMAP (every format), LZ (every LzImageType), QUIC,
GLZ and ZLIB_GLZ against a shared :class:`GlzWindow`, LZ4, JPEG and JPEG_ALPHA; palettes
through a :class:`PaletteCache`; :func:`decode_image` takes a draw message's image of any
type (``images.py``).

Every decoder produces 32-bit pixels in memory byte order **B, G, R, X** (what a Spice
``32_xRGB`` surface holds, a little-endian ``0xXXRRGGBB`` word per pixel), rows top-down
whatever order the source used, ``stride`` bytes apart (``width * 4`` unless the caller
passes ``out_stride``). X is 0 except where the source carries alpha (LZ RGBA/XXXA/A8,
BITMAP RGBA/8BIT_A) or an X byte of its own (BITMAP 32BIT, copied as sent).

Pass ``out`` (any writable C-contiguous buffer: a bytearray, a numpy view of a surface) to
decode in place, or leave it None for a new zeroed bytearray. Data the server sent that
cannot be decoded raises :class:`~atp_notebook.errors.CodecError` naming the codec and the
byte offset; bad arguments from our own code raise :class:`~atp_notebook.errors.InvalidArgument`.
The C core releases the GIL while it decodes, so several threads can decode at once.

Example::

    img = decode_lz(stream)                 # LZ_RGB payload
    img.width, img.height, bytes(img.pixels[:4])
    state = ImageState(glz=GlzWindow(window_pixels))
    img = decode_image(draw.image, state)   # any image type, in message order
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import _codecs

__all__ = [
    "BitmapFormat",
    "Buffer",
    "DecodedImage",
    "GlzWindow",
    "ImageState",
    "LzType",
    "Palette",
    "PaletteCache",
    "QuicType",
    "SpicePalette",
    "decode_bitmap",
    "decode_glz",
    "decode_image",
    "decode_jpeg",
    "decode_jpeg_alpha",
    "decode_lz",
    "decode_lz4",
    "decode_quic",
    "decode_zlib_glz",
    "parse_palette",
]

Buffer: TypeAlias = bytes | bytearray | memoryview
#: Palette entries as ints ``0x00RRGGBB``, or a buffer of little-endian u32 entries.
Palette: TypeAlias = Sequence[int] | Buffer


class LzType(enum.IntEnum):
    """LzImageType of an LZ stream header."""

    PLT1_LE = 1
    PLT1_BE = 2
    PLT4_LE = 3
    PLT4_BE = 4
    PLT8 = 5
    RGB16 = 6
    RGB24 = 7
    RGB32 = 8
    RGBA = 9
    XXXA = 10
    A8 = 11


class BitmapFormat(enum.IntEnum):
    """SpiceBitmapFmt of a BITMAP image."""

    BIT1_LE = 1
    BIT1_BE = 2
    BIT4_LE = 3
    BIT4_BE = 4
    BIT8 = 5
    BIT16 = 6
    BIT24 = 7
    BIT32 = 8
    RGBA = 9
    BIT8_A = 10


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image: ``pixels`` is the caller's ``out`` or a new bytearray."""

    width: int
    height: int
    stride: int
    pixels: Buffer
    lz_type: LzType | None = None
    top_down: bool = True
    #: the source's pixel format where the stream names one (LZ4)
    bitmap_format: BitmapFormat | None = None
    #: the QuicImageType of a QUIC stream (RGBA: the X bytes are alpha)
    quic_type: QuicType | None = None


def _palette_bytes(palette: Palette | None) -> Buffer | None:
    if palette is None or isinstance(palette, bytes | bytearray | memoryview):
        if isinstance(palette, memoryview) and palette.nbytes % 4:
            raise InvalidArgument(f"a palette buffer holds u32 entries, not {palette.nbytes} bytes")
        if isinstance(palette, bytes | bytearray) and len(palette) % 4:
            raise InvalidArgument(f"a palette buffer holds u32 entries, not {len(palette)} bytes")
        return palette
    entries = list(palette)
    if any(not isinstance(e, int) or not 0 <= e <= 0xFFFFFFFF for e in entries):
        raise InvalidArgument("palette entries are ints 0..0xffffffff (0x00RRGGBB)")
    return struct.pack(f"<{len(entries)}I", *entries)


def _check_out(out: Buffer | None) -> None:
    if out is None:
        return
    try:
        view = memoryview(out)
    except TypeError:
        raise InvalidArgument(f"out must be a buffer, not {type(out).__name__}") from None
    with view:
        if view.readonly or not view.c_contiguous:
            raise InvalidArgument("out must be a writable C-contiguous buffer")


def _stride(out_stride: int | None) -> int:
    if out_stride is None:
        return 0
    if isinstance(out_stride, bool) or not isinstance(out_stride, int) or out_stride <= 0:
        raise InvalidArgument(f"out_stride must be a positive int, not {out_stride!r}")
    return out_stride


def decode_lz(
    data: Buffer,
    out: Buffer | None = None,
    *,
    out_stride: int | None = None,
    palette: Palette | None = None,
) -> DecodedImage:
    """Decode one LZ stream (header included) into B, G, R, X pixels, rows top-down.

    ``palette`` is needed by the PLT types (an index past it is a CodecError). For XXXA
    (the alpha plane of JPEG_ALPHA) only the X bytes of ``out`` are written.
    """
    stride = _stride(out_stride)
    pal = _palette_bytes(palette)
    _check_out(out)
    try:
        lz_type, width, height, top_down, pixels = _codecs.lz_decode(data, out, stride, pal)
    except _codecs.Error as exc:
        codec, offset, reason = exc.args
        raise CodecError(codec, offset, reason) from None
    return DecodedImage(
        width, height, stride or width * 4, pixels, LzType(lz_type), bool(top_down)
    )


#: bitmap_decode's pseudo-format for 16_565 pixels (src/bitmap.h BMP_16BIT_565)
_RGB565 = 0x100 | BitmapFormat.BIT16


def decode_bitmap(
    fmt: BitmapFormat | int,
    data: Buffer,
    width: int,
    height: int,
    stride: int,
    *,
    top_down: bool,
    palette: Palette | None = None,
    out: Buffer | None = None,
    out_stride: int | None = None,
    rgb565: bool = False,
) -> DecodedImage:
    """Convert a BITMAP image's pixels (``stride`` bytes a row) into B, G, R, X pixels.

    Bottom-up bitmaps (``top_down`` False) hold their last row first; the output is always
    top-down. ``palette`` is needed by the 1, 4 and 8-bit formats. ``rgb565`` reads 16-bit
    pixels as a 16_565 surface holds them (red 15-11, green 10-5, blue 4-0) instead of the
    wire's x555: SpiceBitmapFmt has no 565 format, only surfaces (SURFACE_CREATE format 80) do.
    """
    try:
        bitmap_format = BitmapFormat(fmt)
    except ValueError:
        raise CodecError("bitmap", 0, f"unknown bitmap format {fmt!r}") from None
    for name, value in (("width", width), ("height", height), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{name} must be an int >= 0, not {value!r}")
    if rgb565 and bitmap_format is not BitmapFormat.BIT16:
        raise InvalidArgument(f"rgb565 applies to 16-bit pixels, not {bitmap_format.name}")
    ostride = _stride(out_stride)
    pal = _palette_bytes(palette)
    _check_out(out)
    code = _RGB565 if rgb565 else int(bitmap_format)
    try:
        pixels = _codecs.bitmap_decode(
            code, data, width, height, stride, top_down, pal, out, ostride
        )
    except _codecs.Error as exc:
        codec, offset, reason = exc.args
        raise CodecError(codec, offset, reason) from None
    return DecodedImage(width, height, ostride or width * 4, pixels, None, top_down)


# Each codec's own module, imported last: they use the names above.
from atp_notebook.spice.codecs.glz import GlzWindow, decode_glz, decode_zlib_glz  # noqa: E402
from atp_notebook.spice.codecs.images import ImageState, decode_image  # noqa: E402
from atp_notebook.spice.codecs.jpeg import decode_jpeg, decode_jpeg_alpha  # noqa: E402
from atp_notebook.spice.codecs.lz4 import decode_lz4  # noqa: E402
from atp_notebook.spice.codecs.palettes import (  # noqa: E402
    PaletteCache,
    SpicePalette,
    parse_palette,
)
from atp_notebook.spice.codecs.quic import QuicType, decode_quic  # noqa: E402
