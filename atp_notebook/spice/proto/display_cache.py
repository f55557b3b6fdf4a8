"""Cache invalidation on the display channel: INVAL_LIST, INVAL_ALL_PIXMAPS, INVAL_PALETTE
and INVAL_ALL_PALETTES (spice.proto ``channel DisplayChannel``).

The server owns the pixmap cache's accounting and tells the client what to drop
(research/display.md §1.3): INVAL_LIST names evicted pixmaps, often in a SPICE_MSG_LIST
beside the draw that needed the room, with a WAIT_FOR_CHANNELS when the evicted items were
added through other channels. INVAL_ALL_PIXMAPS carries a wait list (the cache is shared
by the session's display channels): the channels' earlier messages come first. The other
channels then get a WAIT_FOR_CHANNELS naming the resetting channel and serial (the pixmap
sync, spice-server dcc-send.cpp) before they use the new cache generation; the base
channel parses that as WaitForChannels.

Example::

    parse_inval_list(bytes.fromhex("0100" "01" "2a00000000000000")).resources
    # (ResourceId(type=<ResourceType.PIXMAP: 1>, id=42),)
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from atp_notebook.spice.proto.common import ChannelEvent, ChannelWait
from atp_notebook.spice.proto.constants import ChannelType, DisplayMsg, enum_or_int
from atp_notebook.spice.proto.display_wire import BodyReader

RESOURCE_ID = struct.Struct("<BQ")  # ResourceID: u8 type, u64 id
WAIT_FOR_CHANNEL = struct.Struct("<BBQ")  # WaitForChannel: type, id, message serial

# The u16 count bounds the list; the server grows its free list as needed
# (dcc.cpp DISPLAY_FREE_LIST_DEFAULT_SIZE is only the start), so the cap is the field's
MAX_INVAL_RESOURCES = 0xFFFF


class ResourceType(IntEnum):
    """enums.h SpiceResType: what an INVAL_LIST entry names (only pixmaps exist)."""

    PIXMAP = 1


@dataclass(frozen=True, slots=True)
class ResourceId:
    type: ResourceType
    id: int


@dataclass(frozen=True, slots=True)
class InvalList(ChannelEvent):
    """Drop these pixmaps from the cache."""

    resources: tuple[ResourceId, ...]


@dataclass(frozen=True, slots=True)
class InvalAllPixmaps(ChannelEvent):
    """Empty the pixmap cache once every listed channel has received the message with its
    serial (the same wait list as WAIT_FOR_CHANNELS)."""

    waits: tuple[ChannelWait, ...]


@dataclass(frozen=True, slots=True)
class InvalPalette(ChannelEvent):
    id: int


@dataclass(frozen=True, slots=True)
class InvalAllPalettes(ChannelEvent):
    """Empty the palette cache."""


def parse_inval_list(body: bytes) -> InvalList:
    r = BodyReader(body, "INVAL_LIST")
    count = r.count("resources", r.u16("resource count"), MAX_INVAL_RESOURCES,
                    RESOURCE_ID.size)
    resources = []
    for _ in range(count):
        at = r.offset
        kind, resource_id = r.take(RESOURCE_ID, "resource")
        if kind != ResourceType.PIXMAP:
            raise r.fail(f"unknown resource type {kind}", at)
        resources.append(ResourceId(ResourceType.PIXMAP, resource_id))
    return InvalList(tuple(resources))


def parse_inval_all_pixmaps(body: bytes) -> InvalAllPixmaps:
    r = BodyReader(body, "INVAL_ALL_PIXMAPS")
    count = r.count("waits", r.u8("wait count"), 0xFF, WAIT_FOR_CHANNEL.size)
    waits = []
    for _ in range(count):
        ctype, cid, serial = r.take(WAIT_FOR_CHANNEL, "wait")
        waits.append(ChannelWait(enum_or_int(ChannelType, ctype), cid, serial))
    return InvalAllPixmaps(tuple(waits))


def parse_inval_palette(body: bytes) -> InvalPalette:
    return InvalPalette(BodyReader(body, "INVAL_PALETTE").u64("palette id"))


CACHE_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    DisplayMsg.INVAL_LIST: parse_inval_list,
    DisplayMsg.INVAL_ALL_PIXMAPS: parse_inval_all_pixmaps,
    DisplayMsg.INVAL_PALETTE: parse_inval_palette,
    DisplayMsg.INVAL_ALL_PALETTES: lambda _body: InvalAllPalettes(),
}
