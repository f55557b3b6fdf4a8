"""1-bit masks, raster text and solid strokes: the draws that start from bits, not images.

Facts (spice.proto ``QMask``, ``RasterGlyphA1/A4/A8``, ``String``; spice-common
``canvas_base.c`` ``canvas_get_bitmap_mask`` and ``canvas_put_glyph_bits``, ``sw_canvas.c``
``canvas_draw_text``):

* A QMask bitmap is a BITMAP of format 1BIT_LE (pixel 0 in bit 0) or 1BIT_BE (pixel 0 in
  bit 7), ``stride`` bytes a row, bottom-up unless TOP_DOWN.
* A glyph's ``data`` holds its rows bottom-up (spice-common reads the last row first; the
  string's RASTER_TOP_DOWN flag, which it ignores, turns that off here), each row padded to
  a byte: A1 bit 7 first, A4 the high nibble first with coverage ``nibble << 4`` (so at most
  0xf0, as spice-common has it), A8 one byte a pixel. Where glyphs overlap the larger
  coverage wins.
* Text: a non-empty ``back_area`` is filled with the back brush (a plain put), then the fore
  brush is laid OVER the glyphs' coverage; a 32_xRGB surface's X bytes end 0.

Example::

    bits = mask_from_bitmap(1, data, width, height, stride, top_down=True)
    text(surface, bbox, None, glyphs=[Glyph(10, 20, 0, -7, 8, 8, data)], bpp=1,
         fore=SolidBrush(0xFFFFFF))
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.display.raster import (
    OVER_CLEAR_X,
    OVER_SRC_OPAQUE,
    Bools,
    Brush,
    Target,
    brush_words,
    fill,
    over,
    target,
    write,
)
from atp_notebook.spice.display.rop import RopDescriptor, apply_rop2, ropd_table
from atp_notebook.spice.display.surfaces import Box, RectLike, Surface, SurfaceFormat

__all__ = ["Glyph", "glyph_bpp", "glyph_coverage", "mask_from_bitmap", "stroke", "text"]

_BIT1_LE = 1
_BIT1_BE = 2
#: a string's glyphs cover at most this many pixels in all (a 16384 x 16384 surface)
MAX_TEXT_PIXELS = 1 << 28


def mask_from_bitmap(fmt: int, data: bytes | bytearray | memoryview, width: int, height: int,
                     stride: int, *, top_down: bool) -> Bools:
    """A QMask's 1-bit BITMAP as a (height, width) bool array, rows top-down."""
    if fmt not in (_BIT1_LE, _BIT1_BE):
        raise RemoteProtocolError(f"display: a mask bitmap of format {fmt}, not 1BIT_LE/BE")
    row = (width + 7) // 8
    if width <= 0 or height <= 0 or stride < row or len(data) < stride * (height - 1) + row:
        raise RemoteProtocolError(f"display: a {width}x{height} mask with stride {stride} "
                                  f"does not fit its {len(data)} bytes")
    raw = np.frombuffer(data, dtype=np.uint8, count=stride * (height - 1) + row)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(height, row), strides=(stride, 1))
    bits = np.unpackbits(rows, axis=1, bitorder="little" if fmt == _BIT1_LE else "big")
    out: Bools = bits[:, :width].astype(np.bool_)
    return out if top_down else out[::-1]


class _PointLike(Protocol):
    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...


class RasterGlyphLike(Protocol):
    """What the message parser gives for one glyph."""

    @property
    def render_pos(self) -> _PointLike: ...
    @property
    def glyph_origin(self) -> _PointLike: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True)
class Glyph:
    """One raster glyph: drawn with its top-left at render + origin, ``data`` packed as the
    string's bpp says."""

    render_x: int
    render_y: int
    origin_x: int
    origin_y: int
    width: int
    height: int
    data: bytes

    @classmethod
    def of(cls, glyph: RasterGlyphLike) -> Glyph:
        """From a parsed glyph (``spice.proto.display_vector.RasterGlyph``)."""
        return cls(glyph.render_pos.x, glyph.render_pos.y, glyph.glyph_origin.x,
                   glyph.glyph_origin.y, glyph.width, glyph.height, glyph.data)

    @property
    def box(self) -> Box:
        left = self.render_x + self.origin_x
        top = self.render_y + self.origin_y
        return Box(left, top, left + self.width, top + self.height)


def _glyph_rows(glyph: Glyph, bpp: int) -> npt.NDArray[np.uint8]:
    """A glyph's coverage (height, width), rows as stored."""
    w, h = glyph.width, glyph.height
    stride = (w * bpp + 7) // 8
    if len(glyph.data) < stride * h:
        raise RemoteProtocolError(f"display: a {w}x{h} A{bpp} glyph needs {stride * h} bytes, "
                                  f"has {len(glyph.data)}")
    raw = np.frombuffer(glyph.data, dtype=np.uint8, count=stride * h).reshape(h, stride)
    if bpp == 1:
        cov: npt.NDArray[np.uint8] = np.unpackbits(raw, axis=1)[:, :w] * np.uint8(255)
    elif bpp == 4:
        nib = np.empty((h, stride * 2), dtype=np.uint8)
        nib[:, 0::2] = raw & 0xF0
        nib[:, 1::2] = raw << 4
        cov = nib[:, :w]
    else:
        cov = raw
    return cov


