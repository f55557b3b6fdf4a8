"""WebdavChannel (spice/webdav_channel.py) over a connection faked in memory: the order of a
channel's end and the next link. A channel marks itself failed, awaits its socket's close,
and only then is its ChannelEnded routed to the listeners; a link made in that gap must not
be taken for lost when the old channel's end arrives after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from atp_notebook.errors import ChannelClosed, OperationTimeout
from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.spice.aio.channel import ChannelStatus
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.port import PortData
from atp_notebook.spice.proto.webdav_mux import WebdavChannelProtocol
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.spice.vm_events import ChannelEnded, ChannelMessage, SpiceVmEvent
from atp_notebook.spice.webdav_channel import WebdavChannel

WAIT = 5.0


class FakeChannel:
    """What WebdavChannel uses of a SpiceChannel: status, protocol, reading on and off."""

    def __init__(self) -> None:
        self.status = ChannelStatus.OPEN
        self.error: BaseException | None = None
        self.protocol = WebdavChannelProtocol(ChannelType.WEBDAV, 0)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class FakeConnection:
    """What WebdavChannel uses of a SpiceVmConnection; each link is a new FakeChannel."""

    vm_id = "fake"

    def __init__(self) -> None:
        self.listeners: Listeners[SpiceVmEvent] = Listeners(logging.getLogger("fake"))
        self.links: list[FakeChannel] = []

    def add_listener(self, listener: Callable[[SpiceVmEvent], None]) -> ListenerHandle:
        return self.listeners.add(listener)

    async def main(self, timeout: float) -> Any:
        return SimpleNamespace(channels=None)  # not listed yet: not checked

    async def open_channel(self, channel_type: ChannelType, channel_id: int,
                           timeout: float) -> FakeChannel:
        self.links.append(FakeChannel())
        return self.links[-1]

    def data(self, payload: bytes) -> None:
        self.listeners.emit(ChannelMessage(self.vm_id, ChannelType.WEBDAV, 0,
                                           PortData(payload)))

    def ended(self, why: str) -> None:
        self.listeners.emit(ChannelEnded(self.vm_id, ChannelType.WEBDAV, 0, why))


def test_the_old_channel_s_late_end_does_not_drop_a_link_made_in_the_gap() -> None:
    async def main() -> None:
        connection = FakeConnection()
        webdav = WebdavChannel(cast(SpiceVmConnection, connection))
        await webdav.open_async(WAIT)
        first = connection.links[0]
        connection.data(b"old")
        first.status = ChannelStatus.FAILED  # failing: its end event is not out yet
        first.error = ChannelClosed("the server closed the channel")
        await webdav.open_async(WAIT)  # links again in the gap
        assert len(connection.links) == 2
        connection.ended("the server closed the channel")  # the first channel's end, late
        connection.data(b"new")
        # the bytes of the first link stay first; the second link lives on
        got = b""
        while len(got) < 6:
            got += await webdav.recv_async(100, WAIT)
        assert got == b"oldnew"
        assert repr(webdav) == "<WebdavChannel fake open>"
        with pytest.raises(OperationTimeout):
            await webdav.recv_async(100, 0.05)  # open and empty: waits, no ChannelClosed

    asyncio.run(main())


def test_the_end_of_the_open_channel_is_a_loss() -> None:
    async def main() -> None:
        connection = FakeConnection()
        webdav = WebdavChannel(cast(SpiceVmConnection, connection))
        await webdav.open_async(WAIT)
        connection.data(b"last")
        connection.links[0].status = ChannelStatus.FAILED
        connection.ended("the server closed the channel")
        assert await webdav.recv_async(100, WAIT) == b"last"
        with pytest.raises(ChannelClosed, match="the server closed the channel"):
            await webdav.recv_async(100, WAIT)
        await webdav.open_async(WAIT)  # and the next use links it again
        assert len(connection.links) == 2
        with pytest.raises(OperationTimeout):
            await webdav.recv_async(100, 0.05)  # open and empty: waits

    asyncio.run(main())
