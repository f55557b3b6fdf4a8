"""``atp-lab up`` wall time, as a user runs it: warm (lab already up) against cold.

Warm ``up`` only checks every part and repairs nothing, so its figure is the price of the
idempotent check; cold ``up`` (after ``atp-lab down``) starts libvirtd and sshd and boots both
VMs until their guest agents answer. The anchor of both figures is the cold ``up`` of the
same run: the warm ratio says what fraction of a full bring-up the check costs, and the cold
figure (ratio 1) records the cold time itself. Both are whole-process wall times, interpreter
start included. One cold sample per run: each costs a full boot of two VMs.

Leaves the lab up: a final ``up`` runs whatever happened. Any ``atp-lab`` call that exits
non-zero fails the benchmark, with its output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.measure import emit, iterations, median, ms, timed

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
    n_warm = iterations(5, 2)
    try:
        atp_lab("up")  # unmeasured: makes sure the warm runs below find the lab up
        warm = [atp_lab("up") for _ in range(n_warm)]
        atp_lab("down")
        cold = atp_lab("up")
    finally:
        atp_lab("up")  # leave the lab up, whatever happened above
    emit("atp_lab_up.warm", ms(median(warm)), ms(cold), "ms", n=n_warm, p="p50")
    emit("atp_lab_up.cold", ms(cold), ms(cold), "ms", n=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
