"""One Spice image, whatever its type, to B, G, R, X pixels: the bridge from a draw message's
:class:`~atp_notebook.spice.proto.display.SpiceImage` to the decoders.

:func:`decode_image` reads the image's union (spice.proto ``struct Image``: BITMAP's format,
flags, size, stride and palette; the ``data_size`` of QUIC, LZ, GLZ, JPEG and LZ4; LZ_PLT's
flags and palette; ZLIB_GLZ's inflated size; JPEG_ALPHA's header), resolves palettes
through the session's :class:`PaletteCache`, decodes GLZ against the session's
:class:`GlzWindow`, checks that what the stream says matches the descriptor's size, and
applies HIGH_BITS_SET. FROM_CACHE, FROM_CACHE_LOSSLESS and SURFACE images carry no pixels:
the display resolves them from its pixmap cache and surfaces, so they are an
InvalidArgument here.

Example::

    state = ImageState(glz=GlzWindow(window_pixels), palettes=PaletteCache())
    img = decode_image(draw.image, state)           # every image in message order
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import (
    BitmapFormat,
    Buffer,
    DecodedImage,
    LzType,
    decode_bitmap,
    decode_lz,
)
from atp_notebook.spice.codecs.glz import GlzWindow, decode_glz, decode_zlib_glz
from atp_notebook.spice.codecs.jpeg import decode_jpeg, decode_jpeg_alpha
from atp_notebook.spice.codecs.lz4 import decode_lz4
from atp_notebook.spice.codecs.palettes import PaletteCache
from atp_notebook.spice.codecs.quic import QuicType, decode_quic
from atp_notebook.spice.proto.constants import ImageType
from atp_notebook.spice.proto.display import SpiceImage

__all__ = ["HIGH_BITS_SET", "ImageState", "decode_image"]

#: ImageDescriptor flag: the X byte of every pixel is 0xff (an opaque 32-bit image).
HIGH_BITS_SET = 2
_BITMAP_TOP_DOWN = 4
_U32 = struct.Struct("<I")
# BitmapData before its palette field: format, flags, width (x), height (y), stride
_BITMAP_HEAD = struct.Struct("<BBIII")
_LZ_PLT_HEAD = struct.Struct("<BI")  # flags, data_size; then the palette field, then data
_ZLIB_GLZ_HEAD = struct.Struct("<II")  # glz_data_size (inflated), data_size
_NOT_PIXELS = (ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS, ImageType.SURFACE)


@dataclass
class ImageState:
    """What decoding needs beyond one image: the session's GLZ window (None when the client
    announced a window of 0, so the server sends no GLZ) and palette cache. Feed it every
    image of the display channels in message order, drawn or not: GLZ images are referenced
    by later ones and palettes are cached by the server's count."""

    glz: GlzWindow | None = None
    palettes: PaletteCache = field(default_factory=PaletteCache)
    #: how long a GLZ image waits for an image another channel has not delivered (None:
    #: the window's own default)
    glz_timeout: float | None = None


def _codec_name(image_type: int) -> str:
    try:
        return ImageType(image_type).name.lower()
    except ValueError:
        return "image"


def _data(image: SpiceImage, head: int, size_at: int) -> memoryview:
    """The ``data_size`` bytes that follow a union's ``head`` bytes (size read at size_at)."""
    payload = image.payload
    if len(payload) < head:
        raise CodecError(_codec_name(image.type), image.at,
                         f"the image header needs {head} bytes, the message has {len(payload)}")
    (size,) = _U32.unpack_from(payload, size_at)
    if size > len(payload) - head:
        raise CodecError(_codec_name(image.type), image.at + size_at,
                         f"data_size {size} runs past the message ({len(payload) - head} left)")
    return payload[head:head + size]


