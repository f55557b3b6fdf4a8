"""DisplayWidget without a browser or a VM: a display and an input that record, messages
from a view fed to the widget as its comm would deliver them, frames caught where they would
go to the comm."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from ipywidgets.widgets.widget import (  # type: ignore[import-untyped]
    _instances as widget_instances,
)

from atp_notebook.errors import InvalidArgument
from atp_notebook.listeners import ListenerHandle
from atp_notebook.notebook.widget import DisplayWidget
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.display.surfaces import Box

W, H = 720, 400
WAIT_S = 10.0


class RecordingDisplay:
    def __init__(self) -> None:
        self.screen = np.zeros((H, W, 4), dtype=np.uint8)
        self.listener: Callable[[Frame], None] | None = None
        self.closed = threading.Event()

    def add_listener(self, listener: Callable[[Frame], None], timeout: float) -> ListenerHandle:
        self.listener = listener
        return ListenerHandle(self.closed.set)

    def pixels(self, timeout: float) -> np.ndarray:
        return self.screen.copy()


class SpiceEvents:
    """The VM's Spice connection as the widget listens to it."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[object], None]] = []

    def add_listener(self, listener: Callable[[object], None]) -> ListenerHandle:
        self.listeners.append(listener)
        return ListenerHandle(lambda: self.listeners.remove(listener))

    def emit(self, event: object) -> None:
        for listener in list(self.listeners):
            listener(event)


class RecordingInput:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.spice = SpiceEvents()

    def send_scancodes(self, data: bytes, timeout: float) -> None:
        self.calls.append(("scancodes", data))

    def click(self, x: int, y: int, button: str = "left", timeout: float = 0) -> None:
        self.calls.append(("click", x, y, button))

    def move(self, x: int, y: int, timeout: float = 0) -> None:
        self.calls.append(("move", x, y))

    def button_down(self, x: int, y: int, button: str, timeout: float = 0) -> None:
        self.calls.append(("down", x, y, button))

    def button_up(self, x: int, y: int, button: str, timeout: float = 0) -> None:
        self.calls.append(("up", x, y, button))

    def scroll(self, x: int, y: int, clicks: int, timeout: float = 0) -> None:
        self.calls.append(("scroll", x, y, clicks))

    @property
    def scancodes(self) -> bytes:
        return b"".join(c[1] for c in self.calls if c[0] == "scancodes")


class FakeVm:
    name = "vm-under-test"
    spice_only = False

    def __init__(self) -> None:
        self.display = RecordingDisplay()
        self.spice_input = RecordingInput()
        self.vm_state = "running"

    def state(self, timeout: float) -> str:
        return self.vm_state

    def display_channel(self, channel: int) -> RecordingDisplay:
        assert channel == 0
        return self.display


class Frames:
    """What the widget sends, caught in place of its comm."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self.arrived = threading.Condition()

    def __call__(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        with self.arrived:
            self.sent.append((content, buffers or []))
            self.arrived.notify_all()

    def wait_for(self, count: int) -> list[tuple[dict[str, Any], list[bytes]]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.sent) >= count, WAIT_S), self.sent
            return list(self.sent)


@pytest.fixture
def vm() -> FakeVm:
    return FakeVm()


@pytest.fixture
def widget(vm: FakeVm) -> Any:
    w = DisplayWidget(vm)  # type: ignore[arg-type]
    w.send = Frames()
    yield w
    w.close()


_numbers: dict[int, itertools.count[int]] = {}


def say(widget: DisplayWidget, **content: Any) -> None:
    """A message from the widget's one view; input numbered as the view numbers it."""
    if content["type"] in ("key", "blur", "pointer"):
        seq = next(_numbers.setdefault(id(widget), itertools.count()))
        content |= {"view": "test-view", "seq": seq}
    widget._on_message(widget, content, [])


def wait_live(widget: DisplayWidget) -> None:
    for _ in range(int(WAIT_S / 0.01)):
        if widget.status == "live":
            return
        threading.Event().wait(0.01)
    pytest.fail(f"the widget did not go live: {widget.status}")


