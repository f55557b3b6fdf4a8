"""The display channel's shared wire pieces (spice.proto structs): a bounds-checked reader,
Rect, Point, Clip, SpiceImage, Brush, QMask and the small enums and flags inside draw
messages, with the limits that keep a hostile count from allocating without bound.

Layout rules (spice.proto, research/display.md §1.1): little-endian and packed; a pointer
(``Image *``, ``Path *``, ``String *``, ``fixed28_4 *style``) is a u32 offset from the start
of the message body, 0 = NULL; ``@to_ptr``/``@ptr_array`` members are inline. Every read
goes through :class:`BodyReader`, so truncation, a pointer past the body or an unknown enum
value is one RemoteProtocolError naming the message, the field and the byte offset.

Example::

    reader = BodyReader(body, "DRAW_FILL")
    surface_id, box, clip = read_display_base(reader)
    brush = read_brush(reader)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.constants import ImageType

U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
POINT = struct.Struct("<ii")
POINT16 = struct.Struct("<hh")
RECT = struct.Struct("<iiii")  # top, left, bottom, right
IMAGE_DESCRIPTOR = struct.Struct("<QBBII")  # id, type, flags, width, height

# A guard against a hostile count; real clips hold a handful (the Linux qxl driver sends
# one rect per dirty rect of a frame)
MAX_CLIP_RECTS = 65_536
# QEMU's largest qxl surface is 16384 px a side (qxl vgamem limits); anything bigger is garbage
MAX_SIDE = 16384

_IMAGE_TYPES = frozenset(int(t) for t in ImageType if t is not ImageType.RESERVED)
# the union types that are one BinaryData: u32 data_size, then the data
_BINARY_DATA = frozenset({ImageType.QUIC, ImageType.LZ_RGB, ImageType.GLZ_RGB, ImageType.JPEG,
                          ImageType.LZ4})
_PAL_FROM_CACHE = 2  # bitmap_flags: a u64 palette id instead of a Palette pointer
_BITMAP_FORMATS = range(1, 11)  # bitmap_fmt 1BIT_LE .. 8BIT_A (0 is INVALID)
BITMAP_HEAD = struct.Struct("<BBIII")  # format, flags, x (width), y (height), stride
PALETTE_HEAD = struct.Struct("<QH")  # unique id, num_ents; then u32 entries


class ClipType(IntEnum):
    """enums.h SpiceClipType (enum8 clip_type)."""

    NONE = 0
    RECTS = 1


class BrushType(IntEnum):
    """enums.h SpiceBrushType (enum8 brush_type)."""

    NONE = 0
    SOLID = 1
    PATTERN = 2


class ScaleMode(IntEnum):
    """enums.h SpiceImageScaleMode (enum8 image_scale_mode)."""

    INTERPOLATE = 0
    NEAREST = 1


class Ropd(IntFlag):
    """enums.h SpiceRopd (flags16 ropd): how source, brush and destination combine."""

    INVERS_SRC = 1 << 0
    INVERS_BRUSH = 1 << 1
    INVERS_DEST = 1 << 2
    OP_PUT = 1 << 3
    OP_OR = 1 << 4
    OP_AND = 1 << 5
    OP_XOR = 1 << 6
    OP_BLACKNESS = 1 << 7
    OP_WHITENESS = 1 << 8
    OP_INVERS = 1 << 9
    INVERS_RES = 1 << 10


class MaskFlags(IntFlag):
    """enums.h SpiceMaskFlags (flags8 mask_flags)."""

    INVERS = 1 << 0


class BodyReader:
    """A cursor over one message body: every read checks its bounds and names ``message``,
    the field and the offset in the RemoteProtocolError it raises."""

    __slots__ = ("body", "message", "offset")

    def __init__(self, body: bytes, message: str, offset: int = 0) -> None:
        self.body = body
        self.message = message
        self.offset = offset

    def fail(self, what: str, offset: int | None = None) -> RemoteProtocolError:
        at = self.offset if offset is None else offset
        return RemoteProtocolError(f"{self.message}: {what} (at offset {at} of a "
                                   f"{len(self.body)}-byte body)")

    def take(self, layout: struct.Struct, what: str) -> tuple[int, ...]:
        if len(self.body) - self.offset < layout.size:
            raise self.fail(f"{what} needs {layout.size} bytes, the body is truncated")
        values = layout.unpack_from(self.body, self.offset)
        self.offset += layout.size
        return values

    def u8(self, what: str) -> int:
        value: int = self.take(U8, what)[0]
        return value

    def u16(self, what: str) -> int:
        value: int = self.take(U16, what)[0]
        return value

    def u32(self, what: str) -> int:
        value: int = self.take(U32, what)[0]
        return value

    def u64(self, what: str) -> int:
        value: int = self.take(U64, what)[0]
        return value

    def bytes_(self, size: int, what: str) -> bytes:
        if len(self.body) - self.offset < size:
            raise self.fail(f"{what} of {size} bytes runs past the body")
        data = self.body[self.offset : self.offset + size]
        self.offset += size
        return data

    def skip(self, size: int, what: str) -> None:
        """Step over ``size`` bytes that must be in the body (image data: no copy)."""
        if len(self.body) - self.offset < size:
            raise self.fail(f"{what} of {size} bytes runs past the body")
        self.offset += size

    def count(self, what: str, value: int, limit: int, item_size: int) -> int:
        """A count checked against its named cap and against the bytes left (items of at
        least ``item_size`` bytes), before anything is allocated for it."""
        if value > limit:
            raise self.fail(f"{value} {what} (at most {limit})")
        if value * item_size > len(self.body) - self.offset:
            raise self.fail(f"{value} {what} of {item_size} bytes run past the body")
        return value

    def pointer(self, what: str) -> BodyReader | None:
        """A u32 pointer: None for NULL, else a reader at that offset of the body."""
        at = self.offset
        target = self.u32(what)
        if target == 0:
            return None
        if target >= len(self.body):
            raise self.fail(f"{what} points at {target}, past the body", at)
        return BodyReader(self.body, self.message, target)

    def enum(self, kind: type[IntEnum], value: int, what: str, at: int) -> int:
        try:
            return kind(value)
        except ValueError:
            raise self.fail(f"unknown {what} {value}", at) from None


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Rect:
    top: int
    left: int
    bottom: int
    right: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True, slots=True)
class SpiceImage:
    """An image descriptor and where its payload starts. ``body`` is the whole message body
    and ``at`` the offset of the image's union (what follows the descriptor) in it: the
    pointers inside the union (a BITMAP's or LZ_PLT's palette) are offsets into ``body``."""

    id: int
    type: int  # SPICE_IMAGE_TYPE_*: BITMAP 0, QUIC 1, LZ_RGB 101, GLZ_RGB 102, LZ4 109, ...
    flags: int  # CACHE_ME 1, HIGH_BITS_SET 2, CACHE_REPLACE_ME 4
    width: int
    height: int
    body: bytes = field(repr=False)
    at: int = field(repr=False)

    @property
    def payload(self) -> memoryview:
        """The union after the descriptor to the end of the body (no copy); the codec reads
        its own sizes from it."""
        return memoryview(self.body)[self.at:]

    @property
    def surface_id(self) -> int:
        """A SURFACE image's source surface (its union is one u32; checked when parsed)."""
        if self.type != ImageType.SURFACE:
            raise RemoteProtocolError(f"image type {self.type} is not a SURFACE image")
        value: int = U32.unpack_from(self.body, self.at)[0]
        return value


