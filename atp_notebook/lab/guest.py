"""Build the lab's guest: the host's kernel plus a small busybox initramfs.

The lab VMs boot from a kernel and an initramfs, no disk.  The initramfs holds busybox, qemu-ga
and its libraries, virtio and qxl modules, keymaps and ``templates/guest-init.sh`` as /init,
all taken from this machine, so the guest always matches the installed kernel.

:func:`build_guest` first assembles the whole archive in memory and hashes it; when
``guest_dir`` already holds an image with that digest it returns it untouched, so re-running
``atp-lab up`` is cheap and leaves running VMs alone.  Output is deterministic (sorted entries,
mtime 0, fixed inode numbers, gzip without timestamp).

Example::

    image = build_guest(LabPaths.default().guest_dir)
    print(image.kernel, image.initrd, image.cmdline, image.digest)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from atp_notebook.errors import LabError
from atp_notebook.lab.files import write_atomic
from atp_notebook.lab.guest_audio import add_guest_audio
from atp_notebook.lab.guest_programs import add_guest_programs
from atp_notebook.lab.guest_webdav import add_guest_webdav
from atp_notebook.lab.paths import AGENT_PORT_NAME, TEST_PORT_NAME

log = logging.getLogger(__name__)

# Part of the digest: bump it when the output changes in a way the archive does not show.
IMAGE_FORMAT = "atp-guest-1"
BASE_CMDLINE = "console=ttyS0 console=tty1 quiet"

MODULES_ROOT = Path("/usr/lib/modules")
BOOT_DIR = Path("/boot")
BUSYBOX = Path("/bin/busybox")
QEMU_GA = Path("/usr/sbin/qemu-ga")
KEYMAP_DIR = Path("/usr/share/keymaps/i386")
# guest name -> host keymap, compiled with ``loadkeys -b`` for busybox ``loadkmap``
KEYMAPS = {
    "us": "qwerty/us.kmap.gz",
    "de": "qwertz/de-latin1-nodeadkeys.kmap.gz",
    "fr": "azerty/fr-latin1.kmap.gz",
}
# Loaded at boot, in this order (verified; load_order() keeps it and adds anything missing).
# evdev + psmouse + virtio_input: the guest's pointer devices, so tests can read what a
# Spice click did from /dev/input (psmouse before the tablet: the last device the guest
# enables decides whether QEMU's pointer is absolute).
BOOT_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                "virtio_pci", "virtio_console", "evdev", "psmouse", "virtio_input")
# Loaded by /usr/bin/atp-fb-on only.
FB_MODULES = ("drm", "drm_kms_helper", "ttm", "drm_ttm_helper", "qxl")

KERNEL_FILE = "vmlinuz"
INITRD_FILE = "initrd.img"
STAMP_FILE = "image.json"


@dataclass(frozen=True)
class GuestImage:
    """A built guest: what libvirt's ``<os>`` element needs."""

    kernel: Path  # copy of the kernel in guest_dir
    initrd: Path  # guest_dir / "initrd.img" (gzip'd newc cpio)
    cmdline: str  # base kernel command line; the lab appends atp.hostname=<vm>
    digest: str  # sha256 over all inputs; same inputs -> same digest


# --- the newc cpio archive -------------------------------------------------------------


@dataclass(frozen=True)
class CpioEntry:
    """One archive member.  ``path`` is relative ("bin/sh"); ``data`` is a file's contents
    or a symlink's target."""

    path: str
    mode: int  # st_mode including the file type bits
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node


