"""The display channel's raster draw messages (spice.proto ``channel DisplayChannel``):
DRAW_FILL, DRAW_OPAQUE, DRAW_BLEND, DRAW_BLACKNESS, DRAW_WHITENESS, DRAW_INVERS, DRAW_ROP3,
DRAW_TRANSPARENT, DRAW_ALPHA_BLEND, DRAW_COMPOSITE and COPY_BITS (DRAW_COPY stays in
display.py; DRAW_STROKE and DRAW_TEXT are in display_vector.py).

Every draw starts with DisplayBase (surface id, box, clip rects); images are SpiceImage
views into the body for the codecs. QEMU's VGA path and the Linux qxl driver only send
DRAW_COPY (research/display.md §1.10); these come from Xorg's qxl driver and Windows
guests, so they are parsed exactly but kept as plain data for the renderer.

Example::

    fill = parse_draw_fill(body)
    fill.brush.color, fill.rop            # 0x00ff0000, Ropd.OP_PUT
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntFlag

from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import DisplayMsg
from atp_notebook.spice.proto.display_wire import (
    POINT16,
    BodyReader,
    Brush,
    Point,
    QMask,
    Rect,
    Ropd,
    ScaleMode,
    SpiceImage,
    read_brush,
    read_display_base,
    read_image,
    read_mask,
    read_point,
    read_rect,
    read_rop,
    read_scale_mode,
    require_image,
)

TRANSFORM = struct.Struct("<6I")  # spice.proto Transform: t00..t12


class AlphaFlags(IntFlag):
    """enums.h SpiceAlphaFlags (flags8 alpha_flags)."""

    DEST_HAS_ALPHA = 1 << 0
    SRC_SURFACE_HAS_ALPHA = 1 << 1


class CompositeFlags(IntFlag):
    """enums.h SpiceCompositeFlags (flags32): bits 0-7 are the pixman operator, 8-10 and
    11-13 the source and mask filters, 14-15 and 16-17 their repeat modes."""

    COMPONENT_ALPHA = 1 << 18
    HAS_MASK = 1 << 19
    HAS_SRC_TRANSFORM = 1 << 20
    HAS_MASK_TRANSFORM = 1 << 21
    SOURCE_OPAQUE = 1 << 22
    MASK_OPAQUE = 1 << 23
    DEST_OPAQUE = 1 << 24


COMPOSITE_FLAGS_MASK = 0x1FF_FFFF  # SPICE_COMPOSITE_FLAGS_MASK


@dataclass(frozen=True, slots=True)
class DrawFill(ChannelEvent):
    """DRAW_FILL: ``brush`` combined into ``box`` by ``rop`` through ``mask``."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    brush: Brush
    rop: Ropd
    mask: QMask | None


@dataclass(frozen=True, slots=True)
class DrawOpaque(ChannelEvent):
    """DRAW_OPAQUE: ``image`` (its ``src_area``) combined with ``brush`` into ``box``."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    image: SpiceImage | None
    src_area: Rect
    brush: Brush
    rop: Ropd
    scale_mode: ScaleMode
    mask: QMask | None


@dataclass(frozen=True, slots=True)
class DrawBlend(ChannelEvent):
    """DRAW_BLEND: DRAW_COPY's layout; ``rop`` combines source and destination."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    image: SpiceImage | None
    src_area: Rect
    rop: Ropd
    scale_mode: ScaleMode
    mask: QMask | None


@dataclass(frozen=True, slots=True)
class DrawBlackness(ChannelEvent):
    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    mask: QMask | None


@dataclass(frozen=True, slots=True)
class DrawWhiteness(ChannelEvent):
    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    mask: QMask | None


@dataclass(frozen=True, slots=True)
class DrawInvers(ChannelEvent):
    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    mask: QMask | None


@dataclass(frozen=True, slots=True)
class DrawRop3(ChannelEvent):
    """DRAW_ROP3: source, brush and destination through the ternary raster op ``rop3``."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    image: SpiceImage | None
    src_area: Rect
    brush: Brush
    rop3: int
    scale_mode: ScaleMode
    mask: QMask | None


@dataclass(frozen=True, slots=True)
class DrawTransparent(ChannelEvent):
    """DRAW_TRANSPARENT: ``image`` copied except its pixels equal to ``src_color``."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    image: SpiceImage | None
    src_area: Rect
    src_color: int
    true_color: int


@dataclass(frozen=True, slots=True)
class DrawAlphaBlend(ChannelEvent):
    """DRAW_ALPHA_BLEND: ``image`` blended with constant ``alpha`` (and its own alpha when
    SRC_SURFACE_HAS_ALPHA)."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    alpha_flags: AlphaFlags
    alpha: int
    image: SpiceImage | None
    src_area: Rect


@dataclass(frozen=True, slots=True)
class DrawComposite(ChannelEvent):
    """DRAW_COMPOSITE (the COMPOSITE cap; Render-style): ``op`` is the pixman operator in
    the low 8 bits of ``flags``; the transforms are 16.16 fixed-point matrices."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    flags: int
    image: SpiceImage
    mask_image: SpiceImage | None
    src_transform: tuple[int, ...] | None
    mask_transform: tuple[int, ...] | None
    src_origin: Point
    mask_origin: Point

    @property
    def op(self) -> int:
        return self.flags & 0xFF


