"""The Spice display's rendering core: surfaces, the pixmap cache and the draw operations.

Independent of message parsing (``spice/proto``) and of I/O: a draw message's fields go in,
pixels of a numpy surface come out, with the changed area recorded as damage.

* ``surfaces.py``: :class:`Surface` (numpy ``(height, width, 4)`` B,G,R,X), the bounded
  per-channel :class:`Surfaces` registry and damage tracking.
* ``pixmap_cache.py``: :class:`PixmapCache` (CACHE_ME, CACHE_REPLACE_ME, FROM_CACHE,
  FROM_CACHE_LOSSLESS, INVAL_LIST, INVAL_ALL_PIXMAPS), bounded by the announced size.
* ``rop.py``: ROP descriptors and rop3 codes as truth tables over 32-bit words.
* ``raster.py``: fill, copy/blend, opaque, rop3, blackness/whiteness/invers, transparent,
  alpha_blend, copy_bits, clip rects and QMasks.
* ``glyphs.py``: 1-bit masks from bitmaps, raster text (A1/A4/A8), simple solid strokes.
* ``renderer.py``: :class:`DisplayRenderer`, one parsed display event in, pixels drawn
  (``image_source.py`` resolves images, brushes and masks; ``streams.py`` plays MJPEG).

Example::

    surfaces = Surfaces()
    s = surfaces.create(0, 1024, 768, SurfaceFormat.XRGB32, primary=True)
    copy(s, Box(0, 0, 32, 10), None, src=decoded, src_area=Box(0, 0, 32, 10))
    s.take_damage()                                 # [Box(0, 0, 32, 10)]
"""

from atp_notebook.spice.display.glyphs import (
    Glyph,
    glyph_bpp,
    glyph_coverage,
    mask_from_bitmap,
    stroke,
    text,
)
from atp_notebook.spice.display.pixmap_cache import PixmapCache, is_lossy
from atp_notebook.spice.display.raster import (
    Brush,
    PatternBrush,
    QMask,
    SolidBrush,
    alpha_blend,
    blackness,
    blend,
    copy,
    copy_bits,
    fill,
    image_pixels,
    invers,
    opaque,
    rop3,
    transparent,
    whiteness,
)
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.display.rop import RopDescriptor, apply_rop2, apply_rop3, ropd_table
from atp_notebook.spice.display.surfaces import Box, RectLike, Surface, SurfaceFormat, Surfaces

__all__ = [
    "Box",
    "Brush",
    "DisplayRenderer",
    "Glyph",
    "PatternBrush",
    "PixmapCache",
    "QMask",
    "RectLike",
    "RopDescriptor",
    "SolidBrush",
    "Surface",
    "SurfaceFormat",
    "Surfaces",
    "alpha_blend",
    "apply_rop2",
    "apply_rop3",
    "blackness",
    "blend",
    "copy",
    "copy_bits",
    "fill",
    "glyph_bpp",
    "glyph_coverage",
    "image_pixels",
    "invers",
    "is_lossy",
    "mask_from_bitmap",
    "opaque",
    "rop3",
    "ropd_table",
    "stroke",
    "text",
    "transparent",
    "whiteness",
]
