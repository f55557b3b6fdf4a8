"""QMP ``system_reset`` and ``system_powerdown`` through ``vm.monitor`` against a lab VM:
the event QEMU emits, and what the guest does. Both disturb the VM, so they run with the
lifecycle tests (last) and leave it running with its agent answering, whatever they assert."""

from __future__ import annotations

import pytest

from atp_notebook.session import Vm
from tests.integration.waiting import BOOT_S, boot_id

pytestmark = pytest.mark.lifecycle


@pytest.fixture
def vm(vm1_left_running: Vm) -> Vm:
    return vm1_left_running


def test_system_reset_emits_reset_and_the_guest_boots_again(vm: Vm) -> None:
    before = boot_id(vm)
    assert len(before) == 36  # a UUID: the agent read it
    with vm.events(["RESET"]) as events:
        vm.monitor.system_reset()
        event = events.wait_for("RESET", timeout=30)
    assert event.vm == "atp-vm1" and event.data.get("guest") is False  # we asked, not the guest
    vm.wait_for_agent(BOOT_S)  # the agent comes back after the reboot
    assert boot_id(vm) != before  # a fresh boot, not the old kernel still running
    assert vm.monitor.status() == "running"


def test_system_powerdown_emits_powerdown_to_the_guest(vm: Vm) -> None:
    with vm.events(["POWERDOWN"]) as events:
        vm.monitor.system_powerdown()
        event = events.wait_for("POWERDOWN", timeout=30)
    assert event.vm == "atp-vm1" and event.name == "POWERDOWN"
    # the busybox guest has no ACPI daemon: the button press reaches it and it keeps
    # running; a guest that powers off is restarted by the fixture
    assert vm.state() in {"running", "shutting down", "shut off"}
