"""``atp-lab status``: does every host URI answer, and every VM's guest agent?

The SASL VM runs outside libvirt: its agent is asked on its own socket, and its Spice port
must complete a TLS handshake verified by the lab's Spice CA.

Each probe runs in its own thread with a deadline: a libvirt open over ssh or tls can block
for a long time on a dead peer, and a status check must answer promptly either way.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import libvirt

from atp_notebook.lab import domains, sasl_vm
from atp_notebook.lab.daemons import libvirtd, sshd
from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LAB_VMS, LOOPBACK, SASL_VM, LabPaths

PROBE_TIMEOUT_S = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class HostStatus:
    id: str
    uri: str
    ok: bool
    domains: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class VmStatus:
    name: str
    state: str
    agent: bool
    spice_port: int | None
    spice_tls_port: int | None
    spice_listening: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "running" and self.agent and self.spice_listening


@dataclass(frozen=True)
class LabStatus:
    hosts: tuple[HostStatus, ...]
    vms: tuple[VmStatus, ...]
    daemons: dict[str, int | None] = field(default_factory=dict)
    config: str | None = None

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts) and all(v.ok for v in self.vms)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        for vm, status in zip(doc["vms"], self.vms, strict=True):
            vm["ok"] = status.ok
        return doc


def run_with_deadline(fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn`` in a daemon thread; raise TimeoutError if it has not returned in time."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    if error:
        raise error[0]
    return result[0]


_STATE_NAMES = {
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}


def state_name(state: int) -> str:
    return _STATE_NAMES.get(state, f"state {state}")


def _probe_host(uri: str) -> tuple[str, ...]:
    conn = domains.open_libvirt(uri)
    try:
        return tuple(sorted(d.name() for d in conn.listAllDomains()))
    finally:
        conn.close()


def _listening(port: int | None) -> bool:
    if port is None:
        return True
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2.0):
            return True
    except OSError:
        return False


def _probe_vms() -> tuple[VmStatus, ...]:
    conn = domains.open_libvirt()
    try:
        out = []
        for vm in LAB_VMS:
            dom = domains.lookup(conn, vm.name)
            state = "undefined" if dom is None else state_name(dom.state()[0])
            agent = dom is not None and state == "running" and domains.agent_answers(dom)
            listening = state == "running" and all(_listening(p) for p in vm.ports)
            out.append(VmStatus(vm.name, state, agent, vm.spice_port, vm.spice_tls_port,
                                listening))
        return tuple(out)
    finally:
        conn.close()


def _probe_sasl_vm(paths: LabPaths) -> VmStatus:
    if sasl_vm.process(paths).pid() is None:
        return VmStatus(SASL_VM.name, "shut off", False, SASL_VM.spice_port,
                        SASL_VM.spice_tls_port, False)
    # both probes at once: on a hung VM each takes its whole (short) timeout
    with ThreadPoolExecutor(2) as pool:
        agent = pool.submit(sasl_vm.agent_answers, paths)
        listening = pool.submit(sasl_vm.tls_answers, paths)
        return VmStatus(SASL_VM.name, "running", agent.result(), SASL_VM.spice_port,
                        SASL_VM.spice_tls_port, listening.result())


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return str(exc.get_error_message())
    return str(exc) or type(exc).__name__


def lab_status(paths: LabPaths, timeout: float = PROBE_TIMEOUT_S) -> LabStatus:
    probes = [(h.id, h.uri) for h in lab_hosts(paths)]
    # probe all hosts at once, so a dead transport costs one timeout, not four
    results: dict[str, HostStatus] = {}

    def probe(host_id: str, uri: str) -> None:
        try:
            found = run_with_deadline(partial(_probe_host, uri), timeout)
            results[host_id] = HostStatus(host_id, uri, True, found)
        except BaseException as exc:
            results[host_id] = HostStatus(host_id, uri, False, error=_error_text(exc))

    threads = [threading.Thread(target=probe, args=p, daemon=True) for p in probes]
    for t in threads:
        t.start()
    sasl: list[VmStatus] = []
    sasl_thread = threading.Thread(target=lambda: sasl.append(_probe_sasl_vm(paths)),
                                   daemon=True)
    sasl_thread.start()
    try:
        vms = run_with_deadline(_probe_vms, timeout)
    except BaseException as exc:
        vms = tuple(
            VmStatus(v.name, "unknown", False, v.spice_port, v.spice_tls_port, False,
                     error=_error_text(exc))
            for v in LAB_VMS
        )
    sasl_thread.join(timeout)
    vms += tuple(sasl) or (VmStatus(SASL_VM.name, "unknown", False, SASL_VM.spice_port,
                                    SASL_VM.spice_tls_port, False, error="no answer in time"),)
    for t in threads:
        t.join(timeout + 1)
    hosts = [results[h_id] for h_id, _ in probes]
    config = str(paths.config_file) if paths.config_file.exists() else None
    return LabStatus(
        tuple(hosts), vms, {"libvirtd": libvirtd(paths).pid(), "sshd": sshd(paths).pid()}, config
    )
