"""Which host CPUs a bench's processes may use, and where their threads really are.

bench_display_isolation confines the animating display VM's QEMU (``<vcpu cpuset=>``, see
``atp_notebook.lab.display_vms``) to one CPU, with the lab's other VMs, and the measured
side — the client process, the other VM's QEMU and libvirtd — to the rest (:class:`Pinning`),
so that on a 2-core host its figures show what the client does to the other calls, not the
host starved by a TCG guest and spice-server's MJPEG encoder. Affinity is set per thread
(``sched_setaffinity`` on each ``/proc/PID/task`` entry: the lab's libvirt runs QEMU outside
any cpuset cgroup, where a live ``virsh emulatorpin`` moves the main thread only); threads
started later inherit their creator's. :func:`placement` reads back what took
(``Cpus_allowed_list``, as ``taskset -p``) and where each thread last ran (``ps -L -o psr``).

Example::

    split = CpuSplit.of(os.sched_getaffinity(0))   # the display VM on the last CPU
    os.sched_setaffinity(0, split.rest)             # this process (before its threads start)
    pinning = Pinning(split, "atp-vm1")
    with display_vm("streaming", cpuset=split.display_cpuset) as dvm, \
            pinning.applied(dvm.name):              # checked: RuntimeError if it did not take
        ...
        pinning.snapshot()
    pinning.summary()   # {'display_side_cpus': [1], 'measured_side_cpus': [0], ...}
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

LIBVIRT_PIDS = Path("/run/libvirt/qemu")  # NAME.pid of each running domain's QEMU
GONE = (ProcessLookupError, FileNotFoundError)  # a thread that ended meanwhile


@dataclass(frozen=True)
class CpuSplit:
    """The CPUs the display VM gets, and the ones left to everything else measured."""

    display: frozenset[int]
    rest: frozenset[int]

    @classmethod
    def of(cls, cpus: Iterable[int]) -> CpuSplit | None:
        """The last of ``cpus`` for the display VM, the others for the rest; None with fewer
        than two (nothing to split)."""
        ordered = sorted(cpus)
        if len(ordered) < 2:
            return None
        return cls(frozenset(ordered[-1:]), frozenset(ordered[:-1]))

    @property
    def display_cpuset(self) -> str:
        return cpu_list(self.display)


def cpu_list(cpus: Iterable[int]) -> str:
    """``{0, 1, 3}`` -> ``"0-1,3"`` (the kernel's and libvirt's notation)."""
    ordered = sorted(set(cpus))
    runs: list[list[int]] = []
    for cpu in ordered:
        if runs and cpu == runs[-1][-1] + 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def parse_cpu_list(text: str) -> frozenset[int]:
    """``"0-1,3"`` -> ``{0, 1, 3}``."""
    out: set[int] = set()
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return frozenset(out)


def qemu_pid(domain: str) -> int:
    """The pid of a running lab domain's QEMU (libvirt's pid file)."""
    return int((LIBVIRT_PIDS / f"{domain}.pid").read_text().strip())


def libvirtd_pid() -> int:
    """The pid of the libvirt daemon that runs the lab's QEMU domains."""
    return int((LIBVIRT_PIDS / "driver.pid").read_text().strip())


