"""A VM's Spice WEBDAV channel as the byte stream a :class:`~atp_notebook.spice.webdav.
FolderShare` reads and writes.

spice-server gives the port ``org.spice-space.webdav.0`` a channel type of its own (WEBDAV),
so it is not one of the VM's named PORT channels (:mod:`atp_notebook.spice.port`); its
messages are a port's all the same (:class:`~atp_notebook.spice.proto.webdav_mux.
WebdavChannelProtocol`). This adapter hears the channel through the connection's listeners,
buffers what arrives (bounded: above ``buffer_limit`` it stops reading the socket, TCP does
the rest, as for ports) and hands the guest's open/close events to its own listeners. When
the channel ends, reads get the bytes buffered and then ChannelClosed; :meth:`open_async`
links it again.

Example (on the atp loop)::

    channel = WebdavChannel(connection)
    await channel.open_async(timeout=10)
    await channel.send_async(frames, timeout=10)
    data = await channel.recv_async(65535, timeout=30)
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from atp_notebook.bridge import within
from atp_notebook.errors import ChannelClosed, InvalidArgument
from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.spice.aio.channel import ChannelStatus, SpiceChannel
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.port import PortData, PortEvent
from atp_notebook.spice.proto.webdav_mux import WebdavChannelProtocol
from atp_notebook.spice.vm_events import ChannelEnded, ChannelMessage, ConnectionLost, SpiceVmEvent
from atp_notebook.virt.receive_buffer import BUFFER_LIMIT, ReceiveBuffer

if TYPE_CHECKING:
    from atp_notebook.spice.vm import SpiceVmConnection

OPEN_TIMEOUT_S = 15.0
IO_TIMEOUT_S = 30.0


_CHANNELS: weakref.WeakKeyDictionary[SpiceVmConnection, WebdavChannel] = \
    weakref.WeakKeyDictionary()


def webdav_channel(connection: SpiceVmConnection) -> WebdavChannel:
    """The connection's WebdavChannel (one per connection: two would both hear it)."""
    found = _CHANNELS.get(connection)
    if found is None:
        found = _CHANNELS[connection] = WebdavChannel(connection)
    return found


