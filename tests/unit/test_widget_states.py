"""DisplayWidget's states and input without a browser or a VM: a takeover, the VM gone, an
open that fails, a close mid-frame, two widgets of one VM; drags, the wheel, special keys and
the snapshot. The fakes are test_widget_display's; Spice events are fed as the VM's
connection would emit them."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from atp_notebook.errors import ChannelClosed
from atp_notebook.listeners import ListenerHandle
from atp_notebook.notebook.widget import DisplayWidget
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.display.surfaces import Box
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm_events import ChannelEnded, ChannelOpened, ConnectionLost
from tests.unit.test_widget_display import WAIT_S, FakeVm, Frames, H, RecordingDisplay, W, say

TAKEN_OVER = "taken over — click to reconnect"
LOST = ConnectionLost("vm-under-test", "the Spice server closed the connection")
DISPLAY_ENDED = ChannelEnded("vm-under-test", ChannelType.DISPLAY, 0, "closed by the server")


class SharedDisplay(RecordingDisplay):
    """A display with any number of frame listeners (as VmDisplays keeps them), whose reads
    can be made to fail or to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Callable[[Frame], None]] = []
        self.fail: str | None = None
        self.hold = threading.Event()
        self.hold.set()
        self.reading = threading.Event()

    def add_listener(self, listener: Callable[[Frame], None], timeout: float) -> ListenerHandle:
        self.listeners.append(listener)
        return ListenerHandle(lambda: self.listeners.remove(listener))

    def pixels(self, timeout: float) -> np.ndarray:
        self.reading.set()
        assert self.hold.wait(WAIT_S)
        if self.fail:
            raise ChannelClosed(self.fail)
        return self.screen.copy()

    def draw(self, box: Box, value: int) -> None:
        self.screen[box.top:box.bottom, box.left:box.right] = value
        for listener in list(self.listeners):
            listener(Frame(1, (box,), 0.0, (W, H)))


class SharedVm(FakeVm):
    display: SharedDisplay

    def __init__(self) -> None:
        super().__init__()
        self.display = SharedDisplay()


@pytest.fixture
def vm() -> SharedVm:
    return SharedVm()


def new_widget(vm: SharedVm) -> Any:
    widget = DisplayWidget(vm)  # type: ignore[arg-type]
    widget.send = Frames()
    return widget


@pytest.fixture
def widget(vm: SharedVm) -> Iterator[Any]:
    w = new_widget(vm)
    yield w
    w.close()


def wait_status(widget: DisplayWidget, status: str) -> None:
    for _ in range(int(WAIT_S / 0.01)):
        if widget.status == status:
            return
        threading.Event().wait(0.01)
    pytest.fail(f"status {widget.status!r}, waited for {status!r}")


def frames(widget: Any) -> list[dict[str, Any]]:
    return [c for c, _ in widget.send.sent if c["type"] == "frame"]


def showing(widget: Any) -> None:
    """Live, a view attached, its first frame sent and acknowledged."""
    wait_status(widget, "live")
    say(widget, type="hello")
    first = widget.send.wait_for(1)[0][0]
    say(widget, type="ack", n=first["n"])


def test_a_takeover_stops_frames_and_input_until_a_click_reconnects(widget: Any,
                                                                   vm: SharedVm) -> None:
    showing(widget)
    vm.spice_input.spice.emit(DISPLAY_ENDED)  # the display's end is often heard first
    vm.spice_input.spice.emit(LOST)
    wait_status(widget, TAKEN_OVER)
    sent_before = len(widget.send.sent)
    vm.display.draw(Box(0, 0, 8, 8), 50)  # frames drawn meanwhile (the queue drains)
    say(widget, type="key", code="KeyA", down=True)  # would reconnect: dropped
    say(widget, type="pointer", kind="down", x=1, y=1, button=0)
    threading.Event().wait(0.5)
    assert widget._guest.flush(WAIT_S)
    assert vm.spice_input.calls == []
    assert len(widget.send.sent) == sent_before
    assert widget._link.lost is not None

    say(widget, type="reconnect")
    wait_status(widget, "live")
    # the whole screen again, as it is now
    content = widget.send.wait_for(sent_before + 1)[sent_before][0]
    assert sum(t[2] * t[3] for t in content["tiles"]) == W * H
    say(widget, type="key", code="KeyA", down=True)
    assert widget._guest.flush(WAIT_S)
    assert vm.spice_input.scancodes == b"\x1e"


def test_the_display_reopened_by_another_user_resumes_the_widget(widget: Any,
                                                                  vm: SharedVm) -> None:
    showing(widget)
    vm.spice_input.spice.emit(LOST)
    wait_status(widget, TAKEN_OVER)
    vm.spice_input.spice.emit(ChannelOpened("vm-under-test", ChannelType.DISPLAY, 0, False))
    wait_status(widget, "live")


@pytest.mark.parametrize(("state", "status"), [
    ("shut off", "VM gone (shut off) — click to reconnect"),
    ("crashed", "VM gone (crashed) — click to reconnect"),
])
def test_the_vm_gone_is_shown_and_close_leaves_nothing_behind(vm: SharedVm, state: str,
                                                               status: str) -> None:
    widget = new_widget(vm)
    showing(widget)
    vm.vm_state = state
    vm.spice_input.spice.emit(LOST)
    wait_status(widget, status)
    widget.close()
    widget._thread.join(WAIT_S)
    assert not widget._thread.is_alive() and not widget._guest.alive
    assert vm.display.listeners == [] and vm.spice_input.spice.listeners == []
    assert widget.status == "closed"
    assert vm.spice_input.calls == []  # nothing sent to a VM that is gone


