"""How far each display channel of a session has drawn, for WAIT_FOR_CHANNELS.

spice-server shares one pixmap cache between a client's display channels (dcc-send.cpp):
before a channel drops cache entries that another channel used, or resets the whole cache,
it sends WAIT_FOR_CHANNELS (or INVAL_ALL_PIXMAPS with the same wait list) naming that other
channel and the serial of its message that used them. Here each display channel draws on a
worker thread of its own, so the waiting channel's worker blocks until the other channel's
worker has drawn that message; otherwise the entry could be gone before the other channel
copies from it (a FROM_CACHE miss, which ends that channel).

Serials count the server's messages on a channel from 1 (red-channel-client.cpp numbers every
message it sends, mini header or not).

Example (two workers of one session)::

    progress = DrawProgress()
    second = progress.open(1)
    second.drawn(40)                                   # channel 1's worker, message 40 drawn
    progress.wait([ChannelWait(ChannelType.DISPLAY, 1, 40)], own_id=0, timeout=10.0)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.common import ChannelWait
from atp_notebook.spice.proto.constants import ChannelType

__all__ = ["ChannelProgress", "DrawProgress"]


class ChannelProgress:
    """One open display channel's drawn serial; the handle its worker reports through.
    A handle of a channel since reopened reports nothing (its serials are the old ones)."""

    __slots__ = ("_owner", "channel_id", "serial")

    def __init__(self, owner: DrawProgress, channel_id: int) -> None:
        self._owner = owner
        self.channel_id = channel_id
        self.serial = 0

    def __repr__(self) -> str:
        return f"<ChannelProgress display:{self.channel_id} drawn={self.serial}>"

    def drawn(self, serial: int) -> None:
        """Every message up to ``serial`` is drawn."""
        self._owner._drawn(self, serial)

    def end(self) -> None:
        """The channel ended: nobody waits for it any more."""
        self._owner._end(self)

    def wait(self, waits: Iterable[ChannelWait], timeout: float) -> None:
        """:meth:`DrawProgress.wait` from this channel's worker."""
        self._owner.wait(waits, self.channel_id, timeout)


class DrawProgress:
    """The drawn serials of a session's open display channels, and waits on them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open: dict[int, ChannelProgress] = {}

    def __repr__(self) -> str:
        return f"<DrawProgress {sorted((c, p.serial) for c, p in self._open.items())}>"

    def open(self, channel_id: int) -> ChannelProgress:
        """Display channel ``channel_id`` linked (again): its serials start over."""
        track = ChannelProgress(self, channel_id)
        with self._cond:
            self._open[channel_id] = track
            self._cond.notify_all()
        return track

    def drawn_serial(self, channel_id: int) -> int | None:
        """The last message display channel ``channel_id`` drew (None: not open)."""
        with self._cond:
            track = self._open.get(channel_id)
            return None if track is None else track.serial

    def wait(self, waits: Iterable[ChannelWait], own_id: int, timeout: float) -> None:
        """Return once every display channel in ``waits`` has drawn its message; a channel
        not open (never linked here, or ended) has nothing left to draw. RemoteProtocolError
        when one has not got there within ``timeout``."""
        deadline = time.monotonic() + timeout
        for wait in waits:
            if wait.channel_type != ChannelType.DISPLAY or wait.channel_id == own_id:
                continue  # our own earlier messages are drawn already: they came first
            with self._cond:
                while (track := self._open.get(wait.channel_id)) is not None and (
                        track.serial < wait.message_serial):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RemoteProtocolError(
                            f"WAIT_FOR_CHANNELS: display channel {wait.channel_id} drew up "
                            f"to message {track.serial}, not {wait.message_serial}, "
                            f"within {timeout:g} s")
                    self._cond.wait(left)

    def _drawn(self, track: ChannelProgress, serial: int) -> None:
        with self._cond:
            if self._open.get(track.channel_id) is track and serial > track.serial:
                track.serial = serial
                self._cond.notify_all()

    def _end(self, track: ChannelProgress) -> None:
        with self._cond:
            if self._open.get(track.channel_id) is track:
                del self._open[track.channel_id]
                self._cond.notify_all()
