"""The draw operations on a surface, clipped, in vectorised numpy (no per-pixel Python).

Every operation takes the destination :class:`Surface`, the draw's ``bbox`` and ``clip``
and writes only pixels inside bbox ∩ clip ∩ the surface (∩ the QMask where the draw has
one), then records that area as damage. ``clip`` None means no clip (SPICE_CLIP_TYPE_NONE);
a sequence is SPICE_CLIP_TYPE_RECTS, whose rects may overlap — they are turned into one
coverage mask, so an XOR or an invert under two overlapping rects still applies once.

Sources (``src``) are ``(height, width, 4)`` B,G,R,X arrays: a decoded image, a pixmap
cache entry or another surface's ``pixels`` (the same surface is fine: the area is read
before anything is written). ``src_area`` must lie inside ``src``: a server that points
past it gets a RemoteProtocolError, as it does for a copy_bits source off the surface.
When ``src_area`` and ``bbox`` differ in size the source is scaled by nearest neighbour
(SPICE_IMAGE_SCALE_MODE_INTERPOLATE is drawn with nearest too: spice-gtk's pixman "GOOD"
filter is not reproduced). Semantics follow spice-common ``canvas_base.c`` and
``sw_canvas.c`` (read for facts only).

Example::

    fill(surface, Box(0, 0, 64, 64), None, brush=SolidBrush(0x00FF0000),
         rop_descriptor=RopDescriptor.OP_PUT)
    copy(surface, box, clip_rects, src=decoded, src_area=Box(0, 0, w, h))  # DRAW_COPY
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.codecs import DecodedImage, _codecs
from atp_notebook.spice.display.rop import (
    NOOP,
    RopDescriptor,
    Words,
    apply_rop2,
    apply_rop3,
    ropd_table,
)
from atp_notebook.spice.display.surfaces import (
    MAX_DAMAGE_RECTS,
    Box,
    Pixels,
    RectLike,
    Surface,
    SurfaceFormat,
)

__all__ = [
    "Bools",
    "Brush",
    "PatternBrush",
    "QMask",
    "SolidBrush",
    "Target",
    "alpha_blend",
    "blackness",
    "blend",
    "brush_words",
    "copy",
    "copy_bits",
    "fill",
    "image_pixels",
    "invers",
    "opaque",
    "over",
    "rop3",
    "sample",
    "target",
    "transparent",
    "whiteness",
    "write",
]

Bools = npt.NDArray[np.bool_]
#: SPICE_IMAGE_SCALE_MODE_NEAREST (spice.proto image_scale_mode)
SCALE_NEAREST = 1


@dataclass(frozen=True)
class SolidBrush:
    """SPICE_BRUSH_TYPE_SOLID: ``color`` is 0xXXRRGGBB, as stored in the surface."""

    color: int


@dataclass(frozen=True)
class PatternBrush:
    """SPICE_BRUSH_TYPE_PATTERN: ``tile`` repeated over the surface, its (0, 0) at (x, y)."""

    tile: Pixels
    x: int = 0
    y: int = 0


#: None is SPICE_BRUSH_TYPE_NONE (drawn as colour 0: an invert-dest ROP still applies).
Brush = SolidBrush | PatternBrush | None


@dataclass(frozen=True)
class QMask:
    """A draw's 1-bit mask: ``bits`` (height, width) bool, True = draw; mask pixel
    (x, y) lies on the bbox's top-left; ``invert`` is SPICE_MASK_FLAGS_INVERS. Pixels
    outside the mask are not drawn."""

    bits: Bools
    x: int = 0
    y: int = 0
    invert: bool = False


@dataclass(frozen=True)
class Target:
    """Where a draw writes: ``box`` on the surface, and within it ``where`` (None: all) or,
    for draws whose result does not depend on the destination, the clip ``rects`` (which
    may overlap: writing such a result twice changes nothing)."""

    box: Box
    where: Bools | None
    damage: tuple[Box, ...]
    rects: tuple[Box, ...] = ()


def image_pixels(decoded: DecodedImage) -> Pixels:
    """A decoded image's pixels as a ``(height, width, 4)`` array (no copy when its rows are
    packed): the ``src`` of a draw."""
    w, h, stride = decoded.width, decoded.height, decoded.stride
    if stride < w * 4 or len(memoryview(decoded.pixels)) < stride * h:
        raise InvalidArgument(f"a {w}x{h} image with stride {stride} does not fit its buffer")
    rows = np.frombuffer(decoded.pixels, dtype=np.uint8, count=stride * h).reshape(h, stride)
    return rows[:, :w * 4].reshape(h, w, 4)


def _words(pixels: Pixels) -> Words:
    if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
        raise InvalidArgument(f"pixels must be (height, width, 4) uint8, not {pixels.shape} "
                              f"{pixels.dtype}")
    words: Words = np.ascontiguousarray(pixels).view(np.dtype("<u4")).reshape(pixels.shape[:2])
    return words


def _coverage(box: Box, rects: Sequence[Box]) -> Bools:
    """Which pixels of ``box`` some rect covers: a 2-D difference array summed up, so
    the cost is the box's area plus the rect count, whatever the overlap."""
    diff = np.zeros((box.height + 1, box.width + 1), dtype=np.int32)
    r = np.array([(b.top - box.top, b.left - box.left, b.bottom - box.top,
                   b.right - box.left) for b in rects], dtype=np.intp).reshape(-1, 4)
    np.add.at(diff, (r[:, 0], r[:, 1]), 1)
    np.add.at(diff, (r[:, 0], r[:, 3]), -1)
    np.add.at(diff, (r[:, 2], r[:, 1]), -1)
    np.add.at(diff, (r[:, 2], r[:, 3]), 1)
    covered: Bools = diff.cumsum(axis=0).cumsum(axis=1)[:-1, :-1] > 0
    return covered


