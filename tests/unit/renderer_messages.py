"""Test-only display messages for the renderer: images with known pixels (raw 32-bit
BITMAPs, LZ RGB32 streams of literals, GLZ streams from the test encoder) and draw bodies
laid out by :class:`tests.unit.display_messages.Body`, parsed through DisplayProtocol as
the live channel parses them.

Example::

    r = renderer_with(8, 8)
    r.apply(draw_copy(bitmap32(1, words), box=(0, 0, 2, 3)))
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType, DisplayMsg, SurfaceFlags
from atp_notebook.spice.proto.display import DisplayProtocol, SurfaceCreated
from atp_notebook.spice.proto.display_wire import Ropd
from tests.unit.codec_streams import encode_literals, lz_header
from tests.unit.display_messages import Body, Quad, image_bytes

Words = npt.NDArray[Any]  # uint32 words; numpy's operators widen the static type
MINI = struct.Struct("<HI")  # mini header: type, size
PUT = int(Ropd.OP_PUT)
BITMAP, LZ_RGB, GLZ_RGB, FROM_CACHE, SURFACE, JPEG, FROM_CACHE_LOSSLESS = (
    0, 101, 102, 103, 104, 105, 106)
CACHE_ME, CACHE_REPLACE_ME = 1, 4


def parse(msg_type: int, body: bytes) -> ChannelEvent:
    """One message body through the display channel's parser."""
    (event,) = DisplayProtocol(ChannelType.DISPLAY).receive_data(
        MINI.pack(msg_type, len(body)) + body)
    return event


def words(rows: Sequence[Sequence[int]]) -> Words:
    return np.array(rows, dtype=np.uint32)


def bitmap32(image_id: int, pixels: Words, flags: int = 0) -> bytes:
    """A top-down 32BIT BITMAP image (X bytes kept as sent)."""
    h, w = pixels.shape
    union = struct.pack("<BBIII", 8, 4, w, h, w * 4) + struct.pack("<I", 0)
    return image_bytes(image_id, BITMAP, w, h, union + pixels.astype("<u4").tobytes(), flags)


def lz32(image_id: int, pixels: Words, flags: int = 0, *, size: tuple[int, int] | None = None,
         cut: int = 0) -> bytes:
    """An LZ_RGB image of literals (decodes to X = 0); ``size`` overrides the descriptor's,
    ``cut`` drops that many bytes from the stream's end."""
    h, w = pixels.shape
    units = [struct.pack("<I", int(p))[:3] for p in pixels.reshape(-1)]
    stream = lz_header(8, w, h, w * 4, True) + encode_literals(units)
    stream = stream[:len(stream) - cut]
    dw, dh = size or (w, h)
    return image_bytes(image_id, LZ_RGB, dw, dh, struct.pack("<I", len(stream)) + stream, flags)


def glz_image(image_id: int, stream: bytes, width: int, height: int, flags: int = 0) -> bytes:
    return image_bytes(image_id, GLZ_RGB, width, height,
                       struct.pack("<I", len(stream)) + stream, flags)


def jpeg_image(image_id: int, data: bytes, width: int, height: int, flags: int = 0) -> bytes:
    return image_bytes(image_id, JPEG, width, height, struct.pack("<I", len(data)) + data, flags)


def cached(image_id: int, width: int, height: int, *, lossless: bool = False) -> bytes:
    return image_bytes(image_id, FROM_CACHE_LOSSLESS if lossless else FROM_CACHE, width,
                       height, b"")


def surface_image(surface_id: int, width: int, height: int) -> bytes:
    return image_bytes(0, SURFACE, width, height, struct.pack("<I", surface_id))


def area(width: int, height: int) -> Quad:
    return (0, 0, height, width)


def draw_copy(image: bytes | None, box: Quad, src: Quad | None = None, *, surface: int = 0,
              clip: Sequence[Quad] = (), rop: int = PUT, mask: bytes | None = None,
              mask_pos: tuple[int, int] = (0, 0), mask_flags: int = 0) -> ChannelEvent:
    """DRAW_COPY; ``src`` defaults to the box's size at (0, 0)."""
    top, left, bottom, right = box
    src = src or (0, 0, bottom - top, right - left)
    body = (Body().base(surface, box, clip).ptr(image).rect(*src).u16(rop).u8(1)
            .mask(mask_flags, mask_pos, mask).finish())
    return parse(DisplayMsg.DRAW_COPY, body)


def renderer_with(width: int, height: int, *, fill: int = 0, **kw: object) -> DisplayRenderer:
    """A renderer holding a primary surface 0 of ``width`` x ``height`` of word ``fill``."""
    r = DisplayRenderer(**kw)  # type: ignore[arg-type]
    r.apply(SurfaceCreated(0, width, height, 32, SurfaceFlags.PRIMARY))
    assert r.primary is not None
    r.primary.words[...] = fill
    r.primary.take_damage()
    return r


def screen(r: DisplayRenderer, surface_id: int = 0) -> Words:
    """A copy of a surface's words (0xXXRRGGBB)."""
    return r.surfaces.get(surface_id).words.copy()
