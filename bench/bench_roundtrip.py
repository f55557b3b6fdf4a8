"""One raw round trip on an open connection, per lab transport, on atp-vm1.

QMP ``query-status`` (``libvirt_qemu.qemuMonitorCommand``) goes client -> libvirtd -> QEMU's
monitor and back; QGA ``guest-ping`` (``libvirt_qemu.qemuAgentCommand``) goes one hop further,
through QEMU's virtio-serial into the guest agent. With the connection already open, what a
transport adds is per-message cost (framing, TLS records, the ssh channel), so the anchor is
the same statistic over ``qemu:///system``: the local UNIX socket, the shortest path to the
same libvirtd. Each transport's calls are interleaved one for one with calls on the anchor
connection, so drift hits both; the anchor of each figure is the local calls of that
interleaved run. ``local`` itself is a second, separate ``qemu:///system`` connection
measured the same way: two connections and two sets of samples, so its ratio is not 1 by
construction but the noise floor of the method (how far from 1 two identical paths land).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial

import libvirt
import libvirt_qemu

from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LAB_VMS, LabPaths
from atp_notebook.libvirt_errors import silence_libvirt
from bench.measure import emit, interleave, iterations, ms, percentile

ANCHOR_URI = "qemu:///system"
VM = LAB_VMS[0].name  # atp-vm1
QMP = json.dumps({"execute": "query-status"})
QGA = json.dumps({"execute": "guest-ping"})
QGA_TIMEOUT_S = 10
WARMUP = 5
STATS = (("p50", 50.0), ("p99", 99.0))


def qmp_call(dom: libvirt.virDomain) -> str:
    return str(libvirt_qemu.qemuMonitorCommand(dom, QMP, 0))


def qga_call(dom: libvirt.virDomain) -> str:
    return str(libvirt_qemu.qemuAgentCommand(dom, QGA, QGA_TIMEOUT_S, 0))


def warm_up(call: Callable[[], str]) -> None:
    """A few unmeasured calls; the first must answer with a QMP/QGA ``return``."""
    reply = json.loads(call())
    if "return" not in reply:
        raise RuntimeError(f"unexpected reply: {reply}")
    for _ in range(WARMUP - 1):
        call()


def measure(
    figure: str,
    host_id: str,
    anchor_call: Callable[[], str],
    ours_call: Callable[[], str],
    n: int,
    *,
    what: str,
) -> None:
    warm_up(anchor_call)
    warm_up(ours_call)
    anchor_ns, ours_ns = interleave(anchor_call, ours_call, n)
    for label, p in STATS:
        emit(f"{figure}.{host_id}.{label}", ms(percentile(ours_ns, p)),
             ms(percentile(anchor_ns, p)), "ms", ours_is=f"{what} over {host_id}",
             anchor_is=f"{what} over the anchor {ANCHOR_URI} connection", n=n, p=label)
    print(f"roundtrip: {figure} over {host_id} done ({n} calls each)", file=sys.stderr)


def main() -> int:
    silence_libvirt()
    n_qmp = iterations(500, 20)
    n_qga = iterations(300, 20)
    anchor_conn = libvirt.open(ANCHOR_URI)
    try:
        anchor_dom = anchor_conn.lookupByName(VM)
        for host in lab_hosts(LabPaths.default()):
            conn = libvirt.open(host.uri)  # for "local": a second connection, not the anchor's
            try:
                dom = conn.lookupByName(VM)
                measure("qmp_query_status", host.id, partial(qmp_call, anchor_dom),
                        partial(qmp_call, dom), n_qmp, what="raw qemuMonitorCommand")
                measure("qga_guest_ping", host.id, partial(qga_call, anchor_dom),
                        partial(qga_call, dom), n_qga, what="raw qemuAgentCommand")
            finally:
                conn.close()
    finally:
        anchor_conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
