"""A display widget whose VM is destroyed while it is shown: the lab's atp-vm2 (Spice over
TLS) destroyed through libvirt, then started again by ``atp-lab up``.

No browser: the widget's state, threads and listeners are read in this process (the browser
side of the states is tests/browser/test_widget_states.py). Marked ``lifecycle``: it stops
a lab VM, so it runs after the other lab tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from atp_notebook.lab.status import LabStatus
from atp_notebook.notebook.widget import DisplayWidget
from atp_notebook.session import Session
from tests.integration.waiting import wait_until

pytestmark = pytest.mark.lifecycle

VM = "atp-vm2"
ATP_LAB = str(Path(sys.executable).with_name("atp-lab"))


@pytest.fixture
def vm_restarted(lab: LabStatus) -> Iterator[None]:
    """The lab as it was once the test is over: ``atp-lab up`` starts the destroyed VM."""
    yield
    result = subprocess.run([ATP_LAB, "up"], capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr


def widget_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("atp-widget"))


def test_a_vm_destroyed_while_shown_says_so_and_leaves_nothing_running(
        session: Session, vm_restarted: None) -> None:
    vm = session.vm(VM)
    before = widget_threads()
    widget = DisplayWidget(vm)
    try:
        wait_until(lambda: widget.status == "live", "the widget to go live", timeout=60)
        # the toolkit listens to the connection too: counted with the widget, then without
        spice_listeners = len(vm.spice_input.spice.listeners)
        frame_listeners = len(vm.spice_input.spice.displays.frame_listeners(0))
        assert frame_listeners >= 1
        conn = libvirt.open("qemu:///system")
        try:
            conn.lookupByName(VM).destroy()
        finally:
            conn.close()
        wait_until(lambda: widget.status.startswith("VM gone"), "the widget to say the VM "
                   "is gone", timeout=30)
        # libvirt says "shutting down" for a moment while QEMU is being killed
        assert re.fullmatch(r"VM gone \((shut off|shutting down)\) — click to reconnect",
                            widget.status), widget.status
        assert not widget._link.streaming
        frames = widget.stats.frames
        # a click on a gone VM: the reopen fails and says why, nothing hangs
        widget._on_message(widget, {"type": "reconnect"}, [])
        wait_until(lambda: widget.status.startswith("failed: "), "the reopen to fail",
                   timeout=60)
        assert widget.status.endswith(" — click to reconnect")
        assert widget.stats.frames == frames
    finally:
        widget.close()
    widget._thread.join(15)
    assert not widget._thread.is_alive() and not widget._guest.alive
    assert widget_threads() == before
    assert len(vm.spice_input.spice.listeners) == spice_listeners - 1
    assert len(vm.spice_input.spice.displays.frame_listeners(0)) == frame_listeners - 1
    assert widget.status == "closed"
