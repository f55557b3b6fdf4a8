"""Spice display surfaces: one numpy array per SURFACE_CREATE, a bounded registry per channel,
and damage tracking.

Every surface is a C-contiguous ``uint8`` array of shape ``(height, width, 4)``, memory byte
order B, G, R, X: what the decoders in :mod:`atp_notebook.spice.codecs` write, so an image
decodes straight into a surface region. Formats (spice.proto ``surface_fmt``):

* ``32_xRGB`` (32) and ``32_ARGB`` (96): stored as sent; X/A is byte 3.
* ``16_555`` (16) and ``16_565`` (80): stored widened to 32 bits; draws are exact at 8 bits
  per channel, not quantised back to 5/6 bits (the screen only ever shows 32-bit pixels).
* ``8_A`` (8) and ``1_A`` (1): alpha-only surfaces (masks for composite); the value lives in
  byte 3 of each pixel (1_A as 0 or 255), so they cost 4 bytes per pixel like the others.

A hostile server must not make us allocate without limit: :class:`Surfaces` caps the number
of surfaces, each side and the total bytes, and raises
:class:`~atp_notebook.errors.RemoteProtocolError` past them.

Example::

    surfaces = Surfaces()
    primary = surfaces.create(0, 1024, 768, SurfaceFormat.XRGB32, primary=True)
    primary.pixels[10:20, 10:20] = (255, 0, 0, 0)    # blue square
    primary.add_damage(Box(10, 10, 20, 20))
    primary.take_damage()                           # [Box(10, 10, 20, 20)]
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from atp_notebook.errors import InvalidArgument, RemoteProtocolError

__all__ = [
    "MAX_DAMAGE_RECTS",
    "Box",
    "Pixels",
    "RectLike",
    "Surface",
    "SurfaceFormat",
    "Surfaces",
]

Pixels = npt.NDArray[np.uint8]
#: Spice caps a side at 16384 (the decoders' MAX_PIXELS is 16384 x 16384).
MAX_SIDE = 16384
#: Past this many separate damage rects a surface reports their bounding box instead.
MAX_DAMAGE_RECTS = 32


class SurfaceFormat(enum.IntEnum):
    """SpiceSurfaceFmt (spice.proto ``surface_fmt``)."""

    A1 = 1
    A8 = 8
    X555 = 16
    XRGB32 = 32
    R565 = 80
    ARGB32 = 96


class RectLike(Protocol):
    """Anything with Spice's rect edges (``atp_notebook.spice.proto.display.Rect``, Box)."""

    @property
    def left(self) -> int: ...
    @property
    def top(self) -> int: ...
    @property
    def right(self) -> int: ...
    @property
    def bottom(self) -> int: ...


class Box(NamedTuple):
    """A half-open pixel rectangle: columns ``left..right-1``, rows ``top..bottom-1``."""

    left: int
    top: int
    right: int
    bottom: int

    @classmethod
    def of(cls, rect: RectLike) -> Box:
        return cls(rect.left, rect.top, rect.right, rect.bottom)

    @property
    def empty(self) -> bool:
        return self.right <= self.left or self.bottom <= self.top

    @property
    def width(self) -> int:
        return max(0, self.right - self.left)

    @property
    def height(self) -> int:
        return max(0, self.bottom - self.top)

    def intersect(self, other: Box) -> Box:
        return Box(max(self.left, other.left), max(self.top, other.top),
                   min(self.right, other.right), min(self.bottom, other.bottom))

    def union(self, other: Box) -> Box:
        return Box(min(self.left, other.left), min(self.top, other.top),
                   max(self.right, other.right), max(self.bottom, other.bottom))

    def touches(self, other: Box) -> bool:
        """Overlapping or sharing an edge: their union loses nothing by merging."""
        return (self.left <= other.right and other.left <= self.right
                and self.top <= other.bottom and other.top <= self.bottom)


