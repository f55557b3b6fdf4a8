"""The display channel's first part: DISPLAY_INIT on the wire and the surfaces' geometry,
from hand-built messages laid out as spice.proto says (SURFACE_CREATE = 314, ...)."""

from __future__ import annotations

import struct

import pytest

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.common import UnknownMessage
from atp_notebook.spice.proto.constants import ChannelType, SurfaceFlags
from atp_notebook.spice.proto.display import (
    DisplayProtocol,
    DisplayReset,
    Mark,
    ModeChanged,
    SurfaceCreated,
    SurfaceDestroyed,
)
from atp_notebook.spice.proto.framing import MessageReader

MINI = struct.Struct("<HI")  # mini header: type, size


def message(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def surface_create(surface_id: int, width: int, height: int, flags: int = 1) -> bytes:
    return message(314, struct.pack("<IIIII", surface_id, width, height, 32, flags))


def test_display_init_is_fourteen_packed_bytes_with_no_cache_and_no_glz() -> None:
    display = DisplayProtocol(ChannelType.DISPLAY)
    display.init()
    reader = MessageReader()
    reader.feed(display.data_to_send())
    (sent,) = reader.read_messages()
    assert sent.msg_type == 101
    assert sent.body == bytes([1]) + bytes(8) + bytes([0]) + bytes(4)  # id 1, 0 px, id 0, 0 px


def test_the_primary_surface_is_the_screen_across_a_mode_switch() -> None:
    display = DisplayProtocol(ChannelType.DISPLAY)
    assert display.primary is None
    # what QEMU 7.2 sends (research/display.md §8): the VGA text mode, then the fb
    events = display.receive_data(
        message(108) + surface_create(0, 720, 400) + message(304, b"\x00" * 40) + message(102)
        + message(315, struct.pack("<I", 0)) + surface_create(0, 1024, 768) + message(102))
    kinds = [type(e) for e in events]
    assert kinds == [UnknownMessage, SurfaceCreated, UnknownMessage, Mark, SurfaceDestroyed,
                     SurfaceCreated, Mark]
    first = events[1]
    assert isinstance(first, SurfaceCreated) and first.primary
    assert (first.width, first.height, first.format) == (720, 400, 32)
    assert display.primary is not None
    assert (display.primary.width, display.primary.height) == (1024, 768)


def test_an_off_screen_surface_is_not_the_screen_and_reset_forgets_all() -> None:
    display = DisplayProtocol(ChannelType.DISPLAY)
    events = display.receive_data(surface_create(0, 800, 600) + surface_create(7, 64, 64, 0))
    assert isinstance(events[1], SurfaceCreated) and not events[1].primary
    assert events[1].flags is SurfaceFlags(0)
    assert display.primary is not None and display.primary.surface_id == 0
    assert isinstance(display.receive_data(message(103))[0], DisplayReset)
    assert display.primary is None and display.surfaces == {}


def test_the_legacy_mode_message() -> None:
    display = DisplayProtocol(ChannelType.DISPLAY)
    (event,) = display.receive_data(message(101, struct.pack("<III", 640, 480, 32)))
    assert event == ModeChanged(640, 480, 32)


@pytest.mark.parametrize(("data", "fragment"), [
    (message(314, b"\x00" * 19), "SURFACE_CREATE: 19-byte body"),
    (surface_create(0, 0, 400), "impossible size 0x400"),
    (surface_create(0, 70000, 70000), "impossible size 70000x70000"),
    (message(315, b"\x01"), "SURFACE_DESTROY: 1-byte body"),
    (message(101, struct.pack("<III", 5, 99999, 8)), "MODE: impossible size"),
])
def test_hostile_geometry_is_a_remote_protocol_error(data: bytes, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        DisplayProtocol(ChannelType.DISPLAY).receive_data(data)