def write_cpio(entries: Iterable[CpioEntry]) -> bytes:
    """The entries as a newc ("070701") archive, in the order given, with a trailer.

    Every header field is 8 hex digits; header plus name, and the data, are each padded to a
    multiple of 4 bytes.  Inode numbers count up from 1 (the trailer's is 0, as GNU cpio
    writes it); owners are root; mtime is 0.
    """
    out = bytearray()

    def member(ino: int, e: CpioEntry) -> None:
        name = e.path.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(e.mode) else 1
        fields = (ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, *e.rdev, len(name), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.extend(header + name + b"\0" * (-(len(header) + len(name)) % 4))
        out.extend(e.data + b"\0" * (-len(e.data) % 4))

    for ino, entry in enumerate(entries, start=1):
        member(ino, entry)
    member(0, CpioEntry("TRAILER!!!", 0))
    return bytes(out)


class Tree:
    """The initramfs contents by path; parent directories are implied.

    Adding the same path twice is allowed only with the same contents, so two sources (say an
    applet link and a real file) cannot silently overwrite each other.
    """

    def __init__(self) -> None:
        self._entries: dict[str, CpioEntry] = {}

    def add(self, entry: CpioEntry) -> None:
        path = entry.path.strip("/")
        entry = CpioEntry(path, entry.mode, entry.data, entry.rdev)
        old = self._entries.get(path)
        if old is not None and old != entry:
            raise LabError(f"guest image: two different entries for /{path}")
        self._entries[path] = entry

    def dir(self, path: str, perm: int = 0o755) -> None:
        self.add(CpioEntry(path, stat.S_IFDIR | perm))

    def file(self, path: str, data: bytes, perm: int = 0o644) -> None:
        self.add(CpioEntry(path, stat.S_IFREG | perm, data))

    def symlink(self, path: str, target: str) -> None:
        self.add(CpioEntry(path, stat.S_IFLNK | 0o777, target.encode()))

    def chardev(self, path: str, major: int, minor: int, perm: int = 0o600) -> None:
        self.add(CpioEntry(path, stat.S_IFCHR | perm, rdev=(major, minor)))

    def entries(self) -> list[CpioEntry]:
        """All entries with their parent directories, sorted by path.

        Sorting by path puts every directory before what it contains (a prefix sorts
        first), which is all the kernel's unpacker needs.
        """
        result = dict(self._entries)
        for path in self._entries:
            parts = path.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                have = result.get(parent)
                if have is None:
                    result[parent] = CpioEntry(parent, stat.S_IFDIR | 0o755)
                elif not stat.S_ISDIR(have.mode):
                    raise LabError(f"guest image: /{path} lies under /{parent}, not a directory")
        return [result[p] for p in sorted(result)]


# --- host inputs -------------------------------------------------------------------------


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+~]", version))


def pick_kernel(
    version: str | None, *, modules_root: Path = MODULES_ROOT, boot_dir: Path = BOOT_DIR
) -> tuple[str, Path]:
    """The kernel version to use and its vmlinuz: ``version``, or the newest installed one
    that has both modules and a kernel image."""
    hint = "apt-get install linux-image-amd64"
    if version is not None:
        vmlinuz = boot_dir / f"vmlinuz-{version}"
        for needed in (modules_root / version / "modules.dep", vmlinuz):
            if not needed.is_file():
                raise LabError(f"kernel {version}: {needed} does not exist", hint=hint)
        return version, vmlinuz
    found = sorted(
        (d.name for d in modules_root.glob("*")
         if (d / "modules.dep").is_file() and (boot_dir / f"vmlinuz-{d.name}").is_file()),
        key=_version_key,
    )
    if not found:
        raise LabError(f"no kernel has both {modules_root}/VERSION/modules.dep and "
                       f"{boot_dir}/vmlinuz-VERSION", hint=hint)
    return found[-1], boot_dir / f"vmlinuz-{found[-1]}"


def module_name(relpath: str) -> str:
    """``kernel/drivers/char/hw_random/virtio-rng.ko.xz`` -> ``virtio_rng``."""
    base = re.sub(r"\.ko(\.xz|\.zst|\.gz)?$", "", relpath.rsplit("/", 1)[-1])
    return base.replace("-", "_")


