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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from atp_notebook.errors import OperationTimeout
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.display import Mark
from atp_notebook.spice.vm_events import ChannelMessage, SpiceVmEvent

__all__ = ["LAB_LOCK", "QUIET_S", "STEP_TIMEOUT_S", "Recorder", "lab_lock"]

LAB_LOCK = Path("/tmp/atp-lab.lock")  # noqa: S108 - the lock every lab user agrees on
QUIET_S = 1.0  # no display message for this long: the screen is still
STEP_TIMEOUT_S = 60.0


@contextlib.contextmanager
def lab_lock() -> Iterator[None]:
    """The lock every lab user holds (``flock /tmp/atp-lab.lock``): one VM user at a time."""
    with LAB_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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


