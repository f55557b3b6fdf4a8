"""QMP and QGA calls through the toolkit's ``Vm`` vs the raw libvirt-python calls.

``ours``: ``vm.qmp("query-status")`` and ``vm.qga("guest-ping")`` — JSON built and parsed,
errors typed, the VM's domain and the host's shared connection looked up on every call.
``anchor``: ``libvirt_qemu.qemuMonitorCommand`` / ``qemuAgentCommand`` with the same JSON on
a domain of the same connection, interleaved one for one in the same run. Target: p50 ratio
at most 1.15 (DESIGN §9). Measured over the local socket (the shortest path, where our
overhead shows most) and over tcp.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import libvirt_qemu

from atp_notebook import connect
from atp_notebook.lab.paths import LAB_VMS, LabPaths
from bench.measure import emit, interleave, iterations, ms, percentile

VM = LAB_VMS[0].name
QMP = json.dumps({"execute": "query-status"})
QGA = json.dumps({"execute": "guest-ping"})
STATS = (("p50", 50.0), ("p99", 99.0))


def measure(figure: str, anchor: Callable[[], object], ours: Callable[[], object],
            n: int, *, ours_is: str, anchor_is: str) -> None:
    for _ in range(5):  # unmeasured warm-up
        anchor()
        ours()
    anchor_ns, ours_ns = interleave(anchor, ours, n)
    for label, p in STATS:
        emit(f"{figure}.{label}", ms(percentile(ours_ns, p)), ms(percentile(anchor_ns, p)),
             "ms", ours_is=ours_is, anchor_is=anchor_is, n=n, p=label)


def main() -> int:
    session = connect(LabPaths.default().config_file)
    try:
        for host_id in ("local", "tcp"):
            vm = session.vm(VM, host=host_id)
            dom = vm.domain()
            measure(f"vm_qmp_query_status.{host_id}",
                    lambda: libvirt_qemu.qemuMonitorCommand(dom, QMP, 0),  # noqa: B023
                    lambda: vm.qmp("query-status"),  # noqa: B023
                    iterations(500, 20), ours_is='vm.qmp("query-status")',
                    anchor_is="libvirt_qemu.qemuMonitorCommand, same connection")
            measure(f"vm_qga_guest_ping.{host_id}",
                    lambda: libvirt_qemu.qemuAgentCommand(dom, QGA, 10, 0),  # noqa: B023
                    lambda: vm.qga("guest-ping"),  # noqa: B023
                    iterations(300, 20), ours_is='vm.qga("guest-ping")',
                    anchor_is="libvirt_qemu.qemuAgentCommand, same connection")
            print(f"vm_calls: {host_id} done", file=sys.stderr)
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
