"""Display VMs on demand (atp_notebook/lab/display_vms.py) on the real lab: libvirt takes
every setting, the guest gets two framebuffers that show exactly the known image written,
animates them and ends on the animation's last frame, the Spice server serves two display
channels, and the VM is gone afterwards — after an error too, and a leftover of a killed run
is removed before the next one starts.

Run under the lab lock (``flock /tmp/atp-lab.lock``): each test boots a TCG guest."""

from __future__ import annotations

from functools import partial

import libvirt
import pytest
from PIL import Image

from atp_notebook.errors import GuestAgentError
from atp_notebook.lab import domains
from atp_notebook.lab.display_vms import (
    DISPLAY_SETTINGS,
    DisplayGuest,
    display_domain_xml,
    display_vm,
    setting_named,
)
from atp_notebook.lab.guest import build_guest
from atp_notebook.lab.known_images import MIXED_BANDS, animation_frames, known_image
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus
from atp_notebook.loop import run
from atp_notebook.session import Session, Vm
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.display import DisplayProtocol
from atp_notebook.spice.vm import SpiceVmConnection
from tests.integration.waiting import wait_until


def test_libvirt_accepts_the_domain_of_every_setting(lab_paths: LabPaths, lab: LabStatus) -> None:
    conn = domains.open_libvirt()
    guest = build_guest(lab_paths.guest_dir)
    try:
        for name, setting in DISPLAY_SETTINGS.items():
            xml = display_domain_xml(lab_paths, setting, 5929, guest)
            dom = conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            try:
                spice = dom.XMLDesc(0)
                assert f"<streaming mode='{setting.streaming}'/>" in spice, name
                assert f"<image compression='{setting.image_compression}'/>" in spice, name
                cards = 1 if setting.video == "vga" else 2
                assert spice.count(f"<model type='{setting.video}'") == cards, name
            finally:
                dom.undefine()
    finally:
        conn.close()


def shows_one_line(vm: Vm, size: tuple[int, int]) -> bool:
    """Whether head 0 is ``size`` and black but for the first text row (16 pixels high)."""
    screen = vm.screendump(0)
    box = screen.convert("RGB").getbbox()
    return screen.size == size and box is not None and box[3] <= 16


def primary_size(spice: SpiceVmConnection, channel_id: int) -> tuple[int, int] | None:
    protocol = spice.channel(ChannelType.DISPLAY, channel_id).protocol
    assert isinstance(protocol, DisplayProtocol)
    primary = protocol.primary
    return (primary.width, primary.height) if primary is not None else None


