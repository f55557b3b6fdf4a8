"""The guest image builder without booting anything: cpio bytes, module order, the image."""

from __future__ import annotations

import gzip
import lzma
import re
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from atp_notebook.errors import LabError
from atp_notebook.lab import guest
from atp_notebook.lab.guest import (
    CpioEntry,
    GuestImage,
    ModuleIndex,
    Tree,
    build_guest,
    busybox_links,
    module_name,
    pick_kernel,
    read_module,
    write_cpio,
)
from atp_notebook.lab.guest_audio import AUDIO_MODULES

# --- a small newc reader, independent of the writer ----------------------------------------

FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
          "rdevmajor", "rdevminor", "namesize", "check")


@dataclass
class Member:
    offset: int
    name: str
    fields: dict[str, int]
    data: bytes


def read_newc(blob: bytes) -> list[Member]:
    members: list[Member] = []
    pos = 0
    while True:
        assert pos % 4 == 0, f"header at {pos} not 4-aligned"
        assert blob[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        raw = blob[pos + 6 : pos + 110]
        fields = {k: int(raw[i * 8 : i * 8 + 8], 16) for i, k in enumerate(FIELDS)}
        name_end = pos + 110 + fields["namesize"]
        assert blob[name_end - 1] == 0, "name not NUL-terminated"
        name = blob[pos + 110 : name_end - 1].decode()
        data_start = name_end + (-name_end % 4)
        assert blob[name_end:data_start] == b"\0" * (data_start - name_end)
        data_end = data_start + fields["filesize"]
        members.append(Member(pos, name, fields, blob[data_start:data_end]))
        pos = data_end + (-data_end % 4)
        if name == "TRAILER!!!":
            assert pos == len(blob), "bytes after the trailer"
            return members


def small_tree() -> Tree:
    tree = Tree()
    tree.file("etc/motd", b"hello\n")  # 6 bytes: data needs 2 bytes of padding
    tree.file("bin/tool", b"#!/bin/sh\n", 0o755)
    tree.symlink("bin/sh", "/bin/busybox")
    tree.chardev("dev/console", 5, 1)
    tree.chardev("dev/null", 1, 3, 0o666)
    tree.dir("tmp", 0o1777)
    return tree


# --- cpio ---------------------------------------------------------------------------------


def test_cpio_bytes_of_one_file() -> None:
    blob = write_cpio([CpioEntry("a", stat.S_IFREG | 0o644, b"xyz")])
    # 110-byte header + "a\0" = 112 (aligned); data 3 bytes + 1 pad.
    expected = (b"070701" + b"00000001" + b"000081A4" + b"00000000" * 2 + b"00000001"
                + b"00000000" + b"00000003" + b"00000000" * 4 + b"00000002" + b"00000000"
                + b"a\0" + b"xyz\0")
    assert blob.startswith(expected)
    trailer = blob[len(expected):]
    assert trailer[:6] == b"070701"
    assert trailer[110:121] == b"TRAILER!!!\0"
    assert len(blob) % 4 == 0


def test_cpio_tree_round_trip_and_alignment() -> None:
    members = read_newc(write_cpio(small_tree().entries()))
    names = [m.name for m in members]
    assert names == ["bin", "bin/sh", "bin/tool", "dev", "dev/console", "dev/null", "etc",
                     "etc/motd", "tmp", "TRAILER!!!"]
    by_name = {m.name: m for m in members}
    for m in members:
        assert m.offset % 4 == 0
        assert m.fields["mtime"] == 0 and m.fields["uid"] == 0 and m.fields["gid"] == 0
    assert by_name["etc/motd"].data == b"hello\n"
    assert by_name["etc/motd"].fields["mode"] == stat.S_IFREG | 0o644
    assert by_name["bin/tool"].fields["mode"] == stat.S_IFREG | 0o755
    assert by_name["tmp"].fields["mode"] == stat.S_IFDIR | 0o1777
    assert by_name["bin"].fields["mode"] == stat.S_IFDIR | 0o755  # implied parent
    # inode numbers are unique, so nothing is mistaken for a hard link
    inos = [m.fields["ino"] for m in members[:-1]]
    assert len(set(inos)) == len(inos)


def test_cpio_device_nodes_and_symlinks() -> None:
    by_name = {m.name: m for m in read_newc(write_cpio(small_tree().entries()))}
    console = by_name["dev/console"].fields
    assert stat.S_ISCHR(console["mode"])
    assert (console["rdevmajor"], console["rdevminor"]) == (5, 1)
    assert console["filesize"] == 0
    null = by_name["dev/null"].fields
    assert (null["rdevmajor"], null["rdevminor"], stat.S_IMODE(null["mode"])) == (1, 3, 0o666)
    link = by_name["bin/sh"]
    assert stat.S_ISLNK(link.fields["mode"])
    assert link.data == b"/bin/busybox"


def test_gnu_cpio_reads_the_archive(tmp_path: Path) -> None:
    cpio = shutil.which("cpio")
    assert cpio is not None, "GNU cpio is needed for this test: apt-get install cpio"
    blob = write_cpio(small_tree().entries())
    out = subprocess.run([cpio, "-itv"], input=blob, capture_output=True, check=True)
    listing = out.stdout.decode()
    assert "bin/sh -> /bin/busybox" in listing
    console = next(line for line in listing.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console
    assert "premature" not in out.stderr.decode()
    # and extracting gives back the file contents
    subprocess.run([cpio, "-id", "--quiet", "etc/motd"], input=blob, cwd=tmp_path, check=True)
    assert (tmp_path / "etc/motd").read_bytes() == b"hello\n"


def test_tree_rejects_conflicts() -> None:
    tree = Tree()
    tree.file("a", b"1")
    tree.file("a", b"1")  # the same entry twice is fine
    with pytest.raises(LabError, match="/a"):
        tree.file("a", b"2")
    tree.symlink("lib", "usr/lib")
    tree.file("lib/x", b"")
    with pytest.raises(LabError, match="not a directory"):
        tree.entries()


# --- kernel modules -------------------------------------------------------------------------

# Lines as in Debian 12's modules.dep (shortened: V/ G/ C/ are directories), shuffled, with
# compressed, dashed and cyclic made-up ones.
MODULES_DEP = (
    """\
C/virtio_console.ko: V/virtio.ko V/virtio_ring.ko
V/virtio_pci.ko: V/virtio_pci_legacy_dev.ko V/virtio_pci_modern_dev.ko V/virtio.ko V/virtio_ring.ko
V/virtio.ko: V/virtio_ring.ko
V/virtio_ring.ko:
V/virtio_pci_modern_dev.ko:
V/virtio_pci_legacy_dev.ko:
G/qxl/qxl.ko.xz: G/drm_ttm_helper.ko.xz G/ttm/ttm.ko.xz G/drm_kms_helper.ko.xz G/drm.ko.xz
G/drm_ttm_helper.ko.xz: G/ttm/ttm.ko.xz G/drm.ko.xz
G/drm_kms_helper.ko.xz: G/drm.ko.xz
G/ttm/ttm.ko.xz: G/drm.ko.xz
G/drm.ko.xz:
C/hw_random/virtio-rng.ko: V/virtio.ko V/virtio_ring.ko
V/virtio_input.ko: V/virtio.ko V/virtio_ring.ko
kernel/drivers/input/mouse/psmouse.ko:
kernel/drivers/input/evdev.ko:
kernel/x/loop_a.ko: kernel/x/loop_b.ko
kernel/x/loop_b.ko: kernel/x/loop_a.ko
"""
    .replace("V/", "kernel/drivers/virtio/")
    .replace("G/", "kernel/drivers/gpu/drm/")
    .replace("C/", "kernel/drivers/char/")
)


def names(paths: list[str]) -> list[str]:
    return [module_name(p) for p in paths]


def test_module_order_keeps_the_verified_virtio_order() -> None:
    index = ModuleIndex(Path("/m"), MODULES_DEP)
    assert names(index.load_order(guest.BOOT_MODULES)) == [
        "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
        "virtio_console", "evdev", "psmouse", "virtio_input"]


def test_module_order_puts_dependencies_first() -> None:
    index = ModuleIndex(Path("/m"), MODULES_DEP)
    order = names(index.load_order(["qxl"]))
    assert order[-1] == "qxl" and set(order) == set(guest.FB_MODULES)
    for module, needs in (("drm_kms_helper", "drm"), ("ttm", "drm"), ("drm_ttm_helper", "ttm")):
        assert order.index(needs) < order.index(module)
    # asked in the wrong order: still dependencies first, and nothing twice
    order = names(index.load_order(["virtio_console", "virtio_ring", "virtio_pci"]))
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_console")
    assert len(order) == len(set(order)) == 6


def test_module_names_normalise_dashes_and_compression() -> None:
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko") == "virtio_rng"
    assert module_name("kernel/drivers/gpu/drm/drm.ko.xz") == "drm"
    index = ModuleIndex(Path("/m"), MODULES_DEP)
    assert index.load_order(["virtio-rng"])[-1] == "kernel/drivers/char/hw_random/virtio-rng.ko"


def test_missing_module_names_module_and_file() -> None:
    index = ModuleIndex(Path("/lib/modules/9.9"), MODULES_DEP)
    with pytest.raises(LabError) as info:
        index.load_order(["virtio_gpu"])
    assert "virtio_gpu" in str(info.value)
    assert "/lib/modules/9.9/modules.dep" in str(info.value)


def test_dependency_cycle_is_an_error() -> None:
    with pytest.raises(LabError, match="cycle"):
        ModuleIndex(Path("/m"), MODULES_DEP).load_order(["loop_a"])


def test_read_module_decompresses_xz(tmp_path: Path) -> None:
    body = b"\x7fELF fake module" * 100
    (tmp_path / "plain.ko").write_bytes(body)
    (tmp_path / "packed.ko.xz").write_bytes(lzma.compress(body))
    (tmp_path / "packed.ko.gz").write_bytes(gzip.compress(body))
    for name in ("plain.ko", "packed.ko.xz", "packed.ko.gz"):
        assert read_module(tmp_path / name) == body
    with pytest.raises(LabError, match=re.escape("absent.ko")):
        read_module(tmp_path / "absent.ko")


# --- host inputs ----------------------------------------------------------------------------


def test_busybox_self_link_is_excluded() -> None:
    listing = "bin/sh\nbin/busybox\nsbin/init\nlinuxrc\nusr/bin/loadkmap\n"
    links = busybox_links(listing)
    assert "bin/busybox" not in links
    assert links == ["bin/sh", "linuxrc", "sbin/init", "usr/bin/loadkmap"]


def test_pick_kernel_chooses_newest_with_both_parts(tmp_path: Path) -> None:
    modules, boot = tmp_path / "modules", tmp_path / "boot"
    boot.mkdir()
    for version in ("6.1.0-9-amd64", "6.1.0-10-amd64", "6.5.0-1-amd64"):
        (modules / version).mkdir(parents=True)
        (modules / version / "modules.dep").write_text("")
    for version in ("6.1.0-9-amd64", "6.1.0-10-amd64"):  # 6.5 has modules but no kernel
        (boot / f"vmlinuz-{version}").write_bytes(b"k")
    version, vmlinuz = pick_kernel(None, modules_root=modules, boot_dir=boot)
    assert version == "6.1.0-10-amd64"
    assert vmlinuz == boot / "vmlinuz-6.1.0-10-amd64"
    with pytest.raises(LabError, match=re.escape("6.5.0-1-amd64")) as info:
        pick_kernel("6.5.0-1-amd64", modules_root=modules, boot_dir=boot)
    assert info.value.hint == "apt-get install linux-image-amd64"


def test_missing_kernel_version_is_named(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=re.escape("9.99.0-nope")) as info:
        build_guest(tmp_path, kernel_version="9.99.0-nope")
    assert "linux-image-amd64" in (info.value.hint or "")
    assert not (tmp_path / "initrd.img").exists()


# --- the real image (built from this machine's kernel, busybox and qemu-ga) -----------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[GuestImage, float]:
    started = time.monotonic()
    image = build_guest(tmp_path_factory.mktemp("guest"))
    return image, time.monotonic() - started


def test_build_is_idempotent(built: tuple[GuestImage, float]) -> None:
    image, _ = built
    before = image.initrd.stat().st_mtime_ns, image.kernel.stat().st_mtime_ns
    again = build_guest(image.initrd.parent)
    assert again == image
    # nothing was rewritten: an unchanged image is only checked
    assert (image.initrd.stat().st_mtime_ns, image.kernel.stat().st_mtime_ns) == before


def test_rebuild_after_damage_gives_identical_bytes(built: tuple[GuestImage, float]) -> None:
    image, _ = built
    original = image.initrd.read_bytes()
    image.initrd.write_bytes(b"broken")
    again = build_guest(image.initrd.parent)
    assert again.digest == image.digest
    assert image.initrd.read_bytes() == original  # deterministic output


def test_image_contents(built: tuple[GuestImage, float]) -> None:
    image, _ = built
    assert image.cmdline == "console=ttyS0 console=tty1 quiet"
    assert image.initrd.name == "initrd.img" and image.kernel.parent == image.initrd.parent
    assert stat.S_IMODE(image.initrd.stat().st_mode) == 0o644
    archive = read_newc(gzip.decompress(image.initrd.read_bytes()))
    order = [m.name for m in archive[:-1]]
    assert order == sorted(order)  # parents before children, deterministic
    members = {m.name: m for m in archive}
    busybox = members["bin/busybox"]
    assert stat.S_ISREG(busybox.fields["mode"]) and busybox.data[:4] == b"\x7fELF"
    for applet in ("bin/sh", "sbin/init", "sbin/insmod", "sbin/loadkmap", "bin/hostname"):
        assert members[applet].data == b"/bin/busybox", applet
    init = members["init"]
    assert init.fields["mode"] == stat.S_IFREG | 0o755
    assert b"@" + b"BOOT_MODULES@" not in init.data
    assert b"org.qemu.guest_agent.0" in init.data and b"com.atp.test.0" in init.data
    assert members["usr/bin/atp-fb-on"].data == b"/init"
    assert members["dev/console"].fields["rdevmajor"] == 5
    assert members["var/run"].data == b"/run"
    assert stat.S_ISREG(members["usr/sbin/qemu-ga"].fields["mode"])
    # the loader, reachable through the same symlinks as on the host
    assert any(n.endswith("ld-linux-x86-64.so.2") and stat.S_ISREG(m.fields["mode"])
               for n, m in members.items())
    assert any(n.endswith("/libglib-2.0.so.0") for n in members)
    for name in ("us", "de", "fr"):
        assert members[f"usr/share/keymaps/{name}.bmap"].data.startswith(b"bkeymap")
    kos = [n for n in members if n.endswith(".ko")]
    # the HDA sound modules (lab/guest_audio.py) come with what they need
    version = kos[0].split("/")[3]
    sound = guest.ModuleIndex.load(guest.MODULES_ROOT / version).load_order(AUDIO_MODULES)
    assert {module_name(n) for n in kos} == set(guest.BOOT_MODULES) | set(guest.FB_MODULES) \
        | {module_name(p) for p in sound}
    assert b"-/bin/sh" in members["etc/inittab"].data
