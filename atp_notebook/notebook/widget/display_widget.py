"""``DisplayWidget``: a VM's screen, live in a notebook, with its keyboard and pointer.

An anywidget (its ESM is ``display_widget.js`` beside this file; nothing to build) showing a
``<canvas>`` that the kernel feeds with the damaged tiles of each frame as binary buffers
(tiles.py): JPEG while the screen moves, exact pixels once it is still. The frames come from
the display's listener on the atp loop and are encoded by a thread of the widget's own, so
they keep coming while another cell blocks the kernel; the pacing (pacing.py) sends at most
``fps`` frames a second and a few ahead of the browser's acknowledgements, and nothing at all
while no view shows the widget.

Keys (by ``KeyboardEvent.code``, keys.py), the row of special keys under the canvas and
pointer events (buttons held across moves, the wheel: pointer.py) from a focused view go to
the guest in order through the VM's input thread (guest_input.py, shared by its widgets),
so the kernel's shell thread that hears them never waits for the VM. The snapshot button
asks the kernel for the exact screen (PNG of ``vm.display``'s pixels, as ``vm.screenshot()``).

Frames travel on a loopback WebSocket of the widget's own when the browser reaches it
(frame_socket.py: about four times cheaper a frame than Jupyter's comm path, and its
acknowledgements are heard while a cell blocks the kernel), else as comm messages; a page
whose socket fails or closes says so and gets them by comm again (``transport="comm"``
keeps them there).

The status line says where the connection stands (link_state.py): connecting, live, failed,
taken over by another Spice client, VM gone, closed. Once the connection is lost nothing is
encoded and no input is sent until a click on the canvas reconnects.

Example::

    from atp_notebook import connect
    from atp_notebook.notebook.widget import DisplayWidget
    vm = connect().vm("atp-vm1")
    screen = DisplayWidget(vm)
    screen            # the last expression of a cell shows it
    screen.stats      # frames, bytes and encoding time so far
"""

from __future__ import annotations

import io
import logging
import pathlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from atp_notebook.errors import AtpError, ChannelClosed, InvalidArgument, UnknownVm
from atp_notebook.listeners import ListenerHandle
from atp_notebook.notebook.widget.frame_socket import FrameEndpoint, frame_server, pack_frame
from atp_notebook.notebook.widget.guest_input import GuestInput, InputOrder
from atp_notebook.notebook.widget.keys import SPECIAL_KEYS, HeldKeys, combo_key_events
from atp_notebook.notebook.widget.link_state import LinkState
from atp_notebook.notebook.widget.pacing import FramePacer, FramePlan
from atp_notebook.notebook.widget.pointer import HeldButtons, WheelNotches
from atp_notebook.notebook.widget.tiles import (
    JPEG_QUALITY,
    TileFormat,
    damaged_tiles,
    encode_tile,
    frame_message,
    lossless_format,
)
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.display.surfaces import Box, Pixels
from atp_notebook.spice.display_facade import VmDisplay, to_image
from atp_notebook.spice.vm_events import SpiceVmEvent

if TYPE_CHECKING:
    from atp_notebook.session import Vm

__all__ = ["DisplayWidget", "WidgetStats"]

