"""Capture the first full-screen image a lab VM's Spice server sends, with QEMU's own
screendump of the same screen: a golden sample for the image codecs (issue 12).

The server sends the whole primary surface as one DRAW_COPY right after DISPLAY_INIT (LZ_RGB
on QEMU 7.2 / spice-server 0.15, whatever the compression setting); the screendump taken
before and after must agree, so the sample holds one still screen.

Run on a machine whose lab is up::

    .venv/bin/python scripts/capture-display-sample.py [VM] [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from atp_notebook.loop import get_loop
from atp_notebook.session import connect
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.display import DrawCopy
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.spice.vm_events import ChannelMessage, SpiceVmEvent

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "spice" / "display"
TRIES = 5


def first_draw_copy(spice: SpiceVmConnection, timeout: float = 30.0) -> DrawCopy:
    """The first DRAW_COPY of a display channel opened afresh: the whole screen."""
    first: list[DrawCopy] = []
    got = threading.Event()

    def keep(event: SpiceVmEvent) -> None:
        if isinstance(event, ChannelMessage) and isinstance(event.event, DrawCopy) and not first:
            first.append(event.event)
            got.set()

    with spice.add_listener(keep):
        get_loop().call(spice.close_channel(ChannelType.DISPLAY), timeout)
        get_loop().call(spice.open_channel(ChannelType.DISPLAY), timeout)
        if not got.wait(timeout):
            raise SystemExit(f"no DRAW_COPY within {timeout:g} s")
    return first[0]


def capture(vm_name: str, out: Path) -> Path:
    session = connect()
    try:
        vm = session.vm(vm_name)
        for _ in range(TRIES):
            before = vm.screendump()
            draw = first_draw_copy(vm.spice_input.spice)
            after = vm.screendump()
            image = draw.image
            if image is None or before.tobytes() != after.tobytes():
                continue  # the screen changed meanwhile: try again
            if (image.width, image.height) != before.size:
                raise SystemExit(f"first image is {image.width}x{image.height}, "
                                 f"the screen {before.size}")
            stem = f"{vm_name}-first-image-type{image.type}-{image.width}x{image.height}"
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{stem}.bin").write_bytes(image.payload)
            before.convert("RGB").save(out / f"{stem}.screendump.png")
            (out / f"{stem}.json").write_text(json.dumps({
                "vm": vm_name, "image_type": image.type, "image_flags": image.flags,
                "width": image.width, "height": image.height,
                "box": [draw.box.top, draw.box.left, draw.box.bottom, draw.box.right],
                "payload": "the Image union after the descriptor (u32 data_size, then data)",
                "reference": "QEMU screendump of the same still screen, RGB",
            }, indent=2) + "\n")
            return out / f"{stem}.bin"
        raise SystemExit(f"the screen of {vm_name} never held still for {TRIES} tries")
    finally:
        session.close()


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "atp-vm1"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    print(capture(name, target))
