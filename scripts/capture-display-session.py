"""Capture a display channel's server bytes from a lab VM: the golden sample that
``tests/unit/test_spice_display_session.py`` replays through DisplayProtocol.

Opens the display channel of VM (atp-vm1: QEMU 7.2's VGA text console) with the
MONITORS_CONFIG cap and records every byte the server sends after the link for a few
seconds: INVAL_ALL_PALETTES, SURFACE_CREATE, the whole screen as one DRAW_COPY,
MONITORS_CONFIG, MARK, then the blinking cursor's DRAW_COPYs. Run under the lab lock::

    flock /tmp/atp-lab.lock .venv/bin/python scripts/capture-display-session.py [VM] [SECONDS]
"""

from __future__ import annotations

import gzip
import sys
import time
from pathlib import Path

from atp_notebook.loop import get_loop, run
from atp_notebook.session import connect
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType, DisplayCap
from atp_notebook.spice.proto.display import DisplayOptions, DisplayProtocol
from atp_notebook.spice.vm import SpiceVmConnection

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "spice" / "display"


def capture(vm_name: str, seconds: float) -> Path:
    received = bytearray()
    original = DisplayProtocol.receive_data

    def recording(self: ChannelProtocol, data: bytes) -> list[ChannelEvent]:
        received.extend(data)
        return original(self, data)

    session = connect()
    try:
        endpoint = run(session.manager.get_spice_connection(vm_name), timeout=30).endpoint
        assert endpoint is not None
        spice = SpiceVmConnection(vm_name, endpoint, display=DisplayOptions(
            caps=(DisplayCap.MONITORS_CONFIG,)))
        DisplayProtocol.receive_data = recording  # type: ignore[method-assign]
        try:
            get_loop().call(spice.open_channel(ChannelType.DISPLAY), 30)
            time.sleep(seconds)
            get_loop().call(spice.close(), 30)
        finally:
            DisplayProtocol.receive_data = original  # type: ignore[method-assign]
    finally:
        session.close()
    out = OUT / f"{vm_name}-display-session.bin.gz"
    out.write_bytes(gzip.compress(bytes(received), mtime=0))
    return out


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "atp-vm1"
    print(capture(name, float(sys.argv[2]) if len(sys.argv) > 2 else 2.0))
