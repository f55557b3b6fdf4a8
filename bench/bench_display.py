"""The display against spice-gtk and QEMU's screendump, on one display VM (issue 13).

One display VM with the server's default image compression (``auto_glz``,
atp_notebook/lab/display_vms.py), known 1024x768 images (lab/known_images.py) written whole
to its fb0 in turn (``atp-fb-show`` through the guest agent). A Spice server serves one
client at a time, so the clients run one after the other, each in a process of its own, in
rotating rounds: spice-gtk through GObject introspection under the system interpreter
(``bench/display_gtk.py``), and ours (``bench/display_client.py``) twice: ``vm.display``
with its default options (LZ preferred, no GLZ) and, as ``.glz``, with no preference and
spice-gtk's GLZ window, so that the server compresses for both alike (GLZ, QUIC for the
photo). All speak one JSON-lines protocol: the bench arms the image it is about to write,
writes it, and the client reports the ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for
every process) of the draw after which its surface held exactly that image (B,G,R compared,
not X).

- ``display_update[.glz].from_server_send.p50``: from the server's first byte of the update
  (the first TCP segment of 64 bytes or more after the write, on the connection that got
  the most bytes, stamped by the kernel on ``lo``: :mod:`bench.server_sends`, needs root)
  until the client's surface equals the image; ours / spice-gtk, medians over every update
  and image. This is the part a client controls. Target (DESIGN §9): ratio <= 1.0. Extra
  keys: per image, the medians, the bytes sent, and the time from the server's last
  segment to the match (the client's own work at the end); ``unseen_ours_gtk`` counts
  updates with no segment seen, ``segments_dropped`` what the capture lost.
- ``display_update[.glz].from_guest_write.p50``: the same, from just before the write
  command goes to the guest: under TCG the guest's command, its qxl driver and the
  server's encoder take most of it (0.3-1.5 s, varying with the host's load).
- ``display_update_cpu[.glz]``: CPU of the client process per full-screen update: its
  ``/proc/<pid>/stat`` utime+stime over the round's updates, minus its idle rate (measured
  in the same round with the display open and still) and minus the CPU its own comparisons
  took (each client times them); ours / spice-gtk, medians of the rounds.
- ``vm_screenshot.p50``: ``vm.screenshot()`` (our surface as a PIL image) against
  ``vm.screendump()`` (QEMU's screen through libvirt), interleaved on the still screen;
  ``equal`` (extra key) says whether the two images were the same pixels. Target: <= 0.2.
- ``display_rss.open_1024x768`` (plain, MiB): the RSS our client process gained from
  opening the display (Main and display channel 0) until the first screen was drawn,
  with the default options; everything is imported and the VM looked up before. Target:
  the 3 MiB framebuffer + 5 MB. ``glz_mib`` is the same with the GLZ window.

The bench takes the lab lock itself (``lab_lock``), unless a process it runs under holds it
already (``flock /tmp/atp-lab.lock pytest tests/integration/test_bench.py``: /proc/locks
names the holder).
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from atp_notebook.lab.display_capture import lab_lock
from atp_notebook.lab.display_vms import DisplayGuest, DisplayVm, display_vm
from atp_notebook.lab.known_images import HEIGHT, WIDTH, framebuffer_bytes, known_image
from atp_notebook.session import Session, Vm, connect
from bench.measure import emit, emit_plain, interleave, is_quick, iterations, ms
from bench.server_sends import ServerSends

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SYSTEM_PYTHON = "/usr/bin/python3"  # has spice-gtk's GObject bindings (scripts/setup.sh)
SETTING = "auto_glz"  # the server's default image compression
IMAGES = ("photo", "text", "gradients", "flat")  # shown in turn: each differs from the last
BLACK = "black"  # the screen before the first image (atp-fb-show /dev/zero)
SHOW_COMMAND = "/usr/bin/atp-fb-show"  # what DisplayGuest.show runs
CLIENT_TIMEOUT_S = 60.0  # to link and draw the first screen; and per update
SETTLE_S = 0.5  # after a match: the server's trailing messages, before the next write
IDLE_S = 2.0  # the idle CPU window of each round
# a segment of an update's DRAW_COPY (a header of ~100 bytes with its image), not a
# MARK or a PING (6 to 30 bytes)
MIN_UPDATE_SEGMENT = 64
MIB = 1 << 20
FRAMEBUFFER_MIB = WIDTH * HEIGHT * 4 / MIB


GTK = "spice-gtk"
# our clients: name -> the DisplayOptions preset it runs (bench/display_client.py)
OURS = {"ours": "lossless", "ours-glz": "server_choice_glz"}


class ClientError(RuntimeError):
    pass


class ClientProcess:
    """One client (spice-gtk's or ours) as a child process, driven by JSON lines."""

    def __init__(self, kind: str, argv: Sequence[str], settings: dict[str, Any]) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.send(settings)

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, doc: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(doc) + "\n")
        self.proc.stdin.flush()

    def read(self, key: str, timeout: float = CLIENT_TIMEOUT_S) -> dict[str, Any]:
        """The next line, which must carry ``key``."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise ClientError(f"{self.kind}: no {key!r} within {timeout:g} s") from None
        if line is None:
            raise ClientError(f"{self.kind} exited ({self.proc.wait(10)}) before {key!r}")
        doc: dict[str, Any] = json.loads(line)
        if "error" in doc:
            raise ClientError(f"{self.kind}: {doc['error']}")
        if key not in doc:
            raise ClientError(f"{self.kind}: wanted {key!r}, got {line.strip()!r}")
        return doc

    def cpu_s(self) -> float:
        """utime + stime of the process so far (/proc/<pid>/stat fields 14 and 15)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> dict[str, Any]:
        self.send({"quit": True})
        last = self.read("check_cpu_s")
        if self.proc.wait(30) != 0:
            raise ClientError(f"{self.kind} exited with status {self.proc.returncode}")
        return last

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Samples:
    """What one client measured over all its rounds."""

    # per image: guest write -> equal, and the server's first byte of the update -> equal
    latency_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    from_server_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sent_bytes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # the server's last segment of the update -> equal: the client's own work at the end
    after_last_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu_per_update_s: list[float] = field(default_factory=list)
    idle_cpu_rate: list[float] = field(default_factory=list)  # CPU s per s, display still
    rss_gain: list[int] = field(default_factory=list)  # ours only
    heard_after_drawn_s: list[float] = field(default_factory=list)  # ours only: listener lag
    version: str = ""  # spice-gtk's
    unseen: int = 0  # updates with no segment of the server's seen on lo

    def all_latencies(self) -> list[float]:
        return [t for v in self.latency_s.values() for t in v]

    def all_from_server(self) -> list[float]:
        return [t for v in self.from_server_s.values() for t in v]


