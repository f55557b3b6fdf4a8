"""What a VM's Spice connection tells its listeners (a display, a widget, a metrics sink).

Every listener of a :class:`~atp_notebook.spice.vm.SpiceVmConnection` gets every event, on
the atp loop, in order; add one with ``connection.add_listener(fn)`` and remove it by
closing the handle that returns.

Example::

    def show(event: SpiceVmEvent) -> None:
        if isinstance(event, ConnectionLost):
            print(event.message)

    handle = connection.add_listener(show)
"""

from __future__ import annotations

from dataclasses import dataclass

from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType


@dataclass(frozen=True)
class ChannelOpened:
    vm_id: str
    channel_type: ChannelType
    channel_id: int
    secure: bool


@dataclass(frozen=True)
class ChannelEnded:
    """The server (or the network) ended one channel; the others may go on."""

    vm_id: str
    channel_type: ChannelType
    channel_id: int
    error: str


@dataclass(frozen=True)
class ChannelMessage:
    """A message a channel's protocol parsed (mouse mode, surfaces, ...)."""

    vm_id: str
    channel_type: ChannelType
    channel_id: int
    event: ChannelEvent


@dataclass(frozen=True)
class ConnectionLost:
    """The server closed the VM's main channel, and with it every channel: another Spice
    client took the VM over, or the VM stopped. The next call reconnects."""

    vm_id: str
    message: str


@dataclass(frozen=True)
class InputFailed:
    """A non-blocking input (``press_nowait``, ``move_nowait``, ...) could not be sent."""

    vm_id: str
    what: str
    error: BaseException


SpiceVmEvent = ChannelOpened | ChannelEnded | ChannelMessage | ConnectionLost | InputFailed
