"""Which host CPUs a bench's processes may use, and where their threads really are.

bench_display_isolation confines the animating display VM's QEMU (``<vcpu cpuset=>``, see
``atp_notebook.lab.display_vms``) to one CPU and the other VM's QEMU and the client process
to the rest, so that on a 2-core host its figures show what the client does to the other
calls, not the host starved by a TCG guest and spice-server's MJPEG encoder. Affinity is set
per thread (``sched_setaffinity`` on each ``/proc/PID/task`` entry: the lab's libvirt runs
QEMU outside any cpuset cgroup, where a live ``virsh emulatorpin`` moves the main thread
only); threads started later inherit their creator's. :func:`placement` reads back what
took (``Cpus_allowed_list``) and where each thread last ran (``ps -L -o psr``).

Example::

    split = CpuSplit.of(os.sched_getaffinity(0))    # the display VM on the last CPU
    with confined(os.getpid(), split.rest):         # every thread of this process
        with display_vm("streaming", cpuset=split.display_cpuset) as dvm:
            placement(qemu_pid(dvm.name))
            # {'threads': 6, 'allowed': {'1': 6}, 'on_cpu': {'1': 6}}
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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


def thread_ids(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


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