@dataclass
class Screen:
    """What is on the display VM's fb0 and what comes next."""

    guest: DisplayGuest
    paths: dict[str, str]  # image name -> its framebuffer bytes in the guest (uploaded)
    current: str = BLACK
    turn: int = 0

    def next_image(self) -> str:
        name = IMAGES[self.turn % len(IMAGES)]
        self.turn += 1
        return name

    def show(self, name: str) -> None:
        """``DisplayGuest.show`` of an uploaded image, minus its per-call digest of the
        image: one guest command, which is all that is timed."""
        self.guest.run([SHOW_COMMAND, self.paths[name], "0"])
        self.current = name


def client_argv(kind: str) -> list[str]:
    if kind == GTK:
        return [SYSTEM_PYTHON, str(BENCH_DIR / "display_gtk.py")]
    return [sys.executable, "-m", "bench.display_client"]


def run_round(kind: str, dvm: DisplayVm, screen: Screen, sends: ServerSends,
              files: dict[str, str], updates: int, into: Samples) -> None:
    """One client: link, sync to the screen, an idle window, then ``updates`` writes."""
    settings = {"host": dvm.spice_host, "port": dvm.spice_port, "vm": dvm.name,
                "images": files, "timeout": CLIENT_TIMEOUT_S, "options": OURS.get(kind)}
    client = ClientProcess(kind, client_argv(kind), settings)
    try:
        ready = client.read("ready")
        if kind == GTK:
            into.version = ready["spice_gtk"]
        else:
            into.rss_gain.append(int(ready["rss_after"]) - int(ready["rss_before"]))
        client.send({"expect": screen.current})  # what is on the screen now
        client.read("armed")
        synced = client.read("matched")
        time.sleep(SETTLE_S)
        cpu, began = client.cpu_s(), time.monotonic()
        time.sleep(IDLE_S)
        idle_rate = (client.cpu_s() - cpu) / (time.monotonic() - began)
        cpu, began, checked = client.cpu_s(), time.monotonic(), synced["check_cpu_s"]
        for _ in range(updates):
            name = screen.next_image()
            client.send({"expect": name})
            client.read("armed")
            written = time.monotonic()
            screen.show(name)
            matched = client.read("matched")
            into.latency_s[name].append(matched["t"] - written)
            sent = sends.between(written, matched["t"], MIN_UPDATE_SEGMENT)
            if sent.first is None or sent.last is None:
                into.unseen += 1  # counted in the figure, not guessed
            else:
                into.from_server_s[name].append(matched["t"] - sent.first)
                into.after_last_s[name].append(matched["t"] - sent.last)
            if "drawn" in matched:
                into.heard_after_drawn_s.append(matched["t"] - matched["drawn"])
            into.sent_bytes[name].append(sent.size)
            time.sleep(SETTLE_S)
        spent = client.cpu_s() - cpu - idle_rate * (time.monotonic() - began)
        spent -= matched["check_cpu_s"] - checked
        into.cpu_per_update_s.append(spent / updates)
        into.idle_cpu_rate.append(idle_rate)
        client.close()
    finally:
        client.kill()
    print(f"display: {kind} round done ({updates} updates)", file=sys.stderr, flush=True)


