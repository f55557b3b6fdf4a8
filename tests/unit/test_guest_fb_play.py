"""atp-fb-play (guest_src/atp-fb-play.c), the guest's one-process animator: it compiles with
the guest programs' flags and refuses bad arguments as atp-fb-animate does (exit 2, usage),
a missing framebuffer with exit 1. Its frames on a real framebuffer are tested through a
display VM (tests/integration/test_display_vms.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.guest_binaries import guest_binary


@pytest.fixture(scope="module")
def fb_play(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return guest_binary("atp-fb-play", tmp_path_factory)


def _run(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.parametrize("args", [
    (),
    ("FILE", "1", "0", "0"),
    ("FILE", "0", "0", "0", "0"),
    ("FILE", "x", "0", "0", "0"),
    ("FILE", "1", "-1", "0", "0"),
    ("FILE", "1", "0", "0", "1y"),
    ("/no/such/file", "1", "0", "0", "0"),
    ("FILE", "1", "0", "0", "0", "-5"),
    ("FILE", "1", "0", "0", "0", "1001"),
    ("FILE", "1", "0", "0", "0", "30fps"),
    ("FILE", "1", "0", "0", "0", "30", "extra"),
], ids=["none", "four", "zero-frames", "frames-text", "negative-fb", "max-junk", "no-file",
        "negative-fps", "fps-over-1000", "fps-junk", "seven"])
def test_bad_arguments_exit_2_with_the_usage(fb_play: Path, tmp_path: Path,
                                             args: tuple[str, ...]) -> None:
    frames = tmp_path / "frames"
    frames.write_bytes(bytes(4096))
    done = _run(fb_play, *(str(frames) if a == "FILE" else a for a in args))
    assert done.returncode == 2
    assert done.stderr.startswith("usage: atp-fb-play FILE FRAMES FB ROW MAX")
    assert done.stdout == ""


def test_a_directory_is_no_frames_file(fb_play: Path, tmp_path: Path) -> None:
    done = _run(fb_play, str(tmp_path), "1", "0", "0", "0")
    assert done.returncode == 2 and done.stderr.startswith("usage:")


def test_a_missing_framebuffer_exits_1_and_says_so(fb_play: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.write_bytes(bytes(4096))
    done = _run(fb_play, str(frames), "1", "97", "0", "0")  # no machine has fb97
    assert done.returncode == 1
    assert done.stderr == "atp-fb-play: no /dev/fb97 (atp-fb-on first)\n"