def target(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None,
           mask: QMask | None = None, *, dest_free: bool = False) -> Target | None:
    """The pixels a draw may write, or None when there are none. ``dest_free``: the draw's
    result ignores the destination, so clip rects can be written one by one."""
    whole = Box.of(bbox)
    box = whole.intersect(surface.bounds)
    if box.empty:
        return None
    where: Bools | None = None
    damage: tuple[Box, ...] = (box,)
    if clip is not None:
        rects = [r for r in (Box.of(c).intersect(box) for c in clip) if not r.empty]
        if not rects:
            return None
        outer = rects[0]
        for r in rects[1:]:
            outer = outer.union(r)
        box = outer
        damage = tuple(rects) if len(rects) <= MAX_DAMAGE_RECTS else (box,)
        if len(rects) > 1:
            if dest_free and mask is None and len(rects) <= MAX_DAMAGE_RECTS:
                return Target(box, None, damage, tuple(rects))
            where = _coverage(box, rects)
    if mask is not None:
        bits = np.asarray(mask.bits, dtype=np.bool_)
        if bits.ndim != 2:
            raise InvalidArgument("QMask.bits must be 2-D")
        # mask pixel of the box's top-left corner
        mx = box.left - whole.left + mask.x
        my = box.top - whole.top + mask.y
        inside = np.zeros((box.height, box.width), dtype=np.bool_)
        part = Box(mx, my, mx + box.width, my + box.height).intersect(
            Box(0, 0, bits.shape[1], bits.shape[0]))
        if not part.empty:
            sel = bits[part.top:part.bottom, part.left:part.right]
            inside[part.top - my:part.bottom - my, part.left - mx:part.right - mx] = (
                ~sel if mask.invert else sel)
        where = inside if where is None else where & inside
        if not where.any():
            return None
    return Target(box, where, damage)


def write(surface: Surface, t: Target, result: Words) -> None:
    view = surface.words[t.box.top:t.box.bottom, t.box.left:t.box.right]
    if np.may_share_memory(result, view):
        result = result.copy()  # a copy within one surface: read all before writing
    if t.rects:
        for r in t.rects:
            top, left = r.top - t.box.top, r.left - t.box.left
            view[top:top + r.height, left:left + r.width] = \
                result[top:top + r.height, left:left + r.width]
    elif t.where is None:
        view[...] = result
    else:
        np.copyto(view, result, where=t.where)
    for box in t.damage:
        surface.add_damage(box)


def _draw(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None,
          mask: QMask | None, compute: Callable[[Target, Words], Words], *,
          dest_free: bool = False) -> None:
    t = target(surface, bbox, clip, mask, dest_free=dest_free)
    if t is None:
        return
    dest = surface.words[t.box.top:t.box.bottom, t.box.left:t.box.right]
    write(surface, t, compute(t, dest))


def _ignores_dest(table: int, inputs: int) -> bool:
    """Whether a truth table over ``inputs`` + 1 inputs (the destination its lowest) gives
    the same bit for d = 0 and d = 1 everywhere."""
    low = int("01" * (1 << inputs), 2)  # the d = 0 entries
    return ((table >> 1) ^ table) & low == 0


