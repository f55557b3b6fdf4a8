"""The Spice SASL VM ``atp-sasl``: a plain QEMU process that the lab starts and stops itself.

libvirt's ``spice_sasl`` (qemu.conf) switches SASL on for every Spice domain of the host, so
a SASL VM next to the lab's password VMs cannot be a libvirt domain. QEMU runs Spice without
libvirt just as well (DESIGN §6, verified)::

    SASL_CONF_PATH=DIR qemu-system-x86_64 ... -spice tls-port=N,addr=127.0.0.1,
        x509-dir=X509,sasl=on,disable-ticketing=on

- TLS only (no ``port=``): on a plain port spice-server offers SASL only as DIGEST-MD5 with
  auth-conf, which no Python library implements; over TLS it offers what ``mech_list`` says.
- ``DIR/qemu.conf`` (QEMU's SASL app name is ``qemu``) always sets ``mech_list``: without
  it the server also offers ANONYMOUS, which lets anyone in.
- The user is stored by ``saslpasswd2`` as ``USER@realm`` where the realm is the host name;
  the server appends the same realm to a bare user name, so clients send ``USER`` only.
- ``disable-ticketing`` does not disable SASL: it only drops the Spice ticket check.
- The x509 dir is the lab's Spice one (same CA as atp-vm2), so one ``ca_file`` serves both.

Like the daemons, the process is known by its pid file (``-daemonize -pidfile``) and
``/proc/PID/exe``. A stamp of its command line next to the pid file tells ``up`` when a
running VM was started with other settings (a new guest image) and must be restarted.
The guest agent is reachable on a UNIX socket chardev (``org.qemu.guest_agent.0``), the
same guest image as the libvirt VMs, and QMP on another socket for tests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from atp_notebook.errors import LabError
from atp_notebook.lab import daemons
from atp_notebook.lab.boot_watch import BootingGuest
from atp_notebook.lab.domains import spice_password
from atp_notebook.lab.files import ensure_mode, write_if_changed
from atp_notebook.lab.guest import GuestImage
from atp_notebook.lab.paths import AGENT_PORT_NAME, LOOPBACK, SASL_USERNAME, SASL_VM, LabPaths
from atp_notebook.lab.system import check_ports_free, require_tool

log = logging.getLogger("atp.lab")

QEMU = "/usr/bin/qemu-system-x86_64"
SASLPASSWD2 = "/usr/sbin/saslpasswd2"
MEMORY_MIB = 128
PROBE_TIMEOUT_S = 2.0
# Bumped when the command line changes in a way the argv stamp does not show.
REVISION = "1"


@dataclass(frozen=True)
class SaslVmFiles:
    """Every file of the SASL VM, derived from the lab's paths."""

    sasl_conf: Path  # Cyrus SASL config of the app "qemu"
    sasl_db: Path  # the sasldb user database
    sasl_db_stamp: Path  # what the database was made for (user, password, realm)
    password: Path  # the SASL password, 0600 in the lab's secrets dir
    pid_file: Path
    argv_stamp: Path  # the command line the running process was started with
    agent_socket: Path
    qmp_socket: Path
    console_log: Path

    @classmethod
    def at(cls, paths: LabPaths) -> SaslVmFiles:
        name = SASL_VM.name
        return cls(
            sasl_conf=paths.sasl_dir / "qemu.conf",
            sasl_db=paths.sasl_dir / "passwd.db",
            sasl_db_stamp=paths.sasl_dir / "passwd.stamp",
            password=paths.spice_password_file(name),
            pid_file=paths.run_dir / f"{name}.pid",
            argv_stamp=paths.run_dir / f"{name}.argv",
            agent_socket=paths.run_dir / f"{name}.qga.sock",
            qmp_socket=paths.run_dir / f"{name}.qmp.sock",
            console_log=paths.console_log(name),
        )


def process(paths: LabPaths) -> daemons.Daemon:
    """The VM's QEMU as a :class:`~atp_notebook.lab.daemons.Daemon` (pid file, stop)."""
    return daemons.Daemon(SASL_VM.name, QEMU, SaslVmFiles.at(paths).pid_file)


def sasl_conf(paths: LabPaths) -> str:
    return f"""\
# Written by atp-lab; changes are overwritten by `atp-lab up`.
# mech_list is always set: without it spice-server also offers ANONYMOUS.
mech_list: scram-sha-256 plain
sasldb_path: {SaslVmFiles.at(paths).sasl_db}
"""


