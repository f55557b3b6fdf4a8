"""What bench_display_isolation measures in each phase: a key press on a VM's Inputs channel
and a QMP call on another VM from the calling thread, the atp loop's lateness, and the CPU
used meanwhile (the host's per core, this process's, the atp loop thread's run time and
run-queue wait); plus ``--profile``'s stack sampler. The phases and the report are in
``bench/bench_display_isolation.py``, whose docstring says what each figure means.

Example::

    targets = Targets(keyboard_of(loop, vm), keyboard_of(loop, other), other)
    samples = sample_phase(loop, targets, 100)   # 100 rounds of the three calls
    samples.cpu()   # {'host_cpu_busy': 0.61, 'host_cpu_busy_per_cpu': [0.3, 0.92], ...}
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from atp_notebook.loop import AtpLoop
from atp_notebook.session import Vm
from atp_notebook.spice.inputs import SpiceKeyboard
from atp_notebook.spice.proto.constants import ChannelType
from bench.bench_spice import KEY_PAUSE_S

KEY = "shift"  # changes nothing in the guest's shell
LAG_TICK_S = 0.005
CALL_TIMEOUT_S = 30.0
PROFILE_INTERVAL_S = 0.001


@dataclass
class Samples:
    """One kind of phase's samples (ns), and the CPU used while they were taken."""

    key: list[int] = field(default_factory=list)
    handoff: list[int] = field(default_factory=list)  # of each key press: until it ran
    other_key: list[int] = field(default_factory=list)  # key presses on the other VM
    qmp: list[int] = field(default_factory=list)
    lag: list[int] = field(default_factory=list)
    seconds: float = 0.0
    host_busy: float = 0.0  # core-seconds the whole host was busy (/proc/stat)
    host_total: float = 0.0  # core-seconds that passed
    cpu_busy: list[float] = field(default_factory=list)  # the same per CPU (cpu0, cpu1, ...)
    cpu_total: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # this process's CPU seconds
    loop_queued: float = 0.0  # seconds the atp loop's thread waited for a CPU, runnable
    loop_ran: float = 0.0  # seconds the atp loop's thread ran on a CPU
    # per watched process (Targets.watched): seconds its threads ran, and waited runnable
    ran: dict[str, float] = field(default_factory=dict)
    queued: dict[str, float] = field(default_factory=dict)

    def extend(self, other: Samples) -> None:
        self.key += other.key
        self.handoff += other.handoff
        self.other_key += other.other_key
        self.qmp += other.qmp
        self.lag += other.lag
        self.seconds += other.seconds
        self.host_busy += other.host_busy
        self.host_total += other.host_total
        self.cpu_busy = added(self.cpu_busy, other.cpu_busy)
        self.cpu_total = added(self.cpu_total, other.cpu_total)
        self.client_cpu += other.client_cpu
        self.loop_queued += other.loop_queued
        self.loop_ran += other.loop_ran
        for mine, theirs in ((self.ran, other.ran), (self.queued, other.queued)):
            for name, seconds in theirs.items():
                mine[name] = mine.get(name, 0.0) + seconds

    def cpu(self) -> dict[str, float | list[float] | dict[str, float]]:
        """The host's busy share of all its cores and of each, this process's share of one
        core, how long per second the atp loop's thread ran, and how long it was runnable but
        had no CPU (ms/s: the kernel's run-queue wait, which no GIL or loop work is part of)."""
        per_second = 1 / self.seconds if self.seconds else 0.0
        return {"host_cpu_busy": round(self.host_busy / self.host_total, 3)
                if self.host_total else 0.0,
                "host_cpu_busy_per_cpu": [round(b / t, 3) if t else 0.0 for b, t in
                                          zip(self.cpu_busy, self.cpu_total, strict=True)],
                "client_cpu": round(self.client_cpu * per_second, 3),
                "loop_cpu_ms_per_s": round(self.loop_ran * 1000 * per_second, 2),
                "loop_runqueue_ms_per_s": round(self.loop_queued * 1000 * per_second, 2),
                "cpu_ms_per_s": {k: round(v * 1000 * per_second, 1)
                                 for k, v in self.ran.items()},
                "runqueue_ms_per_s": {k: round(v * 1000 * per_second, 1)
                                      for k, v in self.queued.items()}}


