"""The display widget in a real browser (issue 14): frames painted per second and the latency
from the VM's display to the canvas, against the way existing tools show a VM — libvirt's
screenshot polled into an ``<img>`` — in the same run, same browser, same animation.

Setup: a display VM (``auto_glz``, the server's default; ``--lossy``: the ``streaming`` VM
and ``DisplayOptions.lossy()``, MJPEG streams), its guest writing 1024x768 photo-like frames
to fb0 as fast as TCG lets it (``DisplayGuest.animate``, one C process: ``atp-fb-play``),
each frame with a *marker*: a flat 128x128 block at the top left whose colour numbers the
frame (bench/widget_kernel.py).
JupyterLab on loopback, Debian's chromium (Playwright), a notebook whose kernel shows
``DisplayWidget(vm)`` and records, for every frame its Spice display draws, the marker and
the time (``Frame.time``, the moment the kernel had the new picture: the reference of both
sides). Phases, one after the other: the widget (the page records, after each paint of the
view's canvas, the marker it shows and the time); then, the widget closed, the anchor page
(served by the kernel) requests ``virDomainScreenshot`` (PNG, as libvirt >= 8.10 gives it)
as fast as each one loads, and records the same after each decoded ``<img>``; then the
kernel shows a second widget fed by a synthetic display (``SyntheticDisplay``: the same
marked frames, whole screen, 60 a second, the guest still animating): the widget's ceiling
when the source is not the limit. ``host_cpu_ms_per_s`` gives every phase's CPU by process
kind (QEMU, chromium's browser / renderer / gpu-process / utility, JupyterLab, the kernel).

The page's clock (``performance.timeOrigin + now()``) is mapped to the host's ``time.time()``
(the kernel's) by the round trip through Playwright with the shortest time (its half is the
error bound, ``clock_error_ms``).

Figures:
- ``widget_fps``: distinct animation frames the canvas showed per second (a paint that
  shows a new marker), vs the anchor's ``<img>``; extra keys: ``paints_per_s``, the display's
  frame rate (``display_fps``: what the guest delivered), bytes and encoding per frame.
- ``widget_latency.p50`` / ``.p95``: the kernel's display drew frame k → the canvas shows k,
  vs the same for the ``<img>`` (the screenshot reads QEMU's framebuffer, which may be ahead
  of the Spice display: that bias favours the anchor).
- ``widget_kernel_cpu``: the kernel process's CPU time (user + system) per second of live
  view, ms/s (plain; the anchor phase's own is an extra key).
- ``widget_fps_ceiling``: the synthetic phase's distinct frames per second (plain).

Targets (issue 14): fps >= 30 and >= 5x the anchor, p50 latency <= 100 ms. A run takes ~3
min (``--quick`` ~1.5: 4 s phases, 8 frames); it takes the lab lock itself unless an
ancestor holds it. Diagnosis: ``--profile`` (the page's JavaScript, V8's sampler),
``--trace`` (a Chrome trace of the widget phase summed per thread), ``--gl=swiftshader``
(SwiftShader instead of ``--disable-gpu``), ``--in-flight=N`` (the widget's max_in_flight),
``--lossy``, ``--dd`` (the guest animates with a ``dd`` per frame, ``atp-fb-animate``, as
before ``atp-fb-play``), ``--dump`` (the raw samples to /tmp/bench_widget_dump.json), ``--pin`` (the
display VM's QEMU on the host's last CPU, this process and what it starts — JupyterLab, the
kernel, chromium — on the others: bench/cpu_placement.py's split).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from atp_notebook.lab.display_capture import lab_lock, lock_held_by_ancestor
from atp_notebook.lab.display_vms import DisplayGuest, display_vm
from atp_notebook.lab.paths import LabPaths
from atp_notebook.session import connect
from bench.cpu_placement import CpuSplit, cpu_list
from bench.jupyter_lab import CHROMIUM_ARGS, chromium, jupyter_lab
from bench.measure import emit, emit_plain, iterations, percentile
from bench.widget_kernel import MARKER_X, MARKER_Y, marked_frames, marker_id

ROOT = Path(__file__).resolve().parents[1]
SETTING = "auto_glz"
LOSSY_SETTING = "streaming"
FRAMES = iterations(16, 8)
PHASE_S = float(iterations(20, 4))
WARMUP_S = 3.0
RUN_TIMEOUT_S = 240.0
CLOCK_TRIES = 20
SYNTHETIC_FPS = 60.0
PROFILE_FLAG = "--profile"
TRACE_FLAG = "--trace"
IN_FLIGHT_FLAG = "--in-flight="
PIN_FLAG = "--pin"
DD_FLAG = "--dd"
GUEST_FPS_FLAG = "--guest-fps="
TRACE_CATEGORIES = ["toplevel", "blink", "cc", "gpu", "viz", "devtools.timeline",
                    "disabled-by-default-devtools.timeline", "v8"]
GL_FLAG = "--gl="  # --gl=swiftshader: chromium with SwiftShader (software GL) for --disable-gpu

SETUP = """\
import pathlib, sys
sys.path.insert(0, {root!r})
from bench.widget_kernel import KernelSide
side = KernelSide({vm!r}, pathlib.Path("out"), lossy={lossy!r}, frames={frames!r},
                  synthetic_fps={fps!r}, in_flight={in_flight!r})
