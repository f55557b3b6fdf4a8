"""Where a draw's pixels come from: a draw message's image, brush and mask resolved to what
the raster operations take.

An image (:class:`~atp_notebook.spice.proto.display_wire.SpiceImage`) is one of:

* compressed or raw pixels (BITMAP, QUIC, LZ, GLZ, JPEG, LZ4, ...): decoded by
  :func:`~atp_notebook.spice.codecs.images.decode_image` with the session's GLZ window and
  the channel's palette cache, then kept in the pixmap cache when the descriptor says
  CACHE_ME (CACHE_REPLACE_ME: the lossless image for a lossy entry);
* FROM_CACHE / FROM_CACHE_LOSSLESS: a pixmap cache entry;
* SURFACE: another surface's pixels (the raster reads the area before writing, so a
  surface may be its own source).

Every image is resolved, drawn or not (research display.md §1.3: a GLZ image that is not
decoded breaks every later image that copies from it, and spice-common decodes ("touches")
any image of a draw that paints nothing). Masks are 1-bit BITMAPs (spice-common's
``canvas_get_mask`` also takes cached masks; servers fed by the Linux and Windows qxl drivers
send none, so a mask of another type is a RemoteProtocolError).

Example::

    source = ImageSource(ImageState(glz=window), PixmapCache(1 << 20), surfaces)
    pixels = source.pixels(draw.image)              # (h, w, 4) B,G,R,X
    brush = source.brush(fill.brush)                # SolidBrush / PatternBrush / None
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.codecs import BitmapFormat, Buffer, DecodedImage, LzType
from atp_notebook.spice.codecs.images import ImageState, decode_image
from atp_notebook.spice.codecs.quic import QuicType
from atp_notebook.spice.display.glyphs import mask_from_bitmap
from atp_notebook.spice.display.pixmap_cache import PixmapCache, is_lossy
from atp_notebook.spice.display.raster import (
    Brush,
    PatternBrush,
    QMask,
    SolidBrush,
    image_pixels,
)
from atp_notebook.spice.display.surfaces import Box, Pixels, Surfaces
from atp_notebook.spice.proto.constants import ImageType
from atp_notebook.spice.proto.display_wire import Brush as WireBrush
from atp_notebook.spice.proto.display_wire import BrushType, MaskFlags, SpiceImage
from atp_notebook.spice.proto.display_wire import QMask as WireQMask

__all__ = ["CACHE_ME", "CACHE_REPLACE_ME", "MAX_IMAGE_PIXELS", "ImageSource", "Resolved",
           "carries_pixels", "check_size"]

#: ImageDescriptor flags (spice.proto image_flags)
CACHE_ME = 1
CACHE_REPLACE_ME = 4
_BITMAP_HEAD = struct.Struct("<BBIII")  # format, flags, width, height, stride
_PAL_FROM_CACHE = 2
_BITMAP_TOP_DOWN = 4
#: The largest image decoded to a temporary (or mask, or stream frame), in pixels: 8192 x
#: 8192, 256 MiB. A few bytes of LZ can claim a 16384 x 16384 image; a real one is a guest
#: bitmap in qxl video memory, far smaller. Whole-image DRAW_COPYs decode into their surface
#: and are bounded by it.
MAX_IMAGE_PIXELS = 1 << 26
_NOT_PIXELS = frozenset({ImageType.FROM_CACHE, ImageType.FROM_CACHE_LOSSLESS,
                         ImageType.SURFACE})
_ALPHA_LZ = frozenset({LzType.RGBA, LzType.XXXA, LzType.A8})
_ALPHA_BITMAP = frozenset({BitmapFormat.RGBA, BitmapFormat.BIT8_A})


def carries_pixels(image: SpiceImage) -> bool:
    """Whether the image holds its own (compressed) pixels, i.e. goes through the codecs."""
    return image.type not in _NOT_PIXELS


def check_size(what: str, width: int, height: int, limit: int = MAX_IMAGE_PIXELS) -> None:
    """Refuse an image, mask or frame of more than ``limit`` pixels before allocating it."""
    if width * height > limit:
        raise RemoteProtocolError(f"{what} of {width}x{height} is larger than the "
                                  f"{limit} pixels this client decodes")


@dataclass(frozen=True)
class Resolved:
    """An image's pixels and whether its X bytes are alpha (LZ RGBA, JPEG_ALPHA, ...)."""

    pixels: Pixels
    has_alpha: bool


def _decoded_has_alpha(image_type: int, img: DecodedImage) -> bool:
    return (image_type == ImageType.JPEG_ALPHA or img.lz_type in _ALPHA_LZ
            or img.quic_type is QuicType.RGBA or img.bitmap_format in _ALPHA_BITMAP)


