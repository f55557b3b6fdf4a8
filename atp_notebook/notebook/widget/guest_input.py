"""``GuestInput``: a widget's keys and pointer events sent to the guest in the order they came.

The widget hears input on the kernel's shell thread and must not block it. Posting each key
as its own coroutine (``send_scancodes_nowait``) lets two keys race: each opens or finds the
Inputs channel on its own, and a Shift released before the key it shifts types the wrong
character (seen in the browser test: a typed ``>`` lost). So one thread of the widget's own
sends them, one at a time through the blocking API, and only the last of several queued
pointer moves. Keys are never joined into one message: QEMU's PS/2 keyboard holds only a few
bytes, and a burst (a fast typist, a paste, a browser test) lost keys in the guest
("typed-iidget" for "typed-in-widget"); each key event goes alone, at most one every
``KEY_INTERVAL_S``, the pace ``vm.type()`` keeps.

Example::

    guest = GuestInput(vm.spice_input, "atp-vm1")
    guest.keys(b"\\x2a\\x1e\\x9e\\xaa")      # Shift-A
    guest.click(10, 20, "left")
    guest.flush(timeout=5)                 # everything queued was sent
    guest.close()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Protocol

from atp_notebook.errors import AtpError
from atp_notebook.spice.inputs import DEFAULT_RATE

__all__ = ["GuestInput", "InputOrder"]

SEND_TIMEOUT_S = 10.0
# one key event (a down or an up) at most this often: half of vm.type()'s stroke interval,
# since a stroke there is a down and an up
KEY_INTERVAL_S = 1 / (2 * DEFAULT_RATE)
# messages held back waiting for an earlier one before the gap is given up on (a view that
# reloaded mid-way, a message lost): input must not stop for good
MAX_HELD = 32


class InputOrder:
    """Puts each view's input messages back in the order the view numbered them.

    ipykernel dispatches comm messages that arrive during an async cell as concurrent tasks,
    so they may reach the widget out of order; each view numbers its input from 0 (``seq``)
    under an id of its own (``view``).

    Example::

        order = InputOrder()
        order.push("v1", 1, "b")      # []: 0 has not come yet
        order.push("v1", 0, "a")      # ["a", "b"]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._held: dict[str, dict[int, object]] = {}

    def push(self, view: str, seq: int, item: object) -> list[object]:
        """The items ready to go, in order, now that ``item`` number ``seq`` came."""
        with self._lock:
            expected = self._next.get(view, 0)
            if seq < expected:
                return []  # a duplicate
            held = self._held.setdefault(view, {})
            held[seq] = item
            if expected not in held and len(held) > MAX_HELD:
                expected = min(held)  # give up on the gap
            ready = []
            while expected in held:
                ready.append(held.pop(expected))
                expected += 1
            self._next[view] = expected
            return ready


class BlockingInput(Protocol):
    """What GuestInput needs of ``vm.spice_input`` (VmSpice)."""

    def send_scancodes(self, data: bytes, timeout: float) -> None: ...
    def move(self, x: int, y: int, timeout: float) -> object: ...
    def click(self, x: int, y: int, button: str, timeout: float) -> object: ...


class _Stop:
    """The end of the queue."""


_Item = tuple[str, bytes, int, int, str] | threading.Event | _Stop


class GuestInput:
    """The input thread of one widget."""

    def __init__(self, spice_input: BlockingInput, name: str) -> None:
        self._input = spice_input
        self._log = logging.getLogger(f"atp.widget.{name}.input")
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"atp-widget-input-{name}")
        self._thread.start()

    def keys(self, data: bytes) -> None:
        if data:
            self._queue.put(("keys", data, 0, 0, ""))

    def move(self, x: int, y: int) -> None:
        self._queue.put(("move", b"", x, y, ""))

    def click(self, x: int, y: int, button: str) -> None:
        self._queue.put(("click", b"", x, y, button))

    def flush(self, timeout: float) -> bool:
        """Until everything queued before was sent (True), or ``timeout`` (False)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = SEND_TIMEOUT_S) -> None:
        """Send what is queued, then end the thread."""
        self._queue.put(_Stop())
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        pending: _Item | None = None
        last_key = 0.0
        while True:
            item = pending if pending is not None else self._queue.get()
            pending = None
            if isinstance(item, _Stop):
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            kind, data, x, y, button = item
            # take what queued up meanwhile: a move gives way to the newest; anything else
            # waits for the next turn, in order
            while kind == "move":
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if (not isinstance(following, tuple) or following[0] != kind):
                    pending = following
                    break
                x, y = following[2], following[3]
            try:
                if kind == "keys":
                    wait = last_key + KEY_INTERVAL_S - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    last_key = time.monotonic()
                    self._input.send_scancodes(data, timeout=SEND_TIMEOUT_S)
                elif kind == "move":
                    self._input.move(x, y, timeout=SEND_TIMEOUT_S)
                else:
                    self._input.click(x, y, button, timeout=SEND_TIMEOUT_S)
            except AtpError as exc:  # the VM went away, a position off a resized screen...
                self._log.warning("%s not sent: %s", kind, exc)
