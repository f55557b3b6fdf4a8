"""SpiceConnectionManager: one SpiceVmConnection per VM id, for the life of the manager.

The connection object stays the same when its endpoint changes (it resolves the endpoint
itself, through the resolver given here), so listeners added to it keep hearing the VM.

Example (on the atp loop)::

    manager = SpiceConnectionManager()
    vm = manager.connection("atp-vm1", lambda: SpiceVmConnection(
        "atp-vm1", SpiceEndpoint("127.0.0.1", port=5901)))
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from atp_notebook.spice.vm import SpiceVmConnection


class SpiceConnectionManager:
    """Spice connections by VM id, made on first use."""

    def __init__(self) -> None:
        self._vms: dict[str, SpiceVmConnection] = {}
        self._lock = threading.Lock()  # the blocking facade asks from other threads

    def __contains__(self, vm_id: object) -> bool:
        return vm_id in self._vms

    def connection(self, vm_id: str,
                   make: Callable[[], SpiceVmConnection]) -> SpiceVmConnection:
        """The VM's connection, made by ``make`` the first time (no I/O either way)."""
        with self._lock:
            existing = self._vms.get(vm_id)
            if existing is None:
                existing = self._vms[vm_id] = make()
            return existing

    async def remove(self, vm_id: str) -> None:
        with self._lock:
            connection = self._vms.pop(vm_id, None)
        if connection is not None:
            await connection.close()

    async def close(self) -> None:
        with self._lock:
            vms, self._vms = list(self._vms.values()), {}
        await asyncio.gather(*(vm.close() for vm in vms), return_exceptions=True)
