"""Every DRAW_* and COPY_BITS, from bodies built by hand as spice.proto lays them out, parsed
through DisplayProtocol (ids as enums.h numbers them) into the exact event; then each one
truncated, its pointers past the body, its counts past the caps, its enums unknown."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.display import DisplayProtocol, DrawCopy
from atp_notebook.spice.proto.display_draw import (
    AlphaFlags,
    CopyBits,
    DrawAlphaBlend,
    DrawBlackness,
    DrawBlend,
    DrawComposite,
    DrawFill,
    DrawInvers,
    DrawOpaque,
    DrawRop3,
    DrawTransparent,
    DrawWhiteness,
)
from atp_notebook.spice.proto.display_vector import (
    MAX_GLYPHS,
    MAX_PATH_POINTS,
    MAX_PATH_SEGMENTS,
    DrawStroke,
    DrawText,
    GlyphString,
    LineAttr,
    LineFlags,
    PathFlags,
    PathSegment,
    RasterGlyph,
    StringFlags,
)
from atp_notebook.spice.proto.display_wire import (
    MAX_CLIP_RECTS,
    Brush,
    BrushType,
    MaskFlags,
    Point,
    QMask,
    Ropd,
    ScaleMode,
)

from .display_messages import (
    Body,
    image_bytes,
    lz_image,
    mask_bitmap,
    points,
    rect,
    spice_image,
)

MINI = struct.Struct("<HI")
BOX = (10, 20, 30, 60)
CLIP = [(10, 20, 20, 60), (20, 20, 30, 40)]
PUT = Ropd.OP_PUT
Case = Callable[[], tuple[int, bytes, ChannelEvent]]


def parse(msg_type: int, body: bytes) -> ChannelEvent:
    (event,) = DisplayProtocol(ChannelType.DISPLAY).receive_data(
        MINI.pack(msg_type, len(body)) + body)
    return event


def fill() -> tuple[int, bytes, ChannelEvent]:
    b = Body().base(1, BOX, CLIP).brush_solid(0x00FF8040).u16(PUT).mask()
    body = b.finish()
    return 302, body, DrawFill(1, rect(BOX), tuple(map(rect, CLIP)),
                               Brush(BrushType.SOLID, color=0x00FF8040), PUT, None)


def fill_pattern_masked() -> tuple[int, bytes, ChannelEvent]:
    b = (Body().base(0, BOX).brush_pattern(lz_image(1, 8, 8), 3, -4)
         .u16(Ropd.OP_XOR | Ropd.INVERS_BRUSH).mask(1, (5, 6), mask_bitmap(2, 40, 20)))
    body = b.finish()
    return 302, body, DrawFill(
        0, rect(BOX), None, Brush(BrushType.PATTERN, pattern=spice_image(body, b.at[0]),
                                pattern_pos=Point(3, -4)),
        Ropd.OP_XOR | Ropd.INVERS_BRUSH,
        QMask(MaskFlags.INVERS, Point(5, 6), spice_image(body, b.at[1])))


def opaque() -> tuple[int, bytes, ChannelEvent]:
    b = (Body().base(0, BOX, CLIP[:1]).ptr(lz_image()).rect(0, 0, 2, 4).brush_solid(7)
         .u16(PUT | Ropd.INVERS_SRC).u8(1).mask())
    body = b.finish()
    return 303, body, DrawOpaque(0, rect(BOX), (rect(CLIP[0]),), spice_image(body, b.at[0]),
                                 rect((0, 0, 2, 4)), Brush(BrushType.SOLID, color=7),
                                 PUT | Ropd.INVERS_SRC, ScaleMode.NEAREST, None)


def copy_masked() -> tuple[int, bytes, ChannelEvent]:
    b = (Body().base(0, BOX).ptr(lz_image()).rect(0, 0, 2, 4).u16(PUT).u8(0)
         .mask(0, (1, 2), mask_bitmap(3, 40, 20)))
    body = b.finish()
    mask = QMask(MaskFlags(0), Point(1, 2), spice_image(body, b.at[1]))
    return 304, body, DrawCopy(0, rect(BOX), None, spice_image(body, b.at[0]),
                               rect((0, 0, 2, 4)), PUT, 0, 0, True, mask)


def blend() -> tuple[int, bytes, ChannelEvent]:
    b = Body().base(2, BOX).ptr(lz_image()).rect(0, 0, 2, 4).u16(Ropd.OP_AND).u8(0).mask()
    body = b.finish()
    return 305, body, DrawBlend(2, rect(BOX), None, spice_image(body, b.at[0]),
                                rect((0, 0, 2, 4)), Ropd.OP_AND, ScaleMode.INTERPOLATE, None)


def blackness() -> tuple[int, bytes, ChannelEvent]:
    return 306, Body().base(0, BOX, CLIP).mask().finish(), DrawBlackness(
        0, rect(BOX), tuple(map(rect, CLIP)), None)


def whiteness() -> tuple[int, bytes, ChannelEvent]:
    return 307, Body().base(0, BOX).mask().finish(), DrawWhiteness(0, rect(BOX), None, None)


def invers() -> tuple[int, bytes, ChannelEvent]:
    b = Body().base(0, BOX).mask(1, (0, 0), mask_bitmap(9, 40, 20))
    body = b.finish()
    return 308, body, DrawInvers(0, rect(BOX), None, QMask(MaskFlags.INVERS, Point(0, 0),
                                                         spice_image(body, b.at[0])))


def rop3() -> tuple[int, bytes, ChannelEvent]:
    b = (Body().base(0, BOX).ptr(lz_image()).rect(0, 0, 2, 4).brush_solid(0xFFFFFF).u8(0xCA)
         .u8(0).mask())
    body = b.finish()
    return 309, body, DrawRop3(0, rect(BOX), None, spice_image(body, b.at[0]), rect((0, 0, 2, 4)),
                               Brush(BrushType.SOLID, color=0xFFFFFF), 0xCA,
                               ScaleMode.INTERPOLATE, None)


def stroke() -> tuple[int, bytes, ChannelEvent]:
    path = (struct.pack("<I", 2) + struct.pack("<BI", 1, 2) + struct.pack("<4i", 0, 0, 160, 16)
            + struct.pack("<BI", 0x1A, 1) + struct.pack("<2i", 32, 48))
    style = struct.pack("<3i", 16, 32, 48)
    b = (Body().base(0, BOX).ptr(path).u8(LineFlags.STYLED | LineFlags.START_WITH_GAP).u8(3)
         .ptr(style).brush_solid(0xFF).u16(PUT).u16(0))
    body = b.finish()
    segments = (PathSegment(PathFlags.BEGIN, points(0, 0, 160, 16)),
                PathSegment(PathFlags.END | PathFlags.CLOSE | PathFlags.BEZIER, points(32, 48)))
    return 310, body, DrawStroke(0, rect(BOX), None, segments,
                                 LineAttr(LineFlags.STYLED | LineFlags.START_WITH_GAP,
                                          (16, 32, 48)),
                                 Brush(BrushType.SOLID, color=0xFF), PUT, 0)


def stroke_plain() -> tuple[int, bytes, ChannelEvent]:
    path = struct.pack("<I", 1) + struct.pack("<BI", 3, 2) + struct.pack("<4i", 1, 2, 3, 4)
    b = Body().base(0, BOX).ptr(path).u8(0).brush_solid(1).u16(PUT).u16(PUT)
    body = b.finish()
    return 310, body, DrawStroke(0, rect(BOX), None, (PathSegment(
        PathFlags.BEGIN | PathFlags.END, points(1, 2, 3, 4)),), LineAttr(LineFlags(0)),
        Brush(BrushType.SOLID, color=1), PUT, PUT)


def glyphs(bpp_flag: int, bpp: int) -> tuple[int, bytes, ChannelEvent]:
    # two glyphs, 5x3 and 9x2: rows of (width * bpp + 7) // 8 bytes
    dims = [(5, 3), (9, 2)]
    data = [bytes(range(i * 50, i * 50 + (w * bpp + 7) // 8 * h)) for i, (w, h) in
            enumerate(dims)]
    string = struct.pack("<HB", 2, bpp_flag | StringFlags.RASTER_TOP_DOWN)
    for (w, h), d in zip(dims, data, strict=True):
        string += struct.pack("<4iHH", 100, 200, -1, 9, w, h) + d
    b = (Body().base(0, BOX).ptr(string).rect(10, 20, 30, 60).brush_solid(0xFFFFFF)
         .u8(0).u16(PUT).u16(PUT))
    body = b.finish()
    expected = GlyphString(StringFlags(bpp_flag) | StringFlags.RASTER_TOP_DOWN, bpp, tuple(
        RasterGlyph(Point(100, 200), Point(-1, 9), w, h, d)
        for (w, h), d in zip(dims, data, strict=True)))
    return 311, body, DrawText(0, rect(BOX), None, expected, rect((10, 20, 30, 60)),
                               Brush(BrushType.SOLID, color=0xFFFFFF), Brush(BrushType.NONE),
                               PUT, PUT)


def transparent() -> tuple[int, bytes, ChannelEvent]:
    b = Body().base(0, BOX).ptr(lz_image()).rect(0, 0, 2, 4).u32(0xFF00FF).u32(0x123456)
    body = b.finish()
    return 312, body, DrawTransparent(0, rect(BOX), None, spice_image(body, b.at[0]),
                                      rect((0, 0, 2, 4)), 0xFF00FF, 0x123456)


def alpha_blend() -> tuple[int, bytes, ChannelEvent]:
    b = Body().base(0, BOX).u8(3).u8(128).ptr(lz_image()).rect(0, 0, 2, 4)
    body = b.finish()
    return 313, body, DrawAlphaBlend(
        0, rect(BOX), None, AlphaFlags.DEST_HAS_ALPHA | AlphaFlags.SRC_SURFACE_HAS_ALPHA, 128,
        spice_image(body, b.at[0]), rect((0, 0, 2, 4)))


def composite_full() -> tuple[int, bytes, ChannelEvent]:
    flags = 3 | (1 << 19) | (1 << 20) | (1 << 21) | (1 << 24)
    b = (Body().base(0, BOX).u32(flags).ptr(lz_image(1)).ptr(lz_image(2))
         .pack("6I", *range(1, 7)).pack("6I", *range(11, 17)).pack("4h", -1, 2, 3, -4))
    body = b.finish()
    return 318, body, DrawComposite(0, rect(BOX), None, flags, spice_image(body, b.at[0]),
                                    spice_image(body, b.at[1]), tuple(range(1, 7)),
                                    tuple(range(11, 17)), Point(-1, 2), Point(3, -4))


def composite_plain() -> tuple[int, bytes, ChannelEvent]:
    # no HAS_* flag: the optional members are absent from the wire, not zeroed
    b = Body().base(0, BOX).u32(3).ptr(lz_image(1)).pack("4h", 5, 6, 0, 0)
    body = b.finish()
    event = DrawComposite(0, rect(BOX), None, 3, spice_image(body, b.at[0]), None, None, None,
                          Point(5, 6), Point(0, 0))
    assert event.op == 3
    return 318, body, event


def copy_bits() -> tuple[int, bytes, ChannelEvent]:
    return 104, Body().base(0, BOX, CLIP).point(20, 0).finish(), CopyBits(
        0, rect(BOX), tuple(map(rect, CLIP)), Point(20, 0))


def surface_image_copy() -> tuple[int, bytes, ChannelEvent]:
    # a SURFACE image: the source is another surface, its union one u32 surface id
    b = (Body().base(0, BOX).ptr(image_bytes(0, 104, 64, 64, struct.pack("<I", 5)))
         .rect(0, 0, 20, 40).u16(PUT).u8(0).mask())
    body = b.finish()
    image = spice_image(body, b.at[0])
    assert image.surface_id == 5
    return 304, body, DrawCopy(0, rect(BOX), None, image, rect((0, 0, 20, 40)), PUT, 0, 0, False)


CASES: dict[str, Case] = {
    "fill": fill, "fill-pattern-masked": fill_pattern_masked, "opaque": opaque,
    "copy-masked": copy_masked, "blend": blend, "blackness": blackness,
    "whiteness": whiteness, "invers": invers, "rop3": rop3, "stroke": stroke,
    "stroke-plain": stroke_plain, "text-a1": lambda: glyphs(1, 1),
    "text-a4": lambda: glyphs(2, 4), "text-a8": lambda: glyphs(4, 8),
    "transparent": transparent, "alpha-blend": alpha_blend,
    "composite-full": composite_full, "composite-plain": composite_plain,
    "copy-bits": copy_bits, "surface-image": surface_image_copy,
}

NAMES = {302: "DRAW_FILL", 303: "DRAW_OPAQUE", 304: "DRAW_COPY", 305: "DRAW_BLEND",
         306: "DRAW_BLACKNESS", 307: "DRAW_WHITENESS", 308: "DRAW_INVERS", 309: "DRAW_ROP3",
         310: "DRAW_STROKE", 311: "DRAW_TEXT", 312: "DRAW_TRANSPARENT",
         313: "DRAW_ALPHA_BLEND", 318: "DRAW_COMPOSITE", 104: "COPY_BITS"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_draw_parses_to_its_exact_event(name: str) -> None:
    msg_type, body, expected = CASES[name]()
    assert parse(msg_type, body) == expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_truncation_names_the_message_and_an_offset(name: str) -> None:
    msg_type, body, _ = CASES[name]()
    for end in range(len(body)):
        with pytest.raises(RemoteProtocolError,
                           match=rf"^{NAMES[msg_type]}: .*offset \d+ of a {end}-byte body"):
            parse(msg_type, body[:end])


def _patched(body: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(body)
    struct.pack_into("<" + fmt, out, at, value)
    return bytes(out)


def _hostile() -> list[tuple[str, int, bytes, str]]:
    cases = []
    _, body, _ = fill()
    cases += [
        ("clip type", 302, _patched(body, 20, "B", 2),
         r"DRAW_FILL: unknown clip type 2 .*offset 20"),
        ("clip cap", 302, _patched(body, 21, "I", MAX_CLIP_RECTS + 1),
         rf"{MAX_CLIP_RECTS + 1} clip rects \(at most {MAX_CLIP_RECTS}\)"),
        ("clip past body", 302, _patched(body, 21, "I", 1000), "1000 clip rects of 16 bytes run"),
    ]
    brush_at = 21 + 4 + 2 * 16
    cases.append(("brush type", 302, _patched(body, brush_at, "B", 3),
                  rf"unknown brush type 3 .*offset {brush_at}"))
    _, body, _ = fill_pattern_masked()
    cases += [
        ("pattern NULL", 302, _patched(body, 22, "I", 0), r"brush pattern is NULL .*offset 22"),
        ("pattern past body", 302, _patched(body, 22, "I", len(body)),
         rf"brush pattern points at {len(body)}, past the body"),
        ("mask past body", 302, _patched(body, 22 + 4 + 8 + 2 + 1 + 8, "I", 1 << 31),
         "mask bitmap points at 2147483648, past the body"),
    ]
    _, body, _ = opaque()
    image_at = struct.unpack_from("<I", body, 41)[0]
    cases += [
        ("image type", 303, _patched(body, image_at + 8, "B", 2), "unknown image type 2"),
        ("image type 110", 303, _patched(body, image_at + 8, "B", 110), "unknown image type 110"),
        ("image size", 303, _patched(body, image_at + 10, "I", 0), "impossible size 0x2"),
        ("image huge", 303, _patched(body, image_at + 14, "I", 1 << 20), "impossible size"),
        ("descriptor cut", 303, body[: image_at + 17], "source image needs 18 bytes"),
        ("scale mode", 303, _patched(body, 41 + 4 + 16 + 5 + 2, "B", 2),
         r"unknown scale mode 2 .*offset 68"),
    ]
    _, body, _ = surface_image_copy()
    cases.append(("surface id cut", 304, body[:-4], "source image surface id needs 4 bytes"))
    _, body, _ = stroke()
    path_at = struct.unpack_from("<I", body, 21)[0]
    cases += [
        ("path NULL", 310, _patched(body, 21, "I", 0), r"DRAW_STROKE: path is NULL .*offset 21"),
        ("segments cap", 310, _patched(body, path_at, "I", MAX_PATH_SEGMENTS + 1),
         f"{MAX_PATH_SEGMENTS + 1} path segments"),
        ("segments past body", 310, _patched(body, path_at, "I", 5000), "5000 path segments of"),
        ("points past body", 310, _patched(body, path_at + 5, "I", 100000), "100000 path points"),
        ("points cap", 310, _patched(body, path_at + 5, "I", MAX_PATH_POINTS + 1),
         f"more than {MAX_PATH_POINTS} points"),
        ("style past body", 310, _patched(body, 27, "I", len(body) + 1), "line style points at"),
        ("style cut", 310, _patched(body, 26, "B", 255), "255 line style segments of 4 bytes"),
    ]
    _, body, _ = glyphs(1, 1)
    string_at = struct.unpack_from("<I", body, 21)[0]
    cases += [
        ("string NULL", 311, _patched(body, 21, "I", 0), "DRAW_TEXT: string is NULL"),
        ("glyph cap", 311, _patched(body, string_at, "H", MAX_GLYPHS + 1),
         f"{MAX_GLYPHS + 1} glyphs \\(at most {MAX_GLYPHS}\\)"),
        ("glyphs past body", 311, _patched(body, string_at, "H", 200), "200 glyphs of 20 bytes"),
        ("no depth", 311, _patched(body, string_at + 2, "B", 8), "name no single glyph depth"),
        ("two depths", 311, _patched(body, string_at + 2, "B", 3), "name no single glyph depth"),
        ("glyph rows", 311, _patched(body, string_at + 3 + 18, "H", 60000),
         "glyph bitmap of 60000 bytes runs past the body"),
    ]
    _, body, _ = composite_full()
    cases += [
        ("composite flags", 318, _patched(body, 21, "I", 1 << 25),
         r"unknown composite flags 0x2000000 .*offset 21"),
        ("composite NULL src", 318, _patched(body, 25, "I", 0), "source image is NULL"),
    ]
    return cases


HOSTILE = _hostile()


@pytest.mark.parametrize(("what", "msg_type", "body", "fragment"), HOSTILE,
                         ids=[h[0] for h in HOSTILE])
def test_hostile_draws_are_remote_protocol_errors(what: str, msg_type: int, body: bytes,
                                                  fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        parse(msg_type, body)


def test_an_empty_text_needs_no_depth_and_a_null_style_is_no_style() -> None:
    body = (Body().base(0, BOX).ptr(struct.pack("<HB", 0, 0)).rect(0, 0, 0, 0).u8(0).u8(0)
            .u16(0).u16(0).finish())
    event = parse(311, body)
    assert isinstance(event, DrawText) and event.string == GlyphString(StringFlags(0), 0, ())
    path = struct.pack("<I", 0)
    body = (Body().base(0, BOX).ptr(path).u8(LineFlags.STYLED).u8(2).ptr(None).u8(0).u16(0)
            .u16(0).finish())
    event = parse(310, body)
    assert isinstance(event, DrawStroke)
    assert event.path == () and event.attr == LineAttr(LineFlags.STYLED)


def test_unknown_flag_bits_are_dropped_not_fatal() -> None:
    # flags fields keep the bits enums.h defines (a newer server may add some)
    body = Body().base(0, BOX).brush_solid(0).u16(0xFFFF).mask(0xFF).finish()
    event = parse(302, body)
    assert isinstance(event, DrawFill) and event.rop == Ropd(0x7FF) and event.mask is None


def test_a_rects_clip_with_no_rects_is_not_the_same_as_no_clip() -> None:
    # spice.proto Clip: type NONE draws the whole box; type RECTS with count 0 draws nothing
    def blackness(clip: bytes) -> ChannelEvent:
        body = struct.pack("<I4i", 0, 0, 0, 8, 8) + clip + struct.pack("<BiiI", 0, 0, 0, 0)
        return parse(306, body)

    none = blackness(b"\x00")
    empty = blackness(b"\x01" + struct.pack("<I", 0))
    assert isinstance(none, DrawBlackness) and isinstance(empty, DrawBlackness)
    assert (none.clip, empty.clip) == (None, ())