def _expect_size(image: SpiceImage, data: memoryview, layout: struct.Struct, at: int) -> None:
    """Check the width and height a stream's header states against the descriptor before
    decoding: into a caller's surface, a larger image would overwrite pixels outside the
    draw's region (the C core only keeps writes inside the buffer)."""
    if len(data) < at + layout.size:
        return  # the decoder reports the short header
    width, height = layout.unpack_from(data, at)
    if (width, height) != (image.width, image.height):
        raise CodecError(_codec_name(image.type), image.at,
                         f"the stream holds a {width}x{height} image, the descriptor"
                         f" says {image.width}x{image.height}")


_BE_SIZE = struct.Struct(">II")  # LZ (at 12) and GLZ (at 9) headers: width, height
_LE_SIZE = struct.Struct("<II")  # QUIC header words 3 and 4


def _bitmap(image: SpiceImage, state: ImageState, out: Buffer | None,
            out_stride: int | None) -> DecodedImage:
    payload = image.payload
    if len(payload) < _BITMAP_HEAD.size:
        raise CodecError("bitmap", image.at, "the BITMAP header is cut short")
    fmt, flags, width, height, stride = _BITMAP_HEAD.unpack_from(payload)
    _expect_size(image, payload, _LE_SIZE, 2)
    palette, data_at = state.palettes.resolve(flags, image.body, image.at + _BITMAP_HEAD.size)
    data = memoryview(image.body)[data_at:]
    img = decode_bitmap(fmt, data, width, height, stride,
                        top_down=bool(flags & _BITMAP_TOP_DOWN),
                        palette=palette.entries if palette else None, out=out,
                        out_stride=out_stride)
    return replace(img, bitmap_format=BitmapFormat(fmt))


def _lz_plt(image: SpiceImage, state: ImageState, out: Buffer | None,
            out_stride: int | None) -> DecodedImage:
    payload = image.payload
    if len(payload) < _LZ_PLT_HEAD.size:
        raise CodecError("lz_plt", image.at, "the LZ_PLT header is cut short")
    flags, size = _LZ_PLT_HEAD.unpack_from(payload)
    palette, data_at = state.palettes.resolve(flags, image.body, image.at + _LZ_PLT_HEAD.size)
    if palette is None:
        raise CodecError("lz_plt", image.at + _LZ_PLT_HEAD.size,
                         "an LZ_PLT image without a palette")
    data = memoryview(image.body)[data_at:]
    if size > len(data):
        raise CodecError("lz_plt", image.at + 1, f"data_size {size} runs past the message")
    _expect_size(image, data, _BE_SIZE, 12)
    return decode_lz(data[:size], out, out_stride=out_stride, palette=palette.entries)


def _glz_window(image: SpiceImage, state: ImageState) -> GlzWindow:
    if state.glz is None:
        raise CodecError(_codec_name(image.type), image.at,
                         "a GLZ image, but this client announced no GLZ window")
    return state.glz


def _quic(image: SpiceImage, state: ImageState, out: Buffer | None,
          out_stride: int | None) -> DecodedImage:
    data = _data(image, 4, 0)
    _expect_size(image, data, _LE_SIZE, 12)
    return decode_quic(data, out, out_stride=out_stride)


def _lz_rgb(image: SpiceImage, state: ImageState, out: Buffer | None,
            out_stride: int | None) -> DecodedImage:
    data = _data(image, 4, 0)
    _expect_size(image, data, _BE_SIZE, 12)
    return decode_lz(data, out, out_stride=out_stride)


def _glz_rgb(image: SpiceImage, state: ImageState, out: Buffer | None,
             out_stride: int | None) -> DecodedImage:
    data = _data(image, 4, 0)
    window = _glz_window(image, state)
    try:
        _expect_size(image, data, _BE_SIZE, 9)
    except CodecError:
        # still decode it, into a buffer of its own: later images may copy from it
        decode_glz(data, window, timeout=state.glz_timeout)
        raise
    return decode_glz(data, window, out, out_stride=out_stride, timeout=state.glz_timeout)


