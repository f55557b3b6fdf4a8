"""Cache invalidation, streams, MONITORS_CONFIG and image unions on the display channel, from
bodies laid out as spice.proto says; the client's STREAM_REPORT and
PREFERRED_VIDEO_CODEC_TYPE bodies; hostile variants of each."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from atp_notebook.errors import InvalidArgument, RemoteProtocolError
from atp_notebook.spice.proto.common import ChannelEvent, ChannelWait, WaitForChannels
from atp_notebook.spice.proto.constants import (
    ChannelType,
    DisplayCap,
    DisplayMsg,
    VideoCodecType,
)
from atp_notebook.spice.proto.display import DisplayProtocol, DrawCopy
from atp_notebook.spice.proto.display_cache import (
    InvalAllPalettes,
    InvalAllPixmaps,
    InvalList,
    InvalPalette,
    ResourceId,
    ResourceType,
)
from atp_notebook.spice.proto.display_monitors import MAX_HEADS, Head, MonitorsConfig
from atp_notebook.spice.proto.display_stream import (
    MAX_STREAMS,
    AllStreamsDestroyed,
    StreamActivateReport,
    StreamClip,
    StreamCreated,
    StreamData,
    StreamDestroyed,
    StreamFlags,
    build_preferred_video_codec_type,
    build_stream_report,
)
from atp_notebook.spice.proto.display_wire import Rect

from .display_messages import Body, image_bytes

MINI = struct.Struct("<HI")
Case = tuple[int, bytes, ChannelEvent]


def frame(msg_type: int, body: bytes) -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def parse(msg_type: int, body: bytes) -> ChannelEvent:
    (event,) = DisplayProtocol(ChannelType.DISPLAY).receive_data(frame(msg_type, body))
    return event


JPEG = b"\xff\xd8fake-jpeg\xff\xd9"
CASES: dict[str, Callable[[], Case]] = {
    "inval-list": lambda: (105, Body().u16(2).pack("BQ", 1, 42).pack("BQ", 1, 1 << 63).finish(),
                           InvalList((ResourceId(ResourceType.PIXMAP, 42),
                                      ResourceId(ResourceType.PIXMAP, 1 << 63)))),
    "inval-list-empty": lambda: (105, Body().u16(0).finish(), InvalList(())),
    "inval-all-pixmaps": lambda: (106, Body().u8(2).pack("BBQ", 2, 1, 77).pack("BBQ", 2, 0, 9)
                                  .finish(), InvalAllPixmaps((
                                      ChannelWait(ChannelType.DISPLAY, 1, 77),
                                      ChannelWait(ChannelType.DISPLAY, 0, 9)))),
    "inval-palette": lambda: (107, struct.pack("<Q", 0xDEADBEEF01), InvalPalette(0xDEADBEEF01)),
    "inval-all-palettes": lambda: (108, b"", InvalAllPalettes()),
    "stream-create": lambda: (122, Body().pack("IIBBQIIII", 0, 3, 1, 1, 123456, 320, 240, 640,
                                               480).rect(10, 20, 490, 660)
                              .clip([(10, 20, 100, 660)]).finish(),
                              StreamCreated(0, 3, StreamFlags.TOP_DOWN, VideoCodecType.MJPEG,
                                            123456, 320, 240, 640, 480, Rect(10, 20, 490, 660),
                                            (Rect(10, 20, 100, 660),))),
    "stream-data": lambda: (123, Body().u32(3).u32(999).u32(len(JPEG)).raw(JPEG).finish(),
                            StreamData(3, 999, JPEG)),
    "stream-data-sized": lambda: (316, Body().u32(63).u32(5).u32(320).u32(200)
                                  .rect(0, 0, 200, 320).u32(len(JPEG)).raw(JPEG).finish(),
                                  StreamData(63, 5, JPEG, 320, 200, Rect(0, 0, 200, 320))),
    "stream-clip": lambda: (124, Body().u32(3).clip([(0, 0, 5, 5)]).finish(),
                            StreamClip(3, (Rect(0, 0, 5, 5),))),
    "stream-clip-none": lambda: (124, Body().u32(3).clip([]).finish(), StreamClip(3, None)),
    "stream-destroy": lambda: (125, struct.pack("<I", 7), StreamDestroyed(7)),
    "stream-destroy-all": lambda: (126, b"", AllStreamsDestroyed()),
    "stream-activate-report": lambda: (319, struct.pack("<4I", 3, 11, 20, 1000),
                                       StreamActivateReport(3, 11, 20, 1000)),
    "monitors-config": lambda: (317, Body().u16(2).u16(4).pack("7I", 0, 0, 1024, 768, 0, 0, 0)
                                .pack("7I", 1, 0, 800, 600, 1024, 0, 1).finish(),
                                MonitorsConfig((Head(0, 0, 1024, 768, 0, 0, 0),
                                                Head(1, 0, 800, 600, 1024, 0, 1)), 4)),
}

NAMES = {m.value: m.name for m in DisplayMsg}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_message_parses_to_its_exact_event(name: str) -> None:
    msg_type, body, expected = CASES[name]()
    assert parse(msg_type, body) == expected


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n]()[1]))
def test_every_truncation_names_the_message_and_an_offset(name: str) -> None:
    msg_type, body, _ = CASES[name]()
    for end in range(len(body)):
        with pytest.raises(RemoteProtocolError,
                           match=rf"^{NAMES[msg_type]}: .*offset \d+ of a {end}-byte body"):
            parse(msg_type, body[:end])


HOSTILE: list[tuple[str, int, bytes, str]] = [
    ("inval resource type", 105, Body().u16(1).pack("BQ", 0, 1).finish(),
     r"INVAL_LIST: unknown resource type 0 .*offset 2"),
    ("inval count past body", 105, Body().u16(0xFFFF).pack("BQ", 1, 1).finish(),
     "65535 resources of 9 bytes run past the body"),
    ("waits past body", 106, Body().u8(200).finish(), "200 waits of 10 bytes"),
    ("stream id", 123, Body().u32(MAX_STREAMS).u32(0).u32(0).finish(),
     rf"STREAM_DATA: stream id {MAX_STREAMS} is not below {MAX_STREAMS} .*offset 0"),
    ("frame past body", 123, Body().u32(1).u32(0).u32(1 << 31).raw(b"xx").finish(),
     "frame of 2147483648 bytes runs past the body"),
    ("sized frame size", 316, Body().u32(1).u32(0).u32(0).u32(10).rect(0, 0, 1, 1).u32(0)
     .finish(), r"impossible frame size 0x10 .*offset 8"),
    ("create codec", 122, Body().pack("IIBBQIIII", 0, 3, 0, 9, 0, 8, 8, 8, 8).rect(0, 0, 8, 8)
     .clip([]).finish(), r"STREAM_CREATE: unknown video codec type 9 .*offset 9"),
    ("create id", 122, Body().pack("IIBBQIIII", 0, 64, 0, 1, 0, 8, 8, 8, 8).rect(0, 0, 8, 8)
     .clip([]).finish(), "stream id 64 is not below 64"),
    ("create size", 122, Body().pack("IIBBQIIII", 0, 1, 0, 1, 0, 8, 8, 8, 70000)
     .rect(0, 0, 8, 8).clip([]).finish(), "impossible source size 8x70000"),
    ("create clip", 122, Body().pack("IIBBQIIII", 0, 1, 0, 1, 0, 8, 8, 8, 8).rect(0, 0, 8, 8)
     .u8(5).finish(), "unknown clip type 5"),
    ("clip id", 124, Body().u32(1 << 31).clip([]).finish(), "STREAM_CLIP: stream id 2147483648"),
    ("destroy id", 125, struct.pack("<I", 100), "STREAM_DESTROY: stream id 100"),
    ("report id", 319, struct.pack("<4I", 64, 0, 0, 0), "STREAM_ACTIVATE_REPORT: stream id 64"),
    ("heads cap", 317, Body().u16(MAX_HEADS + 1).u16(0).finish(),
     rf"{MAX_HEADS + 1} heads \(at most {MAX_HEADS}\)"),
    ("heads past body", 317, Body().u16(3).u16(3).pack("7I", *range(7)).finish(),
     "3 heads of 28 bytes run past the body"),
]


@pytest.mark.parametrize(("what", "msg_type", "body", "fragment"), HOSTILE,
                         ids=[h[0] for h in HOSTILE])
def test_hostile_messages_are_remote_protocol_errors(what: str, msg_type: int, body: bytes,
                                                     fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        parse(msg_type, body)


def test_an_eviction_list_and_its_wait_arrive_together_in_one_list() -> None:
    # spice-server sends INVAL_LIST with a WAIT_FOR_CHANNELS as sub-messages of one
    # SPICE_MSG_LIST (dcc-send.cpp send_free_list): both come out, in order
    wait = struct.pack("<B", 1) + struct.pack("<BBQ", 2, 1, 500)
    inval = struct.pack("<H", 1) + struct.pack("<BQ", 1, 42)
    subs = [(5, wait), (105, inval)]
    header = struct.pack("<H", len(subs))
    offsets, payload = [], b""
    start = len(header) + 4 * len(subs)
    for msg_type, body in subs:
        offsets.append(start + len(payload))
        payload += struct.pack("<HI", msg_type, len(body)) + body
    body = header + b"".join(struct.pack("<I", o) for o in offsets) + payload
    events = DisplayProtocol(ChannelType.DISPLAY).receive_data(frame(8, body))
    assert events == [WaitForChannels((ChannelWait(ChannelType.DISPLAY, 1, 500),)),
                      InvalList((ResourceId(ResourceType.PIXMAP, 42),))]


def test_inval_all_pixmaps_then_the_other_channels_pixmap_sync() -> None:
    # the resetting channel gets INVAL_ALL_PIXMAPS with its wait list; another display
    # channel later gets a WAIT_FOR_CHANNELS naming that channel's reset serial
    resetter = DisplayProtocol(ChannelType.DISPLAY)
    other = DisplayProtocol(ChannelType.DISPLAY, 1)
    reset = resetter.receive_data(frame(106, struct.pack("<BBBQ", 1, 2, 1, 40)))
    sync = other.receive_data(frame(5, struct.pack("<BBBQ", 1, 2, 0, 12)))
    assert reset == [InvalAllPixmaps((ChannelWait(ChannelType.DISPLAY, 1, 40),))]
    assert sync == [WaitForChannels((ChannelWait(ChannelType.DISPLAY, 0, 12),))]


def _copy_of(image: bytes, palette: bytes | None = None) -> bytes:
    """A DRAW_COPY whose source is ``image``; a ``palette`` lands after it and the
    image's palette pointer (its last 4 bytes before any data) is patched by the caller."""
    b = Body().base(0, (0, 0, 8, 8)).ptr(image).rect(0, 0, 8, 8).u16(8).u8(0).mask()
    if palette is not None:
        b.ptr(palette)
    return b.finish()


