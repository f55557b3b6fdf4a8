"""GLZ_RGB and ZLIB_GLZ_RGB images, decoded in C against the session's shared GLZ window.

A GLZ stream (research display.md §1.4, §1.5, §8) is LZ whose references may also point
into *earlier images*: "the image ``distance`` ids back, ``offset`` pixels after its start".
The server numbers the images of one GLZ dictionary from 0, one id per image, and shares
the dictionary between every display channel of the session, so the client keeps every
decoded GLZ image, drawn or not, in one :class:`GlzWindow` per session and dictionary id.
Two channels deliver their images in any interleaving: a decode that references an image
which has not arrived yet waits for it (up to ``timeout``), so decode each channel on its own
thread. After each image, the images no later image can reference (older than the newest
in-order image's ``win_head_dist``) are released.

ZLIB_GLZ_RGB is the same GLZ stream deflated with zlib (the descriptor carries its inflated
size). It is inflated with Python's :mod:`zlib` (``decompressobj`` with ``max_length``): the
same C inflate, it releases the GIL, and the C extension and its sanitizer build keep no
link dependency; the output grows only as data really inflates, never to a size the server
merely claims.

Example::

    window = GlzWindow(8 * 1024 * 1024)          # the window announced in DISPLAY_INIT
    img = decode_glz(payload, window)             # B,G,R,X rows top-down
    img = decode_zlib_glz(payload, glz_size, window, out=surface_view, out_stride=stride)
"""

from __future__ import annotations

import math
import zlib
from types import TracebackType

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import (
    Buffer,
    DecodedImage,
    LzType,
    Palette,
    _check_out,
    _codecs,
    _palette_bytes,
    _stride,
)

__all__ = ["GLZ_MAX_WINDOW", "GlzWindow", "decode_glz", "decode_zlib_glz"]

#: spice-server refuses a larger window (``LZ_MAX_WINDOW_SIZE``, pixels): DISPLAY_INIT fails
GLZ_MAX_WINDOW = 1 << 25
#: how long a decode waits, by default, for an image another channel has not delivered yet
DEFAULT_WAIT_TIMEOUT = 5.0
_GLZ_HEADER_SIZE = 33
#: GLZ bytes per pixel at most: RGBA's two passes of the costliest legal references (7-byte
#: references of 1 pixel, then of 3 alpha bytes) stay under this
_GLZ_MAX_BYTES_PER_PIXEL = 10


def _timeout(value: float | None, name: str) -> float:
    if value is None:
        return -1.0  # the window's default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0:
        raise InvalidArgument(f"{name} must be >= 0, not {value!r}")
    return float(value)


class GlzWindow:
    """The GLZ images of one session and dictionary id, shared by its display channels.

    ``max_pixels`` is the window the client announced in DISPLAY_INIT. Thread-safe: decodes
    on several threads use one window, and wait for each other's images without the GIL.
    The images held never cost more than three windows of pixels, whatever the server
    sends (out-of-order images beyond the window are kept; past that the oldest go first).

    Example::

        with GlzWindow(4 * 1024 * 1024, wait_timeout=2.0) as window:
            decode_glz(stream, window)
            window.images, window.pixels      # what it holds
    """

    __slots__ = ("_core",)

    def __init__(self, max_pixels: int, *, wait_timeout: float = DEFAULT_WAIT_TIMEOUT) -> None:
        if (
            isinstance(max_pixels, bool)
            or not isinstance(max_pixels, int)
            or not 1 <= max_pixels <= GLZ_MAX_WINDOW
        ):
            raise InvalidArgument(
                f"max_pixels must be an int 1..{GLZ_MAX_WINDOW} (the server's limit),"
                f" not {max_pixels!r}"
            )
        if wait_timeout is None:
            raise InvalidArgument("wait_timeout must be a number of seconds, not None")
        wait = _timeout(wait_timeout, "wait_timeout")
        self._core = _codecs.GlzWindow(max_pixels, wait_timeout=wait)

    @property
    def max_pixels(self) -> int:
        return self._core.max_pixels

    @property
    def wait_timeout(self) -> float:
        return self._core.wait_timeout

    @property
    def images(self) -> int:
        """How many decoded images the window holds."""
        return self._core.images

    @property
    def pixels(self) -> int:
        """The pixels of the images held (a leak check: 0 after clear() or close())."""
        return self._core.pixels

    @property
    def waiting(self) -> int:
        """Decodes waiting for an image that has not arrived."""
        return self._core.waiting

    @property
    def closed(self) -> bool:
        return self._core.closed

    def ids(self) -> tuple[int, ...]:
        """The ids of the decoded images held, ascending."""
        return self._core.ids()

    def clear(self) -> None:
        """Drop every image (a display RESET): ids start again from 0; waiters fail."""
        self._core.clear()

    def close(self) -> None:
        """Drop every image; waiting and later decodes fail with CodecError 'window closed'."""
        self._core.close()

    def __enter__(self) -> GlzWindow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.images} images, {self.pixels} pixels"
        return f"GlzWindow(max_pixels={self.max_pixels}, {state})"


