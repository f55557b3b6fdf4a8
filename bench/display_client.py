"""Our display as a client process of bench_display: the ``ours`` of ``display_update``.

``python -m bench.display_client`` speaks the same JSON-lines protocol as spice-gtk's side
(``bench/display_gtk.py``), so the bench drives both alike and reads both processes' CPU
from ``/proc/<pid>/stat``. The first stdin line is the settings::

    {"vm": "atp-disp-auto_glz", "images": {"photo": "/tmp/x/photo.bgrx", ...},
     "options": "lossless", "timeout": 60}

``options`` names a :class:`DisplayOptions` preset: ``lossless`` (the default of
``vm.display``: LZ preferred, no GLZ) or ``server_choice_glz`` (no preference and the GLZ
window spice-gtk announces, so the server compresses as it does for spice-gtk). The script
opens ``vm.display`` (Main and display channel 0), waits until the first screen is drawn and
prints
``{"ready": true, "size": [w, h], "rss_before": B, "rss_after": A}``: the process's RSS in
bytes before the Spice session was opened (everything imported, the VM looked up) and once
the display is open and drawn. Then per stdin line:

- ``{"expect": NAME}``: prints ``{"armed": NAME}``; from now on every frame (a damage
  listener) leads to a comparison of ``vm.display.surface`` with image NAME, and the first
  match prints ``{"matched": NAME, "t": T, "drawn": D, "check_cpu_s": S}``, T being
  ``time.monotonic()`` when the listener heard the frame that completed it, D that frame's
  own time (when the worker had drawn it), S the CPU spent comparing so far;
- ``{"quit": true}``: prints ``{"check_cpu_s": S, "checks": N}`` (the CPU spent comparing)
  and exits.

As on spice-gtk's side, a comparison copies the surface and compares B,G,R (not X). The
listener runs on the atp loop and only queues the frame's arrival; the comparison runs on
this script's main thread, which drains every queued arrival before comparing once.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from atp_notebook.session import Vm, connect
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.proto.display import DisplayOptions

DRAWN_QUIET_S = 0.5  # the first screen is drawn once the display has been still this long
# spice-gtk's GLZ window on the lab's qxl (64 MiB of PCI RAM): half of it in bytes, sent in
# 4-byte pixels (research/display.md §1.5)
SPICE_GTK_GLZ_WINDOW = 1 << 23
PRESETS = {
    "lossless": DisplayOptions.lossless,
    "server_choice_glz": lambda: DisplayOptions.server_choice(glz_window=SPICE_GTK_GLZ_WINDOW),
}


def rss_bytes() -> int:
    """This process's resident set size (VmRSS of /proc/self/status), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def reply(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


def load_expected(paths: dict[str, str], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Each image's B,G,R planes as (height, width, 3), for comparing with the surface."""
    width, height = size
    out = {}
    for name, path in paths.items():
        raw = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
        out[name] = raw.reshape(height, width, 4)[..., :3].copy()
    return out


def read_commands(inbox: queue.SimpleQueue[tuple[str, Any]]) -> None:
    """stdin lines as ("command", dict) items; ("command", {"quit": True}) at EOF."""
    for line in sys.stdin:
        if line.strip():
            inbox.put(("command", json.loads(line)))
    inbox.put(("command", {"quit": True}))


def serve(vm: Vm, expected: dict[str, np.ndarray],
          inbox: queue.SimpleQueue[tuple[str, Any]]) -> tuple[int, int]:
    """Answer the bench's commands until ``quit``; the CPU spent comparing (ns) and the
    number of comparisons."""
    wanted: str | None = None
    check_ns = checks = 0
    deferred: tuple[str, Any] | None = None  # a command met while draining arrivals
    while True:
        if deferred is not None:
            (kind, item), deferred = deferred, None
        else:
            kind, item = inbox.get()
        if kind == "frame":
            arrived, drawn = item
            while deferred is None:  # every arrival queued so far: the surface holds them
                try:
                    kind, item = inbox.get_nowait()
                except queue.Empty:
                    break
                if kind == "command":
                    deferred = (kind, item)  # answered after this comparison
                else:
                    arrived, drawn = item
            if wanted is None:
                continue
        else:
            if item.get("quit"):
                return check_ns, checks
            wanted = item["expect"]
            reply({"armed": wanted})
            arrived = drawn = time.monotonic()
        assert wanted is not None
        began = time.thread_time_ns()
        surface = vm.display.surface
        same = surface is not None and np.array_equal(surface[..., :3], expected[wanted])
        check_ns += time.thread_time_ns() - began
        checks += 1
        if same:
            reply({"matched": wanted, "t": arrived, "drawn": drawn,
                   "check_cpu_s": check_ns / 1e9})
            wanted = None


def main() -> int:
    settings = json.loads(sys.stdin.readline())
    session = connect()
    try:
        vm = session.vm(settings["vm"])
        inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        before = rss_bytes()
        vm.display.open(options=PRESETS[settings.get("options", "lossless")](),
                        timeout=float(settings["timeout"]))

        def heard(frame: Frame) -> None:
            inbox.put(("frame", (time.monotonic(), frame.time)))

        with vm.display.add_listener(heard):
            vm.display.wait_still(DRAWN_QUIET_S, timeout=float(settings["timeout"]))
            after = rss_bytes()  # before any copy of the surface
            surface = vm.display.surface
            if surface is None:
                reply({"error": "no primary surface after the display opened"})
                return 1
            size = (surface.shape[1], surface.shape[0])
            del surface
            expected = load_expected(settings["images"], size)
            reply({"ready": True, "size": list(size), "rss_before": before,
                   "rss_after": after})
            threading.Thread(target=read_commands, args=(inbox,), daemon=True).start()
            check_ns, checks = serve(vm, expected, inbox)
    finally:
        session.close()
    reply({"check_cpu_s": check_ns / 1e9, "checks": checks})
    return 0


if __name__ == "__main__":
    sys.exit(main())