def _bitmap(fmt: int, flags: int, stride: int, height: int, palette_field: bytes,
            data: bytes) -> bytes:
    union = struct.pack("<BBIII", fmt, flags, 8, height, stride) + palette_field + data
    return image_bytes(1, 0, 8, height, union)


UNIONS: list[tuple[str, bytes, str | None]] = [
    ("bitmap 32", _copy_of(_bitmap(8, 4, 32, 2, struct.pack("<I", 0), bytes(64))), None),
    ("bitmap cached palette", _copy_of(_bitmap(5, 2, 8, 2, struct.pack("<Q", 9), bytes(16))),
     None),
    ("bitmap format", _copy_of(_bitmap(11, 0, 32, 2, struct.pack("<I", 0), bytes(64))),
     "source image has unknown bitmap format 11"),
    ("bitmap format 0", _copy_of(_bitmap(0, 0, 32, 2, struct.pack("<I", 0), bytes(64))),
     "source image has unknown bitmap format 0"),
    ("bitmap data", _copy_of(_bitmap(8, 0, 32, 2, struct.pack("<I", 0), bytes(63))),
     "source image bitmap data of 64 bytes runs past the body"),
    ("bitmap palette past body", _copy_of(_bitmap(5, 0, 8, 2, struct.pack("<I", 1 << 20),
                                                  bytes(16))),
     "source image palette points at 1048576, past the body"),
    ("quic data", _copy_of(image_bytes(1, 1, 8, 8, struct.pack("<I", 100) + bytes(99))),
     "source image data of 100 bytes runs past the body"),
    ("lz4 data", _copy_of(image_bytes(1, 109, 8, 8, struct.pack("<I", 5) + bytes(5))), None),
    ("lz_plt NULL palette", _copy_of(image_bytes(1, 100, 8, 8, struct.pack("<BII", 0, 2, 0)
                                                 + b"zz")), "source image palette is NULL"),
    ("lz_plt cached palette", _copy_of(image_bytes(1, 100, 8, 8, struct.pack("<BIQ", 2, 2, 5)
                                                   + b"zz")), None),
    ("zlib_glz", _copy_of(image_bytes(1, 107, 8, 8, struct.pack("<II", 256, 3) + b"abc")),
     None),
    ("zlib_glz data", _copy_of(image_bytes(1, 107, 8, 8, struct.pack("<II", 256, 4) + b"abc")),
     "source image data of 4 bytes"),
    ("jpeg_alpha", _copy_of(image_bytes(1, 108, 8, 8, struct.pack("<BII", 1, 2, 3) + b"abc")),
     None),
    ("jpeg_alpha cut", _copy_of(image_bytes(1, 108, 8, 8, struct.pack("<BI", 1, 2))),
     "source image data size needs 4 bytes"),
    ("from cache", _copy_of(image_bytes(1, 103, 8, 8, b"")), None),
    ("reserved type", _copy_of(image_bytes(1, 2, 8, 8, b"")),
     "source image has unknown image type 2"),
]