@dataclass(frozen=True, slots=True)
class CopyBits(ChannelEvent):
    """COPY_BITS: the surface's own pixels at ``src_pos`` moved to ``box`` (scrolling)."""

    surface_id: int
    box: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)
    src_pos: Point


def parse_draw_fill(body: bytes) -> DrawFill:
    r = BodyReader(body, "DRAW_FILL")
    base = read_display_base(r)
    brush = read_brush(r)
    return DrawFill(*base, brush, read_rop(r), read_mask(r))


def parse_draw_opaque(body: bytes) -> DrawOpaque:
    r = BodyReader(body, "DRAW_OPAQUE")
    base = read_display_base(r)
    image = read_image(r, "source image")
    src_area = read_rect(r, "source area")
    brush = read_brush(r)
    rop = read_rop(r)
    return DrawOpaque(*base, image, src_area, brush, rop, read_scale_mode(r), read_mask(r))


def parse_draw_blend(body: bytes) -> DrawBlend:
    r = BodyReader(body, "DRAW_BLEND")
    base = read_display_base(r)
    image = read_image(r, "source image")
    src_area = read_rect(r, "source area")
    rop = read_rop(r)
    return DrawBlend(*base, image, src_area, rop, read_scale_mode(r), read_mask(r))


def parse_draw_blackness(body: bytes) -> DrawBlackness:
    r = BodyReader(body, "DRAW_BLACKNESS")
    return DrawBlackness(*read_display_base(r), read_mask(r))


def parse_draw_whiteness(body: bytes) -> DrawWhiteness:
    r = BodyReader(body, "DRAW_WHITENESS")
    return DrawWhiteness(*read_display_base(r), read_mask(r))


def parse_draw_invers(body: bytes) -> DrawInvers:
    r = BodyReader(body, "DRAW_INVERS")
    return DrawInvers(*read_display_base(r), read_mask(r))


def parse_draw_rop3(body: bytes) -> DrawRop3:
    r = BodyReader(body, "DRAW_ROP3")
    base = read_display_base(r)
    image = read_image(r, "source image")
    src_area = read_rect(r, "source area")
    brush = read_brush(r)
    rop3 = r.u8("rop3")
    return DrawRop3(*base, image, src_area, brush, rop3, read_scale_mode(r), read_mask(r))


def parse_draw_transparent(body: bytes) -> DrawTransparent:
    r = BodyReader(body, "DRAW_TRANSPARENT")
    base = read_display_base(r)
    image = read_image(r, "source image")
    src_area = read_rect(r, "source area")
    return DrawTransparent(*base, image, src_area, r.u32("source color"),
                           r.u32("true color"))


def parse_draw_alpha_blend(body: bytes) -> DrawAlphaBlend:
    r = BodyReader(body, "DRAW_ALPHA_BLEND")
    base = read_display_base(r)
    flags = AlphaFlags(r.u8("alpha flags") & 0x3)  # SPICE_ALPHA_FLAGS_MASK
    alpha = r.u8("alpha")
    image = read_image(r, "source image")
    return DrawAlphaBlend(*base, flags, alpha, image, read_rect(r, "source area"))


def parse_draw_composite(body: bytes) -> DrawComposite:
    """The optional members follow the flags: a mask image with HAS_MASK, then each
    transform with its HAS_*_TRANSFORM bit (spice.proto ``Composite``)."""
    r = BodyReader(body, "DRAW_COMPOSITE")
    base = read_display_base(r)
    at = r.offset
    flags = r.u32("composite flags")
    if flags & ~COMPOSITE_FLAGS_MASK:
        raise r.fail(f"unknown composite flags {flags:#x}", at)
    image = require_image(r, "source image")
    mask = read_image(r, "mask image") if flags & CompositeFlags.HAS_MASK else None
    src_t = (r.take(TRANSFORM, "source transform")
             if flags & CompositeFlags.HAS_SRC_TRANSFORM else None)
    mask_t = (r.take(TRANSFORM, "mask transform")
              if flags & CompositeFlags.HAS_MASK_TRANSFORM else None)
    src_origin = Point(*r.take(POINT16, "source origin"))
    mask_origin = Point(*r.take(POINT16, "mask origin"))
    return DrawComposite(*base, flags, image, mask, src_t, mask_t, src_origin, mask_origin)


def parse_copy_bits(body: bytes) -> CopyBits:
    r = BodyReader(body, "COPY_BITS")
    return CopyBits(*read_display_base(r), read_point(r, "source position"))


DRAW_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    DisplayMsg.COPY_BITS: parse_copy_bits,
    DisplayMsg.DRAW_FILL: parse_draw_fill,
    DisplayMsg.DRAW_OPAQUE: parse_draw_opaque,
    DisplayMsg.DRAW_BLEND: parse_draw_blend,
    DisplayMsg.DRAW_BLACKNESS: parse_draw_blackness,
    DisplayMsg.DRAW_WHITENESS: parse_draw_whiteness,
    DisplayMsg.DRAW_INVERS: parse_draw_invers,
    DisplayMsg.DRAW_ROP3: parse_draw_rop3,
    DisplayMsg.DRAW_TRANSPARENT: parse_draw_transparent,
    DisplayMsg.DRAW_ALPHA_BLEND: parse_draw_alpha_blend,
    DisplayMsg.DRAW_COMPOSITE: parse_draw_composite,
}