@dataclass(frozen=True, slots=True)
class QMask:
    """A 1-bit mask (spice.proto ``QMask``): ``image`` placed at ``pos``; INVERS inverts it."""

    flags: MaskFlags
    pos: Point
    image: SpiceImage


@dataclass(frozen=True, slots=True)
class Brush:
    """spice.proto ``Brush``: NONE; SOLID with ``color`` (xRGB); PATTERN with a tiled
    ``pattern`` image anchored at ``pattern_pos``."""

    type: BrushType
    color: int = 0
    pattern: SpiceImage | None = None
    pattern_pos: Point | None = None


def read_rect(reader: BodyReader, what: str) -> Rect:
    return Rect(*reader.take(RECT, what))


def read_point(reader: BodyReader, what: str) -> Point:
    return Point(*reader.take(POINT, what))


def read_clip(reader: BodyReader) -> tuple[Rect, ...] | None:
    """spice.proto ``Clip``: u8 type, and for RECTS an inline u32 count + the rects. None is
    no clip (the whole box); an empty tuple is a RECTS clip with no rects (draw nothing)."""
    at = reader.offset
    kind = reader.enum(ClipType, reader.u8("clip type"), "clip type", at)
    if kind == ClipType.NONE:
        return None
    count = reader.count("clip rects", reader.u32("clip rect count"), MAX_CLIP_RECTS,
                         RECT.size)
    return tuple(read_rect(reader, "clip rect") for _ in range(count))


def read_display_base(reader: BodyReader) -> tuple[int, Rect, tuple[Rect, ...] | None]:
    """spice.proto ``DisplayBase``: surface id, box, clip."""
    surface_id = reader.u32("surface id")
    box = read_rect(reader, "box")
    return surface_id, box, read_clip(reader)