screen = side.widget()
screen"""
PHASES = """\
await side.run_phases()
print("phases done")"""

# the newest view not recorded yet (the synthetic phase's widget comes after the first)
LAST_CANVAS = ("[...document.querySelectorAll('.atp-display canvas')]"
               ".filter((c) => !('benchRecorded' in c.dataset)).at(-1)")
PAINTED = """() =>
  Number(LAST_CANVAS?.dataset.painted) > 0
  || document.querySelector(".jp-OutputArea-output[data-mime-type="
                            + "'application/vnd.jupyter.error']") !== null""".replace(
    "LAST_CANVAS", LAST_CANVAS)
# after each paint of the view's canvas (the view sets data-painted once it drew a frame)
RECORDER = """() => {
  const canvas = LAST_CANVAS;
  canvas.dataset.benchRecorded = "";
  const ctx = canvas.getContext('2d');
  window.samples = [];
  window.running = false;
  new MutationObserver(() => {
    if (!window.running) return;
    const d = ctx.getImageData(MARKER_X, MARKER_Y, 1, 1).data;
    window.samples.push([performance.timeOrigin + performance.now(), d[0], d[1], d[2]]);
  }).observe(canvas, {attributes: true, attributeFilter: ['data-painted']});
}""".replace("MARKER_X", str(MARKER_X)).replace("MARKER_Y", str(MARKER_Y)).replace(
    "LAST_CANVAS", LAST_CANVAS)
HOST_CPU: dict[str, dict[str, float]] = {}  # phase -> process kind -> CPU ms per s
VIEWS: dict[str, Any] = {}  # phase -> what the view says of itself (data-*)
PINNED: dict[str, str] = {}  # with --pin: the CPUs of the display VM and of the bench
VIEW_STATE = ("() => ({...[...document.querySelectorAll('.atp-display canvas')]"
              ".filter((c) => 'benchRecorded' in c.dataset).at(-1)?.dataset})")
PAGE_CLOCK = "() => performance.timeOrigin + performance.now()"


def in_flight() -> int:
    """The widget's max_in_flight: 4 (its default), or ``--in-flight=N``."""
    given = [a.removeprefix(IN_FLIGHT_FLAG) for a in sys.argv[1:]
             if a.startswith(IN_FLIGHT_FLAG)]
    return int(given[-1]) if given else 4


def guest_fps() -> int:
    """The guest animation's frame rate: 0 (as fast as TCG lets it: the default), or
    ``--guest-fps=N`` (atp-fb-play paced as a player would, at most N a second)."""
    given = [a.removeprefix(GUEST_FPS_FLAG) for a in sys.argv[1:]
             if a.startswith(GUEST_FPS_FLAG)]
    return int(given[-1]) if given else 0


def chromium_args() -> list[str]:
    """The browser's flags: the browser tests' own, or with ``--gl=swiftshader`` SwiftShader
    instead of ``--disable-gpu``."""
    gl = next((a.removeprefix(GL_FLAG) for a in sys.argv[1:] if a.startswith(GL_FLAG)), "")
    if not gl:
        return list(CHROMIUM_ARGS)
    return [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
        "--use-gl=angle", f"--use-angle={gl}", "--enable-unsafe-swiftshader",
        "--ignore-gpu-blocklist"]


def clock_offset(page: Page) -> tuple[float, float]:
    """(page clock - host clock, half the round trip) in seconds, best of CLOCK_TRIES."""
    best = (float("inf"), 0.0)
    for _ in range(CLOCK_TRIES):
        before = time.time()
        seen = float(page.evaluate(PAGE_CLOCK)) / 1000
        after = time.time()
        if after - before < best[0]:
            best = (after - before, seen - (before + after) / 2)
    return best[1], best[0] / 2


