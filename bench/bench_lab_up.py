"""``atp-lab up`` wall time, as a user runs it: warm (lab already up) and cold.

Warm ``up`` only checks every part and repairs nothing, so its figure is the price of the
idempotent check; cold ``up`` (after ``atp-lab down``) starts libvirtd and sshd and boots the
VMs until their guest agents answer. Both are plain figures: no raw tool does the same work
(a cold ``up`` is not a like-for-like anchor of a warm one — it was, with ratio 0.06, and
the cold figure was divided by itself). Both are whole-process wall times, interpreter start
included. One cold sample per run: each costs a full boot of every VM.

``atp_lab_status``: ``atp-lab status``, which only reads (every URI, agent and Spice port
asked), also plain. ``--quick`` (what the test suite runs) measures that alone: it must
never take the lab down while other tests use it, and even a warm ``up`` applies whatever the
checkout's lab code changed (it restarts a VM whose domain changed). The full run leaves the
lab up: a final ``up`` runs whatever happened. Any ``atp-lab`` call that exits non-zero fails
the benchmark, with its output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.measure import emit_plain, is_quick, iterations, median, ms, timed

ATP_LAB = str(Path(sys.executable).with_name("atp-lab"))
TIMEOUT_S = 900


class AtpLabFailed(RuntimeError):
    pass


def atp_lab(*args: str) -> int:
    """Run ``atp-lab ARGS``; its wall time in ns. Raises AtpLabFailed on a non-zero exit."""
    result: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        result.append(subprocess.run([ATP_LAB, *args], capture_output=True, text=True,
                                     timeout=TIMEOUT_S, check=False))

    elapsed = timed(run)
    proc = result[0]
    # atp-lab's own output goes to stderr: stdout carries only the figures
    sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise AtpLabFailed(f"`atp-lab {' '.join(args)}` exited {proc.returncode}:\n"
                           f"{proc.stdout}{proc.stderr}")
    return elapsed


def main() -> int:
    n = iterations(5, 2)
    atp_lab("status")  # unmeasured: the lab must be up, and the interpreter's files cached
    status = [atp_lab("status") for _ in range(n)]
    emit_plain("atp_lab_status", ms(median(status)), "ms", ours_is="atp-lab status",
               n=n, p="p50")
    if is_quick():
        return 0  # the test suite runs this while the lab serves other tests: only read
    warm = [atp_lab("up") for _ in range(n)]
    emit_plain("atp_lab_up.warm", ms(median(warm)), "ms", ours_is="atp-lab up, lab up",
               n=n, p="p50")
    try:
        atp_lab("down")
        cold = atp_lab("up")
    finally:
        atp_lab("up")  # leave the lab up, whatever happened above
    emit_plain("atp_lab_up.cold", ms(cold), "ms", ours_is="atp-lab up after atp-lab down", n=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