def _opt(path: Path) -> str:
    """A path inside a QEMU ``-opt a=b,c=d`` value, where a comma is written twice."""
    return str(path).replace(",", ",,")


def qemu_argv(paths: LabPaths, guest: GuestImage) -> list[str]:
    files = SaslVmFiles.at(paths)
    port = SASL_VM.spice_tls_port
    spice = (f"tls-port={port},addr={LOOPBACK},x509-dir={_opt(paths.spice_pki)},"
             "sasl=on,disable-ticketing=on")
    return [
        QEMU, "-name", f"{SASL_VM.name},process={SASL_VM.name}",
        # -nodefaults: no NIC (no option ROM to find), no default monitor or parallel port
        "-nodefaults", "-no-user-config",
        "-machine", "pc", "-accel", "tcg", "-m", str(MEMORY_MIB), "-smp", "1",
        "-display", "none", "-vga", "qxl",
        "-spice", spice,
        "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
        "-append", f"{guest.cmdline} atp.hostname={SASL_VM.name}",
        "-serial", f"file:{_opt(files.console_log)}",
        "-chardev", f"socket,id=qga0,path={_opt(files.agent_socket)},server=on,wait=off",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", f"virtserialport,bus=vser0.0,chardev=qga0,name={AGENT_PORT_NAME}",
        "-qmp", f"unix:{_opt(files.qmp_socket)},server=on,wait=off",
        # a tablet as on the libvirt VMs: Spice's client mouse mode needs one
        "-device", "virtio-tablet-pci",
        "-daemonize", "-pidfile", str(files.pid_file),
    ]


def _stamp(argv: list[str], guest: GuestImage) -> str:
    # the kernel and initrd paths stay the same when the image changes: add its digest
    return json.dumps({"argv": argv, "guest": guest.digest, "revision": REVISION}) + "\n"


def ensure_user(paths: LabPaths, password: str) -> bool:
    """Make the sasldb hold the lab's user with ``password``; True if it was (re)written.

    The realm is the host name at the time ``saslpasswd2`` runs, and the server looks the
    user up under its host name at each login: a renamed host needs the user again, so the
    stamp covers the host name too (and the password, hashed).
    """
    files = SaslVmFiles.at(paths)
    want = hashlib.sha256(
        f"{SASL_USERNAME}\0{password}\0{socket.gethostname()}".encode()
    ).hexdigest()
    try:
        if files.sasl_db.exists() and files.sasl_db_stamp.read_text().strip() == want:
            return False
    except OSError:
        pass
    require_tool(SASLPASSWD2, "sasl2-bin")
    # -p: the password comes from stdin (never argv, which /proc shows to everyone);
    # -c: create the user, or set the password of an existing one
    proc = daemons.run_tool(
        [SASLPASSWD2, "-p", "-c", "-a", "qemu", "-f", str(files.sasl_db), SASL_USERNAME],
        stdin=password, umask=0o077,
    )
    if proc.returncode != 0:
        raise LabError(f"saslpasswd2 could not add the SASL user: {proc.stderr.strip()}",
                       hint="apt-get install sasl2-bin libsasl2-modules")
    # a new database is 0600 from the start (the umask above); one an older lab made keeps
    # the mode it had, as saslpasswd2 updates it in place: repair that
    ensure_mode(files.sasl_db, 0o600)
    write_if_changed(files.sasl_db_stamp, want + "\n", 0o600)
    log.info("SASL user %s written to %s", SASL_USERNAME, files.sasl_db)
    return True


def ensure_running(paths: LabPaths, guest: GuestImage, *, restart: bool = False) -> str | None:
    """Start the VM unless it runs with today's settings: "started", "restarted" or None.

    ``restart`` forces a restart of a running VM (QEMU reads its Spice certificate at
    start only). The SASL user database is read at each login and needs no restart.
    """
    files = SaslVmFiles.at(paths)
    paths.sasl_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ensure_mode(paths.sasl_dir, 0o700)
    files.console_log.parent.mkdir(parents=True, exist_ok=True)
    password = spice_password(paths, SASL_VM)
    assert password is not None  # SASL_VM.spice_password is set
    conf_changed = write_if_changed(files.sasl_conf, sasl_conf(paths), 0o600)
    ensure_user(paths, password)

    argv = qemu_argv(paths, guest)
    stamp = _stamp(argv, guest)
    qemu = process(paths)
    restarted = False
    if qemu.pid() is not None:
        try:
            same = files.argv_stamp.read_text() == stamp
        except OSError:
            same = False
        if restart or conf_changed or not same:
            log.info("%s runs with older settings: restarting it", SASL_VM.name)
            stop(paths)
            restarted = True
    if qemu.pid() is not None:
        return None
    start(paths, argv)
    write_if_changed(files.argv_stamp, stamp, 0o644)
    return "restarted" if restarted else "started"