def test_a_spice_only_vm_says_connection_lost(vm: SharedVm) -> None:
    vm.spice_only = True
    widget = new_widget(vm)
    try:
        showing(widget)
        vm.spice_input.spice.emit(LOST)
        wait_status(widget, "connection lost — click to reconnect")
    finally:
        widget.close()


def test_an_open_that_fails_is_shown_and_a_click_tries_again(vm: SharedVm) -> None:
    vm.display.fail = "vm-under-test: display channel 0 ended as it opened"
    widget = new_widget(vm)
    try:
        wait_status(widget, "failed: vm-under-test: display channel 0 ended as it opened"
                            " — click to reconnect")
        say(widget, type="reconnect")
        wait_status(widget, "failed: vm-under-test: display channel 0 ended as it opened"
                            " — click to reconnect")
        vm.display.fail = None
        say(widget, type="reconnect")
        wait_status(widget, "live")
    finally:
        widget.close()
    assert len(vm.display.listeners) == 0


def test_a_widget_closed_mid_frame_ends_its_threads(vm: SharedVm) -> None:
    widget = new_widget(vm)
    showing(widget)
    vm.display.hold.clear()
    vm.display.reading.clear()
    vm.display.draw(Box(0, 0, 200, 200), 90)
    assert vm.display.reading.wait(WAIT_S)  # the encoder is reading the pixels
    widget.close()  # returns while the read still waits
    assert widget.status == "closed"
    vm.display.hold.set()
    widget._thread.join(WAIT_S)
    assert not widget._thread.is_alive() and not widget._guest.alive
    assert vm.display.listeners == [] and vm.spice_input.spice.listeners == []


def test_two_widgets_of_one_vm_both_update_and_each_keeps_its_input_order(vm: SharedVm) -> None:
    a, b = new_widget(vm), new_widget(vm)
    try:
        showing(a)
        showing(b)
        assert len(vm.display.listeners) == 2
        vm.display.draw(Box(0, 0, 16, 16), 123)
        for w in (a, b):
            content, buffers = w.send.wait_for(2)[1]
            assert content["tiles"][0][:2] == [0, 0]
            tile = np.frombuffer(buffers[0], dtype=np.uint8).reshape(64, 64, 4)
            assert (tile[:16, :16, :3] == 123).all()
        for code in ("KeyA", "KeyB"):
            say(a, type="key", code=code, down=True)
            say(a, type="key", code=code, down=False)
        assert a._guest.flush(WAIT_S)
        assert vm.spice_input.scancodes == b"\x1e\x9e\x30\xb0"
        vm.spice_input.spice.emit(LOST)
        wait_status(a, TAKEN_OVER)
        wait_status(b, TAKEN_OVER)
        say(a, type="reconnect")
        wait_status(a, "live")
        # the reopen a made is heard by b: it resumes too
        vm.spice_input.spice.emit(ChannelOpened("vm-under-test", ChannelType.DISPLAY, 0,
                                                False))
        wait_status(b, "live")
    finally:
        a.close()
        b.close()
    assert vm.display.listeners == [] and vm.spice_input.spice.listeners == []


def test_a_drag_the_wheel_and_special_keys_reach_the_guest_in_order(widget: Any,
                                                                    vm: SharedVm) -> None:
    showing(widget)
    say(widget, type="pointer", kind="down", x=10, y=20, button=0)
    say(widget, type="pointer", kind="move", x=30, y=40, button=0)
    say(widget, type="pointer", kind="up", x=50, y=60, button=0)
    say(widget, type="pointer", kind="wheel", x=50, y=60, dy=100, mode=0, button=0)
    say(widget, type="pointer", kind="wheel", x=50, y=60, dy=-3, mode=1, button=0)
    say(widget, type="special", combo="ctrl-alt-delete")
    say(widget, type="special", combo="no-such-key")  # logged, nothing sent
    say(widget, type="pointer", kind="down", x=5, y=5, button=2)
    say(widget, type="blur")  # lets go of the right button where the pointer was
    assert widget._guest.flush(WAIT_S)
    calls = vm.spice_input.calls
    assert calls[:5] == [("down", 10, 20, "left"), ("move", 30, 40), ("up", 50, 60, "left"),
                         ("scroll", 50, 60, -2), ("scroll", 50, 60, 1)]
    assert [c[1].hex() for c in calls[5:11]] == ["1d", "38", "e053", "e0d3", "b8", "9d"]
    assert calls[11:] == [("down", 5, 5, "right"), ("up", 5, 5, "right")]


def test_the_snapshot_is_the_exact_screen_as_a_png(widget: Any, vm: SharedVm) -> None:
    showing(widget)
    vm.display.screen[:, :, 0] = np.arange(W, dtype=np.uint8)  # blue ramp
    vm.display.screen[:, :, 2] = 7
    say(widget, type="snapshot", request="v-0")
    for _ in range(int(WAIT_S / 0.01)):
        answers = [(c, b) for c, b in widget.send.sent if c["type"] == "snapshot"]
        if answers:
            break
        threading.Event().wait(0.01)
    (content, buffers), = answers
    assert content["request"] == "v-0" and content["name"].startswith("vm-under-test-")
    assert content["name"].endswith(".png")
    image = np.asarray(Image.open(io.BytesIO(buffers[0])).convert("RGB"))
    assert (image[:, :, 2] == vm.display.screen[:, :, 0]).all()
    assert (image[:, :, 0] == 7).all()


def test_no_snapshot_while_taken_over(widget: Any, vm: SharedVm) -> None:
    showing(widget)
    vm.spice_input.spice.emit(LOST)
    wait_status(widget, TAKEN_OVER)
    say(widget, type="snapshot", request="v-1")
    answer = next(c for c, _ in widget.send.sent if c["type"] == "snapshot")
    assert answer == {"type": "snapshot", "request": "v-1", "error": TAKEN_OVER}
