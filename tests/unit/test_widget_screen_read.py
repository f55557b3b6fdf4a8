"""DisplayWidget reads each frame from the display as it is open, never reopening it: a frame
read just as another Spice client takes the VM over must not reconnect (which would take the
VM back from that client). A VmDisplay stand-in counts the calls that open the display."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from atp_notebook.listeners import ListenerHandle
from atp_notebook.notebook.widget import DisplayWidget
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.display.surfaces import Box
from atp_notebook.spice.display_facade import VmDisplay
from tests.unit.test_widget_display import Frames, RecordingInput, say, wait_live

W, H = 64, 48
WAIT_S = 10.0


class FakeLive:
    """What the widget reads from an open display channel."""

    def __init__(self, value: int) -> None:
        self.ended = False
        self.value = value
        self.reads = 0

    def pixels(self) -> np.ndarray:
        self.reads += 1
        return np.full((H, W, 4), self.value, dtype=np.uint8)


class FakeSpice:
    def __init__(self) -> None:
        self.displays = type("Displays", (), {"lives": {}})()


class CountingDisplay(VmDisplay):
    """A VmDisplay whose opening calls (add_listener, pixels) are counted, not made."""

    def __init__(self) -> None:  # no manager: nothing here talks to a VM
        self.vm_id, self.channel_id = "vm-under-test", 0
        self.fake_spice = FakeSpice()
        self.opens = 0
        self.listener: Callable[[Frame], None] | None = None

    @property
    def spice(self) -> Any:
        return self.fake_spice

    def add_listener(self, listener: Callable[[Frame], None],
                     timeout: float = 0) -> ListenerHandle:
        self.listener = listener
        return ListenerHandle(lambda: None)

    def pixels(self, region: Any = None, timeout: float = 0) -> np.ndarray:
        self.opens += 1  # the facade's pixels() opens the channel when it is closed
        return np.zeros((H, W, 4), dtype=np.uint8)


class FakeVm:
    name = "vm-under-test"
    spice_only = False

    def __init__(self) -> None:
        self.display = CountingDisplay()
        self.spice_input = RecordingInput()

    def display_channel(self, channel: int) -> CountingDisplay:
        return self.display

    def state(self, timeout: float) -> str:
        return "running"


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.01)


def _damage(display: CountingDisplay, number: int) -> None:
    assert display.listener is not None
    display.listener(Frame(number, (Box(0, 0, W, H),), 0.0, (W, H)))


def test_frames_come_from_the_open_display_and_a_closed_one_is_not_reopened() -> None:
    vm = FakeVm()
    live = FakeLive(7)
    vm.display.fake_spice.displays.lives[0] = live
    widget = DisplayWidget(vm, max_in_flight=8)  # type: ignore[arg-type]
    frames = Frames()
    widget.send = frames
    try:
        wait_live(widget)
        assert vm.display.opens == 1  # the widget's own open: add_listener, then pixels()
        say(widget, type="hello")
        first = frames.wait_for(1)
        assert first[0][0]["type"] == "frame" and live.reads == 1
        # another client takes the VM over: the channel is gone before its event is heard
        del vm.display.fake_spice.displays.lives[0]
        _damage(vm.display, 2)
        # the widget's thread tries frame 2, fails, and counts it as done (acknowledged)
        _until(lambda: widget._pacer.acked == 2, "frame 2 tried and given up")
        assert vm.display.opens == 1  # not reopened for a frame
        assert len(frames.sent) == 1  # and nothing sent
        # a channel open again (a reconnect) is read again
        vm.display.fake_spice.displays.lives[0] = FakeLive(9)
        _damage(vm.display, 3)
        later = frames.wait_for(2)
        assert later[1][0]["type"] == "frame" and vm.display.opens == 1
    finally:
        widget.close()
