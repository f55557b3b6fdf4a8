"""Display VMs' domain XML (atp_notebook/lab/display_vms.py), without libvirt: each setting
reaches <graphics>, two qxl cards, no disk, the upload port. That libvirt accepts it and the
guest sees two framebuffers is tests/integration/test_display_vms.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.lab.display_vms import (
    DISPLAY_SETTINGS,
    UPLOAD_PORT_NAME,
    DisplaySetting,
    display_domain_xml,
    setting_named,
)
from atp_notebook.lab.guest import GuestImage
from atp_notebook.lab.paths import AGENT_PORT_NAME, LabPaths

GUEST = GuestImage(Path("/lab/guest/vmlinuz"), Path("/lab/guest/initrd.img"), "console=ttyS0",
                   "d" * 64)

# setting -> <image compression>, <jpeg compression>, <zlib compression>, <streaming mode>
EXPECTED = {
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
    assert [(m["type"], m.get("primary"), m["heads"]) for m in models] == [
        ("qxl", "yes", "1"), ("qxl", None, "1")]
    # 16 MiB of vram and vgamem each hold a 3 MiB 1024x768x4 framebuffer
    assert all(int(m["vram"]) >= 16384 and int(m["vgamem"]) >= 16384 for m in models)
    assert root.find("devices/disk") is None
    ports = [t.get("name") for t in root.findall("devices/channel/target")]
    assert AGENT_PORT_NAME in ports and UPLOAD_PORT_NAME in ports
    assert root.findtext("os/kernel") == str(GUEST.kernel)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"image_compression": "lz4"}, "image 'lz4'"),
    ({"jpeg": "sometimes"}, "jpeg 'sometimes'"),
    ({"zlib": "yes"}, "zlib 'yes'"),
    ({"streaming": "on"}, "streaming 'on'"),
])
def test_settings_libvirt_would_refuse_are_invalid_arguments(kwargs: dict[str, str],
                                                            fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        DisplaySetting("x", **kwargs)


def test_an_unknown_setting_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match="unknown display setting 'lz5'") as caught:
        setting_named("lz5")
    assert caught.value.hint is not None and "auto_glz" in caught.value.hint
