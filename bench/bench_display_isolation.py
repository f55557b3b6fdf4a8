"""Display traffic never delays the rest (issue 13): input and QMP latency while a
full-screen animation streams, against the same figures with the display still, same run.

Setup: the ``streaming`` display VM (streaming-video=all) with our client's display open
through ``vm.display.open(options=DisplayOptions.lossy())`` (MJPEG streams allowed), its
guest writing full-screen 1024x768 photo-like frames to fb0 as fast as TCG allows
(``DisplayGuest.animate``; spice-server makes them an MJPEG stream after 20 frames), and the
lab's ``atp-vm1`` as the *other* VM.

CPUs: on this 2-core kind of host a TCG guest animating and spice-server's MJPEG encoder
(both inside the display VM's QEMU) would take both cores, and every other call would wait
for a CPU whoever draws the stream. So the display VM's QEMU runs on the last CPU only
(``display_vm(cpuset=)``: vCPU, emulator, I/O and spice-server's threads), with the lab's
other VMs (atp-vm2, atp-sasl: bystanders whose idle TCG load the kernel would otherwise
move onto the other CPU in the animated phases only), while this process, the second
client, atp-vm1's QEMU and libvirtd (``vm.qmp``'s path) have the other CPUs
(``bench/cpu_placement.py``; every process's own affinity comes back afterwards): what is
left of a slowdown is the client's. ``pinning`` on each line says what took (each
process's threads by allowed CPUs, and where they last ran, read in an animated phase).
``--no-pin`` runs unconfined (the host's contention included).

Phases alternate in ABBA blocks (twice in a full run) — still, animated, animated, still —
so drift spreads over both; an animated phase samples only once the stream runs, a still
one once the screen has been still for 1.5 s.

``display_isolation.input_to_wire.<p50|p99>``: ``SpiceKeyboard.press("shift")`` on the
streaming VM's own Inputs channel (the Spice session the frames arrive on), timed from the
calling thread until the coroutine has handed the bytes to the socket. bench_spice's
``spice_input_to_wire`` times the press on the loop itself, which cannot see a busy loop:
a press waits for the loop only when it is scheduled there from another thread, as from a
notebook cell or a widget. ``ours``: while the stream plays; ``anchor``: display still.
Extra keys ``handoff``/``handoff_still``: the part of it until the press began to run on
the loop (thread wake-up, GIL, queued callbacks).

``display_isolation.input_other_vm_to_wire.<p50|p99>``: the same press on atp-vm1's Inputs
channel: another VM's input, on the same atp loop.

``display_isolation.qmp_other_vm.<p50|p99>``: ``vm.qmp("query-status")`` on atp-vm1 from the
calling thread (it never touches the atp loop). The three calls take turns, in rotating
order, 10 ms apart.

``display_isolation.loop_lag.<p50|p99>``: how late a 5 ms timer on the atp loop fires —
what any callback queued on the loop (an ack, a pong, a press) waits besides its own work.

``display_isolation.frame_interval``: the time between the frames our display published
(``Frame.time``, p50) while the stream played, against the guest's time per full-screen
write. spice-server streams at most 25 fps (MJPEG_MAX_FPS), so a ratio above 1 can be the
server's; the extra keys say what was drawn: ``fps``, ``frames``, ``stream_frames`` (video
frames decoded), ``draw_cpu_ms_per_frame`` (the display worker's CPU per frame).

``display_isolation.drawn_here_vs_elsewhere.<input_other_vm_to_wire|qmp_other_vm|loop_lag>
.<p50|p99>``: the guest animating throughout, the stream drawn by this process (``ours``) or
by a second one (``anchor``, ``bench/display_isolation_client.py``), alternating ABBA: the
part of the slowdown that drawing in our process adds, the host's and the server's load
being the same on both sides (the server keeps one client per VM, so no key presses on the
streaming VM here).

Controls, as extra keys of the ratio lines (same statistic): ``guest_busy_no_display``, the
guest animating with no display channel open (measured first: the guest's load alone);
``display_in_other_process``, the "elsewhere" phases above: the host's and the server's
load without our process drawing anything.
``pair_ratios``: the ratio within each animated phase and its still neighbour (ABBA: A1/S1,
A2/S2, ...), which tells a steady slowdown from one burst of other work on the host.
``cpu``: per phase kind, the host's busy share of all cores and of each (``_per_cpu``: the
display VM's is the last), this process's share of one core, the atp loop thread's CPU time
and run-queue wait (ms per s: running, and runnable without a CPU, from schedstat: the
loop's own work, and CPU starvation — not the GIL), and the same summed over the threads
of each process on the calls' path (``cpu_ms_per_s``, ``runqueue_ms_per_s``: ``client``,
``libvirtd``, atp-vm1's QEMU, ``display_vm``'s QEMU, and in the elsewhere phases the
``second_client``): which of them waited for a CPU more while the stream played.

Target (issue 13): ratio <= 1.5 for input_to_wire.p99 and qmp_other_vm.p99. A full run
takes ~4 min; it takes the lab lock itself unless a process it runs under holds it already
(``flock /tmp/atp-lab.lock pytest tests/integration/test_bench.py``).
Diagnosis: ``--profile`` prints to stderr what the atp loop and the display worker ran
(sampled stacks, 1 kHz) during the first animated phase; ``--switch-interval S`` sets
``sys.setswitchinterval`` (the GIL's hand-over interval, 5 ms by default) for the run;
``--worker-nice N`` runs the display worker thread at nice N instead of the live layer's
own +10 (``display_worker_nice`` says which applied); ``--worker-aside`` moves the display
worker threads onto the display VM's CPU, so that drawing never shares the measured side's
one CPU with the atp loop (what a host with a core to spare would do; the default keeps our
whole process, decoding included, on the measured side).

Example::

    flock /tmp/atp-lab.lock .venv/bin/python -m bench.bench_display_isolation   # ~4 min
    .venv/bin/python bench/run.py --quick --only display_isolation              # ~1.5 min
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from atp_notebook.lab.display_capture import lab_lock
from atp_notebook.lab.display_vms import DisplayGuest, display_vm
from atp_notebook.lab.known_images import animation_frames
from atp_notebook.lab.paths import LAB_VMS, LabPaths
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.session import Session, Vm, connect
from atp_notebook.spice.display.live import DisplayStats, Frame
from atp_notebook.spice.proto.display import DisplayOptions
from bench.cpu_placement import CpuSplit, Pinning, libvirtd_pid, qemu_pid, thread_ids
from bench.display_isolation_sampling import (
    CALL_TIMEOUT_S,
    LAG_TICK_S,
    Samples,
    Targets,
    keyboard_of,
    named_threads,
    profiled,
    sample_phase,
)
from bench.measure import emit, iterations, ms, percentile

SETTING = "streaming"
OTHER_VM = LAB_VMS[0].name  # atp-vm1: a lab VM, not the one streaming
ANIMATION_FRAMES = 4  # full-screen photo-like frames, over and over: a stream
STATS = (("p50", 50.0), ("p99", 99.0))
STREAM_FRAMES_BEFORE_SAMPLING = 10  # the stream runs: STREAM_CREATE and a few frames in
STREAM_TIMEOUT_S = 60.0
STILL_S = 1.5  # past spice-server's 1 s stream timeout: the stream is gone
SWITCH_FLAG = "--switch-interval"
NICE_FLAG = "--worker-nice"
NO_PIN_FLAG = "--no-pin"
ASIDE_FLAG = "--worker-aside"
# ABBA blocks (twice in a full run): drift (other work on the host) spreads over both kinds
ABBA = ("still", "animated", "animated", "still")
# the guest animating throughout, the stream drawn by this process or by another (ABBA)
HERE_ELSEWHERE = ("elsewhere", "here", "here", "elsewhere")
# the no-display phase samples this long after the animation started (as long as a stream
# takes to start when a display is open: 20 frames)
BUSY_START_S = 3.0
ROOT = Path(__file__).resolve().parents[1]


# --- the guest's animation ----------------------------------------------------------------


class Animation:
    """The guest's full-screen animation (``DisplayGuest.animate``: ANIMATION_FRAMES
    photo-like 1024x768 frames, one write() each), played as often as needed; counts the
    frames written and the seconds played."""

    def __init__(self, guest: DisplayGuest) -> None:
        self.guest = guest
        self.frames = animation_frames(ANIMATION_FRAMES)
        self.frames_written = 0
        self.seconds = 0.0

    @contextmanager
    def playing(self) -> Iterator[None]:
        with self.guest.animate(self.frames) as animation:
            began = time.monotonic()
            try:
                yield
            finally:
                written = animation.stop()
                self.seconds += time.monotonic() - began
                self.frames_written += written


# --- the display under test ---------------------------------------------------------------


@dataclass
class FrameLog:
    """Frame times (heard on the atp loop), one list per recorded phase."""

    phases: list[list[float]] = field(default_factory=list)
    recording: bool = False

    def __call__(self, frame: Frame) -> None:
        if self.recording:
            self.phases[-1].append(frame.time)

    @contextmanager
    def recorded(self) -> Iterator[None]:
        self.phases.append([])
        self.recording = True
        try:
            yield
        finally:
            self.recording = False

    def intervals(self) -> list[float]:
        """Gaps between consecutive frames of one phase (none across phases)."""
        return [b - a for times in self.phases
                for a, b in itertools.pairwise(times)]


def stream_frames(vm: Vm) -> int:
    return int(vm.display.stats().stream_frames)


def wait_for_stream(vm: Vm, since: int) -> None:
    deadline = time.monotonic() + STREAM_TIMEOUT_S
    while stream_frames(vm) < since + STREAM_FRAMES_BEFORE_SAMPLING:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{vm.name}: no MJPEG stream within {STREAM_TIMEOUT_S:g} s of "
                               f"the animation's start ({stream_frames(vm) - since} stream "
                               "frames)")
        time.sleep(0.05)


def followed_by(take: Callable[[], Samples], after: Callable[[], None]) -> Samples:
    samples = take()
    after()  # still in the phase: the animation plays
    return samples


# --- the run ------------------------------------------------------------------------------


@dataclass
class Run:
    still: Samples
    animated: Samples
    busy_no_display: Samples
    other_process: Samples
    frame_intervals: list[float]
    frames: int
    stream_frames: int
    draw_seconds: float
    guest_frames: int
    guest_seconds: float
    child: dict[str, float]  # what the other process drew
    # each ABBA half's animated and still phase, in order: (A1, S1), (A2, S2), ...
    pairs: list[tuple[Samples, Samples]] = field(default_factory=list)
    drawn_here: Samples = field(default_factory=Samples)  # HERE_ELSEWHERE's "here" phases
    pinning: dict[str, object] = field(default_factory=dict)  # Pinning.summary()
    worker_nice: int | None = None  # the display worker's niceness in the main phases

    def pair_ratios(self, kind: str, p: float) -> list[float]:
        """The statistic's ratio within each pair of adjacent phases: whether a ratio
        holds throughout the run or comes from one burst of the host's other work."""
        out = []
        for animated, still in self.pairs:
            if getattr(animated, kind) and getattr(still, kind):
                below = percentile(getattr(still, kind), p)
                if below > 0:
                    out.append(round(percentile(getattr(animated, kind), p) / below, 2))
        return out


