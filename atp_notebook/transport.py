"""TransportManager: the libvirt connection pool and the Spice VM registry, together.

The async core of the toolkit, with the seed's method names. Every libvirt call runs on an
executor thread (libvirt calls block); the state lives on the atp loop.

Example (on the atp loop)::

    m = TransportManager(load_config("atp.yaml"))
    await m.add_host(HostInfo("host1", "10.0.0.1").with_uri("qemu+tls://10.0.0.1/system"))
    conn = await m.get_libvirt_connection("host1")
    where = await m.find_vm("atp-vm1")          # VmLocation(host_id=..., name=..., uuid=...)
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import libvirt

from atp_notebook.config import HostInfo, Secret, SpiceVmConfig, TransportConfig
from atp_notebook.errors import ConfigError, HostUnavailable, UnknownHost, UnknownVm
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.manager import SpiceConnectionManager
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.virt.host import HostConnection, libvirt_error_text
from atp_notebook.virt.pool import ConnectionPool

T = TypeVar("T")
LOOKUP_TIMEOUT_S = 15.0
WILDCARD = ("0.0.0.0", "::")  # noqa: S104 - compared against, never bound
SPICE_ONLY = "spice only"  # the state listed for a VM that no libvirt host runs


@dataclass(frozen=True)
class VmLocation:
    """Where a VM was found: the first host (in configuration order) that has it."""

    name: str
    host_id: str
    uuid: str


@dataclass(frozen=True)
class VmListing:
    """One VM across hosts; ``also_on`` lists other host ids that reach the same domain."""

    name: str
    uuid: str
    state: str
    host_id: str
    also_on: tuple[str, ...] = ()


DOMAIN_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}


def state_name(code: int) -> str:
    """libvirt's domain state number as a word: ``running``, ``shut off``, ..."""
    return DOMAIN_STATES.get(code, "unknown")


def domain_state(dom: libvirt.virDomain) -> str:
    return state_name(dom.state()[0])


