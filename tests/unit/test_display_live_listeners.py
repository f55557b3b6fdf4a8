"""LiveDisplay publishes frames to the listeners its owner passes in, even while that set is
still empty (VmDisplays attaches a display before anyone listens; an empty Listeners has
length 0, so ``listeners or Listeners(...)`` used to replace it, and no listener added
through ``vm.display.add_listener`` ever heard a frame)."""

from __future__ import annotations

import asyncio
import gzip
import logging
from pathlib import Path

from atp_notebook.listeners import Listeners
from atp_notebook.spice.display.live import Frame, LiveDisplay
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.proto.common import Ping, SetAck, UnknownMessage
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.display import DisplayProtocol

SESSION = gzip.decompress((Path(__file__).resolve().parents[1] / "fixtures" / "spice" /
                           "display" / "atp-vm1-display-session.bin.gz").read_bytes())
WAIT_S = 10.0


def test_a_listener_added_later_to_the_owners_empty_set_hears_frames() -> None:
    loop = asyncio.new_event_loop()
    shared: Listeners[Frame] = Listeners(logging.getLogger("test"))
    protocol = DisplayProtocol(ChannelType.DISPLAY, manual_acks=True)
    failures: list[BaseException] = []
    live = LiveDisplay("vm", 0, DisplayRenderer(), loop, on_acknowledged=protocol.acknowledge,
                       on_failure=failures.append, listeners=shared)
    heard: list[Frame] = []
    shared.add(heard.append)  # after the display was made, as vm.display.add_listener does

    async def run() -> Frame:
        first = asyncio.ensure_future(live.wait_for_change(None, WAIT_S))
        await asyncio.sleep(0)
        for event in protocol.receive_data(SESSION):
            if not isinstance(event, SetAck | Ping | UnknownMessage):
                live.submit(event)
        live.end_batch(protocol.take_unacknowledged())
        return await first

    try:
        frame = loop.run_until_complete(run())
    finally:
        live.close()
        loop.close()
    assert live.listeners is shared
    assert heard and heard[0] == frame and frame.number == 1
    assert failures == []
