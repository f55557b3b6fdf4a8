"""Libvirt reuse mode against the lab: every transport, one shared connection per host,
and recovery after libvirtd dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import libvirt
import pytest

from atp_notebook.config import HostInfo, TransportConfig
from atp_notebook.errors import ConfigError, HostUnavailable, UnknownHost, UnknownVm
from atp_notebook.lab import daemons
from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus
from atp_notebook.loop import get_loop, run
from atp_notebook.session import Session, connect
from atp_notebook.transport import TransportManager
from atp_notebook.virt.host import HostConnection, HostState
from tests.integration.waiting import wait_until

HOST_IDS = ["local", "tcp", "tls", "ssh"]
VM_NAMES = ["atp-vm1", "atp-vm2"]


def libvirtd_clients(transport: str) -> int:
    """How many clients libvirtd itself counts on ``transport`` (virt-admin's view)."""
    out = subprocess.run(["virt-admin", "srv-clients-list", "libvirtd"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return sum(1 for line in out.splitlines()[2:] if line.split()[1:2] == [transport])


@pytest.mark.parametrize("host_id", HOST_IDS)
def test_each_transport_opens_lists_and_finds_vms(session: Session, host_id: str) -> None:
    for name in VM_NAMES:
        vm = session.vm(name, host=host_id)
        assert (vm.name, vm.host_id) == (name, host_id)
        assert vm.state() == "running"
    conn = run(session.manager.get_libvirt_connection(host_id), timeout=30)
    assert conn.getURI().split("?")[0] == session.host(host_id).uri.split("?")[0]
    assert session.host(host_id).state is HostState.READY
    assert session.manager.pool.stats()[host_id].opens == 1


def test_vms_lists_each_domain_once_with_every_host_that_reaches_it(session: Session) -> None:
    listing = {v.name: v for v in session.vms()}
    assert set(VM_NAMES) <= set(listing)
    for name in VM_NAMES:
        assert listing[name].host_id == "local"  # the first host in the file
        assert set(listing[name].also_on) == {"tcp", "tls", "ssh"}
        assert listing[name].state == "running"


def test_a_vm_is_found_on_the_first_host_that_has_it(session: Session) -> None:
    assert session.vm("atp-vm2").host_id == "local"


def test_unknown_vm_and_host_are_named(session: Session) -> None:
    with pytest.raises(UnknownVm, match=r"'no-such-vm'.*searched: local, tcp, tls, ssh"):
        session.vm("no-such-vm")
    with pytest.raises(UnknownHost, match=r"'nowhere'.*known: local, tcp, tls, ssh"):
        session.vm("atp-vm1", host="nowhere")


def test_two_vms_on_one_host_share_one_libvirt_connection(session: Session) -> None:
    before = libvirtd_clients("tcp")
    vms = [session.vm(name, host="tcp") for name in VM_NAMES]
    for _ in range(3):
        assert [vm.state() for vm in vms] == ["running", "running"]
    assert session.manager.pool.stats()["tcp"].opens == 1
    assert vms[0].domain().connect() is vms[1].domain().connect()
    assert libvirtd_clients("tcp") == before + 1  # libvirtd sees one client, not two


def test_an_unreachable_host_fails_within_its_timeout(lab: LabStatus) -> None:
    manager = TransportManager()
    # a port nothing listens on: connection refused, reported as HostUnavailable
    run(manager.add_host(HostInfo("dead", "127.0.0.1").with_uri(
        "qemu+tcp://127.0.0.1:1/system")), timeout=5)
    with pytest.raises(HostUnavailable, match="host 'dead' is unavailable"):
        run(manager.get_libvirt_connection("dead", timeout=10), timeout=15)
    assert manager.host("dead").state is HostState.LOST
    # a second call right away fails at once instead of hammering the host
    with pytest.raises(HostUnavailable):
        run(manager.get_libvirt_connection("dead", timeout=10), timeout=15)
    assert manager.pool.stats()["dead"].failures >= 1
    run(manager.close(), timeout=10)


@pytest.mark.lifecycle
def test_killed_libvirtd_marks_host_lost_and_session_recovers_after_up(
    session: Session, lab_paths: LabPaths
) -> None:
    vms = {h: session.vm("atp-vm1", host=h) for h in ("local", "tcp")}
    assert all(vm.state() == "running" for vm in vms.values())
    pid = daemons.libvirtd(lab_paths).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # the close callback fires on the atp loop and marks both hosts lost
    wait_until(lambda: all(session.host(h).state is not HostState.READY for h in vms),
             "hosts marked lost")
    for vm in vms.values():
        with pytest.raises(HostUnavailable):
            vm.state(timeout=5)
    assert all(session.manager.pool.stats()[h].losses == 1 for h in vms)
    atp_lab = str(Path(sys.executable).with_name("atp-lab"))
    subprocess.run([atp_lab, "up"], check=True, capture_output=True, timeout=600)
    # the same session works again, nothing done by the user: retries in the background

    def recovered() -> bool:
        try:
            return all(vm.state(timeout=5) == "running" for vm in vms.values())
        except HostUnavailable:
            return False

    wait_until(recovered, "the session to work again")
    assert all(session.manager.pool.stats()[h].reconnects >= 1 for h in vms)
    assert isinstance(vms["local"].domain().connect(), libvirt.virConnect)


def test_spice_endpoint_from_yaml_and_discovered_from_domain_xml(
    session: Session, lab_paths: LabPaths, caplog: pytest.LogCaptureFixture
) -> None:
    password = lab_paths.spice_password_file("atp-vm2").read_text().strip()
    from_yaml = run(session.manager.get_spice_endpoint("atp-vm2"), timeout=30)
    assert (from_yaml.port, from_yaml.tls_port, from_yaml.prefer_tls, from_yaml.source) == (
        5904, 5902, True, "config")
    assert from_yaml.password is not None and from_yaml.password.reveal() == password
    # the same VM known only through its libvirt host: everything comes from the domain XML
    bare = TransportManager(TransportConfig(hosts=session.config.hosts))
    try:
        found = run(bare.get_spice_endpoint("atp-vm2"), timeout=30)
    finally:
        run(bare.close(), timeout=10)
    # both ports: channels start on the plain one (it serves main only; the rest relink)
    assert (found.host, found.port, found.tls_port, found.prefer_tls) == (
        "127.0.0.1", 5904, 5902, False)
    assert found.source == "libvirt:local"
    assert found.password is not None and found.password.reveal() == password
    for shown in (repr(from_yaml), repr(found), str(found), caplog.text):
        assert password not in shown


def test_a_bad_config_opens_no_connection(lab: LabStatus, tmp_path: Path) -> None:
    before = libvirtd_clients("tcp")
    bad = tmp_path / "atp.yaml"
    bad.write_text("transport:\n  hosts:\n    - id: a\n      uri: qemu+tcp://127.0.0.1/system\n"
                   "    - id: a\n      uri: qemu+tcp://127.0.0.1/system\n")
    with pytest.raises(ConfigError, match=r"atp.yaml:5.*transport\.hosts\[1\]"):
        connect(bad)
    assert libvirtd_clients("tcp") == before


def test_the_atp_loop_shuts_down_cleanly_at_exit(lab: LabStatus, lab_paths: LabPaths) -> None:
    script = (
        "from atp_notebook import connect\n"
        f"s = connect({str(lab_paths.config_file)!r})\n"
        "print(s.vm('atp-vm1', host='tcp').state())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "running"
    assert result.stderr == ""  # no traceback, no "Task was destroyed" warnings


def test_opening_and_closing_200_times_is_memory_safe(lab: LabStatus) -> None:
    # Regression: closing a connection while its close callback was still being registered
    # on another thread made libvirt use freed memory (GLib criticals, then a hang).
    script = (
        "from atp_notebook.loop import run\n"
        "from atp_notebook.virt.host import HostConnection\n"
        "for i in range(200):\n"
        "    h = HostConnection('local', 'qemu:///system')\n"
        "    h.connection(timeout=30)\n"
        "    run(h.close(), timeout=30)\n"
        "print('done')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "done"), result.stderr
    assert "CRITICAL" not in result.stderr and "virObject" not in result.stderr


def test_close_returns_only_once_libvirtd_has_let_the_client_go(
    lab: LabStatus, lab_paths: LabPaths
) -> None:
    # close() right after the open lands while the close callback and keepalive are still
    # being registered; it must still wait for the connection to be gone, not leave it behind
    uri = next(h.uri for h in lab_hosts(lab_paths) if h.id == "tcp")
    before = libvirtd_clients("tcp")
    for _ in range(5):
        host = HostConnection("tcp", uri)
        conn = host.connection(timeout=30)
        run(host.close(), timeout=30)
        assert host.state is HostState.CLOSED
        assert conn._o is None  # libvirt-python's mark of a closed virConnect
        wait_until(lambda: libvirtd_clients("tcp") == before, "libvirtd to drop the client",
                   timeout=5)


def test_a_busy_shared_executor_does_not_hold_up_an_open(
    lab: LabStatus, lab_paths: LabPaths
) -> None:
    # long waits (event waits, slow guest commands) may fill the shared executor; opening a
    # host connection has threads of its own, so a reconnect still starts at once
    atp = get_loop()
    release = threading.Event()
    workers = atp.executor._max_workers
    blockers = [atp.executor.submit(release.wait, 60) for _ in range(2 * workers)]
    try:
        uri = next(h.uri for h in lab_hosts(lab_paths) if h.id == "tcp")
        host = HostConnection("tcp", uri)
        host.connection(timeout=10)
        assert host.state is HostState.READY
        run(host.close(), timeout=10)
        assert not any(b.done() for b in blockers)  # the shared executor really was full
    finally:
        release.set()
    for blocker in blockers:
        blocker.result(timeout=30)


@pytest.mark.lifecycle
def test_close_during_a_blocked_registration_returns(
    lab: LabStatus, lab_paths: LabPaths, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the host stops answering between the open and the keepalive registration (which is a
    # round trip): close() waits a bounded time for the registering thread, then returns
    from atp_notebook.virt import host as host_module

    monkeypatch.setattr(host_module, "REGISTER_DELAY_S", 0.5)
    monkeypatch.setattr(host_module, "CLOSE_WAIT_S", 1.0)
    uri = next(h.uri for h in lab_hosts(lab_paths) if h.id == "tcp")
    pid = daemons.libvirtd(lab_paths).pid()
    assert pid is not None
    baseline = libvirtd_clients("tcp")
    host = HostConnection("tcp", uri)
    host.connection(timeout=30)
    os.kill(pid, signal.SIGSTOP)
    try:
        run(host.close(), timeout=30)  # an OperationTimeout here would mean it hung
        assert host.state is HostState.CLOSED
        assert "registration still blocked" in caplog.text
    finally:
        os.kill(pid, signal.SIGCONT)
    # once libvirtd answers again the registering thread finishes and closes it
    wait_until(lambda: libvirtd_clients("tcp") == baseline,
               "the late close of the connection", timeout=30)


def test_many_callers_at_once_share_one_open(lab: LabStatus) -> None:
    uri = next(h.uri for h in lab_hosts(LabPaths.default()) if h.id == "tcp")
    before = libvirtd_clients("tcp")
    host = HostConnection("tcp", uri)
    start = threading.Barrier(17)
    got: list[libvirt.virConnect] = []
    lock = threading.Lock()

    def blocking_caller() -> None:
        start.wait(10)
        conn = host.connection(timeout=15)
        with lock:
            got.append(conn)

    async def async_callers() -> list[libvirt.virConnect]:
        await asyncio.to_thread(start.wait, 10)
        return await asyncio.gather(*(host.get(timeout=15) for _ in range(8)))

    threads = [threading.Thread(target=blocking_caller) for _ in range(16)]
    for t in threads:
        t.start()
    got_async = asyncio.run(async_callers())
    for t in threads:
        t.join(20)
    try:
        assert len(got) == 16 and len(got_async) == 8
        assert len({id(c) for c in [*got, *got_async]}) == 1  # one connection for all 24
        assert host.stats.opens == 1 and host.stats.failures == 0
        assert host.state is HostState.READY
        assert libvirtd_clients("tcp") == before + 1
    finally:
        run(host.close(), timeout=30)
