"""The host executor (``DaemonThreadPool``) and what it is for: a libvirt open that never
returns must not hold up interpreter exit.

The wedged peer is a local socket that accepts and never answers — a hostile server, as
in the Spice adapter tests; the client is the real libvirt library.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import pytest

from atp_notebook.loop import DaemonThreadPool


def test_results_and_exceptions_reach_the_future() -> None:
    pool = DaemonThreadPool(max_workers=2, name="t")
    assert pool.submit(lambda a, b: a + b, 2, 3).result(timeout=5) == 5
    failing = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        failing.result(timeout=5)


def test_work_runs_in_parallel_up_to_max_workers_on_daemon_threads() -> None:
    pool = DaemonThreadPool(max_workers=3, name="t")
    release = threading.Event()
    started: list[threading.Thread] = []
    lock = threading.Lock()

    def hold() -> None:
        with lock:
            started.append(threading.current_thread())
        release.wait(10)

    futures = [pool.submit(hold) for _ in range(5)]
    deadline = time.monotonic() + 5
    while len(started) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # a fourth would have started by now if the cap did not hold
    assert len(started) == 3
    assert all(t.daemon and t.name.startswith("t-") for t in started)
    release.set()
    for future in futures:
        future.result(timeout=5)
    assert len(started) == 5
    assert len({t.ident for t in started}) == 3  # the queued two reused the threads


def test_idle_threads_are_reused_one_submit_at_a_time() -> None:
    pool = DaemonThreadPool(max_workers=8, name="t")
    names = set()
    for _ in range(50):
        names.add(pool.submit(lambda: threading.current_thread().name).result(timeout=5))
    assert len(names) <= 2  # sequential work never needs a crowd of threads


def test_a_cancelled_future_is_skipped() -> None:
    pool = DaemonThreadPool(max_workers=1, name="t")
    release = threading.Event()
    first = pool.submit(release.wait, 10)
    ran: list[int] = []
    second: Future[None] = pool.submit(ran.append, 1)
    assert second.cancel()
    release.set()
    first.result(timeout=5)
    assert pool.submit(lambda: 7).result(timeout=5) == 7
    assert ran == []


WEDGED = """
import socket, threading, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(5)
held = []
threading.Thread(target=lambda: [held.append(server.accept()) for _ in iter(int, 1)],
                 daemon=True).start()
from atp_notebook.errors import HostUnavailable
from atp_notebook.virt.host import HostConnection
host = HostConnection("wedged", f"qemu+tcp://127.0.0.1:{server.getsockname()[1]}/system")
started = time.monotonic()
try:
    host.connection(timeout=1)
except HostUnavailable as exc:
    print(f"HostUnavailable {time.monotonic() - started:.1f}", flush=True)
"""


def test_an_open_that_never_returns_does_not_hold_up_interpreter_exit() -> None:
    proc = subprocess.run([sys.executable, "-c", WEDGED], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    word, seconds = proc.stdout.split()
    assert word == "HostUnavailable" and 1.0 <= float(seconds) < 5.0
