"""Small C programs of our own, compiled on the host and put into the guest image.

Some things the lab guest must do have no busybox applet: setting a hardware cursor through
DRM, say.  Their sources live in ``atp_notebook/lab/guest_src/``; :func:`add_guest_programs`
compiles each one with the host's gcc into a static binary and adds it to the initramfs as
``/usr/bin/<name>``.  Static, because the guest has only qemu-ga's libraries; deterministic
(stripped, no build id, the source fed through stdin so no path is recorded), because the
image's digest decides whether ``atp-lab up`` restarts the VMs.

A new program is one more :class:`GuestProgram` in :data:`GUEST_PROGRAMS`.

Example::

    tree = Tree()
    add_guest_programs(tree)                      # /usr/bin/atp-cursor, ...
    binary = compile_program(GUEST_PROGRAMS[0])   # the ELF bytes
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from atp_notebook.errors import LabError

if TYPE_CHECKING:
    from atp_notebook.lab.guest import Tree

CC = "gcc"
# -D_GNU_SOURCE: the programs use POSIX and Linux calls; -Werror: a warning is a bug in a
# program nobody watches run.  -s and --build-id=none keep the output the same from run
# to run (measured: two builds in different directories are byte-identical).
CFLAGS = ("-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror",
          "-static", "-s", "-Wl,--build-id=none")
COMPILE_TIMEOUT_S = 120.0
PACKAGE_HINT = "apt-get install gcc libc6-dev linux-libc-dev"


@dataclass(frozen=True)
class GuestProgram:
    """One program: installed as ``/usr/bin/<name>``, built from ``guest_src/<source>``."""

    name: str
    source: str
    extra_flags: tuple[str, ...] = ()  # e.g. ("-lm",)

    def source_text(self) -> bytes:
        ref = resources.files("atp_notebook.lab").joinpath("guest_src", self.source)
        try:
            return ref.read_bytes()
        except OSError as exc:
            raise LabError(f"guest program {self.name}: source guest_src/{self.source} "
                           f"cannot be read: {exc}") from exc


GUEST_PROGRAMS: tuple[GuestProgram, ...] = (
    GuestProgram("atp-cursor", "atp-cursor.c"),
    GuestProgram("atp-fb-play", "atp-fb-play.c"),  # display_vms.DisplayGuest's animator
    GuestProgram("atp-echo-port", "atp-echo-port.c"),  # the echo service (guest-init.sh)
)


def compile_program(program: GuestProgram, *, cc: str = CC) -> bytes:
    """The static binary of ``program``, compiled now (or earlier in this process with the
    same source and flags: building the image's digest runs on every ``atp-lab up``)."""
    return compile_c(f"guest program {program.name}", program.source,
                     program.source_text(), CFLAGS, program.extra_flags, cc=cc)


@functools.lru_cache(maxsize=16)
def compile_c(label: str, source_name: str, source: bytes, flags: tuple[str, ...],
              libs: tuple[str, ...] = (), *, cc: str = CC) -> bytes:
    """``source`` (from ``guest_src/<source_name>``) compiled with ``flags`` and linked with
    ``libs``; errors are LabErrors starting with ``label``. Cached per process."""
    with tempfile.TemporaryDirectory(prefix="atp-guest-cc-") as tmp:
        out = Path(tmp) / "out"
        argv = [cc, *flags, "-x", "c", "-o", str(out), "-", *libs]
        try:
            subprocess.run(argv, input=source, capture_output=True, check=True,
                           timeout=COMPILE_TIMEOUT_S)
        except FileNotFoundError as exc:
            raise LabError(f"{label}: {cc} is not installed", hint=PACKAGE_HINT) from exc
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{label}: {cc} ran longer than "
                           f"{COMPILE_TIMEOUT_S:.0f} s") from exc
        except subprocess.CalledProcessError as exc:
            # gcc names the file <stdin>; say which one it is
            errors = exc.stderr.decode(errors="replace").strip().replace(
                "<stdin>", f"guest_src/{source_name}")
            raise LabError(f"{label}: {cc} failed (source sha256 "
                           f"{hashlib.sha256(source).hexdigest()[:12]}):\n{errors}",
                           hint=PACKAGE_HINT) from exc
        return out.read_bytes()


def add_guest_programs(tree: Tree, programs: Iterable[GuestProgram] = GUEST_PROGRAMS) -> None:
    """Compile every program and put it into ``tree`` as ``usr/bin/<name>``, mode 0755."""
    for program in programs:
        tree.file(f"usr/bin/{program.name}", compile_program(program), 0o755)