class ModuleIndex:
    """A kernel's modules.dep: which file each module is, and what it needs."""

    def __init__(self, root: Path, dep_text: str) -> None:
        self.root = root
        self.deps: dict[str, list[str]] = {}
        self.by_name: dict[str, str] = {}
        for line in filter(lambda line: ":" in line, dep_text.splitlines()):
            path, _, needs = line.partition(":")
            self.deps[path] = needs.split()
            self.by_name[module_name(path)] = path

    @classmethod
    def load(cls, root: Path) -> ModuleIndex:
        return cls(root, (root / "modules.dep").read_text())

    def load_order(self, names: Sequence[str]) -> list[str]:
        """modules.dep paths of ``names`` and everything they need, dependencies first.

        A depth-first walk in the order asked for, so an order that already works is kept.
        modules.dep lists a module's needs with the deepest last (modprobe loads them in
        reverse), hence the reversed() for a natural order.
        """
        order: list[str] = []
        visiting: set[str] = set()

        def visit(path: str) -> None:
            if path in order:
                return
            if path in visiting:
                raise LabError(f"{self.root}/modules.dep: dependency cycle through {path}")
            visiting.add(path)
            for dep in reversed(self.deps.get(path, [])):
                visit(dep)
            visiting.discard(path)
            order.append(path)

        for name in names:
            path = self.by_name.get(name.replace("-", "_"))
            if path is None:
                raise LabError(
                    f"kernel module {name} is not in {self.root}/modules.dep",
                    hint="the lab needs it built as a module; apt-get install linux-image-amd64",
                )
            visit(path)
        return order


def read_module(path: Path) -> bytes:
    """A module file's contents, uncompressed (busybox insmod takes plain .ko only)."""
    if not path.is_file():
        raise LabError(f"kernel module file {path} (from modules.dep) does not exist",
                       hint="reinstall the kernel: apt-get install --reinstall linux-image-amd64")
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        # Python 3.11 has no zstd module; the zstd tool is the one way out.
        return _run(["zstd", "-dcq"], f"{path} is zstd-compressed: apt-get install zstd", data)
    return data


def busybox_links(list_full: str) -> list[str]:
    """Applet paths from ``busybox --list-full``, without busybox itself: a link
    ``bin/busybox -> /bin/busybox`` would loop (ELOOP) and hide the binary."""
    return sorted({p.strip().strip("/") for p in list_full.splitlines()}
                  - {"", BUSYBOX.as_posix().strip("/")})


def ldd_paths(binary: Path) -> list[Path]:
    """The shared libraries and dynamic loader ``binary`` needs, as ldd names them."""
    out = _run(["ldd", str(binary)], "apt-get install libc-bin").decode().splitlines()
    paths: list[Path] = []
    for line in out:
        if "not found" in line:
            raise LabError(f"{binary}: library {line.split()[0]} not found (ldd)",
                           hint="apt-get install --reinstall qemu-guest-agent")
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            paths.append(Path(m.group(1)))
    return paths


def add_host_path(tree: Tree, path: Path, *, depth: int = 0) -> None:
    """Copy a host file into the tree at the same path, recreating every symlink on the way.

    Debian's /lib, /lib64 and the loader are symlinks (merged /usr); copying them as links
    keeps the guest's layout the same as the host's, so the names ldd printed resolve.
    """
    if depth > 20:
        raise LabError(f"too many levels of symlinks resolving {path}")
    current = Path("/")
    for i, part in enumerate(path.parts[1:], start=1):
        current = current / part
        if current.is_symlink():
            target = os.readlink(current)
            tree.symlink(current.as_posix(), target)
            resolved = os.path.normpath(os.path.join(current.parent, target, *path.parts[i + 1 :]))
            add_host_path(tree, Path(resolved), depth=depth + 1)
            return
    tree.file(path.as_posix(), path.read_bytes(), stat.S_IMODE(path.stat().st_mode))


