"""The display channels of one VM's Spice session: options, the shared GLZ window and one
:class:`LiveDisplay` per open display channel.

:class:`SpiceVmConnection` owns one :class:`VmDisplays`. When a display channel links,
:meth:`VmDisplays.attach` gives it a renderer and a worker (``display/live.py``); the
channel's events and read batches are routed here, and the acknowledgements the worker
hands back go out on that channel. A display that fails (hostile data) aborts its own
channel only.

The GLZ dictionary belongs to the session: every display channel that announced the same
dictionary id may copy from images sent on another (research/display.md §1.5), and a
display channel opened again in the same session may reference images of the one before.
A new session (Main linked again) starts an empty one. The pixmap cache is shared the same
way, and the server orders the channels' use of it by message serials (WAIT_FOR_CHANNELS):
:class:`DrawProgress` tells each worker how far the others have drawn.

Example (on the atp loop, inside SpiceVmConnection)::

    displays = VmDisplays("atp-vm1", DisplayOptions.lossless())
    live = displays.attach(channel, protocol)     # from the channel's protocol factory
"""

from __future__ import annotations

import asyncio
import logging

from atp_notebook.errors import InvalidArgument
from atp_notebook.listeners import Listeners
from atp_notebook.spice.aio.channel import SpiceChannel
from atp_notebook.spice.codecs import GlzWindow
from atp_notebook.spice.display.live import Frame, LiveDisplay
from atp_notebook.spice.display.pixmap_cache import PixmapCache
from atp_notebook.spice.display.progress import DrawProgress
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.proto.channel import ConnectionClosed
from atp_notebook.spice.proto.common import ChannelEvent, Ping, SetAck, UnknownMessage
from atp_notebook.spice.proto.display import DisplayOptions, DisplayProtocol

__all__ = ["GLZ_WAIT_S", "VmDisplays"]

# how long a GLZ image waits for an image another display channel has not delivered yet,
# and a WAIT_FOR_CHANNELS for another channel's worker to draw the message named
GLZ_WAIT_S = 10.0
_NOT_DRAWN = (SetAck, Ping, UnknownMessage)


class VmDisplays:
    """Options and live state of the display channels of one VM."""

    def __init__(self, vm_id: str, options: DisplayOptions,
                 log: logging.Logger | None = None) -> None:
        self.vm_id = vm_id
        self.options = options
        self.log = log or logging.getLogger(f"atp.spice.{vm_id}")
        self.lives: dict[int, LiveDisplay] = {}
        self._frame_listeners: dict[int, Listeners[Frame]] = {}
        self._glz: GlzWindow | None = None
        # one pixmap cache per session: every display channel announces cache id 1, and the
        # server may send FROM_CACHE on one channel for an image cached through another
        self._pixmaps: PixmapCache | None = None
        self.progress = DrawProgress()  # how far each channel has drawn (WAIT_FOR_CHANNELS)
        # per channel: the serial of the last message seen (-1: not countable, sub-lists)
        self._serials: dict[int, int] = {}
        self._aborts: set[asyncio.Future[None]] = set()  # channels being ended by a failure

    def __repr__(self) -> str:
        return f"<VmDisplays {self.vm_id} live={sorted(self.lives)}>"

    def frame_listeners(self, channel_id: int) -> Listeners[Frame]:
        """Who hears the frames of display channel ``channel_id``, whichever channel
        object draws it now."""
        found = self._frame_listeners.get(channel_id)
        if found is None:
            found = self._frame_listeners[channel_id] = Listeners(self.log)
        return found

    def new_session(self) -> None:
        """Main linked again: GLZ images of the old session mean nothing any more."""
        glz, self._glz = self._glz, None
        if glz is not None:
            glz.close()
        self._pixmaps = None

    def glz_window(self) -> GlzWindow | None:
        if not self.options.glz_window:
            return None
        if self._glz is None:
            self._glz = GlzWindow(self.options.glz_window, wait_timeout=GLZ_WAIT_S)
        return self._glz

    def set_options(self, options: DisplayOptions) -> None:
        """New options for the channels opened from now on (the owner closes the open
        ones first)."""
        if not isinstance(options, DisplayOptions):
            raise InvalidArgument(f"display options must be DisplayOptions, not "
                                  f"{type(options).__name__}")
        if (options.glz_window != self.options.glz_window
                or options.pixmap_cache_size != self.options.pixmap_cache_size):
            self.new_session()
        self.options = options

    # --- one channel ---------------------------------------------------------------------

    def attach(self, channel: SpiceChannel, protocol: DisplayProtocol) -> LiveDisplay:
        """A display channel just linked: its renderer and worker."""
        old = self.lives.pop(channel.channel_id, None)
        if old is not None:
            old.close()
        if self._pixmaps is None:
            self._pixmaps = PixmapCache(self.options.pixmap_cache_size)
        renderer = DisplayRenderer(glz=self.glz_window(), pixmap_cache=self._pixmaps,
                                   glz_timeout=GLZ_WAIT_S)
        loop = asyncio.get_running_loop()

        def acknowledged(messages: int) -> None:
            protocol.acknowledge(messages)
            channel.write_pending()

        def failed(error: BaseException) -> None:
            self.log.warning("%s: display channel %d: %s", self.vm_id, channel.channel_id,
                             getattr(error, "message", error))
            task = asyncio.ensure_future(channel.abort(error))
            self._aborts.add(task)
            task.add_done_callback(self._aborts.discard)

        live = LiveDisplay(self.vm_id, channel.channel_id, renderer, loop,
                           on_acknowledged=acknowledged, on_failure=failed,
                           listeners=self.frame_listeners(channel.channel_id),
                           progress=self.progress.open(channel.channel_id),
                           wait_timeout=GLZ_WAIT_S)
        self._serials[channel.channel_id] = 0 if protocol.mini_header else -1
        self.lives[channel.channel_id] = live
        return live

    def submit(self, channel: SpiceChannel, event: ChannelEvent) -> None:
        live = self.lives.get(channel.channel_id)
        if live is None or isinstance(event, ConnectionClosed):
            return
        serial = self._serials.get(channel.channel_id, -1)
        if serial >= 0:  # with the mini header each message is one event, numbered from 1
            serial = self._serials[channel.channel_id] = serial + 1
        if not isinstance(event, _NOT_DRAWN):
            live.submit(event, max(serial, 0))

    def end_batch(self, channel: SpiceChannel) -> None:
        live = self.lives.get(channel.channel_id)
        protocol = channel.protocol
        if live is not None and isinstance(protocol, DisplayProtocol):
            serial = protocol.last_message_serial
            counted = self._serials.get(channel.channel_id, -1)
            if counted >= 0 and counted != serial:
                self.log.warning("%s: display channel %d: counted message %d, the protocol "
                                 "says %d", self.vm_id, channel.channel_id, counted, serial)
                self._serials[channel.channel_id] = serial
            live.end_batch(protocol.take_unacknowledged(), serial)

    def ended(self, channel: SpiceChannel) -> None:
        """The channel ended (the server, the network, a failed draw or our close)."""
        live = self.lives.pop(channel.channel_id, None)
        if live is not None:
            live.close(channel.error)

    def close(self) -> None:
        for live in self.lives.values():
            live.close()
        self.lives.clear()
        self.new_session()
