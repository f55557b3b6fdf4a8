"""``atp-lab up`` and ``down``: bring the lab to its wanted state, idempotently.

``up`` checks each part and repairs only what is missing or dead, so on a lab that is up it
takes about a second. Whatever one ``up`` started is undone if that ``up`` fails, so a
failure never leaves a half-started daemon or VM behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import libvirt

from atp_notebook.errors import LabError
from atp_notebook.lab import daemons, domains, sasl_vm
from atp_notebook.lab.files import write_if_changed
from atp_notebook.lab.guest import GuestImage, build_guest
from atp_notebook.lab.inventory import write_config
from atp_notebook.lab.paths import LAB_VMS, SASL_VM, LabPaths
from atp_notebook.lab.pki import ensure_lab_pki
from atp_notebook.lab.system import check_debian, check_ports_free, check_root, ensure_packages

log = logging.getLogger("atp.lab")

AGENT_TIMEOUT_S = 180.0
QEMU = "/usr/bin/qemu-system-x86_64"


@dataclass
class UpReport:
    """What one ``up`` did: the parts it (re)started; empty lists mean all was well."""

    installed: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    config: Path | None = None
    seconds: float = 0.0


LOCK_TIMEOUT_S = 600.0


@contextmanager
def lab_lock(paths: LabPaths, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """One ``up`` or ``down`` at a time: a second one waits for the first to finish."""
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.run_dir / "lab.lock", "a+") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"another atp-lab up/down held {lock.name} for {timeout:.0f} s",
                        hint="wait for it to finish, or stop it",
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(
    paths: LabPaths,
    *,
    agent_timeout: float = AGENT_TIMEOUT_S,
    os_release: Path = Path("/etc/os-release"),
) -> UpReport:
    began = time.monotonic()
    check_root()
    check_debian(os_release)
    with lab_lock(paths):
        report = UpReport(installed=ensure_packages())
        _up_or_undo(paths, report, agent_timeout)
    report.seconds = time.monotonic() - began
    return report


def _up_or_undo(paths: LabPaths, report: UpReport, agent_timeout: float) -> None:
    undo: list[Callable[[], object]] = []
    try:
        try:
            _bring_up(paths, report, undo, agent_timeout)
        except libvirt.libvirtError as exc:
            raise LabError(
                f"libvirt: {exc.get_error_message()}",
                hint=f"libvirtd's log is {paths.log_dir / 'libvirtd.log'}",
            ) from exc
    except BaseException:
        if undo:
            log.warning("up failed: undoing what this run started")
        for action in reversed(undo):
            try:
                action()
            except Exception:  # keep undoing the rest; the original error is what matters
                log.exception("while undoing a failed up")
        raise


def _bring_up(
    paths: LabPaths, report: UpReport, undo: list[Callable[[], object]], agent_timeout: float
) -> None:
    for directory in (paths.root, paths.run_dir, paths.log_dir, paths.etc_dir, paths.vm_dir):
        directory.mkdir(parents=True, exist_ok=True)
    # daemons and QEMU read their certificates and keys at start: renewed files need a
    # restart (a Spice certificate re-issued for new names restarts every VM, once)
    certs_changed = ensure_lab_pki(paths).restarts()
    guest = build_guest(paths.guest_dir)

    qemu_changed = write_if_changed(daemons.QEMU_CONF, daemons.qemu_conf(paths), 0o644)
    libvirtd_changed = write_if_changed(
        paths.etc_dir / "libvirtd.conf", daemons.libvirtd_conf(paths), 0o644
    )
    sshd_changed = write_if_changed(paths.etc_dir / "sshd_config", daemons.sshd_conf(paths),
                                    0o644)

    # running VMs survive a libvirtd restart; new settings apply from here on
    _ensure_daemon(daemons.libvirtd(paths), daemons.start_libvirtd, paths, report, undo,
                   restart=qemu_changed or libvirtd_changed or "libvirtd" in certs_changed)
    _ensure_daemon(daemons.sshd(paths), daemons.start_sshd, paths, report, undo,
                   restart=sshd_changed or "sshd" in certs_changed)

    conn = domains.open_libvirt()
    try:
        doms = []
        for vm in LAB_VMS:
            dom = domains.ensure_defined(conn, paths, vm, guest)
            if "spice" in certs_changed and dom.isActive():
                dom.destroy()  # QEMU reads its Spice certificate only at start
                report.restarted.append(vm.name)
            if not dom.isActive():
                check_ports_free({p: f"Spice of {vm.name}" for p in vm.ports})
            if domains.start(dom):
                undo.append(dom.destroy)
                report.started.append(vm.name)
            doms.append(dom)
        _ensure_sasl_vm(paths, guest, report, undo, restart="spice" in certs_changed)
        domains.wait_for_agents(doms, paths, agent_timeout, [sasl_vm.booting_guest(paths)])
    finally:
        conn.close()
    report.config = write_config(paths)


def _ensure_sasl_vm(
    paths: LabPaths,
    guest: GuestImage,
    report: UpReport,
    undo: list[Callable[[], object]],
    *,
    restart: bool,
) -> None:
    """The SASL VM is no libvirt domain (see sasl_vm.py): the lab runs its QEMU itself."""
    change = sasl_vm.ensure_running(paths, guest, restart=restart)
    if change is None:
        return
    undo.append(partial(sasl_vm.stop, paths))
    (report.restarted if change == "restarted" else report.started).append(SASL_VM.name)


def _ensure_daemon(
    daemon: daemons.Daemon,
    start: Callable[[LabPaths], int],
    paths: LabPaths,
    report: UpReport,
    undo: list[Callable[[], object]],
    *,
    restart: bool,
) -> None:
    """Start the daemon if it is not running; restart it when its settings changed."""
    if daemon.pid() is not None and restart:
        daemon.stop()
        report.restarted.append(daemon.name)
    if daemon.pid() is None:
        start(paths)
        undo.append(daemon.stop)
        if daemon.name not in report.restarted:
            report.started.append(daemon.name)


@dataclass
class DownReport:
    stopped: list[str] = field(default_factory=list)


def down(paths: LabPaths) -> DownReport:
    """Stop the lab's VMs and daemons; nothing the lab did not start is touched."""
    check_root()
    with lab_lock(paths):
        return _down(paths)


def _down(paths: LabPaths) -> DownReport:
    report = DownReport()
    if sasl_vm.stop(paths):
        report.stopped.append(SASL_VM.name)
    libvirtd = daemons.libvirtd(paths)
    if libvirtd.pid() is not None:
        conn = domains.open_libvirt()
        try:
            for vm in LAB_VMS:
                if domains.destroy_and_undefine(conn, vm.name):
                    report.stopped.append(vm.name)
        finally:
            conn.close()
    else:
        # libvirtd is gone but its QEMUs outlive it: stop them by libvirt's pid files
        for vm in LAB_VMS:
            pid = domains.qemu_pid(vm.name)
            if pid is not None and daemons.pid_alive(pid, QEMU):
                os.kill(pid, signal.SIGKILL)
                report.stopped.append(vm.name)
    for daemon in (daemons.sshd(paths), libvirtd):
        if daemon.stop():
            report.stopped.append(daemon.name)
    return report
