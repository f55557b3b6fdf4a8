"""Spice port channels as byte streams: ``vm.port("com.atp.echo")``, no libvirt needed.

A QEMU ``spiceport`` chardev (in the lab on a guest virtio-serial port of the same name) is
one Spice port channel. The server lists port channels in Main's CHANNELS_LIST by id only;
the name arrives in PORT_INIT once a channel is linked, so :class:`VmPorts` links the ports
whose names it does not know yet, keeps their names, and closes the ones not asked for.
Linking a port tells the guest its host side is connected for that moment (QEMU raises the
chardev's OPENED event) -- harmless to a reader there, which just sees no data.

:class:`SpicePort` has the API of :class:`~atp_notebook.virt.virtio_serial.VirtioSerial`
(send / recv / recv_exactly / readline / close, each with its ``_async`` form made from one
definition) plus the guest side's state: ``guest_opened``, :meth:`SpicePort.wait_guest`
and listeners hearing :class:`~atp_notebook.spice.proto.port.PortEvent`.

Buffering is bounded: above ``buffer_limit`` unread bytes the channel stops reading its
socket (a vmc channel has no acks: TCP is its flow control), the server then stops reading
the chardev once 1 MiB is queued for us, and the guest's writes block. The overshoot is at
most one socket read (256 KiB). Each port fails alone: when its channel ends, waiting readers
get the bytes buffered and then ChannelClosed; the next call opens the channel again
(unread bytes are kept), while Main, Inputs and Display go on.

Example::

    port = vm.port("com.atp.echo")           # opened; unknown names list the VM's ports
    port.wait_guest(opened=True, timeout=10)  # a guest program has its side open
    port.send(b"ping\\n")
    port.readline(timeout=5)                  # b"ping\\n" from an echo in the guest
    port.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from atp_notebook.bridge import atp_async, atp_blocking, within
from atp_notebook.byte_stream import BUFFER_LIMIT, IO_TIMEOUT_S, ByteStream, ByteStreamReads
from atp_notebook.errors import (
    AtpError,
    ChannelClosed,
    InvalidArgument,
    RemoteProtocolError,
    TransportError,
)
from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.spice.aio.channel import ChannelStatus, SpiceChannel
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.main import ChannelsList
from atp_notebook.spice.proto.port import PortData, PortEvent, PortEventKind, PortProtocol
from atp_notebook.spice.vm_events import ChannelEnded, ChannelMessage, SpiceVmEvent

if TYPE_CHECKING:
    from atp_notebook.spice.vm import SpiceVmConnection

OPEN_TIMEOUT_S = 15.0
# one send() is queued and drained in slices of this size: a large send holds no second
# copy of the caller's data, and the reader runs between slices
SEND_SLICE = 256 * 1024


class PortState(enum.StrEnum):
    IDLE = "idle"  # not opened yet
    OPEN = "open"
    # the channel ended: readers get the unread bytes, then the loss (once, ChannelClosed);
    # the call after that (or a send) opens it again
    LOST = "lost"
    CLOSED = "closed"  # closed by us; may be opened again


class SpicePort(ByteStreamReads):
    """One named Spice port channel of a VM as a byte stream (see the module docstring).

    Get it from ``vm.port(name)`` (opened) or ``connection.ports.get(name)`` (not opened).

    Example::

        with vm.port("com.atp.echo") as port:
            port.send(b"hello\\n"); port.recv_exactly(6, timeout=5)   # b"hello\\n"
    """

    def __init__(self, connection: SpiceVmConnection, name: str, *,
                 buffer_limit: int = BUFFER_LIMIT) -> None:
        if not name:
            raise InvalidArgument("a Spice port needs its name, e.g. 'com.atp.echo'")
        if buffer_limit <= 0:
            raise InvalidArgument(f"buffer_limit must be positive, not {buffer_limit}")
        self.connection = connection
        self.name = name
        self.log = logging.getLogger(f"atp.spice.{connection.vm_id}.port.{name}")
        self.listeners: Listeners[PortEvent] = Listeners(self.log)
        self._state = PortState.IDLE
        self._channel: SpiceChannel | None = None
        self._channel_id: int | None = None
        self._incoming = ByteStream(buffer_limit)  # recv, recv_exactly, readline read it
        self._changed = asyncio.Event()  # a guest event, or the channel opened or ended
        self._open_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self.paused = 0  # times reading stopped because the buffer was full
        self._loss_unreported = False  # lost, and no reader has been told yet

    def __repr__(self) -> str:
        return f"<SpicePort {self.connection.vm_id}:{self.name} {self._state}>"

    @property
    def state(self) -> PortState:
        return self._state

    @property
    def channel_id(self) -> int | None:
        """The port channel's id (known once opened)."""
        return self._channel_id

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return len(self._incoming)

    @property
    def guest_opened(self) -> bool:
        """Whether the guest has its side of the port open (PORT_INIT, then PORT_EVENTs);
        False while the channel is not open."""
        protocol = self._protocol()
        return protocol is not None and protocol.guest_opened

    def add_listener(self, listener: Callable[[PortEvent], None]) -> ListenerHandle:
        """Hear the guest opening and closing its side (on the atp loop)."""
        return self.listeners.add(listener)

    # --- the operations: each is one coroutine on the atp loop, with a blocking form and
    # an async form made from it ----------------------------------------------------------

    async def _open(self, timeout: float = OPEN_TIMEOUT_S) -> SpicePort:
        """Open the port's channel (again after a close or a loss); returns self.
        Example: ``port.open()``."""
        async with within(timeout, f"{self!r}: open"), self._open_lock:
            await self._open_locked(timeout)
        return self

    async def _send(self, data: bytes | bytearray | memoryview,
                    timeout: float = IO_TIMEOUT_S) -> None:
        """Send all of ``data`` to the guest (waits while the server does not take it).
        Example: ``port.send(b"ping\\n")``."""
        view = memoryview(data).cast("B")
        async with within(timeout, f"{self!r}: send of {len(view)} bytes"), self._write_lock:
            for start in range(0, max(len(view), 1), SEND_SLICE):
                channel = await self._usable(timeout)
                protocol = channel.protocol
                assert isinstance(protocol, PortProtocol)
                protocol.send_data(view[start:start + SEND_SLICE])
                await channel.send()

    async def _wait_guest(self, opened: bool = True, timeout: float = IO_TIMEOUT_S) -> None:
        """Until the guest has its side open (``opened``) or closed.
        Example: ``port.wait_guest(opened=False, timeout=5)``."""
        state = "open" if opened else "closed"
        async with within(timeout, f"{self!r}: the guest's side", f"not {state}"):
            while True:
                await self._usable(timeout)
                if self.guest_opened is opened:
                    return
                self._changed.clear()
                await self._changed.wait()

    async def _send_event(self, event: PortEventKind, timeout: float = IO_TIMEOUT_S) -> None:
        """Send a PORT_EVENT to the port's chardev (QEMU acts on BREAK only).
        Example: ``port.send_event(PortEventKind.BREAK)``."""
        async with within(timeout, f"{self!r}: {event.name} event"), self._write_lock:
            channel = await self._usable(timeout)
            protocol = channel.protocol
            assert isinstance(protocol, PortProtocol)
            protocol.send_port_event(event)
            await channel.send()

    async def _close(self) -> None:
        """Close the port's channel (idempotent); waiters get ChannelClosed, unread bytes
        are dropped. Example: ``port.close()``."""
        async with self._open_lock:
            channel, self._channel = self._channel, None
            if self._state is not PortState.IDLE:
                self._state = PortState.CLOSED
            self._incoming.discard(ChannelClosed(f"{self!r} was closed",
                                                 hint="open() it again"))
            self._changed.set()
            if self._channel_id is not None:
                self.connection.ports.release(self._channel_id, self)
                if channel is not None:
                    await self.connection.close_channel(ChannelType.PORT, self._channel_id)

    open = atp_blocking(_open)
    open_async = atp_async(_open)
    send = atp_blocking(_send)
    send_async = atp_async(_send)
    wait_guest = atp_blocking(_wait_guest)
    wait_guest_async = atp_async(_wait_guest)
    send_event = atp_blocking(_send_event)
    send_event_async = atp_async(_send_event)
    close = atp_blocking(_close)
    close_async = atp_async(_close)

    def __enter__(self) -> SpicePort:
        if self._state is not PortState.OPEN:
            self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> SpicePort:
        if self._state is not PortState.OPEN:
            await self.open_async()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close_async()

    # --- the async core (atp loop only) ---------------------------------------------------

    def _protocol(self) -> PortProtocol | None:
        channel = self._channel
        protocol = channel.protocol if channel is not None else None
        return protocol if isinstance(protocol, PortProtocol) else None

    async def _open_locked(self, timeout: float) -> None:
        if self._state is PortState.OPEN:
            return
        ports = self.connection.ports
        channel_id = await ports.channel_id(self.name, timeout)
        # a lost channel's unread bytes come first
        self._incoming.restart(keep_unread=self._state is PortState.LOST)
        self._loss_unreported = False  # a read now reads the new channel
        self._channel_id = channel_id
        # from here this port hears its channel (and what it said while it was being named)
        ports.claim(channel_id, self)
        try:
            channel = await self.connection.open_channel(ChannelType.PORT, channel_id, timeout)
            protocol = channel.protocol
            if not isinstance(protocol, PortProtocol) or protocol.name != self.name:
                # the VM was restarted with other ports: learn the names again next time
                ports.forget()
                await self.connection.close_channel(ChannelType.PORT, channel_id)
                found = protocol.name if isinstance(protocol, PortProtocol) else None
                raise TransportError(f"{self!r}: port channel {channel_id} is now {found!r}",
                                     hint="try again: the VM's ports changed")
        except BaseException:
            ports.release(channel_id, self)
            raise
        self._channel = channel
        self._state = PortState.OPEN
        self._resume_if_room()  # paused while it was being named, maybe
        self._changed.set()
        self.log.info("opened (channel %d, guest side %s)", channel_id,
                      "open" if protocol.guest_opened else "closed")

    async def _usable(self, timeout: float) -> SpiceChannel:
        """The open channel; a port lost or never opened is opened now, a closed one not."""
        if self._state is PortState.CLOSED:
            raise ChannelClosed(f"{self!r} was closed", hint="open() it again")
        channel = self._channel
        if channel is not None and channel.status is not ChannelStatus.OPEN:
            self._state = PortState.LOST  # the VM's connection was closed under us
        if self._state is not PortState.OPEN:
            async with self._open_lock:
                await self._open_locked(timeout)
        assert self._channel is not None
        return self._channel

    # the hooks of ByteStreamReads: recv, recv_exactly and readline

    def _stream_label(self) -> str:
        return repr(self)

    async def _reader_ready(self, timeout: float) -> None:
        # after a loss the unread bytes are read first, then ChannelClosed once, however
        # soon after the loss the read came: only the read after that opens the port again
        self._note_if_ended()
        if self._state is PortState.LOST and self._incoming:
            return
        if self._state is PortState.LOST and self._loss_unreported:
            self._end_told()
            self._incoming.raise_if_ended()
        await self._usable(timeout)

    def _end_told(self) -> None:
        self._loss_unreported = False

    def _consumed(self) -> None:
        self._resume_if_room()

    def _pause(self) -> None:
        """Backpressure: the channel stops reading its socket (also while it is still
        opening, before this port holds it)."""
        channel = self._channel
        if channel is None and self._channel_id is not None:
            with contextlib.suppress(ChannelClosed):
                channel = self.connection.channel(ChannelType.PORT, self._channel_id)
        if channel is not None:
            channel.pause_reading()
            self.paused += 1

    def _resume_if_room(self) -> None:
        channel = self._channel
        if channel is not None and self._incoming.wants_data:
            channel.resume_reading()

    def on_channel_event(self, event: ChannelEvent | ChannelEnded) -> None:
        """This port's channel said something, or ended (VmPorts routes it, on the atp
        loop)."""
        if isinstance(event, PortData):
            if event.data and not self._incoming.ended:
                self._incoming.feed(event.data)
                if not self._incoming.wants_data:
                    self._pause()
        elif isinstance(event, PortEvent):
            self._changed.set()
            self.listeners.emit(event)
        elif isinstance(event, ChannelEnded) and self._state is PortState.OPEN:
            channel = self._channel
            if channel is not None and channel.status is ChannelStatus.OPEN:
                return  # a former channel's end, reported after this one opened
            self._lost(event.error)

    def _lost(self, why: str) -> None:
        """The channel ended: readers get the unread bytes, then this (once)."""
        self._state = PortState.LOST
        self._loss_unreported = True
        self._channel = None
        self._incoming.end(ChannelClosed(
            f"{self!r}: the port channel ended ({why})",
            hint="call again: the port reopens on its next use"))
        self._changed.set()
        self.log.info("lost: %s", why)

    def _note_if_ended(self) -> None:
        """A channel marks itself failed before its ChannelEnded is routed here (it awaits
        its socket's close in between): a call in that gap must see the loss, not link
        again past it."""
        channel = self._channel
        if self._state is PortState.OPEN and channel is not None and \
                channel.status is not ChannelStatus.OPEN:
            error = channel.error
            self._lost(error.message if isinstance(error, AtpError) else
                       str(error) if error is not None else "the VM's connection was closed")