class TransportManager:
    """Hosts (one shared libvirt connection each) and Spice VMs, from a TransportConfig."""

    def __init__(self, config: TransportConfig | None = None, *, loop: AtpLoop | None = None):
        self._atp = loop or get_loop()
        self.config = config or TransportConfig(hosts=(), spice_vms=())
        self.pool = ConnectionPool(self._atp)
        self._host_order: list[str] = []
        self._spice: dict[str, SpiceVmConfig] = {}
        self.spice = SpiceConnectionManager()
        for host in self.config.hosts:
            self._register_host(host)
        for vm in self.config.spice_vms:
            self._spice[vm.vm_id] = vm

    def __repr__(self) -> str:
        return f"<TransportManager hosts={self._host_order} spice_vms={list(self._spice)}>"

    # --- hosts --------------------------------------------------------------------------

    def _register_host(self, info: HostInfo) -> HostConnection:
        host = self.pool.add(info.id, str(info.effective_uri))
        if info.id not in self._host_order:
            self._host_order.append(info.id)
        return host

    @property
    def host_ids(self) -> list[str]:
        return list(self._host_order)

    def host(self, host_id: str) -> HostConnection:
        return self.pool.get(host_id)

    async def add_host(self, info: HostInfo) -> HostConnection:
        """Add a host; its connection opens on first use."""
        return self._register_host(info)

    async def remove_host(self, host_id: str) -> None:
        await self.pool.remove(host_id)
        self._host_order.remove(host_id)

    async def get_libvirt_connection(
        self, host_id: str, timeout: float | None = None
    ) -> libvirt.virConnect:
        """The host's shared connection, opened (or reopened) as needed."""
        return await self.pool.get(host_id).get(timeout)

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await self._atp.loop.run_in_executor(None, fn)

    async def _call(self, host_id: str, fn: Callable[[libvirt.virConnect], T],
                    timeout: float | None = None) -> T:
        """Run a blocking libvirt call on the host's connection, on an executor thread."""
        host = self.pool.get(host_id)
        conn = await host.get(timeout)
        try:
            return await self._in_thread(lambda: fn(conn))
        except libvirt.libvirtError as exc:
            host.check_error(exc)  # raises HostUnavailable if the connection died
            raise

    # --- VMs ----------------------------------------------------------------------------

    async def find_vm(self, name: str, host_id: str | None = None,
                      timeout: float = LOOKUP_TIMEOUT_S) -> VmLocation:
        """The first host (in configuration order) that has a domain ``name``."""
        hosts = [host_id] if host_id is not None else self.host_ids
        if host_id is not None and host_id not in self.pool:
            self.pool.get(host_id)  # raises UnknownHost naming the known ones
        unavailable: list[str] = []
        for hid in hosts:
            try:
                uuid = await self._call(hid, lambda c: c.lookupByName(name).UUIDString(),
                                        timeout)
            except HostUnavailable as exc:
                unavailable.append(f"{hid} ({exc.message})")
                continue
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                raise
            return VmLocation(name, hid, uuid)
        searched = ", ".join(hosts) or "none configured"
        hint = "%atp vms (or session.vms()) lists the VMs"
        if unavailable:
            hint = f"unreachable: {'; '.join(unavailable)}; {hint}"
        raise UnknownVm(f"no host has a VM named {name!r} (searched: {searched})", hint=hint)

    async def list_vms(self, timeout: float = LOOKUP_TIMEOUT_S) -> list[VmListing]:
        """Every VM on every reachable host, once per domain (several hosts may reach one)."""

        def listing(conn: libvirt.virConnect) -> list[tuple[str, str, str]]:
            # one round trip for every domain's state (name and UUID come with the handle),
            # not one per domain: 100 VMs on a remote host list in one RTT, not a hundred
            stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
            return [(dom.name(), dom.UUIDString(),
                     state_name(int(values.get("state.state", -1))))
                    for dom, values in stats]

        results = await asyncio.gather(
            *(self._call(h, listing, timeout) for h in self.host_ids), return_exceptions=True
        )
        seen: dict[tuple[str, str], VmListing] = {}
        errors = []
        for hid, result in zip(self.host_ids, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (HostUnavailable, libvirt.libvirtError)):
                    raise result
                errors.append(f"{hid}: {libvirt_error_text(result)}")
                continue
            for name, uuid, state in result:
                key = (name, uuid)
                if key in seen:
                    found = seen[key]
                    seen[key] = VmListing(name, uuid, found.state, found.host_id,
                                          (*found.also_on, hid))
                else:
                    seen[key] = VmListing(name, uuid, state, hid)
        if errors and len(errors) == len(self.host_ids):
            raise HostUnavailable("no host is reachable: " + "; ".join(errors))
        for vm_id in self._spice:
            if self.is_spice_only(vm_id):  # no libvirt to ask: listed from the YAML
                seen[(vm_id, "")] = VmListing(vm_id, "", SPICE_ONLY, "")
        return sorted(seen.values(), key=lambda v: (v.name, v.host_id))

    async def domain(self, location: VmLocation) -> libvirt.virDomain:
        return await self._call(location.host_id, lambda c: c.lookupByUUIDString(location.uuid))

    # --- Spice --------------------------------------------------------------------------

    async def add_spice_vm(
        self,
        vm_id: str,
        server_addr: str,
        port: int | None = None,
        *,
        password: str | Secret | None = None,
        tls: bool = False,
        tls_port: int | None = None,
        tls_verify: bool = True,
        ca_file: str | Path | None = None,
        username: str | None = None,
        host: str | None = None,
        server_name: str | None = None,
        channels: tuple[str, ...] = (),
    ) -> SpiceVmConfig:
        """Register a VM's Spice server (the seed's signature, plus TLS and SASL details;
        ``channels`` open as soon as the VM's Spice connects)."""
        if vm_id in self._spice:
            raise ConfigError(f"Spice VM {vm_id!r} is already registered")
        if host is not None and host not in self.pool:
            raise UnknownHost(f"Spice VM {vm_id!r} names unknown host {host!r}")
        secret = password if isinstance(password, Secret) or password is None else Secret(
            password)
        entry = SpiceVmConfig(
            vm_id=vm_id, server_addr=server_addr, port=port, tls_port=tls_port,
            password=secret, tls=tls, tls_verify=tls_verify,
            ca_file=Path(ca_file) if ca_file is not None else None,
            username=username, host=host, server_name=server_name, channels=channels,
        )
        self._spice[vm_id] = entry
        return entry

    def is_spice_only(self, vm_id: str) -> bool:
        """True for a VM listed under ``spice.vms`` with its own address and port and no
        libvirt ``host``: it is reached through Spice only (like the lab's atp-sasl)."""
        entry = self._spice.get(vm_id)
        return entry is not None and entry.host is None and (
            entry.port is not None or entry.tls_port is not None)

    def spice_connection(self, vm_id: str) -> SpiceVmConnection:
        """The VM's one Spice connection object (made on first use, no I/O): its endpoint
        is resolved when a channel first opens, and again only after a connect failed."""
        entry = self._spice.get(vm_id)
        autostart = tuple(ChannelType[name.upper()] for name in entry.channels) if entry else ()

        async def resolve() -> SpiceEndpoint:
            return await self._resolve_spice_endpoint(vm_id)

        return self.spice.connection(
            vm_id, lambda: SpiceVmConnection(vm_id, resolve=resolve, autostart=autostart))

    async def get_spice_endpoint(self, vm_id: str) -> SpiceEndpoint:
        """The VM's Spice endpoint (resolved once: from YAML, completed from the domain XML
        when needed; a failed connect makes the next call resolve it again)."""
        return await self.spice_connection(vm_id).resolve_endpoint()

    async def _resolve_spice_endpoint(self, vm_id: str) -> SpiceEndpoint:
        entry = self._spice.get(vm_id)
        if entry is not None and (entry.port is not None or entry.tls_port is not None) \
                and entry.server_addr is not None:
            return SpiceEndpoint.from_config(entry)  # everything is in the YAML
        host_id = entry.host if entry is not None else None
        where = await self.find_vm(entry.libvirt_name if entry is not None else vm_id, host_id)
        xml = await self._call(
            where.host_id,
            lambda c: c.lookupByUUIDString(where.uuid).XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE),
        )
        found = spice_from_domain_xml(xml)
        if found is None:
            raise ConfigError(f"VM {vm_id!r} on host {where.host_id!r} has no Spice graphics")
        listen, port, tls_port, passwd = found
        # a server listening on every address is reached at the libvirt host's address
        addr = self._host_address(where.host_id) if listen in (None, *WILDCARD) else listen
        password = Secret(passwd) if passwd else None
        source = f"libvirt:{where.host_id}"
        if entry is None:
            return SpiceEndpoint(addr, port, tls_port, password=password,
                                 prefer_tls=port is None, source=source)
        # what the YAML says wins over what the domain XML says
        return SpiceEndpoint.from_config(entry, host=addr, port=port, tls_port=tls_port,
                                         password=password, source=f"config+{source}")

    async def get_spice_connection(self, vm_id: str) -> SpiceVmConnection:
        """The VM's Spice connection (channels open on demand), its endpoint resolved."""
        connection = self.spice_connection(vm_id)
        await connection.resolve_endpoint()
        return connection

    def _host_address(self, host_id: str) -> str:
        for info in self.config.hosts:
            if info.id == host_id and info.host:
                return info.host
        return "127.0.0.1"

    async def close(self) -> None:
        await self.spice.close()
        await self.pool.close()


def spice_from_domain_xml(xml: str) -> tuple[str | None, int | None, int | None, str | None] | None:
    """(listen, port, tlsPort, passwd) of the first Spice ``<graphics>``; None if absent."""
    graphics = ET.fromstring(xml).find("devices/graphics[@type='spice']")
    if graphics is None:
        return None

    def port(name: str) -> int | None:
        value = graphics.get(name)
        return int(value) if value is not None and int(value) > 0 else None

    return graphics.get("listen"), port("port"), port("tlsPort"), graphics.get("passwd")
