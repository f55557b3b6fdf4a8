"""The cursor channel's sans-I/O core: hand-built messages in, events and state out;
oversized, truncated and cache-missing cursors refused."""

from __future__ import annotations

import random
import struct

import pytest

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.cursor_image import decode_cursor
from atp_notebook.spice.proto.channel import ConnectionClosed
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.cursor import (
    MAX_CACHED_CURSORS,
    MAX_CURSOR_SIDE,
    CursorFlags,
    CursorHide,
    CursorInit,
    CursorInvalAll,
    CursorInvalOne,
    CursorMove,
    CursorProtocol,
    CursorReset,
    CursorSet,
    CursorShape,
    CursorTrail,
    CursorType,
    cursor_data_size,
)

MINI = struct.Struct("<HI")
HEADER = struct.Struct("<QBHHHH")


def frame(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def cursor_struct(flags: int, unique: int = 7, kind: int = CursorType.ALPHA, width: int = 2,
                  height: int = 2, hot: tuple[int, int] = (1, 0), data: bytes = b"") -> bytes:
    """``Cursor`` as spice-server marshals it: flags, the header unless NONE, the data."""
    if flags & CursorFlags.NONE:
        return struct.pack("<H", flags) + data
    return struct.pack("<H", flags) + HEADER.pack(unique, kind, width, height, *hot) + data


def init(cursor: bytes, x: int = 10, y: int = 20, visible: int = 1) -> bytes:
    return frame(101, struct.pack("<hhHHB", x, y, 0, 0, visible) + cursor)


def set_(cursor: bytes, x: int = 3, y: int = -4, visible: int = 1) -> bytes:
    return frame(103, struct.pack("<hhB", x, y, visible) + cursor)


ALPHA_2X2 = bytes(range(16))
ALPHA_SHAPE = CursorShape(7, CursorType.ALPHA, 2, 2, 1, 0, ALPHA_2X2)
NO_CURSOR = cursor_struct(CursorFlags.NONE)


def channel(*wire: bytes) -> CursorProtocol:
    chan = CursorProtocol(ChannelType.CURSOR, 0)
    for data in wire:
        chan.receive_data(data)
    return chan


@pytest.mark.parametrize(("kind", "width", "height", "size"), [
    (CursorType.ALPHA, 2, 2, 16),
    (CursorType.MONO, 9, 2, 2 * 2 * 2),  # rows padded: 2 bytes a row, AND then XOR
    (CursorType.MONO, 32, 32, 256),
    (CursorType.COLOR4, 3, 2, 2 * 2 + 64 + 1),  # nibbles (rows padded), palette, mask
    (CursorType.COLOR8, 4, 4, 16 + 1024 + 2),
    (CursorType.COLOR16, 8, 1, 16 + 1),
    (CursorType.COLOR24, 8, 2, 48 + 2),
    (CursorType.COLOR32, 32, 32, 4096 + 128),
    (CursorType.COLOR32, 0, 0, 0),
])
def test_data_size_per_type(kind: CursorType, width: int, height: int, size: int) -> None:
    assert cursor_data_size(kind, width, height) == size


@pytest.mark.parametrize(("wire", "events"), [
    (init(cursor_struct(0, data=ALPHA_2X2)),
     [CursorInit((10, 20), 0, 0, True, ALPHA_SHAPE)]),
    (init(NO_CURSOR, x=-1, y=-2, visible=0), [CursorInit((-1, -2), 0, 0, False, None)]),
    # data past what the type needs is cut off
    (init(cursor_struct(0, data=ALPHA_2X2 + b"pad")),
     [CursorInit((10, 20), 0, 0, True, ALPHA_SHAPE)]),
    (init(NO_CURSOR) + set_(cursor_struct(0, data=ALPHA_2X2)),
     [CursorInit((10, 20), 0, 0, True, None), CursorSet((3, -4), True, ALPHA_SHAPE)]),
    (init(NO_CURSOR) + frame(104, struct.pack("<hh", 100, 200)) + frame(105)
     + frame(106, struct.pack("<HH", 5, 30)) + frame(107, struct.pack("<Q", 9))
     + frame(108) + frame(102),
     [CursorInit((10, 20), 0, 0, True, None), CursorMove((100, 200)), CursorHide(),
      CursorTrail(5, 30), CursorInvalOne(9), CursorInvalAll(), CursorReset()]),
    # a hot spot outside the shape is capped to its edge, as spice-gtk does
    (init(cursor_struct(0, hot=(9, 9), data=ALPHA_2X2)),
     [CursorInit((10, 20), 0, 0, True, CursorShape(7, CursorType.ALPHA, 2, 2, 2, 2,
                                                     ALPHA_2X2))]),
])
def test_messages_to_events(wire: bytes, events: list[object]) -> None:
    assert channel().receive_data(wire) == events


@pytest.mark.parametrize(("kind", "width", "height"), [
    (kind, w, h) for kind in CursorType for (w, h) in ((8, 8), (3, 5), (32, 32))])
def test_every_type_parses_with_exactly_its_data(kind: CursorType, width: int,
                                                  height: int) -> None:
    data = bytes(i % 251 for i in range(cursor_data_size(kind, width, height)))
    chan = channel(init(cursor_struct(0, kind=kind, width=width, height=height, data=data)))
    shape = chan.cursor_state.shape
    assert shape is not None
    assert (shape.cursor_type, shape.width, shape.height, shape.data) == (kind, width,
                                                                         height, data)


def test_state_follows_events() -> None:
    chan = channel(init(cursor_struct(0, data=ALPHA_2X2), x=1, y=2, visible=0))
    state = chan.cursor_state
    assert (state.position, state.visible, state.shape, state.hotspot) == (
        (1, 2), False, ALPHA_SHAPE, (1, 0))
    assert not state.shown
    chan.receive_data(set_(cursor_struct(0, data=ALPHA_2X2)))
    assert state.shown
    chan.receive_data(set_(NO_CURSOR, x=5, y=6, visible=1))
    assert (state.position, state.visible, state.shape, state.hotspot) == ((5, 6), True,
                                                                            None, None)
    assert not state.shown  # what the lab's server sends for a guest without a cursor
    chan.receive_data(frame(104, struct.pack("<hh", -3, 4)) + frame(106, b"\2\0\3\0"))
    assert (state.position, state.trail_length, state.trail_frequency) == ((-3, 4), 2, 3)
    chan.receive_data(frame(105))
    assert state.visible is False
    chan.receive_data(set_(cursor_struct(0, data=ALPHA_2X2)) + frame(102))
    assert (state.shape, state.visible, chan.initialised) == (None, False, False)


def test_cache_me_then_from_cache() -> None:
    chan = channel(init(NO_CURSOR), set_(cursor_struct(CursorFlags.CACHE_ME, unique=0xABC,
                                                       data=ALPHA_2X2)))
    assert 0xABC in chan.cache
    assert chan.cache.bytes == 16
    # FROM_CACHE: the header names the entry, no data follows; the header's other fields
    # are the server's copy and not used
    events = chan.receive_data(set_(cursor_struct(CursorFlags.FROM_CACHE, unique=0xABC,
                                                  width=0, height=0)))
    assert events == [CursorSet((3, -4), True, CursorShape(0xABC, CursorType.ALPHA, 2, 2, 1, 0,
                                                           ALPHA_2X2))]


@pytest.mark.parametrize("dropper", [
    frame(107, struct.pack("<Q", 0xABC)),  # INVAL_ONE
    frame(108),  # INVAL_ALL
    frame(102),  # RESET
    init(NO_CURSOR),  # a new INIT starts a new cache
])
def test_dropped_entries_are_misses(dropper: bytes) -> None:
    chan = channel(init(NO_CURSOR), set_(cursor_struct(CursorFlags.CACHE_ME, unique=0xABC,
                                                       data=ALPHA_2X2)), dropper)
    assert len(chan.cache) == 0
    assert chan.cache.bytes == 0
    with pytest.raises(RemoteProtocolError, match=r"CURSOR_SET: cursor 0xabc FROM_CACHE "
                                                   r"is not in the cache"):
        chan.receive_data(set_(cursor_struct(CursorFlags.FROM_CACHE, unique=0xABC)))


def test_inval_one_of_an_unknown_id_is_ignored() -> None:
    chan = channel(init(NO_CURSOR))
    assert chan.receive_data(frame(107, struct.pack("<Q", 1))) == [CursorInvalOne(1)]


def test_recaching_an_id_replaces_it() -> None:
    chan = channel(init(NO_CURSOR))
    for _ in range(3):
        chan.receive_data(set_(cursor_struct(CursorFlags.CACHE_ME, unique=5, data=ALPHA_2X2)))
    assert (len(chan.cache), chan.cache.bytes) == (1, 16)


def test_more_entries_than_the_server_cache_holds() -> None:
    chan = channel(init(NO_CURSOR))
    for unique in range(MAX_CACHED_CURSORS):
        chan.receive_data(set_(cursor_struct(CursorFlags.CACHE_ME, unique=unique,
                                             data=ALPHA_2X2)))
    with pytest.raises(RemoteProtocolError, match="more than 256 shapes"):
        chan.receive_data(set_(cursor_struct(CursorFlags.CACHE_ME, unique=10_000,
                                             data=ALPHA_2X2)))


def test_a_large_cursor_within_the_cap_fits_one_message() -> None:
    side = MAX_CURSOR_SIDE
    data = bytes(cursor_data_size(CursorType.ALPHA, side, side))
    chan = channel(init(cursor_struct(0, width=side, height=side, data=data)))
    assert chan.cursor_state.shape is not None
    assert chan.cursor_state.shape.width == side


@pytest.mark.parametrize(("wire", "match"), [
    (init(cursor_struct(0, width=MAX_CURSOR_SIDE + 1, height=1, data=bytes(4000))),
     r"CURSOR_INIT: a 513x1 cursor \(at most 512 a side\)"),
    (set_(cursor_struct(0, width=1, height=60_000)), r"CURSOR_SET: a 1x60000 cursor"),
    (init(cursor_struct(0, data=ALPHA_2X2[:15])),
     r"CURSOR_INIT: 15 data bytes for a 2x2 ALPHA cursor, which needs 16"),
    (set_(cursor_struct(0, kind=CursorType.MONO, width=16, height=16, data=bytes(63))),
     r"CURSOR_SET: 63 data bytes for a 16x16 MONO cursor, which needs 64"),
    (set_(cursor_struct(0, kind=CursorType.COLOR4, width=2, height=2, data=bytes(64))),
     r"which needs 67"),  # the palette without pixels and mask
    (init(cursor_struct(0, kind=7, data=ALPHA_2X2)), r"CURSOR_INIT: unknown cursor type 7"),
    (init(cursor_struct(0)[:10]), r"CURSOR_INIT: cursor header needs 17 bytes"),
    (frame(101, b"\0" * 8), r"CURSOR_INIT: init head needs 9 bytes"),
    (frame(101, struct.pack("<hhHHB", 0, 0, 0, 0, 1)), r"CURSOR_INIT: cursor flags needs 2"),
    (frame(103, b"\0\0"), r"CURSOR_SET: set head needs 5 bytes"),
    (frame(104, b"\0\0\0"), r"CURSOR_MOVE: 3-byte body, want 4"),
    (frame(106, b"\0" * 5), r"CURSOR_TRAIL: 5-byte body, want 4"),
    (frame(107, b"\0" * 4), r"CURSOR_INVAL_ONE: 4-byte body, want 8"),
    (frame(105, b"x"), r"CURSOR_HIDE: 1-byte body, want 0"),
    (frame(102, b"x"), r"CURSOR_RESET: 1-byte body, want 0"),
    (frame(108, b"x"), r"CURSOR_INVAL_ALL: 1-byte body, want 0"),
    (set_(cursor_struct(CursorFlags.FROM_CACHE, unique=1)),
     r"CURSOR_SET: cursor 0x1 FROM_CACHE is not in the cache \(0 shapes cached\)"),
])
def test_hostile_messages(wire: bytes, match: str) -> None:
    chan = channel(init(NO_CURSOR)) if wire[0] != 101 else channel()
    with pytest.raises(RemoteProtocolError, match=match):
        chan.receive_data(wire)


def test_a_message_over_the_size_cap_is_refused_before_it_is_buffered() -> None:
    chan = channel(init(NO_CURSOR))
    with pytest.raises(RemoteProtocolError):
        chan.receive_data(MINI.pack(103, 64 * 1024 * 1024))


def test_unknown_types_fragments_and_close() -> None:
    chan = channel()
    wire = init(cursor_struct(0, data=ALPHA_2X2)) + frame(150, b"?")
    events = [e for i in range(len(wire)) for e in chan.receive_data(wire[i:i + 1])]
    assert events[0] == CursorInit((10, 20), 0, 0, True, ALPHA_SHAPE)
    assert chan.metrics.unknown_types == {150: 1}
    assert chan.receive_data(b"") == [ConnectionClosed(None)]


def test_the_protocol_is_for_cursor_channels_only() -> None:
    with pytest.raises(LocalProtocolError, match="CursorProtocol is for CURSOR channels"):
        CursorProtocol(ChannelType.PORT, 0)


def test_mutated_messages_raise_only_remote_protocol_errors() -> None:
    """Seeded mutations of valid messages (cut, flipped bytes, another type): each is
    parsed or refused with RemoteProtocolError, never another exception, and every shape
    the core accepts decodes to RGBA."""
    rng = random.Random(16)
    valid = [init(cursor_struct(CursorFlags.CACHE_ME, kind=kind, width=w, height=h,
                                data=bytes(cursor_data_size(kind, w, h))))
             for kind in CursorType for (w, h) in ((3, 2), (16, 16))]
    valid += [set_(cursor_struct(CursorFlags.FROM_CACHE)), frame(104, b"\1\0\2\0"),
              frame(106, b"\1\0\2\0"), frame(107, bytes(8))]
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(2000):
        body = bytearray(rng.choice(valid)[MINI.size:])
        msg_type = 101 + rng.randrange(8)
        for _ in range(rng.randrange(1, 4)):
            if body and rng.random() < 0.5:
                body[rng.randrange(len(body))] = rng.randrange(256)
            elif body:
                del body[rng.randrange(len(body)):]
        chan = channel(init(NO_CURSOR))
        try:
            chan.receive_data(frame(msg_type, bytes(body)))
            outcomes["parsed"] += 1
            if chan.cursor_state.shape is not None:  # what the core accepts decodes
                image = decode_cursor(chan.cursor_state.shape)
                assert image.rgba.shape[:2] == (chan.cursor_state.shape.height,
                                                chan.cursor_state.shape.width)
        except RemoteProtocolError:
            outcomes["refused"] += 1
    assert outcomes["parsed"] > 0
    assert outcomes["refused"] > 0
