"""Receiving large display messages: a whole-screen DRAW_COPY through the channel's framing.

``display_message_in.<size>``: ``DisplayProtocol.receive_data`` fed a 1024x768 raw-BITMAP
DRAW_COPY (3 MiB, what image-compression=off sends for a whole screen) in the 256 KiB
chunks the socket reader hands over, until the parsed event is out; the anchor joins the
same chunks into one bytes object (the least any framing must do: one copy of the body).
The ratio shows what framing and parsing cost on top of that copy, on the atp loop, per
whole-screen message. Interleaved ABBA.

    .venv/bin/python -m bench.bench_framing [--quick]
"""

from __future__ import annotations

import struct

from atp_notebook.spice.proto.constants import ChannelType, DisplayMsg
from atp_notebook.spice.proto.display import DisplayProtocol, DrawCopy
from atp_notebook.spice.proto.framing import MessageWriter
from bench.measure import emit, interleave, iterations, median, ms

CHUNK = 256 * 1024  # spice/aio/channel.py READ_CHUNK
WIDTH, HEIGHT = 1024, 768


def draw_copy_message() -> bytes:
    """DRAW_COPY of a whole-screen 32-bit top-down BITMAP, laid out as spice.proto says."""
    stride = WIDTH * 4
    image = (struct.pack("<QBBII", 1, 0, 0, WIDTH, HEIGHT)  # descriptor: id, BITMAP, flags
             + struct.pack("<BBIIII", 8, 4, WIDTH, HEIGHT, stride, 0)  # 32BIT, TOP_DOWN
             + bytes(range(256)) * (stride * HEIGHT // 256))
    rect = struct.pack("<iiii", 0, 0, HEIGHT, WIDTH)  # top, left, bottom, right
    fixed = (struct.pack("<I", 0) + rect + b"\0"  # surface 0, box, no clip
             + struct.pack("<I", 0) + rect + struct.pack("<HB", 8, 0)  # image ptr, src, rop
             + struct.pack("<BiiI", 0, 0, 0, 0))  # no mask
    offset = len(fixed)
    body = bytearray(fixed)
    struct.pack_into("<I", body, 4 + 16 + 1, offset)
    body += image
    return MessageWriter(mini_header=True).pack(DisplayMsg.DRAW_COPY, bytes(body))


def main() -> None:
    message = draw_copy_message()
    chunks = [message[i:i + CHUNK] for i in range(0, len(message), CHUNK)]
    display = DisplayProtocol(ChannelType.DISPLAY)

    def ours() -> None:
        events = []
        for chunk in chunks:
            events += display.receive_data(chunk)
        assert len(events) == 1 and isinstance(events[0], DrawCopy)

    def anchor() -> None:
        assert len(b"".join(chunks)) == len(message)

    ours()
    n = iterations(200, 10)
    anchor_ns, ours_ns = interleave(anchor, ours, n)
    emit("display_message_in.3MiB", ms(median(ours_ns)), ms(median(anchor_ns)), "ms",
         ours_is="DisplayProtocol.receive_data of a 3 MiB DRAW_COPY in 256 KiB chunks, "
                 "to the parsed event",
         anchor_is="b''.join of the same chunks (one copy of the message)")


if __name__ == "__main__":
    main()