@pytest.mark.parametrize(("what", "body", "fragment"), UNIONS, ids=[u[0] for u in UNIONS])
def test_image_unions_are_checked_against_the_body(what: str, body: bytes,
                                                   fragment: str | None) -> None:
    if fragment is None:
        event = parse(304, body)
        assert isinstance(event, DrawCopy) and event.image is not None
        assert event.image.at == struct.unpack_from("<I", body, 21)[0] + 18
    else:
        with pytest.raises(RemoteProtocolError, match=f"DRAW_COPY: {fragment}"):
            parse(304, body)


def test_a_palette_pointer_must_hold_its_entries() -> None:
    image = _bitmap(5, 0, 8, 2, struct.pack("<I", 0), bytes(16))
    palette = struct.pack("<QH", 3, 2) + struct.pack("<2I", 0, 0xFFFFFF)
    body = bytearray(_copy_of(image, palette))
    image_at = struct.unpack_from("<I", body, 21)[0]
    palette_at = len(body) - len(palette)
    struct.pack_into("<I", body, image_at + 18 + 14, palette_at)
    event = parse(304, bytes(body))
    assert isinstance(event, DrawCopy) and event.image is not None
    struct.pack_into("<H", body, palette_at + 8, 3)  # one entry more than the body holds
    with pytest.raises(RemoteProtocolError, match="palette entries of 12 bytes runs past"):
        parse(304, bytes(body))


