"""guest_input.py: a widget's input reaches the guest in order, keys paced one event at a
time, moves coalesced."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from atp_notebook.errors import ChannelClosed
from atp_notebook.notebook.widget.guest_input import (
    KEY_INTERVAL_S,
    MAX_HELD,
    GuestInput,
    InputOrder,
)

WAIT_S = 10.0


class SlowInput:
    """Records calls; the first one waits until ``go`` is set, so the rest queue up."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.go = threading.Event()
        self.fail_next = False

    def _call(self, *call: Any) -> None:
        if not self.calls:
            self.calls.append(call)
            assert self.go.wait(WAIT_S)
            return
        self.calls.append(call)
        if self.fail_next:
            self.fail_next = False
            raise ChannelClosed("atp-vm1: inputs channel closed")

    def wait_first_call(self) -> None:
        """Until the input thread took the first item (its send now waits for ``go``)."""
        for _ in range(100):
            if self.calls:
                return
            threading.Event().wait(0.01)

    def send_scancodes(self, data: bytes, timeout: float) -> None:
        self._call("keys", data)

    def move(self, x: int, y: int, timeout: float) -> None:
        self._call("move", x, y)

    def click(self, x: int, y: int, button: str, timeout: float) -> None:
        self._call("click", x, y, button)

    def button_down(self, x: int, y: int, button: str, timeout: float) -> None:
        self._call("down", x, y, button)

    def button_up(self, x: int, y: int, button: str, timeout: float) -> None:
        self._call("up", x, y, button)

    def scroll(self, x: int, y: int, clicks: int, timeout: float) -> None:
        self._call("scroll", x, y, clicks)


def test_what_queues_behind_a_slow_send_goes_in_order_keys_alone_moves_coalesced() -> None:
    spice = SlowInput()
    guest = GuestInput(spice, "vm")
    guest.keys(b"\x2a")  # taken at once; its send waits for go
    spice.wait_first_call()
    guest.keys(b"\x1e")
    guest.keys(b"\x9e\xaa")
    guest.move(1, 1)
    guest.move(2, 2)
    guest.move(3, 3)
    guest.click(3, 3, "left")
    guest.keys(b"")  # nothing: not queued
    guest.keys(b"\x1c\x9c")
    spice.go.set()
    assert guest.flush(WAIT_S)
    # keys are never joined: a burst of scancodes overflows the guest's PS/2 queue
    assert spice.calls == [("keys", b"\x2a"), ("keys", b"\x1e"), ("keys", b"\x9e\xaa"),
                           ("move", 3, 3), ("click", 3, 3, "left"), ("keys", b"\x1c\x9c")]
    guest.close()
    assert not guest.alive


def test_a_drag_keeps_its_moves_between_press_and_release_and_the_wheel_its_place() -> None:
    spice = SlowInput()
    guest = GuestInput(spice, "vm")
    guest.keys(b"\x2a")  # the first call waits for go: the rest queue behind it
    spice.wait_first_call()
    guest.button(10, 10, "left", down=True)
    guest.move(20, 20)
    guest.move(30, 30)  # coalesced with the move before, never past the release
    guest.button(30, 30, "left", down=False)
    guest.move(40, 40)
    guest.scroll(40, 40, 0)  # nothing: not queued
    guest.scroll(40, 40, -3)
    guest.keys(b"\xaa")
    spice.go.set()
    assert guest.flush(WAIT_S)
    assert spice.calls == [("keys", b"\x2a"), ("down", 10, 10, "left"), ("move", 30, 30),
                           ("up", 30, 30, "left"), ("move", 40, 40), ("scroll", 40, 40, -3),
                           ("keys", b"\xaa")]
    guest.close()


def test_keys_are_paced_like_typing() -> None:
    spice = SlowInput()
    spice.go.set()
    stamps: list[float] = []
    send = spice.send_scancodes

    def stamped(data: bytes, timeout: float) -> None:
        stamps.append(time.monotonic())
        send(data, timeout)

    spice.send_scancodes = stamped  # type: ignore[method-assign]
    guest = GuestInput(spice, "vm")
    for code in range(0x10, 0x20):
        guest.keys(bytes([code]))
    assert guest.flush(WAIT_S)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) == 16 and min(gaps) >= KEY_INTERVAL_S * 0.99
    guest.close()


def test_a_failed_send_is_logged_and_the_next_goes() -> None:
    spice = SlowInput()
    spice.go.set()
    guest = GuestInput(spice, "vm")
    guest.keys(b"\x01")
    assert guest.flush(WAIT_S)
    spice.fail_next = True
    guest.click(1, 2, "right")
    guest.keys(b"\x81")
    assert guest.flush(WAIT_S)
    assert spice.calls[-2:] == [("click", 1, 2, "right"), ("keys", b"\x81")]
    guest.close()
    assert not guest.alive


ORDER_CASES = [
    ("in order", [("v", 0, "a"), ("v", 1, "b")], [["a"], ["b"]]),
    ("one overtaken", [("v", 1, "b"), ("v", 0, "a"), ("v", 2, "c")], [[], ["a", "b"], ["c"]]),
    ("a duplicate is dropped", [("v", 0, "a"), ("v", 0, "a")], [["a"], []]),
    ("views are numbered apart", [("v", 1, "b"), ("w", 0, "x"), ("v", 0, "a")],
     [[], ["x"], ["a", "b"]]),
]


@pytest.mark.parametrize(("pushes", "expected"), [c[1:] for c in ORDER_CASES],
                         ids=[c[0] for c in ORDER_CASES])
def test_input_order(pushes: list[tuple[str, int, str]], expected: list[list[str]]) -> None:
    order = InputOrder()
    assert [order.push(view, seq, item) for view, seq, item in pushes] == expected


def test_a_gap_that_never_fills_is_given_up_on() -> None:
    order = InputOrder()
    out = [order.push("v", seq, seq) for seq in range(1, MAX_HELD + 2)]
    assert out[:-1] == [[]] * MAX_HELD
    assert out[-1] == list(range(1, MAX_HELD + 2))
    assert order.push("v", MAX_HELD + 2, "next") == ["next"]


def test_two_widgets_of_one_vm_send_in_the_order_typed_and_share_one_thread() -> None:
    # keys typed into one widget, then into another of the same VM: with a thread each, the
    # second widget's keys went out while the first one's still waited their turn
    spice = SlowInput()
    first, second = GuestInput(spice, "vm"), GuestInput(spice, "vm")
    first.keys(b"\x1e")  # taken at once; its send waits for go
    spice.wait_first_call()
    first.keys(b"\x9e")
    second.keys(b"\x30")
    second.keys(b"\xb0")
    spice.go.set()
    assert second.flush(WAIT_S)
    assert spice.calls == [("keys", b"\x1e"), ("keys", b"\x9e"), ("keys", b"\x30"),
                           ("keys", b"\xb0")]
    thread = first._sender.thread
    assert second._sender.thread is thread  # one thread for the VM
    first.close()
    assert not first.alive and second.alive  # the other widget still sends
    second.keys(b"\x2e")
    assert second.flush(WAIT_S) and spice.calls[-1] == ("keys", b"\x2e")
    second.close()
    assert not second.alive
    thread.join(WAIT_S)
    assert not thread.is_alive()  # the last one to close ended it