def added(a: list[float], b: list[float]) -> list[float]:
    """Element-wise sum (an empty list adds nothing)."""
    return [x + y for x, y in zip(a, b, strict=True)] if a and b else a or b


def host_cpu_seconds() -> list[tuple[float, float]]:
    """(busy, total) seconds since boot of the whole host (core-seconds), then of each CPU
    (/proc/stat's cpu, cpu0, cpu1, ... lines)."""
    out = []
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as stat:
        for line in stat:
            if not line.startswith("cpu"):
                break
            fields = [int(v) for v in line.split()[1:]]
            idle = fields[3] + fields[4]  # idle + iowait
            total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
            out.append(((total - idle) / ticks, total / ticks))
    return out


def schedstat(thread: threading.Thread) -> tuple[float, float]:
    """How long ``thread`` has run on a CPU and waited runnable for one, in seconds
    (/proc/self/task/TID/schedstat)."""
    with open(f"/proc/self/task/{thread.native_id}/schedstat") as stat:
        ran, queued = stat.read().split()[:2]
    return int(ran) / 1e9, int(queued) / 1e9


def process_schedstat(pid: int) -> tuple[float, float]:
    """The same summed over every thread of process ``pid`` (threads that ended meanwhile
    drop out: compare spans in which a process keeps its threads)."""
    ran = queued = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                fields = stat.read().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ran, queued = ran + int(fields[0]), queued + int(fields[1])
    return ran / 1e9, queued / 1e9


@contextmanager
def accounted(out: Samples, loop: AtpLoop, watched: dict[str, int]) -> Iterator[None]:
    """Add the wall time, the host's busy time, this process's CPU time, the atp loop
    thread's run-queue wait and each ``watched`` process's (name -> pid) to ``out``."""
    procs = {name: process_schedstat(pid) for name, pid in watched.items()}
    host = host_cpu_seconds()
    cpu, wall = time.process_time(), time.monotonic()
    ran, queued = schedstat(loop.thread)
    try:
        yield
    finally:
        spent = [(b1 - b0, t1 - t0) for (b0, t0), (b1, t1) in
                 zip(host, host_cpu_seconds(), strict=True)]
        out.seconds += time.monotonic() - wall
        out.client_cpu += time.process_time() - cpu
        out.host_busy += spent[0][0]
        out.host_total += spent[0][1]
        out.cpu_busy = added(out.cpu_busy, [busy for busy, _ in spent[1:]])
        out.cpu_total = added(out.cpu_total, [total for _, total in spent[1:]])
        ran_after, queued_after = schedstat(loop.thread)
        out.loop_ran += ran_after - ran
        out.loop_queued += queued_after - queued
        for name, (ran_before, queued_before) in procs.items():
            ran_now, queued_now = process_schedstat(watched[name])
            out.ran[name] = out.ran.get(name, 0.0) + ran_now - ran_before
            out.queued[name] = out.queued.get(name, 0.0) + queued_now - queued_before


# --- the atp loop's lateness --------------------------------------------------------------


class LoopLag:
    """A timer on the atp loop every LAG_TICK_S: how late each one fired, in ns."""

    def __init__(self, loop: AtpLoop) -> None:
        self.loop = loop
        self.late: list[int] = []
        self._task: asyncio.Future[None] | None = None

    async def _tick(self) -> None:
        while True:
            due = time.perf_counter_ns() + int(LAG_TICK_S * 1e9)
            await asyncio.sleep(LAG_TICK_S)
            self.late.append(max(time.perf_counter_ns() - due, 0))

    @contextmanager
    def running(self) -> Iterator[list[int]]:
        self.late = []

        async def start() -> None:
            self._task = asyncio.ensure_future(self._tick())

        async def stop() -> None:
            if self._task is not None:
                self._task.cancel()

        self.loop.call(start(), CALL_TIMEOUT_S)
        try:
            yield self.late
        finally:
            self.loop.call(stop(), CALL_TIMEOUT_S)


# --- the two measured calls ---------------------------------------------------------------


async def _press_stamped(keyboard: SpiceKeyboard) -> tuple[int, int]:
    began = time.perf_counter_ns()
    await keyboard.press(KEY)  # written to the socket (drain returns at once when it is empty)
    return began, time.perf_counter_ns()


