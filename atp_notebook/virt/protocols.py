"""The seed's ``ProtocolType {QMP, QGA, VirtioSerial(name), Spice}``, typed by the client
each one gives: ``vm.protocol(ProtocolType.QGA)`` is the VM's ``GuestAgent``.

Example::

    qga = vm.protocol(ProtocolType.QGA)                          # GuestAgent
    port = vm.protocol(ProtocolType.virtio_serial("com.atp.test.0"))   # VirtioSerial, unopened
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from atp_notebook.errors import InvalidArgument

if TYPE_CHECKING:  # the clients' types only: virt/ does not import the Spice layer
    from atp_notebook.spice.facade import VmSpice
    from atp_notebook.virt.guest_agent import GuestAgent
    from atp_notebook.virt.qmp import Qmp

C = TypeVar("C")


class ProtocolKind(enum.StrEnum):
    QMP = "qmp"
    QGA = "qga"
    VIRTIO_SERIAL = "virtio-serial"
    SPICE = "spice"


@dataclass(frozen=True)
class ProtocolType(Generic[C]):
    """A protocol of a VM; the type parameter is the client ``vm.protocol()`` returns."""

    kind: ProtocolKind

    QMP: ClassVar[ProtocolType[Qmp]]  # the constants, set right after the class
    QGA: ClassVar[ProtocolType[GuestAgent]]
    SPICE: ClassVar[ProtocolType[VmSpice]]

    @staticmethod
    def virtio_serial(port: str) -> VirtioSerialProtocol:
        return VirtioSerialProtocol(port)

    def __str__(self) -> str:
        return str(self.kind)


@dataclass(frozen=True)
class VirtioSerialProtocol:
    """``ProtocolType.virtio_serial(name)``: a virtio-serial port of the VM, by name."""

    port: str
    kind: ProtocolKind = ProtocolKind.VIRTIO_SERIAL

    def __post_init__(self) -> None:
        if not self.port:
            raise InvalidArgument("a virtio-serial protocol needs its port name, e.g. "
                                  "'com.atp.test.0'")

    def __str__(self) -> str:
        return f"{self.kind}({self.port})"


ProtocolType.QMP = ProtocolType(ProtocolKind.QMP)
ProtocolType.QGA = ProtocolType(ProtocolKind.QGA)
ProtocolType.SPICE = ProtocolType(ProtocolKind.SPICE)
