"""The kernel's half of bench_widget: runs inside the notebook's kernel in JupyterLab.

It shows ``DisplayWidget(vm)``, records when the VM's display first showed each animation
frame (the frame's *marker*, a flat block whose colour numbers it: :func:`marker_id`), and
serves the anchor: the way existing tools show a VM, ``virDomainScreenshot`` polled into an
``<img>`` (a page of its own, :data:`ANCHOR_PAGE`, on a loopback port of the kernel's). The
bench process steers the phases with files in ``out`` (the kernel's cells wait for them in
an async cell, so the widget's acknowledgements keep arriving), and reads ``kernel.json``.

Example (the notebook's cells)::

    side = KernelSide("atp-disp-auto_glz", pathlib.Path("out"))
    screen = side.widget()
    screen
    # next cell, async:
    await side.run_phases()
"""

from __future__ import annotations

import asyncio
import json
import resource
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import libvirt
import numpy as np
from IPython.display import display
from PIL import Image, ImageDraw

from atp_notebook.lab.known_images import animation_frames, framebuffer_bytes
from atp_notebook.listeners import ListenerHandle
from atp_notebook.notebook.widget import DisplayWidget
from atp_notebook.session import Vm, connect
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.display.surfaces import Box, Pixels
from atp_notebook.spice.proto.display import DisplayOptions

# the marker: a flat block at the top left, read at its centre (away from JPEG's edges)
MARKER = Box(0, 0, 128, 128)
MARKER_X, MARKER_Y = 64, 64
LEVELS = (0, 85, 170, 255)  # per channel: 4 x 4 x 4 = 64 ids; 0 (black) is no frame's
CONTROL_TIMEOUT_S = 600.0
LIBVIRT_URI = "qemu:///system"


def marker_colour(frame_id: int) -> tuple[int, int, int]:
    """The R, G, B of frame ``frame_id``'s marker (1..63)."""
    return (LEVELS[frame_id >> 4 & 3], LEVELS[frame_id >> 2 & 3], LEVELS[frame_id & 3])


def marker_id(red: int, green: int, blue: int) -> int:
    """The frame a marker pixel names (nearest level per channel; JPEG moves a flat block's
    centre by a few levels at most)."""
    def level(value: int) -> int:
        return min(range(4), key=lambda i: abs(LEVELS[i] - value))
    return level(red) << 4 | level(green) << 2 | level(blue)


def marked_frames(count: int) -> list[Image.Image]:
    """``count`` photo-like 1024x768 frames, frame i's marker numbering it i + 1."""
    frames = []
    for i, frame in enumerate(animation_frames(count, kind="photo")):
        marked = frame.copy()
        ImageDraw.Draw(marked).rectangle(
            (MARKER.left, MARKER.top, MARKER.right - 1, MARKER.bottom - 1),
            fill=marker_colour(i + 1))
        frames.append(marked)
    return frames


class SyntheticDisplay:
    """A display whose whole screen changes ``fps`` times a second (the marked frames over
    and over) from a thread of its own: the widget's ceiling when the source is not the
    limit (a TCG guest writes a full screen at 8-17 fps here). ``seen`` gets (time.time(),
    marker id) of each frame, as :class:`KernelSide` records the real display's."""

    def __init__(self, count: int, fps: float, seen: list[tuple[float, int]]) -> None:
        self.frames = [np.frombuffer(framebuffer_bytes(f), dtype=np.uint8).reshape(
            f.height, f.width, 4) for f in marked_frames(count)]
        self.interval = 1.0 / fps
        self.seen = seen
        self.current = self.frames[-1]
        self.stop = threading.Event()

    def add_listener(self, listener: Any, timeout: float) -> ListenerHandle:
        threading.Thread(target=self._play, args=(listener,), daemon=True).start()
        return ListenerHandle(self.stop.set)

    def pixels(self, timeout: float) -> Pixels:
        return self.current.copy()

    def _play(self, listener: Any) -> None:
        number, due = 0, time.monotonic()
        height, width = self.current.shape[:2]
        while not self.stop.is_set():
            due = max(due + self.interval, time.monotonic())  # late: no catching up
            self.stop.wait(max(due - time.monotonic(), 0.0))
            self.current = self.frames[number % len(self.frames)]
            number += 1
            self.seen.append((time.time(), number % len(self.frames) or len(self.frames)))
            listener(Frame(number, (Box(0, 0, width, height),), time.monotonic(),
                           (width, height)))


class SyntheticVm:
    """``vm`` with :class:`SyntheticDisplay` as its display (input still goes to ``vm``)."""

    def __init__(self, vm: Vm, source: SyntheticDisplay) -> None:
        self._vm = vm
        self._source = source

    def display_channel(self, channel: int) -> SyntheticDisplay:
        return self._source

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vm, name)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# polls the screenshot as fast as it comes: one request in flight, the next on load; each
# decoded picture's marker is read like the widget's canvas (drawn into a 1x1 canvas)
ANCHOR_PAGE = """<!doctype html><html><body style="margin:0">
<img id="shot" style="display:block">
<script>
window.samples = [];
window.running = false;
const img = document.getElementById("shot");
const probe = document.createElement("canvas");
probe.width = 1; probe.height = 1;
const ctx = probe.getContext("2d", {willReadFrequently: true});
let n = 0;
function next() {
  if (!window.running) { setTimeout(next, 20); return; }
  img.src = "/shot?" + (n++);
}
img.onload = async () => {
  try { await img.decode(); } catch (e) {}
  // shown from here on; reading the marker back (12 ms a picture here) is the probe's cost
  const t = performance.timeOrigin + performance.now();
  ctx.drawImage(img, MARKER_X, MARKER_Y, 1, 1, 0, 0, 1, 1);
  const d = ctx.getImageData(0, 0, 1, 1).data;
  if (window.running) window.samples.push([t, d[0], d[1], d[2]]);
  next();
};
img.onerror = () => setTimeout(next, 50);
next();
</script></body></html>""".replace("MARKER_X", str(MARKER_X)).replace("MARKER_Y", str(MARKER_Y))