def brush_words(brush: Brush, box: Box) -> Words:
    """The brush's words over ``box`` (surface coordinates), shape (height, width);
    read-only (a broadcast for a solid brush)."""
    if brush is None:
        return np.zeros((box.height, box.width), dtype=np.uint32)
    if isinstance(brush, SolidBrush):
        return np.broadcast_to(np.uint32(brush.color & 0xFFFFFFFF), (box.height, box.width))
    tile = _words(brush.tile)
    th, tw = tile.shape
    if th == 0 or tw == 0:
        raise RemoteProtocolError("display: a pattern brush of zero size")
    rows = (np.arange(box.top, box.bottom) - brush.y) % th
    cols = (np.arange(box.left, box.right) - brush.x) % tw
    return np.asarray(tile[rows[:, None], cols[None, :]], dtype=np.uint32)


def sample(src: Pixels, src_area: RectLike, bbox: RectLike, box: Box) -> Words:
    """The source words that land on ``box`` when ``src_area`` of ``src`` is drawn onto
    ``bbox`` (scaled by nearest neighbour when their sizes differ): a read-only view of
    ``src`` when unscaled (``write`` copies it first if it overlaps the destination)."""
    words = _words(src)
    area = Box.of(src_area)
    whole = Box.of(bbox)
    h, w = words.shape
    if area.empty or area.left < 0 or area.top < 0 or area.right > w or area.bottom > h:
        raise RemoteProtocolError(f"display: source area {tuple(area)} is not inside the "
                                  f"{w}x{h} source")
    if area.width == whole.width and area.height == whole.height:
        x0 = area.left + box.left - whole.left
        y0 = area.top + box.top - whole.top
        view = words[y0:y0 + box.height, x0:x0 + box.width]
        view.flags.writeable = False   # never an output: it may be the caller's image
        return view
    # pixel centres: dest column c samples source column floor((c + 0.5) * sw / bw)
    cols = area.left + ((np.arange(box.left, box.right) - whole.left) * 2 + 1) \
        * area.width // (2 * whole.width)
    rows = area.top + ((np.arange(box.top, box.bottom) - whole.top) * 2 + 1) \
        * area.height // (2 * whole.height)
    return np.asarray(words[rows[:, None], cols[None, :]], dtype=np.uint32)


def fill(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None, *, brush: Brush,
         rop_descriptor: int, mask: QMask | None = None) -> None:
    """DRAW_FILL: the brush through the ROP descriptor (INVERS_BRUSH inverts the brush)."""
    table = ropd_table(rop_descriptor, source=RopDescriptor.INVERS_BRUSH)
    if table == NOOP:
        return
    _draw(surface, bbox, clip, mask,
          lambda t, d: apply_rop2(table, brush_words(brush, t.box), d),
          dest_free=_ignores_dest(table, 1))


def copy(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None, *, src: Pixels,
         src_area: RectLike, rop_descriptor: int = RopDescriptor.OP_PUT,
         mask: QMask | None = None) -> None:
    """DRAW_COPY (and DRAW_BLEND, the same operation): ``src_area`` of ``src`` onto
    ``bbox`` through the ROP descriptor (INVERS_SRC inverts the source)."""
    table = ropd_table(rop_descriptor, source=RopDescriptor.INVERS_SRC)
    if table == NOOP:
        return
    _draw(surface, bbox, clip, mask,
          lambda t, d: apply_rop2(table, sample(src, src_area, bbox, t.box), d),
          dest_free=_ignores_dest(table, 1))


blend = copy


def opaque(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None, *, src: Pixels,
           src_area: RectLike, brush: Brush, rop_descriptor: int,
           mask: QMask | None = None) -> None:
    """DRAW_OPAQUE: the source is put, then the brush is applied over it through the ROP
    (the brush is its source input, the copied image its destination)."""
    table = ropd_table(rop_descriptor, source=RopDescriptor.INVERS_BRUSH,
                       dest=RopDescriptor.INVERS_SRC)
    if table == NOOP:
        return
    _draw(surface, bbox, clip, mask,
          lambda t, d: apply_rop2(table, brush_words(brush, t.box),
                                  sample(src, src_area, bbox, t.box)), dest_free=True)


def rop3(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None, *, src: Pixels,
         src_area: RectLike, brush: Brush, code: int, mask: QMask | None = None) -> None:
    """DRAW_ROP3: ternary raster operation ``code`` of brush, source and destination."""
    _draw(surface, bbox, clip, mask,
          lambda t, d: apply_rop3(code, brush_words(brush, t.box),
                                  sample(src, src_area, bbox, t.box), d),
          dest_free=_ignores_dest(code, 3))


def blackness(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None,
              mask: QMask | None = None) -> None:
    """DRAW_BLACKNESS: every pixel (X included) becomes 0."""
    _draw(surface, bbox, clip, mask, lambda t, d: np.broadcast_to(np.uint32(0), d.shape),
          dest_free=True)


