"""What the protocol clients (QMP, guest agent, virtio-serial) need from a VM.

:class:`atp_notebook.session.Vm` provides it; the clients depend only on this protocol, so
``virt/`` never imports the session layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import libvirt

from atp_notebook.virt.host import HostConnection

T = TypeVar("T")


class DomainHandle(Protocol):
    """A VM bound to its host's shared libvirt connection."""

    name: str

    @property
    def host(self) -> HostConnection:
        """The host connection the VM lives on (shared with every other VM there)."""
        ...

    def domain(self, timeout: float | None = None) -> libvirt.virDomain:
        """The libvirt domain on the current connection (looked up again after a reconnect)."""
        ...

    def call(self, fn: Callable[[], T]) -> T:
        """Run a libvirt call; a dead connection becomes HostUnavailable, a vanished domain
        UnknownVm; other libvirt errors propagate as ``libvirt.libvirtError``."""
        ...
