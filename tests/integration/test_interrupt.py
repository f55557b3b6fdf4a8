"""Kernel > Interrupt during a real guest call: the guest process is killed (as a timeout
would), the user sees one line, and the kernel and the connection stay usable."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from atp_notebook.errors import Interrupted
from atp_notebook.session import Session, Vm
from tests.integration.pausing import resumed_after

SLEEP = "4242"  # an argument no other process in the guest has


def interrupt_in(seconds: float) -> threading.Timer:
    """SIGINT to the main thread after ``seconds``: what Kernel > Interrupt sends."""
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


def sleepers(vm: Vm) -> int:
    """How many ``sleep 4242`` run in the guest (the [4] keeps this command out)."""
    result = vm.exec(["/bin/sh", "-c", f"ps | grep -c 'sleep [{SLEEP[0]}]{SLEEP[1:]}'"])
    return int(result.stdout.decode().strip() or 0)


@pytest.fixture
def vm(session: Session) -> Iterator[Vm]:
    vm = session.vm("atp-vm1")
    assert sleepers(vm) == 0
    yield vm
    vm.exec(["/bin/sh", "-c", f"pkill -f 'sleep {SLEEP}' || true"])  # never left behind


def test_an_interrupted_exec_kills_the_guest_process_and_says_so_in_one_line(vm: Vm) -> None:
    interrupt_in(1.5)
    started = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        vm.exec(["sleep", SLEEP], timeout=60)
    assert time.monotonic() - started < 30  # not the 60 s timeout, nor the 4242 s sleep
    (shown,) = caught.value._render_traceback_()
    assert shown.startswith(f"Interrupted: sleep {SLEEP} (pid ")
    assert "'atp-vm1': interrupted; killed in the guest" in shown
    assert sleepers(vm) == 0  # before the fix the guest's sleep kept running
    assert vm.exec(["echo", "usable"]).stdout == b"usable\n"


def test_an_interrupted_wait_for_agent_is_one_line_and_the_vm_stays_usable(vm: Vm) -> None:
    with resumed_after(vm):
        vm.qmp("stop")  # a paused guest's agent does not answer
        interrupt_in(1.0)
        with pytest.raises(Interrupted, match="waiting for the guest agent of 'atp-vm1': "
                                              "interrupted after"):
            vm.wait_for_agent(timeout=60)
    assert vm.wait_for_agent(timeout=60) >= 0


def run_interrupted(ip: InteractiveShell, source: str, capsys: pytest.CaptureFixture[str],
                    after: float) -> tuple[Any, str]:
    capsys.readouterr()
    interrupt_in(after)
    shell: Any = ip
    result = shell.run_cell(source)
    out = capsys.readouterr()
    return result.error_in_exec, out.out + out.err


@pytest.mark.parametrize("source", [
    f"%qga atp-vm1 exec -- sleep {SLEEP}",
    f"%%qga atp-vm1\nsleep {SLEEP}\n",
])
def test_interrupting_a_qga_magic_shows_one_line_and_the_kernel_goes_on(
    ip: InteractiveShell, session: Session, capsys: pytest.CaptureFixture[str], source: str,
) -> None:
    vm = session.vm("atp-vm1")
    error, shown = run_interrupted(ip, source, capsys, 1.5)
    assert isinstance(error, Interrupted)
    lines = [x for x in shown.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Interrupted: "), shown
    assert "killed in the guest" in lines[0]
    assert "Traceback" not in shown
    assert sleepers(vm) == 0
    shell: Any = ip
    assert shell.run_cell("%qga atp-vm1 guest-ping").error_in_exec is None  # still usable
