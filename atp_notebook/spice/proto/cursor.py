"""The cursor channel (spice.proto ``channel CursorChannel``): the guest pointer's shape,
position and visibility, and the client-side cursor cache.

Wire facts (spice.proto, spice-server 0.15 ``cursor-channel.cpp``):

- INIT (101): Point16 position, u16 trail_length, u16 trail_frequency, u8 visible, Cursor.
  RESET (102), HIDE (105), INVAL_ALL (108): empty. SET (103): Point16 position, u8 visible,
  Cursor. MOVE (104): Point16. TRAIL (106): u16 length, u16 frequency. INVAL_ONE (107): u64.
- ``Cursor``: flags16 (NONE = 1: no cursor, CACHE_ME = 2, FROM_CACHE = 4); unless NONE, a
  CursorHeader (u64 unique, u8 type, u16 width, height, hot_spot_x, hot_spot_y); then the
  shape's data, which is the rest of the body (``@as_ptr(data_size)``, marshalled inline).
- FROM_CACHE sends the header (its ``unique`` names the entry) and no data; CACHE_ME asks the
  client to keep the shape under ``unique``. The server tracks the client's cache (256
  entries, ``cursor-channel-client.cpp``) and says INVAL_ONE / INVAL_ALL when it drops one;
  INIT and RESET start a new cache, as spice-gtk does.

How many data bytes each cursor type needs (spice-gtk ``channel-cursor.c``): see
:func:`cursor_data_size`. Data longer than that is cut (a driver may pad); shorter is a
RemoteProtocolError naming the message and the type. Pixels are decoded to RGBA outside this
core (:mod:`atp_notebook.spice.cursor_image`, numpy).

Ordering is lenient, as spice-gtk's: MOVE, HIDE, TRAIL before INIT update the state.

Example::

    cursor = CursorProtocol.from_link(linked)
    cursor.receive_data(chunk)   # [CursorInit(position=(512, 384), visible=True, shape=...)]
    cursor.cursor_state.position   # (512, 384); .shape.hotspot -> (0, 0)
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType, CursorMsg
from atp_notebook.spice.proto.display_wire import BodyReader
from atp_notebook.spice.proto.framing import RawMessage

POINT16 = struct.Struct("<hh")
INIT_HEAD = struct.Struct("<hhHHB")  # position x, y, trail length, frequency, visible
SET_HEAD = struct.Struct("<hhB")  # position x, y, visible
TRAIL_BODY = struct.Struct("<HH")
U64 = struct.Struct("<Q")  # INVAL_ONE
CURSOR_HEADER = struct.Struct("<QBHHHH")  # unique, type, width, height, hot spot x, y

# Real pointers are 32..256 px a side (the Linux qxl driver: 64x64); a larger one is
# garbage, and the cap bounds what one shape allocates (512x512 RGBA = 1 MiB)
MAX_CURSOR_SIDE = 512
# spice-server's client cursor cache holds 256 entries (CLIENT_CURSOR_CACHE_SIZE); more
# means the server no longer tracks what we keep
MAX_CACHED_CURSORS = 256
MAX_CACHED_BYTES = 64 * 1024 * 1024
# the largest shape: 512x512 ALPHA; room for the message head
CURSOR_MAX_MESSAGE = MAX_CURSOR_SIDE * MAX_CURSOR_SIDE * 4 + 64 * 1024


class CursorType(enum.IntEnum):
    """spice.proto ``enum8 cursor_type``."""

    ALPHA = 0
    MONO = 1
    COLOR4 = 2
    COLOR8 = 3
    COLOR16 = 4
    COLOR24 = 5
    COLOR32 = 6


class CursorFlags(enum.IntFlag):
    """spice.proto ``flags16 cursor_flags``."""

    NONE = 1  # no cursor: no header follows
    CACHE_ME = 2
    FROM_CACHE = 4


# the colour types' palettes (spice-gtk COLOR4: 16 u32 entries after the pixels)
PALETTE_ENTRIES = {CursorType.COLOR4: 16, CursorType.COLOR8: 256}


def mask_size(cursor_type: CursorType, width: int, height: int) -> int:
    """Bytes of one bit mask. MONO rows are padded to a byte (spice-gtk ``mono_cursor``);
    the colour types' AND mask is one bit string over all pixels (spice-gtk indexes it by
    the flat pixel number). Both agree for widths that are a multiple of 8."""
    if cursor_type is CursorType.MONO:
        return (width + 7) // 8 * height
    return (width * height + 7) // 8


def pixel_bytes(cursor_type: CursorType, width: int, height: int) -> int:
    """Bytes of the pixel part (before any palette or mask)."""
    if cursor_type is CursorType.COLOR4:
        return (width + 1) // 2 * height  # a nibble a pixel, rows padded to a byte
    per_pixel = {CursorType.ALPHA: 4, CursorType.COLOR8: 1, CursorType.COLOR16: 2,
                 CursorType.COLOR24: 3, CursorType.COLOR32: 4}
    return per_pixel.get(cursor_type, 0) * width * height


def cursor_data_size(cursor_type: CursorType, width: int, height: int) -> int:
    """The data bytes a shape of this type and size needs.

    ALPHA: u32 0xAARRGGBB a pixel. MONO: an AND mask then a XOR mask. COLOR4/COLOR8:
    pixels (palette indices), the palette (u32 0x00RRGGBB entries), the AND mask.
    COLOR16 (x555), COLOR24 (B, G, R), COLOR32 (0x00RRGGBB): pixels, then the AND mask.
    spice-gtk decodes ALPHA, MONO, COLOR4, COLOR16 and COLOR32; COLOR8 and COLOR24 follow
    the same pattern here and are unverified against a driver that sends them.
    """
    if cursor_type is CursorType.ALPHA:
        return 4 * width * height
    if cursor_type is CursorType.MONO:
        return 2 * mask_size(cursor_type, width, height)
    return (pixel_bytes(cursor_type, width, height) + 4 * PALETTE_ENTRIES.get(cursor_type, 0)
            + mask_size(cursor_type, width, height))


@dataclass(frozen=True, slots=True)
class CursorShape:
    """One pointer shape as the server sent it: ``data`` holds exactly the bytes its type
    needs (:func:`cursor_data_size`). Decode with ``cursor_image.decode_cursor``."""

    unique: int
    cursor_type: CursorType
    width: int
    height: int
    hot_x: int
    hot_y: int
    data: bytes

    @property
    def hotspot(self) -> tuple[int, int]:
        return (self.hot_x, self.hot_y)


@dataclass(frozen=True, slots=True)
class CursorInit(ChannelEvent):
    """The channel's first message: everything about the pointer. ``shape`` is None when
    the guest has no cursor (flags NONE)."""

    position: tuple[int, int]
    trail_length: int
    trail_frequency: int
    visible: bool
    shape: CursorShape | None


@dataclass(frozen=True, slots=True)
class CursorReset(ChannelEvent):
    """The guest reset its cursor: no shape, an empty cache, an INIT follows."""


@dataclass(frozen=True, slots=True)
class CursorSet(ChannelEvent):
    """A new shape (None: no cursor), position and visibility."""

    position: tuple[int, int]
    visible: bool
    shape: CursorShape | None


@dataclass(frozen=True, slots=True)
class CursorMove(ChannelEvent):
    position: tuple[int, int]


@dataclass(frozen=True, slots=True)
class CursorHide(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class CursorTrail(ChannelEvent):
    length: int
    frequency: int


@dataclass(frozen=True, slots=True)
class CursorInvalOne(ChannelEvent):
    unique: int


@dataclass(frozen=True, slots=True)
class CursorInvalAll(ChannelEvent):
    pass


@dataclass(slots=True)
class CursorState:
    """What the pointer looks like now, kept up to date by :class:`CursorProtocol`.

    ``visible`` is the server's flag alone: the lab's spice-server (a VGA guest that never
    defined a cursor) sends INIT with visible = 1 and flags NONE, so "a pointer is shown"
    is ``visible and shape is not None`` (spice-gtk hides it in that case too)."""

    shape: CursorShape | None = None
    position: tuple[int, int] = (0, 0)
    visible: bool = False
    trail_length: int = 0
    trail_frequency: int = 0

    @property
    def hotspot(self) -> tuple[int, int] | None:
        return None if self.shape is None else self.shape.hotspot

    @property
    def shown(self) -> bool:
        return self.visible and self.shape is not None


class CursorCache:
    """Shapes the server asked us to keep (CACHE_ME), by their unique id; bounded by the
    server's own cache size and a byte budget, both of which only a hostile server passes."""

    def __init__(self) -> None:
        self._shapes: dict[int, CursorShape] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._shapes)

    def __contains__(self, unique: int) -> bool:
        return unique in self._shapes

    def add(self, shape: CursorShape, message: str) -> None:
        old = self._shapes.pop(shape.unique, None)
        if old is not None:
            self.bytes -= len(old.data)
        if len(self._shapes) >= MAX_CACHED_CURSORS:
            raise RemoteProtocolError(f"{message}: a cursor cache of more than "
                                      f"{MAX_CACHED_CURSORS} shapes (the server's holds "
                                      f"{MAX_CACHED_CURSORS})")
        if self.bytes + len(shape.data) > MAX_CACHED_BYTES:
            raise RemoteProtocolError(f"{message}: the cursor cache would exceed "
                                      f"{MAX_CACHED_BYTES} bytes")
        self._shapes[shape.unique] = shape
        self.bytes += len(shape.data)

    def get(self, unique: int, message: str) -> CursorShape:
        shape = self._shapes.get(unique)
        if shape is None:
            raise RemoteProtocolError(f"{message}: cursor {unique:#x} FROM_CACHE is not in "
                                      f"the cache ({len(self._shapes)} shapes cached)")
        return shape

    def remove(self, unique: int) -> bool:
        """Drop one shape; False if it was not cached (spice-gtk ignores that too)."""
        shape = self._shapes.pop(unique, None)
        if shape is None:
            return False
        self.bytes -= len(shape.data)
        return True

    def clear(self) -> None:
        self._shapes.clear()
        self.bytes = 0