def whiteness(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None,
              mask: QMask | None = None) -> None:
    """DRAW_WHITENESS: every pixel becomes 0xffffffff."""
    _draw(surface, bbox, clip, mask,
          lambda t, d: np.broadcast_to(np.uint32(0xFFFFFFFF), d.shape), dest_free=True)


def invers(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None,
           mask: QMask | None = None) -> None:
    """DRAW_INVERS: every bit of the destination flips."""
    _draw(surface, bbox, clip, mask, lambda t, d: ~d)


def transparent(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None,
                *, src: Pixels, src_area: RectLike, true_color: int) -> None:
    """DRAW_TRANSPARENT: source pixels whose B,G,R equal ``true_color``'s are skipped
    (the X byte is not compared, as spice-common's colour-key blit does; on a 16-bit
    surface only the bits that format keeps)."""
    t = target(surface, bbox, clip)
    if t is None:
        return
    s = sample(src, src_area, bbox, t.box)
    # a 16-bit surface compares its own bits (spice-common converts the key to 555/565);
    # ours hold them widened, with the original bits on top
    bits = {SurfaceFormat.X555: 0xF8F8F8, SurfaceFormat.R565: 0xF8FCF8}.get(surface.format,
                                                                             0xFFFFFF)
    keep = (s & bits) != (true_color & bits)
    where = keep if t.where is None else keep & t.where
    write(surface, Target(t.box, where, t.damage), s)


#: raster_over flags (codecs/src/raster.h)
OVER_SRC_OPAQUE, OVER_DEST_OPAQUE, OVER_CLEAR_X = 1, 2, 4


def over(s: Words, m: npt.NDArray[np.uint8] | None, d: Words, *, alpha: int = 255,
         flags: int = 0) -> Words:
    """Porter-Duff OVER of premultiplied B,G,R,A source words, scaled by ``alpha`` and the
    optional 8-bit coverage ``m``, onto destination words (alpha byte included), rounded as
    pixman's 8-bit paths round. In C (codecs/src/raster.c): numpy needed 15 ms for a
    1024x768 blend in 16-bit temporaries."""
    src = np.ascontiguousarray(s, dtype=np.uint32)
    dst = np.ascontiguousarray(d, dtype=np.uint32)
    cov = None if m is None else np.ascontiguousarray(m, dtype=np.uint8)
    out = np.empty(dst.shape, dtype=np.uint32)
    _codecs.raster_over(src.data, dst.data,
                        None if cov is None else cov.data, out.data, out.size,
                        alpha, flags)
    return out


def alpha_blend(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None,
                *, src: Pixels, src_area: RectLike, alpha: int, src_has_alpha: bool,
                dest_has_alpha: bool = False) -> None:
    """DRAW_ALPHA_BLEND: ``src`` (premultiplied B,G,R,A when ``src_has_alpha``, else
    opaque) OVER the surface with global ``alpha`` (0 draws nothing). Without
    DEST_HAS_ALPHA a 32_xRGB surface's X bytes end 0, as spice-common clears them."""
    if not 0 <= alpha <= 255:
        raise InvalidArgument(f"alpha must be 0..255, not {alpha}")
    if alpha == 0:
        return

    flags = (0 if src_has_alpha else OVER_SRC_OPAQUE) | (
        0 if dest_has_alpha else OVER_DEST_OPAQUE)
    if not dest_has_alpha and surface.format is SurfaceFormat.XRGB32:
        flags |= OVER_CLEAR_X

    def compute(t: Target, d: Words) -> Words:
        return over(sample(src, src_area, bbox, t.box), None, d, alpha=alpha, flags=flags)

    _draw(surface, bbox, clip, None, compute)


def copy_bits(surface: Surface, bbox: RectLike, clip: Sequence[RectLike] | None, *,
              src_x: int, src_y: int) -> None:
    """COPY_BITS: move the surface's area at (src_x, src_y) to ``bbox`` (areas may
    overlap in any direction: the source is read whole before the write)."""
    whole = Box.of(bbox)
    src = Box(src_x, src_y, src_x + whole.width, src_y + whole.height)
    if whole.empty:
        return
    if src.intersect(surface.bounds) != src:
        raise RemoteProtocolError(f"display: copy_bits source {tuple(src)} is not inside "
                                  f"surface {surface.surface_id} "
                                  f"({surface.width}x{surface.height})")
    _draw(surface, bbox, clip, None,
          lambda t, d: sample(surface.pixels, src, bbox, t.box), dest_free=True)
