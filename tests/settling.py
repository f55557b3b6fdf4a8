"""Leak checks without a fixed sleep: read a count until it settles, bounded.

Closing a socket, ending a thread or a task, a daemon dropping a client: each finishes a
moment after the call that asked for it returns, by an amount no test can know. A check that
sleeps a fixed time and then compares an exact count is flaky on a busy host and slow on an
idle one; polling until the count is back (or a deadline passes) is neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def settled(read: Callable[[], T], expected: T, timeout: float = 10.0,
            interval: float = 0.02) -> T:
    """``read()`` polled until it equals ``expected`` or ``timeout`` seconds pass; its last
    value. Assert on the result, so a failure shows what the count settled at::

        assert settled(open_fds, before) == before
    """
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(interval)
        value = read()
    return value
