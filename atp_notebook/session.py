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
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import libvirt

from atp_notebook.bridge import async_twin, atp_async, atp_blocking, delegate
from atp_notebook.config import TransportConfig, find_config, load_config
from atp_notebook.errors import ConfigError, InvalidArgument, NoLibvirtHost, UnknownVm
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.screen.needle import NeedleSet, load_needles
from atp_notebook.screen.vm_screen import VmScreen
from atp_notebook.spice.audio import VmAudio
from atp_notebook.spice.cursor_facade import VmCursor
from atp_notebook.spice.display_facade import VmDisplay
from atp_notebook.spice.facade import VmSpice
from atp_notebook.spice.port import OPEN_TIMEOUT_S as PORT_OPEN_TIMEOUT_S
from atp_notebook.spice.port import SpicePort
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.spice.webdav import FolderShare
from atp_notebook.spice.webdav_channel import webdav_channel
from atp_notebook.transport import (
    LOOKUP_TIMEOUT_S,
    TransportManager,
    VmListing,
    VmLocation,
    domain_state,
)
from atp_notebook.virt.events import EventSubscription, QmpEvent
from atp_notebook.virt.guest_agent import GuestAgent
from atp_notebook.virt.host import HostConnection, HostStats
from atp_notebook.virt.protocols import ProtocolKind, ProtocolType, VirtioSerialProtocol
from atp_notebook.virt.qmp import Qmp
from atp_notebook.virt.virtio_serial import OPEN_TIMEOUT_S as SERIAL_OPEN_TIMEOUT_S
from atp_notebook.virt.virtio_serial import VirtioSerial

T = TypeVar("T")
C = TypeVar("C")


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
        # what vm.assert_screen("tag") looks tags up in (see needle_set)
        self.needles: NeedleSet | None = None

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
        """The VM ``name`` on ``host`` (or the first host that has it); a VM listed only
        under ``transport.spice.vms`` (no ``host``) is a Spice-only VM."""
        if host is None and self.manager.is_spice_only(name):
            return Vm(self, None, name=name)
        location = self._run(self.manager.find_vm(name, host, timeout), timeout)
        return Vm(self, location)

    def needle_set(self) -> NeedleSet:
        """``self.needles``, else loaded once from ``$ATP_NEEDLES`` or ``./needles``."""
        if self.needles is None:
            folder = os.environ.get("ATP_NEEDLES") or "needles"
            if not os.path.isdir(folder):
                raise InvalidArgument(
                    f"no needles to look tags up in: {folder!r} is not a directory",
                    hint="session.needles = load_needles('DIR') (atp_notebook.screen), or "
                         "set $ATP_NEEDLES")
            self.needles = load_needles(folder)
        return self.needles

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._run(self.manager.close(), 30.0)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        # the coroutine enforces ``timeout`` itself; the margin only guards a stuck loop
        return self._atp.call(coro, timeout=timeout + 5.0)


