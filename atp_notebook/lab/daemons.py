"""The daemons the lab runs: libvirtd (unix + tcp + tls on loopback) and an sshd on :2222.

Each daemon is started with a pid file under the lab's ``run/`` directory; that file is how
``down`` knows what the lab started (it never touches a daemon it did not start), and the
executable named in ``/proc/PID/exe`` guards against a recycled pid.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atp_notebook.errors import LabError
from atp_notebook.lab.paths import (
    LIBVIRT_TCP_PORT,
    LIBVIRT_TLS_PORT,
    LOOPBACK,
    SSH_PORT,
    LabPaths,
)
from atp_notebook.lab.system import check_ports_free

log = logging.getLogger("atp.lab")

LIBVIRTD = "/usr/sbin/libvirtd"
SSHD = "/usr/sbin/sshd"
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
LIBVIRT_SOCKET = Path("/run/libvirt/libvirt-sock")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def pid_alive(pid: int, executable: str | None = None) -> bool:
    """True if ``pid`` runs (and, when given, runs ``executable``); zombies count as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # the state letter follows the parenthesised command name
    if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
        return False
    if executable is None:
        return True
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return exe.removesuffix(" (deleted)") == executable


def processes_running(executable: str) -> list[int]:
    """Pids of every live process whose executable is ``executable``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_alive(int(entry.name), executable):
            pids.append(int(entry.name))
    return sorted(pids)


@dataclass(frozen=True)
class Daemon:
    """A daemon of the lab, known by its pid file."""

    name: str
    executable: str
    pid_file: Path

    def pid(self) -> int | None:
        """The pid from our pid file if that process is alive and is this daemon."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid, self.executable) else None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        log.info("stopping %s (pid %d)", self.name, pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def libvirtd(paths: LabPaths) -> Daemon:
    return Daemon("libvirtd", LIBVIRTD, paths.run_dir / "libvirtd.pid")


def sshd(paths: LabPaths) -> Daemon:
    return Daemon("sshd", SSHD, paths.run_dir / "sshd.pid")


# --- configuration files ---------------------------------------------------------------


def libvirtd_conf(paths: LabPaths) -> str:
    pki = paths.libvirt_server_pki
    return f"""\
# Written by atp-lab; changes are overwritten by `atp-lab up`.
listen_tcp = 1
listen_tls = 1
listen_addr = "{LOOPBACK}"
tcp_port = "{LIBVIRT_TCP_PORT}"
tls_port = "{LIBVIRT_TLS_PORT}"
# The lab listens on loopback only; tests exercise the transports, not libvirt's auth.
auth_tcp = "none"
auth_tls = "none"
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_rw_perms = "0700"
ca_file = "{pki / 'cacert.pem'}"
cert_file = "{pki / 'servercert.pem'}"
key_file = "{pki / 'serverkey.pem'}"
log_outputs = "3:file:{paths.log_dir / 'libvirtd.log'}"
"""


def qemu_conf(paths: LabPaths) -> str:
    return f"""\
# Written by atp-lab; changes are overwritten by `atp-lab up`.
# Run QEMU as root without confinement or cgroups: the lab runs in containers and VMs
# that have neither a security module nor a writable cgroup tree.
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
remember_owner = 0
# QEMU's stdout/stderr go to a plain file, so the lab does not need virtlogd.
stdio_handler = "file"
spice_listen = "{LOOPBACK}"
spice_tls = 1
spice_tls_x509_cert_dir = "{paths.spice_pki}"
"""


def sshd_conf(paths: LabPaths) -> str:
    return f"""\
# Written by atp-lab; changes are overwritten by `atp-lab up`.
Port {SSH_PORT}
ListenAddress {LOOPBACK}
HostKey {paths.ssh_dir / 'ssh_host_ed25519_key'}
PidFile {sshd(paths).pid_file}
AuthorizedKeysFile {paths.ssh_dir / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
"""


# --- starting --------------------------------------------------------------------------


def wait_until(
    ready: Callable[[], bool], what: str, log_file: Path | None, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    where = f"; see {log_file}" if log_file else ""
    raise LabError(f"{what} did not become ready within {timeout:.0f} s{where}")


def _unix_socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def tcp_answers(port: int, banner: bytes = b"") -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            return not banner or sock.recv(len(banner)) == banner
    except OSError:
        return False


def start_libvirtd(paths: LabPaths) -> int:
    """Start our libvirtd; refuse if another libvirtd or a port holder is in the way."""
    daemon = libvirtd(paths)
    foreign = processes_running(LIBVIRTD)
    if foreign:
        raise LabError(
            f"a libvirtd that atp-lab did not start is running (pid {foreign[0]})",
            hint="stop it (`systemctl stop libvirtd.service 'libvirtd*.socket'`, or kill "
            f"{foreign[0]}) so the lab can run its own, then run `atp-lab up` again",
        )
    check_ports_free({LIBVIRT_TCP_PORT: "libvirtd tcp", LIBVIRT_TLS_PORT: "libvirtd tls"})
    conf = paths.etc_dir / "libvirtd.conf"
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    run_daemonizing([LIBVIRTD, "--daemon", "--listen", "--config", str(conf),
                      "--pid-file", str(daemon.pid_file)], "libvirtd")
    wait_until(
        lambda: daemon.pid() is not None
        and _unix_socket_answers(LIBVIRT_SOCKET)
        and tcp_answers(LIBVIRT_TCP_PORT)
        and tcp_answers(LIBVIRT_TLS_PORT),
        "libvirtd",
        paths.log_dir / "libvirtd.log",
        START_TIMEOUT_S,
    )
    pid = daemon.pid()
    assert pid is not None
    log.info("libvirtd started (pid %d)", pid)
    return pid


def start_sshd(paths: LabPaths) -> int:
    daemon = sshd(paths)
    check_ports_free({SSH_PORT: "sshd for qemu+ssh"})
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    conf = paths.etc_dir / "sshd_config"
    run_daemonizing([SSHD, "-f", str(conf), "-E", str(paths.log_dir / "sshd.log")], "sshd")
    wait_until(
        lambda: daemon.pid() is not None and tcp_answers(SSH_PORT, b"SSH-"),
        "sshd",
        paths.log_dir / "sshd.log",
        START_TIMEOUT_S,
    )
    pid = daemon.pid()
    assert pid is not None
    log.info("sshd started (pid %d)", pid)
    return pid


def run_daemonizing(argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
    """Run a daemon that forks itself into the background; its parent must exit 0."""
    try:
        proc = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
            start_new_session=True,  # the daemon must not die with our terminal
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is missing", hint="run `atp-lab up` as root so it "
                       "installs its Debian packages") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{name} did not detach within {START_TIMEOUT_S:.0f} s") from exc
    if proc.returncode != 0:
        raise LabError(f"{name} failed to start (exit {proc.returncode}): {proc.stderr.strip()}")


def run_tool(
    argv: list[str], stdin: str = "", *, umask: int = -1
) -> subprocess.CompletedProcess[str]:
    """Run a short command line tool; a missing or hanging tool is a :class:`LabError`.

    ``umask`` (default: inherit ours) limits the modes of the files the tool creates: a
    tool that writes a secret gets 0o077, so the file is private from its first byte.
    """
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=START_TIMEOUT_S, check=False, umask=umask)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is missing", hint="run `atp-lab up` as root so it "
                       "installs its Debian packages") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{argv[0]} did not finish within {START_TIMEOUT_S:.0f} s") from exc
