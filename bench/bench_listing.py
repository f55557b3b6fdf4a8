"""Listing and looking up VMs on a host with a hundred of them, through the toolkit vs raw.

100 inert domains (20 with ``--quick``) are defined on the lab's libvirtd for the run (and
undefined after), so the tcp host carries 102 VMs.

``vms_list.<host>``: ``Session.vms()`` over one host — a round trip per host for every
domain's name, UUID and state, on the atp loop's executor — against the same single
``getAllDomainStats(STATE)`` call made raw from the calling thread. ``per_domain`` (extra
key) is the naive raw listing, ``listAllDomains()`` and then ``state()`` per domain, which
is what one round trip per host saves.

``vm_lookup.<host>``: ``session.vm(name, host=...)`` (a Vm bound to the shared connection)
against a raw ``lookupByName``.
"""

from __future__ import annotations

import sys

import libvirt

from atp_notebook.config import TransportConfig, load_config
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.scale import inert_domains
from atp_notebook.session import Session, connect
from bench.measure import emit, interleave, iterations, median, ms, sample

COUNT = 100
HOSTS = ("local", "tcp")


def one_host(config: TransportConfig, host_id: str) -> TransportConfig:
    hosts = tuple(h for h in config.hosts if h.id == host_id)
    return TransportConfig(hosts=hosts, spice_vms=(), source=config.source)


def raw_bulk(conn: libvirt.virConnect) -> list[tuple[str, str, int]]:
    return [(d.name(), d.UUIDString(), int(s["state.state"]))
            for d, s in conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)]


def raw_per_domain(conn: libvirt.virConnect) -> list[tuple[str, str, int]]:
    return [(d.name(), d.UUIDString(), d.state()[0]) for d in conn.listAllDomains()]


def bench_host(config: TransportConfig, host_id: str, names: list[str]) -> None:
    count = len(names)
    session: Session = connect(one_host(config, host_id))
    try:
        conn = session.host(host_id).connection(30)
        assert len(session.vms()) >= count  # also opens the connection, unmeasured
        n = iterations(200, 5)
        raw_ns, ours_ns = interleave(lambda: raw_bulk(conn), session.vms, n)
        naive_ns = sample(lambda: raw_per_domain(conn), iterations(50, 3))
        emit(f"vms_list.{host_id}", ms(median(ours_ns)), ms(median(raw_ns)), "ms",
             ours_is="session.vms()", anchor_is="getAllDomainStats(STATE), same connection",
             n=n, p="p50", vms=len(raw_bulk(conn)), per_domain=ms(median(naive_ns)))

        lookups = iter(names * 1000)
        raw_ns, ours_ns = interleave(
            lambda: conn.lookupByName(next(lookups)),
            lambda: session.vm(next(lookups), host=host_id),
            iterations(300, 5),
        )
        emit(f"vm_lookup.{host_id}", ms(median(ours_ns)), ms(median(raw_ns)), "ms",
             ours_is="session.vm(name, host=...)", anchor_is="lookupByName(name)",
             n=len(raw_ns), p="p50")
    finally:
        session.close()


def main() -> int:
    paths = LabPaths.default()
    config = load_config(paths.config_file)
    admin = libvirt.open("qemu:///system")
    try:
        with inert_domains(admin, iterations(COUNT, 20)) as names:
            for host_id in HOSTS:
                bench_host(config, host_id, names)
                print(f"listing: {host_id} done", file=sys.stderr)
    finally:
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