def test_nothing_is_encoded_until_a_view_says_hello(widget: Any, vm: FakeVm) -> None:
    wait_live(widget)
    threading.Event().wait(0.2)
    assert widget.send.sent == []
    assert widget.stats.frames == 0
    say(widget, type="hello")
    content, buffers = widget.send.wait_for(1)[0]
    assert content["type"] == "frame" and content["n"] == 1
    assert (content["width"], content["height"]) == (W, H)
    assert content["tiles"] == [[0, 0, W, H, "png"]]  # the whole screen, exactly
    assert len(buffers) == 1 and buffers[0].startswith(b"\x89PNG")
    assert widget.stats.lossless == 1


def test_damage_is_sent_as_tiles_once_acknowledged(widget: Any, vm: FakeVm) -> None:
    wait_live(widget)
    say(widget, type="hello")
    widget.send.wait_for(1)
    say(widget, type="ack", n=1)
    vm.display.screen[0:10, 0:10] = 200
    assert vm.display.listener is not None
    vm.display.listener(Frame(1, (Box(0, 0, 10, 10),), 0.0, (W, H)))
    content, buffers = widget.send.wait_for(2)[1]
    assert content["tiles"] == [[0, 0, 64, 64, "rgba"]]
    tile = np.frombuffer(buffers[0], dtype=np.uint8).reshape(64, 64, 4)
    assert (tile[:10, :10] == (200, 200, 200, 255)).all()
    assert (tile[10:, 10:, :3] == 0).all()


def test_the_kernels_display_counts_as_a_view(widget: Any) -> None:
    wait_live(widget)
    widget._repr_mimebundle_()
    content, _ = widget.send.wait_for(1)[0]
    assert content["n"] == 1


def test_keys_go_to_the_guest_as_scancodes_and_blur_releases_them(widget: Any,
                                                                   vm: FakeVm) -> None:
    wait_live(widget)
    for code, down in (("ShiftLeft", True), ("KeyA", True), ("KeyA", True), ("KeyA", False),
                       ("PrintScreen", True)):
        say(widget, type="key", code=code, down=down)
    say(widget, type="blur")
    assert widget._guest.flush(WAIT_S)
    # in order; keys queued while one was being sent go in one message
    assert vm.spice_input.scancodes == b"\x2a\x1e\x1e\x9e\xaa"


def test_pointer_moves_and_clicks(widget: Any, vm: FakeVm) -> None:
    wait_live(widget)
    say(widget, type="pointer", kind="move", x=5, y=6, button=0)
    say(widget, type="pointer", kind="down", x=5, y=6, button=2)
    say(widget, type="pointer", kind="up", x=5, y=6, button=2)
    say(widget, type="pointer", kind="up", x=1, y=1, button=4)  # no Spice button: ignored
    assert widget._guest.flush(WAIT_S)
    assert vm.spice_input.calls == [("move", 5, 6), ("down", 5, 6, "right"),
                                    ("up", 5, 6, "right")]


def test_close_lets_go_of_the_display_and_releases_held_keys(vm: FakeVm) -> None:
    widget = DisplayWidget(vm)  # type: ignore[arg-type]
    wait_live(widget)
    say(widget, type="key", code="ControlLeft", down=True)
    widget.close()
    assert vm.display.closed.is_set()
    assert vm.spice_input.scancodes == b"\x1d\x9d"
    widget._thread.join(WAIT_S)
    assert not widget._thread.is_alive()
    assert not widget._guest.alive


def test_the_text_form_is_stable(widget: Any) -> None:
    assert repr(widget) == "<DisplayWidget vm-under-test>"


@pytest.mark.parametrize(("options", "message"), [
    ({"quality": 0}, "quality 0 is not 1..100"),
    ({"lossless": "jpeg"}, "use 'auto', 'rgba' or 'png'"),
    ({"transport": "websocket"}, "transport 'websocket' is not one of auto, comm"),
])
def test_bad_options_are_refused(vm: FakeVm, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        DisplayWidget(vm, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("options", "message"), [
    ({"fps": 0}, "fps and blind_fps > 0"),
    ({"max_in_flight": 0}, "max_in_flight >= 1"),
])
def test_bad_pacing_is_refused_before_any_widget_exists(vm: FakeVm, options: dict[str, Any],
                                                        message: str) -> None:
    # refused after ipywidgets had opened the widget's comm, a half-built widget stayed
    # registered for the kernel's life (and its close() failed on what was never set)
    before = len(widget_instances)
    with pytest.raises(InvalidArgument, match=message):
        DisplayWidget(vm, **options)  # type: ignore[arg-type]
    assert len(widget_instances) == before