def compile_keymap(source: Path) -> bytes:
    """A console keymap in busybox ``loadkmap``'s binary format.

    ``loadkeys -b`` writes the map to stdout and does not need a terminal when stdin is
    /dev/null; it never touches the running console in this mode.
    """
    if not source.is_file():
        raise LabError(f"keymap {source} does not exist", hint="apt-get install console-data kbd")
    data = _run(["loadkeys", "-b", str(source)], "apt-get install kbd console-data")
    if not data.startswith(b"bkeymap"):
        raise LabError(f"loadkeys -b {source} did not print a binary keymap")
    return data


def _run(argv: list[str], hint: str, stdin: bytes = b"") -> bytes:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, check=True)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is not installed", hint=hint) from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"{' '.join(argv)} failed: {exc.stderr.decode(errors='replace').strip()}",
                       hint=hint) from exc
    return done.stdout


# --- the guest's files -------------------------------------------------------------------

# busybox init: login-less root shells on tty1 (the tests type there) and on the serial port,
# and the lab's two services; all of them are restarted when they exit.  Each shell is its own
# session with the tty as controlling terminal, so Ctrl-C reaches what runs in it.
INITTAB = """\
tty1::respawn:-/bin/sh
ttyS0::respawn:-/bin/sh
::respawn:/usr/bin/atp-qemu-ga
::respawn:/usr/bin/atp-echo
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
"""

PROFILE = """\
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
# busybox init sets TERM=vt102 for everyone because its own stdio is the serial port.
case $(tty 2>/dev/null) in /dev/tty[0-9]*) export TERM=linux ;; esac
PS1='\\h:\\w\\$ '
cd
"""

ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\ntty:x:5:\n",
    "etc/shadow": "root::0:0:99999:7:::\n",
    "etc/hostname": "atp-guest\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n",
    "etc/inittab": INITTAB,
    "etc/profile": PROFILE,
}

# The commands /init also answers to (see templates/guest-init.sh).
INIT_COMMANDS = ("atp-qemu-ga", "atp-echo", "atp-link-ports", "atp-fb-on", "atp-fb-show",
                 "atp-fb-animate", "atp-recv", "atp-agent-off")


def render_init(boot_modules: Sequence[str], fb_modules: Sequence[str]) -> str:
    """The guest's /init with the module paths and port names filled in."""
    text = resources.files("atp_notebook.lab").joinpath("templates/guest-init.sh").read_text()
    values = {"BOOT_MODULES": " ".join(boot_modules), "FB_MODULES": " ".join(fb_modules),
              "AGENT_PORT": AGENT_PORT_NAME, "TEST_PORT": TEST_PORT_NAME}
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    leftover = re.search(r"@[A-Z_]+@", text)
    if leftover:
        raise LabError(f"guest-init.sh: placeholder {leftover.group()} has no value")
    return text


def _plain_ko(relpath: str) -> str:
    return re.sub(r"\.ko\.(xz|zst|gz)$", ".ko", relpath)


def add_modules(tree: Tree, index: ModuleIndex, version: str) -> tuple[list[str], list[str]]:
    """Put the boot and framebuffer modules into the tree, uncompressed, with a modules.dep
    of their own (so busybox modprobe works too); returns both load orders as guest paths."""
    guest_root = f"{MODULES_ROOT.as_posix()}/{version}"
    boot = index.load_order(BOOT_MODULES)
    fb = [m for m in index.load_order(FB_MODULES) if m not in boot]
    dep_lines = []
    for rel in boot + fb:
        tree.file(f"{guest_root}/{_plain_ko(rel)}", read_module(index.root / rel))
        needs = " ".join(_plain_ko(d) for d in index.deps[rel])
        dep_lines.append(f"{_plain_ko(rel)}:{' ' + needs if needs else ''}\n")
    tree.file(f"{guest_root}/modules.dep", "".join(dep_lines).encode())
    return ([f"/{guest_root}/{_plain_ko(m)}" for m in boot],
            [f"/{guest_root}/{_plain_ko(m)}" for m in fb])


