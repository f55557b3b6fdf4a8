"""The display renderer: one parsed display-channel event in, pixels drawn.

:class:`DisplayRenderer` ties the parsers (``spice/proto/display*.py``), the codecs and the
rendering core together for ONE display channel: surfaces (SURFACE_CREATE/DESTROY, the
legacy MODE, RESET), every DRAW_* and COPY_BITS, cache and palette invalidation, streams
and MONITORS_CONFIG. Events that draw nothing (Ping, Mark, SetAck, ...) are ignored.

The fast path (what QEMU's qxl and VGA paths send almost only; research display.md §1.10):
a DRAW_COPY that puts a whole image, unscaled, without a mask, at a box inside the surface,
with no clip or one clip rect covering the box, is decoded straight into the surface (the
codecs' ``out``/``out_stride``: a view of the surface at the box's first pixel) — no
temporary image and no copy. Every other draw decodes to a temporary and goes through
``raster.py``. Every draw records its damage on the surface.

Hostile data is a :class:`~atp_notebook.errors.RemoteProtocolError` whose text starts with
the message's name: boxes and stream destinations not inside their surface (spice-server
refuses such drawables itself, display-channel.cpp ``validate_drawable_bbox``), unknown
surfaces and streams, missing cache entries, a GLZ image that never arrives (after
``glz_timeout``), bad or oversized images (the decoders cap sizes before allocating;
surfaces and the pixmap cache are bounded). The renderer stays usable after one: a draw that
fails leaves at worst part of its box drawn. The session's GLZ window is shared on purpose:
a GLZ image that failed to decode is recorded as failed in it, so the images of any channel
that copy from it fail too — they cannot be decoded right, and drawing them wrong would be
worse (the window releases it like any other image as newer ones arrive).

Approximations (draws the Linux and Windows qxl drivers send rarely or never): DRAW_STROKE
is a one-pixel polyline through each segment's points (Bézier segments through their
control points; widths and styles not drawn); DRAW_TEXT ignores the fore/back ROP modes
(fore laid OVER the glyphs' coverage, back put, as spice-common's software canvas does);
SCALE_MODE_INTERPOLATE is drawn as nearest; DRAW_COMPOSITE is a RemoteProtocolError: this
client never announces the COMPOSITE cap, so a server that sends one breaks the protocol.

Example::

    renderer = DisplayRenderer(glz=GlzWindow(8 << 20), pixmap_cache_pixels=20 << 20)
    for event in display.receive_data(chunk):
        renderer.apply(event)
    renderer.primary.pixels                         # (h, w, 4) B,G,R,X
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.codecs.glz import GlzWindow
from atp_notebook.spice.codecs.images import ImageState
from atp_notebook.spice.codecs.palettes import PaletteCache
from atp_notebook.spice.display import glyphs, raster
from atp_notebook.spice.display.image_source import (
    MAX_IMAGE_PIXELS,
    ImageSource,
    carries_pixels,
)
from atp_notebook.spice.display.pixmap_cache import PixmapCache
from atp_notebook.spice.display.streams import StreamPlayer
from atp_notebook.spice.display.surfaces import Box, Pixels, Surface, SurfaceFormat, Surfaces
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ImageType
from atp_notebook.spice.proto.display import (
    DisplayReset,
    DrawCopy,
    ModeChanged,
    SurfaceCreated,
    SurfaceDestroyed,
)
from atp_notebook.spice.proto.display_cache import (
    InvalAllPalettes,
    InvalAllPixmaps,
    InvalList,
    InvalPalette,
)
from atp_notebook.spice.proto.display_draw import (
    AlphaFlags,
    CopyBits,
    DrawAlphaBlend,
    DrawBlackness,
    DrawBlend,
    DrawComposite,
    DrawFill,
    DrawInvers,
    DrawOpaque,
    DrawRop3,
    DrawTransparent,
    DrawWhiteness,
)
from atp_notebook.spice.proto.display_monitors import MonitorsConfig
from atp_notebook.spice.proto.display_stream import (
    AllStreamsDestroyed,
    StreamClip,
    StreamCreated,
    StreamData,
    StreamDestroyed,
)
from atp_notebook.spice.proto.display_vector import DrawStroke, DrawText, PathFlags, StringFlags
from atp_notebook.spice.proto.display_wire import Rect, Ropd, SpiceImage

__all__ = ["DisplayRenderer", "message_name"]

_NAMES: dict[type, str] = {
    SurfaceCreated: "SURFACE_CREATE", SurfaceDestroyed: "SURFACE_DESTROY", ModeChanged: "MODE",
    DisplayReset: "RESET", DrawCopy: "DRAW_COPY", DrawFill: "DRAW_FILL",
    DrawOpaque: "DRAW_OPAQUE", DrawBlend: "DRAW_BLEND", DrawBlackness: "DRAW_BLACKNESS",
    DrawWhiteness: "DRAW_WHITENESS", DrawInvers: "DRAW_INVERS", DrawRop3: "DRAW_ROP3",
    DrawTransparent: "DRAW_TRANSPARENT", DrawAlphaBlend: "DRAW_ALPHA_BLEND",
    DrawComposite: "DRAW_COMPOSITE", DrawStroke: "DRAW_STROKE", DrawText: "DRAW_TEXT",
    CopyBits: "COPY_BITS", InvalList: "INVAL_LIST", InvalAllPixmaps: "INVAL_ALL_PIXMAPS",
    InvalPalette: "INVAL_PALETTE", InvalAllPalettes: "INVAL_ALL_PALETTES",
    StreamCreated: "STREAM_CREATE", StreamData: "STREAM_DATA", StreamClip: "STREAM_CLIP",
    StreamDestroyed: "STREAM_DESTROY", AllStreamsDestroyed: "STREAM_DESTROY_ALL",
    MonitorsConfig: "MONITORS_CONFIG",
}
_STREAM_EVENTS = (StreamCreated, StreamData, StreamClip, StreamDestroyed, AllStreamsDestroyed)
_GLZ_TYPES = (ImageType.GLZ_RGB, ImageType.ZLIB_GLZ_RGB)
#: the pixmap cache made when none is given (20 MiB of pixels); a live channel passes the
#: session's, of the size its DISPLAY_INIT announced
DEFAULT_PIXMAP_CACHE_PIXELS = 20 * 1024 * 1024 // 4


def message_name(event: ChannelEvent) -> str:
    """The display message an event came from (STREAM_DATA_SIZED is named STREAM_DATA)."""
    return _NAMES.get(type(event), type(event).__name__)


def _fixed_to_pixel(value: int) -> int:
    """fixed28_4 (1/16 pixel) to the nearest pixel, halves up."""
    return (value + 8) >> 4


class DisplayRenderer:
    """Draws the events of one display channel into its surfaces.

    ``glz`` is the session's GLZ window (shared by its display channels; None when no
    window was announced), ``palettes`` this channel's palette cache, ``pixmap_cache`` a
    cache shared with the session's other display channels (else a new one of
    ``pixmap_cache_pixels``); ``max_image_pixels`` caps what is decoded to a temporary
    (images, masks, stream frames). Not thread-safe: one thread applies events (the live layer
    holds a lock around :meth:`apply` and around reading pixels).
    """

    def __init__(self, glz: GlzWindow | None = None, palettes: PaletteCache | None = None, *,
                 pixmap_cache_pixels: int = DEFAULT_PIXMAP_CACHE_PIXELS,
                 pixmap_cache: PixmapCache | None = None, glz_timeout: float | None = None,
                 surfaces: Surfaces | None = None,
                 max_image_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.surfaces = surfaces if surfaces is not None else Surfaces()
        self.state = ImageState(glz=glz,
                                palettes=palettes if palettes is not None else PaletteCache(),
                                glz_timeout=glz_timeout)
        self.pixmap_cache = (pixmap_cache if pixmap_cache is not None
                             else PixmapCache(pixmap_cache_pixels))
        self.images = ImageSource(self.state, self.pixmap_cache, self.surfaces,
                                  max_image_pixels=max_image_pixels)
        self.streams = StreamPlayer(self.surfaces, max_frame_pixels=max_image_pixels)
        #: the last MONITORS_CONFIG, or None
        self.monitors: MonitorsConfig | None = None
        #: DRAW_COPYs decoded straight into their surface
        self.fast_copies = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            SurfaceCreated: self._surface_create, SurfaceDestroyed: self._surface_destroy,
            ModeChanged: self._mode, DisplayReset: self._reset, DrawCopy: self._copy,
            DrawBlend: self._blend, DrawOpaque: self._opaque, DrawFill: self._fill,
            DrawBlackness: self._blackness, DrawWhiteness: self._whiteness,
            DrawInvers: self._invers, DrawRop3: self._rop3,
            DrawTransparent: self._transparent, DrawAlphaBlend: self._alpha_blend,
            DrawComposite: self._composite, DrawStroke: self._stroke, DrawText: self._text,
            CopyBits: self._copy_bits, InvalList: self._inval_list,
            InvalAllPixmaps: lambda e: self.pixmap_cache.clear(),
            InvalPalette: self._inval_palette,
            InvalAllPalettes: lambda e: self.state.palettes.invalidate_all(),
            MonitorsConfig: self._monitors,
            **{kind: self.streams.apply for kind in _STREAM_EVENTS},
        }

    @property
    def primary(self) -> Surface | None:
        return self.surfaces.primary

    @property
    def stream_frames(self) -> int:
        """Stream frames decoded and drawn so far."""
        return self.streams.frames

    def apply(self, event: ChannelEvent) -> None:
        """Draw one event; RemoteProtocolError (naming the message) on hostile data."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        name = message_name(event)
        try:
            handler(event)
        except (RemoteProtocolError, InvalidArgument) as exc:
            # InvalidArgument: the raster refusing what the server's data made
            text = str(exc)
            if isinstance(exc, RemoteProtocolError) and text.startswith(name):
                raise
            # the core's own "display: " prefix gives way to the message's name
            raise RemoteProtocolError(f"{name}: {text.removeprefix('display: ')}") from exc

    # --- surfaces -------------------------------------------------------------------------

    def _surface_create(self, event: SurfaceCreated) -> None:
        self.surfaces.create(event.surface_id, event.width, event.height, event.format,
                             primary=event.primary)

    def _surface_destroy(self, event: SurfaceDestroyed) -> None:
        self.surfaces.destroy(event.surface_id)
        self.streams.drop_surface(event.surface_id)

    def _mode(self, event: ModeChanged) -> None:
        """Legacy MODE: surface 0 becomes a new primary of that size (32 bits, else 16)."""
        if 0 in self.surfaces:
            self.surfaces.destroy(0)
            self.streams.drop_surface(0)
        fmt = SurfaceFormat.XRGB32 if event.bits == 32 else SurfaceFormat.X555
        self.surfaces.create(0, event.width, event.height, fmt, primary=True)

    def _reset(self, event: DisplayReset) -> None:
        """RESET: surfaces, streams and palettes are gone (the pixmap cache and the GLZ
        window belong to the session and have their own invalidation)."""
        self.surfaces.clear()
        self.streams.streams.clear()
        self.state.palettes.invalidate_all()

    def _monitors(self, event: MonitorsConfig) -> None:
        self.monitors = event

    def _inval_palette(self, event: InvalPalette) -> None:
        self.state.palettes.invalidate(event.id)  # an id already evicted is no error

    def _inval_list(self, event: InvalList) -> None:
        self.pixmap_cache.invalidate(r.id for r in event.resources)

    # --- draws ----------------------------------------------------------------------------

    def _surface(self, surface_id: int, box: Rect, image: SpiceImage | None = None) -> Surface:
        """The draw's surface; its box must lie inside it. When it does not, the draw's GLZ
        image still enters the session's window: the other display channel's images may
        copy from it (this channel ends with the error anyway)."""
        surface = self.surfaces.get(surface_id) if surface_id in self.surfaces else None
        b = Box.of(box)
        if surface is not None and 0 <= b.left <= b.right <= surface.width \
                and 0 <= b.top <= b.bottom <= surface.height:
            return surface
        if image is not None and image.type in _GLZ_TYPES:
            with contextlib.suppress(RemoteProtocolError):
                self.images.decode(image)
        if surface is None:
            raise RemoteProtocolError(f"draw on unknown surface {surface_id}")
        raise RemoteProtocolError(f"box {tuple(b)} is not inside surface {surface_id} "
                                  f"({surface.width}x{surface.height})")

    def _source(self, image: SpiceImage | None) -> Pixels:
        if image is None:
            raise RemoteProtocolError("the source image is NULL")
        return self.images.pixels(image)

    def _copy(self, draw: DrawCopy) -> None:
        surface = self._surface(draw.surface_id, draw.box, draw.image)
        if self._fast_copy(surface, draw):
            return
        src = self._source(draw.image)
        raster.copy(surface, draw.box, draw.clip, src=src, src_area=draw.src_area,
                    rop_descriptor=draw.rop, mask=self.images.mask(draw.mask))

    def _fast_copy(self, surface: Surface, draw: DrawCopy) -> bool:
        """Decode the image straight into the surface when the draw is a plain put of the
        whole image onto a box it exactly fills; False when it is not."""
        image, box, area = draw.image, draw.box, draw.src_area
        if (image is None or draw.rop != Ropd.OP_PUT or draw.mask is not None
                or not carries_pixels(image)
                or (area.left, area.top, area.right, area.bottom) != (0, 0, image.width,
                                                                       image.height)
                or (box.width, box.height) != (image.width, image.height)):
            return False
        if draw.clip is not None:
            if len(draw.clip) != 1:
                return False
            c = draw.clip[0]
            if c.left > box.left or c.top > box.top or c.right < box.right \
                    or c.bottom < box.bottom:
                return False
        stride = surface.width * 4
        start = box.top * stride + box.left * 4
        end = start + stride * (box.height - 1) + box.width * 4
        out = surface.pixels.reshape(-1)[start:end].data
        whole = Box.of(box)
        try:
            self.images.decode(image, out, stride)
        finally:
            surface.add_damage(whole)  # even a failed decode may have written part of it
        self.images.remember(image, surface.pixels[box.top:box.bottom, box.left:box.right])
        self.fast_copies += 1
        return True

    def _blend(self, draw: DrawBlend) -> None:
        surface = self._surface(draw.surface_id, draw.box, draw.image)
        src = self._source(draw.image)
        raster.blend(surface, draw.box, draw.clip, src=src, src_area=draw.src_area,
                     rop_descriptor=draw.rop, mask=self.images.mask(draw.mask))

    def _opaque(self, draw: DrawOpaque) -> None:
        surface = self._surface(draw.surface_id, draw.box, draw.image)
        src = self._source(draw.image)
        raster.opaque(surface, draw.box, draw.clip, src=src, src_area=draw.src_area,
                      brush=self.images.brush(draw.brush), rop_descriptor=draw.rop,
                      mask=self.images.mask(draw.mask))

    def _fill(self, draw: DrawFill) -> None:
        surface = self._surface(draw.surface_id, draw.box)
        raster.fill(surface, draw.box, draw.clip, brush=self.images.brush(draw.brush),
                    rop_descriptor=draw.rop, mask=self.images.mask(draw.mask))

    def _blackness(self, draw: DrawBlackness) -> None:
        surface = self._surface(draw.surface_id, draw.box)
        raster.blackness(surface, draw.box, draw.clip, self.images.mask(draw.mask))

    def _whiteness(self, draw: DrawWhiteness) -> None:
        surface = self._surface(draw.surface_id, draw.box)
        raster.whiteness(surface, draw.box, draw.clip, self.images.mask(draw.mask))

    def _invers(self, draw: DrawInvers) -> None:
        surface = self._surface(draw.surface_id, draw.box)
        raster.invers(surface, draw.box, draw.clip, self.images.mask(draw.mask))

    def _rop3(self, draw: DrawRop3) -> None:
        surface = self._surface(draw.surface_id, draw.box, draw.image)
        src = self._source(draw.image)
        raster.rop3(surface, draw.box, draw.clip, src=src, src_area=draw.src_area,
                    brush=self.images.brush(draw.brush), code=draw.rop3,
                    mask=self.images.mask(draw.mask))

    def _transparent(self, draw: DrawTransparent) -> None:
        surface = self._surface(draw.surface_id, draw.box, draw.image)
        src = self._source(draw.image)
        raster.transparent(surface, draw.box, draw.clip, src=src, src_area=draw.src_area,
                           true_color=draw.true_color)

    def _alpha_blend(self, draw: DrawAlphaBlend) -> None:
        surface = self._surface(draw.surface_id, draw.box, draw.image)
        if draw.image is None:
            raise RemoteProtocolError("the source image is NULL")
        src = self.images.resolve(
            draw.image,
            surface_has_alpha=bool(draw.alpha_flags & AlphaFlags.SRC_SURFACE_HAS_ALPHA))
        raster.alpha_blend(surface, draw.box, draw.clip, src=src.pixels,
                           src_area=draw.src_area, alpha=draw.alpha,
                           src_has_alpha=src.has_alpha,
                           dest_has_alpha=bool(draw.alpha_flags & AlphaFlags.DEST_HAS_ALPHA))

    def _composite(self, draw: DrawComposite) -> None:
        raise RemoteProtocolError("not drawn: this client never announces the COMPOSITE cap")

    def _stroke(self, draw: DrawStroke) -> None:
        surface = self._surface(draw.surface_id, draw.box)
        brush = self.images.brush(draw.brush)
        for segment in draw.path:
            points = [(_fixed_to_pixel(p.x), _fixed_to_pixel(p.y)) for p in segment.points]
            if segment.flags & PathFlags.CLOSE and len(points) > 1:
                points.append(points[0])
            glyphs.stroke(surface, draw.clip, points=points, brush=brush,
                          rop_descriptor=draw.fore_mode)

    def _text(self, draw: DrawText) -> None:
        surface = self._surface(draw.surface_id, draw.box)
        string = draw.string
        back_area = Box.of(draw.back_area)
        glyphs.text(surface, draw.box, draw.clip,
                    glyphs=[glyphs.Glyph.of(g) for g in string.glyphs],
                    bpp=string.bpp or 1, fore=self.images.brush(draw.fore_brush),
                    back=self.images.brush(draw.back_brush),
                    back_area=None if back_area.empty else back_area,
                    top_down=bool(string.flags & StringFlags.RASTER_TOP_DOWN))

    def _copy_bits(self, draw: CopyBits) -> None:
        surface = self._surface(draw.surface_id, draw.box)
        raster.copy_bits(surface, draw.box, draw.clip, src_x=draw.src_pos.x,
                         src_y=draw.src_pos.y)