OPEN_TIMEOUT_S = 30.0
PIXELS_TIMEOUT_S = 10.0
STATE_TIMEOUT_S = 5.0
# after a lost connection, how long libvirt may take to say the VM stopped (a destroyed VM's
# sockets close as its QEMU dies, a moment before libvirt reaps it); a VM still running
# then was taken over by another client
VM_GONE_WAIT_S = 2.0
VM_STATE_INTERVAL_S = 0.25
TRANSPORTS = ("auto", "comm")


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
    frames a second and ``max_in_flight`` ahead of the browser's acknowledgements (4: the
    browser acknowledges a frame only when fewer than two wait behind it, so half as many
    acknowledgements, each a busy/idle pair JupyterLab redraws, keep the pipe full), JPEG
    tiles at ``quality``, exact tiles as ``lossless`` ("auto": raw RGBA when small, PNG when
    large; or always "rgba" / "png"), frames on the widget's loopback socket when the
    browser reaches it (``transport="auto"``) or always by comm (``"comm"``)."""

    _esm = pathlib.Path(__file__).with_name("display_widget.js")
    vm_name = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("connecting").tag(sync=True)
    special_keys = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    frame_socket = traitlets.Unicode("").tag(sync=True)  # its URL, "" for the comm only

    def __init__(self, vm: Vm, channel: int = 0, *, fps: float = 30.0,
                 quality: int = JPEG_QUALITY, lossless: str = "auto",
                 max_in_flight: int = 4, transport: str = "auto") -> None:
        if not 1 <= quality <= 100:
            raise InvalidArgument(f"DisplayWidget: quality {quality} is not 1..100")
        if transport not in TRANSPORTS:
            raise InvalidArgument(f"DisplayWidget: transport {transport!r} is not one of "
                                  f"{', '.join(TRANSPORTS)}")
        lossless_format(Box(0, 0, 1, 1), lossless)  # a bad choice raises here, not later
        # made before the widget's comm opens: a refusal leaves no half-built widget behind
        pacer = FramePacer(fps=fps, max_in_flight=max_in_flight)
        self._lossless = lossless
        super().__init__(vm_name=vm.name if channel == 0 else f"{vm.name}:{channel}",
                         special_keys=[list(k) for k in SPECIAL_KEYS])
        self._vm = vm
        self._display = vm.display_channel(channel)
        self._guest = GuestInput(vm.spice_input, vm.name)
        self._order = InputOrder()
        self._quality = quality
        self._log = logging.getLogger(f"atp.widget.{vm.name}.display{channel or ''}")
        self._cond = threading.Condition()
        self._pacer = pacer
        self._keys = HeldKeys()
        self._buttons = HeldButtons()
        self._wheel = WheelNotches()
        self._last_pointer = (0, 0)  # where buttons still held go up on blur
        self._link = LinkState(channel)
        self._snapshot: threading.Thread | None = None
        self._closing = False
        self._listener: ListenerHandle | None = None
        # the VM's Spice events (on the atp loop): a takeover, the VM gone
        self._spice_listener = vm.spice_input.spice.add_listener(self._on_spice_event)
        self._counts = [0, 0, 0, 0]  # frames, lossless, tiles, bytes
        self._encode_seconds = 0.0
        self._sockets_open = 0  # frame sockets of views connected now
        self._comm_pages: set[str] = set()  # pages whose socket failed: frames by comm too
        self._endpoint = self._open_endpoint() if transport == "auto" else None
        if self._endpoint is not None:
            self.frame_socket = self._endpoint.url
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
    def transport(self) -> str:
        """How frames go now: "socket", "comm", or "socket+comm" (pages of both kinds)."""
        with self._cond:
            return self._transport()

    def _transport(self) -> str:
        if not self._sockets_open:
            return "comm"
        return "socket+comm" if self._comm_pages else "socket"

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
            streaming = self._link.streaming
            self._link.close()
            self._cond.notify_all()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        endpoint = self.__dict__.get("_endpoint")  # None: __init__ failed or comm only
        if endpoint is not None:
            endpoint.close()
        spice_listener = self.__dict__.get("_spice_listener")  # None: __init__ failed
        if spice_listener is not None:
            spice_listener.close()
        if streaming:  # else sending would reconnect, and the guest lost them anyway
            self._release_held()
        self._guest.close()
        self.status = self._link.status
        super().close()

    # --- the encoder thread -------------------------------------------------------------

    def _run(self) -> None:
        """Open the display, stream its frames until the widget closes or the connection
        is lost, then wait for a view to ask for a reconnect."""
        while self._open_display():
            self._stream()
            if not self._after_loss():
                return

    def _open_display(self) -> bool:
        """(Re)open the display and queue its whole screen; False once the widget closes.
        A failure is shown and waits for a reconnect."""
        while True:
            with self._cond:
                if self._closing:
                    return False
                self._link.connecting()
            self._show_status()
            try:
                if self._listener is None:
                    handle = self._display.add_listener(self._on_frame,
                                                        timeout=OPEN_TIMEOUT_S)
                    with self._cond:
                        if self._closing:  # close() ran meanwhile: it let go of none
                            handle.close()
                            return False
                        self._listener = handle  # frame listeners outlive a reopen
                screen = self._display.pixels(timeout=PIXELS_TIMEOUT_S)
            except AtpError as exc:
                with self._cond:
                    self._link.open_failed(exc.message)
                self._show_status()
                if not self._wait_for_reconnect():
                    return False
                continue
            with self._cond:
                size = (screen.shape[1], screen.shape[0])
                # the whole screen: it may have changed while we were not connected
                self._pacer.damage((Box(0, 0, *size),), size, time.monotonic())
                self._link.opened()
                self._cond.notify_all()
            self._show_status()
            return True

    def _stream(self) -> None:
        while True:
            with self._cond:
                plan = None
                while not self._closing and self._link.streaming:
                    now = time.monotonic()
                    plan = self._pacer.next_frame(now)
                    if plan is not None:
                        break
                    self._cond.wait(self._pacer.wait(now))
                if plan is None:
                    return
            try:
                self._send_frame(plan)
            except AtpError as exc:  # a lost connection is told by its event (link_state)
                self._log.info("frame %d not sent: %s", plan.number, exc)
                with self._cond:  # the next frame from the display tries again
                    self._pacer.acknowledged(plan.number, time.monotonic())

    def _screen_now(self) -> Pixels:
        """The display's screen as drawn now, never (re)opening the display: a frame read
        just as another client takes the VM over would otherwise reconnect and take the VM
        back (the takeover's event ends the stream a moment later). Read under the live
        display's lock from this thread: no round trip through the atp loop per frame."""
        display = self._display
        if not isinstance(display, VmDisplay):  # a stand-in (tests, bench/widget_kernel.py)
            return display.pixels(timeout=PIXELS_TIMEOUT_S)
        live = display.spice.displays.lives.get(display.channel_id)
        if live is None or live.ended:
            raise ChannelClosed(f"{display.vm_id}: display channel {display.channel_id} is "
                                "not open (taken over or lost): not reopened for a frame")
        return live.pixels()

    def _send_frame(self, plan: FramePlan) -> None:
        started = time.perf_counter()
        screen = self._screen_now()
        height, width = screen.shape[:2]
        boxes = damaged_tiles(plan.boxes, width, height)
        tiles = [encode_tile(screen, box,
                             lossless_format(box, self._lossless) if plan.lossless
                             else TileFormat.JPEG, quality=self._quality)
                 for box in boxes]
        content, buffers = frame_message(plan.number, (width, height), tiles)
        with self._cond:
            transport = self._transport()
        if transport != "comm":
            assert self._endpoint is not None
            self._endpoint.send(pack_frame(content, buffers))
        self._encode_seconds += time.perf_counter() - started
        if transport != "socket":
            self.send(content, buffers=buffers)
        self._counts[0] += 1
        self._counts[1] += plan.lossless
        self._counts[2] += len(tiles)
        self._counts[3] += sum(len(b) for b in buffers)

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
        elif kind in ("key", "blur", "pointer", "special"):
            view, seq = str(content.get("view", "")), int(content.get("seq", 0))
            for ready in self._order.push(view, seq, content):
                assert isinstance(ready, dict)
                self._input_message(ready)
        elif kind == "frames" and content.get("via") == "comm":
            # a page whose socket failed or closed: frames by comm for it, from a whole screen
            with self._cond:
                self._comm_pages.add(str(content.get("page", "")))
                self._frames_moved(now)
        elif kind == "reconnect":
            with self._cond:
                if self._link.ask_reconnect():
                    self._cond.notify_all()
        elif kind == "snapshot":
            self._take_snapshot(str(content.get("request", "")))

    # --- the frame socket (frame_socket.py; its callbacks run on its server's thread) ----

    def _open_endpoint(self) -> FrameEndpoint | None:
        try:
            return frame_server().endpoint(self)
        except AtpError as exc:
            self._log.warning("frames go by comm: %s", exc.message)
            return None

    def socket_opened(self) -> None:
        with self._cond:
            self._sockets_open += 1
            self._frames_moved(time.monotonic())

    def socket_closed(self) -> None:
        with self._cond:
            self._sockets_open -= 1
            self._frames_moved(time.monotonic())

    def socket_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "ack":
            n = message.get("n")
            if isinstance(n, int):
                with self._cond:
                    self._pacer.acknowledged(n, time.monotonic())
                    self._cond.notify_all()

    def _frames_moved(self, now: float) -> None:
        """Under the lock: a reader came, went or changed its way in."""
        self._pacer.direct_acks = self._transport() == "socket"
        self._pacer.resync(now)
        self._cond.notify_all()

    # --- input --------------------------------------------------------------------------

    def _input_message(self, content: dict[str, Any]) -> None:
        kind = content.get("type")
        with self._cond:
            streaming = self._link.streaming
        if not streaming:
            # sending would reconnect and take the VM back: dropped, and nothing is held
            self._keys.release_all()
            self._buttons.release_all()
            return
        if kind == "key":
            code = str(content.get("code", ""))
            data = self._keys.down(code) if content.get("down") else self._keys.up(code)
            self._guest.keys(data)
        elif kind == "blur":
            self._release_held()
        elif kind == "pointer":
            self._pointer(content)
        elif kind == "special":
            self._special(str(content.get("combo", "")))

    def _release_held(self) -> None:
        """Let go of every key and button held in the guest (blur, close)."""
        self._guest.keys(self._keys.release_all())
        x, y = self._last_pointer
        for button in self._buttons.release_all():
            self._guest.button(x, y, button, down=False)

    def _pointer(self, content: dict[str, Any]) -> None:
        x, y = int(content.get("x", 0)), int(content.get("y", 0))
        self._last_pointer = (x, y)
        kind = content.get("kind")
        if kind == "move":
            self._guest.move(x, y)
        elif kind in ("down", "up"):
            number = int(content.get("button", 0))
            button = self._buttons.down(number) if kind == "down" else self._buttons.up(number)
            if button is not None:
                self._guest.button(x, y, button, down=kind == "down")
        elif kind == "wheel":
            notches = self._wheel.add(float(content.get("dy", 0)), int(content.get("mode", 0)))
            self._guest.scroll(x, y, notches)

    def _special(self, combo: str) -> None:
        """A button of the special-keys row: the combo's key events one at a time."""
        try:
            events = combo_key_events(combo)
        except InvalidArgument as exc:  # a view of another version, a hand-made message
            self._log.warning("special key %r not sent: %s", combo, exc.message)
            return
        for data in events:
            self._guest.keys(data)

    # --- the snapshot button ------------------------------------------------------------

    def _take_snapshot(self, request: str) -> None:
        """The exact screen as a PNG for the view that asked ``request``, from a thread of
        its own (a PNG of a large screen takes tens of ms: not on the shell thread)."""
        with self._cond:
            busy = self._snapshot is not None and self._snapshot.is_alive()
            if busy or not self._link.streaming:
                refused = self._link.status if not busy else "a snapshot is under way"
            else:
                refused = ""
                self._snapshot = threading.Thread(target=self._send_snapshot, args=(request,),
                                                  daemon=True, name="atp-widget-snapshot")
                self._snapshot.start()
        if refused:
            self.send({"type": "snapshot", "request": request, "error": refused})

    def _send_snapshot(self, request: str) -> None:
        try:
            pixels = self._screen_now()
        except AtpError as exc:
            self.send({"type": "snapshot", "request": request, "error": exc.message})
            return
        png = io.BytesIO()
        to_image(pixels).save(png, format="PNG")
        name = f"{self._vm.name}-{time.strftime('%Y%m%d-%H%M%S')}.png"
        self.send({"type": "snapshot", "request": request, "name": name},
                  buffers=[png.getvalue()])

    # --- the connection -----------------------------------------------------------------

    def _on_spice_event(self, event: SpiceVmEvent) -> None:
        """An event of the VM's Spice connection (on the atp loop): a loss ends the stream."""
        with self._cond:
            if self._link.hear(event):
                self._cond.notify_all()

    def _show_status(self) -> None:
        with self._cond:
            status = self._link.status
        if self.status != status:
            self.status = status

    def _after_loss(self) -> bool:
        """The stream ended: say why, then wait for a reconnect (True) or the close."""
        with self._cond:
            if self._closing:
                return False
            self._link.classify(None)  # "connection lost" while libvirt is asked
        self._show_status()
        self._keys.release_all()  # the guest's keyboard is no longer ours to release
        self._buttons.release_all()
        self._link_classify(self._vm_state_after_loss())
        return self._wait_for_reconnect()

    def _link_classify(self, state: str | None) -> None:
        with self._cond:
            self._link.classify(state)
        self._show_status()
        self._log.info("%s", self._link.status)

    def _vm_state_after_loss(self) -> str | None:
        """The VM's libvirt state once it settled (see VM_GONE_WAIT_S), None when libvirt
        cannot tell (a Spice-only VM, the host unreachable) or only the display ended."""
        if self._vm.spice_only:
            return None
        deadline = time.monotonic() + VM_GONE_WAIT_S
        state: str | None = None
        while True:
            with self._cond:
                if self._closing or self._link.reconnect_asked:
                    return state
                main_lost = self._link.main_lost
            if main_lost:
                try:
                    state = self._vm.state(timeout=STATE_TIMEOUT_S)
                except UnknownVm:
                    return "undefined"
                except AtpError as exc:
                    self._log.info("VM state not known: %s", exc.message)
                    return None
                if state not in ("running", "paused", "blocked"):
                    return state
            if time.monotonic() > deadline:
                return state
            with self._cond:  # the display may end before Main: wait for the rest
                self._cond.wait(VM_STATE_INTERVAL_S)

    def _wait_for_reconnect(self) -> bool:
        with self._cond:
            while not (self._closing or self._link.reconnect_asked):
                self._cond.wait()
            return not self._closing
