"""A virtio-serial port of a VM as a byte stream, through the host's shared libvirt connection.

``virDomainOpenChannel`` attaches a non-blocking libvirt stream to the port's host side. The
stream is driven by libvirt's event loop (libvirtaio on the atp loop): an event callback drains
it into a bounded :class:`~atp_notebook.byte_stream.ByteStream`, and readers wait on it. Only
UNIX-socket channels can be opened this way (DESIGN.md §6); a ``pty`` channel fails with a
hint.

Each operation is one coroutine on the atp loop; its blocking form has the plain name and
its async form (awaitable from any loop) the ``_async`` name, both made from it
(:mod:`atp_notebook.bridge`).

Example::

    with VirtioSerial(vm, "com.atp.test.0") as port:
        port.send(b"ping\\n")
        port.readline(timeout=5)          # b"ping\\n" from the lab's echo service

libvirt stream facts this relies on (libvirt 9; every URI, ``qemu:///system`` too, goes
through the remote driver):

- ``send`` never returns -2: it returns the full count once the packet is on the RPC socket,
  so ``WRITABLE`` is always "ready" and fires from a 0 ms timer thousands of times a second;
  we ask for it only while a send got -2 (other drivers).
- ``ERROR``/``HANGUP`` are never delivered: EOF and errors arrive as ``READABLE``, then
  ``recv`` returns ``b""`` or raises ("stream had I/O failure" when another client took the
  port with ``VIR_DOMAIN_CHANNEL_FORCE``), and ``READABLE`` keeps firing: we drop interest.
- libvirt's own receive queue is unbounded (it must keep reading the RPC socket); pausing
  ``READABLE`` bounds our buffer only. An open stream holds no client file descriptor.
- A stream is never told that its connection died (readers would wait forever): a host
  state listener fails the open ports of a lost connection with HostUnavailable.
- Event add/update/remove touch libvirtaio timers (not thread-safe): atp loop thread only;
  ``abort``/``finish`` are RPC round trips: executor only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import xml.etree.ElementTree as ET
from typing import Any, TypeVar

import libvirt

from atp_notebook.bridge import atp_async, atp_blocking, within
from atp_notebook.byte_stream import BUFFER_LIMIT, IO_TIMEOUT_S, ByteStream, ByteStreamReads
from atp_notebook.errors import (
    ChannelClosed,
    HostUnavailable,
    InvalidArgument,
    TransportError,
)
from atp_notebook.listeners import ListenerHandle
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.virt.handle import DomainHandle
from atp_notebook.virt.host import HostState, libvirt_error_text

T = TypeVar("T")

OPEN_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 10.0
# libvirt-python's own stream chunk (virStorageVol.streamBufSize): the largest payload of one
# legacy RPC packet, so one send is one packet
CHUNK = 262120

_READ_EVENTS = (libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
                | libvirt.VIR_STREAM_EVENT_HANGUP)


class SerialState(enum.StrEnum):
    IDLE = "idle"  # not opened yet
    OPEN = "open"
    LOST = "lost"  # peer hung up or the stream failed; buffered bytes are still readable
    CLOSED = "closed"  # closed by us; may be opened again


class VirtioSerial(ByteStreamReads):
    """One virtio-serial port of a VM, opened on the host's shared libvirt connection.

    ``force=True`` opens with ``VIR_DOMAIN_CHANNEL_FORCE``: another client holding the port
    (another process, another VirtioSerial) is disconnected. All I/O state lives on the atp
    loop; blocking methods run the async core there.

    Example::

        port = VirtioSerial(vm, "com.atp.test.0").open()
        port.send(b"hello\\n"); port.recv_exactly(6, timeout=5)   # b"hello\\n"
        port.close()
    """

    def __init__(self, handle: DomainHandle, name: str, *, force: bool = False,
                 buffer_limit: int = BUFFER_LIMIT, loop: AtpLoop | None = None) -> None:
        if not name:
            raise InvalidArgument("a virtio-serial port needs its name, e.g. 'com.atp.test.0'")
        self.handle = handle
        self.name = name
        self.force = force
        self.log = logging.getLogger(f"atp.virt.{handle.name}.serial.{name}")
        self._atp = loop or get_loop()
        self._state = SerialState.IDLE
        self._stream: Any = None  # libvirt.virStream while open or lost
        self._events = 0  # the interest currently registered with libvirt
        self._incoming = ByteStream(buffer_limit)  # recv, recv_exactly, readline read it
        # asyncio primitives bind to a loop on first use (3.10+): creating them here is safe,
        # and they are only ever used on the atp loop
        self._writable: asyncio.Future[None] | None = None  # set while a send waits
        self._open_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._host_listener: ListenerHandle | None = None  # while open

    def __repr__(self) -> str:
        return f"<VirtioSerial {self.handle.name}:{self.name} {self._state}>"

    @property
    def state(self) -> SerialState:
        return self._state

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return len(self._incoming)

    # --- the operations: each is one coroutine on the atp loop, with a blocking form and
    # an async form (awaitable from any loop) made from it ----------------------------

    async def _open(self, timeout: float = OPEN_TIMEOUT_S) -> VirtioSerial:
        """Open the port (again after a close); returns self. Example: ``p = port.open()``."""
        async with self._open_lock:  # two concurrent opens would fight over the port
            await self._open_locked(timeout)
        return self

    async def _send(self, data: bytes | bytearray | memoryview,
                    timeout: float = IO_TIMEOUT_S) -> None:
        """Send all of ``data``. Example: ``port.send(b"ping\\n")``."""
        await self._write(data, timeout)

    async def _close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Close the port (idempotent); waiters get ChannelClosed. Example: ``port.close()``."""
        await self._release(timeout)

    open = atp_blocking(_open)
    open_async = atp_async(_open)
    send = atp_blocking(_send)
    send_async = atp_async(_send)
    close = atp_blocking(_close)
    close_async = atp_async(_close)

    def __enter__(self) -> VirtioSerial:
        if self._state is not SerialState.OPEN:
            self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> VirtioSerial:
        if self._state is not SerialState.OPEN:
            await self.open_async()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close_async()

    # --- the async core (atp loop thread only) ----------------------------------------

    async def _open_locked(self, timeout: float) -> None:
        if self._state is SerialState.OPEN:
            return
        if self._stream is not None:  # LOST: release the dead stream before a new one
            await self._release(timeout)
        attempt = asyncio.get_running_loop().run_in_executor(self._atp.executor,
                                                             self._open_stream, timeout)
        try:
            async with within(timeout, f"{self.handle.name}:{self.name}: open"):
                # shield: a timeout must not orphan a stream that opens a moment later
                stream = await asyncio.shield(attempt)
        except BaseException:
            attempt.add_done_callback(self._discard_late_stream)
            raise
        try:
            stream.eventAddCallback(_READ_EVENTS, self._on_event, None)
        except libvirt.libvirtError as exc:
            self._atp.executor.submit(_end_stream, stream, False)
            raise TransportError(f"{self.handle.name}:{self.name}: cannot watch the stream: "
                                 f"{libvirt_error_text(exc)}") from exc
        self._incoming.restart()
        self._stream, self._events = stream, _READ_EVENTS
        self._state = SerialState.OPEN
        self._stop_watching_host()
        self._host_listener = self.handle.host.on_state_change(self._on_host_state)
        self._check_connection()  # a loss just before the listener was added was not seen
        self.log.info("opened%s", " (forced)" if self.force else "")

    def _open_stream(self, timeout: float) -> Any:  # executor thread: every call is an RPC
        dom = self.handle.domain(timeout)
        stream = dom.connect().newStream(libvirt.VIR_STREAM_NONBLOCK)
        flags = libvirt.VIR_DOMAIN_CHANNEL_FORCE if self.force else 0
        try:
            self.handle.call(lambda: dom.openChannel(self.name, stream, flags))
        except libvirt.libvirtError as exc:
            try:
                xml = self.handle.call(lambda: dom.XMLDesc(0))
            except libvirt.libvirtError:
                xml = None
            raise explain_open_failure(self.handle.name, self.name, libvirt_error_text(exc),
                                       xml) from exc
        return stream

    def _discard_late_stream(self, attempt: asyncio.Future[Any]) -> None:
        if not attempt.cancelled() and attempt.exception() is None:
            self.log.info("open finished after its caller gave up; aborting it")
            self._atp.executor.submit(_end_stream, attempt.result(), False)

    async def _write(self, data: bytes | bytearray | memoryview, timeout: float) -> None:
        view = memoryview(data).cast("B")
        self._check_usable()
        async with within(timeout, f"{self.handle.name}:{self.name}: send of {len(view)} "
                                    "bytes"), self._write_lock:
            offset = 0
            while offset < len(view):
                self._check_usable()
                try:
                    sent = self._stream.send(bytes(view[offset:offset + CHUNK]))
                except libvirt.libvirtError as exc:
                    self._lose(self._failure(exc))
                    self._incoming.raise_if_ended()
                    raise
                if sent == -2:  # never seen on the remote driver; other drivers may
                    await self._wait_writable()
                    continue
                offset += sent
                if offset < len(view):
                    await asyncio.sleep(0)  # let the reader drain the echo between chunks

    async def _wait_writable(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()
        self._set_interest()
        try:
            await self._writable
        finally:
            self._writable = None
            self._set_interest()  # WRITABLE fires nonstop on libvirt's timer: drop it now

    # the hooks of ByteStreamReads: recv, recv_exactly and readline

    def _stream_label(self) -> str:
        return f"{self.handle.name}:{self.name}"

    async def _reader_ready(self, timeout: float) -> None:
        # a closed port's stream is ended too (_release), so a reader already waiting gets
        # ChannelClosed from it
        self._check_usable(reading=True)

    def _consumed(self) -> None:
        self._set_interest()  # below the limit again: resume reading

    def _check_usable(self, *, reading: bool = False) -> None:
        if self._state is SerialState.IDLE:
            raise ChannelClosed(f"{self.handle.name}:{self.name} is not open",
                                hint="call open() first, or use `with VirtioSerial(...)`")
        if self._state is SerialState.CLOSED:
            raise ChannelClosed(f"{self.handle.name}:{self.name} was closed",
                                hint="open() it again")
        if self._state is SerialState.LOST and not reading:
            self._incoming.raise_if_ended()  # readers still get the buffered bytes first

    def _on_event(self, stream: Any, events: int, _opaque: object) -> None:
        """libvirt's stream callback, on the atp loop; it must never raise into libvirt."""
        try:
            if stream is not self._stream:
                return
            if events & _READ_EVENTS:
                self._drain(stream)
            if events & libvirt.VIR_STREAM_EVENT_WRITABLE:
                self._wake_all()
            self._set_interest()
        except Exception:
            self.log.exception("stream event handler failed")

    def _drain(self, stream: Any) -> None:
        while self._incoming.wants_data:
            try:
                data = stream.recv(CHUNK)
            except libvirt.libvirtError as exc:
                self._lose(self._failure(exc))
                break
            if isinstance(data, int):  # -2: libvirt's queue is empty for now
                break
            if not data:
                self._lose(ChannelClosed(f"{self.handle.name}:{self.name}: the VM side closed "
                                         "the port (EOF)"))
                break
            self._incoming.feed(data)

    def _failure(self, exc: libvirt.libvirtError) -> TransportError:
        """A failed stream call: HostUnavailable when the connection died, else ChannelClosed."""
        text = libvirt_error_text(exc)
        conn = self._stream.connect()
        err: TransportError
        if not _alive(conn):
            self.handle.host.mark_lost(text, conn)
            err = HostUnavailable(f"{self.handle.name}:{self.name}: host connection lost "
                                  f"({text})", hint="reopen the port once the host is back")
        else:
            err = ChannelClosed(
                f"{self.handle.name}:{self.name}: stream failed ({text})",
                hint="another client may have taken the port with force=True; reopen it")
        err.__cause__ = exc
        return err

    def _on_host_state(self, state: HostState) -> None:
        if state is not HostState.READY:
            self._check_connection()

    def _stop_watching_host(self) -> None:
        listener, self._host_listener = self._host_listener, None
        if listener is not None:
            listener.close()

    def _check_connection(self) -> None:
        """After a host state change: fail at once if our stream's connection is dead."""
        if self._state is not SerialState.OPEN or self._stream is None:
            return
        # a reconnect makes a new connection; this stream stays on the dead one
        if not _alive(self._stream.connect()):
            why = self.handle.host.stats.last_error or "closed"
            self._lose(HostUnavailable(f"{self.handle.name}:{self.name}: host connection "
                                       f"lost ({why})", hint="reopen the port once the host "
                                       "is back (it reconnects by itself)"))

    def _lose(self, reason: TransportError) -> None:
        if self._state is not SerialState.OPEN:
            return
        self._state = SerialState.LOST
        self._incoming.end(reason)
        self.log.info("lost: %s", reason.message)
        self._wake_all()
        self._set_interest()

    def _wake_all(self) -> None:
        """Wake readers and the writer; they recheck the state (and raise if it ended)."""
        self._incoming.wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _set_interest(self) -> None:
        """Tell libvirt what we wait for: READABLE while the buffer has room (backpressure),
        WRITABLE only while a send waits."""
        stream = self._stream
        if stream is None:
            return
        wanted = 0
        if self._state is SerialState.OPEN:
            if self._incoming.wants_data:
                wanted |= _READ_EVENTS
            if self._writable is not None:
                wanted |= libvirt.VIR_STREAM_EVENT_WRITABLE
        if wanted != self._events:
            stream.eventUpdateCallback(wanted)
            self._events = wanted

    async def _release(self, timeout: float) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            if self._state is not SerialState.IDLE:
                self._state = SerialState.CLOSED
            return
        self._stop_watching_host()
        eof = self._state is SerialState.LOST and isinstance(self._incoming.reason,
                                                              ChannelClosed)
        self._state = SerialState.CLOSED
        # unread bytes are dropped
        self._incoming.discard(ChannelClosed(f"{self.handle.name}:{self.name} was closed"))
        self._wake_all()
        with contextlib.suppress(libvirt.libvirtError):
            stream.eventRemoveCallback()
        # else libvirt-python's __del__ removes it again (an error, maybe off the loop thread)
        with contextlib.suppress(AttributeError):
            del stream.cb
        self._events = 0
        ending = asyncio.get_running_loop().run_in_executor(self._atp.executor, _end_stream,
                                                            stream, eof)
        try:
            await asyncio.wait_for(asyncio.shield(ending), timeout)
        except TimeoutError:
            self.log.warning("stream did not end within %g s; left to libvirt", timeout)
        self.log.info("closed")


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive() == 1)  # a local check, no round trip
    except libvirt.libvirtError:
        return False