def process_cpu() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the host's processes, summed by kind:
    qemu (the guest), chromium, jupyter (the server), kernel (ipykernel), other."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = collections.defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        out[_kind(cmdline)] += seconds
    return dict(out)


def _kind(cmdline: bytes) -> str:
    if b"chrom" in cmdline:  # by process type: browser, renderer, gpu-process, utility
        # chromium rewrites its children's argv as one string: split on spaces too
        ptype = next((a.split(b"=", 1)[1] for a in cmdline.replace(b"\0", b" ").split()
                      if a.startswith(b"--type=")), b"browser")
        return f"chromium.{ptype.decode(errors='replace')}"
    for needle, kind in ((b"qemu-system", "qemu"),
                         (b"ipykernel", "kernel"), (b"jupyterlab", "jupyter")):
        if needle in cmdline:
            return kind
    return "other"


def cpu_used(before: dict[str, float], after: dict[str, float], seconds: float
             ) -> dict[str, float]:
    """ms of CPU per second, by process kind, between two :func:`process_cpu`."""
    return {k: round((after.get(k, 0.0) - before.get(k, 0.0)) * 1000 / seconds, 1)
            for k in sorted(after)}


def wait_for_file(path: Path, what: str, timeout: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench_widget: {what} did not come within {timeout:g} s")
        time.sleep(0.05)


def recorded(page: Page, out: Path, name: str, offset: float) -> list[tuple[float, int]]:
    """Run phase ``name`` (the kernel measures between the files) and return the page's
    samples as (host time, marker id)."""
    page.evaluate("() => { window.samples = []; window.running = true; }")
    (out / f"{name}-start").touch()
    cpu = process_cpu()
    with profiled(page, PROFILE_FLAG in sys.argv[1:]), \
            traced(page, name == "widget" and TRACE_FLAG in sys.argv[1:]):
        time.sleep(PHASE_S)
    HOST_CPU[name] = cpu_used(cpu, process_cpu(), PHASE_S)
    samples = page.evaluate("() => { window.running = false; return window.samples; }")
    VIEWS[name] = page.evaluate(VIEW_STATE)
    (out / f"{name}-end").touch()
    return [(t / 1000 - offset, marker_id(r, g, b)) for t, r, g, b in samples]


@contextlib.contextmanager
def profiled(page: Page, wanted: bool) -> Iterator[None]:
    """With ``wanted``: the page's JavaScript (V8's sampling profiler over CDP), the
    functions with the most self time printed to stderr."""
    if not wanted:
        yield
        return
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 500})
    cdp.send("Profiler.start")
    try:
        yield
    finally:
        profile = cdp.send("Profiler.stop")["profile"]
        nodes = {n["id"]: n for n in profile["nodes"]}
        self_us: collections.Counter[str] = collections.Counter()
        for node_id, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
            frame = nodes[node_id]["callFrame"]
            where = frame["url"].rsplit("/", 1)[-1][:40]
            self_us[f"{frame['functionName'] or '(anon)'} {where}:{frame['lineNumber']}"] += delta
        total = sum(self_us.values()) or 1
        for name, us in self_us.most_common(25):
            print(f"  {us / 1000:8.1f} ms {100 * us / total:5.1f} %  {name}", file=sys.stderr)


@contextlib.contextmanager
def traced(page: Page, wanted: bool) -> Iterator[None]:
    """With ``wanted``: a Chrome trace of the phase, summed per thread (busy ms per s: its
    top-level tasks) and its costliest event names (inclusive), printed to stderr."""
    if not wanted:
        yield
        return
    browser = page.context.browser
    assert browser is not None
    browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    began = time.monotonic()
    try:
        yield
    finally:
        events = json.loads(browser.stop_tracing())["traceEvents"]
        seconds = time.monotonic() - began
        names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
                 if e.get("ph") == "M" and e.get("name") == "thread_name"}
        busy: collections.Counter[str] = collections.Counter()
        by_name: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        for e in events:
            if e.get("ph") != "X" or "dur" not in e:
                continue
            thread = f"{e['pid']}/{names.get((e['pid'], e['tid']), e['tid'])}"
            if e["name"] in ("ThreadControllerImpl::RunTask", "ThreadPool_RunTask"):
                busy[thread] += e["dur"]
            by_name[thread][e["name"]] += e["dur"]
        for thread, us in busy.most_common(10):
            top = ", ".join(f"{n} {d / 1000 / seconds:.0f}" for n, d in
                            by_name[thread].most_common(9)[1:])
            print(f"  {thread}: busy {us / 1000 / seconds:.0f} ms/s; {top}", file=sys.stderr)