def glyph_coverage(glyphs: Sequence[Glyph], bpp: int, *, top_down: bool = False,
                   window: Box | None = None) -> tuple[Box, npt.NDArray[np.uint8]]:
    """The string's coverage (max where glyphs overlap) over the union of its glyph boxes,
    or only over its part inside ``window``: memory stays bounded by what can be drawn,
    however far apart a hostile server places the glyphs."""
    if bpp not in (1, 4, 8):
        raise RemoteProtocolError(f"display: raster glyphs of {bpp} bits (1, 4 or 8 only)")
    for glyph in glyphs:
        need = (glyph.width * bpp + 7) // 8 * glyph.height
        if glyph.width < 0 or glyph.height < 0 or len(glyph.data) < need:
            raise RemoteProtocolError(f"display: a {glyph.width}x{glyph.height} A{bpp} glyph "
                                      f"needs {need} bytes, has {len(glyph.data)}")
    boxes = [g.box for g in glyphs]
    if not boxes:
        return Box(0, 0, 0, 0), np.zeros((0, 0), dtype=np.uint8)
    bounds = boxes[0]
    for b in boxes[1:]:
        bounds = bounds.union(b)
    if window is not None:
        bounds = bounds.intersect(window)
    if bounds.empty:
        return Box(0, 0, 0, 0), np.zeros((0, 0), dtype=np.uint8)
    if bounds.width * bounds.height > MAX_TEXT_PIXELS:
        raise RemoteProtocolError(f"display: a string's glyphs span {bounds.width}x"
                                  f"{bounds.height} pixels")
    cov = np.zeros((bounds.height, bounds.width), dtype=np.uint8)
    for glyph, b in zip(glyphs, boxes, strict=True):
        part = b.intersect(bounds)
        if part.empty:
            continue
        rows = _glyph_rows(glyph, bpp)
        if not top_down:
            rows = rows[::-1]
        area = cov[part.top - bounds.top:part.bottom - bounds.top,
                   part.left - bounds.left:part.right - bounds.left]
        np.maximum(area, rows[part.top - b.top:part.bottom - b.top,
                              part.left - b.left:part.right - b.left], out=area)
    return bounds, cov


def text(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None, *,
         glyphs: Sequence[Glyph], bpp: int, fore: Brush, back: Brush = None,
         back_area: RectLike | None = None, top_down: bool = False) -> None:
    """DRAW_TEXT with raster glyphs (vector glyphs are not drawn, as in spice-common)."""
    if back_area is not None and not Box.of(back_area).empty:
        outer = Box.of(bbox)
        area = Box.of(back_area).intersect(outer)
        clips = [Box.of(c).intersect(area) for c in clip] if clip is not None else [area]
        fill(surface, outer, clips, brush=back, rop_descriptor=RopDescriptor.OP_PUT)
    t = target(surface, bbox, clip)
    box, cov = glyph_coverage(glyphs, bpp, top_down=top_down,
                              window=t.box if t is not None else Box(0, 0, 0, 0))
    if t is None or box.empty:
        return
    where = None
    if t.where is not None:
        where = t.where[box.top - t.box.top:box.bottom - t.box.top,
                        box.left - t.box.left:box.right - t.box.left]
    dest = surface.words[box.top:box.bottom, box.left:box.right]
    flags = OVER_SRC_OPAQUE  # pixman's brushes are opaque
    if surface.format is SurfaceFormat.XRGB32:
        flags |= OVER_CLEAR_X
    out = over(brush_words(fore, box), cov, dest, flags=flags)
    write(surface, Target(box, where, (box,)), out)


def stroke(surface: Surface, clip: Sequence[RectLike] | None, *,
           points: Sequence[tuple[int, int]], brush: Brush, rop_descriptor: int) -> None:
    """DRAW_STROKE simplified: one-pixel solid polyline through ``points`` (integer pixel
    coordinates, the path's fixed-point values already rounded), each pixel once even where
    segments cross; line styles and widths are not drawn."""
    if len(points) < 1:
        return
    xs: list[npt.NDArray[np.int64]] = []
    ys: list[npt.NDArray[np.int64]] = []
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    if np.abs(pts).max() > 1 << 20:
        raise RemoteProtocolError("display: a stroke point far outside any surface")
    for (x0, y0), (x1, y1) in itertools.pairwise(pts.tolist()):
        k = max(abs(x1 - x0), abs(y1 - y0))
        if k == 0:
            continue
        step = np.arange(k + 1, dtype=np.int64)
        # the nearest pixel to the exact line, halves rounded up: floor((2 * d * i + k) / 2k)
        xs.append(x0 + (2 * (x1 - x0) * step + k) // (2 * k))
        ys.append(y0 + (2 * (y1 - y0) * step + k) // (2 * k))
    if not xs:
        xs.append(pts[:, 0])
        ys.append(pts[:, 1])
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    inside = (x >= 0) & (x < surface.width) & (y >= 0) & (y < surface.height)
    x, y = x[inside], y[inside]
    if not x.size:
        return
    # the drawn pixels' box: never larger than the surface, however long the segments
    left, top = int(x.min()), int(y.min())
    box = Box(left, top, int(x.max()) + 1, int(y.max()) + 1)
    on = np.zeros((box.height, box.width), dtype=np.bool_)
    on[y - top, x - left] = True
    t = target(surface, box, clip)
    if t is None:
        return
    sel = on[t.box.top - top:t.box.bottom - top, t.box.left - left:t.box.right - left]
    where = sel if t.where is None else sel & t.where
    if not where.any():
        return
    table = ropd_table(rop_descriptor, source=RopDescriptor.INVERS_BRUSH)
    dest = surface.words[t.box.top:t.box.bottom, t.box.left:t.box.right]
    write(surface, Target(t.box, where, (t.box,)),
           apply_rop2(table, brush_words(brush, t.box), dest))


def glyph_bpp(flags: int) -> int:
    """The glyph depth a String's flags name (RASTER_A1 1, A4 2, A8 4)."""
    for bit, bpp in ((1, 1), (2, 4), (4, 8)):
        if flags & bit:
            return bpp
    raise InvalidArgument(f"string flags {flags:#x} name no raster depth")
