"""The display channel's first part: DISPLAY_INIT on the wire and the surfaces' geometry,
from hand-built messages laid out as spice.proto says (SURFACE_CREATE = 314, ...)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto import ChannelProtocol, InputsProtocol
from atp_notebook.spice.proto.constants import (
    ChannelType,
    DisplayCap,
    ImageCompression,
    SurfaceFlags,
)
from atp_notebook.spice.proto.display import (
    DisplayOptions,
    DisplayProtocol,
    DisplayReset,
    DrawCopy,
    Mark,
    ModeChanged,
    Rect,
    SurfaceCreated,
    SurfaceDestroyed,
)
from atp_notebook.spice.proto.display_cache import InvalAllPalettes
from atp_notebook.spice.proto.framing import MessageReader
from atp_notebook.spice.proto.link_wire import LinkSucceeded
from atp_notebook.spice.vm import SpiceVmConnection

MINI = struct.Struct("<HI")  # mini header: type, size


def message(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def surface_create(surface_id: int, width: int, height: int, flags: int = 1) -> bytes:
    return message(314, struct.pack("<IIIII", surface_id, width, height, 32, flags))


def draw_copy_body(box: tuple[int, int, int, int], clip: list[tuple[int, int, int, int]],
                   image: bytes | None, src: tuple[int, int, int, int]) -> bytes:
    """DisplayBase, the Copy fields, then the image they point at (an offset in the body)."""
    head = struct.pack("<I4i", 0, *box)
    head += struct.pack("<B", 1 if clip else 0)
    if clip:
        head += struct.pack("<I", len(clip)) + b"".join(struct.pack("<4i", *r) for r in clip)
    tail_size = struct.calcsize("<IiiiiHBBiiI")
    image_at = len(head) + tail_size if image is not None else 0
    head += struct.pack("<IiiiiHBBiiI", image_at, *src, 1 << 3, 0, 0, 0, 0, 0)
    return head + (image or b"")


def lz_rgb_image(image_id: int, width: int, height: int, data: bytes) -> bytes:
    return struct.pack("<QBBII", image_id, 101, 0, width, height) + struct.pack(
        "<I", len(data)) + data


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
        message(108) + surface_create(0, 720, 400)
        + message(304, draw_copy_body((0, 0, 400, 720), [], lz_rgb_image(7, 720, 400, b"LZ"),
                                      (0, 0, 400, 720)))
        + message(102)
        + message(315, struct.pack("<I", 0)) + surface_create(0, 1024, 768) + message(102))
    kinds = [type(e) for e in events]
    assert kinds == [InvalAllPalettes, SurfaceCreated, DrawCopy, Mark, SurfaceDestroyed,
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


def test_draw_copy_gives_its_geometry_clip_and_source_image() -> None:
    body = draw_copy_body((32, 64, 48, 96), [(32, 64, 40, 96), (40, 64, 48, 80)],
                          lz_rgb_image(0xC00000001, 32, 16, b"  ZL..."), (0, 0, 16, 32))
    (event,) = DisplayProtocol(ChannelType.DISPLAY).receive_data(message(304, body))
    assert isinstance(event, DrawCopy)
    assert event.box == Rect(32, 64, 48, 96) and (event.box.width, event.box.height) == (32, 16)
    assert event.clip == (Rect(32, 64, 40, 96), Rect(40, 64, 48, 80))
    assert event.src_area == Rect(0, 0, 16, 32) and event.rop == 8 and not event.has_mask
    image = event.image
    assert image is not None
    assert (image.id, image.type, image.flags, image.width, image.height) == (
        0xC00000001, 101, 0, 32, 16)
    assert image.payload == struct.pack("<I", 7) + b"  ZL..."  # data_size, then the stream


@pytest.mark.parametrize(("body", "fragment"), [
    (b"\x00" * 40, "DRAW_COPY: source area .*offset 25 of a 40-byte body"),
    (draw_copy_body((0, 0, 1, 1), [], None, (0, 0, 1, 1))[:-3], "DRAW_COPY"),
    (struct.pack("<I4iB", 0, 0, 0, 1, 1, 7) + bytes(40), "unknown clip type 7"),
    (struct.pack("<I4iBI", 0, 0, 0, 1, 1, 1, 10**6), "1000000 clip rects"),
    (struct.pack("<I4iBI", 0, 0, 0, 1, 1, 1, 3) + bytes(20), "DRAW_COPY: 3 clip rects"),
    (draw_copy_body((0, 0, 1, 1), [], b"\x00" * 10, (0, 0, 1, 1)),
     "DRAW_COPY: source image needs 18 bytes"),
])
def test_hostile_draw_copies_are_remote_protocol_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        DisplayProtocol(ChannelType.DISPLAY).receive_data(message(304, body))


# --- what a display channel asks of the server (DISPLAY_INIT, caps, PREFERRED_COMPRESSION) --


def sent_messages(display: DisplayProtocol) -> list[tuple[int, bytes]]:
    reader = MessageReader()
    reader.feed(display.data_to_send())
    return [(m.msg_type, m.body) for m in reader.read_messages()]


def server_display(*caps: int) -> DisplayProtocol:
    return DisplayProtocol(ChannelType.DISPLAY, channel_caps=caps)


@pytest.mark.parametrize(("options", "expected"), [
    # the default: no cache, GLZ dictionary 0 with a window of 0 (no GLZ), no preference
    (DisplayOptions(), [(101, bytes([1]) + bytes(8) + bytes([0]) + bytes(4))]),
    # spice-gtk's choice of a shared dictionary: id 1, window in pixels, little-endian
    (DisplayOptions(glz_dictionary_id=1, glz_window=0x0080_0000, pixmap_cache_size=0x10203),
     [(101, bytes([1]) + bytes([3, 2, 1, 0, 0, 0, 0, 0]) + bytes([1]) + bytes([0, 0, 0x80, 0]))]),
    # the preference follows DISPLAY_INIT at once, one byte (LZ4 = 7, OFF = 1); LZ4 after
    # LZ (6), which a server built without LZ4 keeps
    (DisplayOptions(preferred_compression=ImageCompression.LZ4),
     [(101, bytes([1]) + bytes(8) + bytes([0]) + bytes(4)), (103, bytes([6])),
      (103, bytes([7]))]),
    (DisplayOptions(glz_window=1 << 25, preferred_compression=ImageCompression.OFF),
     [(101, bytes([1]) + bytes(8) + bytes([0]) + bytes([0, 0, 0, 2])), (103, bytes([1]))]),
])
def test_start_sends_display_init_then_the_preference(options: DisplayOptions,
                                                      expected: list[tuple[int, bytes]]) -> None:
    display = server_display(DisplayCap.PREF_COMPRESSION)
    display.start(options)
    assert sent_messages(display) == expected


def test_no_preference_goes_to_a_server_without_the_pref_compression_cap() -> None:
    display = server_display(DisplayCap.MONITORS_CONFIG)
    assert display.prefer_compression(ImageCompression.LZ) is False
    display.start(DisplayOptions(preferred_compression=ImageCompression.LZ))
    assert [t for t, _ in sent_messages(display)] == [101]
    assert server_display(DisplayCap.PREF_COMPRESSION).prefer_compression(
        ImageCompression.QUIC) is True


def test_image_compression_values_are_spice_protos() -> None:
    assert {c.name: c.value for c in ImageCompression} == {
        "OFF": 1, "AUTO_GLZ": 2, "AUTO_LZ": 3, "QUIC": 4, "GLZ": 5, "LZ": 6, "LZ4": 7}
    assert (int(DisplayCap.LZ4_COMPRESSION), int(DisplayCap.PREF_COMPRESSION)) == (5, 6)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"caps": (DisplayCap.GL_SCANOUT,)}, "GL_SCANOUT is never announced"),
    ({"glz_window": (1 << 25) + 1}, "outside 0..33554432"),
    ({"glz_window": -1}, "outside"),
    ({"glz_dictionary_id": 256}, "not a byte"),
    ({"pixmap_cache_size": -5}, "pixmap cache size"),
])
def test_options_the_server_would_refuse_are_invalid_arguments(kwargs: dict[str, Any],
                                                               fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        DisplayOptions(**kwargs)


def test_a_vm_connection_announces_the_display_options_caps_on_display_channels_only() -> None:
    endpoint = SpiceEndpoint("127.0.0.1", port=1)
    plain = SpiceVmConnection("vm", endpoint)
    asking = SpiceVmConnection("vm", endpoint, display=DisplayOptions(
        caps=(DisplayCap.LZ4_COMPRESSION,), glz_dictionary_id=1, glz_window=4096,
        preferred_compression=ImageCompression.LZ4))
    for channel_id in (0, 1):
        # the default is DisplayOptions.lossless(): monitors, MULTI_CODEC with no codec, LZ4
        assert plain._new_channel(endpoint, ChannelType.DISPLAY, channel_id,
                                  DisplayProtocol).channel_caps == (
            DisplayCap.MONITORS_CONFIG, DisplayCap.MULTI_CODEC, DisplayCap.LZ4_COMPRESSION)
        assert asking._new_channel(endpoint, ChannelType.DISPLAY, channel_id,
                                   DisplayProtocol).channel_caps == (5,)
    assert asking._new_channel(endpoint, ChannelType.INPUTS, 0, InputsProtocol).channel_caps \
        == plain._new_channel(endpoint, ChannelType.INPUTS, 0, InputsProtocol).channel_caps
    # the protocol made at link time queues the options' INIT and preference
    link = LinkSucceeded(ChannelType.DISPLAY, 1, frozenset({3}),
                         frozenset({DisplayCap.PREF_COMPRESSION}), True, 2)
    channel = asking._new_channel(endpoint, ChannelType.DISPLAY, 1, DisplayProtocol)

    async def link_it() -> ChannelProtocol:  # on the loop, as the channel's link runs it
        return channel._factory(link)

    made = asyncio.run(link_it())
    asking.displays.close()  # the live display the factory attached: its worker stops
    assert isinstance(made, DisplayProtocol) and made.manual_acks
    assert sent_messages(made) == [
        (101, bytes([1]) + bytes(8) + bytes([1]) + (4096).to_bytes(4, "little")),
        (103, bytes([6])), (103, bytes([7]))]


def test_a_whole_screen_as_a_raw_bitmap_fits_in_one_display_message() -> None:
    # image-compression=off: the lab's 1024x768 screen arrived as one 3 MiB DRAW_COPY, past
    # the 1 MiB the other channels allow; a 4096x4096 surface is the display channel's limit
    display = DisplayProtocol(ChannelType.DISPLAY)
    bitmap = struct.pack("<QBBII", 1, 0, 0, 1024, 768) + struct.pack(
        "<BBIIII", 8, 4, 1024, 768, 4096, 0) + bytes(4096 * 768)
    (event,) = display.receive_data(message(304, draw_copy_body((0, 0, 768, 1024), [], bitmap,
                                                                (0, 0, 768, 1024))))
    assert isinstance(event, DrawCopy) and event.image is not None
    assert len(event.image.payload) == 18 + 4096 * 768
    with pytest.raises(RemoteProtocolError, match="more than the limit"):
        display.receive_data(MINI.pack(304, 4096 * 4096 * 4 + 64 * 1024 + 1))
