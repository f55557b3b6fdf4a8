"""Video streams drawn into their surface: STREAM_CREATE, STREAM_DATA(_SIZED), STREAM_CLIP,
STREAM_DESTROY and STREAM_DESTROY_ALL.

The server turns a region it sees changing fast into a stream (research display.md §1.4):
each MJPEG frame is a JPEG of ``stream_width`` x ``stream_height`` (STREAM_DATA_SIZED: of
its own size and destination) drawn into the stream's ``dest`` on its surface, scaled by
nearest neighbour when the sizes differ, through the stream's clip, and flipped when
STREAM_CREATE lacks the TOP_DOWN flag (spice-gtk channel-display.c). Only MJPEG is ever
announced, so a stream of any other codec is a RemoteProtocolError.

spice-server's MJPEG encoder writes its Huffman tables with a stream's first frame only
(``jpeg_start_compress(.., first_frame)``; research §1.4), and its quantisation tables
only when the quality changes: a frame without them is decoded with the last ones the
stream sent, as spice-gtk's one decompressor per stream does.

Example::

    streams = StreamPlayer(surfaces)
    streams.apply(created)          # StreamCreated
    streams.apply(data)             # StreamData: one frame decoded and drawn
    streams.frames                  # 1
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.codecs.jpeg import decode_jpeg
from atp_notebook.spice.display.image_source import MAX_IMAGE_PIXELS, check_size
from atp_notebook.spice.display.raster import copy, image_pixels
from atp_notebook.spice.display.surfaces import Box, Surface, Surfaces
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import VideoCodecType
from atp_notebook.spice.proto.display_stream import (
    AllStreamsDestroyed,
    StreamClip,
    StreamCreated,
    StreamData,
    StreamDestroyed,
    StreamFlags,
)
from atp_notebook.spice.proto.display_wire import Rect

__all__ = ["ActiveStream", "StreamPlayer", "jpeg_tables", "with_tables"]

_SOI, _SOS, _DQT, _DHT = 0xD8, 0xDA, 0xDB, 0xC4
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _segments(frame: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment between SOI and SOS; stops at the
    first thing that is not a well-formed segment (the decoder reports bad data)."""
    out: list[tuple[int, int, int]] = []
    if frame[:2] != b"\xff\xd8":
        return out
    pos = 2
    while pos + 4 <= len(frame) and frame[pos] == 0xFF:
        marker = frame[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(frame[pos + 2:pos + 4], "big")
        if marker == _SOS or end > len(frame):
            break
        out.append((marker, pos, end))
        pos = end
    return out


def jpeg_tables(frame: bytes) -> dict[int, bytes]:
    """The DQT and DHT segments a frame carries, by marker (all segments of a kind joined)."""
    tables: dict[int, bytes] = {}
    for marker, start, end in _segments(frame):
        if marker in (_DQT, _DHT):
            tables[marker] = tables.get(marker, b"") + frame[start:end]
    return tables


def with_tables(frame: bytes, saved: dict[int, bytes]) -> bytes:
    """``frame`` with the ``saved`` tables of the kinds it lacks put right after SOI."""
    have = jpeg_tables(frame)
    missing = b"".join(seg for marker, seg in saved.items() if marker not in have)
    if not missing or frame[:2] != b"\xff\xd8":
        return frame
    return frame[:2] + missing + frame[2:]


@dataclass
class ActiveStream:
    """One stream between its STREAM_CREATE and STREAM_DESTROY."""

    created: StreamCreated
    clip: tuple[Rect, ...] | None
    tables: dict[int, bytes] = field(default_factory=dict)
    frames: int = 0


def _check_inside(surface: Surface, dest: Rect, what: str) -> None:
    box = Box.of(dest)
    if box.empty or box.intersect(surface.bounds) != box:
        raise RemoteProtocolError(f"{what}: destination {tuple(box)} is not inside surface "
                                  f"{surface.surface_id} ({surface.width}x{surface.height})")


class StreamPlayer:
    """The live streams of one display channel, drawing each frame as it arrives."""

    def __init__(self, surfaces: Surfaces, *, max_frame_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.surfaces = surfaces
        self.max_frame_pixels = max_frame_pixels
        self.streams: dict[int, ActiveStream] = {}
        #: frames decoded and drawn since this player was made
        self.frames = 0

    def apply(self, event: ChannelEvent) -> None:
        if isinstance(event, StreamData):
            self.frame(event)
        elif isinstance(event, StreamCreated):
            self.create(event)
        elif isinstance(event, StreamClip):
            self._get(event.id, "STREAM_CLIP").clip = event.clip
        elif isinstance(event, StreamDestroyed):
            self._get(event.id, "STREAM_DESTROY")
            del self.streams[event.id]
        elif isinstance(event, AllStreamsDestroyed):
            self.streams.clear()

    def create(self, event: StreamCreated) -> None:
        if event.codec != VideoCodecType.MJPEG:
            raise RemoteProtocolError(f"STREAM_CREATE: stream {event.id} uses codec "
                                      f"{event.codec.name}, which this client never "
                                      "announced (MJPEG only)")
        if event.id in self.streams:
            raise RemoteProtocolError(f"STREAM_CREATE: stream {event.id} already exists")
        if event.surface_id not in self.surfaces:
            raise RemoteProtocolError(f"STREAM_CREATE: stream {event.id} on unknown surface "
                                      f"{event.surface_id}")
        _check_inside(self.surfaces.get(event.surface_id), event.dest, "STREAM_CREATE")
        self.streams[event.id] = ActiveStream(event, event.clip)

    def drop_surface(self, surface_id: int) -> None:
        """A destroyed surface takes its streams with it."""
        for stream_id in [i for i, s in self.streams.items()
                          if s.created.surface_id == surface_id]:
            del self.streams[stream_id]

    def _get(self, stream_id: int, what: str) -> ActiveStream:
        stream = self.streams.get(stream_id)
        if stream is None:
            raise RemoteProtocolError(f"{what}: unknown stream {stream_id}")
        return stream

    def frame(self, event: StreamData) -> None:
        what = "STREAM_DATA" if event.dest is None else "STREAM_DATA_SIZED"
        stream = self._get(event.id, what)
        created = stream.created
        if created.surface_id not in self.surfaces:
            raise RemoteProtocolError(f"{what}: stream {event.id}'s surface "
                                      f"{created.surface_id} is gone")
        surface = self.surfaces.get(created.surface_id)
        width = created.stream_width if event.width is None else event.width
        height = created.stream_height if event.height is None else event.height
        dest = created.dest if event.dest is None else event.dest
        _check_inside(surface, dest, what)
        check_size(f"{what}: stream {event.id}'s frame", width, height, self.max_frame_pixels)
        data = event.data
        tables = jpeg_tables(data)
        if tables:
            stream.tables.update(tables)
        if stream.tables.keys() - tables.keys():
            data = with_tables(data, stream.tables)
        try:
            decoded = decode_jpeg(data, width=width, height=height)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{what}: stream {event.id} frame: {exc}") from exc
        except Exception as exc:  # the decoder failing on server data in a way it did not name
            raise RemoteProtocolError(f"{what}: stream {event.id} frame could not be "
                                      f"decoded: {type(exc).__name__}: {exc}") from exc
        pixels = image_pixels(decoded)
        if not created.flags & StreamFlags.TOP_DOWN:
            pixels = np.ascontiguousarray(pixels[::-1])
        copy(surface, dest, stream.clip, src=pixels, src_area=Box(0, 0, width, height))
        stream.frames += 1
        self.frames += 1
