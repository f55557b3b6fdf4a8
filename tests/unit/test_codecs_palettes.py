"""Palettes and the palette cache: wire parsing, CACHE_ME / FROM_CACHE / INVAL, the LRU bound,
and a palette from a message body feeding the BITMAP and LZ decoders."""

from __future__ import annotations

import random
import struct

import pytest

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import decode_bitmap, decode_lz
from atp_notebook.spice.codecs.palettes import (
    DEFAULT_MAX_PALETTES,
    PAL_CACHE_ME,
    PAL_FROM_CACHE,
    PaletteCache,
    SpicePalette,
    parse_palette,
)
from tests.unit.codec_streams import PLT8, lz_case, palette_pixel


def wire_palette(unique: int, entries: list[int]) -> bytes:
    return struct.pack(f"<QH{len(entries)}I", unique, len(entries), *entries)


def pal(unique: int, n: int = 2) -> SpicePalette:
    return SpicePalette(unique, struct.pack(f"<{n}I", *range(n)), n)


def test_parse_palette() -> None:
    body = b"head" + wire_palette(0xC00000002, [0x00112233, 0x00445566])
    p = parse_palette(body, 4)
    assert p == SpicePalette(0xC00000002, bytes.fromhex("3322110066554400"), 2)
    assert parse_palette(memoryview(wire_palette(7, [])), 0).entries == b""


def test_entries_past_256_are_checked_not_kept() -> None:
    entries = list(range(1000))
    p = parse_palette(wire_palette(1, entries), 0)
    assert p.num_ents == 1000 and p.entries == struct.pack("<256I", *range(256))
    with pytest.raises(CodecError, match="1000 entries need 4000 bytes"):
        parse_palette(wire_palette(1, entries)[:-1], 0)


@pytest.mark.parametrize(
    ("body", "at", "offset", "words"),
    [
        (wire_palette(1, [1]), 5, 5, "does not fit"),
        (wire_palette(1, [1])[:9], 0, 0, "does not fit"),
        (wire_palette(1, [1, 2])[:-1], 0, 8, "2 entries need 8 bytes, 7 follow"),
        (b"\0" * 4 + struct.pack("<QH", 1, 0xFFFF), 4, 12, "65535 entries"),
        (wire_palette(1, [1]), -1, 0, "does not fit"),
    ],
)
def test_parse_palette_bounds(body: bytes, at: int, offset: int, words: str) -> None:
    with pytest.raises(CodecError, match=words) as info:
        parse_palette(body, at)
    assert info.value.codec == "palette" and info.value.offset == offset


def _field_body(flags: int, palette: bytes | None, palette_id: int = 0) -> tuple[bytes, int]:
    """A body holding 3 bytes of something, the palette field, then the palette itself."""
    if flags & PAL_FROM_CACHE:
        return b"abc" + struct.pack("<Q", palette_id), 3
    pointer = 0 if palette is None else 3 + 4
    return b"abc" + struct.pack("<I", pointer) + (palette or b""), 3


def test_resolve_inline_cache_me_and_from_cache() -> None:
    cache = PaletteCache()
    body, at = _field_body(0, wire_palette(5, [0x010203]))
    p, after = cache.resolve(0, body, at)
    assert p is not None and p.unique == 5 and after == 7 and 5 not in cache  # not kept
    body, at = _field_body(PAL_CACHE_ME, wire_palette(5, [0x010203]))
    p2, after = cache.resolve(PAL_CACHE_ME, body, at)
    assert p2 == p and after == 7 and 5 in cache and len(cache) == 1
    body, at = _field_body(PAL_FROM_CACHE, None, palette_id=5)
    p3, after = cache.resolve(PAL_FROM_CACHE, body, at)
    assert p3 == p and after == 11  # a u64 id instead of a u32 pointer
    # FROM_CACHE wins over CACHE_ME (the union is switched on PAL_FROM_CACHE only)
    p4, after = cache.resolve(PAL_FROM_CACHE | PAL_CACHE_ME, body, at)
    assert p4 == p and after == 11


def test_null_pointer_is_no_palette() -> None:
    body, at = _field_body(PAL_CACHE_ME, None)
    assert PaletteCache().resolve(PAL_CACHE_ME, body, at) == (None, 7)