def test_a_display_vm_shows_known_images_on_two_heads_and_serves_two_display_channels(
    session: Session, lab_paths: LabPaths,
) -> None:
    # a leftover of a killed run (started, never cleaned up) goes before the new VM starts
    conn = domains.open_libvirt()
    try:
        leftover = setting_named("off")
        # what display_vms.start() makes before a VM starts (a fresh lab has none)
        lab_paths.console_log(leftover.vm_name).parent.mkdir(parents=True, exist_ok=True)
        conn.createXML(display_domain_xml(lab_paths, leftover, 5929,
                                          build_guest(lab_paths.guest_dir)), 0)
        with display_vm("glz") as dvm:
            assert domains.lookup(conn, leftover.vm_name) is None
            assert dvm.name == "atp-disp-glz" and domains.lookup(conn, dvm.name) is not None
            vm = session.vm(dvm.name)
            guest = DisplayGuest(vm)
            # the console: VGA text (qxl-vga in VGA mode) until the qxl driver loads, then
            # fbcon on fb0; each shows one line of text on a cleared screen, no cursor
            for framebuffer, size in ((False, (720, 400)), (True, (1024, 768))):
                guest.console("one line", framebuffer=framebuffer)
                wait_until(partial(shows_one_line, vm, size),
                           f"one line of text at the top of a {size} console")
            fbs = guest.framebuffers_on()
            assert [(f.name, f.width, f.height, f.bpp) for f in fbs] == [
                ("fb0", 1024, 768, 32), ("fb1", 1024, 768, 32)]

            for argv, fragment in ((["/dev/zero", "x"], "usage: atp-fb-show"),
                                   (["/dev/zero", "0", "700", "100"], "outside fb0's 768"),
                                   (["/dev/zero", "2"], "no /dev/fb2")):
                with pytest.raises(GuestAgentError, match=fragment):
                    guest.run(["/usr/bin/atp-fb-show", *argv])

            mixed, flat = known_image("mixed"), known_image("flat")
            top, rows = MIXED_BANDS[2]
            guest.show(None, 0)
            guest.show(mixed, 0, (top, rows))  # one band on black
            guest.show(flat, 1)
            band = Image.new("RGB", mixed.size)
            band.paste(mixed.crop((0, top, 1024, top + rows)), (0, top))
            # QEMU's own view of each head: the bytes written, pixel for pixel
            wait_until(lambda: vm.screendump(0).convert("RGB").tobytes() == band.tobytes(),
                       "head 0 to show the band written to fb0")
            wait_until(lambda: vm.screendump(1).convert("RGB").tobytes() == flat.tobytes(),
                       "head 1 to show the image written to fb1")

            # an animated band on fb1 over the flat image, by atp-fb-animate (a dd per frame)
            # and by atp-fb-play (one process)
            for one_process in (False, True):
                check_animation(vm, guest, flat, one_process)
            with pytest.raises(GuestAgentError, match="framebuffer console is unbound"):
                guest.console("too late", framebuffer=True)

            spice = SpiceVmConnection(dvm.name, SpiceEndpoint(dvm.spice_host,
                                                              port=dvm.spice_port))
            try:
                for channel_id in (0, 1):
                    run(spice.open_channel(ChannelType.DISPLAY, channel_id), timeout=30)
                wait_until(lambda: [primary_size(spice, c) for c in (0, 1)] == [(1024, 768)] * 2,
                           "the primary surfaces of display channels 0 and 1")
            finally:
                run(spice.close(), timeout=60)
        assert domains.lookup(conn, "atp-disp-glz") is None
    finally:
        conn.close()


def check_animation(vm: Vm, guest: DisplayGuest, flat: Image.Image, one_process: bool) -> None:
    """An animated band on fb1 over ``flat``: it moves, then ends on its last frame; a frame
    limit ends it by itself with the last frame last; no stop file is left; frames that do
    not fit are refused."""
    guest.show(flat, 1)
    wait_until(lambda: vm.screendump(1).convert("RGB").tobytes() == flat.tobytes(),
               "head 1 to show the flat image")
    frames = animation_frames(5, rows=32, kind="flat")
    on_screen = flat.copy()
    with guest.animate(frames, fb=1, row=600, one_process=one_process) as animation:
        wait_until(lambda: vm.screendump(1).convert("RGB").tobytes() != on_screen.tobytes(),
                   "the animation to change head 1")
    assert animation.written is not None and animation.written >= 1
    on_screen.paste(frames[-1], (0, 600))
    wait_until(lambda: vm.screendump(1).convert("RGB").tobytes() == on_screen.tobytes(),
               "head 1 to show the animation's last frame on the flat image")
    limited = guest.start_animation(frames[:3], fb=1, row=0, max_frames=4,
                                    one_process=one_process)
    assert limited.wait() == 5 and limited.stop() == 5
    if one_process:  # paced as a player would (the rate itself: bench/bench_widget.py)
        paced = guest.start_animation(frames[:3], fb=1, row=0, max_frames=4, one_process=True,
                                      fps=40)
        assert paced.wait() == 5 and paced.stop() == 5
    # stopping an animation that had ended left no stop file behind
    assert guest.run(["/bin/sh", "-c", "ls /run | grep -c atp-fb-animate; true"]
                     ).split() == ["0"]
    with pytest.raises(GuestAgentError, match="not 2 frames of whole 4096-byte rows"):
        guest.start_animation(animation_frames(2, rows=700), row=100,
                              one_process=one_process).wait()


def test_the_vm_is_gone_after_an_error_inside() -> None:
    conn = domains.open_libvirt()
    try:
        with pytest.raises(RuntimeError, match="inside"), display_vm("lz") as dvm:
            assert domains.lookup(conn, dvm.name) is not None
            raise RuntimeError("an error inside")
        assert domains.lookup(conn, "atp-disp-lz") is None
    finally:
        conn.close()
