"""A test-only marshaller for display-channel bodies, laid out as spice.proto says: packed
little-endian fields, pointers as u32 offsets from the body's start to data appended after
the fixed part (as spice-server's marshaller places them).

Example::

    body = Body().u32(0).rect(0, 0, 8, 8).clip([]).ptr(image_bytes(...)).finish()
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from atp_notebook.spice.proto.display_wire import Point, Rect, SpiceImage

Quad = tuple[int, int, int, int]


class Body:
    """Fields appended in order; ``ptr(data)`` writes a u32 that will point at ``data``,
    placed after the fixed part (``finish``). ``at[k]`` is where the k-th pointer's data
    landed, once finished."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.slots: list[tuple[int, bytes | None]] = []
        self.at: list[int] = []

    def pack(self, fmt: str, *values: int) -> Body:
        self.head += struct.pack("<" + fmt, *values)
        return self

    def u8(self, value: int) -> Body:
        return self.pack("B", value)

    def u16(self, value: int) -> Body:
        return self.pack("H", value)

    def u32(self, value: int) -> Body:
        return self.pack("I", value)

    def raw(self, data: bytes) -> Body:
        self.head += data
        return self

    def rect(self, top: int, left: int, bottom: int, right: int) -> Body:
        return self.pack("4i", top, left, bottom, right)

    def point(self, x: int, y: int) -> Body:
        return self.pack("2i", x, y)

    def clip(self, rects: Sequence[Quad]) -> Body:
        if not rects:
            return self.u8(0)
        self.u8(1).u32(len(rects))
        for r in rects:
            self.rect(*r)
        return self

    def base(self, surface_id: int, box: Quad, clip: Sequence[Quad] = ()) -> Body:
        return self.u32(surface_id).rect(*box).clip(clip)

    def ptr(self, data: bytes | None) -> Body:
        self.slots.append((len(self.head), data))
        return self.u32(0)

    def brush_solid(self, color: int) -> Body:
        return self.u8(1).u32(color)

    def brush_pattern(self, image: bytes, x: int, y: int) -> Body:
        return self.u8(2).ptr(image).point(x, y)

    def mask(self, flags: int = 0, pos: tuple[int, int] = (0, 0),
             image: bytes | None = None) -> Body:
        return self.u8(flags).point(*pos).ptr(image)

    def finish(self) -> bytes:
        body = bytearray(self.head)
        self.at = []
        for slot, data in self.slots:
            if data is None:
                self.at.append(0)
                continue
            self.at.append(len(body))
            struct.pack_into("<I", body, slot, len(body))
            body += data
        return bytes(body)


def image_bytes(image_id: int, kind: int, width: int, height: int, union: bytes,
                flags: int = 0) -> bytes:
    """An ImageDescriptor and its union."""
    return struct.pack("<QBBII", image_id, kind, flags, width, height) + union


def lz_image(image_id: int = 7, width: int = 4, height: int = 2,
             data: bytes = b"LZdata") -> bytes:
    return image_bytes(image_id, 101, width, height, struct.pack("<I", len(data)) + data)


def mask_bitmap(image_id: int, width: int, height: int) -> bytes:
    """A 1BIT_LE top-down BITMAP without a palette, as a QMask's image (all ones)."""
    stride = (width + 7) // 8
    union = struct.pack("<BBIIII", 1, 4, width, height, stride, 0) + b"\xff" * (stride * height)
    return image_bytes(image_id, 0, width, height, union)


def spice_image(body: bytes, at: int) -> SpiceImage:
    """The SpiceImage a parser should give for the image bytes placed at ``at``."""
    image_id, kind, flags, width, height = struct.unpack_from("<QBBII", body, at)
    return SpiceImage(image_id, kind, flags, width, height, body, at + 18)


def rect(q: Quad) -> Rect:
    return Rect(*q)


def points(*xy: int) -> tuple[Point, ...]:
    return tuple(Point(xy[i], xy[i + 1]) for i in range(0, len(xy), 2))
