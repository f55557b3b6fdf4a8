"""LZ4 images (SPICE_IMAGE_TYPE_LZ4) as spice-server 0.15 sends them, decoded in C by liblz4.

The data (what follows the image's u32 ``data_size``; research display.md §1.4 and §8):
u8 top_down, u8 SpiceBitmapFmt (16BIT x555 = 6, 24BIT = 7, 32BIT = 8, RGBA = 9), then blocks
of [u32 big-endian compressed size][LZ4 block]. The server compresses with
``LZ4_compress_fast_continue``, so a block may refer back into the bytes the earlier blocks
decoded; the real server (QEMU 7.2, spice-server 0.15.1) sends one block per image in format
32BIT. The decoded rows are packed at ``width * bytes per pixel`` and must add up to exactly
the image, whose size comes from the image descriptor (the LZ4 data does not carry it).

Example::

    img = decode_lz4(data, 32, 10)      # a 32x10 image, B,G,R,X rows top-down
    img.bitmap_format                   # BitmapFormat.BIT32
"""

from __future__ import annotations

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import (
    BitmapFormat,
    Buffer,
    DecodedImage,
    _check_out,
    _codecs,
    _stride,
)

__all__ = ["decode_lz4"]


def decode_lz4(
    data: Buffer,
    width: int,
    height: int,
    out: Buffer | None = None,
    *,
    out_stride: int | None = None,
) -> DecodedImage:
    """Decode one LZ4 image of ``width`` x ``height`` (the descriptor's) into B, G, R, X.

    32BIT keeps the X byte as sent and RGBA its alpha; 16BIT and 24BIT get X = 0. Bottom-up
    images (top_down 0) are turned top-down.
    """
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{name} must be an int >= 0, not {value!r}")
    stride = _stride(out_stride)
    _check_out(out)
    try:
        fmt, top_down, pixels = _codecs.lz4_decode(data, width, height, out, stride)
    except _codecs.Error as exc:
        codec, offset, reason = exc.args
        raise CodecError(codec, offset, reason) from None
    return DecodedImage(
        width,
        height,
        stride or width * 4,
        pixels,
        top_down=bool(top_down),
        bitmap_format=BitmapFormat(fmt),
    )
