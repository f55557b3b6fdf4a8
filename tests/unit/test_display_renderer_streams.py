"""DisplayRenderer streams on hand-built messages: MJPEG frames (made with simplejpeg) drawn
into the stream's destination, scaled, flipped when the stream is bottom-up, clipped by the
stream's clip and by STREAM_CLIP, STREAM_DATA_SIZED's own size and place, frames without
their tables, destroy and destroy-all; every lie a RemoteProtocolError naming the message,
after which the renderer still draws. Expected pixels: simplejpeg's own decode of the frame,
placed by numpy here."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import pytest
import simplejpeg

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.display.streams import jpeg_tables
from atp_notebook.spice.proto.constants import DisplayMsg
from tests.unit.display_messages import Body, Quad
from tests.unit.renderer_messages import Words, parse, renderer_with, screen

BG = 0x00202020
MJPEG, VP8 = 1, 2
TOP_DOWN = 1


def frame(width: int, height: int, seed: int = 1) -> bytes:
    """A JPEG of flat 4x4 blocks (quality 100: few artefacts, but the oracle is simplejpeg's
    decode of these bytes, not the source)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=((height + 3) // 4, (width + 3) // 4, 3), dtype=np.uint8)
    rgb = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)[:height, :width]
    return bytes(simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=100,
                                        colorspace="RGB"))


def decoded(data: bytes) -> Words:
    """simplejpeg's decode as 0x00RRGGBB words."""
    bgrx = simplejpeg.decode_jpeg(data, "BGRX").copy()
    bgrx[..., 3] = 0
    return bgrx.view("<u4")[..., 0].astype(np.uint32)


def create(stream_id: int, width: int, height: int, dest: Quad, *, flags: int = TOP_DOWN,
           codec: int = MJPEG, clip: Sequence[Quad] = (), surface: int = 0) -> bytes:
    top, left, bottom, right = dest
    return (Body().pack("IIBBQIIII", surface, stream_id, flags, codec, 0, width, height,
                        right - left, bottom - top).rect(*dest).clip(clip).finish())


def data(stream_id: int, jpeg: bytes) -> bytes:
    return struct.pack("<III", stream_id, 1000, len(jpeg)) + jpeg


def sized(stream_id: int, jpeg: bytes, width: int, height: int, dest: Quad) -> bytes:
    return (struct.pack("<IIII", stream_id, 1000, width, height) + struct.pack("<4i", *dest)
            + struct.pack("<I", len(jpeg)) + jpeg)


def stream_renderer() -> DisplayRenderer:
    return renderer_with(32, 24, fill=BG)


def test_a_frame_lands_in_the_destination_and_is_counted() -> None:
    r = stream_renderer()
    jpeg = frame(16, 8)
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(3, 16, 8, (4, 8, 12, 24))))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(3, jpeg)))
    e = np.full((24, 32), BG, dtype=np.uint32)
    e[4:12, 8:24] = decoded(jpeg)
    assert np.array_equal(screen(r), e)
    assert r.stream_frames == 1
    assert r.primary is not None and r.primary.take_damage()[-1] == (8, 4, 24, 12)


def test_a_bottom_up_stream_is_flipped() -> None:
    r = stream_renderer()
    jpeg = frame(16, 8)
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(0, 16, 8, (0, 0, 8, 16), flags=0)))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(0, jpeg)))
    assert np.array_equal(screen(r)[0:8, 0:16], decoded(jpeg)[::-1])


def test_a_frame_smaller_than_its_destination_is_scaled() -> None:
    r = stream_renderer()
    jpeg = frame(8, 8)
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(1, 8, 8, (0, 0, 16, 16))))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(1, jpeg)))
    twice = np.repeat(np.repeat(decoded(jpeg), 2, axis=0), 2, axis=1)
    assert np.array_equal(screen(r)[0:16, 0:16], twice)


def test_the_streams_clip_and_stream_clip() -> None:
    r = stream_renderer()
    first, second, third = frame(16, 8, 1), frame(16, 8, 2), frame(16, 8, 3)
    r.apply(parse(DisplayMsg.STREAM_CREATE,
                  create(2, 16, 8, (0, 0, 8, 16), clip=[(0, 0, 8, 4)])))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(2, first)))
    e = np.full((24, 32), BG, dtype=np.uint32)
    e[0:8, 0:4] = decoded(first)[:, 0:4]
    assert np.array_equal(screen(r), e)
    r.apply(parse(DisplayMsg.STREAM_CLIP, Body().u32(2).clip([(0, 12, 8, 16)]).finish()))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(2, second)))
    e[0:8, 12:16] = decoded(second)[:, 12:16]
    assert np.array_equal(screen(r), e)
    # a RECTS clip of no rects: the frame is decoded (and counted) but nothing is drawn
    r.apply(parse(DisplayMsg.STREAM_CLIP, struct.pack("<IBI", 2, 1, 0)))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(2, third)))
    assert np.array_equal(screen(r), e)
    assert r.stream_frames == 3


def test_stream_data_sized_brings_its_own_size_and_place() -> None:
    r = stream_renderer()
    jpeg = frame(8, 4)
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(4, 16, 8, (0, 0, 8, 16))))
    r.apply(parse(DisplayMsg.STREAM_DATA_SIZED, sized(4, jpeg, 8, 4, (10, 20, 14, 28))))
    assert np.array_equal(screen(r)[10:14, 20:28], decoded(jpeg))
    assert set(screen(r)[0:8, 0:16].reshape(-1)) == {BG}


