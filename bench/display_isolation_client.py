"""A display client in a process of its own, for bench_display_isolation's control phase.

    python -m bench.display_isolation_client VM

Opens VM's display channel 0 the way the bench does (``DisplayOptions.lossy()``), prints
``ready`` once the screen is drawn and still, then keeps drawing whatever the server sends
until its stdin closes; then prints what it drew as one JSON line (``frames``,
``stream_frames``, ``draw_seconds``) and exits. A ``stream?`` line on its stdin (the bench
has started the animation) is answered with ``streaming`` once STREAM_FRAMES stream frames
more have been decoded: the stream runs (spice-server starts one after 20 quick frames, a
few seconds with the guest on one CPU). With it drawing the stream, the bench's own
process carries the host's load and the server's work but none of the client's: the
difference to the bench's animated phase is what drawing in-process costs the other calls.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from atp_notebook.errors import OperationTimeout
from atp_notebook.lab.paths import LabPaths
from atp_notebook.session import Vm, connect
from atp_notebook.spice.proto.display import DisplayOptions

OPEN_TIMEOUT_S = 60.0
STILL_S = 1.5
STREAM_FRAMES = 10  # as bench_display_isolation waits for in its own phases
STREAM_TIMEOUT_S = 60.0


def wait_for_stream(vm: Vm) -> None:
    since = vm.display.stats().stream_frames
    deadline = time.monotonic() + STREAM_TIMEOUT_S
    while vm.display.stats().stream_frames < since + STREAM_FRAMES:
        if time.monotonic() > deadline:
            raise OperationTimeout(f"{vm.name}: no MJPEG stream within {STREAM_TIMEOUT_S:g} s")
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.display_isolation_client VM", file=sys.stderr)
        return 2
    session = connect(LabPaths.default().config_file)
    try:
        vm = session.vm(argv[0])
        vm.display.open(options=DisplayOptions.lossy(), timeout=OPEN_TIMEOUT_S)
        vm.display.wait_still(STILL_S, timeout=OPEN_TIMEOUT_S)
        print("ready", flush=True)
        while line := sys.stdin.readline():  # until the bench closes our stdin
            if line.strip() == "stream?":
                wait_for_stream(vm)
                print("streaming", flush=True)
        stats = vm.display.stats()
        print(json.dumps({k: v for k, v in dataclasses.asdict(stats).items()
                          if k in ("frames", "stream_frames", "draw_seconds")}), flush=True)
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
