"""A needle saved from the needle editor matches again after the VM reboots (issue 15).

What atp-vm1's VGA text console (720x400, 9x16 cells) shows after a boot is the same every
time: the guest's init clears tty1 and busybox starts a root shell there, which prints its
banner (rows 2-3) and the prompt (row 5). The VM is rebooted once to show that screen; the
editor (its Python API: what the browser's drag and Save do) makes a needle of the banner and
of the prompt's first 10 cells, ``atp-vm1:~#``, leaving out the blinking cursor after it,
and the files are loaded again from disk. Other text on the console does not match it; after
a second QMP ``system_reset`` (a real reboot: the guest's kernel has a new boot id)
``assert_screen`` finds both areas where they were. Disturbs the VM, so it runs with the
lifecycle tests (last), and leaves atp-vm1 as test_qmp_power does: running, its agent
answering, its console fresh from a boot. Run under the lab lock.
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


def reboot(vm: Vm) -> None:
    before = boot_id(vm)
    with vm.events(["RESET"]) as events:
        vm.monitor.system_reset()
        events.wait_for("RESET", timeout=30)
    vm.wait_for_agent(BOOT_S)
    assert boot_id(vm) != before  # a fresh boot, not the old kernel still running


@pytest.fixture
def vm(vm1_left_running: Vm) -> Vm:
    return vm1_left_running


def test_a_needle_saved_from_the_editor_matches_again_after_a_reboot(vm: Vm,
                                                                     tmp_path: Path) -> None:
    reboot(vm)
    vm.wait_for_text("atp-vm1:", region=(0, 0, 720, 160), timeout=60)
    vm.display.wait_still(0.5, region=(0, 0, 720, PROMPT[1]), timeout=30)
    editor = NeedleEditor(vm, name="vm1-booted", tags=["vm1-booted"], directory=tmp_path)
    editor.add_area(*BANNER)
    editor.add_area(*PROMPT)
    saved = editor.save()
    assert saved == tmp_path / "vm1-booted.json" and (tmp_path / "vm1-booted.png").is_file()
    needle = load_needle(saved)
    assert vm.check_screen(needle) is not None  # what it was made from

    # other text where the banner was: no match
    vm.exec(["/bin/sh", "-c", "printf '\\033[H\\033[2J\\n\\nsomething else entirely' "
             ">/dev/tty1"]).check()
    vm.wait_for_text("something else", region=(0, 0, 720, 64), timeout=30)
    assert vm.check_screen(needle) is None

    reboot(vm)
    found = vm.assert_screen(needle, timeout=60)
    assert found.ok
    assert [a.position for a in found.areas] == [BANNER[:2], PROMPT[:2]]
