"""SpiceVmConnection: the Spice channels of one VM, each opened and closed on its own.

Main comes first (its MAIN_INIT gives the session id every other channel links with); the
channels the configuration lists open right after it, any other on first use; several
instances of a type are allowed (UsbRedir, several), and a channel that dies reports
``ChannelClosed`` to its users while the others go on.

The endpoint is resolved once (YAML or the domain XML, by the resolver the transport gives)
and reused by every channel until a connect fails. Listeners (:mod:`.vm_events`) hear every
channel opening and ending, parsed messages, and -- once per loss -- that the server closed
the connection, which is what another Spice client taking the VM over looks like.

Example (on the atp loop)::

    vm = SpiceVmConnection("atp-vm1", SpiceEndpoint("127.0.0.1", port=5901))
    inputs = await vm.open_channel(ChannelType.INPUTS)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from atp_notebook.bridge import within
from atp_notebook.errors import (
    AtpError,
    ChannelClosed,
    InvalidArgument,
    OperationTimeout,
    SpiceCommandError,
)
from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.spice.aio.channel import MESSAGE_TIMEOUT_S, ChannelStatus, SpiceChannel
from atp_notebook.spice.display.live import LiveDisplay
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.port import VmPorts
from atp_notebook.spice.proto import ChannelProtocol, InputsProtocol, LinkSucceeded, MainProtocol
from atp_notebook.spice.proto.common import ChannelEvent, Ping, SetAck, UnknownMessage
from atp_notebook.spice.proto.constants import ChannelType, InputsCap, MainCap, MouseMode
from atp_notebook.spice.proto.cursor import CursorProtocol
from atp_notebook.spice.proto.display import (
    DisplayOptions,
    DisplayProtocol,
    ModeChanged,
    SurfaceCreated,
)
from atp_notebook.spice.proto.main import ChannelsList, MainInit, MouseModeChanged
from atp_notebook.spice.proto.playback import PLAYBACK_CLIENT_CAPS, PlaybackProtocol
from atp_notebook.spice.proto.port import PortProtocol
from atp_notebook.spice.proto.record import RECORD_CLIENT_CAPS, RecordProtocol
from atp_notebook.spice.proto.webdav_mux import WebdavChannelProtocol
from atp_notebook.spice.vm_displays import VmDisplays
from atp_notebook.spice.vm_events import (
    ChannelEnded,
    ChannelMessage,
    ChannelOpened,
    ConnectionLost,
    SpiceVmEvent,
)

OPEN_TIMEOUT_S = 10.0
Resolver = Callable[[], Awaitable[SpiceEndpoint]]

# What we tell the server we understand, per channel (protocol.h caps).
_CLIENT_CAPS: dict[ChannelType, tuple[int, ...]] = {
    ChannelType.MAIN: (MainCap.NAME_AND_UUID, MainCap.AGENT_CONNECTED_TOKENS),
    ChannelType.INPUTS: (InputsCap.KEY_SCANCODE,),
    ChannelType.PLAYBACK: tuple(PLAYBACK_CLIENT_CAPS),
    ChannelType.RECORD: tuple(RECORD_CLIENT_CAPS),
}

# The channel types this client speaks so far; the others are named in a clear error.
_PROTOCOLS: dict[ChannelType, type[ChannelProtocol]] = {
    ChannelType.MAIN: MainProtocol,
    ChannelType.INPUTS: InputsProtocol,
    ChannelType.DISPLAY: DisplayProtocol,
    ChannelType.PORT: PortProtocol,
    ChannelType.WEBDAV: WebdavChannelProtocol,
    ChannelType.CURSOR: CursorProtocol,
    ChannelType.PLAYBACK: PlaybackProtocol,
    ChannelType.RECORD: RecordProtocol,
}
# events every channel produces; listeners hear the channel-specific ones
_ROUTINE = (SetAck, Ping, UnknownMessage)


@dataclass(frozen=True)
class ChannelInfo:
    """What ``%spice --channels`` shows of one channel."""

    type: str
    id: int
    status: str
    secure: bool
    bytes_in: int
    bytes_out: int
    messages_in: int
    pings: int
    link_ms: float | None
    rtt_ms: float | None  # the kernel's smoothed RTT of the channel's TCP connection, to 1 µs
    min_rtt_ms: float | None = None  # its lowest RTT: without the server's delayed ACKs
    name: str | None = None  # a port channel's name (PORT_INIT)
    error: str | None = None  # why a failed channel failed


# channel_states(): a channel's state in words
_STATE_WORDS = {
    ChannelStatus.IDLE: "not opened",
    ChannelStatus.LINKING: "connecting",
    ChannelStatus.OPEN: "open",
    ChannelStatus.CLOSED: "closed",
    ChannelStatus.FAILED: "failed",
}


class SpiceVmConnection:
    """The Spice channels of one VM; ``open_channel``/``close_channel`` at any time.

    ``endpoint`` is fixed; with ``resolve`` instead, it is found on first use and found
    again after a connect failed. ``autostart`` lists the channel types that open as soon
    as Main has linked (the YAML ``channels`` list). ``display`` is what every display
    channel asks of the server (extra caps, the GLZ dictionary, a compression preference);
    the default asks for nothing the toolkit cannot decode yet.
    """

    def __init__(self, vm_id: str, endpoint: SpiceEndpoint | None = None, *,
                 resolve: Resolver | None = None,
                 autostart: Sequence[ChannelType] = (),
                 display: DisplayOptions | None = None,
                 message_timeout: float = MESSAGE_TIMEOUT_S) -> None:
        if endpoint is None and resolve is None:
            raise InvalidArgument(f"Spice VM {vm_id!r}: give an endpoint or a resolver")
        self.vm_id = vm_id
        self._endpoint = endpoint
        self._resolve = resolve
        self.autostart = tuple(t for t in autostart if t is not ChannelType.MAIN)
        self.message_timeout = message_timeout
        self.session_id: int | None = None
        self.main_init: MainInit | None = None
        self._channels: dict[tuple[ChannelType, int], SpiceChannel] = {}
        self._init_seen = asyncio.Event()
        self._mouse_mode_seen = asyncio.Event()  # set at every MAIN_INIT and MOUSE_MODE
        self._screen_seen = asyncio.Event()  # set when the primary surface is known
        self._list_seen = asyncio.Event()  # set when Main's CHANNELS_LIST arrived
        self._closed_by_us: set[tuple[ChannelType, int]] = set()  # for channel_states()
        self._lock = asyncio.Lock()
        self._autostart: asyncio.Task[None] | None = None
        self._closing = False  # close() under way: the autostart opens nothing more
        self._loss_reported = True  # nothing to report before the first link
        self.log = logging.getLogger(f"atp.spice.{vm_id}")
        self.listeners: Listeners[SpiceVmEvent] = Listeners(self.log)
        self.displays = VmDisplays(vm_id, display or DisplayOptions.lossless(), self.log)
        self.ports = VmPorts(self)  # port channels by name: ``ports.get(name)``

    def __repr__(self) -> str:
        open_ = [f"{t.name.lower()}:{i}" for (t, i), c in self._channels.items()
                 if c.status is ChannelStatus.OPEN]
        return f"<SpiceVmConnection {self.vm_id} open={open_}>"

    @property
    def display_options(self) -> DisplayOptions:
        """What every display channel asks of the server (lossless by default)."""
        return self.displays.options

    @property
    def endpoint(self) -> SpiceEndpoint | None:
        """The endpoint in use (None until resolved, and again after a failed connect)."""
        return self._endpoint

    async def resolve_endpoint(self) -> SpiceEndpoint:
        """The endpoint, resolved now if it is not known (a libvirt lookup, at most once
        until a connect fails)."""
        if self._endpoint is None:
            assert self._resolve is not None
            self._endpoint = await self._resolve()
            self.log.debug("endpoint: %s", self._endpoint)
        return self._endpoint

    def add_listener(self, listener: Callable[[SpiceVmEvent], None]) -> ListenerHandle:
        """Hear every event of this VM's channels (on the atp loop) until the handle closes."""
        return self.listeners.add(listener)

    def channel(self, channel_type: ChannelType, channel_id: int = 0) -> SpiceChannel:
        found = self._channels.get((channel_type, channel_id))
        if found is None or found.status is not ChannelStatus.OPEN:
            raise ChannelClosed(f"{self.vm_id}: {channel_type.name.lower()}:{channel_id} is "
                                "not open", hint="open it with open_channel()")
        return found

    # --- opening ------------------------------------------------------------------------

    async def connect(self, timeout: float = OPEN_TIMEOUT_S) -> SpiceVmConnection:
        """Open Main and the channels the configuration lists; a listed channel that fails
        is logged and left closed (the others are unaffected)."""
        await self.open_channel(ChannelType.MAIN, timeout=timeout)
        task = self._autostart
        if task is not None:
            await asyncio.shield(task)
        return self

    async def open_channel(self, channel_type: ChannelType, channel_id: int = 0,
                           timeout: float = OPEN_TIMEOUT_S) -> SpiceChannel:
        """Open (or return the open) channel; Main is opened first when needed."""
        protocol_class = _PROTOCOLS.get(channel_type)
        if protocol_class is None:
            built = ", ".join(t.name.lower() for t in _PROTOCOLS)
            raise InvalidArgument(f"the {channel_type.name.lower()} channel is not supported "
                                  f"by this client yet (supported: {built})")
        async with self._lock:
            existing = self._channels.get((channel_type, channel_id))
            if existing is not None and existing.status is ChannelStatus.OPEN:
                return existing
            await self._ensure_main(timeout)
            if channel_type is ChannelType.MAIN:
                return self._channels[(ChannelType.MAIN, 0)]
            return await self._open(channel_type, channel_id, protocol_class, timeout)

    async def _open(self, channel_type: ChannelType, channel_id: int,
                    protocol_class: type[ChannelProtocol], timeout: float) -> SpiceChannel:
        endpoint = await self.resolve_endpoint()
        channel = self._new_channel(endpoint, channel_type, channel_id, protocol_class)
        self._channels[(channel_type, channel_id)] = channel
        self._closed_by_us.discard((channel_type, channel_id))
        try:
            await channel.open(timeout)
        except BaseException as exc:
            if isinstance(exc, Exception) and channel.error is None:
                channel.error = exc  # channel_states() says why it failed
            if self._resolve is not None:
                self._endpoint = None  # resolved again next time: the VM may have moved
            raise
        self._emit(ChannelOpened(self.vm_id, channel_type, channel_id, channel.secure))
        return channel

    async def _ensure_main(self, timeout: float) -> None:
        main = self._channels.get((ChannelType.MAIN, 0))
        if main is not None and main.status is ChannelStatus.OPEN:
            return
        self._init_seen.clear()
        self._list_seen.clear()
        await self._open(ChannelType.MAIN, 0, MainProtocol, timeout)
        try:
            # MainProtocol answers MAIN_INIT with ATTACH_CHANNELS by itself
            await asyncio.wait_for(self._init_seen.wait(), timeout)
        except TimeoutError:
            raise OperationTimeout(f"{self.vm_id}: no MAIN_INIT within {timeout:g} s") from None
        self._loss_reported = False
        self.displays.new_session()
        if self.autostart:
            self._autostart = asyncio.ensure_future(self._open_listed(timeout))

    async def _open_listed(self, timeout: float) -> None:
        for channel_type in self.autostart:
            if self._closing:
                return
            if channel_type not in _PROTOCOLS:
                self.log.debug("%s: listed, not supported yet", channel_type.name.lower())
                continue
            try:
                await self.open_channel(channel_type, timeout=timeout)
            except AtpError as exc:
                self.log.warning("%s: the %s channel listed in the configuration did not "
                                 "open: %s", self.vm_id, channel_type.name.lower(), exc.message)

    def _new_channel(self, endpoint: SpiceEndpoint, channel_type: ChannelType, channel_id: int,
                     protocol_class: type[ChannelProtocol]) -> SpiceChannel:
        def factory(link: LinkSucceeded) -> ChannelProtocol:
            if protocol_class is not DisplayProtocol:
                return protocol_class.from_link(link)
            # acknowledged once drawn (VmDisplays); DISPLAY_INIT queued now, so it goes out
            # with the link: the server makes its side of the channel only once it has it,
            # and the channel's open waits for that
            display = DisplayProtocol.from_link(link, manual_acks=True)
            display.start(self.display_options)
            self.displays.attach(channel, display)
            return display

        caps = _CLIENT_CAPS.get(channel_type, ())
        if channel_type is ChannelType.DISPLAY:
            caps += tuple(c for c in self.display_options.caps if c not in caps)
        channel = SpiceChannel(
            endpoint, channel_type, channel_id,
            channel_caps=caps,
            connection_id=self.session_id or 0 if channel_type is not ChannelType.MAIN else 0,
            protocol_factory=factory, on_event=self._on_event, on_ended=self._on_ended,
            after_batch=(self.displays.end_batch if channel_type is ChannelType.DISPLAY
                         else None),
            message_timeout=self.message_timeout, vm_id=self.vm_id,
        )
        return channel

    # --- what the channels tell us --------------------------------------------------------

    def _emit(self, event: SpiceVmEvent) -> None:
        self.ports.route(event)  # port channels' data goes to their SpicePorts, always
        if len(self.listeners):
            self.listeners.emit(event)

    def _on_event(self, channel: SpiceChannel, event: ChannelEvent) -> None:
        if isinstance(event, MainInit):
            self.main_init = event
            self.session_id = event.session_id
            self._init_seen.set()
        if isinstance(event, ChannelsList):
            self._list_seen.set()
        if isinstance(event, MainInit | MouseModeChanged):
            self._mouse_mode_seen.set()
        if channel.channel_type is ChannelType.DISPLAY:
            self.displays.submit(channel, event)
            if isinstance(event, SurfaceCreated | ModeChanged):
                self._screen_seen.set()
        if not isinstance(event, _ROUTINE):
            self._emit(ChannelMessage(self.vm_id, channel.channel_type, channel.channel_id,
                                      event))

    def _on_ended(self, channel: SpiceChannel) -> None:
        """The server or the network ended an open channel (never our own close)."""
        if channel.channel_type is ChannelType.DISPLAY:
            self.displays.ended(channel)
        why = channel.error.message if isinstance(channel.error, AtpError) else str(
            channel.error)
        self._emit(ChannelEnded(self.vm_id, channel.channel_type, channel.channel_id, why))
        if channel.channel_type is not ChannelType.MAIN:
            self.log.info("%s: the %s channel was closed by the server; it reopens on next use",
                          self.vm_id, channel.channel_type.name.lower())
            return
        if self._loss_reported:
            return
        # once per loss, for all channels: what happened and what happens next
        self._loss_reported = True
        message = (f"{self.vm_id}: the Spice server closed the connection (another Spice "
                   "client took this VM over, or the VM stopped); the next call reconnects")
        self.log.warning("%s", message)
        self._emit(ConnectionLost(self.vm_id, message))

    # --- Main and the screen ----------------------------------------------------------------

    async def main(self, timeout: float = OPEN_TIMEOUT_S) -> MainProtocol:
        """The Main channel's protocol (opened if needed)."""
        protocol = (await self.open_channel(ChannelType.MAIN, timeout=timeout)).protocol
        assert isinstance(protocol, MainProtocol)
        return protocol

    async def screen_size(self, timeout: float = OPEN_TIMEOUT_S) -> tuple[int, int]:
        """The primary surface's width and height, from the display channel (opened if
        needed; the server creates the surface right after DISPLAY_INIT)."""
        channel = await self.open_channel(ChannelType.DISPLAY, timeout=timeout)
        display = channel.protocol
        assert isinstance(display, DisplayProtocol)
        try:
            async with asyncio.timeout(timeout):
                while display.primary is None:
                    self._screen_seen.clear()
                    await self._screen_seen.wait()
        except TimeoutError:
            raise OperationTimeout(f"{self.vm_id}: the Spice server sent no screen surface "
                                   f"within {timeout:g} s") from None
        primary = display.primary
        return primary.width, primary.height

    async def display(self, channel_id: int = 0,
                      timeout: float = OPEN_TIMEOUT_S) -> LiveDisplay:
        """Display channel ``channel_id`` drawn live (opened if needed), once the server's
        first whole picture of the screen has been drawn (up to its MARK)."""
        async with asyncio.timeout(timeout):
            try:
                await self.open_channel(ChannelType.DISPLAY, channel_id, timeout)
                live = self.displays.lives.get(channel_id)
                if live is None or live.ended:
                    raise ChannelClosed(f"{self.vm_id}: display channel {channel_id} ended "
                                        "as it opened", hint="try again")
                # the first frame may be the new, empty surface: the screen's first picture
                # is whole only at the server's MARK
                await live.wait_marked(timeout)
                return live
            except TimeoutError:
                raise OperationTimeout(f"{self.vm_id}: display channel {channel_id} drew no "
                                       f"screen within {timeout:g} s") from None

    async def set_display_options(self, options: DisplayOptions) -> None:
        """Ask for ``options`` from now on: open display channels are closed (they open
        again, with these, on next use)."""
        if options == self.displays.options:
            return
        self.displays.set_options(options)  # InvalidArgument before anything is closed
        for (channel_type, channel_id) in list(self._channels):
            if channel_type is ChannelType.DISPLAY:
                await self.close_channel(channel_type, channel_id)

    async def set_mouse_mode(self, mode: MouseMode, timeout: float = OPEN_TIMEOUT_S) -> None:
        """Switch the server to ``mode`` and keep asking for it (it is the VM's, not ours:
        every client of the VM shares it). Raises SpiceCommandError when not offered."""
        main = await self.main(timeout)
        if mode not in main.mouse_modes:
            offered = ", ".join(str(m.name).lower() for m in MouseMode
                                if m in main.mouse_modes)
            raise SpiceCommandError(
                f"{self.vm_id}: the Spice server offers {offered or 'no'} mouse mode, not "
                f"{str(mode.name).lower()}",
                hint="client mode needs a tablet device (or a vdagent) and one QXL display")
        self._mouse_mode_seen.clear()
        main.prefer_mouse_mode(mode)
        await self.channel(ChannelType.MAIN).send()
        deadline = asyncio.get_running_loop().time() + timeout
        while main.mouse_mode != mode:
            left = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self._mouse_mode_seen.wait(), max(left, 0))
            except TimeoutError:
                raise OperationTimeout(f"{self.vm_id}: the Spice server did not switch to "
                                       f"{mode.name} mouse mode within {timeout:g} s") from None
            self._mouse_mode_seen.clear()

    async def close_channel(self, channel_type: ChannelType, channel_id: int = 0) -> None:
        channel = self._channels.pop((channel_type, channel_id), None)
        if channel is not None:
            self._closed_by_us.add((channel_type, channel_id))
            await channel.close()
            if channel_type is ChannelType.DISPLAY:
                self.displays.ended(channel)

    async def close(self) -> None:
        """Close every channel, Main last. Opens under way finish first: ending a session
        while one of its channels links crashes spice-server 0.15.1 (see
        ``SpiceChannel._opening_work``), so they are waited for, never cut."""
        self._closing = True
        try:
            task, self._autostart = self._autostart, None
            if task is not None:  # it stops after the channel it is opening
                await asyncio.wait([task], timeout=2 * OPEN_TIMEOUT_S)
            locked = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lock.acquire(), 2 * OPEN_TIMEOUT_S)
                locked = True
            try:
                await self._close_channels()
            finally:
                if locked:
                    self._lock.release()
        finally:
            self._closing = False

    async def _close_channels(self) -> None:
        self._loss_reported = True  # our own close is no loss to report
        channels, self._channels = list(self._channels.values()), {}
        self._closed_by_us.update((c.channel_type, c.channel_id) for c in channels)
        # Main last: closing it ends the session the others belong to
        channels.sort(key=lambda c: c.channel_type is ChannelType.MAIN)
        for channel in channels:
            await channel.close()
        self.displays.close()

    def channels(self) -> list[ChannelInfo]:
        """The channels this client holds (open, linking, or ended by the server), by
        type and id; see :meth:`channel_states` for every channel the server offers."""
        return [_info(channel, channel.status.describe())
                for _, channel in sorted(self._channels.items())]

    async def channel_states(self, timeout: float = OPEN_TIMEOUT_S, *,
                             name_ports: bool = True) -> list[ChannelInfo]:
        """Every channel the server offers (Main's CHANNELS_LIST: Main is opened and the
        list waited for) and every one this client has, by type and id, with its state:
        ``not opened``, ``connecting``, ``open``, ``closed`` (by us) or ``failed``
        (``error`` says why). With ``name_ports`` the port channels not named yet are linked
        for a moment to learn their names (``ports.names()``).

        Example::

            [(c.type, c.id, c.status) for c in await vm.channel_states()]
            # [('main', 0, 'open'), ('display', 0, 'not opened'), ('inputs', 0, 'open'), ...]
        """
        async with within(timeout, f"{self.vm_id}: the Spice channel list", "not complete"):
            main = await self.main(timeout)
            if main.channels is None:
                await self._list_seen.wait()  # the answer to ATTACH_CHANNELS after MAIN_INIT
            port_names: dict[int, str] = {}
            if name_ports:
                closed = set(self._closed_by_us)
                try:
                    port_names = {i: n for n, i in (await self.ports.names(timeout)).items()}
                except AtpError as exc:  # a broken port costs its name, not the table
                    self.log.warning("%s: the port names are not all known: %s", self.vm_id,
                                     exc.message)
                self._closed_by_us = closed  # linked to be named: not "closed" by the user
        rows: dict[tuple[int, int], ChannelInfo] = {}
        for listed in main.channels or ():
            key = (int(listed.channel_type), listed.channel_id)
            state = "closed" if key in self._closed_by_us else "not opened"
            rows[key] = ChannelInfo(_type_name(listed.channel_type), listed.channel_id,
                                    state, False, 0, 0, 0, 0, None, None,
                                    name=port_names.get(listed.channel_id)
                                    if listed.channel_type == ChannelType.PORT else None)
        for (channel_type, channel_id), channel in self._channels.items():
            info = _info(channel, _STATE_WORDS[channel.status])
            if info.name is None and channel_type is ChannelType.PORT:
                info = replace(info, name=port_names.get(channel_id))
            rows[(int(channel_type), channel_id)] = info
        return [rows[key] for key in sorted(rows)]


