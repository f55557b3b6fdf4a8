"""A needle saved from the needle editor matches again after the VM reboots (issue 15).

What atp-vm1's VGA text console (720x400, 9x16 cells) shows after a boot is the same every
time: the guest's init clears tty1 and busybox starts a root shell there, which prints its
banner (rows 2-3) and the prompt (row 5). The VM is reset once to show that screen; the
editor (its Python API: what the browser's drag and Save do) makes a needle of the banner and
of the prompt's first 10 cells, ``atp-vm1:~#``, leaving out the blinking cursor after it,
and the files are loaded again from disk. Other text on the console does not match it; after
the guest reboots itself (busybox ``reboot`` through guest-exec: init's orderly path, QEMU
reports a RESET the guest asked for) ``assert_screen`` finds both areas where they were, and
again after a hard QMP ``system_reset``. Each reboot is proved by the kernel's new boot id.
QGA's own ``guest-shutdown mode=reboot`` cannot do it here: qemu-ga 7.2 runs
``/sbin/shutdown``, which busybox lacks ("child process has failed to shutdown").
Disturbs the VM, so it runs with the lifecycle tests (last), and leaves atp-vm1 as
test_qmp_power does: running, its agent answering, its console fresh from a boot. Run under
the lab lock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from atp_notebook.notebook.needle_editor import NeedleEditor
from atp_notebook.screen import load_needle
from atp_notebook.session import Vm
from tests.integration.waiting import BOOT_S, boot_id

pytestmark = pytest.mark.lifecycle
BANNER = (0, 2 * 16, 67 * 9, 2 * 16)  # "BusyBox v1.35.0 (Debian ...) built-in shell (ash)"
PROMPT = (0, 5 * 16, 10 * 9, 16)  # "atp-vm1:~#": the cursor blinks in cell 11


def hard_reset(vm: Vm) -> None:
    """QMP ``system_reset``: the machine is reset under the guest."""
    before = boot_id(vm)
    with vm.events(["RESET"]) as events:
        vm.monitor.system_reset()
        event = events.wait_for("RESET", timeout=30)
    assert event.data.get("guest") is False  # we reset it, the guest did not ask
    vm.wait_for_agent(BOOT_S)
    assert boot_id(vm) != before  # a fresh boot, not the old kernel still running


def guest_reboot(vm: Vm) -> None:
    """The guest reboots itself: busybox ``reboot`` asks init, which stops its programs and
    has the kernel restart the machine. Started in the background a second later, so that
    qemu-ga has answered guest-exec before init stops it."""
    before = boot_id(vm)
    with vm.events(["RESET"]) as events:
        vm.agent.command("guest-exec", path="/bin/sh", arg=["-c", "sleep 1; exec reboot"],
                         capture_output=False)
        event = events.wait_for("RESET", timeout=60)
    assert event.data == {"guest": True, "reason": "guest-reset"}
    vm.wait_for_agent(BOOT_S)
    assert boot_id(vm) != before


def show_other_text(vm: Vm) -> None:
    vm.exec(["/bin/sh", "-c", "printf '\\033[H\\033[2J\\n\\nsomething else entirely' "
             ">/dev/tty1"]).check()
    vm.wait_for_text("something else", region=(0, 0, 720, 64), timeout=30)


@pytest.fixture
def vm(vm1_left_running: Vm) -> Vm:
    return vm1_left_running


def test_a_needle_saved_from_the_editor_matches_again_after_a_reboot(vm: Vm,
                                                                     tmp_path: Path) -> None:
    hard_reset(vm)
    vm.wait_for_text("atp-vm1:", region=(0, 0, 720, 160), timeout=60)
    vm.display.wait_still(0.5, region=(0, 0, 720, PROMPT[1]), timeout=30)
    editor = NeedleEditor(vm, name="vm1-booted", tags=["vm1-booted"], directory=tmp_path)
    editor.add_area(*BANNER)
    editor.add_area(*PROMPT)
    saved = editor.save()
    assert saved == tmp_path / "vm1-booted.json" and (tmp_path / "vm1-booted.png").is_file()
    needle = load_needle(saved)
    assert vm.check_screen(needle) is not None  # what it was made from

    for reboot in (guest_reboot, hard_reset):
        show_other_text(vm)  # where the banner was: no match
        assert vm.check_screen(needle) is None
        reboot(vm)
        found = vm.assert_screen(needle, timeout=60)
        assert found.ok, reboot.__name__
        assert [a.position for a in found.areas] == [BANNER[:2], PROMPT[:2]]
