"""Whether a call releases the GIL: a thread counts while the call runs.

With the GIL held for the whole call the counting thread cannot run during it at all (its
count moves by a switch interval's worth at most), so a count far above zero per call shows
the call let go of the GIL. Used by the codec tests (the C decoders release it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def ticks_during(call: Callable[[], object], seconds: float = 0.5) -> tuple[int, int]:
    """Run ``call`` repeatedly for about ``seconds``; (spinner ticks during calls, calls)."""
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        calls, during = 0, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            before = ticks
            call()
            during += ticks - before
            calls += 1
    finally:
        stop.set()
        t.join()
    return during, calls
