"""Spice image decoders in C (see ``atp_notebook.spice.codecs`` for the typed surface).

Output pixels are 32-bit, memory byte order B, G, R, X (a little-endian 0xXXRRGGBB word:
what a Spice 32_xRGB surface holds); X is 0, or the alpha for RGBA/XXXA/A8 sources and
the source byte for BITMAP 32BIT/RGBA. Rows are top-down whatever the source's order.
Buffers are taken through the buffer protocol without copying; ``out`` must be writable and
C-contiguous. The GIL is released while decoding.
"""

from typing import TypeAlias

_Buffer: TypeAlias = bytes | bytearray | memoryview

class Error(ValueError):
    """Bad compressed data; ``args`` are ``(codec, offset, reason)``."""

def lz_decode(
    data: _Buffer, out: _Buffer | None, out_stride: int, palette: _Buffer | None, /
) -> tuple[int, int, int, int, _Buffer]:
    """Decode one LZ stream; returns ``(type, width, height, top_down, out)``.

    ``out_stride`` 0 means ``width * 4``. ``palette`` holds little-endian u32 0x00RRGGBB
    entries (needed by the PLT types). ``out`` None allocates a zeroed bytearray.
    """

def bitmap_decode(
    fmt: int,
    data: _Buffer,
    width: int,
    height: int,
    stride: int,
    top_down: bool,
    palette: _Buffer | None,
    out: _Buffer | None,
    out_stride: int,
    /,
) -> _Buffer:
    """Convert one BITMAP (SpiceBitmapFmt ``fmt``) to B, G, R, X pixels; returns ``out``."""

def lz4_decode(
    data: _Buffer, width: int, height: int, out: _Buffer | None, out_stride: int, /
) -> tuple[int, int, _Buffer]:
    """Decode one LZ4 image (u8 top_down, u8 format, linked blocks); returns
    ``(format, top_down, out)``. ``out_stride`` 0 means ``width * 4``."""

def quic_decode(
    data: _Buffer, out: _Buffer | None, out_stride: int, /
) -> tuple[int, int, int, _Buffer]:
    """Decode one QUIC stream; returns ``(type, width, height, out)``.

    ``out_stride`` 0 means ``width * 4``. ``out`` None allocates a zeroed bytearray.
    """

class GlzWindow:
    """The GLZ images of one session (see ``atp_notebook.spice.codecs.glz.GlzWindow``)."""

    def __init__(self, max_pixels: int, *, wait_timeout: float = 5.0) -> None: ...
    @property
    def max_pixels(self) -> int: ...
    @property
    def wait_timeout(self) -> float: ...
    @property
    def images(self) -> int: ...
    @property
    def pixels(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def ids(self) -> tuple[int, ...]: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...

def glz_decode(
    data: _Buffer,
    window: GlzWindow,
    out: _Buffer | None,
    out_stride: int,
    timeout: float,
    palette: _Buffer | None,
    /,
) -> tuple[int, int, int, int, int, _Buffer]:
    """Decode one GLZ stream into ``window`` and ``out``.

    Returns ``(type, width, height, top_down, image_id, out)``. ``timeout`` < 0 means the
    window's ``wait_timeout``; 0 means no wait for images that have not arrived.
    """

def raster_over(
    src: _Buffer, dst: _Buffer, mask: _Buffer | None, out: _Buffer, count: int, alpha: int,
    flags: int, /,
) -> None:
    """OVER of ``count`` premultiplied B,G,R,A words of ``src`` (scaled by ``alpha`` and the
    8-bit ``mask``) onto ``dst``, into ``out`` (may be ``dst``); flags 1 = source opaque,
    2 = destination opaque, 4 = clear the result's X byte. Short buffers: ValueError."""

def raster_rop3(
    code: int, p: _Buffer, s: _Buffer, d: _Buffer, out: _Buffer, count: int, /
) -> None:
    """The rop3 ``code`` of ``count`` 32-bit words; a 4-byte ``p`` or ``s`` is one word
    repeated. Short buffers: ValueError."""
