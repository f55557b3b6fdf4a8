"""``DisplayWidget``: a VM's screen, live in a notebook, with its keyboard and pointer.

An anywidget (its ESM is ``display_widget.js`` beside this file; nothing to build) showing a
``<canvas>`` that the kernel feeds with the damaged tiles of each frame as binary buffers
(tiles.py): JPEG while the screen moves, exact pixels once it is still. The frames come from
the display's listener on the atp loop and are encoded by a thread of the widget's own, so
they keep coming while another cell blocks the kernel; the pacing (pacing.py) sends at most
``fps`` frames a second and a few ahead of the browser's acknowledgements, and nothing at all
while no view shows the widget.

Keys (by ``KeyboardEvent.code``, keys.py) and pointer events from a focused view go to the
guest in order through an input thread of the widget's own (guest_input.py), so the kernel's
shell thread that hears them never waits for the VM.

Example::

    from atp_notebook import connect
    from atp_notebook.notebook.widget import DisplayWidget
    vm = connect().vm("atp-vm1")
    screen = DisplayWidget(vm)
    screen            # the last expression of a cell shows it
    screen.stats      # frames, bytes and encoding time so far
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from atp_notebook.errors import AtpError, InvalidArgument
from atp_notebook.listeners import ListenerHandle
from atp_notebook.notebook.widget.guest_input import GuestInput, InputOrder
from atp_notebook.notebook.widget.keys import HeldKeys
from atp_notebook.notebook.widget.pacing import FramePacer, FramePlan
from atp_notebook.notebook.widget.tiles import (
    JPEG_QUALITY,
    TileFormat,
    damaged_tiles,
    encode_tile,
    frame_message,
    lossless_format,
)
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.display.surfaces import Box

if TYPE_CHECKING:
    from atp_notebook.session import Vm

__all__ = ["DisplayWidget", "WidgetStats"]

OPEN_TIMEOUT_S = 30.0
PIXELS_TIMEOUT_S = 10.0
# browser MouseEvent.button -> Spice button name (vm.spice_input.click)
_BUTTONS = {0: "left", 1: "middle", 2: "right"}


@dataclass(frozen=True, slots=True)
class WidgetStats:
    """What the widget sent: ``frames`` (``lossless`` of them exact), ``tiles``, ``bytes``
    of tile data, ``encode_seconds`` spent reading and encoding pixels."""

    frames: int
    lossless: int
    tiles: int
    bytes: int
    encode_seconds: float


class DisplayWidget(anywidget.AnyWidget):
    """The live screen of ``vm``'s display ``channel`` (0: the first head), at most ``fps``
    frames a second and ``max_in_flight`` ahead of the browser's acknowledgements, JPEG
    tiles at ``quality``, exact tiles as ``lossless`` ("auto": raw RGBA when small, PNG when
    large; or always "rgba" / "png")."""

    _esm = pathlib.Path(__file__).with_name("display_widget.js")
    vm_name = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("connecting").tag(sync=True)

    def __init__(self, vm: Vm, channel: int = 0, *, fps: float = 30.0,
                 quality: int = JPEG_QUALITY, lossless: str = "auto",
                 max_in_flight: int = 2) -> None:
        if not 1 <= quality <= 100:
            raise InvalidArgument(f"DisplayWidget: quality {quality} is not 1..100")
        lossless_format(Box(0, 0, 1, 1), lossless)  # a bad choice raises here, not later
        self._lossless = lossless
        super().__init__(vm_name=vm.name if channel == 0 else f"{vm.name}:{channel}")
        self._vm = vm
        self._display = vm.display_channel(channel)
        self._guest = GuestInput(vm.spice_input, vm.name)
        self._order = InputOrder()
        self._quality = quality
        self._log = logging.getLogger(f"atp.widget.{vm.name}.display{channel or ''}")
        self._cond = threading.Condition()
        self._pacer = FramePacer(fps=fps, max_in_flight=max_in_flight)
        self._keys = HeldKeys()
        self._closing = False
        self._listener: ListenerHandle | None = None
        self._counts = [0, 0, 0, 0]  # frames, lossless, tiles, bytes
        self._encode_seconds = 0.0
        self.on_msg(self._on_message)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"atp-widget-{vm.name}-{channel}")
        self._thread.start()

    def __repr__(self) -> str:  # stable: nbval compares text/plain
        return f"<DisplayWidget {self.vm_name}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # the kernel shows the widget: its view's hello may wait for a busy cell to end,
        # frames need not (pacing.py)
        with self._cond:
            self._pacer.displayed(time.monotonic())
            self._cond.notify_all()
        return super()._repr_mimebundle_(**kwargs)

    @property
    def stats(self) -> WidgetStats:
        frames, lossless, tiles, size = self._counts
        return WidgetStats(frames, lossless, tiles, size, round(self._encode_seconds, 6))

    @property
    def views(self) -> int:
        """Views attached now (as they said: a closed browser tab says nothing)."""
        return self._pacer.views

    def close(self) -> None:
        """Stop sending frames, let go of the display and close every view."""
        if "_cond" not in self.__dict__:  # refused in __init__; ipywidgets' __del__ closes
            super().close()
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._release_keys()
        self._guest.close()
        super().close()

    # --- the encoder thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._listener = self._display.add_listener(self._on_frame, timeout=OPEN_TIMEOUT_S)
            screen = self._display.pixels(timeout=PIXELS_TIMEOUT_S)
        except AtpError as exc:
            self.status = f"failed: {exc.message}"
            return
        with self._cond:
            self._pacer.damage((), (screen.shape[1], screen.shape[0]), time.monotonic())
            self._cond.notify_all()
        self.status = "live"
        while True:
            with self._cond:
                plan = None
                while not self._closing:
                    now = time.monotonic()
                    plan = self._pacer.next_frame(now)
                    if plan is not None:
                        break
                    self._cond.wait(self._pacer.wait(now))
                if plan is None:
                    return
            try:
                self._send_frame(plan)
            except AtpError as exc:
                self.status = f"failed: {exc.message}"
                self._log.info("frame %d not sent: %s", plan.number, exc)
                with self._cond:  # the next frame from the display tries again
                    self._pacer.acknowledged(plan.number, time.monotonic())

    def _send_frame(self, plan: FramePlan) -> None:
        started = time.perf_counter()
        screen = self._display.pixels(timeout=PIXELS_TIMEOUT_S)
        height, width = screen.shape[:2]
        boxes = damaged_tiles(plan.boxes, width, height)
        tiles = [encode_tile(screen, box,
                             lossless_format(box, self._lossless) if plan.lossless
                             else TileFormat.JPEG, quality=self._quality)
                 for box in boxes]
        content, buffers = frame_message(plan.number, (width, height), tiles)
        self._encode_seconds += time.perf_counter() - started
        self.send(content, buffers=buffers)
        self._counts[0] += 1
        self._counts[1] += plan.lossless
        self._counts[2] += len(tiles)
        self._counts[3] += sum(len(b) for b in buffers)
        if self.status != "live":
            self.status = "live"

    # --- events -------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        """A frame of the display (on the atp loop): only note the damage."""
        with self._cond:
            self._pacer.damage(frame.rects, frame.size, time.monotonic())
            self._cond.notify_all()

    def _on_message(self, _widget: object, content: dict[str, Any],
                    _buffers: list[bytes]) -> None:
        """A message from a view (on the kernel's shell thread)."""
        kind = content.get("type")
        now = time.monotonic()
        if kind in ("ack", "hello", "bye"):
            with self._cond:
                if kind == "ack":
                    self._pacer.acknowledged(int(content.get("n", 0)), now)
                elif kind == "hello":
                    self._pacer.attach(now)
                else:
                    self._pacer.detach(now)
                self._cond.notify_all()
        elif kind in ("key", "blur", "pointer"):
            view, seq = str(content.get("view", "")), int(content.get("seq", 0))
            for ready in self._order.push(view, seq, content):
                assert isinstance(ready, dict)
                self._input_message(ready)

    def _input_message(self, content: dict[str, Any]) -> None:
        kind = content.get("type")
        if kind == "key":
            code = str(content.get("code", ""))
            data = self._keys.down(code) if content.get("down") else self._keys.up(code)
            self._guest.keys(data)
        elif kind == "blur":
            self._release_keys()
        elif kind == "pointer":
            self._pointer(content)

    def _release_keys(self) -> None:
        self._guest.keys(self._keys.release_all())

    def _pointer(self, content: dict[str, Any]) -> None:
        x, y = int(content.get("x", 0)), int(content.get("y", 0))
        kind = content.get("kind")
        if kind == "move":
            self._guest.move(x, y)
        elif kind == "up":
            # a first cut: a click where the button goes up (no drags yet: they need the
            # button held across moves, which VmSpice does not offer yet)
            button = _BUTTONS.get(int(content.get("button", 0)))
            if button is not None:
                self._guest.click(x, y, button)
