"""Real display-channel bytes from the lab (QEMU 7.2 / spice-server 0.15.1, atp-vm1's VGA
text console, the MONITORS_CONFIG cap announced; scripts/capture-display-session.py)
replayed through DisplayProtocol: the events the server's sequence means, images that
decode, and every truncation of the bytes ending in RemoteProtocolError or nothing."""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.codecs.images import ImageState, decode_image
from atp_notebook.spice.proto.common import Ping, SetAck
from atp_notebook.spice.proto.constants import ChannelType, ImageType, SurfaceFlags
from atp_notebook.spice.proto.display import DisplayProtocol, DrawCopy, Mark, SurfaceCreated
from atp_notebook.spice.proto.display_cache import InvalAllPalettes
from atp_notebook.spice.proto.display_monitors import Head, MonitorsConfig
from atp_notebook.spice.proto.display_wire import Rect, Ropd

SESSION = (Path(__file__).resolve().parents[1] / "fixtures" / "spice" / "display"
           / "atp-vm1-display-session.bin.gz")


def session_bytes() -> bytes:
    return gzip.decompress(SESSION.read_bytes())


def test_the_servers_opening_sequence_parses_to_known_events() -> None:
    display = DisplayProtocol(ChannelType.DISPLAY)
    events = display.receive_data(session_bytes())
    assert display.metrics.unknown_messages == 0
    assert events[:3] == [SetAck(1, 20), InvalAllPalettes(),
                          SurfaceCreated(0, 720, 400, 32, SurfaceFlags.PRIMARY)]
    screen = events[3]
    assert isinstance(screen, DrawCopy) and screen.image is not None
    assert (screen.box, screen.clip, screen.src_area, screen.rop, screen.mask) == (
        Rect(0, 0, 400, 720), (), Rect(0, 0, 400, 720), Ropd.OP_PUT, None)
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


def test_every_truncation_of_the_session_is_a_remote_error_or_waits() -> None:
    data = session_bytes()
    for end in range(0, len(data) + 1, max(1, len(data) // 1500)):
        display = DisplayProtocol(ChannelType.DISPLAY)
        with contextlib.suppress(RemoteProtocolError):
            display.receive_data(data[:end])
            display.receive_data(b"")
