"""bench/cpu_placement.py: the CPU split of bench_display_isolation, CPU list notation both
ways, and confining a real thread of this process (its affinity set and restored, read back
from /proc as ``ps -L`` and ``taskset`` would)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from bench.cpu_placement import (
    CpuSplit,
    confined,
    confined_to,
    cpu_list,
    parse_cpu_list,
    placement,
    thread_ids,
)


@pytest.mark.parametrize(("cpus", "text"), [
    ({0}, "0"), ({0, 1}, "0-1"), ({0, 1, 3}, "0-1,3"), ({2, 4, 5, 6, 9}, "2,4-6,9"),
])
def test_cpu_lists_read_and_write_the_kernels_notation(cpus: set[int], text: str) -> None:
    assert cpu_list(cpus) == text
    assert parse_cpu_list(text) == cpus


def test_the_display_vm_gets_the_last_cpu_and_the_rest_the_others() -> None:
    split = CpuSplit.of([3, 0, 1])
    assert split == CpuSplit(frozenset({3}), frozenset({0, 1}))
    assert split is not None and split.display_cpuset == "3"
    assert CpuSplit.of([0]) is None  # one CPU: nothing to split


def test_confined_sets_every_thread_and_gives_each_its_cpus_back() -> None:
    mine = os.sched_getaffinity(0)
    if len(mine) < 2:
        pytest.fail("this test needs a process allowed on two CPUs or more")
    one = frozenset({min(mine)})
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        with confined(os.getpid(), one):
            assert confined_to(os.getpid(), one)
            assert os.sched_getaffinity(helper.native_id or 0) == one
            seen = placement(os.getpid())
            assert seen["allowed"] == {str(min(mine)): seen["threads"]}
            # where each thread last ran: a sleeping one moves when it next wakes
            assert sum(seen["on_cpu"].values()) == seen["threads"]  # type: ignore[attr-defined]
        assert os.sched_getaffinity(helper.native_id or 0) == mine
        assert not confined_to(os.getpid(), one)
    finally:
        stop.set()
        helper.join()


def test_a_process_that_ended_has_no_threads_to_place() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert thread_ids(child.pid) == []
    assert placement(child.pid) == {"threads": 0, "allowed": {}, "on_cpu": {}}
    assert not confined_to(child.pid, frozenset({0}))
