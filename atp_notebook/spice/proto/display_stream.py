"""Video streams on the display channel (spice.proto ``channel DisplayChannel``):
STREAM_CREATE, STREAM_DATA, STREAM_DATA_SIZED, STREAM_CLIP, STREAM_DESTROY,
STREAM_DESTROY_ALL and STREAM_ACTIVATE_REPORT from the server; STREAM_REPORT and
PREFERRED_VIDEO_CODEC_TYPE from the client.

The server streams a region it sees changing fast (streaming-video=filter/all) as frames of
a video codec; with MJPEG each frame is a whole JPEG. STREAM_DATA_SIZED (SIZED_STREAM cap)
carries a frame of its own size and destination. A stream id is below
SPICE_MAX_NUM_STREAMS (protocol.h: 64). Frames are kept as the bytes of the message body.

Example::

    created = parse_stream_create(body)       # StreamCreated(id=3, codec=MJPEG, ...)
    build_preferred_video_codec_type([VideoCodecType.MJPEG])     # b"\\x01\\x01"
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntFlag

from atp_notebook.errors import InvalidArgument
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import DisplayMsg, VideoCodecType
from atp_notebook.spice.proto.display_wire import (
    MAX_SIDE,
    BodyReader,
    Rect,
    read_clip,
    read_rect,
)

STREAM_CREATE_HEAD = struct.Struct("<IIBBQIIII")  # surface, id, flags, codec, stamp, sizes
STREAM_DATA_HEADER = struct.Struct("<II")  # StreamDataHeader: id, multi_media_time
STREAM_ACTIVATE_REPORT = struct.Struct("<IIII")
# client side: stream id, unique id, start/end mm time, frames, drops, last delay (i32),
# audio delay
STREAM_REPORT = struct.Struct("<IIIIIIiI")

MAX_STREAMS = 64  # SPICE_MAX_NUM_STREAMS (protocol.h): ids are below it
#: num_frames 0 with num_drops 0xffffffff reports a stream the client cannot decode
#: (spice.proto stream_report)
REPORT_UNSUPPORTED_DROPS = 0xFFFF_FFFF


class StreamFlags(IntFlag):
    """enums.h SpiceStreamFlags."""

    TOP_DOWN = 1 << 0


@dataclass(frozen=True, slots=True)
class StreamCreated(ChannelEvent):
    """A stream of ``stream_width``x``stream_height`` frames, scaled to ``dest`` (the
    ``src_width``x``src_height`` area of surface ``surface_id``), clipped to ``clip``."""

    surface_id: int
    id: int
    flags: StreamFlags
    codec: VideoCodecType
    stamp: int
    stream_width: int
    stream_height: int
    src_width: int
    src_height: int
    dest: Rect
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)


@dataclass(frozen=True, slots=True)
class StreamData(ChannelEvent):
    """One frame for stream ``id``, due at ``multi_media_time`` (ms, the main channel's
    clock). STREAM_DATA_SIZED also gives the frame's size and destination."""

    id: int
    multi_media_time: int
    data: bytes = field(repr=False)
    width: int | None = None
    height: int | None = None
    dest: Rect | None = None


@dataclass(frozen=True, slots=True)
class StreamClip(ChannelEvent):
    id: int
    clip: tuple[Rect, ...] | None  # None: no clip; (): RECTS with none (draw nothing)


@dataclass(frozen=True, slots=True)
class StreamDestroyed(ChannelEvent):
    id: int


