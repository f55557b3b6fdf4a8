"""The pytest plugin (atp_notebook/screen/pytest_plugin.py): a test failing with
ScreenMismatch leaves its pictures and numbers in the evidence folder, beside the junit
report or where ``--screen-evidence`` says; other failures and runs with neither leave
nothing. Runs pytest in a subprocess on a small test file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from atp_notebook.screen.pytest_plugin import folder_for

FAILING = '''
import numpy as np
from PIL import Image
from atp_notebook.errors import ScreenMismatch
from atp_notebook.screen import Needle, NeedleArea, match_needle

def test_screen():
    needle = Needle("n", np.full((40, 60, 3), 200, np.uint8), (NeedleArea(10, 10, 20, 20),))
    shown = np.zeros((40, 60, 3), np.uint8)
    best = match_needle(shown, needle)
    raise ScreenMismatch("no needle matched", screen=Image.fromarray(shown, "RGB"),
                         needles=(needle,), best=best, candidates=(best,))

def test_other():
    assert 1 == 2
'''


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_shown.py").write_text(FAILING)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "atp_notebook.screen.pytest_plugin", *args, "test_shown.py"],
                          cwd=folder, capture_output=True, text=True, timeout=120,
                          check=False,
                          # only this plugin: the installed ones take seconds to import
                          env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})


def test_a_screen_mismatch_leaves_its_evidence_beside_the_junit_report(tmp_path: Path
                                                                         ) -> None:
    done = run_pytest(tmp_path, "--junitxml", "out/report.xml")
    assert done.returncode == 1, done.stdout + done.stderr
    evidence = tmp_path / "out" / "screen-evidence"
    assert [p.name for p in evidence.iterdir()] == [folder_for("test_shown.py::test_screen")]
    saved = evidence / "test_shown.py__test_screen"
    assert sorted(p.name for p in saved.iterdir()) == [
        "candidate.png", "diff.png", "needle.png", "numbers.json", "screen.png"]
    assert f"saved in out/screen-evidence/{saved.name}" in done.stdout


def test_the_option_names_the_folder_and_without_it_nothing_is_written(tmp_path: Path
                                                                       ) -> None:
    done = run_pytest(tmp_path, "--screen-evidence", str(tmp_path / "ev"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (tmp_path / "ev" / "test_shown.py__test_screen" / "numbers.json").is_file()
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    assert run_pytest(quiet).returncode == 1
    assert sorted(p.name for p in quiet.iterdir()) == ["test_shown.py"]