def press_to_wire(loop: AtpLoop, keyboard: SpiceKeyboard) -> tuple[int, int]:
    """ns from the call in this thread until the press's bytes are in the socket, and the
    part of it before the press began to run on the atp loop (the hand-off)."""
    start = time.perf_counter_ns()
    began, written = loop.call(_press_stamped(keyboard), CALL_TIMEOUT_S)
    return written - start, began - start


def qmp_round_trip(other: Vm) -> int:
    start = time.perf_counter_ns()
    other.qmp("query-status")
    return time.perf_counter_ns() - start


@dataclass
class Targets:
    """What a phase calls: a key press on the streaming VM (None while another process
    holds its Spice session) and on the other VM, and QMP on the other VM."""

    keyboard: SpiceKeyboard | None
    other_keyboard: SpiceKeyboard
    other: Vm
    # processes whose CPU time and run-queue wait each phase records: name -> pid
    watched: dict[str, int] = field(default_factory=dict)


def sample_phase(loop: AtpLoop, targets: Targets, n: int) -> Samples:
    """``n`` rounds of the three calls, their order rotating round by round (none always
    runs right after the pause), with the loop's lag and the CPU used alongside."""
    out = Samples()
    calls = ("key", "other_key", "qmp")
    with accounted(out, loop, targets.watched), LoopLag(loop).running() as late:
        for i in range(n):
            for which in calls[i % 3:] + calls[:i % 3]:
                if which == "qmp":
                    out.qmp.append(qmp_round_trip(targets.other))
                elif which == "other_key":
                    out.other_key.append(press_to_wire(loop, targets.other_keyboard)[0])
                elif targets.keyboard is not None:
                    total, handoff = press_to_wire(loop, targets.keyboard)
                    out.key.append(total)
                    out.handoff.append(handoff)
                time.sleep(KEY_PAUSE_S)
        out.lag = list(late)
    return out




def keyboard_of(loop: AtpLoop, vm: Vm) -> SpiceKeyboard:
    inputs = loop.call(vm.spice.open_channel(ChannelType.INPUTS), CALL_TIMEOUT_S)
    return SpiceKeyboard(inputs, rate=None)


# --- profiling (--profile) ------------------------------------------------------------------


@contextmanager
def stack_sampler(threads: dict[str, int]) -> Iterator[dict[str, collections.Counter[str]]]:
    """Sample the innermost project frames of ``threads`` (name -> ident) every
    PROFILE_INTERVAL_S: the counts say where each thread spends its time."""
    counts: dict[str, collections.Counter[str]] = {n: collections.Counter() for n in threads}
    done = threading.Event()

    def where(frame: object) -> str:
        parts: list[str] = []
        f = frame
        while f is not None and len(parts) < 3:
            code = f.f_code  # type: ignore[attr-defined]
            if "site-packages" not in code.co_filename or not parts:
                parts.append(f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}")
            f = f.f_back  # type: ignore[attr-defined]
        return " < ".join(parts)

    def run() -> None:
        while not done.wait(PROFILE_INTERVAL_S):
            frames = sys._current_frames()
            for name, ident in threads.items():
                frame = frames.get(ident)
                counts[name][where(frame) if frame is not None else "(not running)"] += 1

    sampler = threading.Thread(target=run, name="bench-sampler", daemon=True)
    sampler.start()
    try:
        yield counts
    finally:
        done.set()
        sampler.join()


def print_profile(counts: dict[str, collections.Counter[str]]) -> None:
    for name, counter in counts.items():
        total = sum(counter.values()) or 1
        print(f"profile: {name}, {total} samples", file=sys.stderr)
        for place, hits in counter.most_common(12):
            print(f"  {100 * hits / total:5.1f}%  {place}", file=sys.stderr)


def profiled(take: Callable[[], Samples], threads: dict[str, int]) -> Samples:
    with stack_sampler(threads) as counts:
        samples = take()
    print_profile(counts)
    return samples


def named_threads(loop: AtpLoop, vm: Vm) -> dict[str, int]:
    out = {"atp-loop": loop.thread.ident or 0}
    for thread in threading.enumerate():
        if thread.name.startswith(f"atp-display-{vm.name}"):
            out[thread.name] = thread.ident or 0
    return out
