"""DRAW_STROKE (a path with line attributes and a brush) and DRAW_TEXT (a string of raster
glyphs), spice.proto ``Stroke``/``Text`` with ``Path``, ``LineAttr`` and ``String``.

Both point at their variable part (``Path *``, ``String *``, offsets into the body);
segments and glyphs follow one another inline there. Coordinates of path points and line
styles are fixed28_4 (1/16 pixel), kept as the raw ints. Counts are capped before anything
is allocated: MAX_PATH_SEGMENTS, MAX_PATH_POINTS, MAX_GLYPHS.

Example::

    text = parse_draw_text(body)
    text.string.bpp, [g.width for g in text.string.glyphs]     # 1, [8, 8, 7]
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntFlag

from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import DisplayMsg
from atp_notebook.spice.proto.display_wire import (
    BodyReader,
    Brush,
    Point,
    Rect,
    read_brush,
    read_display_base,
    read_rect,
)

POINT_FIX = struct.Struct("<ii")  # PointFix: fixed28_4 x, y
FIXED = struct.Struct("<i")
GLYPH_HEAD = struct.Struct("<iiiiHH")  # render_pos, glyph_origin, width, height
SEGMENT_HEAD = struct.Struct("<BI")  # flags, count

# Guards against hostile counts, far above what a driver draws: Xorg's qxl driver strokes
# lines of a few segments, and a text run is one screen line of glyphs
MAX_PATH_SEGMENTS = 65_536
MAX_PATH_POINTS = 1 << 20  # over all segments of one path
MAX_GLYPHS = 8192


class PathFlags(IntFlag):
    """enums.h SpicePathFlags (flags8 path_flags)."""

    BEGIN = 1 << 0
    END = 1 << 1
    CLOSE = 1 << 3
    BEZIER = 1 << 4


class LineFlags(IntFlag):
    """enums.h SpiceLineFlags (flags8; the values of winddi.h's LA_*)."""

    START_WITH_GAP = 1 << 2
    STYLED = 1 << 3


class StringFlags(IntFlag):
    """enums.h SpiceStringFlags: one of the RASTER_A1/A4/A8 depths, and row order."""

    RASTER_A1 = 1 << 0
    RASTER_A4 = 1 << 1
    RASTER_A8 = 1 << 2
    RASTER_TOP_DOWN = 1 << 3


_BPP = {StringFlags.RASTER_A1: 1, StringFlags.RASTER_A4: 4, StringFlags.RASTER_A8: 8}


@dataclass(frozen=True, slots=True)
class PathSegment:
    flags: PathFlags
    points: tuple[Point, ...]  # fixed28_4


@dataclass(frozen=True, slots=True)
class LineAttr:
    """``style`` (fixed28_4 dash lengths) is present with STYLED only."""

    flags: LineFlags
    style: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RasterGlyph:
    """One glyph's coverage bitmap: rows of ``(width * bpp + 7) // 8`` bytes."""

    render_pos: Point
    glyph_origin: Point
    width: int
    height: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class GlyphString:
    flags: StringFlags
    bpp: int  # 1, 4 or 8: the RASTER_A* depth
    glyphs: tuple[RasterGlyph, ...]


@dataclass(frozen=True, slots=True)
class DrawStroke(ChannelEvent):
    """DRAW_STROKE: ``path`` stroked with ``attr`` in ``brush`` by ``fore_mode`` (a ropd)."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    path: tuple[PathSegment, ...]
    attr: LineAttr
    brush: Brush
    fore_mode: int
    back_mode: int


@dataclass(frozen=True, slots=True)
class DrawText(ChannelEvent):
    """DRAW_TEXT: ``back_area`` filled with ``back_brush`` (by ``back_mode``), then the
    glyphs' coverage in ``fore_brush`` (by ``fore_mode``)."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    string: GlyphString
    back_area: Rect
    fore_brush: Brush
    back_brush: Brush
    fore_mode: int
    back_mode: int


def _required(reader: BodyReader, what: str) -> BodyReader:
    at = reader.offset
    target = reader.pointer(what)
    if target is None:
        raise reader.fail(f"{what} is NULL", at)
    return target


def read_path(reader: BodyReader) -> tuple[PathSegment, ...]:
    """spice.proto ``Path``: u32 num_segments, then each {u8 flags, u32 count, PointFix[]}."""
    count = reader.count("path segments", reader.u32("path segment count"),
                         MAX_PATH_SEGMENTS, SEGMENT_HEAD.size)
    segments = []
    points_left = MAX_PATH_POINTS
    for _ in range(count):
        flags, n = reader.take(SEGMENT_HEAD, "path segment")
        if n > points_left:
            raise reader.fail(f"path with more than {MAX_PATH_POINTS} points")
        points_left -= n
        reader.count("path points", n, MAX_PATH_POINTS, POINT_FIX.size)
        points = tuple(Point(*reader.take(POINT_FIX, "path point")) for _ in range(n))
        segments.append(PathSegment(PathFlags(flags & 0x1B), points))  # SPICE_PATH_FLAGS_MASK
    return tuple(segments)


def read_line_attr(reader: BodyReader) -> LineAttr:
    """spice.proto ``LineAttr``: u8 flags; with STYLED a u8 segment count and a pointer to
    that many fixed28_4 dash lengths."""
    flags = LineFlags(reader.u8("line flags") & 0xC)  # SPICE_LINE_FLAGS_MASK
    if not flags & LineFlags.STYLED:
        return LineAttr(flags)
    nseg = reader.u8("line style count")
    target = reader.pointer("line style")
    if target is None or nseg == 0:
        return LineAttr(flags)
    target.count("line style segments", nseg, 255, FIXED.size)
    return LineAttr(flags, tuple(target.take(FIXED, "line style")[0] for _ in range(nseg)))


def read_string(reader: BodyReader) -> GlyphString:
    """spice.proto ``String``: u16 length, u8 flags (exactly one RASTER_A* depth when there
    are glyphs), then the glyphs inline, each a header and its rows."""
    length = reader.u16("string length")
    at = reader.offset
    flags = StringFlags(reader.u8("string flags") & 0xF)  # SPICE_STRING_FLAGS_MASK
    depths = [bpp for flag, bpp in _BPP.items() if flags & flag]
    if length and len(depths) != 1:
        raise reader.fail(f"string flags {int(flags):#x} name no single glyph depth", at)
    bpp = depths[0] if depths else 0
    reader.count("glyphs", length, MAX_GLYPHS, GLYPH_HEAD.size)
    glyphs = []
    for _ in range(length):
        rx, ry, ox, oy, width, height = reader.take(GLYPH_HEAD, "glyph")
        data = reader.bytes_((width * bpp + 7) // 8 * height, "glyph bitmap")
        glyphs.append(RasterGlyph(Point(rx, ry), Point(ox, oy), width, height, data))
    return GlyphString(flags, bpp, tuple(glyphs))


def parse_draw_stroke(body: bytes) -> DrawStroke:
    r = BodyReader(body, "DRAW_STROKE")
    base = read_display_base(r)
    path = read_path(_required(r, "path"))
    attr = read_line_attr(r)
    brush = read_brush(r)
    return DrawStroke(*base, path, attr, brush, r.u16("fore mode"), r.u16("back mode"))


def parse_draw_text(body: bytes) -> DrawText:
    r = BodyReader(body, "DRAW_TEXT")
    base = read_display_base(r)
    string = read_string(_required(r, "string"))
    back_area = read_rect(r, "back area")
    fore = read_brush(r, "fore brush")
    back = read_brush(r, "back brush")
    return DrawText(*base, string, back_area, fore, back, r.u16("fore mode"),
                    r.u16("back mode"))


VECTOR_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    DisplayMsg.DRAW_STROKE: parse_draw_stroke,
    DisplayMsg.DRAW_TEXT: parse_draw_text,
}
