"""atp-cursor (guest_src/atp-cursor.c) run on the host: bad arguments exit 2 with the usage
before any device is opened (so the host's DRM devices, if any, are never touched). Its
cursor on a real qxl device is tested through a display VM
(tests/integration/test_spice_cursor.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.guest_binaries import guest_binary

USAGE = "usage: atp-cursor hold | set HX HY X Y | move X Y | hide"


@pytest.fixture(scope="module")
def atp_cursor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return guest_binary("atp-cursor", tmp_path_factory)


def _run(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.parametrize("args", [
    (),
    ("jump",),
    ("hold", "now"),
    ("set", "1", "2", "3"),
    ("set", "1", "2", "3", "x"),
    ("set", "1", "2", "3", "4y"),
    ("set", "64", "0", "10", "10"),  # the hot spot outside the 64x64 shape
    ("set", "-1", "0", "10", "10"),
    ("move", "40000", "0"),  # beyond a Point16
    ("move", "", "0"),
    ("hide", "all"),
], ids=["none", "unknown", "hold-extra", "set-three", "set-text", "set-junk", "hot-64",
        "hot-negative", "move-big", "move-empty", "hide-extra"])
def test_bad_arguments_exit_2_with_the_usage(atp_cursor: Path, args: tuple[str, ...]) -> None:
    done = _run(atp_cursor, *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == USAGE

