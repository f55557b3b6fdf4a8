"""The host the lab runs on: preflight checks and Debian packages.

Every check fails with a :class:`LabError` that says what is wrong and what to do, before the
lab starts anything, so a failed ``up`` never leaves a half-started daemon behind.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

from atp_notebook.errors import LabError

log = logging.getLogger("atp.lab")

# What the lab itself needs on the host (the Python side comes from pyproject).
LAB_PACKAGES: tuple[str, ...] = (
    "qemu-system-x86",
    "qemu-utils",
    "libvirt-daemon-system",
    "libvirt-daemon-driver-qemu",
    "libvirt-clients",
    "qemu-guest-agent",
    "busybox-static",
    # the guest's aplay/arecord and ALSA configuration (lab/guest_audio.py)
    "alsa-utils",
    "linux-image-amd64",
    "openssh-server",
    "openssh-client",
    "netcat-openbsd",
    "sasl2-bin",
    "libsasl2-modules",
    "kbd",
    "console-data",
    "cpio",
    # the guest's end of Spice folder sharing (lab/guest_webdav.py); gcc builds its shim
    "spice-webdavd",
    "iproute2",
    "openssl",
    # the guest's own C programs (lab/guest_programs.py), compiled static
    "gcc",
    "libc6-dev",
    "linux-libc-dev",
)

APT_TIMEOUT_S = 1200.0


def check_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "atp-lab must run as root: it starts libvirtd, sshd and QEMU and writes "
            "/etc/libvirt/qemu.conf",
            hint="run it with sudo, or as root",
        )


def check_debian(os_release: Path = Path("/etc/os-release")) -> None:
    """The lab recipe is verified on Debian 12 (bookworm); other systems are refused."""
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(
            f"cannot read {os_release}: {exc.strerror}; atp-lab needs Debian 12",
            hint="run the lab on a Debian 12 (bookworm) machine",
        ) from exc
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    if fields.get("ID") != "debian" or fields.get("VERSION_ID") != "12":
        found = fields.get("PRETTY_NAME") or f"{fields.get('ID')} {fields.get('VERSION_ID')}"
        raise LabError(
            f"atp-lab supports Debian 12 only; this machine is {found!r} ({os_release})",
            hint="run the lab on a Debian 12 (bookworm) machine",
        )


def missing_packages(packages: Iterable[str] = LAB_PACKAGES) -> list[str]:
    """Packages that dpkg does not report as installed."""
    wanted = list(packages)
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *wanted],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    installed = {
        name for name, _, status in (ln.partition(" ") for ln in out.splitlines())
        if status == "installed"
    }
    return [p for p in wanted if p not in installed]


def ensure_packages(packages: Iterable[str] = LAB_PACKAGES) -> list[str]:
    """Install what is missing with apt-get (``update`` first); returns what was installed."""
    missing = missing_packages(packages)
    if not missing:
        return []
    log.info("installing Debian packages: %s", " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(
                f"{' '.join(argv[:2])} did not finish in {APT_TIMEOUT_S:.0f} s",
                hint="check the network and the apt sources, then run `atp-lab up` again",
            ) from exc
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise LabError(
                f"{' '.join(argv[:2])} failed (exit {proc.returncode}):\n{tail}",
                hint=f"install by hand: apt-get install {' '.join(missing)}",
            )
    return missing


def require_tool(path: str, package: str) -> str:
    found = shutil.which(path) or (path if os.access(path, os.X_OK) else None)
    if found is None:
        raise LabError(f"{path} is missing", hint=f"apt-get install {package}")
    return found


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port (a bind attempt says EADDRINUSE)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections lingering in TIME_WAIT do not count, only a listener
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def check_ports_free(ports: dict[int, str], host: str = "127.0.0.1") -> None:
    """Fail naming each port (and what the lab wanted it for) that is taken."""
    taken = [(port, what) for port, what in sorted(ports.items()) if port_in_use(port, host)]
    if taken:
        listing = ", ".join(f"{host}:{port} ({what})" for port, what in taken)
        first = taken[0][0]
        raise LabError(
            f"port(s) already in use by a process atp-lab did not start: {listing}",
            hint=f"find the owner with `ss -ltnp 'sport = :{first}'` and stop it, "
            "then run `atp-lab up` again",
        )
