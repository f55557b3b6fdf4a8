"""Display traffic holds nothing else up (issue 13), checked for correctness on the real lab:
while a full-screen animation streams (MJPEG) to our lossy display of the ``streaming``
display VM, text typed on that same VM's Inputs channel arrives in the guest byte for byte,
QMP calls on another VM (atp-vm1) made meanwhile from another thread all return, and the
display goes on drawing stream frames throughout.

Nothing is timed here: how much the stream slows input and QMP is measured by
``bench/bench_display_isolation.py``. Run under the lab lock (``flock /tmp/atp-lab.lock``):
it boots a display VM.
"""

from __future__ import annotations

import string
import threading
import time
from collections.abc import Iterator

import pytest

from atp_notebook.errors import AtpError
from atp_notebook.lab.display_vms import DisplayGuest, DisplayVm, display_vm
from atp_notebook.lab.known_images import animation_frames
from atp_notebook.lab.paths import LAB_VMS
from atp_notebook.loop import run
from atp_notebook.session import Session, Vm
from atp_notebook.spice.proto.display import DisplayOptions
from tests.integration.waiting import wait_for_guest_file, wait_until

OTHER_VM = LAB_VMS[0].name  # atp-vm1
TEXT = string.ascii_letters + string.digits + " -_=+.,/"  # nothing the shell expands in ''
ANIMATION_FRAMES = 4  # full-screen, photo-like: a stream under streaming-video=all
STREAM_FRAMES_FIRST = 10  # the stream runs before typing starts
STREAM_TIMEOUT_S = 60.0
QMP_PAUSE_S = 0.02


@pytest.fixture
def streaming_vm(session: Session) -> Iterator[DisplayVm]:
    with display_vm("streaming") as dvm:
        try:
            yield dvm
        finally:  # before the VM goes: its end would read as the server dropping us
            run(session.vm(dvm.name).spice_input.spice.close(), timeout=30)


class QmpCaller:
    """``vm.qmp("query-status")`` in a loop on a thread of its own until stopped; keeps
    every status and every error."""

    def __init__(self, vm: Vm) -> None:
        self.vm = vm
        self.statuses: list[str] = []
        self.errors: list[AtpError] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qmp-caller", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.statuses.append(self.vm.qmp("query-status")["status"])
            except AtpError as exc:
                self.errors.append(exc)
            time.sleep(QMP_PAUSE_S)

    def __enter__(self) -> QmpCaller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "a QMP call on the other VM never returned"


def test_typing_and_qmp_go_on_while_a_full_screen_stream_plays(
    session: Session, streaming_vm: DisplayVm,
) -> None:
    vm = session.vm(streaming_vm.name)
    other = session.vm(OTHER_VM, host="local")
    guest = DisplayGuest(vm)
    guest.framebuffers_on()
    guest.show(None, 0)  # black, console unbound: tty1's echo does not reach the screen
    guest.run(["/bin/rm", "-f", "/tmp/typed"])
    vm.display.open(options=DisplayOptions.lossy())

    with guest.animate(animation_frames(ANIMATION_FRAMES)):
        wait_until(lambda: vm.display.stats().stream_frames >= STREAM_FRAMES_FIRST,
                   "the animation to become an MJPEG stream", timeout=STREAM_TIMEOUT_S,
                   interval=0.1)
        before = vm.display.stats()
        with QmpCaller(other) as qmp:
            vm.press("ctrl-c")  # a clean prompt on tty1
            # one line for the shell's own line editor: no hand-over of the terminal to
            # another program, whose type-ahead the shell would discard
            vm.type(f"\necho '{TEXT}' > /tmp/typed\n")
            # the screen is still streaming while all that happened
            frame = vm.display.wait_for_change(timeout=STREAM_TIMEOUT_S)
        after = vm.display.stats()

    assert wait_for_guest_file(vm, "/tmp/typed") == (TEXT + "\n").encode()
    assert not qmp.errors, qmp.errors
    assert qmp.statuses and set(qmp.statuses) == {"running"}, qmp.statuses
    assert after.stream_frames > before.stream_frames, (before, after)
    assert frame.number > before.frames and frame.size == (1024, 768), (frame, before)