def read_cursor(reader: BodyReader, cache: CursorCache) -> CursorShape | None:
    """The ``Cursor`` struct at the reader's offset (the rest of the body): None for flags
    NONE, the cached shape for FROM_CACHE, else a new shape (cached if CACHE_ME)."""
    flags = reader.u16("cursor flags")
    if flags & CursorFlags.NONE:
        return None
    at = reader.offset
    unique, type_value, width, height, hot_x, hot_y = reader.take(CURSOR_HEADER,
                                                                  "cursor header")
    if flags & CursorFlags.FROM_CACHE:
        return cache.get(unique, reader.message)
    cursor_type = CursorType(reader.enum(CursorType, type_value, "cursor type", at + 8))
    if width > MAX_CURSOR_SIDE or height > MAX_CURSOR_SIDE:
        raise reader.fail(f"a {width}x{height} cursor (at most {MAX_CURSOR_SIDE} a side)", at)
    # spice-gtk caps a hot spot outside the shape to its edge rather than refusing it
    hot_x, hot_y = min(hot_x, width), min(hot_y, height)
    needed = cursor_data_size(cursor_type, width, height)
    have = len(reader.body) - reader.offset
    if have < needed:
        raise reader.fail(f"{have} data bytes for a {width}x{height} {cursor_type.name} "
                          f"cursor, which needs {needed}")
    shape = CursorShape(unique, cursor_type, width, height, hot_x, hot_y,
                        reader.bytes_(needed, "cursor data"))
    if flags & CursorFlags.CACHE_ME:
        cache.add(shape, reader.message)
    return shape


