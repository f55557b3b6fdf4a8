"""Smoke test of the benchmark suite: ``bench/run.py --quick`` over the lab's transports.

Checks the shape of the figures only: every expected name, every line valid JSON with
positive numbers and ratio = ours / anchor. Speed is measured by the suite, never asserted
here: no timing thresholds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("name", "ours", "anchor", "ratio", "unit")


def expected_names(paths: LabPaths) -> set[str]:
    ids = [h.id for h in lab_hosts(paths)]
    names = {f"libvirt_open.{i}" for i in ids}
    for figure in ("qmp_query_status", "qga_guest_ping"):
        names |= {f"{figure}.{i}.{p}" for i in ids for p in ("p50", "p99")}
    return names


def test_quick_run_prints_every_figure(
    lab: LabStatus, lab_paths: LabPaths, tmp_path: Path
) -> None:
    output = tmp_path / "latest.jsonl"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick",
         "--only", "libvirt_open,roundtrip", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr

    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    figures = [json.loads(line) for line in lines]
    names = [f["name"] for f in figures]
    assert len(names) == len(set(names)), f"duplicate figures: {names}"
    assert set(names) == expected_names(lab_paths)
    for figure in figures:
        assert all(k in figure for k in KEYS), figure
        assert figure["unit"] == "ms", figure
        for key in ("ours", "anchor", "ratio"):
            assert isinstance(figure[key], float) and figure[key] > 0, figure
        assert math.isclose(figure["ratio"], figure["ours"] / figure["anchor"],
                            rel_tol=1e-9), figure
    assert output.read_text().splitlines() == lines
