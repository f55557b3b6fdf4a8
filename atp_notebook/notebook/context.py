"""The magics' state: a lazy Session, the VMs looked up so far, and open virtio-serial ports.

The first magic that needs a VM connects (``connect(config_path or None)``); ``%atp connect``
and ``%atp disconnect`` replace or drop the session. A virtio-serial port stays open between
magics, so ``%virtio ... send`` followed by ``%virtio ... recv`` sees the echo.

Example::

    ctx = NotebookContext(settings)          # settings: an AtpMagics (timeout, config_path, ...)
    ctx.vm(VmRef("atp-vm1")).qmp("query-status")
    ctx.serial(VmRef("atp-vm1"), "com.atp.test.0").send(b"hi")
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from atp_notebook.errors import AtpError, UnknownVm
from atp_notebook.notebook.commands.words import VmRef, VmSelector
from atp_notebook.notebook.progress import AgentProgress, in_notebook
from atp_notebook.session import Session, Vm, connect
from atp_notebook.virt.virtio_serial import SerialState, VirtioSerial

log = logging.getLogger("atp.notebook")


class Settings(Protocol):
    """What the context reads from the magics' traitlets configuration."""

    timeout: float
    events_window: float
    config_path: str | None
    default_vm: str | None
    progress: bool


class NotebookContext:
    """Lazy session, VM cache and open ports behind the magics (one per IPython shell)."""

    def __init__(self, settings: Settings,
                 connector: Callable[[str | None], Session] = connect) -> None:
        self.settings = settings
        self._connector = connector
        self._session: Session | None = None
        self._vms: dict[VmRef, Vm] = {}
        self._vm_names: frozenset[str] | None = None
        self._ports: dict[tuple[VmRef, str], VirtioSerial] = {}
        self._lock = threading.RLock()

    # --- session ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def session(self) -> Session:
        """The session, connected on first use from ``settings.config_path`` (or the search)."""
        with self._lock:
            if self._session is None:
                self._session = self._connector(self.settings.config_path or None)
                log.debug("connected: %r", self._session)
            return self._session

    def reconnect(self) -> Session:
        """Drop the current session (if any) and connect again from the settings."""
        self.disconnect()
        return self.session

    def disconnect(self) -> bool:
        """Close ports and the session; False when there was nothing to close."""
        with self._lock:
            session, self._session = self._session, None
            ports, self._ports = list(self._ports.values()), {}
            self._vms.clear()
            self._vm_names = None
        for port in ports:
            with contextlib.suppress(AtpError):
                port.close()
        if session is None:
            return False
        session.close()
        return True

    # --- VMs --------------------------------------------------------------------------

    def selector(self) -> VmSelector:
        """Reads the VM word of a line, falling back to ``settings.default_vm``."""
        return VmSelector(self.settings.default_vm or None, self.is_vm)

    def is_vm(self, word: str) -> bool:
        """Whether ``word`` names a VM on some host (the list is read once per session)."""
        with self._lock:
            if self._vm_names is None:
                self._vm_names = frozenset(v.name for v in self.session.vms())
            return word in self._vm_names

    def vm(self, ref: VmRef) -> Vm:
        with self._lock:
            cached = self._vms.get(ref)
            if cached is None:
                cached = self._vms[ref] = self.session.vm(ref.name, host=ref.host)
            return cached

    def forget(self, ref: VmRef) -> None:
        """Look ``ref`` up again next time (it was undefined, or redefined with a new UUID)."""
        with self._lock:
            self._vms.pop(ref, None)
            self._vm_names = None

    @contextlib.contextmanager
    def using(self, ref: VmRef) -> Iterator[Vm]:
        """The VM for one command; a vanished VM is dropped from the cache on the way out."""
        try:
            yield self.vm(ref)
        except UnknownVm:
            self.forget(ref)
            raise

    # --- virtio-serial ports ----------------------------------------------------------

    def serial(self, ref: VmRef, port: str) -> VirtioSerial:
        """The port, opened on first use and reopened after it was lost or closed."""
        with self._lock:
            stream = self._ports.get((ref, port))
            if stream is not None and stream.state is SerialState.OPEN:
                return stream
        if stream is None:
            with self.using(ref) as vm:
                stream = vm.serial(port)
        else:
            stream.open()  # a lost port keeps its object: reopen rather than leak a new one
        with self._lock:
            self._ports[(ref, port)] = stream
        return stream

    def close_serial(self, ref: VmRef, port: str) -> bool:
        """Close a port opened by ``%virtio``; False when it was not open."""
        with self._lock:
            stream = self._ports.pop((ref, port), None)
        if stream is None:
            return False
        stream.close()
        return True

    def open_ports(self) -> list[str]:
        with self._lock:
            return sorted(f"{ref}:{port}" for (ref, port), s in self._ports.items()
                          if s.state is SerialState.OPEN)

    # --- progress ---------------------------------------------------------------------

    def progress(self, label: str, timeout: float) -> AgentProgress | None:
        """A progress display in a notebook kernel; None in a terminal, a script or a test."""
        if not self.settings.progress or not in_notebook():
            return None
        return AgentProgress(label, timeout)
