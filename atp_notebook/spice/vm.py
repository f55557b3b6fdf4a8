"""SpiceVmConnection: the Spice channels of one VM, each opened and closed on its own.

Main comes first (its MAIN_INIT gives the session id every other channel links with); any
other channel opens on demand, several instances of a type are allowed (UsbRedir, several), and a
channel that dies reports ``ChannelClosed`` to its users while the others go on.

Example (on the atp loop)::

    vm = SpiceVmConnection("atp-vm1", SpiceTarget("127.0.0.1", port=5901))
    inputs = await vm.open_channel(ChannelType.INPUTS)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from atp_notebook.errors import ChannelClosed, ConfigError, OperationTimeout, SpiceCommandError
from atp_notebook.spice.aio.channel import ChannelStatus, SpiceChannel, SpiceTarget
from atp_notebook.spice.proto import ChannelProtocol, InputsProtocol, LinkSucceeded, MainProtocol
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType, InputsCap, MainCap, MouseMode
from atp_notebook.spice.proto.main import MainInit, MouseModeChanged

OPEN_TIMEOUT_S = 10.0

# What we tell the server we understand, per channel (protocol.h caps).
_CLIENT_CAPS: dict[ChannelType, tuple[int, ...]] = {
    ChannelType.MAIN: (MainCap.NAME_AND_UUID, MainCap.AGENT_CONNECTED_TOKENS),
    ChannelType.INPUTS: (InputsCap.KEY_SCANCODE,),
}

# The channel types this client speaks so far; the others are named in a clear error.
_PROTOCOLS: dict[ChannelType, type[ChannelProtocol]] = {
    ChannelType.MAIN: MainProtocol,
    ChannelType.INPUTS: InputsProtocol,
}


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


class SpiceVmConnection:
    """The Spice channels of one VM; ``open_channel``/``close_channel`` at any time."""

    def __init__(self, vm_id: str, target: SpiceTarget) -> None:
        self.vm_id = vm_id
        self.target = target
        self.session_id: int | None = None
        self.main_init: MainInit | None = None
        self._channels: dict[tuple[ChannelType, int], SpiceChannel] = {}
        self._init_seen = asyncio.Event()
        self._mouse_mode_seen = asyncio.Event()  # set at every MAIN_INIT and MOUSE_MODE
        self._lock = asyncio.Lock()
        self.log = logging.getLogger(f"atp.spice.{vm_id}")

    def __repr__(self) -> str:
        open_ = [f"{t.name.lower()}:{i}" for (t, i), c in self._channels.items()
                 if c.status is ChannelStatus.OPEN]
        return f"<SpiceVmConnection {self.vm_id} open={open_}>"

    def channel(self, channel_type: ChannelType, channel_id: int = 0) -> SpiceChannel:
        found = self._channels.get((channel_type, channel_id))
        if found is None or found.status is not ChannelStatus.OPEN:
            raise ChannelClosed(f"{self.vm_id}: {channel_type.name.lower()}:{channel_id} is "
                                "not open", hint="open it with open_channel()")
        return found

    async def open_channel(self, channel_type: ChannelType, channel_id: int = 0,
                           timeout: float = OPEN_TIMEOUT_S) -> SpiceChannel:
        """Open (or return the open) channel; Main is opened first when needed."""
        protocol_class = _PROTOCOLS.get(channel_type)
        if protocol_class is None:
            built = ", ".join(t.name.lower() for t in _PROTOCOLS)
            raise ConfigError(f"the {channel_type.name.lower()} channel is not supported by "
                              f"this client yet (supported: {built})")
        async with self._lock:
            existing = self._channels.get((channel_type, channel_id))
            if existing is not None and existing.status is ChannelStatus.OPEN:
                return existing
            if channel_type is not ChannelType.MAIN:
                await self._ensure_main(timeout)
            channel = self._new_channel(channel_type, channel_id, protocol_class)
            self._channels[(channel_type, channel_id)] = channel
            await channel.open(timeout)
            if channel_type is ChannelType.MAIN:
                # MainProtocol answers MAIN_INIT with ATTACH_CHANNELS by itself
                await asyncio.wait_for(self._init_seen.wait(), timeout)
            return channel

    async def _ensure_main(self, timeout: float) -> None:
        main = self._channels.get((ChannelType.MAIN, 0))
        if main is not None and main.status is ChannelStatus.OPEN:
            return
        channel = self._new_channel(ChannelType.MAIN, 0, MainProtocol)
        self._channels[(ChannelType.MAIN, 0)] = channel
        self._init_seen.clear()
        await channel.open(timeout)
        await asyncio.wait_for(self._init_seen.wait(), timeout)

    def _new_channel(self, channel_type: ChannelType, channel_id: int,
                     protocol_class: type[ChannelProtocol]) -> SpiceChannel:
        def factory(link: LinkSucceeded) -> ChannelProtocol:
            return protocol_class.from_link(link)

        return SpiceChannel(
            self.target, channel_type, channel_id,
            channel_caps=_CLIENT_CAPS.get(channel_type, ()),
            connection_id=self.session_id or 0 if channel_type is not ChannelType.MAIN else 0,
            protocol_factory=factory, on_event=self._on_event, vm_id=self.vm_id,
        )

    def _on_event(self, channel: SpiceChannel, event: ChannelEvent) -> None:
        if isinstance(event, MainInit):
            self.main_init = event
            self.session_id = event.session_id
            self._init_seen.set()
        if isinstance(event, MainInit | MouseModeChanged):
            self._mouse_mode_seen.set()

    async def main(self, timeout: float = OPEN_TIMEOUT_S) -> MainProtocol:
        """The Main channel's protocol (opened if needed)."""
        protocol = (await self.open_channel(ChannelType.MAIN, timeout=timeout)).protocol
        assert isinstance(protocol, MainProtocol)
        return protocol

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
            await channel.close()

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        # Main last: closing it ends the session the others belong to
        channels.sort(key=lambda c: c.channel_type is ChannelType.MAIN)
        for channel in channels:
            await channel.close()

    def channels(self) -> list[ChannelInfo]:
        out = []
        for (channel_type, channel_id), channel in sorted(self._channels.items()):
            metrics = channel.protocol.metrics if channel.protocol is not None else None
            tcp = channel.tcp_info()  # None unless open
            out.append(ChannelInfo(
                channel_type.name.lower(), channel_id, str(channel.status), channel.secure,
                metrics.bytes_in if metrics else 0, metrics.bytes_out if metrics else 0,
                metrics.messages_in if metrics else 0, metrics.pings if metrics else 0,
                round(channel.link_seconds * 1000, 2) if channel.link_seconds else None,
                tcp.rtt_ms if tcp is not None else None,
                tcp.min_rtt_ms if tcp is not None else None,
            ))
        return out
