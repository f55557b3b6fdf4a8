"""Draw operations against the pure-Python reference (tests/unit/display_reference.py): every
ROP descriptor shape, every rop3 code, clip lists (none, empty, overlapping, outside),
masks, scaling, copy_bits in every direction, and hostile geometry."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.codecs import _codecs
from atp_notebook.spice.display import (
    Box,
    PatternBrush,
    QMask,
    SolidBrush,
    Surface,
    SurfaceFormat,
    alpha_blend,
    blackness,
    copy,
    copy_bits,
    fill,
    invers,
    opaque,
    rop3,
    transparent,
    whiteness,
)
from atp_notebook.spice.display.raster import over
from tests.unit import display_reference as ref

W, H = 9, 7
Rect4 = tuple[int, int, int, int]

BBOXES: list[Rect4] = [(1, 1, 7, 6), (-3, -2, 4, 3), (5, 4, 12, 10), (0, 0, W, H)]
CLIPS: list[list[Rect4] | None] = [
    None,
    [(2, 1, 6, 5)],
    [(0, 0, 4, 4), (2, 2, 8, 6)],             # overlapping: XOR must apply once
    [(-5, -5, 3, 3), (7, 5, 20, 20)],         # partly off the surface
    [(1, 1, 5, 5), (1, 1, 5, 5), (3, 0, 4, 7)],  # duplicates and a crossing bar
]
OPS = [ref.OP_PUT, ref.OP_OR, ref.OP_AND, ref.OP_XOR, ref.OP_BLACKNESS, ref.OP_WHITENESS,
       ref.OP_INVERS, 0, ref.OP_PUT | ref.OP_XOR, ref.OP_XOR | ref.OP_INVERS]
INVERSIONS = [sum(c) for n in range(5) for c in itertools.combinations(
    (ref.INVERS_SRC, ref.INVERS_BRUSH, ref.INVERS_DEST, ref.INVERS_RES), n)]
DESCRIPTORS = [op | inv for op in OPS for inv in INVERSIONS]


def words(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 1 << 32, size=(h, w), dtype=np.uint64).astype(np.uint32)


def pixels_of(w32: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w32.astype("<u4")).view(np.uint8).reshape(*w32.shape, 4)


def make_surface(seed: int, fmt: SurfaceFormat = SurfaceFormat.XRGB32) -> Surface:
    s = Surface(0, W, H, fmt)
    s.words[...] = words(np.random.default_rng(seed), H, W)
    s.take_damage()
    return s


def grid(s: Surface) -> ref.Grid:
    return [[int(v) for v in row] for row in s.words]


def as_grid(w32: np.ndarray) -> ref.Grid:
    return [[int(v) for v in row] for row in w32]


def box(r: Rect4) -> Box:
    return Box(*r)


def clip_arg(c: Sequence[Rect4] | None) -> list[Box] | None:
    return None if c is None else [Box(*r) for r in c]


def case(i: int) -> tuple[Rect4, list[Rect4] | None]:
    return BBOXES[i % len(BBOXES)], CLIPS[(i // len(BBOXES)) % len(CLIPS)]


def check_damage(before: ref.Grid, s: Surface) -> None:
    """Every changed pixel lies in a damage rect."""
    damage = s.take_damage()
    after = grid(s)
    for y, x in itertools.product(range(H), range(W)):
        if before[y][x] != after[y][x]:
            assert any(d.left <= x < d.right and d.top <= y < d.bottom for d in damage)


@pytest.mark.parametrize("i,desc", list(enumerate(DESCRIPTORS)))
def test_fill_solid_every_descriptor(i: int, desc: int) -> None:
    s = make_surface(i)
    before = grid(s)
    bbox, clip = case(i)
    color = 0x5A3C0FF1 ^ (i * 0x01010101)
    fill(s, box(bbox), clip_arg(clip), brush=SolidBrush(color), rop_descriptor=desc)
    want = ref.draw(before, bbox, clip, None,
                    lambda x, y, d: ref.ropd_word(desc, color, d, ref.INVERS_BRUSH))
    assert grid(s) == want
    check_damage(before, s)


@pytest.mark.parametrize("i,desc", list(enumerate(DESCRIPTORS[::3])))
def test_fill_pattern_and_none_brush(i: int, desc: int) -> None:
    rng = np.random.default_rng(100 + i)
    tile = words(rng, 2, 3)
    s = make_surface(200 + i)
    before = grid(s)
    bbox, clip = case(i)
    fill(s, box(bbox), clip_arg(clip), brush=PatternBrush(pixels_of(tile), 1, -1),
         rop_descriptor=desc)
    t = as_grid(tile)
    assert grid(s) == ref.draw(before, bbox, clip, None, lambda x, y, d: ref.ropd_word(
        desc, ref.tile_word(t, 1, -1, x, y), d, ref.INVERS_BRUSH))
    s2 = make_surface(200 + i)
    fill(s2, box(bbox), clip_arg(clip), brush=None, rop_descriptor=desc)
    assert grid(s2) == ref.draw(before, bbox, clip, None,
                                lambda x, y, d: ref.ropd_word(desc, 0, d, ref.INVERS_BRUSH))


@pytest.mark.parametrize("i,desc", list(enumerate(DESCRIPTORS)))
def test_copy_every_descriptor(i: int, desc: int) -> None:
    rng = np.random.default_rng(300 + i)
    src = words(rng, 12, 14)
    s = make_surface(i)
    before = grid(s)
    bbox, clip = case(i)
    bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
    area = (2, 1, 2 + bw, 1 + bh)
    copy(s, box(bbox), clip_arg(clip), src=pixels_of(src), src_area=box(area),
         rop_descriptor=desc)
    g = as_grid(src)
    assert grid(s) == ref.draw(before, bbox, clip, None, lambda x, y, d: ref.ropd_word(
        desc, ref.source_word(g, area, bbox, x, y), d, ref.INVERS_SRC))


@pytest.mark.parametrize("i,desc", list(enumerate(DESCRIPTORS[::2])))
def test_opaque_puts_the_source_then_the_brush(i: int, desc: int) -> None:
    rng = np.random.default_rng(400 + i)
    src = words(rng, 8, 9)
    s = make_surface(i)
    before = grid(s)
    bbox, clip = case(i)
    bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
    area = (0, 0, min(bw, 9), min(bh, 8))       # scaled where the bbox is bigger
    color = 0x00C0FFEE
    opaque(s, box(bbox), clip_arg(clip), src=pixels_of(src), src_area=box(area),
           brush=SolidBrush(color), rop_descriptor=desc)
    g = as_grid(src)
    assert grid(s) == ref.draw(before, bbox, clip, None, lambda x, y, d: ref.ropd_word(
        desc, color, ref.source_word(g, area, bbox, x, y), ref.INVERS_BRUSH, ref.INVERS_SRC))


@pytest.mark.parametrize("code", range(256))
def test_rop3_every_code(code: int) -> None:
    rng = np.random.default_rng(code)
    src = words(rng, H, W)
    tile = words(rng, 3, 2)
    s = make_surface(500 + code)
    before = grid(s)
    bbox, clip = case(code)
    bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
    area = (0, 0, min(bw, W), min(bh, H))
    rop3(s, box(bbox), clip_arg(clip), src=pixels_of(src), src_area=box(area),
         brush=PatternBrush(pixels_of(tile), 2, 1), code=code)
    g, t = as_grid(src), as_grid(tile)
    assert grid(s) == ref.draw(before, bbox, clip, None, lambda x, y, d: ref.rop3_word(
        code, ref.tile_word(t, 2, 1, x, y), ref.source_word(g, area, bbox, x, y), d))


@pytest.mark.parametrize("op", [blackness, whiteness, invers])
@pytest.mark.parametrize("mask_pos,invert", [((0, 0), False), ((1, 2), True), ((-1, -1), False),
                                             ((2, 0), True)])
def test_blackness_whiteness_invers_with_masks(op: object, mask_pos: tuple[int, int],
                                               invert: bool) -> None:
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2, size=(5, 6)).astype(bool)
    for i in range(len(BBOXES) * len(CLIPS)):
        s = make_surface(600 + i)
        before = grid(s)
        bbox, clip = case(i)
        op(s, box(bbox), clip_arg(clip), QMask(bits, *mask_pos, invert))  # type: ignore[operator]
        new = {blackness: lambda x, y, d: 0, whiteness: lambda x, y, d: ref.M32,
               invers: lambda x, y, d: d ^ ref.M32}[op]  # type: ignore[index]
        mask = ([[int(b) for b in row] for row in bits], *mask_pos, invert)
        assert grid(s) == ref.draw(before, bbox, clip, mask, new)
        check_damage(before, s)


def sampled(g: ref.Grid, area: Rect4, bbox: Rect4, x: int, y: int, d: int) -> int:
    return ref.source_word(g, area, bbox, x, y)


def keyed(g: ref.Grid, area: Rect4, bbox: Rect4, x: int, y: int, d: int) -> int | None:
    v = ref.source_word(g, area, bbox, x, y)
    return None if v & 0xFFFFFF == 0x123456 else v


def test_copy_scaled_nearest() -> None:
    src = words(np.random.default_rng(8), 6, 5)
    g = as_grid(src)
    for area, bbox in [((0, 0, 5, 6), (0, 0, 9, 7)), ((1, 1, 5, 6), (2, 1, 4, 3)),
                       ((0, 0, 1, 1), (0, 0, W, H)), ((0, 2, 5, 3), (1, 0, 8, 7))]:
        s = make_surface(9)
        before = grid(s)
        copy(s, box(bbox), None, src=pixels_of(src), src_area=box(area))
        want = ref.draw(before, bbox, None, None,
                        functools.partial(sampled, g, area, bbox))
        assert grid(s) == want


def test_transparent_skips_the_colour_key_whatever_x() -> None:
    rng = np.random.default_rng(10)
    src = words(rng, H, W)
    key = 0x00123456
    src[::2, 1::3] = 0xAB123456        # the key with another X byte: still skipped
    src[1, :] = key
    g = as_grid(src)
    for i in range(len(BBOXES) * len(CLIPS)):
        s = make_surface(700 + i)
        before = grid(s)
        bbox, clip = case(i)
        area = (0, 0, min(bbox[2] - bbox[0], W), min(bbox[3] - bbox[1], H))
        transparent(s, box(bbox), clip_arg(clip), src=pixels_of(src), src_area=box(area),
                    true_color=0xFF123456)
        assert grid(s) == ref.draw(before, bbox, clip, None,
                                   functools.partial(keyed, g, area, bbox))


def test_over_rounds_every_product_to_nearest() -> None:
    """Every channel value a through every coverage b onto black gives a * b / 255 rounded
    (the alpha byte too), and the destination keeps d * (255 - a') / 255 rounded."""
    a = np.repeat(np.arange(256, dtype=np.uint32), 256)
    b = np.tile(np.arange(256, dtype=np.uint8), 256)
    src = (a * np.uint32(0x01010101)).astype(np.uint32)
    got = over(src, b, np.zeros_like(src)).view(np.uint8).reshape(-1, 4)
    want = (2 * a.astype(np.int64) * b + 255) // 510
    assert all(np.array_equal(got[:, c], want) for c in range(4))
    dest = src                                      # d = a, source alpha = b, no colour
    alpha_only = (b.astype(np.uint32) * np.uint32(1 << 24)).astype(np.uint32)
    got = over(alpha_only, None, dest).view(np.uint8).reshape(-1, 4)
    assert np.array_equal(got[:, 0], (2 * a.astype(np.int64) * (255 - b) + 255) // 510)


@pytest.mark.parametrize("args", [
    (b"", b"", None, bytearray(4), 1, 255, 0),
    (bytes(8), bytes(8), None, bytearray(4), 2, 255, 0),
    (bytes(8), bytes(8), bytes(1), bytearray(8), 2, 255, 0),
    (bytes(4), bytes(4), None, bytearray(4), 1, 256, 0),
    (bytes(4), bytes(4), None, bytearray(4), -1, 255, 0),
    (bytes(4), bytes(4), None, bytearray(4), 1, 255, 8),
    (bytes(4), bytes(4), None, bytearray(4), 1 << 40, 255, 0),
])
def test_raster_over_checks_every_length(args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        _codecs.raster_over(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [
    (0x96, bytes(8), bytes(8), bytes(4), bytearray(8), 2),
    (0x96, bytes(4), bytes(7), bytes(8), bytearray(8), 2),
    (0x96, bytes(4), bytes(4), bytes(8), bytearray(4), 2),
    (256, bytes(4), bytes(4), bytes(4), bytearray(4), 1),
    (0x96, bytes(4), bytes(4), bytes(4), bytearray(4), -1),
])
def test_raster_rop3_checks_every_length(args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        _codecs.raster_rop3(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", [0, 1, 128, 254, 255])
@pytest.mark.parametrize("src_has_alpha", [False, True])
@pytest.mark.parametrize("dest_has_alpha", [False, True])
@pytest.mark.parametrize("fmt", [SurfaceFormat.XRGB32, SurfaceFormat.ARGB32])
def test_alpha_blend(alpha: int, src_has_alpha: bool, dest_has_alpha: bool,
                     fmt: SurfaceFormat) -> None:
    rng = np.random.default_rng(alpha)
    src = words(rng, H, W)
    if src_has_alpha:   # premultiplied: no channel above alpha
        b = pixels_of(src).copy()
        b[..., :3] = np.minimum(b[..., :3], b[..., 3:4])
        src = b.view("<u4")[..., 0]
    g = as_grid(src)
    s = make_surface(alpha + 1, fmt)
    before = grid(s)
    bbox, clip = (1, 0, 8, 6), [(0, 0, 4, 4), (2, 2, 8, 6)]
    area = (1, 1, 8, 7)
    alpha_blend(s, box(bbox), clip_arg(clip), src=pixels_of(src), src_area=box(area),
                alpha=alpha, src_has_alpha=src_has_alpha, dest_has_alpha=dest_has_alpha)

    def pixel(x: int, y: int, d: int) -> int | None:
        if alpha == 0:
            return None
        sw = ref.source_word(g, area, bbox, x, y)
        sw = sw if src_has_alpha else sw | 0xFF000000
        dw = d if dest_has_alpha else d | 0xFF000000
        out = ref.over_word(sw, alpha, dw)
        if fmt is SurfaceFormat.XRGB32 and not dest_has_alpha:
            out &= 0xFFFFFF
        return out

    assert grid(s) == ref.draw(before, bbox, clip, None, pixel)


@pytest.mark.parametrize("dx,dy", [(2, 0), (-2, 0), (0, 2), (0, -2), (1, 1), (-3, -2), (0, 0)])
@pytest.mark.parametrize("clip", [None, [(0, 0, 5, 4), (3, 2, 9, 7)]])
def test_copy_bits_overlapping_every_direction(dx: int, dy: int,
                                               clip: list[Rect4] | None) -> None:
    s = make_surface(800)
    before = grid(s)
    src_x, src_y = 3, 2
    bbox = (src_x + dx, src_y + dy, src_x + dx + 5, src_y + dy + 4)
    copy_bits(s, box(bbox), clip_arg(clip), src_x=src_x, src_y=src_y)
    assert grid(s) == ref.draw(before, bbox, clip, None, lambda x, y, d: before[
        y - bbox[1] + src_y][x - bbox[0] + src_x])


def test_copy_from_the_same_surface_overlapping() -> None:
    s = make_surface(801)
    before = grid(s)
    copy(s, Box(1, 1, 8, 6), None, src=s.pixels, src_area=Box(0, 0, 7, 5))
    assert grid(s) == ref.draw(before, (1, 1, 8, 6), None, None,
                               lambda x, y, d: before[y - 1][x - 1])


def test_empty_and_outside_draws_change_nothing() -> None:
    s = make_surface(900)
    before = grid(s)
    color = SolidBrush(0)
    for bbox, clip in [((3, 3, 3, 6), None), ((4, 4, 2, 2), None), ((1, 1, 5, 5), []),
                       ((20, 20, 30, 30), None), ((1, 1, 5, 5), [(6, 6, 8, 8)]),
                       ((-(1 << 31), -(1 << 31), -(1 << 30), 0), None)]:
        fill(s, box(bbox), clip_arg(clip), brush=color, rop_descriptor=ref.OP_PUT)
    assert grid(s) == before
    assert s.take_damage() == []


def test_huge_bbox_is_clipped_to_the_surface() -> None:
    s = make_surface(901)
    whiteness(s, Box(-(1 << 31), -(1 << 31), (1 << 31) - 1, (1 << 31) - 1), None)
    assert (s.words == 0xFFFFFFFF).all()
    assert s.take_damage() == [Box(0, 0, W, H)]


def test_many_clip_rects_cost_the_box_not_their_overlap() -> None:
    s = make_surface(902)
    rects = [Box(0, 0, W, H)] * 65536 + [Box(-1, -1, 1, 1)]
    invers(s, Box(0, 0, W, H), rects)
    assert (s.words == ~np.array(grid(make_surface(902)), dtype=np.uint32)).all()


@pytest.mark.parametrize("area", [(0, 0, 10, 7), (-1, 0, 5, 5), (0, 0, 0, 3), (3, 3, 2, 5),
                                  (0, 6, 9, 8)])
def test_source_area_outside_the_source_is_a_protocol_error(area: Rect4) -> None:
    s = make_surface(903)
    src = pixels_of(words(np.random.default_rng(1), H, W))
    with pytest.raises(RemoteProtocolError, match="source area"):
        copy(s, Box(0, 0, 4, 4), None, src=src, src_area=box(area))


@pytest.mark.parametrize("src_x,src_y", [(-1, 0), (0, -1), (5, 0), (0, 4), (1 << 31, 0)])
def test_copy_bits_source_off_the_surface_is_a_protocol_error(src_x: int, src_y: int) -> None:
    s = make_surface(904)
    with pytest.raises(RemoteProtocolError, match="copy_bits source"):
        copy_bits(s, Box(0, 0, 5, 4), None, src_x=src_x, src_y=src_y)


def test_zero_sized_pattern_is_a_protocol_error() -> None:
    s = make_surface(905)
    with pytest.raises(RemoteProtocolError, match="zero size"):
        fill(s, Box(0, 0, 2, 2), None,
             brush=PatternBrush(np.zeros((0, 3, 4), np.uint8)), rop_descriptor=ref.OP_PUT)


@pytest.mark.parametrize("op,value", [(blackness, 0), (whiteness, ref.M32)])
def test_blackness_whiteness_under_every_clip(op: object, value: int) -> None:
    for i in range(len(BBOXES) * len(CLIPS)):
        s = make_surface(1300 + i)
        before = grid(s)
        bbox, clip = case(i)
        op(s, box(bbox), clip_arg(clip))  # type: ignore[operator]
        assert grid(s) == ref.draw(before, bbox, clip, None, lambda x, y, d: value)
        check_damage(before, s)


def test_sources_are_never_written() -> None:
    src = pixels_of(words(np.random.default_rng(11), H, W))
    keep = src.copy()
    s = make_surface(1400)
    draws: list[Callable[[], None]] = [
        lambda: copy(s, Box(0, 0, W, H), [Box(0, 0, 5, 5), Box(2, 2, 9, 7)], src=src,
                     src_area=Box(0, 0, W, H)),
        lambda: alpha_blend(s, Box(0, 0, W, H), None, src=src, src_area=Box(0, 0, W, H),
                            alpha=200, src_has_alpha=False),
        lambda: transparent(s, Box(0, 0, W, H), None, src=src, src_area=Box(0, 0, W, H),
                            true_color=0),
        lambda: opaque(s, Box(0, 0, W, H), None, src=src, src_area=Box(0, 0, W, H),
                       brush=SolidBrush(7), rop_descriptor=ref.OP_XOR),
    ]
    for draw_op in draws:
        draw_op()
        assert np.array_equal(src, keep)


def test_image_pixels_of_a_decoded_image() -> None:
    from atp_notebook.errors import InvalidArgument
    from atp_notebook.spice.codecs import DecodedImage
    from atp_notebook.spice.display import image_pixels

    buf = bytearray(range(2 * 12))              # 2 rows of 2 pixels, stride 12 (4 padding)
    px = image_pixels(DecodedImage(2, 2, 12, buf))
    assert px.shape == (2, 2, 4)
    assert px[1, 1].tolist() == [16, 17, 18, 19] and px[0, 0].tolist() == [0, 1, 2, 3]
    s = make_surface(1500)
    copy(s, Box(3, 3, 5, 5), None, src=px, src_area=Box(0, 0, 2, 2))
    assert int(s.words[4, 4]) == 0x13121110
    with pytest.raises(InvalidArgument):
        image_pixels(DecodedImage(3, 2, 8, buf))
    with pytest.raises(InvalidArgument):
        image_pixels(DecodedImage(2, 3, 12, buf))


def test_compositing_releases_the_gil() -> None:
    from tests.unit.gil_probe import ticks_during

    a = words(np.random.default_rng(12), 768, 1024)
    b = a.copy()
    during, calls = ticks_during(lambda: over(a, None, b, alpha=128, flags=3))
    assert during > 1000 * calls, (during, calls)
    out = np.empty_like(a)
    during, calls = ticks_during(
        lambda: _codecs.raster_rop3(0x96, a.data, b.data, a.data, out.data, a.size))
    assert during > 1000 * calls, (during, calls)


@pytest.mark.parametrize("fmt,key,skipped,drawn", [
    (SurfaceFormat.X555, 0x00F8F8F8, 0x00FFFFFF, 0x00FFF7FF),
    (SurfaceFormat.R565, 0x00F8FCF8, 0x00FFFFFF, 0x00FFFBFF),
    (SurfaceFormat.XRGB32, 0x00F8F8F8, 0x00F8F8F8, 0x00F8F8F9),
])
def test_transparent_on_16_bit_surfaces_compares_their_bits(
        fmt: SurfaceFormat, key: int, skipped: int, drawn: int) -> None:
    s = make_surface(1600, fmt)
    before = grid(s)
    src = np.array([[skipped, drawn]], dtype=np.uint32)
    transparent(s, Box(0, 0, 2, 1), None, src=pixels_of(src), src_area=Box(0, 0, 2, 1),
                true_color=key)
    assert grid(s)[0][:2] == [before[0][0], drawn]