def qemu_processes() -> dict[int, str]:
    """Every QEMU process of the host by pid, named by its ``-name`` (``guest=atp-vm1`` from
    libvirt, ``atp-sasl,process=atp-sasl`` from the lab's Spice-only VM)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(*GONE, PermissionError):
            if not os.readlink(entry / "exe").rsplit("/", 1)[-1].startswith("qemu-system"):
                continue
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            name = args[args.index("-name") + 1] if "-name" in args[:-1] else "?"
            found[int(entry.name)] = name.split(",")[0].removeprefix("guest=")
    return found


def thread_ids(pid: int) -> list[int]:
    """The thread ids of process ``pid``; none once it ended."""
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except GONE:
        return []


@contextmanager
def confined(pid: int, cpus: frozenset[int]) -> Iterator[None]:
    """Every thread of ``pid`` on ``cpus`` for the block, each back on its own CPUs after
    (threads that ended meanwhile are skipped)."""
    before: dict[int, set[int]] = {}
    try:
        for tid in thread_ids(pid):
            with suppress(*GONE):
                before[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
        yield
    finally:
        for tid, cpus_before in before.items():
            with suppress(*GONE):
                os.sched_setaffinity(tid, cpus_before)


def placement(pid: int) -> dict[str, object]:
    """How many threads ``pid`` has, how many may run on which CPUs, and on which CPU each
    last ran (counts per CPU list and per CPU; a thread asleep since its affinity changed
    still shows its old CPU until it wakes)."""
    allowed: collections.Counter[str] = collections.Counter()
    on_cpu: collections.Counter[str] = collections.Counter()
    for tid in thread_ids(pid):
        with suppress(*GONE):
            task = Path(f"/proc/{pid}/task/{tid}")
            for line in (task / "status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    allowed[line.split(":", 1)[1].strip()] += 1
            # after the command name's ")": field 3 (state) onwards; 39 is the last CPU
            on_cpu[(task / "stat").read_text().rsplit(")", 1)[1].split()[36]] += 1
    return {"threads": sum(allowed.values()), "allowed": dict(allowed),
            "on_cpu": dict(sorted(on_cpu.items()))}


def confined_to(pid: int, cpus: frozenset[int]) -> bool:
    """Whether every thread of ``pid`` may run on ``cpus`` only."""
    allowed = placement(pid)["allowed"]
    assert isinstance(allowed, dict)
    return bool(allowed) and all(parse_cpu_list(k) == cpus for k in allowed)


@dataclass(frozen=True)
class Placed:
    """One process's side of the CPU split."""

    what: str  # a VM's name, "libvirtd" or "client"
    pid: int
    cpus: frozenset[int]


@dataclass
class Pinning:
    """This run's CPU split (None: unconfined), who goes where, and, once an animated phase
    ran, where their threads were.

    The measured side gets ``split.rest``: this process (and any child, which inherits it),
    ``measured_vm``'s QEMU and libvirtd (``vm.qmp``'s path). The display VM and the
    lab's other VMs get ``split.display``: an idle TCG guest still takes a quarter to half a
    core, and with the display VM filling its CPU the kernel would move those onto the
    measured side's during the animated phases only."""

    split: CpuSplit | None
    measured_vm: str  # the VM the measured calls go to (QMP)
    plan: list[Placed] = field(default_factory=list)
    seen: dict[str, object] = field(default_factory=dict)

    @contextmanager
    def applied(self, display: str) -> Iterator[None]:
        """The plan for ``display`` (already started on its CPU) in force for the block,
        every process's own CPUs back afterwards; checked (RuntimeError) before it runs."""
        if self.split is None:
            yield
            return
        rest, aside = self.split.rest, self.split.display
        self.plan = [Placed("client", os.getpid(), rest), Placed("libvirtd", libvirtd_pid(), rest)]
        for pid, name in qemu_processes().items():
            self.plan.append(Placed(name, pid, rest if name == self.measured_vm else aside))
        with contextlib.ExitStack() as stack:
            for placed in self.plan:
                if placed.what not in ("client", display):  # those two are already
                    stack.enter_context(confined(placed.pid, placed.cpus))
            for placed in self.plan:  # a bystander that ended meanwhile has no threads
                if thread_ids(placed.pid) and not confined_to(placed.pid, placed.cpus):
                    raise RuntimeError(f"{placed.what}'s threads are not confined to CPUs "
                                       f"{sorted(placed.cpus)}: {placement(placed.pid)}")
            yield

    def snapshot(self) -> None:
        self.seen = {p.what: placement(p.pid) for p in self.plan}

    def summary(self) -> dict[str, object]:
        if self.split is None:
            return {"off": True}
        return {"display_side_cpus": sorted(self.split.display),
                "measured_side_cpus": sorted(self.split.rest),
                "display_side": sorted(p.what for p in self.plan
                                       if p.cpus == self.split.display),
                "threads": self.seen}
