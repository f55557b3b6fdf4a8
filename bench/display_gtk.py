"""spice-gtk as a display client: the anchor of ``display_update`` (bench_display).

Runs under the system interpreter, which has spice-gtk's SpiceClientGLib through GObject
introspection (Debian ``gir1.2-spiceclientglib-2.0`` and ``python3-gi``; the project's venv
does not see them), and never imports ``atp_notebook``. It speaks the client protocol of
``bench/display_client.py`` (ours runs the same protocol there): JSON lines on stdin and
stdout.

The first stdin line is the settings::

    {"host": "127.0.0.1", "port": 5910, "images": {"photo": "/tmp/x/photo.bgrx", ...},
     "timeout": 60}

where each image file holds the screen's expected 1024x768 B,G,R,X bytes. The script links
Main and display channel 0 only (no cursor, inputs or second head: the other channels would
add work that ours does not do), takes the primary surface's pixels from the
``display-primary-create`` signal's ``imgdata`` pointer (ctypes), and prints
``{"ready": true, "spice_gtk": "0.42", "size": [w, h]}`` once the surface exists. Then per
stdin line:

- ``{"expect": NAME}``: from now on, compare the surface with image NAME after every
  ``display-invalidate`` (and once at once); prints ``{"armed": NAME}``, then
  ``{"matched": NAME, "t": T, "check_cpu_s": S}`` the first time the surface holds it, T being
  ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process) when the
  invalidate that completed it arrived, and ``check_cpu_s`` the CPU spent comparing so far;
- ``{"quit": true}``: prints ``{"check_cpu_s": S, "checks": N}`` (the CPU this script spent
  comparing, which the bench subtracts from spice-gtk's) and exits.

A comparison copies the surface (``ctypes.string_at``) and compares bytes; the X byte of
each pixel is not compared (spice-gtk keeps what the decoder leaves there). Everything runs
on the GLib main loop, as in any spice-gtk client; a failure prints ``{"error": WHY}`` and
exits 1.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib  # noqa: E402

BYTES_PER_PIXEL = 4


def without_x(pixels: bytes) -> bytes:
    """B,G,R of every B,G,R,X pixel: the three channels the screen shows."""
    out = bytearray(len(pixels) // BYTES_PER_PIXEL * 3)
    out[0::3] = pixels[0::4]
    out[1::3] = pixels[1::4]
    out[2::3] = pixels[2::4]
    return bytes(out)


@dataclass
class Primary:
    """Where spice-gtk keeps the primary surface's pixels (valid until it is destroyed)."""

    address: int
    width: int
    height: int
    stride: int

    def pixels(self) -> bytes:
        """A copy of the visible rows, ``width * 4`` bytes each."""
        raw = ctypes.string_at(self.address, self.stride * self.height)
        row = self.width * BYTES_PER_PIXEL
        if self.stride == row:
            return raw
        return b"".join(raw[y * self.stride:y * self.stride + row] for y in range(self.height))


