"""Sound in the lab guest: ALSA's ``aplay``/``arecord`` and the HDA driver, loaded on demand.

:func:`add_guest_audio` adds to the initramfs

- ``/usr/bin/aplay`` and ``arecord`` (a link to it) from Debian's alsa-utils, with the
  libraries ldd names and the ALSA configuration libasound reads at start
  (``/usr/share/alsa``: alsa.conf, cards/, pcm/, ctl/; without it every device name fails);
- the HDA modules (``snd-hda-codec-generic`` for QEMU's ``hda-duplex`` codec, then
  ``snd-hda-intel`` for the ich6 controller, and what they need), not loaded at boot: a
  guest without a sound card would only log a failed probe;
- ``/usr/bin/atp-audio-on``: loads them (the codec driver first: there is no modprobe alias
  to pull it in when the controller finds the codec) and waits for the playback and capture
  PCMs, then prints ``pcmC0D0p pcmC0D0c``.

The VM needs a sound card wired to Spice: the display VM setting ``audio``
(:data:`~atp_notebook.lab.display_vms.AUDIO_SETTING`). In the guest, ``aplay -D plughw:0,0
tone.wav`` plays into the Spice playback channel and ``arecord -D plughw:0,0 -f S16_LE -r
48000 -c 2 -d 3 in.wav`` records what the client sends through the record channel.

Example::

    tree = Tree()
    add_guest_audio(tree, "6.1.0-57-amd64")    # aplay, arecord, ALSA config, modules
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from atp_notebook.errors import LabError

if TYPE_CHECKING:
    from atp_notebook.lab.guest import Tree

APLAY = Path("/usr/bin/aplay")
ALSA_SHARE = Path("/usr/share/alsa")
# what libasound reads for hw/plughw/default names; ucm, topology and init are for
# desktop cards and mixers (2 MB) and not needed
ALSA_PARTS = ("alsa.conf", "cards", "pcm", "ctl")
# the codec driver before the controller (see the module docstring)
AUDIO_MODULES = ("snd_hda_codec_generic", "snd_hda_intel")
PACKAGE_HINT = "apt-get install alsa-utils"
AUDIO_DEVICE = "plughw:0,0"  # what tests pass to aplay/arecord -D

AUDIO_ON = """#!/bin/sh
# atp-audio-on: load the HDA sound driver; print the PCM devices once both are there.
for ko in @MODULES@; do
    name=$(basename "$ko" .ko | tr - _)
    [ -d "/sys/module/$name" ] && continue
    insmod "$ko" || { echo "atp-audio-on: insmod $ko failed" >&2; exit 1; }
done
i=0
while [ ! -c /dev/snd/pcmC0D0p ] || [ ! -c /dev/snd/pcmC0D0c ]; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
        echo "atp-audio-on: no /dev/snd/pcmC0D0p and pcmC0D0c 10 s after loading" \\
            "snd-hda-intel; does the VM have <sound model='ich6'>?" >&2
        exit 1
    fi
    sleep 0.1
done
echo pcmC0D0p pcmC0D0c
"""


def _plain_ko(relpath: str) -> str:
    return re.sub(r"\.ko\.(xz|zst|gz)$", ".ko", relpath)


def add_guest_audio(tree: Tree, version: str) -> None:
    """Add aplay/arecord, the ALSA configuration, the HDA modules of kernel ``version`` and
    ``/usr/bin/atp-audio-on`` to ``tree``."""
    from atp_notebook.lab.guest import (  # noqa: PLC0415 - guest.py imports this module
        MODULES_ROOT,
        ModuleIndex,
        add_host_path,
        ldd_paths,
        read_module,
    )

    if not APLAY.is_file() or not (ALSA_SHARE / "alsa.conf").is_file():
        raise LabError(f"{APLAY} or {ALSA_SHARE}/alsa.conf is missing: the guest's sound "
                       "needs ALSA's tools", hint=PACKAGE_HINT)
    add_host_path(tree, APLAY)
    tree.symlink("usr/bin/arecord", "aplay")
    for lib in ldd_paths(APLAY):
        add_host_path(tree, lib)
    for part in ALSA_PARTS:
        source = ALSA_SHARE / part
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() \
            else [source]
        for path in files:
            tree.file(path.as_posix().lstrip("/"), path.read_bytes())

    index = ModuleIndex.load(MODULES_ROOT / version)
    guest_root = f"{MODULES_ROOT.as_posix().lstrip('/')}/{version}"
    paths = []
    for rel in index.load_order(AUDIO_MODULES):
        target = f"{guest_root}/{_plain_ko(rel)}"
        tree.file(target, read_module(index.root / rel))
        paths.append(f"/{target}")
    script = AUDIO_ON.replace("@MODULES@", " ".join(paths))
    tree.file("usr/bin/atp-audio-on", script.encode(), 0o755)
