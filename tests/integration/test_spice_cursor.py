"""The Spice cursor channel against the lab's real QEMU / spice-server (issue 16, Cursor).

One display VM boots for the module (the ``auto_glz`` setting: two qxl cards, a tablet);
qxl's DRM driver is loaded (``atp-fb-on``) and the screen filled with one colour, then
``atp-cursor`` (lab/guest_src/atp-cursor.c, run through the agent) gives the first head a
known 64x64 hardware cursor. Checked: the shape's pixels, hot spot and position as
``vm.cursor`` reports them; a move by the guest (in server mouse mode: in client mode
spice-server does not pass the guest's moves on, the client owns the pointer there);
``vm.screenshot(cursor=True)`` with the shape alpha-blended at position - hot spot and the
rest of the screen unchanged, also for a cursor partly off the screen's edge; a hide; and
the cursor channel killed under a user leaving Main, Inputs and Display working and
opening again on its next use. Run it under the lab lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from atp_notebook.errors import ChannelClosed
from atp_notebook.lab.cursor_guest import SIZE, GuestCursor, known_cursor_rgba
from atp_notebook.lab.display_vms import DisplayGuest, display_vm
from atp_notebook.lab.paths import LabPaths
from atp_notebook.loop import get_loop
from atp_notebook.session import Vm, connect
from atp_notebook.spice.cursor_facade import CursorSnapshot
from atp_notebook.spice.proto.constants import ChannelType
from tests.conftest import require_lab
from tests.integration.waiting import wait_for_guest_file

TIMEOUT = 60.0  # TCG guest
HOTSPOT = (5, 7)
FIRST = (200, 150)  # the hot spot's place on screen after `atp-cursor set`
MOVED = (300, 250)
BACKGROUND = (40, 90, 160)  # RGB: the screen under the cursor, so transparency shows


class CursorVm:
    def __init__(self, vm: Vm, guest: GuestCursor) -> None:
        self.vm = vm
        self.guest = guest


@pytest.fixture(scope="module")
def lab(lab_paths: LabPaths) -> Iterator[CursorVm]:
    require_lab(lab_paths)
    with connect(lab_paths.config_file) as session, display_vm("auto_glz") as dvm:
        vm = session.vm(dvm.name)
        screen = DisplayGuest(vm, timeout=TIMEOUT)
        fb0 = screen.framebuffers_on()[0]
        screen.show(Image.new("RGB", (fb0.width, fb0.height), BACKGROUND))
        # linked before the guest sets its cursor: a later link's INIT would carry the
        # position of the last move only (see spice/cursor_facade.py), (0, 0) here
        before = vm.cursor.state(timeout=TIMEOUT)
        assert not before.shown
        yield CursorVm(vm, GuestCursor(vm, timeout=TIMEOUT))


def cursor_at(position: tuple[int, int]) -> Callable[[CursorSnapshot], bool]:
    def test(c: CursorSnapshot) -> bool:
        return c.shown and c.position == position
    return test


def test_the_shape_hot_spot_and_position_the_guest_set(lab: CursorVm) -> None:
    lab.guest.set(HOTSPOT, FIRST)
    now = lab.vm.cursor.wait_for_cursor(cursor_at(FIRST), timeout=TIMEOUT)
    assert (now.hotspot, now.size, now.top_left) == (HOTSPOT, (SIZE, SIZE), (195, 143))
    assert now.raw_shape is not None and now.raw_shape.cursor_type.name == "ALPHA"
    assert now.image is not None
    assert np.array_equal(now.image.rgba, known_cursor_rgba())
    shape = now.shape
    assert shape is not None and shape.mode == "RGBA"
    assert np.array_equal(np.asarray(shape), known_cursor_rgba())


def test_a_move_by_the_guest(lab: CursorVm) -> None:
    lab.vm.set_mouse_mode("server", timeout=TIMEOUT)
    lab.guest.move(*MOVED)
    moved = lab.vm.cursor.wait_for_cursor(cursor_at(MOVED), timeout=TIMEOUT)
    assert moved.hotspot == HOTSPOT and moved.top_left == (295, 243)
    assert moved.image is not None and np.array_equal(moved.image.rgba, known_cursor_rgba())


def with_known_cursor(plain: np.ndarray, left: int, top: int) -> np.ndarray:
    """``plain`` (RGB) with the known shape's opaque pixels at (left, top), clipped; its
    alpha is 0 or 255 only, so blending is choosing."""
    want = plain.copy()
    rgba = known_cursor_rgba()
    height, width = plain.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + SIZE, width), min(top + SIZE, height)
    shape = rgba[y0 - top:y1 - top, x0 - left:x1 - left]
    opaque = shape[..., 3] == 255
    want[y0:y1, x0:x1][opaque] = shape[..., :3][opaque]
    return want


def test_a_screenshot_with_the_cursor(lab: CursorVm) -> None:
    lab.vm.cursor.wait_for_cursor(cursor_at(MOVED), timeout=TIMEOUT)
    plain = np.asarray(lab.vm.screenshot(timeout=TIMEOUT))
    with_cursor = np.asarray(lab.vm.screenshot(cursor=True, timeout=TIMEOUT))
    assert (plain == BACKGROUND).all()  # a hardware cursor is no part of the surface
    want = with_known_cursor(plain, 295, 243)
    assert np.array_equal(with_cursor, want)
    # a region: the same pixels, the cursor placed by the region's origin
    part = np.asarray(lab.vm.screenshot((280, 230, 50, 40), cursor=True, timeout=TIMEOUT))
    assert np.array_equal(part, want[230:270, 280:330])


def test_a_cursor_over_the_screen_s_edge_is_clipped(lab: CursorVm) -> None:
    lab.guest.move(1000, 750)  # the 64x64 shape's top left at (995, 743): partly off-screen
    edge = lab.vm.cursor.wait_for_cursor(cursor_at((1000, 750)), timeout=TIMEOUT)
    assert edge.top_left == (995, 743)
    plain = np.asarray(lab.vm.screenshot(timeout=TIMEOUT))
    with_cursor = np.asarray(lab.vm.screenshot(cursor=True, timeout=TIMEOUT))
    assert with_cursor.shape == plain.shape == (768, 1024, 3)
    assert np.array_equal(with_cursor, with_known_cursor(plain, 995, 743))
    lab.guest.move(*MOVED)
    lab.vm.cursor.wait_for_cursor(cursor_at(MOVED), timeout=TIMEOUT)


def test_a_killed_cursor_channel_fails_alone_and_reopens_on_next_use(lab: CursorVm) -> None:
    vm = lab.vm
    # the cursor state this test checks after the re-link, set here so that the test
    # passes alone too (run alone, the guest had no cursor: INIT said (0, 0), hidden);
    # the move after the set matters, a new link's INIT carries the last move's position
    lab.guest.set(HOTSPOT, FIRST)
    vm.set_mouse_mode("server", timeout=TIMEOUT)
    lab.guest.move(*MOVED)
    vm.cursor.wait_for_cursor(cursor_at(MOVED), timeout=TIMEOUT)
    vm.screenshot(timeout=TIMEOUT)  # Display open
    vm.press("shift", timeout=TIMEOUT)  # and Inputs
    channel = vm.spice.channel(ChannelType.CURSOR, 0)
    get_loop().call(channel.abort(ChannelClosed("killed by the test")), timeout=TIMEOUT)
    assert vm.cursor.status == "closed by the server"
    assert {(r.type, r.status) for r in vm.spice.channels()} >= {
        ("main", "open"), ("inputs", "open"), ("display", "open")}
    marker = f"/tmp/atp-cursor-{time.monotonic_ns()}"
    vm.type(f"echo typed >{marker}\n", timeout=TIMEOUT)
    assert wait_for_guest_file(vm, marker, TIMEOUT) == b"typed\n"
    assert (np.asarray(vm.screenshot(timeout=TIMEOUT)) == BACKGROUND).all()
    # the next call links it again; the server's INIT carries the current cursor
    again = vm.cursor.state(timeout=TIMEOUT)
    assert vm.cursor.status == "open"
    assert (again.position, again.hotspot, again.shown) == (MOVED, HOTSPOT, True)
    assert again.image is not None and np.array_equal(again.image.rgba, known_cursor_rgba())


def test_a_hide_by_the_guest(lab: CursorVm) -> None:
    lab.guest.hide()
    hidden = lab.vm.cursor.wait_for_cursor(lambda c: not c.shown, timeout=TIMEOUT)
    assert not hidden.shown
    plain = np.asarray(lab.vm.screenshot(timeout=TIMEOUT))
    assert np.array_equal(np.asarray(lab.vm.screenshot(cursor=True, timeout=TIMEOUT)), plain)