def assemble(version: str) -> Tree:
    """Everything in the initramfs for kernel ``version``."""
    tree = Tree()
    for d in ("proc", "sys", "dev", "run", "etc", "var/log", "usr/share/keymaps"):
        tree.dir(d)
    tree.dir("root", 0o700)
    tree.dir("tmp", 0o1777)
    tree.symlink("var/run", "/run")
    # The kernel opens /dev/console for /init before anything is mounted.
    tree.chardev("dev/console", 5, 1, 0o600)
    tree.chardev("dev/null", 1, 3, 0o666)

    tree.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    applets = _run([str(BUSYBOX), "--list-full"], "apt-get install busybox-static").decode()
    for link in busybox_links(applets):
        tree.symlink(link, "/bin/busybox")

    add_host_path(tree, QEMU_GA)
    for lib in ldd_paths(QEMU_GA):
        add_host_path(tree, lib)

    boot, fb = add_modules(tree, ModuleIndex.load(MODULES_ROOT / version), version)

    for name, source in KEYMAPS.items():
        tree.file(f"usr/share/keymaps/{name}.bmap", compile_keymap(KEYMAP_DIR / source))
    for path, text in ETC_FILES.items():
        tree.file(path, text.encode(), 0o600 if path == "etc/shadow" else 0o644)
    tree.file("init", render_init(boot, fb).encode(), 0o755)
    for command in INIT_COMMANDS:
        tree.symlink(f"usr/bin/{command}", "/init")
    add_guest_audio(tree, version)  # aplay, arecord, HDA modules, atp-audio-on
    add_guest_programs(tree)
    add_guest_webdav(tree)  # spice-webdavd, atp-webdavd, atp-dav-request
    return tree


# --- building ----------------------------------------------------------------------------


def build_guest(guest_dir: Path, *, kernel_version: str | None = None) -> GuestImage:
    """Build (or find already built) the guest image in ``guest_dir``.

    The archive is assembled in memory first (a fraction of a second) because its hash is
    the digest; only compressing and writing are skipped when the image is current.
    """
    started = time.monotonic()
    version, vmlinuz = pick_kernel(kernel_version)
    try:
        kernel = vmlinuz.read_bytes()
        archive = write_cpio(assemble(version).entries())
    except OSError as exc:
        raise LabError(f"building the guest image: {exc}", hint="atp-lab must run as root") from exc
    digest = hashlib.sha256()
    for part in (IMAGE_FORMAT, BASE_CMDLINE, version):
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(kernel).digest())
    digest.update(hashlib.sha256(archive).digest())
    image = GuestImage(guest_dir / KERNEL_FILE, guest_dir / INITRD_FILE, BASE_CMDLINE,
                       digest.hexdigest())
    if _is_current(image):
        log.debug("guest image %s is current", image.digest[:12])
        return image

    # mtime=0 and no file name: the same archive always compresses to the same bytes.
    initrd = gzip.compress(archive, compresslevel=6, mtime=0)
    guest_dir.mkdir(parents=True, exist_ok=True)
    # written atomically: a VM starting meanwhile (or a second ``atp-lab up``) sees the old
    # file or the new one; 0644 because libvirt's QEMU runs as another user and reads them
    write_atomic(image.kernel, kernel, 0o644)
    write_atomic(image.initrd, initrd, 0o644)
    # The stamp goes last: a build cut short leaves no stamp that claims it finished.
    stamp = {"digest": image.digest, "kernel_version": version, "cmdline": image.cmdline,
             "kernel_size": len(kernel), "initrd_size": len(initrd)}
    write_atomic(guest_dir / STAMP_FILE, json.dumps(stamp, indent=2) + "\n", 0o644)
    log.info("built guest image %s for kernel %s (%d KiB) in %.1f s", image.digest[:12],
             version, len(initrd) // 1024, time.monotonic() - started)
    return image


def _is_current(image: GuestImage) -> bool:
    try:
        stamp = json.loads((image.initrd.parent / STAMP_FILE).read_text())
        return bool(stamp["digest"] == image.digest
                    and image.kernel.stat().st_size == stamp["kernel_size"]
                    and image.initrd.stat().st_size == stamp["initrd_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
