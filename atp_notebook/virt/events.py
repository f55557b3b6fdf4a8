"""QMP events of one VM, through libvirt's ``qemuMonitorEventRegister``.

libvirt delivers them on the atp loop (libvirtaio); a subscription queues them for a blocking
reader (``get``), an async reader (``async for``), and/or calls a callback. After the host
connection is lost and comes back, the subscription registers itself again on the new one.

Example::

    with EventSubscription(vm, ["STOP", "RESUME"]) as events:
        vm.qmp("stop")
        events.get(timeout=10).name            # "STOP"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import libvirt
import libvirt_qemu

from atp_notebook.errors import ChannelClosed, CommandError, OperationTimeout
from atp_notebook.listeners import ListenerHandle
from atp_notebook.virt.handle import DomainHandle
from atp_notebook.virt.host import HostState

log = logging.getLogger("atp.virt.events")
DEFAULT_QUEUE = 10_000


@dataclass(frozen=True)
class QmpEvent:
    """One QMP event: its name, when QEMU emitted it (epoch seconds) and its data."""

    vm: str
    name: str
    timestamp: float
    data: dict[str, Any] = field(default_factory=dict)


_CLOSED = object()


class EventSubscription:
    """QMP events of one VM, filtered by name (case-insensitive; None = every event)."""

    def __init__(
        self,
        handle: DomainHandle,
        names: Iterable[str] | None = None,
        callback: Callable[[QmpEvent], None] | None = None,
        *,
        maxsize: int = DEFAULT_QUEUE,
    ) -> None:
        self.handle = handle
        self.names = frozenset(n.upper() for n in names) if names is not None else None
        self.callback = callback
        self.dropped = 0  # events lost because nobody read the queue
        self._queue: queue.Queue[QmpEvent | object] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._registered: tuple[libvirt.virConnect, int] | None = None
        self._closed = False
        self._host_listener: ListenerHandle | None = None
        self._log = logging.getLogger(f"atp.virt.{handle.name}.events")

    def __repr__(self) -> str:
        which = ", ".join(sorted(self.names)) if self.names else "all"
        return f"<EventSubscription {self.handle.name}: {which}>"

    # --- lifecycle ----------------------------------------------------------------------

    def open(self) -> EventSubscription:
        """Start receiving events (blocking: one libvirt call); opening twice is harmless."""
        with self._lock:
            if self._registered is not None or self._closed:
                return self
        self._register()
        with self._lock:
            if self._host_listener is None and not self._closed:
                self._host_listener = self.handle.host.on_state_change(self._on_host_state)
        return self

    def close(self) -> None:
        """Stop receiving; blocked readers get ChannelClosed. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            registered, self._registered = self._registered, None
            listener, self._host_listener = self._host_listener, None
        if listener is not None:
            listener.close()
        if registered is not None:
            conn, callback_id = registered
            with contextlib.suppress(libvirt.libvirtError):
                libvirt_qemu.qemuMonitorEventDeregister(conn, callback_id)
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_CLOSED)

    def __enter__(self) -> EventSubscription:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> EventSubscription:
        await asyncio.get_running_loop().run_in_executor(None, self.open)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # --- reading ------------------------------------------------------------------------

    def get(self, timeout: float | None = 10.0) -> QmpEvent:
        """The next event (blocking); OperationTimeout if none came in ``timeout`` s."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise OperationTimeout(
                f"no QMP event {self._which()} from {self.handle.name} within {timeout} s"
            ) from None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # every later reader sees the end too
            raise ChannelClosed(f"event subscription of {self.handle.name} is closed")
        assert isinstance(item, QmpEvent)
        return item

    def wait_for(self, name: str, timeout: float = 10.0) -> QmpEvent:
        """Skip events until one named ``name`` arrives."""
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise OperationTimeout(f"no QMP event {name} from {self.handle.name} "
                                       f"within {timeout} s")
            event = self.get(remaining)
            if event.name == name.upper():
                return event

    async def next_async(self, timeout: float | None = 10.0) -> QmpEvent:
        return await asyncio.get_running_loop().run_in_executor(None, self.get, timeout)

    def __aiter__(self) -> AsyncIterator[QmpEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[QmpEvent]:
        while True:
            try:
                yield await self.next_async(timeout=None)
            except ChannelClosed:
                return

    def drain(self) -> list[QmpEvent]:
        """Every event queued so far, without waiting."""
        out: list[QmpEvent] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            if item is _CLOSED:
                self._queue.put_nowait(_CLOSED)
                return out
            assert isinstance(item, QmpEvent)
            out.append(item)

    # --- machinery ----------------------------------------------------------------------

    def _which(self) -> str:
        return "/".join(sorted(self.names)) if self.names else "(any)"

    def _register(self) -> None:
        conn = self.handle.host.connection()
        dom = self.handle.domain()
        # libvirt filters by one name; for several, take all and filter here
        single = next(iter(self.names)) if self.names and len(self.names) == 1 else None
        try:
            callback_id = self.handle.call(lambda: libvirt_qemu.qemuMonitorEventRegister(
                conn, dom, single, self._deliver, None,
                libvirt_qemu.VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_NOCASE))
        except libvirt.libvirtError as exc:
            raise CommandError(f"cannot subscribe to QMP events of {self.handle.name}: "
                               f"{exc.get_error_message()}") from exc
        with self._lock:
            if self._closed:
                stale: tuple[libvirt.virConnect, int] | None = (conn, callback_id)
            else:
                stale, self._registered = self._registered, (conn, callback_id)
        if stale is not None:
            with contextlib.suppress(libvirt.libvirtError):
                libvirt_qemu.qemuMonitorEventDeregister(*stale)

    def _on_host_state(self, state: object) -> None:
        # on the atp loop: a new connection after a loss needs a new registration
        if state is HostState.READY and not self._closed:
            self._registered = None
            asyncio.get_running_loop().run_in_executor(None, self._reregister)

    def _reregister(self) -> None:
        try:
            self._register()
        except Exception:  # the host may be lost again; the next READY retries
            self._log.warning("could not subscribe again after a reconnect", exc_info=True)

    def _deliver(self, _conn: libvirt.virConnect, _dom: libvirt.virDomain, name: str,
                 seconds: int, micros: int, details: str | None, _opaque: object) -> None:
        if self.names is not None and name.upper() not in self.names:
            return
        try:
            data = json.loads(details) if details else {}
        except ValueError:
            data = {"raw": details}
        event = QmpEvent(self.handle.name, name, seconds + micros / 1e6,
                         data if isinstance(data, dict) else {"value": data})
        if self.callback is not None:
            try:
                self.callback(event)
            except Exception:  # a user's callback must not break delivery
                self._log.exception("event callback failed")
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
