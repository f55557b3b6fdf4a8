"""The display channel, first part (spice.proto ``channel DisplayChannel``): DISPLAY_INIT and
the surfaces' geometry.

What is parsed so far is what tells the screen's size: SURFACE_CREATE / SURFACE_DESTROY
(the primary surface is the screen), the legacy MODE, MARK and RESET. Draw operations and
streams arrive as ``UnknownMessage`` events and are acknowledged like any message; decoding
them is the Display issue's work. No display caps are announced, so the server sends
nothing we would have to promise to understand (never GL_SCANOUT).

The server waits up to 30 s for DISPLAY_INIT after the link and drops the channel without
it (spice-server dcc.cpp): the adapter sends :meth:`DisplayProtocol.init` right after the
link. A pixmap cache of 0 and a GLZ window of 0 keep the server from caching images in
the client or sending GLZ (research/display.md §1.9, §8).

Example::

    display = DisplayProtocol.from_link(linked)
    display.init()
    writer.write(display.data_to_send())
    for event in display.receive_data(chunk):
        if isinstance(event, SurfaceCreated) and event.primary:
            print(event.width, event.height)        # 720 400
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent, unpack_body
from atp_notebook.spice.proto.constants import ChannelType, DisplayMsg, DisplayMsgc, SurfaceFlags
from atp_notebook.spice.proto.framing import RawMessage

# spice.proto DisplayChannel
DISPLAY_INIT = struct.Struct("<BqBi")  # pixmap cache id, size (pixels), glz id, window (px)
SURFACE_CREATE = struct.Struct("<IIIII")  # surface id, width, height, format, flags
SURFACE_DESTROY = struct.Struct("<I")
MODE = struct.Struct("<III")  # x_res, y_res, bits
# QEMU's largest qxl surface is 16384 px a side (qxl vgamem limits); anything bigger is garbage
MAX_SIDE = 16384


@dataclass(frozen=True, slots=True)
class SurfaceCreated(ChannelEvent):
    surface_id: int
    width: int
    height: int
    format: int  # SpiceSurfaceFmt: 32 = xRGB, 96 = ARGB, 16 = 555, 80 = 565, 8 = A8, 1 = A1
    flags: SurfaceFlags

    @property
    def primary(self) -> bool:
        return SurfaceFlags.PRIMARY in self.flags


@dataclass(frozen=True, slots=True)
class SurfaceDestroyed(ChannelEvent):
    surface_id: int


@dataclass(frozen=True, slots=True)
class ModeChanged(ChannelEvent):
    """The legacy MODE message (old servers): the screen's size and depth."""

    width: int
    height: int
    bits: int


@dataclass(frozen=True, slots=True)
class Mark(ChannelEvent):
    """The first full picture of the surface has been sent."""


@dataclass(frozen=True, slots=True)
class DisplayReset(ChannelEvent):
    """The server reset the display: surfaces and caches are gone."""


def _size(what: str, width: int, height: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise RemoteProtocolError(f"{what}: impossible size {width}x{height}")


def parse_surface_create(body: bytes) -> SurfaceCreated:
    surface_id, width, height, fmt, flags = unpack_body(SURFACE_CREATE, body, "SURFACE_CREATE")
    _size("SURFACE_CREATE", width, height)
    return SurfaceCreated(surface_id, width, height, fmt, SurfaceFlags(flags & 0b11))


def parse_mode(body: bytes) -> ModeChanged:
    width, height, bits = unpack_body(MODE, body, "MODE")
    _size("MODE", width, height)
    return ModeChanged(width, height, bits)


class DisplayProtocol(ChannelProtocol):
    """One display channel; ``surfaces`` holds the geometry of every live surface and
    ``primary`` the screen's (None until the server created it)."""

    channel_kind = ChannelType.DISPLAY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.surfaces: dict[int, SurfaceCreated] = {}
        self.marked = False

    @property
    def primary(self) -> SurfaceCreated | None:
        return next((s for s in self.surfaces.values() if s.primary), None)

    def init(self, pixmap_cache_size: int = 0, glz_window: int = 0) -> None:
        """Queue DISPLAY_INIT (cache id 1, GLZ dictionary id 0): the server sends nothing
        before it and drops the channel 30 s after the link without it."""
        self.send_message(DisplayMsgc.INIT,
                          DISPLAY_INIT.pack(1, pixmap_cache_size, 0, glz_window))

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        kind = message.msg_type
        if kind == DisplayMsg.SURFACE_CREATE:
            created = parse_surface_create(message.body)
            self.surfaces[created.surface_id] = created
            return created
        if kind == DisplayMsg.SURFACE_DESTROY:
            (surface_id,) = unpack_body(SURFACE_DESTROY, message.body, "SURFACE_DESTROY")
            self.surfaces.pop(surface_id, None)
            return SurfaceDestroyed(surface_id)
        if kind == DisplayMsg.MODE:
            return parse_mode(message.body)
        if kind == DisplayMsg.MARK:
            self.marked = True
            return Mark()
        if kind == DisplayMsg.RESET:
            self.surfaces.clear()
            return DisplayReset()
        return None
