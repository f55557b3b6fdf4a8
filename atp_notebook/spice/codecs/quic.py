"""QUIC images (SPICE_IMAGE_TYPE_QUIC), Spice's lossless adaptive codec, decoded in C.

The data (what follows the image's u32 ``data_size``; research display.md §1.4): 32-bit
little-endian words, read most significant bit first. Header words: magic ``0x43495551``
("QUIC"), version 0, :class:`QuicType`, width, height; then the pixels, predicted from their
neighbours and Golomb coded with an adaptive model, flat stretches as run lengths. Rows are
always top-down (the server encodes bottom-up bitmaps from their last row).

Output follows spice-common's ``canvas_get_quic`` + ``quic_decode``: RGB32 and RGB24 give
B, G, R, 0; RGB16 (x555) is widened to 8 bits per channel like LZ's RGB16; RGBA gives
B, G, R, A with A as coded (not inverted). GRAY, which the format defines but spice-server
never sends and the canvas refuses, is decoded to V, V, V, 0, a grey pixel on the 32_xRGB
surfaces everything else is drawn to.

Example::

    img = decode_quic(data)             # B,G,R,X rows top-down
    img.width, img.height, img.quic_type
"""

from __future__ import annotations

import enum

from atp_notebook.errors import CodecError
from atp_notebook.spice.codecs import Buffer, DecodedImage, _check_out, _codecs, _stride

__all__ = ["QuicType", "decode_quic"]


class QuicType(enum.IntEnum):
    """QuicImageType of a QUIC stream header."""

    GRAY = 1
    RGB16 = 2
    RGB24 = 3
    RGB32 = 4
    RGBA = 5


def decode_quic(
    data: Buffer, out: Buffer | None = None, *, out_stride: int | None = None
) -> DecodedImage:
    """Decode one QUIC stream (header included) into B, G, R, X pixels, rows top-down.

    The image's size comes from the stream; ``out`` (if given) must hold it at
    ``out_stride`` (default ``width * 4``) or the call raises CodecError, as for bad data.
    """
    stride = _stride(out_stride)
    _check_out(out)
    try:
        quic_type, width, height, pixels = _codecs.quic_decode(data, out, stride)
    except _codecs.Error as exc:
        codec, offset, reason = exc.args
        raise CodecError(codec, offset, reason) from None
    return DecodedImage(width, height, stride or width * 4, pixels, quic_type=QuicType(quic_type))