def _zlib_glz_rgb(image: SpiceImage, state: ImageState, out: Buffer | None,
                  out_stride: int | None) -> DecodedImage:
    data = _data(image, _ZLIB_GLZ_HEAD.size, 4)
    (glz_size,) = _U32.unpack_from(image.payload, 0)
    return decode_zlib_glz(data, glz_size, _glz_window(image, state), out,
                           out_stride=out_stride, timeout=state.glz_timeout)


def _jpeg(image: SpiceImage, state: ImageState, out: Buffer | None,
          out_stride: int | None) -> DecodedImage:
    return decode_jpeg(_data(image, 4, 0), out, out_stride=out_stride, width=image.width,
                       height=image.height)


def _jpeg_alpha(image: SpiceImage, state: ImageState, out: Buffer | None,
                out_stride: int | None) -> DecodedImage:
    return decode_jpeg_alpha(image.payload, out, out_stride=out_stride, width=image.width,
                             height=image.height)


def _lz4(image: SpiceImage, state: ImageState, out: Buffer | None,
         out_stride: int | None) -> DecodedImage:
    return decode_lz4(_data(image, 4, 0), image.width, image.height, out,
                      out_stride=out_stride)


_Decoder = Callable[[SpiceImage, ImageState, Buffer | None, int | None], DecodedImage]
_DECODERS: dict[int, _Decoder] = {
    ImageType.BITMAP: _bitmap,
    ImageType.QUIC: _quic,
    ImageType.LZ_PLT: _lz_plt,
    ImageType.LZ_RGB: _lz_rgb,
    ImageType.GLZ_RGB: _glz_rgb,
    ImageType.ZLIB_GLZ_RGB: _zlib_glz_rgb,
    ImageType.JPEG: _jpeg,
    ImageType.JPEG_ALPHA: _jpeg_alpha,
    ImageType.LZ4: _lz4,
}


def _has_alpha(image_type: int, img: DecodedImage) -> bool:
    """Whether the X bytes hold alpha (HIGH_BITS_SET applies to xRGB images only)."""
    return (image_type == ImageType.JPEG_ALPHA
            or img.lz_type in (LzType.RGBA, LzType.XXXA, LzType.A8)
            or img.quic_type is QuicType.RGBA
            or img.bitmap_format in (BitmapFormat.RGBA, BitmapFormat.BIT8_A))


def _set_high_bits(img: DecodedImage) -> None:
    """HIGH_BITS_SET: OR 0xff000000 into every pixel, i.e. X = 0xff."""
    view = memoryview(img.pixels).cast("B")
    row = img.width * 4
    ones = b"\xff" * img.width
    for r in range(img.height):
        start = r * img.stride
        view[start + 3:start + row:4] = ones


def decode_image(image: SpiceImage, state: ImageState, out: Buffer | None = None, *,
                 out_stride: int | None = None) -> DecodedImage:
    """Decode ``image`` into ``out`` (or a new bytearray), rows top-down, B, G, R, X.

    A stream whose size differs from the descriptor's, or any bad data, is a CodecError
    naming the codec and the offset. The size is checked before decoding wherever the
    stream's header states it in the clear (all but ZLIB_GLZ, checked after inflating, and
    JPEG_ALPHA's alpha plane, checked by its decoder); other bad data may leave part of the
    image in ``out``.
    """
    decoder = _DECODERS.get(image.type)
    if decoder is None:
        if image.type in _NOT_PIXELS:
            raise InvalidArgument(f"a {ImageType(image.type).name} image carries no pixels: the"
                                  " display resolves it from its pixmap cache or surfaces")
        raise CodecError("image", image.at, f"unknown image type {image.type}")
    img = decoder(image, state, out, out_stride)
    if (img.width, img.height) != (image.width, image.height):
        raise CodecError(_codec_name(image.type), image.at,
                         f"the stream holds a {img.width}x{img.height} image, the descriptor"
                         f" says {image.width}x{image.height}")
    if image.flags & HIGH_BITS_SET and not _has_alpha(image.type, img):
        _set_high_bits(img)
    return img
