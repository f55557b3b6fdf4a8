"""The lab lock under ``flock /tmp/atp-lab.lock <command>``: a process that runs under the
holder sees the lock as its own and does not wait for it (it would wait for ever)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = """\
import sys
from pathlib import Path
from atp_notebook.lab.display_capture import lab_lock, lock_held_by_ancestor
path = Path(sys.argv[1])
held = lock_held_by_ancestor(path)
with lab_lock(path):
    print(held)
"""


def run_child(lock: Path, under_flock: bool) -> str:
    command = [sys.executable, "-c", CHILD, str(lock)]
    if under_flock:
        command = ["flock", str(lock), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize(("under_flock", "expected"), [(True, "True"), (False, "False")])
def test_the_lock_is_seen_as_held_only_under_a_holder(tmp_path: Path, under_flock: bool,
                                                       expected: str) -> None:
    lock = tmp_path / "lab.lock"
    lock.touch()
    assert run_child(lock, under_flock) == expected


def test_a_missing_lock_file_is_not_held(tmp_path: Path) -> None:
    from atp_notebook.lab.display_capture import lock_held_by_ancestor

    assert lock_held_by_ancestor(tmp_path / "absent.lock") is False
