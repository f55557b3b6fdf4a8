"""Display VMs' domain XML (atp_notebook/lab/display_vms.py), without libvirt: each setting
reaches <graphics>, two qxl cards (or one VGA card and nomodeset), no disk, the upload port;
the guest animation's frames and the checks made before anything reaches the guest. That
libvirt accepts the XML, the guest sees two framebuffers and animates them is
tests/integration/test_display_vms.py."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from atp_notebook.errors import InvalidArgument
from atp_notebook.lab.display_vms import (
    DISPLAY_SETTINGS,
    UPLOAD_PORT_NAME,
    DisplayGuest,
    DisplaySetting,
    display_domain_xml,
    setting_named,
)
from atp_notebook.lab.guest import INIT_COMMANDS, GuestImage, render_init
from atp_notebook.lab.known_images import (
    ANIMATION_KINDS,
    MAX_ANIMATION_FRAMES,
    animation_frames,
    image_digest,
)
from atp_notebook.lab.paths import AGENT_PORT_NAME, LabPaths

GUEST = GuestImage(Path("/lab/guest/vmlinuz"), Path("/lab/guest/initrd.img"), "console=ttyS0",
                   "d" * 64)

# setting -> <image compression>, <jpeg compression>, <zlib compression>, <streaming mode>
QXL_SETTINGS = {
    "auto_glz": ("auto_glz", "never", "never", "off"),
    "auto_lz": ("auto_lz", "never", "never", "off"),
    "quic": ("quic", "never", "never", "off"),
    "glz": ("glz", "never", "never", "off"),
    "lz": ("lz", "never", "never", "off"),
    "off": ("off", "never", "never", "off"),
    "jpeg": ("quic", "always", "never", "off"),
    "zlib": ("auto_glz", "never", "always", "off"),
    "streaming": ("auto_glz", "never", "never", "all"),
}
VGA_SETTINGS = {"vga_text": ("auto_glz", "never", "never", "off")}
EXPECTED = QXL_SETTINGS | VGA_SETTINGS


def test_there_is_a_vm_for_every_setting_issue_13_names() -> None:
    assert sorted(DISPLAY_SETTINGS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_domain_xml_carries_the_setting(name: str, tmp_path: Path) -> None:
    root = ET.fromstring(display_domain_xml(LabPaths(tmp_path), setting_named(name), 5917,
                                            GUEST))
    assert root.get("type") == "qemu"  # TCG
    assert root.findtext("name") == f"atp-disp-{name}"
    graphics = root.find("devices/graphics")
    assert graphics is not None
    assert (graphics.get("type"), graphics.get("port"), graphics.get("listen")) == (
        "spice", "5917", "127.0.0.1")
    assert graphics.get("passwd") is None and graphics.get("tlsPort") is None
    found = tuple(graphics.find(tag).get(attr)  # type: ignore[union-attr]
                  for tag, attr in (("image", "compression"), ("jpeg", "compression"),
                                    ("zlib", "compression"), ("streaming", "mode")))
    assert found == EXPECTED[name]
    models = [v.attrib for v in root.findall("devices/video/model")]
    cmdline = (root.findtext("os/cmdline") or "").split()
    if name in QXL_SETTINGS:
        assert [(m["type"], m.get("primary"), m["heads"]) for m in models] == [
            ("qxl", "yes", "1"), ("qxl", None, "1")]
        # 16 MiB of vram and vgamem each hold a 3 MiB 1024x768x4 framebuffer
        assert all(int(m["vram"]) >= 16384 and int(m["vgamem"]) >= 16384 for m in models)
        assert "nomodeset" not in cmdline
    else:  # one plain VGA card, and no KMS driver may take the text console
        assert [(m["type"], m.get("primary")) for m in models] == [("vga", "yes")]
        assert cmdline[-1] == "nomodeset" and "atp.hostname=atp-disp-vga_text" in cmdline
    assert root.find("devices/disk") is None
    ports = [t.get("name") for t in root.findall("devices/channel/target")]
    assert AGENT_PORT_NAME in ports and UPLOAD_PORT_NAME in ports
    assert root.findtext("os/kernel") == str(GUEST.kernel)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"image_compression": "lz4"}, "image 'lz4'"),
    ({"jpeg": "sometimes"}, "jpeg 'sometimes'"),
    ({"zlib": "yes"}, "zlib 'yes'"),
    ({"streaming": "on"}, "streaming 'on'"),
    ({"video": "virtio"}, "video 'virtio'"),
])
def test_settings_libvirt_would_refuse_are_invalid_arguments(kwargs: dict[str, str],
                                                            fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        DisplaySetting("x", **kwargs)  # type: ignore[arg-type]  # every key names a str field


def test_a_cpuset_confines_the_whole_qemu_process_and_bad_ones_are_refused(
        tmp_path: Path) -> None:
    setting = setting_named("streaming")
    plain = ET.fromstring(display_domain_xml(LabPaths(tmp_path), setting, 5917, GUEST))
    assert [v.get("cpuset") for v in plain.findall("vcpu")] == [None]
    pinned = ET.fromstring(display_domain_xml(LabPaths(tmp_path), setting, 5917, GUEST, "1"))
    vcpu = pinned.find("vcpu")
    assert vcpu is not None and (vcpu.get("cpuset"), vcpu.text) == ("1", "1")
    assert pinned.find("cputune") is None  # emulator and I/O threads default to the cpuset
    for bad in ("", "one", "1-", "0;1", "^1"):
        with pytest.raises(InvalidArgument, match="cpuset"):
            display_domain_xml(LabPaths(tmp_path), setting, 5917, GUEST, bad)


def test_an_unknown_setting_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match="unknown display setting 'lz5'") as caught:
        setting_named("lz5")
    assert caught.value.hint is not None and "auto_glz" in caught.value.hint


# --- the guest animation: frames, and what is checked before the guest sees anything ------


@pytest.mark.parametrize("kind", ANIMATION_KINDS)
def test_animation_frames_differ_and_depend_only_on_their_number(kind: str) -> None:
    frames = animation_frames(5, rows=96, kind=kind)
    assert [(f.mode, f.size) for f in frames] == [("RGB", (1024, 96))] * 5
    assert len({image_digest(f) for f in frames}) == 5
    again = animation_frames(3, rows=96, kind=kind)
    assert [f.tobytes() for f in again] == [f.tobytes() for f in frames[:3]]


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"count": 0}, "1..64 frames, not 0"),
    ({"count": MAX_ANIMATION_FRAMES + 1}, "not 65"),
    ({"count": 2, "kind": "plasma"}, "unknown animation kind 'plasma'"),
    ({"count": 2, "rows": 0}, "not 1024x0"),
    ({"count": 2, "width": 32}, "not 32x768"),
])
def test_impossible_animations_are_invalid_arguments(kwargs: dict[str, Any],
                                                     fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        animation_frames(**kwargs)


class RecordingAgent:
    """Stands in for the guest agent where a test only needs what would be sent: every
    guest-exec gets pid 4242, whose status is ``status``."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.status: dict[str, Any] = {"exited": False}

    def command(self, name: str, **kwargs: Any) -> dict[str, Any]:
        self.commands.append((name, kwargs))
        return self.status if name == "guest-exec-status" else {"pid": 4242}


