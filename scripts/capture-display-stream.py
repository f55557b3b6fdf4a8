"""Capture a video stream from the lab's real Spice server: the golden sample that
``tests/unit/test_spice_display_session.py`` replays for STREAM_CREATE / STREAM_DATA /
STREAM_DESTROY.

Boots the ``streaming`` display VM (streaming-video=all), has its guest repaint a band of
fb0 with noise in a loop (same-size DRAW_COPYs, faster than spice-server's stream
detection needs), and records the server bytes of display channel 0 (default
DisplayOptions: no codec caps, so MJPEG, the codec every client takes). Only the first
FRAMES stream frames and the first DRAWS DRAW_COPYs are kept (the others, ~50 KB of LZ
noise each, are dropped whole, message by message: mini headers carry no serial) so the
fixture stays small. Run under the lab lock::

    flock /tmp/atp-lab.lock .venv/bin/python scripts/capture-display-stream.py
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

from atp_notebook.lab.display_vms import DisplayGuest, display_vm
from atp_notebook.loop import get_loop
from atp_notebook.session import connect
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType, DisplayMsg
from atp_notebook.spice.proto.display import (
    DISPLAY_MAX_MESSAGE_SIZE,
    DisplayOptions,
    DisplayProtocol,
)
from atp_notebook.spice.proto.framing import MessageReader, MessageWriter
from atp_notebook.spice.vm import SpiceVmConnection

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "spice" / "display"
FRAMES = 3
BAND_ROWS = 16  # 1024x16 px: above spice-server's minimum stream area (96x96)
DRAWS = 2  # DRAW_COPYs kept: the initial screen and the first noise band
PAINTS = 150
# the guest's busybox sh: PAINTS noise bands at row 100 of fb0, as fast as TCG allows
# one write() per paint, as atp-fb-show does: one dirty rectangle, one DRAW_COPY
LOOP = (f"i=0; while [ $i -lt {PAINTS} ]; do dd if=/dev/urandom of=/dev/fb0 "
        f"bs={BAND_ROWS * 4096} count=1 seek={100 * 4096} iflag=fullblock oflag=seek_bytes "
        f"conv=notrunc status=none; i=$((i+1)); done; echo $i")


def trimmed(data: bytes) -> bytes:
    """The messages of ``data`` without the STREAM_DATAs after the first FRAMES and the
    DRAW_COPYs after the first DRAWS."""
    reader = MessageReader(max_message_size=DISPLAY_MAX_MESSAGE_SIZE)
    reader.feed(data)
    writer = MessageWriter()
    out, frames, draws = bytearray(), 0, 0
    for message in reader.read_messages():
        if message.msg_type in (DisplayMsg.STREAM_DATA, DisplayMsg.STREAM_DATA_SIZED):
            frames += 1
            if frames > FRAMES:
                continue
        if message.msg_type == DisplayMsg.DRAW_COPY:
            draws += 1
            if draws > DRAWS:
                continue
        out += writer.pack(message.msg_type, message.body)
    return bytes(out)


def capture(seconds: float = 3.0) -> Path:
    received = bytearray()
    original = DisplayProtocol.receive_data

    def recording(self: ChannelProtocol, data: bytes) -> list[ChannelEvent]:
        received.extend(data)
        return original(self, data)

    session = connect()
    try:
        with display_vm("streaming") as dvm:
            guest = DisplayGuest(session.vm(dvm.name))
            guest.framebuffers_on()
            guest.show(None, 0)  # black, console unbound, cursor blink off
            spice = SpiceVmConnection(dvm.name, SpiceEndpoint(dvm.spice_host,
                                                              port=dvm.spice_port),
                                      display=DisplayOptions())
            DisplayProtocol.receive_data = recording  # type: ignore[method-assign]
            try:
                get_loop().call(spice.open_channel(ChannelType.DISPLAY, 0), 30)
                time.sleep(2)
                began = time.monotonic()
                print(guest.run(["/bin/sh", "-c", LOOP]).strip(), "paints in",
                      f"{time.monotonic() - began:.1f} s")
                time.sleep(seconds)
                get_loop().call(spice.close(), 30)
            finally:
                DisplayProtocol.receive_data = original  # type: ignore[method-assign]
    finally:
        session.close()
    out = OUT / "streaming-display-session.bin.gz"
    out.write_bytes(gzip.compress(trimmed(bytes(received)), mtime=0))
    return out


if __name__ == "__main__":
    print(capture())