class ImageSource:
    """Resolves images, brushes and masks for one display channel's draws."""

    def __init__(self, state: ImageState, cache: PixmapCache, surfaces: Surfaces, *,
                 max_image_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.state = state
        self.cache = cache
        self.surfaces = surfaces
        self.max_image_pixels = max_image_pixels

    def decode(self, image: SpiceImage, out: Buffer | None = None,
               out_stride: int | None = None) -> DecodedImage:
        """Decode a pixel-carrying image (into ``out`` when given). Codec errors are
        RemoteProtocolErrors already (CodecError); anything else a codec raises on data it
        was given becomes one here."""
        try:
            return decode_image(image, self.state, out, out_stride=out_stride)
        except RemoteProtocolError:
            raise
        except Exception as exc:  # a codec failing on server data in a way it did not name
            raise RemoteProtocolError(
                f"image {image.id:#x} (type {image.type}, {image.width}x{image.height}) "
                f"could not be decoded: {type(exc).__name__}: {exc}") from exc

    def remember(self, image: SpiceImage, pixels: Pixels) -> None:
        """CACHE_ME / CACHE_REPLACE_ME of a decoded image (the cache keeps a copy)."""
        if image.flags & CACHE_REPLACE_ME:
            self.cache.replace(image.id, pixels, lossy=is_lossy(image.type))
        elif image.flags & CACHE_ME:
            self.cache.put(image.id, pixels, lossy=is_lossy(image.type))

    def resolve(self, image: SpiceImage, *, surface_has_alpha: bool = False) -> Resolved:
        """The image's pixels from wherever its type says. ``surface_has_alpha``: a SURFACE
        or cached image's X bytes are alpha (DRAW_ALPHA_BLEND's SRC_SURFACE_HAS_ALPHA)."""
        kind = image.type
        if kind == ImageType.FROM_CACHE:
            return Resolved(self.cache.get(image.id), surface_has_alpha)
        if kind == ImageType.FROM_CACHE_LOSSLESS:
            return Resolved(self.cache.get_lossless(image.id), surface_has_alpha)
        if kind == ImageType.SURFACE:
            source_id = image.surface_id
            if source_id not in self.surfaces:
                raise RemoteProtocolError(f"a SURFACE image names surface {source_id}, which "
                                          "does not exist")
            return Resolved(self.surfaces.get(source_id).pixels, surface_has_alpha)
        check_size(f"image {image.id:#x}", image.width, image.height, self.max_image_pixels)
        decoded = self.decode(image)
        pixels = image_pixels(decoded)
        self.remember(image, pixels)
        return Resolved(pixels, _decoded_has_alpha(kind, decoded))

    def pixels(self, image: SpiceImage) -> Pixels:
        return self.resolve(image).pixels

    def brush(self, brush: WireBrush) -> Brush:
        """A wire brush as the raster's: NONE -> None, SOLID, PATTERN (its image resolved)."""
        if brush.type == BrushType.SOLID:
            return SolidBrush(brush.color)
        if brush.type == BrushType.PATTERN:
            if brush.pattern is None or brush.pattern_pos is None:
                raise RemoteProtocolError("a PATTERN brush without its image")
            return PatternBrush(self.pixels(brush.pattern), brush.pattern_pos.x,
                                brush.pattern_pos.y)
        return None

    def mask(self, mask: WireQMask | None) -> QMask | None:
        """A QMask's 1-bit BITMAP as the raster's bool mask placed at ``mask.pos``."""
        if mask is None:
            return None
        image = mask.image
        if image.type != ImageType.BITMAP:
            raise RemoteProtocolError(f"a mask image of type {image.type}: only 1-bit "
                                      "BITMAP masks are drawn")
        check_size("a mask", image.width, image.height, self.max_image_pixels)
        payload = image.payload
        if len(payload) < _BITMAP_HEAD.size:
            raise RemoteProtocolError("a mask BITMAP header is cut short")
        fmt, flags, width, height, stride = _BITMAP_HEAD.unpack_from(payload)
        if (width, height) != (image.width, image.height):
            raise RemoteProtocolError(f"a mask BITMAP of {width}x{height}, its descriptor says "
                                      f"{image.width}x{image.height}")
        # the palette field (unused by 1-bit masks): a u64 cache id or a u32 pointer
        data_at = _BITMAP_HEAD.size + (8 if flags & _PAL_FROM_CACHE else 4)
        bits = mask_from_bitmap(fmt, payload[data_at:], width, height, stride,
                                top_down=bool(flags & _BITMAP_TOP_DOWN))
        return QMask(bits, mask.pos.x, mask.pos.y, invert=bool(mask.flags & MaskFlags.INVERS))

    def region(self, surface_id: int, box: Box) -> Pixels:
        """The pixels of ``box`` on a surface (what a fast-path decode wrote)."""
        surface = self.surfaces.get(surface_id)
        return surface.pixels[box.top:box.bottom, box.left:box.right]
