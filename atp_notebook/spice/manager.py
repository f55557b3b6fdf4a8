"""SpiceConnectionManager: one SpiceVmConnection per VM id, made from its endpoint.

Example (on the atp loop)::

    manager = SpiceConnectionManager()
    vm = manager.connection("atp-vm1", SpiceTarget("127.0.0.1", port=5901))
"""

from __future__ import annotations

import asyncio

from atp_notebook.spice.aio.channel import SpiceTarget
from atp_notebook.spice.vm import SpiceVmConnection


class SpiceConnectionManager:
    """Spice connections by VM id; a changed target replaces the old connection."""

    def __init__(self) -> None:
        self._vms: dict[str, SpiceVmConnection] = {}

    def __contains__(self, vm_id: object) -> bool:
        return vm_id in self._vms

    def connection(self, vm_id: str, target: SpiceTarget) -> SpiceVmConnection:
        existing = self._vms.get(vm_id)
        if existing is not None and existing.target == target:
            return existing
        connection = SpiceVmConnection(vm_id, target)
        self._vms[vm_id] = connection
        return connection

    async def remove(self, vm_id: str) -> None:
        connection = self._vms.pop(vm_id, None)
        if connection is not None:
            await connection.close()

    async def close(self) -> None:
        vms, self._vms = list(self._vms.values()), {}
        await asyncio.gather(*(vm.close() for vm in vms), return_exceptions=True)
