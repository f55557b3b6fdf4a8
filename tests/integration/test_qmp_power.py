"""QMP ``system_reset`` and ``system_powerdown`` through ``vm.monitor`` against a lab VM:
the event QEMU emits, and what the guest does. Both disturb the VM, so they run with the
lifecycle tests (last) and leave it running with its agent answering, whatever they assert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atp_notebook.session import Session, Vm

pytestmark = pytest.mark.lifecycle
BOOT_S = 120.0  # a TCG guest boots and starts its agent in ~10 s; a busy CI host is slower


def uptime(vm: Vm) -> float:
    return float(vm.read_file("/proc/uptime").split()[0])


@pytest.fixture
def vm(session: Session) -> Iterator[Vm]:
    vm = session.vm("atp-vm1")
    vm.wait_for_agent(BOOT_S)
    try:
        yield vm
    finally:  # running, agent answering: what every later test expects
        if vm.state() != "running":
            vm.domain().create()
        vm.wait_for_agent(BOOT_S)


def test_system_reset_emits_reset_and_the_guest_boots_again(vm: Vm) -> None:
    before = uptime(vm)
    assert before > 0
    with vm.events(["RESET"]) as events:
        vm.monitor.system_reset()
        event = events.wait_for("RESET", timeout=30)
    assert event.vm == "atp-vm1" and event.data.get("guest") is False  # we asked, not the guest
    vm.wait_for_agent(BOOT_S)  # the agent comes back after the reboot
    assert uptime(vm) < before  # a fresh boot, not the old kernel still running
    assert vm.monitor.status() == "running"


def test_system_powerdown_emits_powerdown_to_the_guest(vm: Vm) -> None:
    with vm.events(["POWERDOWN"]) as events:
        vm.monitor.system_powerdown()
        event = events.wait_for("POWERDOWN", timeout=30)
    assert event.vm == "atp-vm1" and event.name == "POWERDOWN"
    # the busybox guest has no ACPI daemon: the button press reaches it and it keeps
    # running; a guest that powers off is restarted by the fixture
    assert vm.state() in {"running", "shutting down", "shut off"}
