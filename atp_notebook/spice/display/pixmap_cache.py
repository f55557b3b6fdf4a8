"""The client's pixmap cache: decoded images the server told us to keep.

Semantics (spice-common ``canvas_base.c`` ``canvas_get_image_internal``; research display.md
§1.3): an image whose descriptor has CACHE_ME is stored under its descriptor id after
decoding, marked lossy when it is a JPEG or JPEG_ALPHA; CACHE_REPLACE_ME replaces a lossy
entry by the lossless image (the image itself must then be lossless); FROM_CACHE reads an
entry whatever its quality; FROM_CACHE_LOSSLESS reads one that must be lossless.
INVAL_LIST drops the ids listed and INVAL_ALL_PIXMAPS drops everything.

The server owns the accounting (it subtracts width * height from the size the client
announced in DISPLAY_INIT and evicts with INVAL_LIST before it overflows), so the client
needs no eviction policy of its own; but a server that overflows anyway is refused with a
RemoteProtocolError rather than trusted with our memory.

spice-gtk shares one cache between display channels and lets FROM_CACHE_LOSSLESS wait for
another channel's replacement; this cache is thread-safe but does not wait: a lossless read
of a lossy entry is a RemoteProtocolError.

Example::

    cache = PixmapCache(max_pixels=20 << 20)
    cache.put(image_id, pixels, lossy=False)        # CACHE_ME after decoding
    pixels = cache.get(image_id)                    # FROM_CACHE
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.display.surfaces import Pixels
from atp_notebook.spice.proto.constants import ImageType

__all__ = ["PixmapCache", "is_lossy"]


def is_lossy(image_type: int) -> bool:
    """Whether an image of this type is lossy (spice-common spice_image_descriptor_is_lossy)."""
    return image_type in (ImageType.JPEG, ImageType.JPEG_ALPHA)


class PixmapCache:
    """Decoded images by descriptor id, at most ``max_pixels`` pixels in all."""

    def __init__(self, max_pixels: int) -> None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 0:
            raise InvalidArgument(f"PixmapCache: max_pixels must be an int >= 0, "
                                  f"not {max_pixels!r}")
        self.max_pixels = max_pixels
        self._entries: dict[int, tuple[Pixels, bool]] = {}
        self._pixels = 0
        self._lock = threading.Lock()

    @property
    def pixels(self) -> int:
        """Pixels held now (what the server's accounting subtracts)."""
        return self._pixels

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._entries

    @staticmethod
    def _frozen(pixels: Pixels) -> Pixels:
        if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
            raise InvalidArgument(f"PixmapCache: pixels must be (height, width, 4) uint8, "
                                  f"not {pixels.shape} {pixels.dtype}")
        # a copy: the caller's buffer may be a surface region that later draws change
        kept = np.array(pixels, dtype=np.uint8, copy=True, order="C")
        kept.flags.writeable = False
        return kept

    def put(self, image_id: int, pixels: Pixels, *, lossy: bool) -> None:
        """CACHE_ME: keep a copy of ``pixels`` under ``image_id`` (an existing entry is
        replaced)."""
        kept = self._frozen(pixels)
        size = kept.shape[0] * kept.shape[1]
        with self._lock:
            old = self._entries.get(image_id)
            held = self._pixels - (old[0].shape[0] * old[0].shape[1] if old else 0)
            if held + size > self.max_pixels:
                raise RemoteProtocolError(
                    f"display: caching image {image_id:#x} ({size} pixels) would pass the "
                    f"pixmap cache size we announced ({self.max_pixels} pixels, "
                    f"{held} held)")
            self._entries[image_id] = (kept, lossy)
            self._pixels = held + size

    def replace(self, image_id: int, pixels: Pixels, *, lossy: bool) -> None:
        """CACHE_REPLACE_ME: the lossless image for an entry that was cached lossy."""
        if lossy:
            raise RemoteProtocolError(f"display: CACHE_REPLACE_ME of {image_id:#x} with a "
                                      "lossy image")
        with self._lock:
            old = self._entries.get(image_id)
        if old is None:
            raise RemoteProtocolError(f"display: CACHE_REPLACE_ME of {image_id:#x}, which "
                                      "is not cached")
        if not old[1]:
            raise RemoteProtocolError(f"display: CACHE_REPLACE_ME of {image_id:#x}, which "
                                      "is already lossless")
        self.put(image_id, pixels, lossy=False)

    def get(self, image_id: int) -> Pixels:
        """FROM_CACHE: the entry, read-only; a missing id is a RemoteProtocolError."""
        entry = self._entries.get(image_id)
        if entry is None:
            raise RemoteProtocolError(f"display: FROM_CACHE of {image_id:#x}, which is not "
                                      "cached")
        return entry[0]

    def get_lossless(self, image_id: int) -> Pixels:
        """FROM_CACHE_LOSSLESS: the entry, which must be lossless."""
        entry = self._entries.get(image_id)
        if entry is None:
            raise RemoteProtocolError(f"display: FROM_CACHE_LOSSLESS of {image_id:#x}, "
                                      "which is not cached")
        if entry[1]:
            raise RemoteProtocolError(f"display: FROM_CACHE_LOSSLESS of {image_id:#x}, "
                                      "which is cached lossy")
        return entry[0]

    def is_lossy_entry(self, image_id: int) -> bool:
        entry = self._entries.get(image_id)
        if entry is None:
            raise RemoteProtocolError(f"display: image {image_id:#x} is not cached")
        return entry[1]

    def invalidate(self, image_ids: Iterable[int]) -> None:
        """INVAL_LIST: drop these ids (ids we do not hold are ignored, as spice-gtk does)."""
        with self._lock:
            for image_id in image_ids:
                entry = self._entries.pop(image_id, None)
                if entry is not None:
                    self._pixels -= entry[0].shape[0] * entry[0].shape[1]

    def clear(self) -> None:
        """INVAL_ALL_PIXMAPS."""
        with self._lock:
            self._entries.clear()
            self._pixels = 0
