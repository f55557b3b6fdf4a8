"""The libvirt connections of all hosts, one :class:`HostConnection` per host id.

Example::

    pool = ConnectionPool()
    pool.add("lab", "qemu+tcp://127.0.0.1/system")
    conn = await pool.get("lab").get()
    pool.stats()["lab"].opens          # 1, however many VMs use it
"""

from __future__ import annotations

import asyncio
import threading

from atp_notebook.errors import ConfigError, UnknownHost
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.virt.host import CONNECT_TIMEOUT_S, HostConnection, HostStats


class ConnectionPool:
    """Host connections keyed by host id; adding the same host twice is an error."""

    def __init__(self, loop: AtpLoop | None = None) -> None:
        self._atp = loop or get_loop()
        self._hosts: dict[str, HostConnection] = {}
        self._lock = threading.Lock()  # add/remove may come from any thread

    def __contains__(self, host_id: object) -> bool:
        return host_id in self._hosts

    def __len__(self) -> int:
        return len(self._hosts)

    def ids(self) -> list[str]:
        return list(self._hosts)

    def add(
        self, host_id: str, uri: str, *, connect_timeout: float = CONNECT_TIMEOUT_S
    ) -> HostConnection:
        """Register a host; nothing is opened until first use."""
        with self._lock:
            existing = self._hosts.get(host_id)
            if existing is not None:
                if existing.uri == uri:
                    return existing
                raise ConfigError(f"host {host_id!r} is already known with another URI",
                                  hint=f"remove_host({host_id!r}) first, or use another id")
            host = HostConnection(host_id, uri, loop=self._atp, connect_timeout=connect_timeout)
            self._hosts[host_id] = host
            return host

    def get(self, host_id: str) -> HostConnection:
        try:
            return self._hosts[host_id]
        except KeyError:
            known = ", ".join(self._hosts) or "none"
            raise UnknownHost(f"unknown host {host_id!r} (known: {known})") from None

    async def remove(self, host_id: str) -> None:
        with self._lock:
            host = self._hosts.pop(host_id, None)
        if host is None:
            known = ", ".join(self._hosts) or "none"
            raise UnknownHost(f"unknown host {host_id!r} (known: {known})")
        await host.close()

    def stats(self) -> dict[str, HostStats]:
        return {host_id: host.stats for host_id, host in self._hosts.items()}

    async def close(self) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        await asyncio.gather(*(h.close() for h in hosts), return_exceptions=True)