def _end_stream(stream: Any, eof: bool) -> None:
    """Executor thread: finish after EOF, else abort (both fail harmlessly on a broken stream)."""
    with contextlib.suppress(libvirt.libvirtError):
        if eof:
            stream.finish()
        else:
            stream.abort()


def explain_open_failure(vm: str, port: str, text: str,
                         domain_xml: str | None) -> TransportError:
    """Turn a failed ``openChannel`` (libvirt's error ``text``) into an error naming the port
    and the fix, from the domain XML when there is one (sans-I/O).

    Example::

        explain_open_failure("vm1", "com.x.0", "cannot find channel com.x.0", xml)
    """
    if "Active channel stream exists" in text:
        return TransportError(
            f"virtio-serial port {port!r} of VM {vm!r} is in use by another client",
            hint="close the other client, or open with force=True to take the port over")
    ports = _channel_types(domain_xml)
    unix_xml = (f"<channel type='unix'><target type='virtio' name='{port}'/></channel> "
                "(no <source> path: libvirt picks one)")
    if ports is not None and port not in ports:
        known = ", ".join(sorted(ports)) or "none"
        return TransportError(f"VM {vm!r} has no virtio-serial port {port!r} (ports: {known})",
                              hint=f"add to the domain XML's <devices>: {unix_xml}")
    if ports is not None and ports[port] != "unix":
        return TransportError(
            f"virtio-serial port {port!r} of VM {vm!r} is a {ports[port]!r} channel; "
            "virDomainOpenChannel opens only UNIX-socket channels",
            hint=f"in the domain XML, declare it as {unix_xml}")
    return TransportError(f"cannot open virtio-serial port {port!r} of VM {vm!r}: {text}")


def _channel_types(domain_xml: str | None) -> dict[str, str] | None:
    """Channel type by virtio target name and by alias; None when the XML is unusable."""
    try:
        root = ET.fromstring(domain_xml) if domain_xml else None
    except ET.ParseError:
        root = None
    if root is None:
        return None
    ports: dict[str, str] = {}
    for channel in root.iter("channel"):
        kind = channel.get("type", "?")
        for tag, attr in (("target", "name"), ("alias", "name")):
            node = channel.find(tag)
            if node is not None and node.get(attr):
                ports.setdefault(str(node.get(attr)), kind)
    return ports