class Vm:
    """One VM: bound to its host's shared libvirt connection, and/or reached through Spice.

    A VM listed only under ``transport.spice.vms`` (no ``host``) is Spice-only: typing,
    clicks and ``vm.spice`` work; QMP, the guest agent and virtio-serial raise
    ``NoLibvirtHost``. Every blocking operation has an ``_async`` form made from the same
    definition (:mod:`atp_notebook.bridge`), so both take the same arguments.
    """

    def __init__(self, session: Session, location: VmLocation | None, *,
                 name: str | None = None) -> None:
        self.session = session
        self.name = location.name if location is not None else str(name)
        self.host_id = location.host_id if location is not None else None
        self.uuid = location.uuid if location is not None else None
        self._host = (session.manager.host(location.host_id) if location is not None
                      else None)
        self._cached: tuple[libvirt.virConnect, libvirt.virDomain] | None = None
        self._qmp: Qmp | None = None
        self._agent: GuestAgent | None = None
        self._spice: VmSpice | None = None
        self._displays: dict[int, VmDisplay] = {}
        self._screen: VmScreen | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Vm {self.name} on {self.host_id or 'Spice only'}>"

    @property
    def spice_only(self) -> bool:
        """True when the VM has no libvirt host (reached through Spice alone)."""
        return self._host is None

    def _no_libvirt(self) -> NoLibvirtHost:
        return NoLibvirtHost(
            f"VM {self.name!r} has no libvirt host: it is reached through Spice only, so "
            "QMP, the guest agent and virtio-serial are not available",
            hint="give its transport.spice.vms entry a `host` (a transport.hosts id whose "
                 "libvirtd runs it) to use them")

    @property
    def host(self) -> HostConnection:
        if self._host is None:
            raise self._no_libvirt()
        return self._host

    def domain(self, timeout: float | None = None) -> libvirt.virDomain:
        """The libvirt domain on the current connection (looked up again after a reconnect)."""
        conn = self.host.connection(timeout)
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] is conn:
                return cached[1]
        uuid = self.uuid
        dom = self.call(lambda: conn.lookupByUUIDString(uuid))
        with self._lock:
            self._cached = (conn, dom)
        return dom

    def call(self, fn: Callable[[], T]) -> T:
        """Run a libvirt call for this VM; a dead connection becomes HostUnavailable."""
        try:
            return fn()
        except libvirt.libvirtError as exc:
            self.host.check_error(exc)
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise UnknownVm(f"VM {self.name!r} no longer exists on {self.host_id!r}",
                                hint="it was undefined; look it up again (%atp vms lists "
                                     "the VMs)") from exc
            raise

    def state(self, timeout: float | None = None) -> str:
        """The domain state: running, paused, shut off, ... ``vm.state()``"""
        dom = self.domain(timeout)
        return self.call(lambda: domain_state(dom))

    def events(self, names: Iterable[str] | None = None,
               callback: Callable[[QmpEvent], None] | None = None) -> EventSubscription:
        """Subscribe to QMP events (all, or those named); use as a context manager.

        ``with vm.events(["STOP"]) as ev: vm.qmp("stop"); ev.get(timeout=5)``
        """
        return EventSubscription(self, names, callback).open()

    domain_async = async_twin(domain)
    state_async = async_twin(state)
    events_async = async_twin(events)

    # --- protocols (all share the host's one libvirt connection) ----------------------

    @overload
    def protocol(self, protocol: ProtocolType[C]) -> C: ...
    @overload
    def protocol(self, protocol: VirtioSerialProtocol) -> VirtioSerial: ...

    def protocol(self, protocol: ProtocolType[Any] | VirtioSerialProtocol) -> object:
        """The VM's client for ``protocol``: ``vm.protocol(ProtocolType.QGA)`` is
        ``vm.agent``; ``ProtocolType.QMP`` ``vm.monitor``; ``ProtocolType.SPICE``
        ``vm.spice_input``; ``ProtocolType.virtio_serial(name)`` an unopened port."""
        if isinstance(protocol, VirtioSerialProtocol):
            self.host  # noqa: B018 - raises NoLibvirtHost for a Spice-only VM
            return VirtioSerial(self, protocol.port)
        clients: dict[ProtocolKind, Callable[[], object]] = {
            ProtocolKind.QMP: lambda: self.monitor,
            ProtocolKind.QGA: lambda: self.agent,
            ProtocolKind.SPICE: lambda: self.spice_input,
        }
        return clients[protocol.kind]()

    @property
    def monitor(self) -> Qmp:
        """The VM's QMP client (typed helpers: status, stop, cont, screendump, ...)."""
        self.host  # noqa: B018 - raises NoLibvirtHost for a Spice-only VM
        if self._qmp is None:
            self._qmp = Qmp(self)
        return self._qmp

    @property
    def agent(self) -> GuestAgent:
        """The VM's guest-agent client (exec, files, OS info, ...)."""
        self.host  # noqa: B018 - raises NoLibvirtHost for a Spice-only VM
        if self._agent is None:
            self._agent = GuestAgent(self)
        return self._agent

    # QMP, through vm.monitor: vm.qmp("query-status"), vm.hmp("info block")
    qmp = delegate("monitor", Qmp.execute)
    qmp_async = delegate("monitor", Qmp.execute_async)
    hmp = delegate("monitor", Qmp.hmp)
    hmp_async = delegate("monitor", Qmp.hmp_async)
    screendump = delegate("monitor", Qmp.screendump)  # the screen as QEMU sees it (PIL)
    screendump_async = delegate("monitor", Qmp.screendump_async)

    # the guest agent, through vm.agent: vm.qga("guest-ping"), vm.exec(["ls"]), files
    qga = delegate("agent", GuestAgent.command)
    qga_async = delegate("agent", GuestAgent.command_async)
    exec = delegate("agent", GuestAgent.exec)
    exec_async = delegate("agent", GuestAgent.exec_async)
    read_file = delegate("agent", GuestAgent.read_file)
    read_file_async = delegate("agent", GuestAgent.read_file_async)
    write_file = delegate("agent", GuestAgent.write_file)
    write_file_async = delegate("agent", GuestAgent.write_file_async)
    wait_for_agent = delegate("agent", GuestAgent.wait_for_agent)
    wait_for_agent_async = delegate("agent", GuestAgent.wait_for_agent_async)

    async def _serial(self, port: str, *, force: bool = False,
                      timeout: float = SERIAL_OPEN_TIMEOUT_S) -> VirtioSerial:
        """An open virtio-serial port:
        ``with vm.serial("com.atp.test.0") as p: p.send(b"x")``"""
        self.host  # noqa: B018 - raises NoLibvirtHost for a Spice-only VM
        return await VirtioSerial(self, port, force=force).open_async(timeout)

    serial = atp_blocking(_serial)
    serial_async = atp_async(_serial)

    async def _port(self, name: str, timeout: float = PORT_OPEN_TIMEOUT_S) -> SpicePort:
        """A Spice port channel (a ``spiceport`` chardev), open; no libvirt needed:
        ``with vm.port("com.atp.echo") as p: p.send(b"x")``. An unknown name raises
        InvalidArgument listing the VM's ports."""
        return await self.spice_input.spice.ports.get(name).open_async(timeout)

    port = atp_blocking(_port)
    port_async = atp_async(_port)

    async def _share_folder(self, path: str | os.PathLike[str], read_only: bool = True,
                            timeout: float = PORT_OPEN_TIMEOUT_S) -> FolderShare:
        """Serve a local folder to the guest's spice-webdavd (read-only unless asked):
        ``with vm.share_folder("/srv/data"): ...``; the guest reads it at
        http://127.0.0.1:9843/. A path that is not a folder raises InvalidArgument."""
        channel = webdav_channel(self.spice_input.spice)
        return await FolderShare(channel, path, read_only=read_only)._start(timeout)

    share_folder = atp_blocking(_share_folder)
    share_folder_async = atp_async(_share_folder)

    # --- Spice (the Spice vm_id is the VM name) -------------------------------------------

    @property
    def spice_input(self) -> VmSpice:
        """Typing, key combos and the pointer through the VM's Spice Inputs channel."""
        if self._spice is None:
            self._spice = VmSpice(self.session.manager, self.name)
        return self._spice

    @property
    def spice(self) -> SpiceVmConnection:
        """The VM's SpiceVmConnection, connected (Main and the channels its configuration
        lists); use its coroutines on the atp loop."""
        return self.spice_input.connection()

    @property
    def audio(self) -> VmAudio:
        """The guest's sound through Spice: ``vm.audio.capture(2.0)`` (Playback),
        ``vm.audio.send("a.wav")`` (Record); each channel opens on first use."""
        return VmAudio(self.session.manager, self.name)

    @property
    def cursor(self) -> VmCursor:
        """The guest pointer through the Spice cursor channel of the first head:
        ``vm.cursor.state()`` (shape, hot spot, position, visible), ``wait_for_cursor``."""
        return VmCursor(self.session.manager, self.name)

    @property
    def display(self) -> VmDisplay:
        """The VM's screen through Spice, drawn here (display channel 0, the first head):
        ``vm.display.wait_still(1)``, ``vm.display.surface``."""
        return self.display_channel(0)

    def display_channel(self, channel_id: int) -> VmDisplay:
        """Another display channel (a second qxl card is display channel 1)."""
        if isinstance(channel_id, bool) or not isinstance(channel_id, int) or not (
                0 <= channel_id <= 255):
            raise InvalidArgument(f"display channel id {channel_id!r}: an int 0..255 (0 is "
                                  "the first head)")
        with self._lock:
            found = self._displays.get(channel_id)
            if found is None:
                found = self._displays[channel_id] = VmDisplay(self.session.manager,
                                                               self.name, channel_id)
            return found

    @property
    def screen(self) -> VmScreen:
        """Screen assertions on the first head: needles (tags from ``session.needles``)
        and OCR, checked when the display's damage touches them."""
        if self._screen is None:
            self._screen = VmScreen(self.display, self.spice_input, self.session.needle_set)
        return self._screen

    assert_screen = delegate("screen", VmScreen.assert_screen)
    assert_screen_async = delegate("screen", VmScreen.assert_screen_async)
    check_screen = delegate("screen", VmScreen.check_screen)
    check_screen_async = delegate("screen", VmScreen.check_screen_async)
    assert_and_click = delegate("screen", VmScreen.assert_and_click)
    assert_and_click_async = delegate("screen", VmScreen.assert_and_click_async)
    wait_for_text = delegate("screen", VmScreen.wait_for_text)
    wait_for_text_async = delegate("screen", VmScreen.wait_for_text_async)

    # the screen as Spice shows it, drawn here (vm.screendump() is QEMU's own)
    screenshot = delegate("display", VmDisplay.screenshot)
    screenshot_async = delegate("display", VmDisplay.screenshot_async)

    connect_spice = delegate("spice_input", VmSpice.connection)
    connect_spice_async = delegate("spice_input", VmSpice.connection_async)
    screen_size = delegate("spice_input", VmSpice.screen_size)
    screen_size_async = delegate("spice_input", VmSpice.screen_size_async)
    type = delegate("spice_input", VmSpice.type)
    type_async = delegate("spice_input", VmSpice.type_async)
    press = delegate("spice_input", VmSpice.press)
    press_async = delegate("spice_input", VmSpice.press_async)
    click = delegate("spice_input", VmSpice.click)
    click_async = delegate("spice_input", VmSpice.click_async)
    move = delegate("spice_input", VmSpice.move)
    move_async = delegate("spice_input", VmSpice.move_async)
    set_mouse_mode = delegate("spice_input", VmSpice.set_mouse_mode)
    set_mouse_mode_async = delegate("spice_input", VmSpice.set_mouse_mode_async)
