"""Real display-channel bytes from the lab (QEMU 7.2 / spice-server 0.15.1) replayed through
DisplayProtocol: atp-vm1's VGA text console with the MONITORS_CONFIG cap
(scripts/capture-display-session.py) and an MJPEG stream of the streaming display VM
(scripts/capture-display-stream.py); the events the server's sequence means, images and
frames that decode, and every truncation ending in RemoteProtocolError or nothing."""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.codecs.images import ImageState, decode_image
from atp_notebook.spice.proto.common import Ping, SetAck
from atp_notebook.spice.proto.constants import (
    ChannelType,
    ImageType,
    SurfaceFlags,
    VideoCodecType,
)
from atp_notebook.spice.proto.display import DisplayProtocol, DrawCopy, Mark, SurfaceCreated
from atp_notebook.spice.proto.display_cache import InvalAllPalettes
from atp_notebook.spice.proto.display_monitors import Head, MonitorsConfig
from atp_notebook.spice.proto.display_stream import (
    StreamClip,
    StreamCreated,
    StreamData,
    StreamDestroyed,
    StreamFlags,
)
from atp_notebook.spice.proto.display_wire import Rect, Ropd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice" / "display"
SESSION = FIXTURES / "atp-vm1-display-session.bin.gz"
STREAMING = FIXTURES / "streaming-display-session.bin.gz"
BAND = Rect(100, 0, 116, 1024)  # the rows the guest painted with noise, 150 times


def session_bytes(path: Path = SESSION) -> bytes:
    return gzip.decompress(path.read_bytes())


def test_the_servers_opening_sequence_parses_to_known_events() -> None:
    display = DisplayProtocol(ChannelType.DISPLAY)
    events = display.receive_data(session_bytes())
    assert display.metrics.unknown_messages == 0
    assert events[:3] == [SetAck(1, 20), InvalAllPalettes(),
                          SurfaceCreated(0, 720, 400, 32, SurfaceFlags.PRIMARY)]
    screen = events[3]
    assert isinstance(screen, DrawCopy) and screen.image is not None
    assert (screen.box, screen.clip, screen.src_area, screen.rop, screen.mask) == (
        Rect(0, 0, 400, 720), None, Rect(0, 0, 400, 720), Ropd.OP_PUT, None)
    assert events[4:6] == [MonitorsConfig((Head(0, 0, 720, 400, 0, 0, 0),), 1), Mark()]
    rest = events[6:]
    assert {type(e) for e in rest} == {DrawCopy, Ping}
    # the text cursor blinking: 9x2 pixels at row 93, column 99
    assert {(e.box, e.src_area) for e in rest if isinstance(e, DrawCopy)} == {
        (Rect(93, 99, 95, 108), Rect(0, 0, 2, 9))}


def test_every_image_of_the_session_decodes_at_its_descriptors_size() -> None:
    state = ImageState()
    draws = [e for e in DisplayProtocol(ChannelType.DISPLAY).receive_data(session_bytes())
             if isinstance(e, DrawCopy)]
    assert len(draws) >= 2
    for draw in draws:
        image = draw.image
        assert image is not None and image.type == ImageType.LZ_RGB
        decoded = decode_image(image, state)
        assert (decoded.width, decoded.height) == (image.width, image.height)


def test_a_real_mjpeg_stream_from_create_to_destroy() -> None:
    # default DisplayOptions announce no codec cap: spice-server streams MJPEG, which every
    # client takes; the band became a stream after 1 DRAW_COPY kept (the capture dropped
    # the other draws and all frames after the third)
    display = DisplayProtocol(ChannelType.DISPLAY)
    events = [e for e in display.receive_data(session_bytes(STREAMING))
              if not isinstance(e, Ping | SetAck)]
    assert display.metrics.unknown_messages == 0
    kinds = [type(e) for e in events]
    assert kinds == [InvalAllPalettes, SurfaceCreated, DrawCopy, Mark, DrawCopy, StreamCreated,
                     StreamData, StreamData, StreamData, StreamClip, StreamDestroyed]
    band = events[4]
    assert isinstance(band, DrawCopy) and (band.box, band.clip) == (BAND, (BAND,))
    created = events[5]
    assert isinstance(created, StreamCreated)
    assert created == StreamCreated(0, created.id, StreamFlags.TOP_DOWN, VideoCodecType.MJPEG,
                                    0, 1024, 16, 1024, 16, BAND, (BAND,))
    assert events[-2:] == [StreamClip(created.id, ()), StreamDestroyed(created.id)]
    frames = [e for e in events if isinstance(e, StreamData)]
    times = [f.multi_media_time for f in frames]
    assert times == sorted(times) and {f.id for f in frames} == {created.id}
    for f in frames:
        assert f.width is None and f.data[:2] == b"\xff\xd8"
        assert simplejpeg.decode_jpeg_header(f.data)[:2] == (16, 1024)
        pixels = simplejpeg.decode_jpeg(f.data, colorspace="RGB")
        assert pixels.shape == (16, 1024, 3) and float(np.std(pixels)) > 40  # noise, not flat


@pytest.mark.parametrize("path", [SESSION, STREAMING], ids=["console", "streaming"])
def test_every_truncation_of_the_session_is_a_remote_error_or_waits(path: Path) -> None:
    data = session_bytes(path)
    for end in range(0, len(data) + 1, max(1, len(data) // 1500)):
        display = DisplayProtocol(ChannelType.DISPLAY)
        with contextlib.suppress(RemoteProtocolError):
            display.receive_data(data[:end])
            display.receive_data(b"")
