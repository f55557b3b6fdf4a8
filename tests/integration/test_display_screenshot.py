"""``vm.screenshot()`` equals QEMU's ``vm.screendump()`` pixel for pixel (issue 13), on the
lab's display VMs (atp_notebook/lab/display_vms.py), for every image compression of the
server: the VGA text console (QEMU's VGA mode of the qxl-vga card, before the guest loads
the qxl driver), the qxl framebuffer console (fbcon on fb0), and the known images written to
fb0 (display channel 0) and fb1 (display channel 1). The client sends no compression
preference (``DisplayOptions.server_choice``), so the VM's own setting picks the codecs.

The ``jpeg`` VM (image-compression=quic, jpeg-wan-compression=always) is read with
``DisplayOptions.lossy()``. A known image arrives there as one JPEG of the whole screen:
the screenshot must equal the screendump JPEG-compressed as the server does (libjpeg,
quality 85, 4:2:0) and decoded again, pixel for pixel (:func:`jpeg_round_trip`; measured
against the screendump itself: text 29.8 dB and mean abs 3.36, mixed 30.8 dB and 3.08,
photo 39.8 dB, flat 37.3 dB, gradients 39.3 dB). The consoles arrive as many small JPEGs,
so they must be within :data:`JPEG_TOLERANCE` of the screendump (PSNR >= 30 dB, per-channel
mean absolute difference <= 3, as the JPEG corpus test). The ``zlib`` VM, lossy options
too, sends ZLIB_GLZ, which is lossless, and its jpeg is never: it must be exact.

Also a plain VGA card's text console (``vga_text``: QEMU renders it, 720x400), through the
libvirt VM and through a Spice-only VM (no libvirt host in its configuration) on the same
Spice port.

Each VM's image types are recorded: its setting's codec must have drawn (the tests above
test that codec, not another). Each VM boots once for all its tests (class-scoped fixture);
run under the lab lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import pytest

from atp_notebook.config.schema import SpiceVmConfig, TransportConfig
from atp_notebook.lab.display_vms import (
    IMAGE_COMPRESSIONS,
    DisplayGuest,
    DisplayVm,
    display_vm,
)
from atp_notebook.lab.known_images import KNOWN_IMAGES, known_image
from atp_notebook.lab.paths import LabPaths
from atp_notebook.session import Session, Vm, connect
from atp_notebook.spice.proto.constants import ChannelType, ImageType
from atp_notebook.spice.proto.display import DisplayOptions, DrawCopy
from atp_notebook.spice.vm_events import ChannelMessage, SpiceVmEvent
from tests.conftest import require_lab
from tests.integration.screens import (
    JPEG_TOLERANCE,
    Tolerance,
    jpeg_round_trip,
    wait_until_same,
)
from tests.integration.waiting import wait_until

# GLZ dictionary the client offers (pixels): a few 1024x768 screens
GLZ_WINDOW = 1 << 22
CONSOLE_TEXT = ("atp-notebook display test: the quick brown fox jumps over the lazy dog\n"
                "0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\n"
                "\033[1;33mbold yellow\033[0m \033[41m red background \033[0m\n")
HEAD_1_IMAGES = ("mixed", "photo")
# setting -> image types that must have drawn on its VM (tests/unit/test_codecs_corpus.py
# has every type each setting sends)
REQUIRED_TYPES = {
    "auto_glz": {ImageType.GLZ_RGB, ImageType.QUIC},
    "auto_lz": {ImageType.LZ_RGB, ImageType.QUIC},
    "quic": {ImageType.QUIC},
    "glz": {ImageType.GLZ_RGB},
    "lz": {ImageType.LZ_RGB},
    "off": {ImageType.BITMAP},
    "jpeg": {ImageType.JPEG},
    "zlib": {ImageType.ZLIB_GLZ_RGB},
}


@dataclass
class ImageTypes:
    """Listener of a SpiceVmConnection: the image types of the DRAW_COPYs on its display
    channels (called on the atp loop; the test reads the set after the draws)."""

    seen: set[int] = field(default_factory=set)

    def __call__(self, event: SpiceVmEvent) -> None:
        if (isinstance(event, ChannelMessage) and event.channel_type is ChannelType.DISPLAY
                and isinstance(event.event, DrawCopy) and event.event.image is not None):
            self.seen.add(event.event.image.type)


@dataclass(frozen=True)
class ScreenVm:
    """A booted display VM, its guest and how its display is read."""

    dvm: DisplayVm
    vm: Vm
    guest: DisplayGuest
    tolerance: Tolerance | None
    image_types: ImageTypes


def options_for(setting: str) -> tuple[DisplayOptions, Tolerance | None]:
    if setting == "jpeg":
        return DisplayOptions.lossy(glz_window=GLZ_WINDOW), JPEG_TOLERANCE
    if setting == "zlib":  # ZLIB_GLZ is lossless, and this VM's jpeg is never
        return DisplayOptions.lossy(glz_window=GLZ_WINDOW), None
    return DisplayOptions.server_choice(glz_window=GLZ_WINDOW), None


@pytest.fixture(scope="class")
def screen_vm(request: pytest.FixtureRequest, lab_paths: LabPaths) -> Iterator[ScreenVm]:
    setting = request.param
    require_lab(lab_paths)
    options, tolerance = options_for(setting)
    with connect(lab_paths.config_file) as session, display_vm(setting) as dvm:
        vm = session.vm(dvm.name)
        image_types = ImageTypes()
        with vm.spice.add_listener(image_types):
            vm.display.open(options=options)
            yield ScreenVm(dvm, vm, DisplayGuest(vm), tolerance, image_types)


@pytest.mark.parametrize("screen_vm", [*IMAGE_COMPRESSIONS, "jpeg", "zlib"],
                         indirect=True, scope="class")
class TestEveryCompression:
    """In this order on each VM: fbcon cannot come back once an image was shown."""

    def test_the_vga_text_console_then_the_framebuffer_console(self, screen_vm: ScreenVm
                                                               ) -> None:
        setting, vm = screen_vm.dvm.setting.name, screen_vm.vm
        for framebuffer, size in ((False, (720, 400)), (True, (1024, 768))):
            screen_vm.guest.console(CONSOLE_TEXT, framebuffer=framebuffer)
            wait_until(partial(shows_size, vm, size), f"{setting}: QEMU's {size} console")
            what = f"{setting}: {'fbcon' if framebuffer else 'VGA text'} console"
            diff = wait_until_same(vm.display, lambda: vm.screendump(0), what,
                                   screen_vm.tolerance)
            assert diff.size == size, what

    @pytest.mark.parametrize("image_name", KNOWN_IMAGES)
    def test_a_known_image_on_head_0(self, screen_vm: ScreenVm, image_name: str) -> None:
        self.check_image(screen_vm, image_name, 0)

    @pytest.mark.parametrize("image_name", HEAD_1_IMAGES)
    def test_a_known_image_on_head_1(self, screen_vm: ScreenVm, image_name: str) -> None:
        self.check_image(screen_vm, image_name, 1)

    @staticmethod
    def check_image(screen_vm: ScreenVm, image_name: str, head: int) -> None:
        vm, image = screen_vm.vm, known_image(image_name)
        what = f"{screen_vm.dvm.setting.name}: {image_name} on head {head}"
        display = vm.display_channel(head)
        # open before the image is written: a channel's first screen comes lossless even
        # from the jpeg VM (spice-server never sends the initial surface image as JPEG)
        display.open()
        screen_vm.guest.show(image, head)
        # QEMU shows exactly what the guest wrote; only then is Spice held to it
        wait_until(lambda: vm.screendump(head).convert("RGB").tobytes() == image.tobytes(),
                   f"{what}: QEMU to show the image")
        if screen_vm.tolerance is None:
            diff = wait_until_same(display, lambda: vm.screendump(head), what)
        else:  # one JPEG of the whole screen: exactly what libjpeg makes of the screendump
            diff = wait_until_same(display, lambda: jpeg_round_trip(vm.screendump(head)),
                                   f"{what} (as JPEG)")
        assert diff.pixels == 0, what

    def test_the_settings_codec_drew(self, screen_vm: ScreenVm) -> None:
        """Last on each VM: what the tests above saw came through this setting's codec."""
        setting = screen_vm.dvm.setting.name
        seen = {ImageType(t).name for t in screen_vm.image_types.seen}
        assert {t.name for t in REQUIRED_TYPES[setting]} <= seen, f"{setting}: saw {seen}"


