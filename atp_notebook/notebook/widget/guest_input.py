"""``GuestInput``: a widget's keys and pointer events sent to the guest in the order they came.

The widget hears input on the kernel's shell thread and must not block it. Posting each key
as its own coroutine (``send_scancodes_nowait``) lets two keys race: each opens or finds the
Inputs channel on its own, and a Shift released before the key it shifts types the wrong
character (seen in the browser test: a typed ``>`` lost). So one thread per VM sends them
(shared by its widgets: keys typed into one widget and then another keep their order), one
at a time through the blocking API, and only the last of several queued pointer moves.
Keys are never joined into one message: QEMU's PS/2 keyboard holds only a few bytes, and
a burst (a fast typist, a paste, a browser test) lost keys in the guest ("typed-iidget" for
"typed-in-widget"); each key event goes alone, at most one every ``KEY_INTERVAL_S``, the
pace ``vm.type()`` keeps. Buttons go down and up as separate
events (a drag is a press, moves, a release) and the wheel in notches; keys, buttons and
wheel keep their order with the moves between them.

Example::

    guest = GuestInput(vm.spice_input, "atp-vm1")
    guest.keys(b"\\x2a\\x1e\\x9e\\xaa")      # Shift-A
    guest.click(10, 20, "left")
    guest.button(10, 20, "left", down=True)   # a drag from 10,20 ...
    guest.move(200, 150)
    guest.button(200, 150, "left", down=False)
    guest.scroll(200, 150, -2)             # two notches down
    guest.flush(timeout=5)                 # everything queued was sent
    guest.close()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
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
    def button_down(self, x: int, y: int, button: str, timeout: float) -> object: ...
    def button_up(self, x: int, y: int, button: str, timeout: float) -> object: ...
    def scroll(self, x: int, y: int, clicks: int, timeout: float) -> object: ...


class _Stop:
    """The end of the queue."""


@dataclass(frozen=True, slots=True)
class _Send:
    """One input to send: ``kind`` keys (``data``), move, click, down, up (``button`` at
    ``x``, ``y``) or scroll (``clicks``)."""

    kind: str
    data: bytes = b""
    x: int = 0
    y: int = 0
    button: str = ""
    clicks: int = 0


_Item = _Send | threading.Event | _Stop


class _Sender:
    """The input thread of one VM's Inputs, shared by the VM's widgets: keys typed into one
    widget and then another go in the order typed (two threads raced: the second widget's
    keys went out while the first one's still waited their turn)."""

    def __init__(self, spice_input: BlockingInput, name: str) -> None:
        self._input = spice_input
        self.users = 0
        self.stopping = False
        self._log = logging.getLogger(f"atp.widget.{name}.input")
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"atp-widget-input-{name}")
        self.thread.start()

    def _run(self) -> None:
        pending: _Item | None = None
        last_key = 0.0
        while True:
            item = pending if pending is not None else self.queue.get()
            pending = None
            if isinstance(item, _Stop):
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            # take what queued up meanwhile: a move gives way to the newest; anything else
            # waits for the next turn, in order
            while item.kind == "move":
                try:
                    following = self.queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(following, _Send) or following.kind != "move":
                    pending = following
                    break
                item = following
            try:
                if item.kind == "keys":
                    wait = last_key + KEY_INTERVAL_S - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    last_key = time.monotonic()
                self._send(item)
            except AtpError as exc:  # the VM went away, a position off a resized screen...
                self._log.warning("%s not sent: %s", item.kind, exc)

    @property
    def input(self) -> BlockingInput:
        return self._input

    def _send(self, item: _Send) -> None:
        spice, x, y, timeout = self._input, item.x, item.y, SEND_TIMEOUT_S
        if item.kind == "keys":
            spice.send_scancodes(item.data, timeout=timeout)
        elif item.kind == "move":
            spice.move(x, y, timeout=timeout)
        elif item.kind == "click":
            spice.click(x, y, item.button, timeout=timeout)
        elif item.kind == "down":
            spice.button_down(x, y, item.button, timeout=timeout)
        elif item.kind == "up":
            spice.button_up(x, y, item.button, timeout=timeout)
        else:
            spice.scroll(x, y, item.clicks, timeout=timeout)


_senders: dict[int, _Sender] = {}  # id of a VM's Inputs -> its sender (which holds it)
_senders_lock = threading.Lock()


class GuestInput:
    """A widget's way to its VM's input thread (the thread is the VM's, shared by its
    widgets; it ends when the last of them closes)."""

    def __init__(self, spice_input: BlockingInput, name: str) -> None:
        with _senders_lock:
            sender = _senders.get(id(spice_input))
            if sender is None or sender.stopping:
                sender = _senders[id(spice_input)] = _Sender(spice_input, name)
            sender.users += 1
        self._sender = sender
        self._queue = sender.queue
        self._closed = False

    def keys(self, data: bytes) -> None:
        if data:
            self._queue.put(_Send("keys", data))

    def move(self, x: int, y: int) -> None:
        self._queue.put(_Send("move", x=x, y=y))

    def click(self, x: int, y: int, button: str) -> None:
        self._queue.put(_Send("click", x=x, y=y, button=button))

    def button(self, x: int, y: int, button: str, *, down: bool) -> None:
        """Press (``down``) or release ``button`` at ``x``, ``y``."""
        self._queue.put(_Send("down" if down else "up", x=x, y=y, button=button))

    def scroll(self, x: int, y: int, clicks: int) -> None:
        """Wheel notches at ``x``, ``y``: positive up."""
        if clicks:
            self._queue.put(_Send("scroll", x=x, y=y, clicks=clicks))

    def flush(self, timeout: float) -> bool:
        """Until everything queued before was sent (True), or ``timeout`` (False)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = SEND_TIMEOUT_S) -> None:
        """Let go of the VM's input thread; the last widget to close sends what is queued,
        then ends it."""
        sender = self._sender
        with _senders_lock:
            if self._closed:
                return
            self._closed = True
            sender.users -= 1
            last = sender.users == 0
            if last:
                sender.stopping = True
                if _senders.get(id(sender.input)) is sender:
                    del _senders[id(sender.input)]
        if last:
            self._queue.put(_Stop())
            if threading.current_thread() is not sender.thread:
                sender.thread.join(timeout)

    @property
    def alive(self) -> bool:
        """This widget may still send (not closed, the thread running)."""
        return not self._closed and self._sender.thread.is_alive()
