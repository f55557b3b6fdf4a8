"""The blocking facade for people and tests: ``connect()`` -> Session -> Vm.

Libvirt calls are made from the caller's thread on the host's shared connection (the fast
path); only opening and reconnecting go through the atp loop.

Example::

    from atp_notebook import connect
    s = connect()                    # $ATP_CONFIG, ./atp.yaml, else the lab's atp.yaml
    s.hosts()                        # hosts with their connection state
    vm = s.vm("atp-vm1")
    vm.state()                       # "running"
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt
from PIL import Image

from atp_notebook.config import TransportConfig, find_config, load_config
from atp_notebook.errors import ConfigError, UnknownVm
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.transport import (
    LOOKUP_TIMEOUT_S,
    TransportManager,
    VmListing,
    VmLocation,
    domain_state,
)
from atp_notebook.virt.events import EventSubscription, QmpEvent
from atp_notebook.virt.host import HostConnection, HostStats
from atp_notebook.virt.protocols import ProtocolType, create_client
from atp_notebook.virt.qmp import Qmp

T = TypeVar("T")


@dataclass(frozen=True)
class HostSummary:
    id: str
    uri: str
    tags: tuple[str, ...]
    state: str
    stats: HostStats


def connect(
    config: str | os.PathLike[str] | TransportConfig | None = None,
    *,
    loop: AtpLoop | None = None,
) -> Session:
    """A Session over the hosts and VMs of ``config`` (a path, a TransportConfig, or None
    to search: ``$ATP_CONFIG``, ``./atp.yaml``, then the lab's ``atp.yaml``)."""
    if isinstance(config, TransportConfig):
        transport_config = config
    else:
        path = config if config is not None else find_config()
        if path is None:
            raise ConfigError(
                "no configuration found ($ATP_CONFIG, ./atp.yaml, the lab's atp.yaml)",
                hint="pass a path to connect(), or run `atp-lab up` for the local lab",
            )
        transport_config = load_config(path)
    return Session(TransportManager(transport_config, loop=loop))


class Session:
    """Hosts and VMs of one configuration; close it (or use ``with``) when done."""

    def __init__(self, manager: TransportManager) -> None:
        self.manager = manager
        self._atp = get_loop()
        self._closed = False

    def __repr__(self) -> str:
        source = self.manager.config.source or "in-memory config"
        return f"<Session {source}: hosts {', '.join(self.manager.host_ids)}>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def config(self) -> TransportConfig:
        return self.manager.config

    def host(self, host_id: str) -> HostConnection:
        return self.manager.host(host_id)

    def hosts(self) -> list[HostSummary]:
        """Each configured host with its connection state (nothing is opened)."""
        out = []
        for info in self.manager.config.hosts:
            if info.id not in self.manager.pool:
                continue
            host = self.manager.host(info.id)
            out.append(HostSummary(info.id, host.uri, info.tags, str(host.state), host.stats))
        return out

    def vms(self, timeout: float = LOOKUP_TIMEOUT_S) -> list[VmListing]:
        """Every VM on every reachable host, once per domain."""
        return self._run(self.manager.list_vms(timeout), timeout)

    def vm(self, name: str, host: str | None = None,
           timeout: float = LOOKUP_TIMEOUT_S) -> Vm:
        """The VM ``name`` on ``host`` (or the first host that has it)."""
        location = self._run(self.manager.find_vm(name, host, timeout), timeout)
        return Vm(self, location)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._run(self.manager.close(), 30.0)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        # the coroutine enforces ``timeout`` itself; the margin only guards a stuck loop
        return self._atp.call(coro, timeout=timeout + 5.0)


class Vm:
    """One VM, bound to its host's shared libvirt connection."""

    def __init__(self, session: Session, location: VmLocation) -> None:
        self.session = session
        self.name = location.name
        self.host_id = location.host_id
        self.uuid = location.uuid
        self._host = session.manager.host(location.host_id)
        self._cached: tuple[libvirt.virConnect, libvirt.virDomain] | None = None
        self._qmp: Qmp | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Vm {self.name} on {self.host_id}>"

    @property
    def host(self) -> HostConnection:
        return self._host

    def domain(self, timeout: float | None = None) -> libvirt.virDomain:
        """The libvirt domain on the current connection (looked up again after a reconnect)."""
        conn = self._host.connection(timeout)
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] is conn:
                return cached[1]
        dom = self.call(lambda: conn.lookupByUUIDString(self.uuid))
        with self._lock:
            self._cached = (conn, dom)
        return dom

    def call(self, fn: Callable[[], T]) -> T:
        """Run a libvirt call for this VM; a dead connection becomes HostUnavailable."""
        try:
            return fn()
        except libvirt.libvirtError as exc:
            self._host.check_error(exc)
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise UnknownVm(f"VM {self.name!r} no longer exists on {self.host_id!r}",
                                hint="it was undefined; look it up again") from exc
            raise

    def state(self, timeout: float | None = None) -> str:
        """The domain state: running, paused, shut off, ..."""
        dom = self.domain(timeout)
        return self.call(lambda: domain_state(dom))

    # --- protocols (all share the host's one libvirt connection) ----------------------

    def protocol(self, protocol: ProtocolType) -> object:
        """The client of ``protocol`` for this VM, e.g. ``vm.protocol(ProtocolType.QGA)``."""
        return create_client(self, protocol)

    @property
    def monitor(self) -> Qmp:
        """The VM's QMP client (typed helpers: status, stop, cont, screendump, ...)."""
        if self._qmp is None:
            self._qmp = Qmp(self)
        return self._qmp

    def qmp(self, command: str, arguments: Mapping[str, Any] | None = None, /,
            **kwargs: Any) -> Any:
        """Run a QMP command; returns its ``return`` value. ``vm.qmp("query-status")``"""
        return self.monitor.execute(command, arguments, **kwargs)

    async def qmp_async(self, command: str, arguments: Mapping[str, Any] | None = None, /,
                        **kwargs: Any) -> Any:
        return await self.monitor.execute_async(command, arguments, **kwargs)

    def hmp(self, line: str) -> str:
        """Run a human-monitor command line. ``vm.hmp("info block")``"""
        return self.monitor.hmp(line)

    async def hmp_async(self, line: str) -> str:
        return await self.monitor.hmp_async(line)

    def events(self, names: Iterable[str] | None = None,
               callback: Callable[[QmpEvent], None] | None = None) -> EventSubscription:
        """Subscribe to QMP events (all, or those named); use as a context manager.

        ``with vm.events(["STOP"]) as ev: vm.qmp("stop"); ev.get(timeout=5)``
        """
        return EventSubscription(self, names, callback).open()

    def screendump(self) -> Image.Image:
        """The screen as a PIL image (from QEMU, over the libvirt connection)."""
        return self.monitor.screendump()