class _Screenshots(BaseHTTPRequestHandler):
    """``/``: the anchor page; ``/shot``: a fresh virDomainScreenshot, as libvirt gives it."""

    domain: libvirt.virDomain
    conn: libvirt.virConnect
    served = 0

    def do_GET(self) -> None:
        if self.path.startswith("/shot"):
            stream = self.conn.newStream(0)
            mime = self.domain.screenshot(stream, 0, 0)
            chunks: list[bytes] = []
            stream.recvAll(lambda _s, data, out: out.append(data) or len(data), chunks)
            stream.finish()
            body, kind = b"".join(chunks), mime or "application/octet-stream"
            type(self).served += 1
        else:
            body, kind = ANCHOR_PAGE.encode(), "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class KernelSide:
    """The bench's kernel: the VM's display, the frame log, the anchor's server."""

    def __init__(self, vm_name: str, out: Path, lossy: bool = False, frames: int = 16,
                 synthetic_fps: float = 60.0, in_flight: int = 4) -> None:
        self.out = out
        self.in_flight = in_flight
        self.frames = frames
        self.synthetic_fps = synthetic_fps
        self.session = connect()
        self.vm = self.session.vm(vm_name)
        options = DisplayOptions.lossy() if lossy else None
        self.vm.display.open(options=options, timeout=60)
        self.seen: list[tuple[float, int]] = []  # (time.time(), marker id) of each frame
        self._clock = time.time() - time.monotonic()
        self._listener = self.vm.display.add_listener(self._on_frame)
        conn = libvirt.open(LIBVIRT_URI)
        handler: type[_Screenshots] = type(
            "Screenshots", (_Screenshots,), {"conn": conn, "domain": conn.lookupByName(vm_name)})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.handler = handler
        self.screen: DisplayWidget | None = None
        (out / "anchor_port").write_text(str(self.server.server_address[1]))

    def _on_frame(self, frame: Frame) -> None:
        """On the atp loop, as the display drew the frame: which one it is."""
        if not frame.touches(MARKER):
            return
        live = self.vm.display.spice.displays.lives.get(0)
        if live is None:
            return
        pixel = live.pixels(Box(MARKER_X, MARKER_Y, MARKER_X + 1, MARKER_Y + 1))[0, 0]
        self.seen.append((frame.time + self._clock, marker_id(int(pixel[2]), int(pixel[1]),
                                                              int(pixel[0]))))

    def widget(self) -> DisplayWidget:
        self.screen = DisplayWidget(self.vm, max_in_flight=self.in_flight)
        return self.screen

    async def _wait_for(self, name: str) -> None:
        deadline = time.monotonic() + CONTROL_TIMEOUT_S
        while not (self.out / name).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench_widget: no {name} within {CONTROL_TIMEOUT_S} s")
            await asyncio.sleep(0.05)

    async def _phase(self, name: str) -> dict[str, float]:
        """Between the files ``<name>-start`` and ``<name>-end``: time, CPU, frames."""
        await self._wait_for(f"{name}-start")
        began, cpu, seen = time.time(), cpu_seconds(), len(self.seen)
        served = self.handler.served
        stats = self.screen.stats if self.screen is not None else None
        await self._wait_for(f"{name}-end")
        phase: dict[str, float] = {
            "began": began, "ended": time.time(), "cpu_seconds": cpu_seconds() - cpu,
            "display_frames": len(self.seen) - seen, "screenshots": self.handler.served - served}
        if stats is not None and self.screen is not None:
            now = self.screen.stats
            phase.update(widget_frames=now.frames - stats.frames,
                         widget_tiles=now.tiles - stats.tiles,
                         widget_bytes=now.bytes - stats.bytes,
                         encode_seconds=now.encode_seconds - stats.encode_seconds)
        return phase

    async def run_phases(self) -> None:
        """widget, then (the widget closed) anchor, then a widget of a synthetic display
        (shown in this cell's output); then ``kernel.json``."""
        phases = {"widget": await self._phase("widget")}
        if self.screen is not None:
            self.screen.close()
            self.screen = None
        (self.out / "widget-closed").touch()
        phases["anchor"] = await self._phase("anchor")
        synthetic_seen: list[tuple[float, int]] = []
        source = SyntheticDisplay(self.frames, self.synthetic_fps, synthetic_seen)
        self.screen = DisplayWidget(SyntheticVm(self.vm, source),  # type: ignore[arg-type]
                                    max_in_flight=self.in_flight)
        display(self.screen)  # type: ignore[no-untyped-call]
        phases["synthetic"] = await self._phase("synthetic")
        phases["synthetic"]["source_frames"] = len(synthetic_seen)
        self.screen.close()
        self._listener.close()
        self.server.shutdown()
        (self.out / "kernel.json").write_text(json.dumps(
            {"phases": phases, "seen": self.seen, "synthetic_seen": synthetic_seen}))
        self.session.close()