class WebdavChannel:
    """The WEBDAV channel (id 0) of one VM connection; see the module docstring."""

    def __init__(self, connection: SpiceVmConnection, *,
                 buffer_limit: int = BUFFER_LIMIT) -> None:
        self.connection = connection
        self.buffer_limit = buffer_limit
        self.log = logging.getLogger(f"atp.spice.{connection.vm_id}.webdav")
        self.listeners: Listeners[PortEvent] = Listeners(self.log)
        self._channel: SpiceChannel | None = None
        self._buffer = ReceiveBuffer(buffer_limit)
        self._changed = asyncio.Event()
        self._hearing: ListenerHandle | None = None

    def __repr__(self) -> str:
        state = "open" if self._open_channel() is not None else "not open"
        return f"<WebdavChannel {self.connection.vm_id} {state}>"

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def guest_opened(self) -> bool:
        """Whether the guest's spice-webdavd has the port open."""
        channel = self._open_channel()
        protocol = channel.protocol if channel is not None else None
        return isinstance(protocol, WebdavChannelProtocol) and protocol.guest_opened

    def add_listener(self, listener: Callable[[PortEvent], None]) -> ListenerHandle:
        """Hear the guest opening and closing the port (on the atp loop)."""
        return self.listeners.add(listener)

    async def open_async(self, timeout: float = OPEN_TIMEOUT_S) -> WebdavChannel:
        """Link the channel (again after a loss; unread bytes stay first). A VM without
        the webdav port raises InvalidArgument."""
        if self._open_channel() is not None:
            return self
        stale = self._channel
        if stale is not None:  # failing, its end event not routed yet: it is lost now
            self._lost(str(stale.error) if stale.error is not None else "it failed")
        if self._hearing is None:
            self._hearing = self.connection.add_listener(self._on_event)
        if self._buffer.closed:  # a lost channel's unread bytes come first
            unread = self._buffer.read(len(self._buffer)) if self._buffer else None
            self._buffer = ReceiveBuffer(self.buffer_limit)
            if unread:
                self._buffer.feed(unread)
        async with within(timeout, f"{self!r}: open"):
            await self._check_listed(timeout)
            self._channel = await self.connection.open_channel(ChannelType.WEBDAV, 0,
                                                               timeout)
        if self._buffer.wants_data:
            self._channel.resume_reading()
        self._changed.set()
        self.log.info("opened (guest side %s)", "open" if self.guest_opened else "closed")
        return self

    async def recv_async(self, max_bytes: int = 65536, timeout: float = IO_TIMEOUT_S) -> bytes:
        """What has arrived, up to ``max_bytes``; waits for at least one byte. After the
        channel ended: the bytes buffered, then ChannelClosed."""
        async with within(timeout, f"{self!r}: recv", "nothing"):
            while True:
                out = self._buffer.read(max_bytes)
                if out is not None:
                    channel = self._channel
                    if channel is not None and self._buffer.wants_data:
                        channel.resume_reading()
                    return out
                if self._buffer.closed is False and self._channel is None:
                    raise ChannelClosed(f"{self!r}: not open", hint="open_async() it")
                self._changed.clear()
                await self._changed.wait()

    async def send_async(self, data: bytes | bytearray | memoryview,
                         timeout: float = IO_TIMEOUT_S) -> None:
        """Send ``data`` to the guest's daemon (waits while the server does not take it)."""
        channel = self._open_channel()
        if channel is None:
            raise ChannelClosed(f"{self!r}: not open", hint="open_async() it")
        protocol = channel.protocol
        assert isinstance(protocol, WebdavChannelProtocol)
        async with within(timeout, f"{self!r}: send of {len(data)} bytes"):
            protocol.send_data(data)
            await channel.send()

    async def close_async(self) -> None:
        """Close the channel and stop hearing it (idempotent); unread bytes are dropped."""
        if self._hearing is not None:
            self._hearing.close()
            self._hearing = None
        channel, self._channel = self._channel, None
        self._buffer = ReceiveBuffer(self.buffer_limit)
        self._changed.set()
        if channel is not None:
            await self.connection.close_channel(ChannelType.WEBDAV, 0)

    def _open_channel(self) -> SpiceChannel | None:
        channel = self._channel
        return channel if channel is not None and channel.status is ChannelStatus.OPEN \
            else None

    async def _check_listed(self, timeout: float) -> None:
        main = await self.connection.main(timeout)
        listed = main.channels
        if listed is not None and not any(c.channel_type == ChannelType.WEBDAV
                                          for c in listed):
            raise InvalidArgument(
                f"{self.connection.vm_id} has no Spice webdav channel",
                hint="the VM needs <channel type='spiceport'><source channel="
                     "'org.spice-space.webdav.0'/><target type='virtio' "
                     "name='org.spice-space.webdav.0'/></channel>")

    def _on_event(self, event: SpiceVmEvent) -> None:
        if isinstance(event, ConnectionLost):
            self._lost(f"the VM's connection ended ({event.message})")
            return
        if not isinstance(event, ChannelMessage | ChannelEnded) or \
                event.channel_type is not ChannelType.WEBDAV:
            return
        if isinstance(event, ChannelEnded):
            # an open channel is a newer link than the one that ended: a channel is marked
            # failed before its end is routed here, and open_async may link in between
            if self._open_channel() is None:
                self._lost(event.error)
            return
        message = event.event
        if isinstance(message, PortData):
            if message.data and not self._buffer.closed:
                self._buffer.feed(message.data)
                if not self._buffer.wants_data and self._channel is not None:
                    self._channel.pause_reading()
                self._changed.set()
        elif isinstance(message, PortEvent):
            self.listeners.emit(message)

    def _lost(self, why: str) -> None:
        if self._channel is None:
            return
        self._channel = None
        self._buffer.close(ChannelClosed(f"{self!r}: the webdav channel ended ({why})",
                                         hint="open_async() links it again"))
        self._changed.set()
        self.log.info("lost: %s", why)
