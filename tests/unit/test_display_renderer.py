"""DisplayRenderer on hand-built messages: every draw type, the DRAW_COPY fast path and its
fallbacks, the pixmap cache, SURFACE images, GLZ images that paint nothing, surfaces and
their lifecycle. Bodies are laid out as spice.proto says and parsed by DisplayProtocol;
the expected pixels are small explicit arrays worked out here, not by the raster."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import numpy as np
import pytest

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.codecs import GlzWindow
from atp_notebook.spice.codecs.palettes import SpicePalette
from atp_notebook.spice.display import Box
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.proto.common import Ping
from atp_notebook.spice.proto.constants import DisplayMsg, SurfaceFlags
from atp_notebook.spice.proto.display import SurfaceCreated
from atp_notebook.spice.proto.display_monitors import Head
from atp_notebook.spice.proto.display_wire import Ropd
from tests.unit.display_messages import Body, image_bytes
from tests.unit.glz_streams import GlzTestEncoder
from tests.unit.renderer_messages import (
    CACHE_ME,
    CACHE_REPLACE_ME,
    PUT,
    Words,
    bitmap32,
    cached,
    draw_copy,
    glz_image,
    lz32,
    parse,
    renderer_with,
    screen,
    surface_image,
    words,
)

BG = 0x00101010
IMG = words([[0x00112233, 0x00445566, 0x00778899],
             [0x00AABBCC, 0x00DDEEFF, 0x00010203]])  # 3 wide, 2 high


def expect(width: int = 6, height: int = 4, fill: int = BG) -> Words:
    return np.full((height, width), fill, dtype=np.uint32)


# --- DRAW_COPY: the fast path and every reason to leave it ----------------------------------

def _put_at(top: int, left: int, src: Words) -> Words:
    e = expect()
    e[top:top + src.shape[0], left:left + src.shape[1]] = src
    return e


def _clipped() -> Words:
    e = expect()
    e[1:3, 3:5] = IMG[:, 1:3]  # clip (0, 3, 4, 6): columns 3.. of the box at column 2
    return e


def _two_rects() -> Words:
    e = expect()
    e[1, 2:5] = IMG[0]
    e[2, 2] = IMG[1, 0]
    return e


def _scaled() -> Words:
    e = expect()
    e[0:4, 0:6] = np.repeat(np.repeat(IMG, 2, axis=0), 2, axis=1)
    return e


def _masked() -> Words:
    e = expect()
    e[1, 2], e[1, 4], e[2, 3] = IMG[0, 0], IMG[0, 2], IMG[1, 1]
    return e


# a 3x2 1BIT_LE top-down mask: row 0 pixels 0 and 2, row 1 pixel 1
MASK = image_bytes(5, 0, 3, 2, struct.pack("<BBIII", 1, 4, 3, 2, 1) + struct.pack("<I", 0)
                   + bytes([0b101, 0b010]))

COPY_CASES: dict[str, tuple[Callable[[], object], Callable[[], Words], int]] = {
    "whole image, no clip": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5)), lambda: _put_at(1, 2, IMG), 1),
    "raw BITMAP keeps X": (
        lambda: draw_copy(bitmap32(1, IMG | 0x7F000000), (0, 0, 2, 3)),
        lambda: _put_at(0, 0, IMG | 0x7F000000), 1),
    "one clip rect covering the box": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), clip=[(0, 0, 4, 6)]),
        lambda: _put_at(1, 2, IMG), 1),
    "box on the surface's far corner": (
        lambda: draw_copy(lz32(1, IMG), (2, 3, 4, 6)), lambda: _put_at(2, 3, IMG), 1),
    "one clip rect inside the box": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), clip=[(0, 3, 4, 6)]), _clipped, 0),
    "two clip rects": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), clip=[(1, 2, 2, 5), (2, 2, 3, 3)]),
        _two_rects, 0),
    "clip outside the box": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), clip=[(0, 0, 1, 6)]), expect, 0),
    "xor": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), rop=Ropd.OP_XOR),
        lambda: _put_at(1, 2, IMG ^ BG), 0),
    "inverted source": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), rop=Ropd.OP_PUT | Ropd.INVERS_SRC),
        lambda: _put_at(1, 2, ~IMG), 0),
    "scaled 2x": (
        lambda: draw_copy(lz32(1, IMG), (0, 0, 4, 6), (0, 0, 2, 3)), _scaled, 0),
    "part of the image": (
        lambda: draw_copy(lz32(1, IMG), (0, 0, 1, 2), (1, 1, 2, 3)),
        lambda: _put_at(0, 0, IMG[1:2, 1:3]), 0),
    "masked": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), mask=MASK), _masked, 0),
    "inverted mask": (
        lambda: draw_copy(lz32(1, IMG), (1, 2, 3, 5), mask=MASK, mask_flags=1),
        lambda: np.where(_masked() != BG, BG, _put_at(1, 2, IMG)).astype(np.uint32), 0),
}


@pytest.mark.parametrize("name", sorted(COPY_CASES))
def test_draw_copy(name: str) -> None:
    make, expected, fast = COPY_CASES[name]
    r = renderer_with(6, 4, fill=BG)
    r.apply(make())  # type: ignore[arg-type]
    assert np.array_equal(screen(r), expected()), name
    assert r.fast_copies == fast


def test_the_fast_path_records_damage_and_decodes_into_the_surface() -> None:
    r = renderer_with(6, 4, fill=BG)
    r.apply(draw_copy(lz32(1, IMG), (1, 2, 3, 5)))
    assert r.primary is not None and r.primary.take_damage() == [Box(2, 1, 5, 3)]
    r.apply(draw_copy(lz32(1, IMG), (0, 0, 2, 3), clip=[(0, 0, 1, 6)]))
    assert r.primary.take_damage() == [Box(0, 0, 3, 1)]


# --- the other draws --------------------------------------------------------------------

RAMP = (np.arange(24, dtype=np.uint32).reshape(4, 6) * 0x00010101) | 0x00400000
TILE = words([[0x00000001, 0x00000002], [0x00000003, 0x00000004]])


def _fill(brush: Callable[[Body], Body], rop: int = PUT,
          clip: list[tuple[int, int, int, int]] | None = None) -> bytes:
    return brush(Body().base(0, (1, 1, 3, 4), clip or [])).u16(rop).mask().finish()


def _expected_pattern() -> Words:
    e = RAMP.copy()
    for y in range(1, 3):
        for x in range(1, 4):
            e[y, x] = TILE[(y - 1) % 2, (x - 1) % 2]  # tile origin at (1, 1)
    return e


def _region(values: Words | int, top: int = 1, left: int = 1, bottom: int = 3,
            right: int = 4) -> Words:
    e = RAMP.copy()
    e[top:bottom, left:right] = values
    return e


def _text_body() -> bytes:
    # one A1 glyph 3x2, rows top-down: 101, 010, rendered at (1, 1)
    string = (struct.pack("<HB", 1, 1 | 8) + struct.pack("<4iHH", 1, 1, 0, 0, 3, 2)
              + bytes([0b1010_0000, 0b0100_0000]))
    return (Body().base(0, (0, 0, 4, 6)).ptr(string).rect(0, 0, 0, 0).u8(1).u32(0x00FFFFFF)
            .u8(0).u16(PUT).u16(PUT).finish())


def _text_expected() -> Words:
    e = RAMP.copy()
    e[1, 1] = e[1, 3] = e[2, 2] = 0x00FFFFFF
    return e


def _stroke_body() -> bytes:
    # one segment (0.5, 2) -> (3, 2) in fixed28_4: pixels 1..3 of row 2 (halves round up)
    path = struct.pack("<I", 1) + struct.pack("<BI", 3, 2) + struct.pack("<4i", 8, 32, 48, 32)
    return (Body().base(0, (2, 0, 3, 4)).ptr(path).u8(0).u8(1).u32(0x00ABCDEF)
            .u16(PUT).u16(PUT).finish())


def _over_half(src: Words, dst: Words) -> Words:
    """pixman OVER of an opaque source at global alpha 128, per 8-bit channel."""
    def mul(a: np.ndarray, b: int) -> np.ndarray:
        t = a.astype(np.int64) * b + 0x80
        return ((t >> 8) + t) >> 8
    out = np.zeros(src.shape, dtype=np.uint32)
    for shift in (0, 8, 16):
        s = (src >> shift) & 0xFF
        d = (dst >> shift) & 0xFF
        out |= ((mul(s, 128) + mul(d, 127)).astype(np.uint32) & 0xFF) << shift
    return out


OTHER_DRAWS: dict[str, tuple[DisplayMsg, Callable[[], bytes], Callable[[], Words]]] = {
    "fill solid": (DisplayMsg.DRAW_FILL, lambda: _fill(lambda b: b.brush_solid(0x00FF0000)),
                   lambda: _region(0x00FF0000)),
    "fill solid, clipped": (
        DisplayMsg.DRAW_FILL,
        lambda: _fill(lambda b: b.brush_solid(0x00FF0000), clip=[(1, 1, 2, 2)]),
        lambda: _region(0x00FF0000, 1, 1, 2, 2)),
    "fill solid, xor": (DisplayMsg.DRAW_FILL,
                        lambda: _fill(lambda b: b.brush_solid(0x00FF00FF), Ropd.OP_XOR),
                        lambda: _region(RAMP[1:3, 1:4] ^ 0x00FF00FF)),
    "fill pattern": (DisplayMsg.DRAW_FILL,
                     lambda: _fill(lambda b: b.brush_pattern(bitmap32(3, TILE), 1, 1)),
                     _expected_pattern),
    "blackness": (DisplayMsg.DRAW_BLACKNESS,
                  lambda: Body().base(0, (1, 1, 3, 4)).mask().finish(), lambda: _region(0)),
    "whiteness": (DisplayMsg.DRAW_WHITENESS,
                  lambda: Body().base(0, (1, 1, 3, 4)).mask().finish(),
                  lambda: _region(0xFFFFFFFF)),
    "invers": (DisplayMsg.DRAW_INVERS,
               lambda: Body().base(0, (1, 1, 3, 4)).mask().finish(),
               lambda: _region(~RAMP[1:3, 1:4])),
    "invers, masked": (DisplayMsg.DRAW_INVERS,
                       lambda: Body().base(0, (1, 1, 3, 4)).mask(0, (0, 0), MASK).finish(),
                       lambda: np.where(_masked_at(1, 1), ~RAMP, RAMP).astype(np.uint32)),
    "rop3 PATCOPY": (DisplayMsg.DRAW_ROP3,
                     lambda: (Body().base(0, (1, 1, 3, 4)).ptr(lz32(1, IMG)).rect(0, 0, 2, 3)
                              .u8(1).u32(0x00123456).u8(0xF0).u8(1).mask().finish()),
                     lambda: _region(0x00123456)),
    "rop3 source xor dest": (
        DisplayMsg.DRAW_ROP3,
        lambda: (Body().base(0, (1, 1, 3, 4)).ptr(lz32(1, IMG)).rect(0, 0, 2, 3)
                 .u8(1).u32(0x00123456).u8(0x66).u8(1).mask().finish()),
        lambda: _region(IMG ^ RAMP[1:3, 1:4])),
    "opaque xor": (DisplayMsg.DRAW_OPAQUE,
                   lambda: (Body().base(0, (1, 1, 3, 4)).ptr(lz32(1, IMG)).rect(0, 0, 2, 3)
                            .u8(1).u32(0x000F0F0F).u16(Ropd.OP_XOR).u8(1).mask().finish()),
                   lambda: _region(IMG ^ 0x000F0F0F)),
    "blend or": (DisplayMsg.DRAW_BLEND,
                 lambda: (Body().base(0, (1, 1, 3, 4)).ptr(lz32(1, IMG)).rect(0, 0, 2, 3)
                          .u16(Ropd.OP_OR).u8(1).mask().finish()),
                 lambda: _region(IMG | RAMP[1:3, 1:4])),
    "transparent": (DisplayMsg.DRAW_TRANSPARENT,
                    lambda: (Body().base(0, (1, 1, 3, 4)).ptr(lz32(1, IMG)).rect(0, 0, 2, 3)
                             .u32(0).u32(0x00445566).finish()),
                    lambda: _region(np.where(IMG == 0x00445566, RAMP[1:3, 1:4], IMG))),
    "alpha blend, opaque": (DisplayMsg.DRAW_ALPHA_BLEND,
                            lambda: (Body().base(0, (1, 1, 3, 4)).u8(0).u8(255)
                                     .ptr(lz32(1, IMG)).rect(0, 0, 2, 3).finish()),
                            lambda: _region(IMG)),
    "alpha blend, half": (DisplayMsg.DRAW_ALPHA_BLEND,
                          lambda: (Body().base(0, (1, 1, 3, 4)).u8(0).u8(128)
                                   .ptr(lz32(1, IMG)).rect(0, 0, 2, 3).finish()),
                          lambda: _region(_over_half(IMG, RAMP[1:3, 1:4]))),
    "alpha blend, alpha 0": (DisplayMsg.DRAW_ALPHA_BLEND,
                             lambda: (Body().base(0, (1, 1, 3, 4)).u8(0).u8(0)
                                      .ptr(lz32(1, IMG)).rect(0, 0, 2, 3).finish()),
                             RAMP.copy),
    "copy bits": (DisplayMsg.COPY_BITS,
                  lambda: Body().base(0, (0, 0, 2, 2)).point(3, 2).finish(),
                  lambda: _region(RAMP[2:4, 3:5], 0, 0, 2, 2)),
    "copy bits, overlapping": (DisplayMsg.COPY_BITS,
                               lambda: Body().base(0, (0, 1, 4, 6)).point(0, 0).finish(),
                               lambda: _region(RAMP[:, 0:5], 0, 1, 4, 6)),
    "text": (DisplayMsg.DRAW_TEXT, _text_body, _text_expected),
    "stroke": (DisplayMsg.DRAW_STROKE, _stroke_body,
               lambda: _region(0x00ABCDEF, 2, 1, 3, 4)),
}


def _masked_at(top: int, left: int) -> np.ndarray:
    on = np.zeros((4, 6), dtype=bool)
    on[top, left] = on[top, left + 2] = on[top + 1, left + 1] = True
    return on


@pytest.mark.parametrize("name", sorted(OTHER_DRAWS))
def test_each_draw_type(name: str) -> None:
    msg_type, body, expected = OTHER_DRAWS[name]
    r = renderer_with(6, 4)
    assert r.primary is not None
    r.primary.words[...] = RAMP
    r.apply(parse(msg_type, body()))
    assert np.array_equal(screen(r), expected()), f"{name}:\n{screen(r)}"


def test_composite_is_refused_by_name() -> None:
    body = (Body().base(0, (0, 0, 2, 3)).u32(3).ptr(lz32(1, IMG)).pack("hh", 0, 0)
            .pack("hh", 0, 0).finish())
    r = renderer_with(6, 4)
    with pytest.raises(RemoteProtocolError, match="DRAW_COMPOSITE: not drawn"):
        r.apply(parse(DisplayMsg.DRAW_COMPOSITE, body))


# --- images from the pixmap cache and from surfaces -------------------------------------

def test_cache_me_then_from_cache_draws_the_same_pixels() -> None:
    r = renderer_with(6, 4, fill=BG, pixmap_cache_pixels=100)
    r.apply(draw_copy(lz32(0x51, IMG, CACHE_ME), (0, 0, 2, 3)))
    r.apply(draw_copy(cached(0x51, 3, 2), (2, 3, 4, 6)))
    assert np.array_equal(screen(r)[2:4, 3:6], IMG)
    r.apply(draw_copy(cached(0x51, 3, 2, lossless=True), (2, 0, 4, 3)))
    assert np.array_equal(screen(r)[2:4, 0:3], IMG)
    assert r.pixmap_cache.pixels == 6
    # a cached image drawn with a clip that paints nothing is still cached
    r.apply(draw_copy(lz32(0x52, IMG, CACHE_ME), (0, 0, 2, 3), clip=[(3, 0, 4, 1)]))
    assert 0x52 in r.pixmap_cache


def test_inval_list_and_inval_all_pixmaps_empty_the_cache() -> None:
    r = renderer_with(6, 4, pixmap_cache_pixels=100)
    for image_id in (1, 2, 3):
        r.apply(draw_copy(lz32(image_id, IMG, CACHE_ME), (0, 0, 2, 3)))
    inval = Body().u16(2).u8(1).pack("Q", 1).u8(1).pack("Q", 3).finish()
    r.apply(parse(DisplayMsg.INVAL_LIST, inval))
    assert 1 not in r.pixmap_cache and 2 in r.pixmap_cache and 3 not in r.pixmap_cache
    with pytest.raises(RemoteProtocolError, match=r"DRAW_COPY: .*FROM_CACHE of 0x1"):
        r.apply(draw_copy(cached(1, 3, 2), (0, 0, 2, 3)))
    r.apply(parse(DisplayMsg.INVAL_ALL_PIXMAPS, b"\x00"))
    assert len(r.pixmap_cache) == 0 and r.pixmap_cache.pixels == 0


def test_a_lossy_entry_is_replaced_by_its_lossless_image() -> None:
    import simplejpeg

    from tests.unit.renderer_messages import jpeg_image

    rgb = np.full((2, 3, 3), 200, dtype=np.uint8)
    jpeg = simplejpeg.encode_jpeg(rgb, quality=90, colorspace="RGB")
    r = renderer_with(6, 4, pixmap_cache_pixels=100)
    r.apply(draw_copy(jpeg_image(7, jpeg, 3, 2, CACHE_ME), (0, 0, 2, 3)))
    with pytest.raises(RemoteProtocolError, match="cached lossy"):
        r.apply(draw_copy(cached(7, 3, 2, lossless=True), (0, 0, 2, 3)))
    r.apply(draw_copy(lz32(7, IMG, CACHE_REPLACE_ME), (0, 0, 2, 3)))
    r.apply(draw_copy(cached(7, 3, 2, lossless=True), (2, 3, 4, 6)))
    assert np.array_equal(screen(r)[2:4, 3:6], IMG)


def test_a_surface_image_copies_another_surfaces_pixels() -> None:
    r = renderer_with(6, 4, fill=BG)
    r.apply(SurfaceCreated(1, 4, 3, 32, SurfaceFlags(0)))
    r.apply(draw_copy(lz32(1, IMG), (1, 1, 3, 4), surface=1))
    r.apply(draw_copy(surface_image(1, 4, 3), (0, 0, 2, 2), (1, 2, 3, 4)))
    e = expect()
    e[0:2, 0:2] = IMG[:, 1:3]
    assert np.array_equal(screen(r), e)
    assert r.primary is not None and r.primary.surface_id == 0  # surface 1 is off-screen


def test_a_surface_can_be_its_own_source() -> None:
    r = renderer_with(6, 4)
    assert r.primary is not None
    r.primary.words[...] = RAMP
    r.apply(draw_copy(surface_image(0, 6, 4), (0, 1, 4, 6), (0, 0, 4, 5)))
    e = RAMP.copy()
    e[:, 1:6] = RAMP[:, 0:5]
    assert np.array_equal(screen(r), e)


# --- GLZ ----------------------------------------------------------------------------------

def test_a_glz_image_that_paints_nothing_is_still_decoded_for_the_next_one() -> None:
    rng = random.Random(13)
    encoder = GlzTestEncoder(1000)
    pixels = [rng.getrandbits(24) for _ in range(12)]
    first = encoder.encode(8, 4, 3, pixels, rng, cross=False)
    second = encoder.encode(8, 4, 3, pixels, rng, literal_rate=0.0)
    assert second.refs.get("cross"), "the second image must copy from the first"
    r = renderer_with(8, 8, glz=GlzWindow(1000), glz_timeout=0.0)
    r.apply(draw_copy(glz_image(1, first.stream, 4, 3), (0, 0, 3, 4), clip=[(7, 7, 8, 8)]))
    assert set(screen(r).reshape(-1)) == {0}
    r.apply(draw_copy(glz_image(2, second.stream, 4, 3), (4, 4, 7, 8)))
    expected = np.frombuffer(second.expected, dtype="<u4").reshape(3, 4)
    assert np.array_equal(screen(r)[4:7, 4:8], expected)
    assert r.fast_copies == 1


# --- surfaces, MODE, RESET, MONITORS_CONFIG, palettes -------------------------------------

def test_surface_lifecycle_mode_and_reset() -> None:
    r = DisplayRenderer()
    assert r.primary is None
    r.apply(Ping(1, 2, 0))  # draws nothing
    r.apply(parse(DisplayMsg.MODE, struct.pack("<III", 640, 480, 32)))
    assert r.primary is not None and (r.primary.width, r.primary.height) == (640, 480)
    r.apply(parse(DisplayMsg.MODE, struct.pack("<III", 800, 600, 16)))
    assert r.primary is not None and (r.primary.width, r.primary.height) == (800, 600)
    assert len(r.surfaces) == 1
    r.apply(parse(DisplayMsg.SURFACE_DESTROY, struct.pack("<I", 0)))
    assert r.primary is None
    r.apply(parse(DisplayMsg.SURFACE_CREATE, struct.pack("<5I", 0, 16, 8, 32, 1)))
    r.apply(parse(DisplayMsg.SURFACE_CREATE, struct.pack("<5I", 3, 4, 4, 32, 0)))
    assert r.primary is not None and r.primary.width == 16 and len(r.surfaces) == 2
    r.state.palettes.put(SpicePalette(9, b"\0\0\0\0", 1))
    r.apply(parse(DisplayMsg.RESET, b""))
    assert r.primary is None and len(r.surfaces) == 0 and len(r.state.palettes) == 0


def test_palette_invalidation() -> None:
    r = DisplayRenderer()
    for unique in (1, 2):
        r.state.palettes.put(SpicePalette(unique, b"\0\0\0\0", 1))
    r.apply(parse(DisplayMsg.INVAL_PALETTE, struct.pack("<Q", 1)))
    assert 1 not in r.state.palettes and 2 in r.state.palettes
    r.apply(parse(DisplayMsg.INVAL_PALETTE, struct.pack("<Q", 1)))  # already gone: fine
    r.apply(parse(DisplayMsg.INVAL_ALL_PALETTES, b""))
    assert len(r.state.palettes) == 0


def test_monitors_config_is_kept() -> None:
    r = DisplayRenderer()
    assert r.monitors is None
    body = struct.pack("<HH", 1, 4) + struct.pack("<7I", 0, 0, 1024, 768, 0, 0, 0)
    r.apply(parse(DisplayMsg.MONITORS_CONFIG, body))
    assert r.monitors is not None
    assert r.monitors.heads == (Head(0, 0, 1024, 768, 0, 0, 0),)