@dataclass(frozen=True, slots=True)
class AllStreamsDestroyed(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class StreamActivateReport(ChannelEvent):
    """Send STREAM_REPORT for this stream (tagged ``unique_id``) at most every
    ``timeout_ms`` or every ``max_window_size`` frames (STREAM_REPORT cap)."""

    stream_id: int
    unique_id: int
    max_window_size: int
    timeout_ms: int


def _stream_id(r: BodyReader, what: str = "stream id") -> int:
    at = r.offset
    stream_id = r.u32(what)
    if stream_id >= MAX_STREAMS:
        raise r.fail(f"{what} {stream_id} is not below {MAX_STREAMS}", at)
    return stream_id


def _sides(r: BodyReader, what: str, width: int, height: int, at: int) -> None:
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise r.fail(f"impossible {what} {width}x{height}", at)


def parse_stream_create(body: bytes) -> StreamCreated:
    r = BodyReader(body, "STREAM_CREATE")
    at = r.offset
    (surface_id, stream_id, flags, codec, stamp, stream_w, stream_h, src_w,
     src_h) = r.take(STREAM_CREATE_HEAD, "stream header")
    if stream_id >= MAX_STREAMS:
        raise r.fail(f"stream id {stream_id} is not below {MAX_STREAMS}", at + 4)
    kind = VideoCodecType(r.enum(VideoCodecType, codec, "video codec type", at + 9))
    _sides(r, "stream size", stream_w, stream_h, at)
    _sides(r, "source size", src_w, src_h, at)
    dest = read_rect(r, "destination")
    return StreamCreated(surface_id, stream_id, StreamFlags(flags & StreamFlags.TOP_DOWN),
                         kind, stamp, stream_w, stream_h, src_w, src_h, dest, read_clip(r))


def parse_stream_data(body: bytes) -> StreamData:
    r = BodyReader(body, "STREAM_DATA")
    stream_id = _stream_id(r)
    mm_time = r.u32("multi media time")
    data = r.bytes_(r.u32("data size"), "frame")
    return StreamData(stream_id, mm_time, data)


def parse_stream_data_sized(body: bytes) -> StreamData:
    r = BodyReader(body, "STREAM_DATA_SIZED")
    stream_id = _stream_id(r)
    mm_time = r.u32("multi media time")
    at = r.offset
    width, height = r.u32("width"), r.u32("height")
    _sides(r, "frame size", width, height, at)
    dest = read_rect(r, "destination")
    data = r.bytes_(r.u32("data size"), "frame")
    return StreamData(stream_id, mm_time, data, width, height, dest)


def parse_stream_clip(body: bytes) -> StreamClip:
    r = BodyReader(body, "STREAM_CLIP")
    return StreamClip(_stream_id(r), read_clip(r))


def parse_stream_destroy(body: bytes) -> StreamDestroyed:
    return StreamDestroyed(_stream_id(BodyReader(body, "STREAM_DESTROY")))


def parse_stream_activate_report(body: bytes) -> StreamActivateReport:
    r = BodyReader(body, "STREAM_ACTIVATE_REPORT")
    stream_id = _stream_id(r)
    unique_id, window, timeout = (r.u32("unique id"), r.u32("max window size"),
                                  r.u32("timeout"))
    return StreamActivateReport(stream_id, unique_id, window, timeout)


STREAM_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    DisplayMsg.STREAM_CREATE: parse_stream_create,
    DisplayMsg.STREAM_DATA: parse_stream_data,
    DisplayMsg.STREAM_DATA_SIZED: parse_stream_data_sized,
    DisplayMsg.STREAM_CLIP: parse_stream_clip,
    DisplayMsg.STREAM_DESTROY: parse_stream_destroy,
    DisplayMsg.STREAM_DESTROY_ALL: lambda _body: AllStreamsDestroyed(),
    DisplayMsg.STREAM_ACTIVATE_REPORT: parse_stream_activate_report,
}


def _u32(name: str, value: int, *, signed: bool = False) -> int:
    low, high = (-(1 << 31), (1 << 31) - 1) if signed else (0, (1 << 32) - 1)
    if not low <= value <= high:
        raise InvalidArgument(f"STREAM_REPORT: {name} {value} does not fit its field")
    return value


def build_stream_report(stream_id: int, unique_id: int, *, start_frame_mm_time: int,
                        end_frame_mm_time: int, num_frames: int, num_drops: int,
                        last_frame_delay: int, audio_delay: int = 0xFFFF_FFFF) -> bytes:
    """The STREAM_REPORT body (spice.proto ``stream_report``); ``audio_delay`` 0xffffffff
    means no audio playback, ``last_frame_delay`` is end_frame_mm_time minus the client's
    mm time (negative: late).

    Example::

        build_stream_report(3, 7, start_frame_mm_time=1000, end_frame_mm_time=2000,
                            num_frames=30, num_drops=0, last_frame_delay=40)  # 32 bytes
    """
    if not 0 <= stream_id < MAX_STREAMS:
        raise InvalidArgument(f"STREAM_REPORT: stream id {stream_id} is not below "
                              f"{MAX_STREAMS}")
    values = [_u32(n, v) for n, v in (("unique id", unique_id),
                                      ("start time", start_frame_mm_time),
                                      ("end time", end_frame_mm_time),
                                      ("frames", num_frames), ("drops", num_drops))]
    return STREAM_REPORT.pack(stream_id, *values,
                              _u32("last frame delay", last_frame_delay, signed=True),
                              _u32("audio delay", audio_delay))


def build_preferred_video_codec_type(codecs: Sequence[VideoCodecType | int]) -> bytes:
    """The PREFERRED_VIDEO_CODEC_TYPE body: u8 count, then the codecs, most wanted first.

    Example::

        build_preferred_video_codec_type([VideoCodecType.MJPEG])     # b"\\x01\\x01"
    """
    if not 0 < len(codecs) <= 0xFF:
        raise InvalidArgument(f"PREFERRED_VIDEO_CODEC_TYPE: {len(codecs)} codecs "
                              "(1 to 255)")
    known = {int(c) for c in VideoCodecType}
    bad = [c for c in codecs if int(c) not in known]
    if bad:
        raise InvalidArgument(f"PREFERRED_VIDEO_CODEC_TYPE: unknown codec types {bad}")
    return bytes([len(codecs), *(int(c) for c in codecs)])