def test_a_frame_without_tables_uses_the_streams_last_ones() -> None:
    first, second = frame(16, 8, 1), frame(16, 8, 2)
    tables = jpeg_tables(second)
    assert set(tables) == {0xDB, 0xC4}
    bare = second
    for segment in tables.values():
        bare = bare.replace(segment, b"")
    with pytest.raises(ValueError):
        simplejpeg.decode_jpeg(bare, "BGRX")  # not decodable on its own
    r = stream_renderer()
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(5, 16, 8, (0, 0, 8, 16))))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(5, first)))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(5, bare)))
    assert np.array_equal(screen(r)[0:8, 0:16], decoded(second))  # same tables: quality 100


def test_destroy_and_destroy_all() -> None:
    r = stream_renderer()
    for stream_id in (1, 2, 3):
        r.apply(parse(DisplayMsg.STREAM_CREATE, create(stream_id, 16, 8, (0, 0, 8, 16))))
    r.apply(parse(DisplayMsg.STREAM_DESTROY, struct.pack("<I", 2)))
    assert sorted(r.streams.streams) == [1, 3]
    with pytest.raises(RemoteProtocolError, match="STREAM_DATA: unknown stream 2"):
        r.apply(parse(DisplayMsg.STREAM_DATA, data(2, frame(16, 8))))
    r.apply(parse(DisplayMsg.STREAM_DESTROY_ALL, b""))
    assert r.streams.streams == {}
    # a destroyed surface takes its streams along
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16))))
    r.apply(parse(DisplayMsg.SURFACE_DESTROY, struct.pack("<I", 0)))
    assert r.streams.streams == {}


HOSTILE: dict[str, tuple[list[tuple[int, bytes]], str]] = {
    "data for a stream never created": (
        [(DisplayMsg.STREAM_DATA, data(7, frame(16, 8)))], "STREAM_DATA: unknown stream 7"),
    "clip of a stream never created": (
        [(DisplayMsg.STREAM_CLIP, Body().u32(7).clip([]).finish())],
        "STREAM_CLIP: unknown stream 7"),
    "destroy of a stream never created": (
        [(DisplayMsg.STREAM_DESTROY, struct.pack("<I", 7))], "STREAM_DESTROY: unknown stream 7"),
    "a codec never announced": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16), codec=VP8))],
        "STREAM_CREATE: stream 1 uses codec VP8"),
    "a stream created twice": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16)))] * 2,
        "STREAM_CREATE: stream 1 already exists"),
    "a stream on a surface that does not exist": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16), surface=9))],
        "STREAM_CREATE: stream 1 on unknown surface 9"),
    "a destination past the surface": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (20, 20, 28, 36)))],
        r"STREAM_CREATE: destination \(20, 20, 36, 28\) is not inside surface 0"),
    "a sized frame's destination past the surface": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16))),
         (DisplayMsg.STREAM_DATA_SIZED, sized(1, frame(8, 4), 8, 4, (0, 30, 4, 38)))],
        "STREAM_DATA_SIZED: destination .* is not inside surface 0"),
    "a frame of another size": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16))),
         (DisplayMsg.STREAM_DATA, data(1, frame(8, 8)))],
        "STREAM_DATA: stream 1 frame: .*8x8.*16x8"),
    "a frame that is not a JPEG": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16))),
         (DisplayMsg.STREAM_DATA, data(1, b"\xff\xd8 not a jpeg at all"))],
        "STREAM_DATA: stream 1 frame"),
    "a JPEG cut short": (
        [(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16))),
         (DisplayMsg.STREAM_DATA, data(1, frame(16, 8)[:200]))],
        "STREAM_DATA: stream 1 frame"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_streams_are_remote_errors_and_the_renderer_goes_on(name: str) -> None:
    messages, error = HOSTILE[name]
    r = stream_renderer()
    with pytest.raises(RemoteProtocolError, match=error):
        for msg_type, body in messages:
            r.apply(parse(msg_type, body))
    assert r.stream_frames == 0
    # a good stream afterwards still draws
    jpeg = frame(16, 8, 9)
    r.apply(parse(DisplayMsg.STREAM_DESTROY_ALL, b""))
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(6, 16, 8, (16, 16, 24, 32))))
    r.apply(parse(DisplayMsg.STREAM_DATA, data(6, jpeg)))
    assert np.array_equal(screen(r)[16:24, 16:32], decoded(jpeg))


def test_a_frame_past_the_size_cap_is_refused_before_decoding() -> None:
    r = renderer_with(32, 24, max_image_pixels=100)
    r.apply(parse(DisplayMsg.STREAM_CREATE, create(1, 16, 8, (0, 0, 8, 16))))
    with pytest.raises(RemoteProtocolError,
                       match="STREAM_DATA: stream 1's frame of 16x8 is larger than the 100"):
        r.apply(parse(DisplayMsg.STREAM_DATA, data(1, frame(16, 8))))
    r.apply(parse(DisplayMsg.STREAM_DATA_SIZED, sized(1, frame(8, 4), 8, 4, (0, 0, 4, 8))))
    assert r.stream_frames == 1
