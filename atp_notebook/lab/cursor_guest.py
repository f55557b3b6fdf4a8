"""A known hardware cursor in a display VM's guest: ``atp-cursor`` (``guest_src/atp-cursor.c``)
driven through the guest agent, and the shape it sets, computed here the same way.

The guest's qxl DRM driver hands the cursor to QEMU, whose Spice server sends it on the
cursor channel as a 64x64 ALPHA cursor; the Spice position is the hot spot's place on the
screen. ``atp-fb-on`` must have loaded qxl first (:meth:`DisplayGuest.framebuffers_on`).

Example::

    guest = GuestCursor(vm)          # vm: session.vm(display_vm.name)
    guest.set(hotspot=(5, 7), position=(200, 150))
    guest.move(300, 250)
    known_cursor_rgba()              # (64, 64, 4) uint8, what vm.cursor should show
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from atp_notebook.virt.guest_agent import GuestAgent
from atp_notebook.virt.handle import DomainHandle

PROGRAM = "/usr/bin/atp-cursor"
SIZE = 64  # atp-cursor.c SIZE
# atp-cursor.c atp_cursor_pixel(): an opaque block with a transparent notch at its top right
BLOCK_WIDTH, BLOCK_HEIGHT = 40, 48
NOTCH_LEFT, NOTCH_BOTTOM = 30, 10


def known_cursor_rgba() -> npt.NDArray[np.uint8]:
    """The shape ``atp-cursor set`` draws, as straight-alpha RGBA (transparent pixels 0)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    opaque = (x < BLOCK_WIDTH) & (y < BLOCK_HEIGHT) & ~((x >= NOTCH_LEFT) & (y < NOTCH_BOTTOM))
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., 0] = np.where(opaque, (x * 6) & 0xFF, 0)
    rgba[..., 1] = np.where(opaque, (y * 5) & 0xFF, 0)
    rgba[..., 2] = np.where(opaque, 0x80 | ((x + y) & 0x3F), 0)
    rgba[..., 3] = np.where(opaque, 255, 0)
    return rgba


class GuestCursor:
    """``atp-cursor`` in one guest. The first call starts its holder (see the C source:
    without a DRM file kept open, the kernel's fbdev emulation drops the cursor when the
    command exits)."""

    def __init__(self, vm: DomainHandle, timeout: float = 60.0) -> None:
        self.agent = GuestAgent(vm, timeout=timeout)
        self.timeout = timeout
        self._held = False

    def _run(self, *args: str) -> None:
        if not self._held:
            self.agent.exec([PROGRAM, "hold"], timeout=self.timeout).check()
            self._held = True
        self.agent.exec([PROGRAM, *args], timeout=self.timeout).check()

    def set(self, hotspot: tuple[int, int], position: tuple[int, int]) -> None:
        """The known shape with ``hotspot``, the hot spot on screen at ``position``."""
        self._run("set", *(str(v) for v in (*hotspot, *position)))

    def move(self, x: int, y: int) -> None:
        """The hot spot to (x, y)."""
        self._run("move", str(x), str(y))

    def hide(self) -> None:
        self._run("hide")
