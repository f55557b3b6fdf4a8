"""``Session.vms()`` makes one libvirt round trip per host, counted on the real connections.

Every libvirt method that makes an RPC for a listing (on ``virConnect`` and on ``virDomain``)
is wrapped with a counter that calls through to the lab's libvirtd; the connections are
opened before counting starts, so only the listing is counted. ``virDomain.name()``,
``UUIDString()`` and ``ID()`` read the handle libvirt already holds and make no RPC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import libvirt
import pytest

from atp_notebook.session import Session

# the RPC-making calls a listing could use: one bulk call, or a list plus a call per domain
CONNECT_CALLS = ("getAllDomainStats", "domainListGetStats", "listAllDomains", "listDomainsID",
                 "listDefinedDomains", "lookupByName", "lookupByUUIDString", "lookupByUUID",
                 "lookupByID")
DOMAIN_CALLS = ("state", "info", "isActive", "isPersistent", "XMLDesc", "OSType",
                "maxMemory", "controlInfo", "getCPUStats")


def count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[int, str]]:
    """Wrap the RPC-making methods; the counter is keyed by (id of the connection, method)."""
    calls: Counter[tuple[int, str]] = Counter()

    def counting(cls: type, method: str, connection_of: Callable[[Any], Any]) -> None:
        real = getattr(cls, method)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls[(id(connection_of(self)), method)] += 1
            return real(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, wrapper)

    for method in CONNECT_CALLS:
        counting(libvirt.virConnect, method, lambda conn: conn)
    for method in DOMAIN_CALLS:
        counting(libvirt.virDomain, method, lambda dom: dom.connect())
    return calls


def test_vms_is_one_libvirt_call_per_host(session: Session,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    session.vms()  # opens every host's connection: the opens are not what is counted
    hosts = [h.id for h in session.hosts()]
    assert len(hosts) == 4  # the lab's local, tcp, tls and ssh entries, all open
    calls = count_calls(monkeypatch)
    listing = session.vms()
    assert {v.name for v in listing} >= {"atp-vm1", "atp-vm2"}
    per_connection: dict[int, list[str]] = {}
    for (conn, method), n in calls.items():
        per_connection.setdefault(conn, []).extend([method] * n)
    assert sorted(per_connection.values()) == [["getAllDomainStats"]] * len(hosts), calls