class NamedVm:
    name = "atp-disp-test"


def offline_guest() -> tuple[DisplayGuest, RecordingAgent, list[tuple[str, bytes]]]:
    guest = DisplayGuest(NamedVm())  # type: ignore[arg-type]
    agent = RecordingAgent()
    uploads: list[tuple[str, bytes]] = []
    guest.agent = agent  # type: ignore[assignment]
    guest.upload = lambda path, data: uploads.append((path, data))  # type: ignore[method-assign]
    return guest, agent, uploads


def test_an_animation_uploads_its_frames_once_and_starts_the_guest_command() -> None:
    guest, agent, uploads = offline_guest()
    frames = animation_frames(3, rows=16, kind="flat")
    animation = guest.start_animation(frames, fb=1, row=700, max_frames=50)
    guest.start_animation(frames, fb=1, row=10)
    assert len(uploads) == 1  # the same frames again: already in the guest
    path, data = uploads[0]
    assert len(data) == 3 * 16 * 1024 * 4 and data[:4] == frames[0].tobytes("raw", "BGRX")[:4]
    (name, args), _ = agent.commands
    assert name == "guest-exec"
    assert [args["path"], *args["arg"]] == ["/usr/bin/atp-fb-animate", path, "3", "1", "700",
                                           "50"]
    assert animation.pid == 4242 and animation.written is None
    assert animation.box == (0, 700, 1024, 16) and animation.final is frames[-1]


@pytest.mark.parametrize(("frames", "kwargs", "fragment"), [
    ((), {}, "at least one frame"),
    ((Image.new("RGB", (1024, 8)), Image.new("RGB", (1024, 9))), {}, "of one height"),
    ((Image.new("RGB", (1000, 8)),), {}, "1024 px wide"),
    ((Image.new("RGB", (1024, 8)),), {"row": -1}, "must not be negative"),
])
def test_frames_the_framebuffer_cannot_take_never_reach_the_guest(
        frames: tuple[Image.Image, ...], kwargs: dict[str, int], fragment: str) -> None:
    guest, agent, uploads = offline_guest()
    with pytest.raises(InvalidArgument, match=fragment):
        guest.start_animation(frames, row=kwargs.get("row", 0))
    assert agent.commands == [] and uploads == []


def test_the_guest_image_has_the_animation_command() -> None:
    assert "atp-fb-animate" in INIT_COMMANDS
    init = render_init(["/m/a.ko"], ["/m/qxl.ko"])
    assert "atp-fb-animate) fb_animate" in init


def test_an_animation_that_ended_by_itself_is_not_asked_to_stop() -> None:
    guest, agent, _ = offline_guest()
    animation = guest.start_animation(animation_frames(2, rows=8, kind="flat"), max_frames=3)
    agent.status = {"exited": True, "exitcode": 0, "out-data": base64.b64encode(b"4\n")}
    assert animation.stop() == 4 and animation.stop() == 4
    # one status query (qemu-ga forgets an ended process), no touch of a stop file
    assert [name for name, _ in agent.commands] == ["guest-exec", "guest-exec-status"]
