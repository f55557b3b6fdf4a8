"""Palettes of BITMAP and LZ_PLT images, and the client's palette cache.

Wire facts (spice.proto ``Palette``, ``BitmapData``, ``LZPLTData``; research display.md §1.3):
a palette is u64 unique, u16 num_ents, u32 ents[num_ents] (0x00RRGGBB, little-endian). An
image's palette field is, when its flags have PAL_FROM_CACHE (2), a u64 palette id to look
up; otherwise a u32 offset of a Palette in the message body (0: none), which the client
stores under its ``unique`` when the flags have PAL_CACHE_ME (1). INVAL_PALETTE(id) and
INVAL_ALL_PALETTES drop entries (spice-common ``canvas_get_palette`` does the same).

The server keeps its own account of the client's cache: an LRU of CLIENT_PALETTE_CACHE_SIZE
= 128 entries per display channel (spice-server dcc.h; ``dcc_palette_cache_palette``). When
it evicts one it sends INVAL_PALETTE right after the image that caused it (the eviction is
put at the sending end of the pipe, ``pipe_add_tail``). :class:`PaletteCache` keeps the same
LRU with the same bound, so it drops what the server dropped, one message earlier; that
INVAL_PALETTE then finds nothing, which is fine. Past ``max_entries`` the least recently used
palette is dropped (counted in ``evicted``): a hostile server cannot grow the cache, it can
only make its own later FROM_CACHE images fail with a CodecError.

Example::

    cache = PaletteCache()
    palette, data_at = cache.resolve(flags, image.body, field_at)
    decode_bitmap(fmt, image.body[data_at:], w, h, stride, top_down=td,
                  palette=None if palette is None else palette.entries)
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import Buffer

__all__ = [
    "DEFAULT_MAX_PALETTES",
    "PAL_CACHE_ME",
    "PAL_FROM_CACHE",
    "PaletteCache",
    "SpicePalette",
    "parse_palette",
]

#: BITMAP / LZ_PLT flags (spice.proto ``bitmap_flags``)
PAL_CACHE_ME = 1
PAL_FROM_CACHE = 2
#: spice-server's CLIENT_PALETTE_CACHE_SIZE: it never counts on more entries than this
DEFAULT_MAX_PALETTES = 128
# Palette indexes are at most 8 bits (1, 4 and 8-bit BITMAP and LZ_PLT pixels): entries past
# the 256th can never be used, so they are checked for bounds but not kept.
_USABLE_ENTRIES = 256
_PALETTE_HEAD = struct.Struct("<QH")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class SpicePalette:
    """One palette: ``entries`` are little-endian u32 0x00RRGGBB (the first 256 sent), ready
    to pass as ``palette=`` to ``decode_bitmap`` or ``decode_lz``."""

    unique: int
    entries: bytes = field(repr=False)
    num_ents: int  # as sent


def parse_palette(body: Buffer, at: int) -> SpicePalette:
    """Read the Palette at offset ``at`` of a message body; bad bounds are a CodecError."""
    buf = memoryview(body).cast("B")
    if at < 0 or at > len(buf) - _PALETTE_HEAD.size:
        raise CodecError("palette", max(at, 0), f"a palette at {at} does not fit the"
                         f" {len(buf)}-byte message")
    unique, num_ents = _PALETTE_HEAD.unpack_from(buf, at)
    start = at + _PALETTE_HEAD.size
    if num_ents * 4 > len(buf) - start:
        raise CodecError("palette", at + 8, f"{num_ents} entries need {num_ents * 4} bytes,"
                         f" {len(buf) - start} follow")
    kept = min(num_ents, _USABLE_ENTRIES)
    return SpicePalette(unique, bytes(buf[start : start + kept * 4]), num_ents)


class PaletteCache:
    """The palettes a display channel's server asked us to keep, by id, LRU-bounded.

    One per display channel (the server's account is per channel client). Use it in message
    order, for every BITMAP and LZ_PLT image, drawn or not, so that its LRU order stays the
    server's. Thread-safe, but calls from several threads have no defined order.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_PALETTES) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidArgument(f"max_entries must be an int >= 1, not {max_entries!r}")
        self.max_entries = max_entries
        #: how many palettes were dropped to stay within max_entries
        self.evicted = 0
        self._entries: OrderedDict[int, SpicePalette] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, palette_id: object) -> bool:
        return palette_id in self._entries

    def resolve(self, flags: int, body: Buffer, at: int) -> tuple[SpicePalette | None, int]:
        """The palette of an image whose palette field starts at offset ``at`` of ``body``.

        Returns (the palette, or None for a null pointer; the offset after the field). A
        palette sent with PAL_CACHE_ME is stored; PAL_FROM_CACHE looks one up, and an id
        not in the cache is a CodecError naming it.
        """
        buf = memoryview(body).cast("B")
        size = _U64.size if flags & PAL_FROM_CACHE else _U32.size
        if at < 0 or at > len(buf) - size:
            raise CodecError("palette", max(at, 0), f"the {size}-byte palette field at {at}"
                             f" does not fit the {len(buf)}-byte message")
        if flags & PAL_FROM_CACHE:
            return self.get(_U64.unpack_from(buf, at)[0], at), at + size
        (pointer,) = _U32.unpack_from(buf, at)
        if pointer == 0:
            return None, at + size
        palette = parse_palette(buf, pointer)
        if flags & PAL_CACHE_ME:
            self.put(palette)
        return palette, at + size

    def get(self, palette_id: int, at: int = 0) -> SpicePalette:
        """The cached palette ``palette_id`` (now the most recently used); ``at`` is the
        offset to name in the CodecError when it is missing."""
        with self._lock:
            palette = self._entries.get(palette_id)
            if palette is None:
                raise CodecError("palette", at, f"palette {palette_id:#x} is not in the cache"
                                 f" ({len(self._entries)} entries)")
            self._entries.move_to_end(palette_id)
            return palette

    def put(self, palette: SpicePalette) -> None:
        """Store ``palette`` under its unique id, dropping the least recently used past the cap."""
        with self._lock:
            self._entries[palette.unique] = palette
            self._entries.move_to_end(palette.unique)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evicted += 1

    def invalidate(self, palette_id: int) -> bool:
        """INVAL_PALETTE: drop one id; False when it was not there (already evicted)."""
        with self._lock:
            return self._entries.pop(palette_id, None) is not None

    def invalidate_all(self) -> None:
        """INVAL_ALL_PALETTES."""
        with self._lock:
            self._entries.clear()