def animated_phase(vm: Vm, animation: Animation, log: FrameLog,
                   take: Callable[[], Samples]) -> tuple[Samples, DisplayStats, DisplayStats]:
    """``take()`` while the guest animates and our display draws the stream; the display's
    stats before and after."""
    with animation.playing():
        wait_for_stream(vm, stream_frames(vm))
        before = vm.display.stats()
        with log.recorded():
            samples = take()
        after = vm.display.stats()
    return samples, before, after


def other_process_phase(loop: AtpLoop, vm: Vm, guest: DisplayGuest, targets: Targets,
                        n: int) -> tuple[Samples, dict[str, float]]:
    """The guest animates and another process draws the stream (the server keeps one client
    per VM, so our own Spice session of the VM ends first: no key presses on it here)."""
    loop.call(vm.spice_input.spice.close(), CALL_TIMEOUT_S)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.display_isolation_client", vm.name],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":  # the child bounds its own waits
            raise RuntimeError("the display client process did not open the display")
        with Animation(guest).playing():
            assert child.stdin is not None
            child.stdin.write("stream?\n")
            child.stdin.flush()
            if child.stdout.readline().strip() != "streaming":
                raise RuntimeError("the display client process saw no stream")
            watched = {**targets.watched, "second_client": child.pid}
            samples = sample_phase(loop, dataclasses.replace(targets, keyboard=None,
                                                             watched=watched), n)
        out, _ = child.communicate(timeout=CALL_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    drew: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    if not drew.get("stream_frames"):
        raise RuntimeError(f"the display client process decoded no stream frames: {drew}")
    return samples, drew


def drawn_here_phase(loop: AtpLoop, vm: Vm, animation: Animation, targets: Targets,
                     n: int, pinning: Pinning) -> Samples:
    """The guest animates and this process draws the stream: our display opened again (the
    other process had the VM's Spice session), and closed afterwards for the next one."""
    vm.display.open(options=DisplayOptions.lossy(), timeout=CALL_TIMEOUT_S)
    tune_display_workers(vm, pinning)
    try:
        with animation.playing():
            wait_for_stream(vm, stream_frames(vm))
            return sample_phase(loop, dataclasses.replace(targets, keyboard=None), n)
    finally:
        loop.call(vm.spice_input.spice.close(), CALL_TIMEOUT_S)


def here_and_elsewhere(loop: AtpLoop, vm: Vm, guest: DisplayGuest, targets: Targets,
                       n: int, pinning: Pinning) -> tuple[Samples, Samples, dict[str, float]]:
    """HERE_ELSEWHERE's phases: the stream drawn by this process and by another, the guest
    animating in both; what the other process drew, summed."""
    here, elsewhere = Samples(), Samples()
    drew: dict[str, float] = {}
    animation = Animation(guest)
    for phase in HERE_ELSEWHERE:
        if phase == "here":
            here.extend(drawn_here_phase(loop, vm, animation, targets, n, pinning))
        else:
            samples, child = other_process_phase(loop, vm, guest, targets, n)
            elsewhere.extend(samples)
            for key, value in child.items():
                drew[key] = round(drew.get(key, 0) + value, 6)
        print(f"display_isolation: stream drawn {phase} done", file=sys.stderr)
    return here, elsewhere, drew


def flag_value(flag: str) -> str | None:
    """The value after ``flag`` on the command line, None without the flag."""
    args = sys.argv[1:]
    return args[args.index(flag) + 1] if flag in args else None


def tune_display_workers(vm: Vm, pinning: Pinning) -> int | None:
    """Diagnosis: the display worker threads of ``vm`` at nice N (--worker-nice N, instead of
    the live layer's own WORKER_NICENESS), or on the display side's CPU (--worker-aside:
    drawing never shares a CPU with the loop). The workers' niceness now (None: none)."""
    nice = flag_value(NICE_FLAG)
    aside = ASIDE_FLAG in sys.argv[1:] and pinning.split is not None
    now = None
    for thread in threading.enumerate():
        if thread.name.startswith(f"atp-display-{vm.name}") and thread.native_id:
            if nice is not None:
                os.setpriority(os.PRIO_PROCESS, thread.native_id, int(nice))
            if aside and pinning.split is not None:
                os.sched_setaffinity(thread.native_id, pinning.split.display)
            now = os.getpriority(os.PRIO_PROCESS, thread.native_id)
    return now


def measure(session: Session, guest: DisplayGuest, vm: Vm, n: int, profile: bool,
            pinning: Pinning) -> Run:
    loop = get_loop()
    other = session.vm(OTHER_VM, host="local")
    watched = {"client": os.getpid(), "libvirtd": libvirtd_pid(), OTHER_VM: qemu_pid(OTHER_VM),
               "display_vm": qemu_pid(vm.name)}
    targets = Targets(keyboard_of(loop, vm), keyboard_of(loop, other), other, watched)
    sample_phase(loop, targets, 5)  # unmeasured warm-up: connections, lookups

    # the host's share first: the guest animates, no display channel is open
    with Animation(guest).playing():
        time.sleep(BUSY_START_S)
        busy = sample_phase(loop, targets, n)
    print("display_isolation: busy guest, no display done", file=sys.stderr)

    vm.display.open(options=DisplayOptions.lossy(), timeout=CALL_TIMEOUT_S)
    worker_nice = tune_display_workers(vm, pinning)
    log = FrameLog()
    handle = vm.display.add_listener(log)
    animation = Animation(guest)
    still, animated = Samples(), Samples()
    still_blocks: list[Samples] = []
    animated_blocks: list[Samples] = []
    frames = decoded = 0
    draw_seconds = 0.0
    try:
        for number, phase in enumerate(ABBA * iterations(2, 1)):
            if phase == "still":
                vm.display.wait_still(STILL_S, timeout=STREAM_TIMEOUT_S)
                block = sample_phase(loop, targets, n)
                still.extend(block)
                still_blocks.append(block)
            else:
                sample = partial(sample_phase, loop, targets, n)
                if profile and number == 1:  # the first animated phase
                    sample = partial(profiled, sample, named_threads(loop, vm))
                if number == 1:
                    sample = partial(followed_by, sample, pinning.snapshot)
                samples, before, after = animated_phase(vm, animation, log, sample)
                animated.extend(samples)
                animated_blocks.append(samples)
                frames += after.frames - before.frames
                decoded += after.stream_frames - before.stream_frames
                draw_seconds += after.draw_seconds - before.draw_seconds
            print(f"display_isolation: {phase} phase done", file=sys.stderr)
    finally:
        handle.close()
    here, elsewhere, child = here_and_elsewhere(loop, vm, guest, targets, n, pinning)
    return Run(still, animated, busy, elsewhere, log.intervals(), frames, decoded,
               draw_seconds, animation.frames_written, animation.seconds, child,
               list(zip(animated_blocks, still_blocks, strict=True)), here,
               pinning.summary(), worker_nice)


def report(run: Run) -> None:
    cpu = {"still": run.still.cpu(), "animated": run.animated.cpu(),
           "busy_no_display": run.busy_no_display.cpu(),
           "display_in_other_process": run.other_process.cpu()}
    figures = (
        ("input_to_wire", "key", 'SpiceKeyboard.press("shift") on the streaming VM, from the '
         "calling thread until its bytes are in the socket"),
        ("input_other_vm_to_wire", "other_key", f'SpiceKeyboard.press("shift") on {OTHER_VM}, '
         "from the calling thread until its bytes are in the socket"),
        ("qmp_other_vm", "qmp", f'vm.qmp("query-status") on {OTHER_VM} from the calling '
         "thread"),
        ("loop_lag", "lag", f"lateness of a {LAG_TICK_S * 1000:g} ms timer on the atp loop"),
    )
    for figure, kind, what in figures:
        loaded: list[int] = getattr(run.animated, kind)
        idle: list[int] = getattr(run.still, kind)
        busy: list[int] = getattr(run.busy_no_display, kind)
        elsewhere: list[int] = getattr(run.other_process, kind)
        for label, p in STATS:
            controls = {"guest_busy_no_display": round(ms(percentile(busy, p)), 4)}
            if elsewhere:
                controls["display_in_other_process"] = round(ms(percentile(elsewhere, p)), 4)
            if kind == "key":  # of which waiting to run on the loop: animated, still
                controls["handoff"] = round(ms(percentile(run.animated.handoff, p)), 4)
                controls["handoff_still"] = round(ms(percentile(run.still.handoff, p)), 4)
            emit(f"display_isolation.{figure}.{label}", ms(percentile(loaded, p)),
                 ms(percentile(idle, p)), "ms",
                 ours_is=f"{what}, while a full-screen MJPEG stream plays (display open, "
                         "lossy)",
                 anchor_is=f"{what}, display open and still",
                 **controls, cpu=cpu, gil_switch_interval_ms=sys.getswitchinterval() * 1000,
                 display_worker_nice=run.worker_nice, pinning=run.pinning,
                 display_worker_aside=ASIDE_FLAG in sys.argv[1:],
                 pair_ratios=run.pair_ratios(kind, p),
                 n=len(loaded), p=label)
    for figure, kind, what in figures[1:]:  # no key presses on the streaming VM there
        for label, p in STATS:
            emit(f"display_isolation.drawn_here_vs_elsewhere.{figure}.{label}",
                 ms(percentile(getattr(run.drawn_here, kind), p)),
                 ms(percentile(getattr(run.other_process, kind), p)), "ms",
                 ours_is=f"{what}, the guest animating and this process drawing its MJPEG "
                         "stream",
                 anchor_is=f"{what}, the guest animating and another process drawing the "
                           "stream",
                 cpu={"here": run.drawn_here.cpu(), "elsewhere": run.other_process.cpu()},
                 pinning=run.pinning,
                 n=len(getattr(run.drawn_here, kind)), p=label)
    intervals = run.frame_intervals
    guest_interval = run.guest_seconds / max(run.guest_frames, 1)
    seconds = run.animated.seconds
    emit("display_isolation.frame_interval",
         statistics.median(intervals) * 1000 if intervals else 0.0, guest_interval * 1000,
         "ms", ours_is="time between the Frames our display published while the stream "
                       "played (p50)",
         anchor_is="the guest's time per full-screen write (frames it wrote / its run time)",
         fps=round(run.frames / seconds, 2) if seconds else 0.0, frames=run.frames,
         stream_frames=run.stream_frames, guest_frames=run.guest_frames,
         draw_cpu_ms_per_frame=round(run.draw_seconds * 1000 / max(run.frames, 1), 3),
         seconds=round(seconds, 2), other_process_drew=run.child, p="p50")


def main() -> int:
    n = iterations(100, 3)  # per phase
    if (interval := flag_value(SWITCH_FLAG)) is not None:  # does a shorter GIL hand-over
        sys.setswitchinterval(float(interval))  # change it?
    profile = "--profile" in sys.argv[1:]
    split = None if NO_PIN_FLAG in sys.argv[1:] else CpuSplit.of(os.sched_getaffinity(0))
    if split is not None:  # before the atp threads start: they inherit it
        for tid in thread_ids(os.getpid()):
            os.sched_setaffinity(tid, split.rest)
    pinning = Pinning(split, OTHER_VM)
    session = connect(LabPaths.default().config_file)
    try:
        # lab_lock is a no-op under flock ... pytest
        with lab_lock(), display_vm(SETTING, cpuset=None if split is None else
                                    split.display_cpuset) as dvm, pinning.applied(dvm.name):
            vm = session.vm(dvm.name)
            guest = DisplayGuest(vm)
            guest.framebuffers_on()
            guest.show(None, 0)  # black, console unbound, cursor blink off
            try:
                run = measure(session, guest, vm, n, profile, pinning)
            finally:  # before the VM goes: its end would read as the server dropping us
                get_loop().call(vm.spice_input.spice.close(), CALL_TIMEOUT_S)
    finally:
        session.close()
    report(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
