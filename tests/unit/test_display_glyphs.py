"""1-bit masks from bitmaps, raster text (A1/A4/A8, back area, overlapping glyphs) and the
simple stroke, against per-pixel references written from spice.proto's description."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.display import (
    Box,
    Glyph,
    SolidBrush,
    Surface,
    SurfaceFormat,
    glyph_bpp,
    mask_from_bitmap,
    stroke,
    text,
)
from tests.unit import display_reference as ref
from tests.unit.test_display_raster import H, W, clip_arg, grid, make_surface


def ref_bit(data: bytes, stride: int, x: int, y: int, big_endian: bool) -> bool:
    byte = data[y * stride + x // 8]
    return bool(byte >> (7 - x % 8 if big_endian else x % 8) & 1)


@pytest.mark.parametrize("fmt", [1, 2])
@pytest.mark.parametrize("width,height,stride", [(1, 1, 1), (8, 2, 1), (9, 3, 4), (17, 2, 3)])
@pytest.mark.parametrize("top_down", [True, False])
def test_mask_from_bitmap(fmt: int, width: int, height: int, stride: int,
                          top_down: bool) -> None:
    rng = np.random.default_rng(width * 100 + height)
    data = rng.integers(0, 256, size=stride * height, dtype=np.uint8).tobytes()
    bits = mask_from_bitmap(fmt, data, width, height, stride, top_down=top_down)
    for y in range(height):
        row = y if top_down else height - 1 - y
        assert [bool(b) for b in bits[y]] == [
            ref_bit(data, stride, x, row, fmt == 2) for x in range(width)]


@pytest.mark.parametrize("fmt,width,height,stride,size", [
    (3, 8, 1, 1, 1), (1, 9, 2, 1, 4), (1, 8, 2, 1, 1), (1, 0, 1, 1, 1), (2, 8, 3, 2, 4)])
def test_bad_mask_bitmaps(fmt: int, width: int, height: int, stride: int, size: int) -> None:
    with pytest.raises(RemoteProtocolError):
        mask_from_bitmap(fmt, bytes(size), width, height, stride, top_down=True)


def ref_coverage(glyph: Glyph, bpp: int, gx: int, gy: int, top_down: bool) -> int:
    stride = (glyph.width * bpp + 7) // 8
    row = gy if top_down else glyph.height - 1 - gy
    if bpp == 1:
        return 255 if ref_bit(glyph.data, stride, gx, row, True) else 0
    if bpp == 4:
        byte = glyph.data[row * stride + gx // 2]
        return byte & 0xF0 if gx % 2 == 0 else (byte & 0x0F) << 4
    return glyph.data[row * stride + gx]


def make_glyphs(bpp: int, seed: int) -> list[Glyph]:
    rng = np.random.default_rng(seed)
    out = []
    for rx, ry, ox, oy, w, h in [(1, 4, 0, -3, 3, 4), (3, 4, 0, -2, 5, 3), (6, 6, 1, -1, 4, 2),
                                 (-2, 1, 0, 0, 3, 2)]:
        stride = (w * bpp + 7) // 8
        out.append(Glyph(rx, ry, ox, oy, w, h,
                         rng.integers(0, 256, size=stride * h, dtype=np.uint8).tobytes()))
    return out


@pytest.mark.parametrize("bpp", [1, 4, 8])
@pytest.mark.parametrize("top_down", [False, True])
@pytest.mark.parametrize("clip", [None, [(0, 0, 4, 7), (2, 3, 9, 5)]])
@pytest.mark.parametrize("back", [None, (2, 1, 6, 6)])
def test_text(bpp: int, top_down: bool, clip: list[tuple[int, int, int, int]] | None,
              back: tuple[int, int, int, int] | None) -> None:
    glyphs = make_glyphs(bpp, bpp)
    s = make_surface(1000 + bpp)
    before = grid(s)
    bbox = (0, 0, 8, 7)
    fore, back_color = 0x00336699, 0x00ABCDEF
    text(s, Box(*bbox), clip_arg(clip), glyphs=glyphs, bpp=bpp, fore=SolidBrush(fore),
         back=SolidBrush(back_color), back_area=None if back is None else Box(*back),
         top_down=top_down)
    want = before
    if back is not None:
        area = (max(back[0], bbox[0]), max(back[1], bbox[1]), min(back[2], bbox[2]),
                min(back[3], bbox[3]))
        want = ref.draw(want, area, clip, None, lambda x, y, d: back_color)

    def cover(x: int, y: int) -> int | None:
        best = None
        for g in glyphs:
            b = g.box
            if b.left <= x < b.right and b.top <= y < b.bottom:
                c = ref_coverage(g, bpp, x - b.left, y - b.top, top_down)
                best = c if best is None else max(best, c)
        return best

    def pixel(x: int, y: int, d: int) -> int | None:
        c = cover(x, y)
        if c is None:   # outside every glyph box, but inside their bounds: X cleared only
            bounds = [g.box for g in glyphs]
            inside = (min(b.left for b in bounds) <= x < max(b.right for b in bounds)
                      and min(b.top for b in bounds) <= y < max(b.bottom for b in bounds))
            return d & 0xFFFFFF if inside else None
        return ref.over_word(fore | 0xFF000000, c, d) & 0xFFFFFF

    assert grid(s) == ref.draw(want, bbox, clip, None, pixel)


def test_text_on_argb_keeps_the_blended_alpha() -> None:
    s = make_surface(1100, SurfaceFormat.ARGB32)
    before = grid(s)
    g = Glyph(2, 2, 0, 0, 1, 1, bytes([0x80]))
    text(s, Box(0, 0, W, H), None, glyphs=[g], bpp=8, fore=SolidBrush(0x102030))
    assert grid(s)[2][2] == ref.over_word(0xFF102030, 0x80, before[2][2])


@pytest.mark.parametrize("glyph,bpp", [(Glyph(0, 0, 0, 0, 9, 2, bytes(3)), 1),
                                       (Glyph(0, 0, 0, 0, 3, 2, bytes(3)), 4),
                                       (Glyph(0, 0, 0, 0, 2, 2, bytes(3)), 8)])
def test_short_glyph_data_is_a_protocol_error(glyph: Glyph, bpp: int) -> None:
    with pytest.raises(RemoteProtocolError, match="glyph needs"):
        text(make_surface(1), Box(0, 0, W, H), None, glyphs=[glyph], bpp=bpp,
             fore=SolidBrush(0))


def test_far_apart_glyphs_cost_only_the_visible_window() -> None:
    far = [Glyph(1, 1, 0, 0, 1, 1, b"\x80"), Glyph(1 << 30, 1 << 30, 0, 0, 1, 1, b"\x80"),
           Glyph(-(1 << 30), 3, 0, 0, 1, 1, b"\x80")]
    s = make_surface(1700)
    before = grid(s)
    text(s, Box(0, 0, W, H), None, glyphs=far, bpp=1, fore=SolidBrush(0x123456))
    # the glyphs' bounds span rows 1.. of the surface: other pixels there lose their X byte
    after = grid(s)
    assert after[1][1] == 0x123456 and after[0] == before[0]
    assert all(after[y][x] == before[y][x] & 0xFFFFFF
               for y in range(1, H) for x in range(W) if (x, y) != (1, 1))
    with pytest.raises(RemoteProtocolError, match="glyph needs"):   # checked even off-screen
        text(s, Box(0, 0, W, H), None, glyphs=[*far, Glyph(1 << 30, 0, 0, 0, 8, 8, b"")],
             bpp=1, fore=SolidBrush(0))


def test_glyph_bpp() -> None:
    assert [glyph_bpp(f) for f in (1, 2, 4, 1 | 8)] == [1, 4, 8, 1]
    with pytest.raises(InvalidArgument):
        glyph_bpp(8)


def ref_line(points: list[tuple[int, int]]) -> set[tuple[int, int]]:
    from fractions import Fraction
    out = set()
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        k = max(abs(x1 - x0), abs(y1 - y0))
        for i in range(k + 1):
            t = Fraction(i, k) if k else Fraction(0)
            out.add((int((x0 + (x1 - x0) * t + Fraction(1, 2)) // 1),
                     int((y0 + (y1 - y0) * t + Fraction(1, 2)) // 1)))
    return out


@pytest.mark.parametrize("points", [
    [(0, 0), (8, 0)], [(4, -3), (4, 10)], [(0, 0), (8, 6)], [(8, 0), (0, 6), (8, 6), (0, 0)],
    [(-5, 3), (20, 4)], [(2, 2), (2, 2)], [(1, 5), (7, 1), (1, 1), (7, 5)]])
@pytest.mark.parametrize("desc", [ref.OP_PUT, ref.OP_XOR])
def test_stroke_draws_each_pixel_once(points: list[tuple[int, int]], desc: int) -> None:
    s = make_surface(1200)
    before = grid(s)
    stroke(s, None, points=points, brush=SolidBrush(0x00FF00FF), rop_descriptor=desc)
    on = ref_line(points) if len(points) > 1 else set()
    if points[0] == points[-1] and len(set(points)) == 1:
        on = {points[0]}
    want = ref.draw(before, (0, 0, W, H), None, None, lambda x, y, d: (
        ref.ropd_word(desc, 0x00FF00FF, d, ref.INVERS_BRUSH) if (x, y) in on else None))
    assert grid(s) == want


def test_stroke_far_points_are_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        stroke(Surface(0, 4, 4, SurfaceFormat.XRGB32), None, points=[(0, 0), (1 << 30, 0)],
               brush=SolidBrush(0), rop_descriptor=ref.OP_PUT)


def test_long_stroke_allocates_only_the_surface() -> None:
    s = Surface(0, 4, 4, SurfaceFormat.XRGB32)
    # 2^20 x 2^20 would be a terabyte of flags; only the diagonal's on-surface part is kept
    stroke(s, None, points=[(0, 0), (1 << 20, 1 << 20)], brush=SolidBrush(0xFFFFFF),
           rop_descriptor=ref.OP_PUT)
    assert [int(s.words[i, i]) for i in range(4)] == [0xFFFFFF] * 4
    assert int(s.words.sum()) == 4 * 0xFFFFFF


def test_glyph_of_a_parsed_glyph() -> None:
    from atp_notebook.spice.proto.display_vector import RasterGlyph
    from atp_notebook.spice.proto.display_wire import Point

    parsed = RasterGlyph(Point(10, 20), Point(-1, -7), 8, 2, b"\x80\x01")
    assert Glyph.of(parsed) == Glyph(10, 20, -1, -7, 8, 2, b"\x80\x01")
    assert Glyph.of(parsed).box == Box(9, 13, 17, 15)
