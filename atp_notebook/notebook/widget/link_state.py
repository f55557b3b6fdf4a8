"""The display widget's connection state, as its status line shows it (sans-I/O).

A widget is ``connecting``, then ``live``; or it ``failed: <why>`` to open the display. While
live it hears the VM's Spice events (``vm_events.py``, on the atp loop): the server closing
the Main channel (``ConnectionLost``) means another Spice client took the VM over or the VM
stopped; the server closing our display channel alone (``ChannelEnded``) comes first or
after it in a takeover, or alone when the display failed. Either ends the stream: nothing
more is encoded, no input is sent (any call would reconnect and take the VM back from the
other client), until a view asks to reconnect (a click on the canvas) or the display
channel opens again for another user in this process (another widget of the VM, a
screenshot). Which of the two happened is told by the VM's libvirt state
(:meth:`LinkState.classify`): still running means taken over; otherwise the VM is gone.
``closed`` is the end.

Example::

    link = LinkState(channel_id=0)
    link.connecting()
    link.opened()                               # status "live"
    link.hear(ConnectionLost("atp-vm1", "..."))  # True: the stream ends
    link.classify("running")                     # "taken over — click to reconnect"
"""

from __future__ import annotations

from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm_events import (
    ChannelEnded,
    ChannelOpened,
    ConnectionLost,
    SpiceVmEvent,
)

__all__ = ["CLICK_TO_RECONNECT", "CLOSED", "CONNECTING", "LIVE", "LinkState"]

CONNECTING = "connecting"
LIVE = "live"
CLOSED = "closed"
CLICK_TO_RECONNECT = " — click to reconnect"
# libvirt states in which QEMU (and its Spice server) still runs: a loss then is a takeover
_RUNNING_STATES = frozenset({"running", "paused", "blocked", "pmsuspended"})


class LinkState:
    """Where one widget's display connection stands; every method runs under the widget's
    lock (the Spice events come from the atp loop, the rest from the widget's threads)."""

    def __init__(self, channel_id: int = 0) -> None:
        self.channel_id = channel_id
        self.status = CONNECTING
        self.lost: str | None = None  # why the stream ended, until a reconnect
        self.main_lost = False  # the whole connection went, not only the display channel
        self.reconnect_asked = False

    @property
    def streaming(self) -> bool:
        """Frames may be encoded and input sent."""
        return self.status == LIVE and self.lost is None

    @property
    def reconnectable(self) -> bool:
        return self.status.endswith(CLICK_TO_RECONNECT)

    def connecting(self) -> None:
        """An open (or a reopen) starts: losses heard before it are forgotten."""
        self.status = CONNECTING
        self.lost = None
        self.main_lost = False
        self.reconnect_asked = False

    def opened(self) -> None:
        if self.status == CONNECTING:
            self.status = LIVE

    def open_failed(self, why: str) -> None:
        if self.status != CLOSED:
            self.status = f"failed: {why}{CLICK_TO_RECONNECT}"

    def hear(self, event: SpiceVmEvent) -> bool:
        """A Spice event of the VM; True when it ends the stream (or says more about why
        it ended)."""
        if self.status == CLOSED:
            return False
        if isinstance(event, ConnectionLost):
            self.main_lost = True
            self.lost = "the Spice server closed the connection"
            return True
        ours = (getattr(event, "channel_type", None) is ChannelType.DISPLAY
                and getattr(event, "channel_id", None) == self.channel_id)
        if isinstance(event, ChannelOpened) and ours and self.lost is not None:
            # opened again by someone else in this process (another widget of the VM, a
            # vm.screenshot()): the display is back, so is this widget
            self.reconnect_asked = True
            return True
        if isinstance(event, ChannelEnded) and ours and self.lost is None:
            self.lost = f"the display channel ended: {event.error}" if event.error else (
                "the display channel ended")
            return True
        return False

    def classify(self, vm_state: str | None) -> str:
        """The status once the stream ended, from the VM's libvirt state (None: not known,
        as for a Spice-only VM)."""
        if self.status == CLOSED:
            return self.status
        if not self.main_lost:
            status = self.lost or "the display channel ended"
        elif vm_state is None:
            status = "connection lost"
        elif vm_state in _RUNNING_STATES:
            status = "taken over"
        else:
            status = f"VM gone ({vm_state})"
        self.status = status + CLICK_TO_RECONNECT
        return self.status

    def ask_reconnect(self) -> bool:
        """A view asked to reconnect: True when that means something now."""
        if not self.reconnectable:
            return False
        self.reconnect_asked = True
        return True

    def close(self) -> None:
        self.status = CLOSED