def read_image(reader: BodyReader, what: str) -> SpiceImage | None:
    """An ``Image *``: the descriptor at the pointed offset, its type known and its size
    sane; the union stays in the body for the codecs (a SURFACE image's id is checked)."""
    target = reader.pointer(what)
    if target is None:
        return None
    start = target.offset
    image_id, kind, flags, width, height = target.take(IMAGE_DESCRIPTOR, what)
    if kind not in _IMAGE_TYPES:
        raise target.fail(f"{what} has unknown image type {kind}", start)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise target.fail(f"{what} has impossible size {width}x{height}", start)
    _check_union(target, kind, what)
    return SpiceImage(image_id, kind, flags, width, height, reader.body,
                      start + IMAGE_DESCRIPTOR.size)


def _check_palette(reader: BodyReader, flags: int, what: str, *, nonnull: bool) -> None:
    """The palette field of BITMAP and LZ_PLT: a cached palette's u64 id, or a pointer to a
    Palette whose entries must be in the body."""
    if flags & _PAL_FROM_CACHE:
        reader.u64(f"{what} palette id")
        return
    at = reader.offset
    palette = reader.pointer(f"{what} palette")
    if palette is None:
        if nonnull:
            raise reader.fail(f"{what} palette is NULL", at)
        return
    _, entries = palette.take(PALETTE_HEAD, f"{what} palette")
    palette.skip(entries * 4, f"{what} palette entries")


def _check_union(reader: BodyReader, kind: int, what: str) -> None:
    """The union after a descriptor is in the body: its fixed fields, its inline data and
    any palette it points at (spice.proto ``Image``). The codecs read it again; checking
    here makes a short image a protocol error of the message that carries it."""
    if kind in _BINARY_DATA:
        reader.skip(reader.u32(f"{what} data size"), f"{what} data")
    elif kind == ImageType.BITMAP:
        at = reader.offset
        fmt, flags, _width, height, stride = reader.take(BITMAP_HEAD, f"{what} bitmap header")
        if fmt not in _BITMAP_FORMATS:
            raise reader.fail(f"{what} has unknown bitmap format {fmt}", at)
        _check_palette(reader, flags, what, nonnull=False)
        reader.skip(stride * height, f"{what} bitmap data")
    elif kind == ImageType.LZ_PLT:
        flags = reader.u8(f"{what} flags")
        size = reader.u32(f"{what} data size")
        _check_palette(reader, flags, what, nonnull=True)
        reader.skip(size, f"{what} data")
    elif kind == ImageType.ZLIB_GLZ_RGB:
        reader.u32(f"{what} inflated size")
        reader.skip(reader.u32(f"{what} data size"), f"{what} data")
    elif kind == ImageType.JPEG_ALPHA:
        reader.u8(f"{what} flags")
        reader.u32(f"{what} jpeg size")
        reader.skip(reader.u32(f"{what} data size"), f"{what} data")
    elif kind == ImageType.SURFACE:
        reader.u32(f"{what} surface id")
    # FROM_CACHE and FROM_CACHE_LOSSLESS: the descriptor is all


def require_image(reader: BodyReader, what: str) -> SpiceImage:
    """An ``Image *`` that spice.proto marks ``@nonnull``."""
    at = reader.offset
    image = read_image(reader, what)
    if image is None:
        raise reader.fail(f"{what} is NULL", at)
    return image


def read_brush(reader: BodyReader, what: str = "brush") -> Brush:
    """spice.proto ``Brush``: u8 type, then SOLID: u32 color; PATTERN: Image* + Point."""
    at = reader.offset
    kind = BrushType(reader.enum(BrushType, reader.u8(f"{what} type"), f"{what} type", at))
    if kind == BrushType.SOLID:
        return Brush(kind, color=reader.u32(f"{what} color"))
    if kind == BrushType.PATTERN:
        image = require_image(reader, f"{what} pattern")
        return Brush(kind, pattern=image, pattern_pos=read_point(reader, f"{what} pattern pos"))
    return Brush(kind)


def read_mask(reader: BodyReader) -> QMask | None:
    """spice.proto ``QMask``: u8 flags, Point pos, Image* bitmap; None when there is no
    bitmap (the usual case: no mask)."""
    flags = MaskFlags(reader.u8("mask flags") & MaskFlags.INVERS)
    pos = read_point(reader, "mask pos")
    image = read_image(reader, "mask bitmap")
    return None if image is None else QMask(flags, pos, image)


def read_rop(reader: BodyReader) -> Ropd:
    return Ropd(reader.u16("rop descriptor") & 0x7FF)  # SPICE_ROPD_MASK


def read_scale_mode(reader: BodyReader) -> ScaleMode:
    at = reader.offset
    return ScaleMode(reader.enum(ScaleMode, reader.u8("scale mode"), "scale mode", at))