def _exact(body: bytes, size: int, message: str) -> None:
    if len(body) != size:
        raise RemoteProtocolError(f"{message}: {len(body)}-byte body, want {size}")


class CursorProtocol(ChannelProtocol):
    """One cursor channel: parses its messages, keeps :attr:`state` and the cache.

    Every event is also applied to :attr:`state`, so a reader that only wants "what does
    the pointer look like now" never needs the events.
    """

    channel_kind = ChannelType.CURSOR

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_message_size", CURSOR_MAX_MESSAGE)
        super().__init__(*args, **kwargs)
        self.cursor_state = CursorState()  # ``state`` is the connection's (ChannelState)
        self.cache = CursorCache()
        self.initialised = False  # an INIT since the link or the last RESET

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        try:
            kind = CursorMsg(message.msg_type)
        except ValueError:
            return None
        name = f"CURSOR_{kind.name}"
        if kind is CursorMsg.INIT:
            return self._init(BodyReader(message.body, name))
        if kind is CursorMsg.SET:
            return self._set(BodyReader(message.body, name))
        return self._small(kind, name, message.body)

    def _init(self, reader: BodyReader) -> CursorInit:
        x, y, trail_length, trail_frequency, visible = reader.take(INIT_HEAD, "init head")
        self.cache.clear()  # a new cache per INIT, as spice-gtk
        shape = read_cursor(reader, self.cache)
        self.initialised = True
        now = self.cursor_state
        now.position, now.visible, now.shape = (x, y), bool(visible), shape
        now.trail_length, now.trail_frequency = trail_length, trail_frequency
        return CursorInit((x, y), trail_length, trail_frequency, bool(visible), shape)

    def _set(self, reader: BodyReader) -> CursorSet:
        x, y, visible = reader.take(SET_HEAD, "set head")
        shape = read_cursor(reader, self.cache)
        now = self.cursor_state
        now.position, now.visible, now.shape = (x, y), bool(visible), shape
        return CursorSet((x, y), bool(visible), shape)

    def _small(self, kind: CursorMsg, name: str, body: bytes) -> ChannelEvent:
        """The fixed-size messages: MOVE, TRAIL, INVAL_ONE and the empty ones."""
        now = self.cursor_state
        event: ChannelEvent
        if kind is CursorMsg.MOVE:
            _exact(body, POINT16.size, name)
            now.position = POINT16.unpack(body)
            event = CursorMove(now.position)
        elif kind is CursorMsg.TRAIL:
            _exact(body, TRAIL_BODY.size, name)
            now.trail_length, now.trail_frequency = TRAIL_BODY.unpack(body)
            event = CursorTrail(now.trail_length, now.trail_frequency)
        elif kind is CursorMsg.INVAL_ONE:
            _exact(body, U64.size, name)
            (unique,) = U64.unpack(body)
            self.cache.remove(unique)
            event = CursorInvalOne(unique)
        else:
            _exact(body, 0, name)
            if kind is CursorMsg.HIDE:
                now.visible = False
                event = CursorHide()
            elif kind is CursorMsg.INVAL_ALL:
                self.cache.clear()
                event = CursorInvalAll()
            else:  # RESET: no shape and an empty cache until the next INIT
                self.cache.clear()
                now.shape, now.visible, self.initialised = None, False, False
                event = CursorReset()
        return event