@dataclass
class DisplayRun:
    session: Any
    images: dict[str, bytes]  # name -> expected B,G,R (X dropped)
    loop: Any = field(default_factory=GLib.MainLoop)
    primary: Primary | None = None
    channel: Any = None
    expected: str | None = None
    ready_sent: bool = False
    check_cpu_ns: int = 0
    checks: int = 0
    error: str | None = None
    pending: bytes = b""  # stdin bytes short of a whole line

    def fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
        self.loop.quit()

    # --- channels ---------------------------------------------------------------------

    def on_channel_new(self, _session: Any, channel: Any) -> None:
        if isinstance(channel, SpiceClientGLib.MainChannel):
            GObject.Object.connect(channel, "channel-event", self.on_event, "Main")
        elif (isinstance(channel, SpiceClientGLib.DisplayChannel)
              and channel.get_property("channel-id") == 0 and self.channel is None):
            self.channel = channel
            GObject.Object.connect(channel, "channel-event", self.on_event, "display 0")
            GObject.Object.connect(channel, "display-primary-create", self.on_primary)
            GObject.Object.connect(channel, "display-primary-destroy", self.on_destroy)
            GObject.Object.connect(channel, "display-invalidate", self.on_invalidate)
            if not channel.connect():  # spice_channel_connect, not GObject's connect
                self.fail("spice_channel_connect refused display channel 0")

    def on_event(self, _channel: Any, event: Any, name: str) -> None:
        if event != SpiceClientGLib.ChannelEvent.OPENED:
            self.fail(f"the {name} channel reported {event.value_nick}")

    # --- the primary surface ----------------------------------------------------------

    def on_primary(self, _channel: Any, _format: int, width: int, height: int, stride: int,
                   _shmid: int, imgdata: int) -> None:
        self.primary = Primary(imgdata, width, height, stride)
        if not self.ready_sent:
            self.ready_sent = True
            reply({"ready": True, "spice_gtk": SpiceClientGLib.util_get_version_string(),
                   "size": [width, height]})

    def on_destroy(self, _channel: Any) -> None:
        self.primary = None

    def on_invalidate(self, _channel: Any, _x: int, _y: int, _w: int, _h: int) -> None:
        if self.expected is not None:
            self.check(time.monotonic())

    def check(self, arrived: float) -> None:
        """Report a match of the expected image; ``arrived`` is when this draw was seen."""
        if self.primary is None or self.expected is None:
            return
        began = time.thread_time_ns()
        same = without_x(self.primary.pixels()) == self.images[self.expected]
        self.check_cpu_ns += time.thread_time_ns() - began
        self.checks += 1
        if same:
            reply({"matched": self.expected, "t": arrived,
                   "check_cpu_s": self.check_cpu_ns / 1e9})
            self.expected = None

    # --- commands from the bench ------------------------------------------------------

    def on_stdin(self, fd: int, _condition: Any) -> bool:
        chunk = os.read(fd, 65536)
        if not chunk:
            self.fail("stdin closed")
            return False
        self.pending += chunk
        while b"\n" in self.pending:
            line, _, self.pending = self.pending.partition(b"\n")
            if not self.command(json.loads(line)):
                return False
        return True

    def command(self, command: dict[str, Any]) -> bool:
        if "expect" in command:
            name = command["expect"]
            if name not in self.images:
                self.fail(f"no image named {name!r}")
                return False
            self.expected = name
            reply({"armed": name})
            self.check(time.monotonic())
        elif command.get("quit"):
            self.loop.quit()
            return False
        return True


def reply(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


def run(settings: dict[str, Any]) -> DisplayRun:
    images = {}
    for name, path in settings["images"].items():
        with open(path, "rb") as f:
            images[name] = without_x(f.read())
    session = SpiceClientGLib.Session()
    session.set_property("host", settings["host"])
    session.set_property("port", str(settings["port"]))
    state = DisplayRun(session, images)
    GObject.Object.connect(session, "channel-new", state.on_channel_new)

    def not_ready() -> bool:
        if not state.ready_sent:
            state.fail(f"no primary surface within {settings['timeout']} s")
        return False

    GLib.timeout_add(int(float(settings["timeout"]) * 1000), not_ready)
    GLib.unix_fd_add_full(GLib.PRIORITY_DEFAULT, sys.stdin.fileno(),
                          GLib.IOCondition.IN | GLib.IOCondition.HUP, state.on_stdin)
    if not session.connect():  # spice_session_connect
        raise RuntimeError("spice_session_connect refused to start")
    state.loop.run()
    session.disconnect()
    return state


def read_settings() -> dict[str, Any]:
    """The first stdin line, read byte by byte: nothing after it may sit in a buffer that
    the main loop's watch on the descriptor would not see."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = os.read(sys.stdin.fileno(), 1)
        if not byte:
            raise RuntimeError("stdin closed before the settings")
        line += byte
    settings: dict[str, Any] = json.loads(line)
    return settings


def main() -> int:
    settings = read_settings()
    try:
        state = run(settings)
    except (OSError, RuntimeError) as exc:
        reply({"error": str(exc)})
        return 1
    if state.error is not None:
        reply({"error": f"spice-gtk {settings['host']}:{settings['port']}: {state.error}"})
        return 1
    reply({"check_cpu_s": state.check_cpu_ns / 1e9, "checks": state.checks})
    return 0


if __name__ == "__main__":
    sys.exit(main())