def test_missing_id_names_it() -> None:
    body, at = _field_body(PAL_FROM_CACHE, None, palette_id=0xC00000002)
    with pytest.raises(CodecError, match="palette 0xc00000002 is not in the cache") as info:
        PaletteCache().resolve(PAL_FROM_CACHE, body, at)
    assert info.value.codec == "palette" and info.value.offset == 3


@pytest.mark.parametrize(
    ("flags", "body", "at", "words"),
    [
        (PAL_FROM_CACHE, b"abc" + b"\0" * 7, 3, "8-byte palette field"),
        (0, b"abc\x01\0", 3, "4-byte palette field"),
        (0, b"abc" + struct.pack("<I", 100), 3, "palette at 100 does not fit"),
        (0, b"abc" + struct.pack("<I", 0xFFFFFFFF), 3, "does not fit"),
    ],
)
def test_resolve_bounds(flags: int, body: bytes, at: int, words: str) -> None:
    with pytest.raises(CodecError, match=words):
        PaletteCache().resolve(flags, body, at)


def test_invalidate_one_and_all() -> None:
    cache = PaletteCache()
    for u in (1, 2, 3):
        cache.put(pal(u))
    assert cache.invalidate(2) is True and cache.invalidate(2) is False
    assert 2 not in cache and len(cache) == 2
    with pytest.raises(CodecError, match="0x2"):
        cache.get(2)
    cache.invalidate_all()
    assert len(cache) == 0 and 1 not in cache


def test_lru_bound_mirrors_the_servers_eviction() -> None:
    """A server model with the same LRU (spice-server's red_palette_cache find/add) sends
    FROM_CACHE only for ids it still counts as cached: the client never misses one. Its
    INVAL_PALETTE for an eviction comes right after the image (pipe_add_tail)."""
    rng = random.Random(3)
    cap = 8
    cache = PaletteCache(cap)
    server: list[int] = []  # most recent last
    for _ in range(2000):
        unique = rng.randrange(1, 20)
        if unique in server:  # FROM_CACHE
            server.remove(unique)
            server.append(unique)
            assert cache.get(unique).unique == unique
            continue
        # CACHE_ME, evicting the server's least recent first
        evicted = server.pop(0) if len(server) == cap else None
        server.append(unique)
        cache.put(pal(unique))
        if evicted is not None:
            assert cache.invalidate(evicted) is False  # already dropped here
    assert len(cache) == len(server) and all(u in cache for u in server)
    assert cache.evicted > 0


def test_hostile_server_cannot_grow_it() -> None:
    cache = PaletteCache()
    for u in range(10_000):
        cache.put(pal(u, n=256))
    assert len(cache) == DEFAULT_MAX_PALETTES == 128
    assert cache.evicted == 10_000 - 128
    assert 9999 in cache and 0 not in cache


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bad_cap(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="max_entries"):
        PaletteCache(bad)  # type: ignore[arg-type]


def test_palette_from_a_body_feeds_bitmap_and_lz() -> None:
    cache = PaletteCache()
    colors = [0x00FF0000, 0x0000FF00, 0x000000FF]
    # a BITMAP 8BIT: format, flags, x, y, stride, palette pointer; then its pixels; palette
    pixels = bytes([2, 0, 1, 1])
    head = struct.pack("<BBIIII", 5, PAL_CACHE_ME | 4, 4, 1, 4, 0)
    pointer = len(head) + len(pixels)
    body = head[:-4] + struct.pack("<I", pointer) + pixels + wire_palette(42, colors)
    p, data_at = cache.resolve(body[1], body, len(head) - 4)
    assert p is not None
    img = decode_bitmap(5, body[data_at : data_at + 4], 4, 1, 4, top_down=True,
                        palette=p.entries)
    assert bytes(img.pixels) == b"".join(palette_pixel(colors[i]) for i in pixels)
    # an LZ_PLT image later: flags FROM_CACHE, data_size, palette id, the LZ stream
    case = lz_case(PLT8, 5, 3, True, random.Random(1))
    assert case.palette is not None
    cache.put(SpicePalette(43, struct.pack(f"<{len(case.palette)}I", *case.palette),
                           len(case.palette)))
    lz_body = struct.pack("<BIQ", PAL_FROM_CACHE, len(case.stream), 43) + case.stream
    p2, data_at = cache.resolve(lz_body[0], lz_body, 5)
    assert p2 is not None and data_at == 13
    assert bytes(decode_lz(lz_body[data_at:], palette=p2.entries).pixels) == case.expected
