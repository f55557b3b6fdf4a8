"""Video streams from the lab's real Spice server (issue 13): on the ``streaming`` display VM
(streaming-video=all) read with ``DisplayOptions.lossy()`` (MJPEG allowed), a guest
animation (``DisplayGuest.animate``: frames written to fb0 as fast as TCG allows) makes the
server stream; the stream's frames decode (the display's ``stats().stream_frames`` counts
them), and once the animation stops the screen matches QEMU's screendump within
:data:`JPEG_TOLERANCE` (PSNR >= 30 dB, per-channel mean absolute difference <= 3): the last
frame arrives as MJPEG. Then it becomes exact: when a stream times out (1 s without a frame)
spice-server sends the stream's area again as a lossless upgrade (server/video-stream.cpp
video_stream_timeout -> detach_video_stream_gracefully); measured: exact 2.5 s after the
stop, full screen and band. With the default lossless options the same animation comes as
exact ordinary draws.

One VM boots for the module; run under the lab lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from atp_notebook.lab.display_vms import DisplayGuest, display_vm
from atp_notebook.lab.known_images import animation_frames, known_image
from atp_notebook.lab.paths import LabPaths
from atp_notebook.session import Vm, connect
from atp_notebook.spice.display_facade import VmDisplay
from atp_notebook.spice.proto.display import DisplayOptions
from tests.conftest import require_lab
from tests.integration.screens import JPEG_TOLERANCE, wait_until_same
from tests.integration.waiting import wait_until

# stream frames to see before stopping: the stream is running, not just starting
STREAM_FRAMES = 10
BAND_ROW, BAND_ROWS = 300, 128  # the band animation: above spice-server's 96x96 minimum


@dataclass(frozen=True)
class StreamingVm:
    vm: Vm
    guest: DisplayGuest


@pytest.fixture(scope="module")
def streaming(lab_paths: LabPaths) -> Iterator[StreamingVm]:
    require_lab(lab_paths)
    with connect(lab_paths.config_file) as session, display_vm("streaming") as dvm:
        vm = session.vm(dvm.name)
        guest = DisplayGuest(vm)
        guest.framebuffers_on()
        yield StreamingVm(vm, guest)


def stream_frames(display: VmDisplay) -> int:
    return display.stats().stream_frames


def animate_until_streamed(streaming: StreamingVm, frames: int, rows: int, row: int) -> int:
    """Animate fb0 until the display decoded STREAM_FRAMES more stream frames; the number of
    frames the guest wrote."""
    display = streaming.vm.display
    before = stream_frames(display)
    with streaming.guest.animate(animation_frames(frames, rows=rows), row=row) as animation:
        wait_until(lambda: stream_frames(display) >= before + STREAM_FRAMES,
                   f"{STREAM_FRAMES} stream frames of a {rows}-row animation", timeout=90)
    return animation.written or 0


def test_a_full_screen_animation_streams_and_the_still_screen_nears_then_equals_the_dump(
        streaming: StreamingVm) -> None:
    vm = streaming.vm
    vm.display.open(options=DisplayOptions.lossy())
    written = animate_until_streamed(streaming, 4, 768, 0)
    assert written >= STREAM_FRAMES
    diff = wait_until_same(vm.display, lambda: vm.screendump(0),
                           "full-screen animation, stopped", JPEG_TOLERANCE)
    assert diff.size == (1024, 768)
    wait_until_same(vm.display, lambda: vm.screendump(0), "full-screen animation, upgraded")


def test_a_band_animation_streams_the_band_only_and_ends_exact(
        streaming: StreamingVm) -> None:
    vm, guest = streaming.vm, streaming.guest
    vm.display.open(options=DisplayOptions.lossy())
    guest.show(known_image("mixed"))
    wait_until_same(vm.display, lambda: vm.screendump(0), "mixed before the band")
    animate_until_streamed(streaming, 8, BAND_ROWS, BAND_ROW)
    diff = wait_until_same(vm.display, lambda: vm.screendump(0), "band animation, stopped",
                           JPEG_TOLERANCE)
    assert diff.size == (1024, 768)
    # the stream covered the band only: above and below it nothing was lossy
    below = BAND_ROW + BAND_ROWS
    outside = [(0, 0, 1024, BAND_ROW), (0, below, 1024, 768 - below)]
    dump = vm.screendump(0).convert("RGB")
    for x, y, w, h in outside:
        assert vm.display.screenshot(region=(x, y, w, h)).tobytes() == dump.crop(
            (x, y, x + w, y + h)).tobytes(), f"rows {y}..{y + h} outside the band"
    wait_until_same(vm.display, lambda: vm.screendump(0), "band animation, upgraded")


def test_with_the_default_lossless_options_the_animation_arrives_exact(
        streaming: StreamingVm) -> None:
    vm = streaming.vm
    vm.display.open(options=DisplayOptions.lossless())
    before = vm.display.stats()  # a new channel: the options changed
    with streaming.guest.animate(animation_frames(4, rows=BAND_ROWS), row=BAND_ROW):
        wait_until(lambda: vm.display.stats().frames >= before.frames + 30,
                   "30 frames of the animation")
    wait_until_same(vm.display, lambda: vm.screendump(0), "lossless animation, stopped")
    assert stream_frames(vm.display) == before.stream_frames == 0
