"""Recording what a display VM's Spice server sends, for captures and benchmarks.

:class:`Recorder` is a listener of a :class:`~atp_notebook.spice.vm.SpiceVmConnection`: it
keeps every display-channel message in arrival order with its channel id, and lets the
capturing thread wait until the screen is still. :func:`lab_lock` is the lock every lab user
holds (``flock /tmp/atp-lab.lock``): a Spice server serves one client per VM, so captures,
benchmarks and lab tests run one at a time. Used by ``scripts/capture-codec-corpus.py`` and
``bench/bench_codecs.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from atp_notebook.errors import OperationTimeout
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.display import Mark
from atp_notebook.spice.vm_events import ChannelMessage, SpiceVmEvent

__all__ = ["LAB_LOCK", "QUIET_S", "STEP_TIMEOUT_S", "Recorder", "lab_lock",
           "lock_held_by_ancestor"]

LAB_LOCK = Path("/tmp/atp-lab.lock")  # noqa: S108 - the lock every lab user agrees on
QUIET_S = 1.0  # no display message for this long: the screen is still
STEP_TIMEOUT_S = 60.0


@contextlib.contextmanager
def lab_lock(path: Path = LAB_LOCK) -> Iterator[None]:
    """The lock every lab user holds (``flock /tmp/atp-lab.lock``): one VM user at a time.
    Nothing to take when a process this one runs under holds it (``flock ... pytest``):
    the lab is ours already, and waiting for it would wait for ever."""
    if lock_held_by_ancestor(path):
        yield
        return
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ancestors() -> set[int]:
    """The pids of this process's parent, its parent, ... up to init."""
    found: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:  # that ancestor just ended
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return found


def lock_held_by_ancestor(path: Path = LAB_LOCK) -> bool:
    """Whether a process this one runs under holds ``path``'s flock (``/proc/locks``)."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return False
    holders = _ancestors()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # "->" marks a waiter
        pid, device_inode = fields[4], fields[5]
        if int(device_inode.rsplit(":", 1)[1]) == inode and int(pid) in holders:
            return True
    return False


@dataclass
class Recorder:
    """Hears the VM's events on the atp loop; the capture thread waits on it."""

    began: float = field(default_factory=time.monotonic)
    events: list[tuple[float, int, object]] = field(default_factory=list)
    last: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: SpiceVmEvent) -> None:
        if isinstance(event, ChannelMessage) and event.channel_type is ChannelType.DISPLAY:
            now = time.monotonic()
            with self.lock:
                self.events.append((now - self.began, event.channel_id, event.event))
                self.last = now

    def count(self) -> int:
        with self.lock:
            return len(self.events)

    def marks(self) -> set[int]:
        with self.lock:
            return {c for _, c, e in self.events if isinstance(e, Mark)}

    def wait_still(self, quiet: float = QUIET_S, timeout: float = STEP_TIMEOUT_S,
                   after: int = 0) -> None:
        """Until ``after`` events have arrived and then none for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                idle = time.monotonic() - self.last
                enough = len(self.events) >= after
            if enough and idle >= quiet:
                return
            time.sleep(0.05)
        raise OperationTimeout(f"the display did not settle within {timeout:g} s")


