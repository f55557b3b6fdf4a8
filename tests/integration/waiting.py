"""Polling helpers for lab tests: deadlines to wait for the guest, never timing assertions."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from atp_notebook.session import Vm


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0,
               interval: float = 0.1) -> None:
    """Poll until ``predicate()`` holds; fail the test naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def wait_for_guest_file(vm: Vm, path: str, timeout: float = 30.0) -> bytes:
    """The bytes of a guest file once it exists and is not empty."""
    wait_until(lambda: vm.exec(["/bin/sh", "-c", f"test -s {path}"]).exit_code == 0,
               f"{path} in the guest", timeout, interval=0.2)
    time.sleep(0.3)  # let the writer (the guest's shell) finish
    return vm.read_file(path)


# a TCG guest boots and starts its agent in ~10 s; a busy CI host is slower
BOOT_S = 120.0


def boot_id(vm: Vm) -> bytes:
    """The guest kernel's id of this boot: a new one after every reboot (uptime is no proof:
    a guest reset twice in a row may not have been up as long the first time)."""
    return vm.read_file("/proc/sys/kernel/random/boot_id").strip()
