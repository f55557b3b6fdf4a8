"""Surfaces (formats, the registry's bounds, damage merging), the pixmap cache (every cache
flag's semantics and its size bound) and the ROP truth tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.display import (
    Box,
    PixmapCache,
    RopDescriptor,
    SurfaceFormat,
    Surfaces,
    apply_rop2,
    apply_rop3,
    is_lossy,
    ropd_table,
)
from atp_notebook.spice.display.surfaces import MAX_DAMAGE_RECTS
from atp_notebook.spice.proto.constants import ImageType
from tests.unit import display_reference as ref


def test_create_get_destroy_and_primary() -> None:
    surfaces = Surfaces()
    primary = surfaces.create(0, 64, 48, 32, primary=True)
    off = surfaces.create(7, 3, 2, SurfaceFormat.A8)
    assert primary.pixels.shape == (48, 64, 4) and primary.pixels.dtype == np.uint8
    assert primary.pixels.flags.c_contiguous and not primary.pixels.any()
    assert surfaces.primary is primary and surfaces.get(7) is off and len(surfaces) == 2
    assert surfaces.nbytes == 64 * 48 * 4 + 3 * 2 * 4
    assert primary.take_damage() == [Box(0, 0, 64, 48)]   # new contents: all of it
    assert surfaces.destroy(0) is primary
    assert surfaces.primary is None and surfaces.nbytes == 24 and 0 not in surfaces
    surfaces.clear()
    assert len(surfaces) == 0 and surfaces.nbytes == 0


def test_words_view_is_bgrx_little_endian() -> None:
    s = Surfaces().create(0, 2, 1, SurfaceFormat.XRGB32)
    s.pixels[0, 1] = (0x11, 0x22, 0x33, 0x44)
    assert int(s.words[0, 1]) == 0x44332211
    s.words[0, 0] = 0x00FF0000    # red
    assert s.pixels[0, 0].tolist() == [0, 0, 255, 0]


@pytest.mark.parametrize("fmt", list(SurfaceFormat))
def test_every_spice_format_is_accepted(fmt: SurfaceFormat) -> None:
    assert Surfaces().create(1, 5, 5, int(fmt)).format is fmt


@pytest.mark.parametrize("sid,width,height,fmt,match", [
    (1, 0, 5, 32, "outside"), (1, 5, 0, 32, "outside"), (1, 16385, 1, 32, "outside"),
    (1, -1, 5, 32, "outside"), (1, 5, 5, 24, "unknown format"), (1, 5, 5, 0, "unknown format"),
    (1 << 32, 5, 5, 32, "not a u32"), (-1, 5, 5, 32, "not a u32")])
def test_bad_surface_create(sid: int, width: int, height: int, fmt: int, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        Surfaces().create(sid, width, height, fmt)


def test_surface_bounds_count_and_bytes() -> None:
    surfaces = Surfaces(max_surfaces=3, max_bytes=100 * 100 * 4)
    surfaces.create(0, 50, 100, 32)
    with pytest.raises(RemoteProtocolError, match="created twice"):
        surfaces.create(0, 1, 1, 32)
    with pytest.raises(RemoteProtocolError, match="past 40000 bytes"):
        surfaces.create(1, 51, 100, 32)
    surfaces.create(1, 50, 100, 32)           # exactly the cap
    with pytest.raises(RemoteProtocolError, match="past"):
        surfaces.create(2, 1, 1, 32)
    surfaces.destroy(1)
    surfaces.create(2, 1, 1, 32)
    surfaces.create(3, 1, 1, 32)
    with pytest.raises(RemoteProtocolError, match="more than 3 surfaces"):
        surfaces.create(4, 1, 1, 32)
    with pytest.raises(RemoteProtocolError, match="unknown surface 9"):
        surfaces.destroy(9)
    with pytest.raises(RemoteProtocolError, match="unknown surface 9"):
        surfaces.get(9)
    with pytest.raises(InvalidArgument):
        Surfaces(max_surfaces=0)


def test_hostile_sizes_do_not_allocate() -> None:
    surfaces = Surfaces()   # default 512 MiB: 16384 x 16384 x 4 = 1 GiB is refused at once
    with pytest.raises(RemoteProtocolError, match="past"):
        surfaces.create(0, 16384, 16384, 32)
    assert surfaces.nbytes == 0 and len(surfaces) == 0


@pytest.mark.parametrize("boxes,want", [
    ([(0, 0, 2, 2), (5, 5, 6, 6)], [(0, 0, 2, 2), (5, 5, 6, 6)]),
    ([(0, 0, 2, 2), (2, 0, 4, 2)], [(0, 0, 4, 2)]),                    # sharing an edge
    ([(0, 0, 4, 4), (1, 1, 2, 2)], [(0, 0, 4, 4)]),                    # contained
    ([(0, 0, 2, 2), (5, 0, 7, 2), (1, 0, 6, 1)], [(0, 0, 7, 2)]),      # a bridge merges all
    ([(-5, -5, 2, 2), (8, 8, 30, 30)], [(0, 0, 2, 2), (8, 8, 10, 10)]),  # clipped
    ([(3, 3, 3, 9), (20, 20, 25, 25)], []),                            # empty and outside
])
def test_damage_merges(boxes: list[tuple[int, int, int, int]],
                       want: list[tuple[int, int, int, int]]) -> None:
    s = Surfaces().create(0, 10, 10, 32)
    s.take_damage()
    for b in boxes:
        s.add_damage(Box(*b))
    assert s.take_damage() == [Box(*w) for w in want]
    assert s.take_damage() == []


def test_damage_past_the_limit_becomes_one_box() -> None:
    s = Surfaces().create(0, 200, 10, 32)
    s.take_damage()
    for i in range(MAX_DAMAGE_RECTS + 1):
        s.add_damage(Box(i * 3, i % 5, i * 3 + 1, i % 5 + 1))
    assert s.take_damage() == [Box(0, 0, MAX_DAMAGE_RECTS * 3 + 1, 5)]


def img(h: int, w: int, value: int = 1) -> np.ndarray:
    return np.full((h, w, 4), value, dtype=np.uint8)


def test_pixmap_cache_put_get_and_lossless() -> None:
    cache = PixmapCache(max_pixels=100)
    source = img(5, 4, 9)
    cache.put(1, source, lossy=False)
    source[...] = 0                  # the cache kept a copy
    got = cache.get(1)
    assert got.shape == (5, 4, 4) and (got == 9).all() and not got.flags.writeable
    assert (cache.get_lossless(1) == 9).all() and cache.pixels == 20 and 1 in cache
    cache.put(2, img(2, 2), lossy=True)
    assert (cache.get(2) == 1).all()
    with pytest.raises(RemoteProtocolError, match="cached lossy"):
        cache.get_lossless(2)
    with pytest.raises(RemoteProtocolError, match="not cached"):
        cache.get(3)
    with pytest.raises(RemoteProtocolError, match="not cached"):
        cache.get_lossless(3)


def test_pixmap_cache_replace_me() -> None:
    cache = PixmapCache(max_pixels=100)
    cache.put(5, img(3, 3, 1), lossy=True)
    cache.replace(5, img(3, 3, 2), lossy=False)
    assert (cache.get_lossless(5) == 2).all() and not cache.is_lossy_entry(5)
    with pytest.raises(RemoteProtocolError, match="already lossless"):
        cache.replace(5, img(3, 3), lossy=False)
    with pytest.raises(RemoteProtocolError, match="is not cached"):
        cache.replace(6, img(3, 3), lossy=False)
    cache.put(7, img(1, 1), lossy=True)
    with pytest.raises(RemoteProtocolError, match="lossy image"):
        cache.replace(7, img(1, 1), lossy=True)


def test_pixmap_cache_size_bound() -> None:
    cache = PixmapCache(max_pixels=50)
    cache.put(1, img(5, 5), lossy=False)
    cache.put(2, img(5, 5), lossy=False)               # exactly full
    with pytest.raises(RemoteProtocolError, match="50 pixels"):
        cache.put(3, img(1, 1), lossy=False)
    cache.put(2, img(5, 5, 3), lossy=False)            # replacing an entry frees it first
    with pytest.raises(RemoteProtocolError):
        cache.put(2, img(6, 5), lossy=False)
    assert (cache.get(2) == 3).all() and cache.pixels == 50
    cache.invalidate([1, 99])                          # unknown ids are ignored
    assert cache.pixels == 25 and 1 not in cache
    cache.put(3, img(5, 5), lossy=False)
    cache.clear()
    assert cache.pixels == 0 and len(cache) == 0
    with pytest.raises(InvalidArgument):
        PixmapCache(max_pixels=-1)
    with pytest.raises(InvalidArgument):
        cache.put(1, np.zeros((2, 2, 3), np.uint8), lossy=False)


def test_is_lossy() -> None:
    assert [t for t in ImageType if is_lossy(t)] == [ImageType.JPEG, ImageType.JPEG_ALPHA]


def test_ropd_tables_match_the_reference_for_every_descriptor() -> None:
    for desc in range(1 << 11):
        for source, dest in [(RopDescriptor.INVERS_SRC, RopDescriptor.INVERS_DEST),
                             (RopDescriptor.INVERS_BRUSH, RopDescriptor.INVERS_DEST),
                             (RopDescriptor.INVERS_BRUSH, RopDescriptor.INVERS_SRC)]:
            table = ropd_table(desc, source=source, dest=dest)
            for s, d in itertools.product((0, 1), (0, 1)):
                want = ref.ropd_word(desc, s * ref.M32, d * ref.M32, source, dest) & 1
                assert table >> (s << 1 | d) & 1 == want, (desc, source, dest)


def test_apply_rop2_and_rop3_bitwise() -> None:
    rng = np.random.default_rng(3)
    p, s, d = (rng.integers(0, 1 << 32, size=8, dtype=np.uint64).astype(np.uint32)
               for _ in range(3))
    for table in range(16):
        got = apply_rop2(table, s, d)
        for i in range(8):
            want = 0
            for bit in range(32):
                want |= (table >> ((int(s[i]) >> bit & 1) << 1 | (int(d[i]) >> bit & 1)) & 1) \
                    << bit
            assert int(got[i]) == want
    for code in range(256):
        got = apply_rop3(code, p, s, d)
        assert [int(v) for v in got] == [
            ref.rop3_word(code, int(a), int(b), int(c)) for a, b, c in zip(p, s, d, strict=True)]
