"""Wait for booting lab guests until their agents answer; reset a guest that hangs.

A TCG guest now and then hangs early in boot (a CI run saw one of three guests stay silent
for 180 s while the other two answered in seconds). Waiting longer does not help such a
guest; a hardware reset does. A guest counts as hung when its agent does not answer and
its serial console log has not changed for ``stall_s``: a guest that is merely slow keeps
printing (the init script logs each step), so it is left alone.

Every guest boots in parallel against one deadline, and the error names every silent one
with the tail of its console log, so a CI log shows where each one stopped.

Example::

    guests = [BootingGuest("atp-vm1", probe, paths.console_log("atp-vm1"), dom.reset)]
    wait_for_agents(guests, timeout=180.0)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from atp_notebook.errors import LabError

log = logging.getLogger("atp.lab")

STALL_S = 60.0  # a normal boot here prints its next console line within ~10 s
MAX_RESETS = 2
POLL_S = 0.5
CONSOLE_TAIL_LINES = 3


@dataclass(frozen=True)
class BootingGuest:
    """One guest to wait for: its agent probe, console log, and how to reset it (if any)."""

    name: str
    answers: Callable[[], bool]
    console: Path
    reset: Callable[[], object] | None = None


def console_signature(path: Path) -> tuple[int, int]:
    """What changes when the guest prints: the log's size and modification time."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def console_tail(path: Path, lines: int = CONSOLE_TAIL_LINES) -> str:
    """The last non-empty lines of a console log, terminal escapes dropped; "" if none."""
    try:
        data = path.read_bytes()[-4096:]
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    kept = []
    for line in text.splitlines():
        printable = "".join(c for c in line if c.isprintable()).strip()
        if printable:
            kept.append(printable)
    return " | ".join(kept[-lines:])


@dataclass
class _Watch:
    guest: BootingGuest
    signature: tuple[int, int]
    progress_at: float
    resets: int = 0


def wait_for_agents(
    guests: Sequence[BootingGuest],
    timeout: float,
    *,
    stall_s: float = STALL_S,
    max_resets: int = MAX_RESETS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Return once every guest's agent answers; reset hung guests; LabError past ``timeout``."""
    start = clock()
    deadline = start + timeout
    waiting = {g.name: _Watch(g, console_signature(g.console), start) for g in guests}
    while waiting:
        for name, watch in list(waiting.items()):
            if watch.guest.answers():
                log.info("%s: guest agent answers", name)
                del waiting[name]
            else:
                _reset_if_hung(watch, clock(), stall_s, max_resets)
        if not waiting:
            return
        if clock() >= deadline:
            break
        sleep(POLL_S)
    raise _timeout_error(list(waiting.values()), timeout)


def _reset_if_hung(watch: _Watch, now: float, stall_s: float, max_resets: int) -> None:
    signature = console_signature(watch.guest.console)
    if signature != watch.signature:
        watch.signature, watch.progress_at = signature, now
        return
    if watch.guest.reset is None or watch.resets >= max_resets:
        return
    if now - watch.progress_at < stall_s:
        return
    watch.resets += 1
    log.warning("%s: no agent and no console output for %.0f s: resetting it (%d of %d)",
                watch.guest.name, now - watch.progress_at, watch.resets, max_resets)
    try:
        watch.guest.reset()
    except Exception as exc:  # a failed reset leaves the guest to the deadline, named there
        log.warning("%s: reset failed: %s", watch.guest.name, exc)
    watch.progress_at = now


def _timeout_error(silent: list[_Watch], timeout: float) -> LabError:
    names = ", ".join(sorted(w.guest.name for w in silent))
    details = []
    for w in sorted(silent, key=lambda w: w.guest.name):
        tail = console_tail(w.guest.console) or "(nothing printed)"
        resets = f", reset {w.resets} time(s)" if w.resets else ""
        details.append(f"{w.guest.name}{resets}: console ends with: {tail} ({w.guest.console})")
    return LabError(
        f"the guest agent of {names} did not answer within {timeout:.0f} s",
        hint="; ".join(details),
    )