def shows_size(vm: Vm, size: tuple[int, int]) -> bool:
    return vm.screendump(0).size == size


def spice_only_config(port: int, vm_id: str) -> TransportConfig:
    """A configuration with one Spice VM and no libvirt host (as a notebook user with only
    a Spice address has)."""
    return TransportConfig(spice_vms=(SpiceVmConfig(vm_id, "127.0.0.1", port=port),))


def test_a_vga_cards_text_console_through_libvirt_and_through_a_spice_only_vm(
        session: Session, lab_paths: LabPaths) -> None:
    options = DisplayOptions.server_choice(glz_window=GLZ_WINDOW)
    with display_vm("vga_text") as dvm:
        vm = session.vm(dvm.name)  # screendumps and the guest; its Spice stays closed
        DisplayGuest(vm).console(CONSOLE_TEXT)
        wait_until(partial(shows_size, vm, (720, 400)), "QEMU's 720x400 text console")
        # one Spice client per VM at a time: each session's goes with the session
        with connect(lab_paths.config_file) as through_libvirt:
            display = through_libvirt.vm(dvm.name).display
            display.open(options=options)
            diff = wait_until_same(display, lambda: vm.screendump(0), "vga_text console")
            assert diff.size == (720, 400)
        with connect(spice_only_config(dvm.spice_port, "display-spice-only")) as alone:
            spice_only = alone.vm("display-spice-only")
            assert spice_only.spice_only
            spice_only.display.open(options=options)
            diff = wait_until_same(spice_only.display, lambda: vm.screendump(0),
                                   "vga_text console, Spice-only VM")
            assert diff.size == (720, 400)