def _type_name(channel_type: ChannelType | int) -> str:
    if isinstance(channel_type, ChannelType):
        return channel_type.name.lower()
    try:
        return ChannelType(channel_type).name.lower()
    except ValueError:  # a type this client does not know: by its number
        return f"type {channel_type}"


def _info(channel: SpiceChannel, status: str) -> ChannelInfo:
    """One channel's row: its traffic, link time, RTT and (when failed) its error."""
    metrics = channel.protocol.metrics if channel.protocol is not None else None
    tcp = channel.tcp_info()  # None unless open
    error = None
    if channel.status is ChannelStatus.FAILED:
        cause = channel.error
        error = (cause.message if isinstance(cause, AtpError) else str(cause)) if cause \
            else "closed by the server"
        # the row names the channel: its repr leading the message says it twice
        error = error.removeprefix(f"{channel!r}: ").removeprefix(
            f"<SpiceChannel {channel.channel_type.name}:{channel.channel_id} open>: ")
    return ChannelInfo(
        channel.channel_type.name.lower(), channel.channel_id, status, channel.secure,
        metrics.bytes_in if metrics else 0, metrics.bytes_out if metrics else 0,
        metrics.messages_in if metrics else 0, metrics.pings if metrics else 0,
        round(channel.link_seconds * 1000, 2) if channel.link_seconds else None,
        tcp.rtt_ms if tcp is not None else None,
        tcp.min_rtt_ms if tcp is not None else None,
        channel.protocol.name if isinstance(channel.protocol, PortProtocol) else None,
        error,
    )
