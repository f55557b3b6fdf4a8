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
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt
from PIL import Image

from atp_notebook.config import TransportConfig, find_config, load_config
from atp_notebook.errors import ConfigError, UnknownVm
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.spice.facade import VmSpice
from atp_notebook.spice.proto.constants import MouseMode
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.transport import (
    LOOKUP_TIMEOUT_S,
    TransportManager,
    VmListing,
    VmLocation,
    domain_state,
)
from atp_notebook.virt.events import EventSubscription, QmpEvent
from atp_notebook.virt.guest_agent import ExecResult, GuestAgent
from atp_notebook.virt.host import HostConnection, HostStats
from atp_notebook.virt.protocols import ProtocolType, create_client
from atp_notebook.virt.qmp import Qmp
from atp_notebook.virt.virtio_serial import VirtioSerial

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
        self._agent: GuestAgent | None = None
        self._spice: VmSpice | None = None
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

    @property
    def agent(self) -> GuestAgent:
        """The VM's guest-agent client (exec, files, OS info, ...)."""
        if self._agent is None:
            self._agent = GuestAgent(self)
        return self._agent

    def qga(self, command: str, arguments: Mapping[str, Any] | None = None, /,
            **kwargs: Any) -> Any:
        """Run a guest-agent command; returns its ``return`` value. ``vm.qga("guest-ping")``"""
        return self.agent.command(command, arguments, **kwargs)

    async def qga_async(self, command: str, arguments: Mapping[str, Any] | None = None, /,
                        **kwargs: Any) -> Any:
        return await self.agent.command_async(command, arguments, **kwargs)

    def exec(self, argv: Sequence[str], input: bytes | None = None,
             env: Mapping[str, str] | None = None, timeout: float = 60.0) -> ExecResult:
        """Run a program in the guest and wait for it. ``vm.exec(["cat", "/etc/hostname"])``"""
        return self.agent.exec(argv, input=input, env=env, timeout=timeout)

    async def exec_async(self, argv: Sequence[str], input: bytes | None = None,
                         env: Mapping[str, str] | None = None,
                         timeout: float = 60.0) -> ExecResult:
        return await self.agent.exec_async(argv, input=input, env=env, timeout=timeout)

    def read_file(self, path: str) -> bytes:
        """A guest file's bytes. ``vm.read_file("/etc/hostname")``"""
        return self.agent.read_file(path)

    async def read_file_async(self, path: str) -> bytes:
        return await self.agent.read_file_async(path)

    def write_file(self, path: str, data: bytes) -> None:
        """Write (replace) a guest file. ``vm.write_file("/tmp/x", b"data")``"""
        self.agent.write_file(path, data)

    async def write_file_async(self, path: str, data: bytes) -> None:
        await self.agent.write_file_async(path, data)

    def wait_for_agent(self, timeout: float = 60.0,
                       progress: Callable[[float, float], None] | None = None) -> float:
        """Wait until the guest agent answers; returns the seconds it took."""
        return self.agent.wait_for_agent(timeout, progress)

    async def wait_for_agent_async(self, timeout: float = 60.0,
                                   progress: Callable[[float, float], None] | None = None
                                   ) -> float:
        return await self.agent.wait_for_agent_async(timeout, progress)

    def serial(self, port: str, *, force: bool = False) -> VirtioSerial:
        """An open virtio-serial port: ``with vm.serial("com.atp.test.0") as p: p.send(b"x")``"""
        return VirtioSerial(self, port, force=force).open()

    async def serial_async(self, port: str, *, force: bool = False) -> VirtioSerial:
        return await VirtioSerial(self, port, force=force).open_async()

    # --- Spice input (the Spice vm_id is the VM name) -------------------------------------

    @property
    def spice_input(self) -> VmSpice:
        """Typing, key combos and clicks through the VM's Spice Inputs channel."""
        if self._spice is None:
            self._spice = VmSpice(self.session.manager, self.name)
        return self._spice

    @property
    def spice(self) -> SpiceVmConnection:
        """The VM's SpiceVmConnection (use its coroutines on the atp loop)."""
        return self.spice_input.connection()

    def type(self, text: str, layout: str = "us", rate: float | None = None) -> int:
        """Type ``text`` on the VM's keyboard; ``vm.type("echo hi\\n", layout="de")``.
        An untypable character raises ``UntypableText`` before anything is sent."""
        return self.spice_input.type(text, layout, rate)

    async def type_async(self, text: str, layout: str = "us", rate: float | None = None) -> int:
        return await self.spice_input.type_async(text, layout, rate)

    def press(self, combo: str, layout: str = "us") -> None:
        """Press and release a combo: ``vm.press("ctrl-alt-delete")``."""
        self.spice_input.press(combo, layout)

    async def press_async(self, combo: str, layout: str = "us") -> None:
        await self.spice_input.press_async(combo, layout)

    def click(self, x: int, y: int, button: str = "left") -> MouseMode:
        """Click at ``x``, ``y`` (exact in client mouse mode, a best effort in server mode:
        see :meth:`VmSpice.click`)."""
        return self.spice_input.click(x, y, button)

    async def click_async(self, x: int, y: int, button: str = "left") -> MouseMode:
        return await self.spice_input.click_async(x, y, button)

    def move(self, x: int, y: int) -> MouseMode:
        """Move the pointer to ``x``, ``y`` (display pixels) without clicking."""
        return self.spice_input.move(x, y)

    async def move_async(self, x: int, y: int) -> MouseMode:
        return await self.spice_input.move_async(x, y)

    def set_mouse_mode(self, mode: str) -> MouseMode:
        """``client`` (absolute, exact clicks) or ``server`` (relative) Spice mouse mode."""
        return self.spice_input.set_mouse_mode(mode)
