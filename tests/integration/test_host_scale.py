"""A hundred VMs on one host ride one libvirt connection (DESIGN §9's scale line).

The hundred are inert domains defined on the lab's libvirtd (never started: two TCG guests
are all a 2-core machine runs); listing, lookups and per-VM calls all go through the
host's one shared connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import libvirt
import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.lab.scale import (
    SCALE_PREFIX,
    define_inert_domains,
    inert_domain_xml,
    inert_domains,
    undefine_inert_domains,
)
from atp_notebook.lab.status import LabStatus
from atp_notebook.session import Session
from tests.integration.test_host_connections import libvirtd_clients

COUNT = 100


@pytest.fixture
def hundred_domains(lab: LabStatus) -> Iterator[list[str]]:
    conn = libvirt.open("qemu:///system")
    try:
        with inert_domains(conn, COUNT) as names:
            yield names
    finally:
        conn.close()


def test_a_hundred_vms_on_one_host_share_one_connection(
    session: Session, hundred_domains: list[str]
) -> None:
    before = libvirtd_clients("tcp")
    listed = {v.name: v for v in session.vms() if v.name.startswith(SCALE_PREFIX)}
    assert sorted(listed) == hundred_domains
    assert {v.state for v in listed.values()} == {"shut off"}
    # every host reaches the same libvirtd, so each VM is listed once, with the others noted
    assert all(v.host_id == "local" and set(v.also_on) == {"tcp", "tls", "ssh"}
               for v in listed.values())

    vms = [session.vm(name, host="tcp") for name in hundred_domains]
    assert [vm.state() for vm in vms] == ["shut off"] * COUNT
    assert {vm.domain().UUIDString() for vm in vms} == {v.uuid for v in listed.values()}
    assert len({id(vm.domain().connect()) for vm in vms}) == 1
    assert session.manager.pool.stats()["tcp"].opens == 1
    assert libvirtd_clients("tcp") == before + 1


def test_defining_refuses_silly_counts_and_cleans_up_leftovers(lab: LabStatus) -> None:
    conn = libvirt.open("qemu:///system")
    try:
        with pytest.raises(InvalidArgument, match=r"want 1\.\.1000"):
            define_inert_domains(conn, 0)
        conn.defineXML(inert_domain_xml(f"{SCALE_PREFIX}leftover"))
        assert define_inert_domains(conn, 2) == [f"{SCALE_PREFIX}000", f"{SCALE_PREFIX}001"]
        names = {d.name() for d in conn.listAllDomains()}
        assert f"{SCALE_PREFIX}leftover" not in names
        assert undefine_inert_domains(conn) == 2
        assert not [n for n in (d.name() for d in conn.listAllDomains())
                    if n.startswith(SCALE_PREFIX)]
        assert {"atp-vm1", "atp-vm2"} <= {d.name() for d in conn.listAllDomains()}
    finally:
        undefine_inert_domains(conn)
        conn.close()
