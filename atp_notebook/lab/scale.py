"""Inert domains for scale checks: many VMs defined on the lab's libvirtd, never started.

A host with a hundred VMs is ordinary in real use; the lab runs two. Defining (not
starting) more costs a little XML in libvirtd's config directory and no CPU, and lets the
tests and benchmarks check that listing and looking VMs up scale on one shared connection.
Only shut-off domains whose names carry the prefix are ever undefined.

Example::

    with inert_domains(conn, 100) as names:     # atp-scale-000 ... atp-scale-099
        ...                                      # undefined again on the way out
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from xml.sax.saxutils import escape

import libvirt

from atp_notebook.errors import InvalidArgument

SCALE_PREFIX = "atp-scale-"
MAX_INERT_DOMAINS = 1000


def inert_domain_xml(name: str) -> str:
    """The smallest domain libvirt accepts: TCG, 16 MiB, no disks; it is never started."""
    return (
        "<domain type='qemu'>"
        f"<name>{escape(name)}</name>"
        "<memory unit='MiB'>16</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<description>atp-notebook scale check: inert, safe to undefine</description>"
        "</domain>"
    )


def define_inert_domains(conn: libvirt.virConnect, count: int,
                         prefix: str = SCALE_PREFIX) -> list[str]:
    """Define ``count`` inert domains ``<prefix>000``...; leftovers of an earlier run go
    first. Returns their names. On failure the ones already defined are undefined again."""
    if not 0 < count <= MAX_INERT_DOMAINS:
        raise InvalidArgument(f"inert domain count {count}: want 1..{MAX_INERT_DOMAINS}")
    undefine_inert_domains(conn, prefix)
    names = [f"{prefix}{i:03d}" for i in range(count)]
    try:
        for name in names:
            conn.defineXML(inert_domain_xml(name))
    except BaseException:
        undefine_inert_domains(conn, prefix)
        raise
    return names


def undefine_inert_domains(conn: libvirt.virConnect, prefix: str = SCALE_PREFIX) -> int:
    """Undefine every shut-off domain named ``<prefix>...``; returns how many went."""
    gone = 0
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE):
        if dom.name().startswith(prefix):
            with contextlib.suppress(libvirt.libvirtError):  # undefined meanwhile
                dom.undefine()
                gone += 1
    return gone


@contextlib.contextmanager
def inert_domains(conn: libvirt.virConnect, count: int,
                  prefix: str = SCALE_PREFIX) -> Iterator[list[str]]:
    """``count`` inert domains for the ``with`` block, undefined again however it ends."""
    names = define_inert_domains(conn, count, prefix)
    try:
        yield names
    finally:
        undefine_inert_domains(conn, prefix)
