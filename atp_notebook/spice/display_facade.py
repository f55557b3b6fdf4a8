"""``VmDisplay``: a VM's screen through its Spice display channel, drawn by the toolkit.

Each operation is one coroutine run on the atp loop, its blocking form under the plain name
and its async form (any event loop) under ``_async`` (:mod:`atp_notebook.bridge`). The
display channel opens on first use with the VM's display options (lossless by default:
:meth:`DisplayOptions.lossless`) and is drawn from then on by a worker thread of its own,
so reading the screen costs a copy, not a round trip. ``vm.screendump()`` stays QEMU's own
picture; ``vm.screenshot()`` is ours.

Regions are ``(x, y, width, height)`` in screen pixels. Pixels are numpy ``(h, w, 4)``
uint8 arrays in B, G, R, X byte order; screenshots are PIL RGB images.

Example::

    vm = connect().vm("atp-vm1")
    vm.screenshot().save("screen.png")
    vm.type("ls\\n")
    vm.display.wait_for_change(timeout=10)
    vm.display.wait_still(1.0, region=(0, 0, 720, 40))
    vm.display.open(options=DisplayOptions.lossy())   # JPEG and video streams allowed
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from PIL import Image

from atp_notebook.bridge import atp_async, atp_blocking, on_atp_loop
from atp_notebook.listeners import ListenerHandle
from atp_notebook.loop import get_loop
from atp_notebook.spice.cursor_facade import VmCursor, draw_cursor
from atp_notebook.spice.display.live import (
    DisplayStats,
    Frame,
    LiveDisplay,
    Region,
    region_box,
)
from atp_notebook.spice.display.surfaces import Pixels
from atp_notebook.spice.proto.display import DisplayOptions
from atp_notebook.spice.proto.display_monitors import MonitorsConfig
from atp_notebook.spice.vm import SpiceVmConnection

if TYPE_CHECKING:
    from atp_notebook.transport import TransportManager

__all__ = ["DEFAULT_TIMEOUT_S", "VmDisplay", "to_image"]

DEFAULT_TIMEOUT_S = 30.0


def to_image(pixels: Pixels) -> Image.Image:
    """B,G,R,X pixels (h, w, 4) as a PIL RGB image."""
    height, width = pixels.shape[:2]
    return Image.frombuffer("RGB", (width, height), pixels, "raw", "BGRX", 0, 1)


class VmDisplay:
    """One display channel of one VM (``channel_id`` 0 is the first head)."""

    def __init__(self, manager: TransportManager, vm_id: str, channel_id: int = 0) -> None:
        self.manager = manager
        self.vm_id = vm_id
        self.channel_id = channel_id

    def __repr__(self) -> str:
        return f"<VmDisplay {self.vm_id}:{self.channel_id}>"

    @property
    def spice(self) -> SpiceVmConnection:
        return self.manager.spice_connection(self.vm_id)

    async def _live(self, timeout: float) -> LiveDisplay:
        return await self.spice.display(self.channel_id, timeout)

    # --- operations ----------------------------------------------------------------------

    async def _open(self, options: DisplayOptions | None = None,
                    timeout: float = DEFAULT_TIMEOUT_S) -> VmDisplay:
        """Open the display channel (again, when ``options`` differ from the ones it was
        opened with) and wait until its screen is drawn. ``options`` stay for the VM's
        display channels from now on."""
        if options is not None:
            await self.spice.set_display_options(options)
        await self._live(timeout)
        return self

    async def _screenshot(self, region: Region | None = None,
                          timeout: float = DEFAULT_TIMEOUT_S, *,
                          cursor: bool = False) -> Image.Image:
        """The screen as drawn from Spice (or ``region`` of it), a PIL RGB image; with
        ``cursor`` the guest pointer drawn in (its cursor channel opened if needed)."""
        pixels = await self._pixels(region, timeout)
        if cursor:
            pointer = await VmCursor(self.manager, self.vm_id, self.channel_id)._state(timeout)
            box = region_box(region)
            pixels = draw_cursor(pixels, pointer, (0, 0) if box is None else box[:2])
        return to_image(pixels)

    async def _pixels(self, region: Region | None = None,
                      timeout: float = DEFAULT_TIMEOUT_S) -> Pixels:
        """A copy of the screen (or ``region``): numpy (h, w, 4) uint8, B,G,R,X."""
        box = region_box(region)  # InvalidArgument before anything opens
        return (await self._live(timeout)).pixels(box)

    async def _wait_for_change(self, region: Region | None = None,
                               timeout: float = DEFAULT_TIMEOUT_S) -> Frame:
        """The next frame that changes ``region`` (None: anywhere on the screen)."""
        box = region_box(region)
        async with asyncio.timeout(timeout + 1.0):  # the inner waits bound themselves
            live = await self._live(timeout)
            return await live.wait_for_change(box, timeout)

    async def _wait_still(self, seconds: float = 1.0, region: Region | None = None,
                          timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Until ``region`` (None: the screen) has not changed for ``seconds``."""
        box = region_box(region)
        live = await self._live(timeout)
        await live.wait_still(seconds, box, timeout)

    async def _stats(self, timeout: float = DEFAULT_TIMEOUT_S) -> DisplayStats:
        """What the display's worker has drawn so far."""
        return (await self._live(timeout)).stats()

    async def _monitors(self, timeout: float = DEFAULT_TIMEOUT_S) -> MonitorsConfig | None:
        """The heads the server last described (MONITORS_CONFIG), None before any."""
        return (await self._live(timeout)).renderer.monitors

    async def _add_listener(self, listener: Callable[[Frame], None],
                            timeout: float = DEFAULT_TIMEOUT_S) -> ListenerHandle:
        """Hear every Frame of this display (on the atp loop), also after the channel
        reopens, until the handle closes."""
        await self._live(timeout)
        return self.spice.displays.frame_listeners(self.channel_id).add(listener)

    open = atp_blocking(_open)
    open_async = atp_async(_open)
    screenshot = atp_blocking(_screenshot)
    screenshot_async = atp_async(_screenshot)
    pixels = atp_blocking(_pixels)
    pixels_async = atp_async(_pixels)
    wait_for_change = atp_blocking(_wait_for_change)
    wait_for_change_async = atp_async(_wait_for_change)
    wait_still = atp_blocking(_wait_still)
    wait_still_async = atp_async(_wait_still)
    stats = atp_blocking(_stats)
    stats_async = atp_async(_stats)
    monitors = atp_blocking(_monitors)
    monitors_async = atp_async(_monitors)
    add_listener = atp_blocking(_add_listener)
    add_listener_async = atp_async(_add_listener)

    @property
    def surface(self) -> Pixels:
        """A copy of the primary surface, numpy (h, w, 4) B,G,R,X (opened if needed)."""
        return self.pixels()

    @property
    def frame_number(self) -> int:
        """Frames drawn on the current display channel (0 before it opened)."""
        live = self.spice.displays.lives.get(self.channel_id)
        return 0 if live is None or live.last_frame is None else live.last_frame.number

    async def frames(self, timeout: float = DEFAULT_TIMEOUT_S) -> AsyncIterator[Frame]:
        """Every frame from now on, on the caller's event loop; stop by leaving the loop.
        A consumer slower than the display skips to newer frames (at most 64 wait)."""
        caller = asyncio.get_running_loop()
        inbox: asyncio.Queue[Frame] = asyncio.Queue(maxsize=64)

        def take(frame: Frame) -> None:  # on the atp loop
            def put() -> None:
                if inbox.full():
                    inbox.get_nowait()
                inbox.put_nowait(frame)
            caller.call_soon_threadsafe(put)

        handle = await on_atp_loop(self._add_listener(take, timeout))
        try:
            while True:
                yield await inbox.get()
        finally:
            get_loop().loop.call_soon_threadsafe(handle.close)