def _decode(
    codec: str,
    data: Buffer,
    *,
    window: GlzWindow,
    out: Buffer | None,
    out_stride: int | None,
    timeout: float | None,
    palette: Palette | None,
) -> DecodedImage:
    if not isinstance(window, GlzWindow):
        raise InvalidArgument(f"window must be a GlzWindow, not {type(window).__name__}")
    stride = _stride(out_stride)
    wait = _timeout(timeout, "timeout")
    pal = _palette_bytes(palette)
    _check_out(out)
    try:
        lz_type, width, height, top_down, _image_id, pixels = _codecs.glz_decode(
            data, window._core, out, stride, wait, pal
        )
    except _codecs.Error as exc:
        _, offset, reason = exc.args
        if codec != "glz":
            reason = f"{reason} (at byte {offset} of the inflated GLZ stream)"
            offset = 0
        raise CodecError(codec, offset, reason) from None
    return DecodedImage(
        width, height, stride or width * 4, pixels, LzType(lz_type), bool(top_down)
    )


def decode_glz(
    data: Buffer,
    window: GlzWindow,
    out: Buffer | None = None,
    *,
    out_stride: int | None = None,
    timeout: float | None = None,
    palette: Palette | None = None,
) -> DecodedImage:
    """Decode one GLZ stream (a GLZ_RGB payload) into B, G, R, X rows, top-down.

    The image is kept in ``window`` even when ``out`` cannot take it (a CodecError then),
    because later images may reference it. A reference to an image that has not arrived
    waits up to ``timeout`` seconds (None: the window's ``wait_timeout``; 0: no wait); one
    to an image already released, or to one that failed to decode, fails at once. A failed
    image's id is recorded as failed. ``palette`` only serves the palette types, which the
    format defines but GLZ_RGB cannot carry a palette for (the server never sends them).
    """
    return _decode("glz", data, window=window, out=out, out_stride=out_stride, timeout=timeout,
                   palette=palette)


def _inflate(data: Buffer, glz_size: int, window: GlzWindow) -> bytes:
    codec = "zlib-glz"
    limit = _GLZ_HEADER_SIZE + _GLZ_MAX_BYTES_PER_PIXEL * window.max_pixels
    if glz_size > limit:
        raise CodecError(
            codec, 0, f"glz_size {glz_size} is more than any GLZ image of a"
            f" {window.max_pixels}-pixel window can take ({limit} bytes)"
        )
    view = memoryview(data)
    inflater = zlib.decompressobj()
    try:
        # max_length + 1: a stream that inflates past glz_size shows as one byte too many
        glz = inflater.decompress(view, glz_size + 1)
    except zlib.error as exc:
        raise CodecError(codec, 0, f"bad deflate data: {exc}") from None
    if len(glz) > glz_size:
        raise CodecError(codec, view.nbytes - len(inflater.unconsumed_tail),
                         f"inflates past glz_size {glz_size}")
    if not inflater.eof:
        raise CodecError(codec, view.nbytes, f"the deflate stream ends early, after"
                         f" {len(glz)} of {glz_size} bytes")
    if inflater.unused_data:
        at = view.nbytes - len(inflater.unused_data)
        raise CodecError(codec, at, f"{len(inflater.unused_data)} bytes after the deflate"
                         " stream")
    if len(glz) != glz_size:
        raise CodecError(codec, view.nbytes, f"inflates to {len(glz)} bytes, not glz_size"
                         f" {glz_size}")
    return glz


def decode_zlib_glz(
    data: Buffer,
    glz_size: int,
    window: GlzWindow,
    out: Buffer | None = None,
    *,
    out_stride: int | None = None,
    timeout: float | None = None,
    palette: Palette | None = None,
) -> DecodedImage:
    """Inflate a ZLIB_GLZ_RGB payload to its ``glz_size``-byte GLZ stream, then decode it.

    Errors in the deflate data name byte offsets of ``data``; errors in the GLZ stream name
    the offset inside the inflated stream in their reason. A ``glz_size`` larger than any
    GLZ image of the window could be is refused before anything is inflated.
    """
    if isinstance(glz_size, bool) or not isinstance(glz_size, int) or glz_size < 0:
        raise InvalidArgument(f"glz_size must be an int >= 0, not {glz_size!r}")
    if not isinstance(window, GlzWindow):
        raise InvalidArgument(f"window must be a GlzWindow, not {type(window).__name__}")
    return _decode("zlib-glz", _inflate(data, glz_size, window), window=window, out=out,
                   out_stride=out_stride, timeout=timeout, palette=palette)