# --- what the client sends --------------------------------------------------------------


def test_stream_report_is_spice_protos_32_bytes() -> None:
    body = build_stream_report(3, 7, start_frame_mm_time=1000, end_frame_mm_time=2000,
                               num_frames=30, num_drops=2, last_frame_delay=-40)
    assert body == struct.pack("<IIIIIIiI", 3, 7, 1000, 2000, 30, 2, -40, 0xFFFFFFFF)
    assert build_stream_report(0, 0, start_frame_mm_time=0, end_frame_mm_time=0,
                               num_frames=0, num_drops=0xFFFFFFFF, last_frame_delay=0,
                               audio_delay=5)[-8:] == struct.pack("<iI", 0, 5)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"stream_id": 64}, "stream id 64"),
    ({"unique_id": -1}, "unique id -1"),
    ({"num_frames": 1 << 32}, "frames 4294967296"),
    ({"last_frame_delay": 1 << 31}, "last frame delay"),
    ({"audio_delay": -1}, "audio delay"),
])
def test_stream_report_fields_that_do_not_fit_are_invalid_arguments(
        kwargs: dict[str, int], fragment: str) -> None:
    args = {"stream_id": 0, "unique_id": 0, "start_frame_mm_time": 0,
            "end_frame_mm_time": 0, "num_frames": 0, "num_drops": 0,
            "last_frame_delay": 0, **kwargs}
    with pytest.raises(InvalidArgument, match=fragment):
        build_stream_report(args.pop("stream_id"), args.pop("unique_id"), **args)


def test_preferred_video_codec_type_is_a_count_then_the_codecs() -> None:
    assert build_preferred_video_codec_type([VideoCodecType.MJPEG]) == b"\x01\x01"
    assert build_preferred_video_codec_type(
        [VideoCodecType.H264, VideoCodecType.VP8, 1]) == bytes([3, 3, 2, 1])
    assert [int(c) for c in VideoCodecType] == [1, 2, 3, 4, 5]
    with pytest.raises(InvalidArgument, match="0 codecs"):
        build_preferred_video_codec_type([])
    with pytest.raises(InvalidArgument, match=r"unknown codec types \[0, 6\]"):
        build_preferred_video_codec_type([0, 1, 6])
    with pytest.raises(InvalidArgument, match="256 codecs"):
        build_preferred_video_codec_type([1] * 256)


def test_the_protocol_sends_the_codec_preference_only_to_a_server_that_takes_it() -> None:
    able = DisplayProtocol(ChannelType.DISPLAY, channel_caps=(DisplayCap.PREF_VIDEO_CODEC_TYPE,))
    assert able.prefer_video_codecs([VideoCodecType.MJPEG, VideoCodecType.VP8]) is True
    assert able.data_to_send() == MINI.pack(105, 3) + bytes([2, 1, 2])
    old = DisplayProtocol(ChannelType.DISPLAY, channel_caps=(DisplayCap.PREF_COMPRESSION,))
    assert old.prefer_video_codecs([VideoCodecType.MJPEG]) is False
    assert old.data_to_send() == b""
    with pytest.raises(InvalidArgument, match="0 codecs"):
        able.prefer_video_codecs([])
