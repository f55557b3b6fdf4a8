"""The C codecs built with ASan + UBSan survive 100 000 mutated inputs (scripts/fuzz-codecs.sh)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sanitizer_fuzz_run() -> None:
    # a missing compiler fails here, never skips: a skipped fuzz run would hide it
    assert shutil.which("gcc") is not None, "gcc is missing: scripts/setup.sh installs it"
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
