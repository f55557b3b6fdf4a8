"""``libvirt.open(uri)`` + ``close()`` per lab transport, raw libvirt-python.

What a connection costs over each transport: tcp adds a TCP handshake and SASL-less
negotiation, tls a TLS handshake with client certificates, ssh a whole ``ssh`` process
(key exchange, login, remote ``virt-ssh-helper``/``nc``). Every figure is the same raw call,
so the anchor of ``libvirt_open.<tcp|tls|ssh>`` is the local UNIX-socket open — the cheapest
way to reach the same libvirtd — interleaved with that transport's opens in the same run, and
the ratio is that transport's cost in units of a local open. ``libvirt_open.local`` is a
plain figure (all local samples of the run pooled): against itself its ratio would be 1 by
construction.
"""

from __future__ import annotations

import sys
from functools import partial

import libvirt

from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LabPaths
from atp_notebook.libvirt_errors import silence_libvirt
from bench.measure import emit, emit_plain, interleave, iterations, median, ms

ANCHOR_ID = "local"


def open_close(uri: str) -> None:
    libvirt.open(uri).close()


def main() -> int:
    silence_libvirt()
    hosts = {h.id: h.uri for h in lab_hosts(LabPaths.default())}
    anchor_uri = hosts[ANCHOR_ID]
    local: list[int] = []
    per_host: dict[str, tuple[list[int], list[int]]] = {}
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
        per_host[host_id] = (anchor_ns, ours_ns)
        print(f"libvirt_open: {host_id} done ({n} opens)", file=sys.stderr)
    emit_plain(f"libvirt_open.{ANCHOR_ID}", ms(median(local)), "ms",
               ours_is=f"libvirt.open({anchor_uri!r}).close()", n=len(local), p="p50")
    for host_id, (anchor_ns, ours_ns) in per_host.items():
        emit(f"libvirt_open.{host_id}", ms(median(ours_ns)), ms(median(anchor_ns)), "ms",
             ours_is=f"libvirt.open({hosts[host_id]!r}).close()",
             anchor_is=f"libvirt.open({anchor_uri!r}).close(), interleaved", n=len(ours_ns),
             p="p50")
    return 0


if __name__ == "__main__":
    sys.exit(main())
