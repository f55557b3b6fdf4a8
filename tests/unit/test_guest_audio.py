"""The lab's sound: the audio display VM's XML wires an ich6 card to Spice (no libvirt
needed), and the guest image part holds aplay/arecord, the ALSA configuration, the HDA
modules in load order and atp-audio-on. That the guest plays and records through Spice is
tests/integration/test_spice_audio.py."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

from atp_notebook.lab.display_vms import AUDIO_SETTING, PORT_SETTING, display_domain_xml
from atp_notebook.lab.guest import MODULES_ROOT, GuestImage, Tree, pick_kernel
from atp_notebook.lab.guest_audio import add_guest_audio
from atp_notebook.lab.paths import LabPaths

GUEST = GuestImage(Path("/lab/guest/vmlinuz"), Path("/lab/guest/initrd.img"), "console=ttyS0",
                   "d" * 64)


def test_the_audio_vm_has_an_hda_card_on_spice_audio(tmp_path: Path) -> None:
    root = ET.fromstring(display_domain_xml(LabPaths(tmp_path), AUDIO_SETTING, 5917, GUEST))
    sounds = root.findall("devices/sound")
    assert [s.get("model") for s in sounds] == ["ich6"]
    audio_id = sounds[0].find("audio")
    assert audio_id is not None
    backends = root.findall("devices/audio")
    assert [(a.get("id"), a.get("type")) for a in backends] == [(audio_id.get("id"), "spice")]
    # the other display VMs carry no sound card
    other = ET.fromstring(display_domain_xml(LabPaths(tmp_path), PORT_SETTING, 5917, GUEST))
    assert other.findall("devices/sound") == []


def test_the_guest_image_part_for_sound() -> None:
    version, _ = pick_kernel(None)
    tree = Tree()
    add_guest_audio(tree, version)
    entries = {e.path: e for e in tree.entries()}
    assert stat.S_ISREG(entries["usr/bin/aplay"].mode)
    assert entries["usr/bin/arecord"].data == b"aplay"
    assert "usr/share/alsa/alsa.conf" in entries
    assert any(p.startswith("usr/share/alsa/cards/") for p in entries)
    assert any("libasound.so" in p for p in entries)
    script = entries["usr/bin/atp-audio-on"]
    assert script.mode & 0o111
    text = script.data.decode()
    loads = text.split("for ko in ", 1)[1].split(";", 1)[0].split()
    names = [os.path.basename(w) for w in loads]
    # the codec driver before the controller, each after what it needs
    assert names.index("snd-hda-codec-generic.ko") < names.index("snd-hda-intel.ko")
    assert names.index("snd.ko") < names.index("snd-pcm.ko")
    guest_root = f"{MODULES_ROOT.as_posix().lstrip('/')}/{version}/"
    assert all(w.lstrip("/") in entries and w.lstrip("/").startswith(guest_root)
               for w in loads)