class VmPorts:
    """The port channels of one VM by name: the names learnt, one SpicePort per name, and
    the routing of each port channel's events to the SpicePort that holds it.

    A name is found by linking the listed port channels not named yet, in id order, until
    it turns up: the channel found stays open for the SpicePort asking, the others close.

    Example (on the atp loop)::

        port = connection.ports.get("com.atp.echo")    # not opened yet
        await connection.ports.names()                  # {'com.atp.echo': 0, ...}
    """

    def __init__(self, connection: SpiceVmConnection) -> None:
        self.connection = connection
        self._known: dict[str, int] = {}  # name -> channel id
        self._unnamed: list[int] | None = None  # listed port ids not linked yet
        self._ports: dict[str, SpicePort] = {}
        self._owners: dict[int, SpicePort] = {}  # channel id -> the port holding it
        # events of a channel linked to learn its name, until a port claims it
        self._early: dict[int, list[ChannelEvent]] = {}
        self._lock = asyncio.Lock()

    def get(self, name: str) -> SpicePort:
        """The SpicePort for ``name`` (the same object every time; not opened here)."""
        port = self._ports.get(name)
        if port is None:
            port = self._ports[name] = SpicePort(self.connection, name)
        return port

    def forget(self) -> None:
        """Learn the names again on next use (the VM's ports changed)."""
        self._known.clear()
        self._unnamed = None

    def claim(self, channel_id: int, port: SpicePort) -> None:
        """Route channel ``channel_id``'s events to ``port``, starting with those it sent
        while it was being named."""
        self._owners[channel_id] = port
        for event in self._early.pop(channel_id, ()):
            port.on_channel_event(event)

    def release(self, channel_id: int, port: SpicePort) -> None:
        if self._owners.get(channel_id) is port:
            del self._owners[channel_id]

    def route(self, event: SpiceVmEvent) -> None:
        """An event of the connection (on the atp loop; the connection calls this for each
        one, before its listeners): a port channel's message goes to the port holding it."""
        if not isinstance(event, ChannelMessage | ChannelEnded) or \
                event.channel_type is not ChannelType.PORT:
            return
        owner = self._owners.get(event.channel_id)
        message = event.event if isinstance(event, ChannelMessage) else event
        if owner is not None:
            owner.on_channel_event(message)
        elif event.channel_id in self._early and isinstance(message, PortData | PortEvent):
            self._early[event.channel_id].append(message)
            if isinstance(message, PortData):
                # nobody reads it yet: the port that claims it resumes reading
                with contextlib.suppress(ChannelClosed):
                    self.connection.channel(ChannelType.PORT, event.channel_id).pause_reading()

    async def channel_id(self, name: str, timeout: float = OPEN_TIMEOUT_S) -> int:
        """The channel id of port ``name``; if it had to be linked to be found, it is left
        open. An unknown name raises InvalidArgument listing the VM's ports."""
        async with within(timeout, f"{self.connection.vm_id}: the Spice port {name!r}",
                          "not found"), self._lock:
            if name in self._known:
                return self._known[name]
            if self._unnamed is None:
                self._unnamed = await self._listed_ports(timeout)
            while self._unnamed:
                channel_id = self._unnamed[0]
                found = await self._name_of(channel_id, timeout, keep=name)
                self._unnamed.pop(0)
                self._known[found] = channel_id
                if found == name:
                    return channel_id
        known = ", ".join(sorted(self._known)) or "none"
        raise InvalidArgument(
            f"{self.connection.vm_id} has no Spice port {name!r} (its ports: {known})",
            hint="a port is a spiceport chardev: <channel type='spiceport'><source "
                 f"channel='{name}'/><target type='virtio' name='{name}'/></channel>")

    async def names(self, timeout: float = OPEN_TIMEOUT_S) -> dict[str, int]:
        """Every port of the VM: name -> channel id (linking the ports not named yet)."""
        with contextlib.suppress(InvalidArgument):
            await self.channel_id("\0", timeout)  # no name holds a NUL: learns them all
        return dict(self._known)

    async def _listed_ports(self, timeout: float) -> list[int]:
        """The port channel ids in Main's CHANNELS_LIST (waited for: it answers the
        ATTACH_CHANNELS sent after MAIN_INIT)."""
        listed = asyncio.Event()

        def on_event(event: SpiceVmEvent) -> None:
            if isinstance(event, ChannelMessage) and isinstance(event.event, ChannelsList):
                listed.set()

        with self.connection.add_listener(on_event):
            main = await self.connection.main(timeout)
            if main.channels is None:
                await listed.wait()  # bounded by the caller's within()
        channels = main.channels or ()
        return sorted(c.channel_id for c in channels if c.channel_type == ChannelType.PORT)

    async def _name_of(self, channel_id: int, timeout: float, keep: str) -> str:
        """The name in the channel's PORT_INIT: from the open channel, else linked for it
        (and closed again unless it is ``keep``)."""
        try:
            channel: SpiceChannel | None = self.connection.channel(ChannelType.PORT,
                                                                   channel_id)
        except ChannelClosed:
            channel = None
        if channel is not None and isinstance(channel.protocol, PortProtocol) and \
                channel.protocol.name is not None:
            return channel.protocol.name
        self._early[channel_id] = []
        try:
            channel = await self.connection.open_channel(ChannelType.PORT, channel_id,
                                                         timeout)
            protocol = channel.protocol
            assert isinstance(protocol, PortProtocol)
            name = protocol.name
        except BaseException:
            self._early.pop(channel_id, None)
            raise
        if name is None or name != keep:
            self._early.pop(channel_id, None)
            await self.connection.close_channel(ChannelType.PORT, channel_id)
        if name is None:  # it opened on another first message than PORT_INIT
            raise RemoteProtocolError(f"{self.connection.vm_id}: port channel {channel_id} "
                                      "sent no PORT_INIT first")
        return name