def expected_files(directory: Path) -> dict[str, str]:
    """Each screen's B,G,R,X bytes in a file the clients load."""
    files = {}
    for name in (BLACK, *IMAGES):
        path = directory / f"{name}.bgrx"
        path.write_bytes(bytes(WIDTH * HEIGHT * 4) if name == BLACK
                         else framebuffer_bytes(known_image(name)))
        files[name] = str(path)
    return files


def compare_clients(dvm: DisplayVm, screen: Screen, rounds: int,
                    updates: int) -> tuple[dict[str, Samples], int]:
    """Every client's samples, and how many server segments the capture dropped."""
    kinds = (GTK, *OURS)
    samples = {kind: Samples() for kind in kinds}
    with (tempfile.TemporaryDirectory(prefix="atp-bench-display-") as tmp,
          ServerSends(dvm.spice_port) as sends):
        files = expected_files(Path(tmp))
        for r in range(rounds):
            # each client first, second and last in turn: drift spreads over all
            for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
                run_round(kind, dvm, screen, sends, files, updates, samples[kind])
        dropped = sends.dropped()
    return samples, dropped


def compare_screenshots(vm: Vm, n: int) -> tuple[list[int], list[int], bool]:
    """``vm.screenshot()`` against ``vm.screendump()`` on the still screen, interleaved."""
    vm.display.open()
    vm.display.wait_still(SETTLE_S, timeout=CLIENT_TIMEOUT_S)
    ours = np.asarray(vm.screenshot().convert("RGB"))
    theirs = np.asarray(vm.screendump().convert("RGB"))
    equal = ours.shape == theirs.shape and bool(np.array_equal(ours, theirs))
    times_ours, times_dump = interleave(vm.screenshot, vm.screendump, n)
    return times_ours, times_dump, equal


def _median_ms(values: Sequence[float]) -> float:
    return round(statistics.median(values) * 1e3, 1)


