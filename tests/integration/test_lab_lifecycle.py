"""``atp-lab`` as a user runs it: status, idempotent up, repair, failures, down.

These tests break parts of the running lab on purpose and let ``up`` repair them; the
``lifecycle`` marker makes them run after every other test (see conftest.py), and each
leaves the lab up again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from atp_notebook.lab import boot_watch, daemons, domains, sasl_vm
from atp_notebook.lab.paths import LAB_VMS, LOOPBACK, SSH_PORT, LabPaths
from atp_notebook.lab.status import LabStatus

pytestmark = pytest.mark.lifecycle

ATP_LAB = str(Path(sys.executable).with_name("atp-lab"))
ROOT = Path(__file__).resolve().parents[2]


def atp_lab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ATP_LAB, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def lab_pids(paths: LabPaths) -> dict[str, int | None]:
    pids = {"libvirtd": daemons.libvirtd(paths).pid(), "sshd": daemons.sshd(paths).pid()}
    for vm in LAB_VMS:
        pids[vm.name] = domains.qemu_pid(vm.name)
    pids["atp-sasl"] = sasl_vm.process(paths).pid()  # a QEMU of ours outside libvirt
    return pids


def destroy(vm_name: str) -> None:
    conn = libvirt.open("qemu:///system")
    try:
        conn.lookupByName(vm_name).destroy()
    finally:
        conn.close()


def is_running(vm_name: str) -> bool:
    conn = libvirt.open("qemu:///system")
    try:
        return bool(conn.lookupByName(vm_name).isActive())
    finally:
        conn.close()


@pytest.fixture
def lab_restored(lab: LabStatus) -> Iterator[LabStatus]:
    """Start from a lab that is up; bring it up again whatever the test broke."""
    yield lab
    result = atp_lab("up")
    assert result.returncode == 0, result.stderr


def test_status_json_lists_hosts_vms_and_config(lab: LabStatus, lab_paths: LabPaths) -> None:
    result = atp_lab("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert [h["id"] for h in doc["hosts"]] == ["local", "tcp", "tls", "ssh"]
    assert [h["uri"].split(":")[0] for h in doc["hosts"]] == [
        "qemu", "qemu+tcp", "qemu+tls", "qemu+ssh"]
    assert {v["name"]: (v["spice_port"], v["spice_tls_port"]) for v in doc["vms"]} == {
        "atp-vm1": (5901, None), "atp-vm2": (5904, 5902), "atp-sasl": (None, 5903)}
    assert doc["config"] == str(lab_paths.config_file)
    # the Spice password never appears in status output
    password = lab_paths.spice_password_file("atp-vm2").read_text().strip()
    assert password not in result.stdout


def test_config_prints_the_path_of_atp_yaml(lab: LabStatus, lab_paths: LabPaths) -> None:
    result = atp_lab("config")
    assert result.returncode == 0
    assert result.stdout.strip() == str(lab_paths.config_file)


def test_up_on_a_lab_that_is_up_changes_nothing(lab: LabStatus, lab_paths: LabPaths) -> None:
    before = lab_pids(lab_paths)
    result = atp_lab("up")
    assert result.returncode == 0, result.stderr
    assert "everything was up already" in result.stdout
    assert lab_pids(lab_paths) == before


def test_up_restarts_a_dead_sshd(lab_restored: LabStatus, lab_paths: LabPaths) -> None:
    pid = daemons.sshd(lab_paths).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    status = atp_lab("status", "--json")
    assert status.returncode == 1
    hosts = {h["id"]: h["ok"] for h in json.loads(status.stdout)["hosts"]}
    assert hosts == {"local": True, "tcp": True, "tls": True, "ssh": False}
    result = atp_lab("up")
    assert result.returncode == 0, result.stderr
    assert "started sshd" in result.stdout
    assert atp_lab("status").returncode == 0


def test_up_restarts_a_killed_libvirtd_and_vms_survive(
    lab_restored: LabStatus, lab_paths: LabPaths
) -> None:
    before = lab_pids(lab_paths)
    assert before["libvirtd"] is not None
    os.kill(before["libvirtd"], signal.SIGKILL)
    assert atp_lab("status").returncode == 1
    result = atp_lab("up")
    assert result.returncode == 0, result.stderr
    assert "started libvirtd" in result.stdout
    after = lab_pids(lab_paths)
    assert after["libvirtd"] not in (None, before["libvirtd"])
    vms = [vm.name for vm in LAB_VMS] + ["atp-sasl"]
    assert [after[name] for name in vms] == [before[name] for name in vms]


def test_up_restarts_a_stopped_vm(lab_restored: LabStatus) -> None:
    destroy("atp-vm1")
    assert atp_lab("status").returncode == 1
    result = atp_lab("up")
    assert result.returncode == 0, result.stderr
    assert "started atp-vm1" in result.stdout
    assert atp_lab("status").returncode == 0


def test_a_vm_whose_agent_never_answers_is_reported_and_stopped_again(
    lab_restored: LabStatus, lab_paths: LabPaths
) -> None:
    destroy("atp-vm1")
    libvirtd_pid = daemons.libvirtd(lab_paths).pid()
    # one second is far too short for a TCG guest to boot: the agent cannot answer in time
    result = atp_lab("up", "--agent-timeout", "1")
    assert result.returncode == 1
    assert "guest agent of atp-vm1 did not answer within 1 s" in result.stderr
    assert str(lab_paths.console_log("atp-vm1")) in result.stderr
    assert not is_running("atp-vm1")  # what this failed run started, it stopped again
    assert daemons.libvirtd(lab_paths).pid() == libvirtd_pid  # what it did not, it left


def test_a_port_taken_by_someone_else_is_named(
    lab_restored: LabStatus, lab_paths: LabPaths
) -> None:
    assert daemons.sshd(lab_paths).stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((LOOPBACK, SSH_PORT))
        squatter.listen()
        result = atp_lab("up")
    assert result.returncode == 1
    assert f"{LOOPBACK}:{SSH_PORT} (sshd for qemu+ssh)" in result.stderr
    assert f"ss -ltnp 'sport = :{SSH_PORT}'" in result.stderr
    assert daemons.sshd(lab_paths).pid() is None


def test_not_root_is_refused_before_anything_happens(lab: LabStatus) -> None:
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "atp_notebook.lab.cli", "up"],
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1, result.stderr
    assert "atp-lab must run as root" in result.stderr
    assert "hint: run it with sudo, or as root" in result.stderr


def test_down_stops_everything_it_started_and_lab_tests_then_fail_in_ci(
    lab_restored: LabStatus, lab_paths: LabPaths
) -> None:
    before = lab_pids(lab_paths)
    assert all(pid is not None for pid in before.values())
    result = atp_lab("down")
    assert result.returncode == 0, result.stderr
    for name, pid in before.items():
        assert pid is not None
        assert not daemons.pid_alive(pid), f"{name} (pid {pid}) survived down"
    for exe in (daemons.LIBVIRTD, "/usr/bin/qemu-system-x86_64"):
        assert daemons.processes_running(exe) == []
    assert atp_lab("status").returncode == 1
    # with CI=true a lab test must fail, not skip, when the lab is down
    ci = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "tests/integration/test_lab_transports.py", "-k", "guest_agent"],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        env={**os.environ, "CI": "true"},
    )
    assert ci.returncode == 1, ci.stdout
    # pytest.fail in the fixture: counted as errors, exit code 1, never as skips
    assert "2 errors" in ci.stdout and "skipped" not in ci.stdout
    assert "the lab is not up" in ci.stdout
    # a second down finds nothing to stop
    again = atp_lab("down")
    assert again.returncode == 0 and "stopped nothing" in again.stdout
    up = atp_lab("up")
    assert up.returncode == 0, up.stderr
    print(up.stdout.strip())  # the time of a cold up (packages and guest image kept), for -s
    assert atp_lab("status").returncode == 0


@pytest.mark.parametrize("vm_name", ["atp-vm2", "atp-sasl"])
def test_a_hung_boot_is_reset_by_the_lab_and_the_guest_boots_again(
    lab_restored: LabStatus, lab_paths: LabPaths, vm_name: str
) -> None:
    # what boot_watch does to a guest that hangs while booting, on the real VMs: the libvirt
    # domain through virDomainReset, the SASL VM (no libvirt domain) through its QMP socket
    console = lab_paths.console_log(vm_name)
    boots_before = console.read_text(errors="replace").count("atp-guest: init on kernel")
    conn = domains.open_libvirt()
    try:
        if vm_name == "atp-sasl":
            guest = sasl_vm.booting_guest(lab_paths)
        else:
            guest = domains.booting_guest(conn.lookupByName(vm_name), lab_paths)
        assert guest.reset is not None
        guest.reset()
        boot_watch.wait_for_agents([guest], timeout=180.0)
    finally:
        conn.close()
    assert console.read_text(errors="replace").count("atp-guest: init on kernel") \
        == boots_before + 1