@dataclass(eq=False)
class Surface:
    """One surface: ``pixels`` (height, width, 4) B,G,R,X; damage since the last take."""

    surface_id: int
    width: int
    height: int
    format: SurfaceFormat
    primary: bool = False
    pixels: Pixels = field(init=False, repr=False)
    _damage: list[Box] = field(init=False, repr=False, default_factory=list)
    # draws run on a decode thread while the event loop takes the damage
    _damage_lock: threading.Lock = field(init=False, repr=False,
                                         default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.pixels = np.zeros((self.height, self.width, 4), dtype=np.uint8)

    @property
    def nbytes(self) -> int:
        return self.width * self.height * 4

    @property
    def bounds(self) -> Box:
        return Box(0, 0, self.width, self.height)

    @property
    def words(self) -> npt.NDArray[np.uint32]:
        """The pixels as little-endian 0xXXRRGGBB words, shape (height, width), no copy."""
        words: npt.NDArray[np.uint32] = self.pixels.view(np.dtype("<u4")).reshape(
            self.height, self.width)
        return words

    def add_damage(self, box: Box) -> None:
        """Record that ``box`` (clipped to the surface) changed; touching rects merge."""
        box = box.intersect(self.bounds)
        if box.empty:
            return
        with self._damage_lock:
            self._merge(box)

    def _merge(self, box: Box) -> None:
        merged = True
        while merged:
            merged = False
            for i, old in enumerate(self._damage):
                if old.touches(box):
                    box = box.union(old)
                    del self._damage[i]
                    merged = True
                    break
        self._damage.append(box)
        if len(self._damage) > MAX_DAMAGE_RECTS:
            whole = self._damage[0]
            for old in self._damage[1:]:
                whole = whole.union(old)
            self._damage = [whole]

    def take_damage(self) -> list[Box]:
        """The rects changed since the last call (disjoint, not touching), top-left first."""
        with self._damage_lock:
            out, self._damage = self._damage, []
        return sorted(out, key=lambda b: (b.top, b.left))


class Surfaces:
    """The surfaces of one display channel: the primary (id 0) and off-screen ones.

    ``max_surfaces`` and ``max_bytes`` bound what a server can make us hold; spice-server's
    QXL default is 1024 surfaces, and a 4096 x 2160 primary is 34 MiB.
    """

    def __init__(self, *, max_surfaces: int = 1024, max_bytes: int = 512 << 20) -> None:
        if max_surfaces < 1 or max_bytes < 4:
            raise InvalidArgument("Surfaces: max_surfaces >= 1 and max_bytes >= 4")
        self.max_surfaces = max_surfaces
        self.max_bytes = max_bytes
        self._surfaces: dict[int, Surface] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._surfaces)

    def __contains__(self, surface_id: object) -> bool:
        return surface_id in self._surfaces

    def create(self, surface_id: int, width: int, height: int, fmt: int, *,
               primary: bool = False) -> Surface:
        """SURFACE_CREATE: a new zeroed surface; bad or excessive requests raise
        RemoteProtocolError."""
        try:
            surface_format = SurfaceFormat(fmt)
        except ValueError:
            raise RemoteProtocolError(f"display: surface {surface_id} has unknown format "
                                      f"{fmt}") from None
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise RemoteProtocolError(f"display: surface {surface_id} is {width}x{height}, "
                                      f"outside 1..{MAX_SIDE} per side")
        if not 0 <= surface_id < 1 << 32:
            raise RemoteProtocolError(f"display: surface id {surface_id} is not a u32")
        need = width * height * 4
        with self._lock:
            if surface_id in self._surfaces:
                raise RemoteProtocolError(f"display: surface {surface_id} created twice")
            if len(self._surfaces) >= self.max_surfaces:
                raise RemoteProtocolError(f"display: more than {self.max_surfaces} surfaces")
            if self._bytes + need > self.max_bytes:
                raise RemoteProtocolError(
                    f"display: surface {surface_id} ({width}x{height}) would take surfaces "
                    f"past {self.max_bytes} bytes (holding {self._bytes})")
            surface = Surface(surface_id, width, height, surface_format, primary)
            self._surfaces[surface_id] = surface
            self._bytes += need
        surface.add_damage(surface.bounds)
        return surface

    def destroy(self, surface_id: int) -> Surface:
        """SURFACE_DESTROY; an unknown id is a RemoteProtocolError."""
        with self._lock:
            surface = self._surfaces.pop(surface_id, None)
            if surface is None:
                raise RemoteProtocolError(f"display: destroy of unknown surface {surface_id}")
            self._bytes -= surface.nbytes
        return surface

    def get(self, surface_id: int) -> Surface:
        """The surface a draw names; a missing one is a RemoteProtocolError."""
        surface = self._surfaces.get(surface_id)
        if surface is None:
            raise RemoteProtocolError(f"display: draw on unknown surface {surface_id}")
        return surface

    @property
    def primary(self) -> Surface | None:
        """The surface created with the PRIMARY flag (normally id 0), if any."""
        with self._lock:
            for surface in self._surfaces.values():
                if surface.primary:
                    return surface
        return None

    def clear(self) -> None:
        """RESET: every surface is gone."""
        with self._lock:
            self._surfaces.clear()
            self._bytes = 0