def report(samples: dict[str, Samples], shots: tuple[list[int], list[int], bool],
           dropped: int) -> None:
    gtk = samples[GTK]
    version = gtk.version
    for kind, (label, options) in {"ours": ("", "DisplayOptions.lossless(): LZ4, no GLZ"),
                                   "ours-glz": (".glz", "DisplayOptions.server_choice(glz_"
                                                "window=spice-gtk's): GLZ/QUIC")}.items():
        ours = samples[kind]
        both = [name for name in IMAGES if ours.latency_s[name] and gtk.latency_s[name]]
        common = {"spice_gtk": version, "setting": SETTING, "p": "p50"}
        emit(f"display_update{label}.from_server_send.p50",
             statistics.median(ours.all_from_server()) * 1e3,
             statistics.median(gtk.all_from_server()) * 1e3, "ms",
             ours_is=f"vm.display ({options}): the server's first byte of a 1024x768 update "
                     "on lo -> surface equal (damage listener)",
             anchor_is=f"spice-gtk {version}: the server's first byte of such an update -> "
                       "its primary surface equal (display-invalidate)",
             n=len(ours.all_from_server()), **common,
             per_image_ms_ours_gtk={n: [_median_ms(ours.from_server_s[n]),
                                        _median_ms(gtk.from_server_s[n])] for n in both},
             sent_kb_ours_gtk={n: [round(statistics.median(s.sent_bytes[n]) / 1e3, 1)
                                   for s in (ours, gtk)] for n in both},
             after_last_byte_ms_ours_gtk={n: [_median_ms(ours.after_last_s[n]),
                                              _median_ms(gtk.after_last_s[n])] for n in both},
             unseen_ours_gtk=[ours.unseen, gtk.unseen], segments_dropped=dropped,
             ours_heard_after_drawn_ms=_median_ms(ours.heard_after_drawn_s))
        emit(f"display_update{label}.from_guest_write.p50",
             statistics.median(ours.all_latencies()) * 1e3,
             statistics.median(gtk.all_latencies()) * 1e3, "ms",
             ours_is=f"vm.display ({options}): guest write command of a 1024x768 image "
                     "sent -> surface equal (damage listener)",
             anchor_is=f"spice-gtk {version}: such a write -> its primary surface equal "
                       "(display-invalidate)",
             n=len(ours.all_latencies()), **common,
             per_image_ms_ours_gtk={n: [_median_ms(ours.latency_s[n]),
                                        _median_ms(gtk.latency_s[n])] for n in both})
        emit(f"display_update_cpu{label}", statistics.median(ours.cpu_per_update_s) * 1e3,
             statistics.median(gtk.cpu_per_update_s) * 1e3, "ms",
             ours_is=f"our client process ({options}): CPU per full-screen update "
                     "(utime+stime, less idle and its comparisons)",
             anchor_is=f"spice-gtk {version} process: CPU per full-screen update (utime+stime, "
                       "less idle and its comparisons)",
             spice_gtk=version, setting=SETTING, rounds=len(ours.cpu_per_update_s),
             p="median of rounds",
             idle_cpu_pct_ours_gtk=[round(statistics.median(s.idle_cpu_rate) * 100, 2)
                                    for s in (ours, gtk)])
    times_ours, times_dump, equal = shots
    emit("vm_screenshot.p50", ms(statistics.median(times_ours)),
         ms(statistics.median(times_dump)), "ms",
         ours_is="vm.screenshot(): the Spice surface as a PIL image",
         anchor_is="vm.screendump(): QEMU's screen through libvirt's screenshot stream",
         n=len(times_ours), p="p50", equal=equal)
    rss = samples["ours"].rss_gain
    emit_plain("display_rss.open_1024x768", statistics.median(rss) / MIB, "MiB",
               ours_is="RSS gained by opening vm.display (lossless, the default) until its "
                       "first screen is drawn",
               n=len(rss), p="p50", framebuffer_mib=FRAMEBUFFER_MIB,
               target_mib=round(FRAMEBUFFER_MIB + 5e6 / MIB, 2),
               glz_mib=round(statistics.median(samples["ours-glz"].rss_gain) / MIB, 2))


def measure(session: Session) -> tuple[dict[str, Samples], int,
                                      tuple[list[int], list[int], bool]]:
    rounds, updates = iterations(4, 1), iterations(8, 4)
    with lab_lock(), display_vm(SETTING) as dvm:
        vm = session.vm(dvm.name)
        guest = DisplayGuest(vm)
        guest.framebuffers_on()
        guest.show(None, 0)
        # uploaded before anything is timed
        screen = Screen(guest, {name: guest.image_path(known_image(name)) for name in IMAGES})
        samples, dropped = compare_clients(dvm, screen, rounds, updates)
        shots = compare_screenshots(vm, iterations(20, 3))
    return samples, dropped, shots


def main() -> int:
    session = connect()
    try:
        samples, dropped, shots = measure(session)
    finally:
        session.close()
    report(samples, shots, dropped)
    if is_quick():
        print("display: quick run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
