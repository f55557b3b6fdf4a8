"""The seed's ``ProtocolType {QMP, QGA, VirtioSerial(name), Spice}`` and a registry of
client factories: ``vm.protocol(ProtocolType.QMP)`` gives the VM's QMP client.

Example::

    qga = vm.protocol(ProtocolType.QGA)
    port = vm.protocol(ProtocolType.virtio_serial("com.atp.test.0"))
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from atp_notebook.errors import ConfigError
from atp_notebook.virt.handle import DomainHandle


class ProtocolKind(enum.StrEnum):
    QMP = "qmp"
    QGA = "qga"
    VIRTIO_SERIAL = "virtio-serial"
    SPICE = "spice"


@dataclass(frozen=True)
class ProtocolType:
    """A protocol of a VM; virtio-serial carries the port name."""

    kind: ProtocolKind
    port: str | None = None

    QMP: ClassVar[ProtocolType]  # the constants, set right after the class
    QGA: ClassVar[ProtocolType]
    SPICE: ClassVar[ProtocolType]

    @classmethod
    def virtio_serial(cls, port: str) -> ProtocolType:
        if not port:
            raise ConfigError("a virtio-serial protocol needs its port name, e.g. "
                              "'com.atp.test.0'")
        return cls(ProtocolKind.VIRTIO_SERIAL, port)

    def __str__(self) -> str:
        return f"{self.kind}({self.port})" if self.port else str(self.kind)


ProtocolType.QMP = ProtocolType(ProtocolKind.QMP)
ProtocolType.QGA = ProtocolType(ProtocolKind.QGA)
ProtocolType.SPICE = ProtocolType(ProtocolKind.SPICE)

# A factory makes a protocol client for a VM: (handle, protocol type) -> client.
ProtocolFactory = Callable[[DomainHandle, ProtocolType], object]
_registry: dict[ProtocolKind, ProtocolFactory] = {}


def register_protocol(kind: ProtocolKind, factory: ProtocolFactory) -> None:
    """Make ``vm.protocol(...)`` of this kind use ``factory`` (later ones replace earlier)."""
    _registry[kind] = factory


def create_client(handle: DomainHandle, protocol: ProtocolType) -> object:
    try:
        factory = _registry[protocol.kind]
    except KeyError:
        known = ", ".join(sorted(str(k) for k in _registry)) or "none"
        raise ConfigError(f"no client is registered for protocol {protocol} "
                          f"(registered: {known})") from None
    return factory(handle, protocol)
