"""Smoke test of the benchmark suite: every ``bench/bench_*.py`` module, ``--quick``, on the lab.

Checks the figures' shape only: exactly the expected names, every line one that
``bench.measure.check_line`` accepts (a ratio against a differently timed anchor, or a plain
figure), the units, spice-gtk's version on its figures. Speed is measured by the suite, never
asserted here: no timing thresholds.

``lab_up`` runs too: its quick mode measures ``atp-lab status`` only, which reads; its full
run takes the lab down and up again (never in the suite).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus
from bench.measure import check_line
from bench.run import discover

ROOT = Path(__file__).resolve().parents[2]
PCT = ("p50", "p99")
SPICE_KINDS = ("plain", "tls")
# figure names each module prints in quick mode: the hosts come from the lab's inventory
HOSTLESS: dict[str, set[str]] = {
    "lab_up": {"atp_lab_status"},
    "spice": {f"spice_connect.{k}" for k in SPICE_KINDS}
    | {f"spice_socket_connect.{k}" for k in SPICE_KINDS}
    | {f"spice_input_to_wire.{p}" for p in PCT},
    "listing": {f"{f}.{h}" for f in ("vms_list", "vm_lookup") for h in ("local", "tcp")},
    "vm_calls": {f"{f}.{h}.{p}" for f in ("vm_qmp_query_status", "vm_qga_guest_ping")
                 for h in ("local", "tcp") for p in PCT},
    # quick mode: the golden corpus only, one figure per codec and anchor
    "codecs": {f"codec_{c}.corpus.vs_{a}" for c, a in (
        ("quic", "png"), ("lz", "zlib"), ("glz", "zlib"), ("zlib_glz", "zlib"), ("lz4", "lz4"),
        ("jpeg", "pillow_jpeg"))} | {f"codec_{c}.corpus.vs_memcpy" for c in (
        "bitmap", "quic", "lz", "glz", "zlib_glz", "lz4", "jpeg")},
    # ours with the default options, and (.glz) with spice-gtk's GLZ window, vs spice-gtk
    "display": {f"display_update{v}.{r}.p50" for v in ("", ".glz")
                for r in ("from_server_send", "from_guest_write")}
    | {"display_update_cpu", "display_update_cpu.glz", "vm_screenshot.p50",
       "display_rss.open_1024x768"},
    "framing": {"display_message_in.3MiB"},
    "display_isolation": {f"display_isolation.{f}.{p}" for f in (
        "input_to_wire", "input_other_vm_to_wire", "qmp_other_vm", "loop_lag") for p in PCT}
    | {f"display_isolation.drawn_here_vs_elsewhere.{f}.{p}" for f in (
        "input_other_vm_to_wire", "qmp_other_vm", "loop_lag") for p in PCT}
    | {"display_isolation.frame_interval"},
    "screen": {"screen_change_to_assert.p50", "screen_change_to_assert.from_guest_write.p50",
               "screen_match.area_200x100_m50", "screen_match.area_200x100_m50.colour",
               "screen_match.area_200x100_full", "screen_ocr.console_line"},
    "widget": {"widget_fps", "widget_latency.p50", "widget_latency.p95", "widget_kernel_cpu",
               "widget_fps_ceiling"},
    "port": {"port_echo_1mb.p50"},
    "audio": {"audio_playback_latency.p50", "audio_playback_cpu_per_audio_s"},
}
# figures with no like-for-like anchor: printed with anchor and ratio null
PLAIN = {"atp_lab_status", "libvirt_open.local", "display_rss.open_1024x768",
         "widget_kernel_cpu", "widget_fps_ceiling", "audio_playback_cpu_per_audio_s"} | {
    f"spice_socket_connect.{k}" for k in SPICE_KINDS}
PLAIN_PREFIXES = ("pool_handout.",)
# units other than ms, by the name's first part
UNITS = {"pool_handout": "us", "display_rss": "MiB", "widget_fps": "fps",
         "widget_fps_ceiling": "fps"}


def expected_names(module: str, paths: LabPaths) -> set[str]:
    ids = [h.id for h in lab_hosts(paths)]
    if module == "libvirt_open":
        return {f"libvirt_open.{i}" for i in ids}
    if module == "pool":
        return {f"{f}.{i}" for f in ("pool_open", "pool_reuse", "pool_handout") for i in ids}
    if module == "roundtrip":
        return {f"{f}.{i}.{p}" for f in ("qmp_query_status", "qga_guest_ping")
                for i in ids for p in PCT}
    return HOSTLESS[module]


def test_every_bench_module_is_covered(lab_paths: LabPaths) -> None:
    # a new bench module fails here until its figures are listed above
    for module in discover():
        assert expected_names(module, lab_paths), module


@pytest.mark.parametrize("module", discover())
def test_quick_run_prints_every_figure(
    module: str, lab: LabStatus, lab_paths: LabPaths, tmp_path: Path
) -> None:
    output = tmp_path / "latest.jsonl"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", module,
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr

    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    figures = []
    for line in lines:
        doc, error = check_line(line)
        assert error is None, error
        assert doc is not None
        figures.append(doc)
    names = [f["name"] for f in figures]
    assert len(names) == len(set(names)), f"duplicate figures: {names}"
    assert set(names) == expected_names(module, lab_paths)
    for figure in figures:
        plain = figure["name"] in PLAIN or figure["name"].startswith(PLAIN_PREFIXES)
        assert (figure["ratio"] is None) == plain, figure
        assert figure["unit"] == UNITS.get(figure["name"].split(".")[0], "ms")
        if figure["name"].startswith(("spice_connect.", "display_update")):
            assert figure["spice_gtk"] and figure["spice_gtk"] in figure["anchor_is"], figure
    assert output.read_text().splitlines() == lines
