"""``libvirt.open(uri)`` + ``close()`` per lab transport, raw libvirt-python.

What a connection costs over each transport: tcp adds a TCP handshake and SASL-less
negotiation, tls a TLS handshake with client certificates, ssh a whole ``ssh`` process
(key exchange, login, remote ``virt-ssh-helper``/``nc``). The anchor is the local UNIX-socket
median of the same run — the cheapest way to reach the same libvirtd — so each ratio is that
transport's cost in units of a local open (``local`` itself: 1). Local opens are interleaved
with every other transport's opens, so drift during the run hits anchor and figure alike;
all local samples pool into the one anchor.
"""

from __future__ import annotations

import sys
from functools import partial

import libvirt

from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LabPaths
from bench.measure import emit, interleave, iterations, median, ms

ANCHOR_ID = "local"


def open_close(uri: str) -> None:
    libvirt.open(uri).close()


def main() -> int:
    libvirt.registerErrorHandler(lambda *_: None, None)
    hosts = {h.id: h.uri for h in lab_hosts(LabPaths.default())}
    anchor_uri = hosts[ANCHOR_ID]
    local: list[int] = []
    per_host: dict[str, list[int]] = {}
    for host_id, uri in hosts.items():
        if host_id == ANCHOR_ID:
            continue
        n = iterations(15 if host_id == "ssh" else 30, 3)
        open_close(uri)  # unmeasured: first-use costs (loading certificates, keys, modules)
        open_close(anchor_uri)
        anchor_ns, ours_ns = interleave(
            partial(open_close, anchor_uri), partial(open_close, uri), n
        )
        local += anchor_ns
        per_host[host_id] = ours_ns
        print(f"libvirt_open: {host_id} done ({n} opens)", file=sys.stderr)
    anchor = ms(median(local))
    emit(f"libvirt_open.{ANCHOR_ID}", anchor, anchor, "ms", n=len(local), p="p50")
    for host_id, samples in per_host.items():
        emit(f"libvirt_open.{host_id}", ms(median(samples)), anchor, "ms", n=len(samples),
             p="p50")
    return 0


if __name__ == "__main__":
    sys.exit(main())