def shown(samples: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The samples that show a new frame (a marker other than the one before)."""
    out, last = [], -1
    for t, frame in samples:
        if frame != last:
            out.append((t, frame))
            last = frame
    return out


def latencies(events: list[tuple[float, int]], seen: list[tuple[float, int]],
              period: float) -> tuple[list[float], int]:
    """Seconds from the kernel's nearest drawing of each shown frame to its showing; frames
    with none within half an animation cycle are left out (counted)."""
    by_id: dict[int, list[float]] = {}
    for t, frame in seen:
        by_id.setdefault(frame, []).append(t)
    out, unmatched = [], 0
    for t, frame in events:
        times = by_id.get(frame, [])
        i = bisect.bisect_right(times, t)
        near = [times[j] for j in (i - 1, i) if 0 <= j < len(times)]
        best = min(near, key=lambda k: abs(t - k), default=None)
        if best is None or abs(t - best) > period / 2:
            unmatched += 1
        else:
            out.append(t - best)
    return out, unmatched


def run(lossy: bool, root: Path) -> dict[str, Any]:
    split = CpuSplit.of(os.sched_getaffinity(0)) if PIN_FLAG in sys.argv[1:] else None
    if split is not None:  # before any thread, JupyterLab or chromium starts: they inherit it
        os.sched_setaffinity(0, split.rest)
        PINNED.update(display_vm=cpu_list(split.display), bench=cpu_list(split.rest))
    paths = LabPaths.default()
    session = connect(paths.config_file)
    held = lock_held_by_ancestor()
    try:
        with contextlib.nullcontext() if held else lab_lock(), \
                display_vm(LOSSY_SETTING if lossy else SETTING,
                           cpuset=None if split is None else split.display_cpuset) as dvm:
            guest = DisplayGuest(session.vm(dvm.name))
            guest.framebuffers_on()
            guest.show(None, 0)
            frames = marked_frames(FRAMES)
            out = root / "out"
            out.mkdir()
            with guest.animate(frames, one_process=DD_FLAG not in sys.argv[1:],
                               fps=guest_fps()) as animation, \
                    jupyter_lab(root, {"ATP_CONFIG": str(paths.config_file)}) as lab, \
                    chromium(chromium_args()) as browser:
                lab.write_notebook("bench.ipynb", [SETUP.format(
                    root=str(ROOT), vm=dvm.name, lossy=lossy, frames=FRAMES,
                    fps=SYNTHETIC_FPS, in_flight=in_flight()), PHASES])
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(lab.url("lab/tree/bench.ipynb"))
                page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
                page.wait_for_function(PAINTED, timeout=RUN_TIMEOUT_S * 1000)
                page.evaluate(RECORDER)
                time.sleep(WARMUP_S)
                offset, error = clock_offset(page)
                widget = recorded(page, out, "widget", offset)
                wait_for_file(out / "widget-closed", "the widget's close")
                port = int((out / "anchor_port").read_text())
                anchor_page = browser.new_page(viewport={"width": 1280, "height": 1000})
                anchor_page.goto(f"http://127.0.0.1:{port}/")
                anchor_page.evaluate("() => { window.running = true; }")
                time.sleep(WARMUP_S)
                anchor_offset, anchor_error = clock_offset(anchor_page)
                anchor = recorded(anchor_page, out, "anchor", anchor_offset)
                anchor_page.close()
                # the kernel shows a widget of a synthetic display: the widget's ceiling
                try:
                    page.wait_for_function(PAINTED, timeout=60_000)
                except Exception:
                    page.screenshot(path="/tmp/bench_widget_failure.png")
                    raise
                page.evaluate(RECORDER)
                time.sleep(WARMUP_S)
                offset, error = clock_offset(page)
                synthetic = recorded(page, out, "synthetic", offset)
                wait_for_file(out / "kernel.json", "the kernel's record")
            kernel = json.loads((out / "kernel.json").read_text())
            return {"kernel": kernel, "widget": widget, "anchor": anchor,
                    "synthetic": synthetic,
                    "clock_error_ms": max(error, anchor_error) * 1000,
                    "guest_frames": animation.written, "lossy": lossy,
                    "views": VIEWS}
    finally:
        session.close()


def side_figures(phase: dict[str, Any], samples: list[tuple[float, int]],
                 seen: list[tuple[float, int]], source_frames: int) -> dict[str, Any]:
    seconds = phase["ended"] - phase["began"]
    events = shown(samples)
    source_fps = source_frames / seconds
    lat, unmatched = latencies(events, seen, FRAMES / max(source_fps, 1.0))
    return {"fps": len(events) / seconds, "paints_per_s": len(samples) / seconds,
            "latency": lat, "unmatched": unmatched, "display_fps": source_fps,
            "cpu_ms_per_s": phase["cpu_seconds"] * 1000 / seconds, "seconds": seconds}


def report(result: dict[str, Any]) -> None:
    kernel = result["kernel"]
    seen = [(float(t), int(k)) for t, k in kernel["seen"]]
    phases = kernel["phases"]
    figures = {side: side_figures(phases[side], result[side], seen,
                                  phases[side]["display_frames"])
               for side in ("widget", "anchor")}
    # no latency there: at 60 fps the 16 markers come round every 0.27 s, too often to tell
    # which showing a painted frame was
    synthetic = side_figures(phases["synthetic"], result["synthetic"], [],
                             phases["synthetic"]["source_frames"])
    ours, anchor, widget = figures["widget"], figures["anchor"], phases["widget"]
    frames = max(widget.get("widget_frames", 0), 1)
    mode = "lossy (MJPEG streams)" if result["lossy"] else "lossless (the default)"
    common = {"display": mode, "max_in_flight": in_flight(), "guest_fps": guest_fps() or None,
              "host_cpu_ms_per_s": HOST_CPU,
              "pinned": PINNED or None,
              "chromium_args": chromium_args(),
              "clock_error_ms": round(result["clock_error_ms"], 3),
              "seconds": round(ours["seconds"], 2)}
    emit("widget_fps", ours["fps"], anchor["fps"], "fps",
         ours_is="distinct animation frames the DisplayWidget canvas showed per second",
         anchor_is="distinct animation frames an <img> polling virDomainScreenshot showed "
                   "per second",
         paints_per_s=round(ours["paints_per_s"], 2),
         anchor_loads_per_s=round(anchor["paints_per_s"], 2),
         display_fps=round(ours["display_fps"], 2),
         anchor_display_fps=round(anchor["display_fps"], 2),
         widget_frames_sent=widget.get("widget_frames", 0),
         kb_per_frame=round(widget.get("widget_bytes", 0) / frames / 1024, 1),
         tiles_per_frame=round(widget.get("widget_tiles", 0) / frames, 2),
         encode_ms_per_frame=round(widget.get("encode_seconds", 0) * 1000 / frames, 2),
         **common)
    for label, p in (("p50", 50.0), ("p95", 95.0)):
        emit(f"widget_latency.{label}", percentile(ours["latency"], p) * 1000,
             percentile(anchor["latency"], p) * 1000, "ms",
             ours_is="the kernel's Spice display drew frame k -> the widget's canvas shows k",
             anchor_is="the kernel's Spice display drew frame k -> an <img> polling "
                       "virDomainScreenshot shows k",
             n=len(ours["latency"]), anchor_n=len(anchor["latency"]),
             unmatched=ours["unmatched"], anchor_unmatched=anchor["unmatched"], p=label,
             **common)
    sent = max(phases["synthetic"].get("widget_frames", 0), 1)
    emit_plain("widget_fps_ceiling", synthetic["fps"], "fps",
               ours_is=f"distinct frames the canvas showed per second, the widget fed by a "
                       f"synthetic display changing its whole screen {SYNTHETIC_FPS:g} times "
                       "a second in the kernel (the guest still animating)",
               source_fps=round(synthetic["display_fps"], 2),
               paints_per_s=round(synthetic["paints_per_s"], 2),
               kernel_cpu_ms_per_s=round(synthetic["cpu_ms_per_s"], 1),
               kb_per_frame=round(phases["synthetic"].get("widget_bytes", 0) / sent / 1024, 1),
               encode_ms_per_frame=round(
                   phases["synthetic"].get("encode_seconds", 0) * 1000 / sent, 2),
               **common)
    emit_plain("widget_kernel_cpu", ours["cpu_ms_per_s"], "ms",
               ours_is="the kernel process's CPU time per second of live view (ms/s)",
               anchor_phase_ms_per_s=round(anchor["cpu_ms_per_s"], 1),
               mean_latency_ms=round(statistics.fmean(ours["latency"]) * 1000, 1)
               if ours["latency"] else None, **common)


def main() -> int:
    lossy = "--lossy" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="atp-bench-widget-") as tmp:
        result = run(lossy, Path(tmp))
    if "--dump" in sys.argv[1:]:
        Path("/tmp/bench_widget_dump.json").write_text(json.dumps(result))
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
