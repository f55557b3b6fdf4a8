"""The C codecs built with ASan + UBSan survive 100 000 mutated inputs (scripts/fuzz-codecs.sh)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (scripts/setup.sh installs it)")
def test_sanitizer_fuzz_run() -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "fuzz-codecs.sh"), "100000"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "ATP_PYTHON": sys.executable},
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-4000:]
    for marker in ("AddressSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"):
        assert marker not in report, report[-4000:]
    assert "fuzz-codecs: 100000 inputs" in proc.stdout