def start(paths: LabPaths, argv: list[str]) -> int:
    port = SASL_VM.spice_tls_port
    assert port is not None
    check_ports_free({port: f"Spice TLS of {SASL_VM.name}"})
    log.info("starting %s", SASL_VM.name)
    # QEMU's -daemonize parent exits only once the child is set up (Spice listening, pid
    # file written), and reports any start error on its own stderr before that.
    daemons.run_daemonizing(argv, SASL_VM.name,
                            env={**os.environ, "SASL_CONF_PATH": str(paths.sasl_dir)})
    qemu = process(paths)
    daemons.wait_until(lambda: qemu.pid() is not None and daemons.tcp_answers(port),
                       SASL_VM.name, SaslVmFiles.at(paths).console_log,
                       daemons.START_TIMEOUT_S)
    pid = qemu.pid()
    assert pid is not None
    log.info("%s started (pid %d)", SASL_VM.name, pid)
    return pid


def stop(paths: LabPaths) -> bool:
    """Stop the VM if the lab's pid file names a live QEMU; True if it was running."""
    stopped = process(paths).stop()
    files = SaslVmFiles.at(paths)
    for path in (files.agent_socket, files.qmp_socket, files.argv_stamp):
        path.unlink(missing_ok=True)
    return stopped


# --- probes (status, and waiting in up) ------------------------------------------------


def agent_answers(paths: LabPaths, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if the guest agent answers ``guest-sync-delimited`` and ``guest-ping`` in time.

    The socket may hold the tail of a former client's exchange: the 0xFF byte sent first
    resets qemu-ga's JSON parser, and the agent puts 0xFF before its sync answer, so
    anything before that marker is skipped (the qemu-ga protocol's own resync recipe).
    """
    token = secrets.randbelow(2**31)
    sync = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
    request = b"\xff" + json.dumps(sync).encode() + b"\n{\"execute\": \"guest-ping\"}\n"
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(SaslVmFiles.at(paths).agent_socket))
            sock.sendall(request)
            buf = b""
            while time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                buf += chunk
                _, marker, answers = buf.rpartition(b"\xff")
                lines = answers.split(b"\n")
                if marker and len(lines) >= 3:  # sync answer, ping answer, rest
                    synced: bool = json.loads(lines[0]) == {"return": token}
                    return synced and json.loads(lines[1]) == {"return": {}}
    except (OSError, ValueError):
        return False
    return False


def reset(paths: LabPaths, timeout: float = PROBE_TIMEOUT_S) -> None:
    """A hardware reset through the VM's QMP socket (for a guest that hung while booting)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(SaslVmFiles.at(paths).qmp_socket))
        reader = sock.makefile("rb")
        reader.readline()  # the greeting
        for command in ("qmp_capabilities", "system_reset"):
            sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
            while True:  # events may come before the answer
                answer = json.loads(reader.readline() or b"{}")
                if "return" in answer or "error" in answer or not answer:
                    break
            if "return" not in answer:
                raise LabError(f"{SASL_VM.name}: QMP {command} failed: {answer}")


def booting_guest(paths: LabPaths) -> BootingGuest:
    """The SASL VM as boot_watch waits for it."""
    return BootingGuest(SASL_VM.name, partial(agent_answers, paths),
                        SaslVmFiles.at(paths).console_log, partial(reset, paths))


def tls_answers(paths: LabPaths, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if the Spice TLS port completes a handshake verified by the lab's Spice CA."""
    port = SASL_VM.spice_tls_port
    assert port is not None
    try:
        context = ssl.create_default_context(cafile=str(paths.spice_pki / "ca-cert.pem"))
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=LOOPBACK):
            return True
    except (OSError, ssl.SSLError):
        return False
