"""A virtio-serial port of a VM as a byte stream, through the host's shared libvirt connection.

``virDomainOpenChannel`` attaches a non-blocking libvirt stream to the port's host side. The
stream is driven by libvirt's event loop (libvirtaio on the atp loop): an event callback drains
it into a bounded :class:`ReceiveBuffer`, and readers wait on that buffer. Only UNIX-socket
channels can be opened this way (DESIGN.md §6); a ``pty`` channel fails with a hint.

Blocking methods are the default names, ``*_async`` their twins (awaitable from any loop).

Example::

    with VirtioSerial(vm, "com.atp.test.0") as port:
        port.send(b"ping\\n")
        port.readline(timeout=5)          # b"ping\\n" from the lab's echo service

Facts about libvirt streams this module relies on (libvirt 9, remote driver — every URI,
``qemu:///system`` included, goes through it):

- ``send`` never returns -2: data packets are queued fire-and-forget and the call returns the
  full count once the packet is on the RPC socket. ``WRITABLE`` is therefore always "ready":
  libvirt fires it from a 0 ms timer, thousands of times a second, so it is asked for only
  while a send actually got -2.
- ``ERROR``/``HANGUP`` are never delivered: end of stream and errors arrive as ``READABLE``,
  then ``recv`` returns ``b""`` (EOF) or raises (e.g. "stream had I/O failure" when another
  client took the port with ``VIR_DOMAIN_CHANNEL_FORCE``). ``READABLE`` keeps firing after
  that, so interest is dropped at once.
- libvirt's own receive queue is unbounded (it must read the RPC socket for other traffic);
  pausing ``READABLE`` bounds only our buffer, not libvirt's.
- An open stream holds no file descriptor on the client (it rides the connection's socket).
- ``abort``/``finish`` are RPC round trips: they run on an executor, never on the loop.
- Stream event add/update/remove touch libvirtaio timers, which are not thread-safe: they run
  on the atp loop thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import libvirt

from atp_notebook.errors import (
    ChannelClosed,
    HostUnavailable,
    LocalProtocolError,
    OperationTimeout,
    RemoteProtocolError,
    TransportError,
)
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.virt.handle import DomainHandle
from atp_notebook.virt.host import libvirt_error_text
from atp_notebook.virt.protocols import ProtocolKind, ProtocolType, register_protocol

T = TypeVar("T")

BUFFER_LIMIT = 4 * 1024 * 1024  # pause reading from libvirt above this many buffered bytes
MAX_LINE = 64 * 1024
IO_TIMEOUT_S = 10.0
OPEN_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 10.0
# libvirt-python's own stream chunk (virStorageVol.streamBufSize): the largest payload of one
# legacy RPC packet, so one send is one packet
CHUNK = 262120
# the blocking facade waits this much longer than the coroutine's own timeout, which fires first
FACADE_MARGIN_S = 5.0

_READ_EVENTS = (libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
                | libvirt.VIR_STREAM_EVENT_HANGUP)


class ReceiveBuffer:
    """Sans-I/O receive side: bytes in, reads and lines out, then the reason it ended.

    Every read returns ``None`` when it needs more data; after :meth:`close` buffered bytes
    are still returned, then each read raises (a copy of) the close reason.

    Example::

        buf = ReceiveBuffer()
        buf.feed(b"one\\ntw")
        buf.read_line(max_line=100)   # b"one\\n"
        buf.read_line(max_line=100)   # None: "tw" is not a whole line yet
    """

    def __init__(self, limit: int = BUFFER_LIMIT) -> None:
        self.limit = limit
        # bytearray: deleting from the front is amortised O(1) in CPython
        self._data = bytearray()
        self._scanned = 0  # bytes already searched for b"\n" (no rescans: no quadratic lines)
        self._error: TransportError | None = None

    def __len__(self) -> int:
        return len(self._data)

    @property
    def closed(self) -> bool:
        return self._error is not None

    @property
    def wants_data(self) -> bool:
        """True while open and below the limit (the adapter's backpressure switch)."""
        return self._error is None and len(self._data) < self.limit

    def feed(self, data: bytes) -> None:
        if self._error is not None:
            raise LocalProtocolError("data fed to a closed receive buffer")
        self._data += data

    def close(self, reason: TransportError) -> None:
        """End of input; the first reason wins (a later one would hide the real cause)."""
        if self._error is None:
            self._error = reason

    def clear(self) -> None:
        self._data.clear()
        self._scanned = 0

    def read(self, max_bytes: int) -> bytes | None:
        """Up to ``max_bytes`` buffered bytes, at least one."""
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if self._data:
            return self._take(min(max_bytes, len(self._data)))
        self.raise_if_closed()
        return None

    def read_exactly(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes; after close a short remainder stays for :meth:`read`."""
        if n < 0:
            raise ValueError(f"n must not be negative, not {n}")
        if len(self._data) >= n:
            return self._take(n)
        self.raise_if_closed()
        return None

    def read_line(self, max_line: int) -> bytes | None:
        """One line with its b"\\n"; after close the unterminated tail is the last line.

        A line longer than ``max_line`` (newline included) raises RemoteProtocolError and
        stays buffered, so nothing is lost: :meth:`read` can still take it.
        """
        end = self._data.find(b"\n", self._scanned)
        if end >= 0:
            if end + 1 > max_line:
                raise RemoteProtocolError(f"line of {end + 1} bytes exceeds max_line={max_line}")
            return self._take(end + 1)
        self._scanned = len(self._data)
        if len(self._data) >= max_line:
            raise RemoteProtocolError(
                f"no newline in {len(self._data)} bytes; a line exceeds max_line={max_line}")
        if self._data and self._error is not None:
            return self._take(len(self._data))
        self.raise_if_closed()
        return None

    def _take(self, n: int) -> bytes:
        out = bytes(self._data[:n])
        del self._data[:n]
        self._scanned = max(0, self._scanned - n)
        return out

    @property
    def reason(self) -> TransportError | None:
        """Why input ended (None while open)."""
        return self._error

    def raise_if_closed(self) -> None:
        """Raise (a copy of) the close reason, if closed."""
        if self._error is None:
            return
        # a fresh copy per raise: one shared instance would pile up every waiter's traceback
        raise copy.copy(self._error) from self._error.__cause__


class SerialState(enum.StrEnum):
    IDLE = "idle"  # not opened yet
    OPEN = "open"
    LOST = "lost"  # peer hung up or the stream failed; buffered bytes are still readable
    CLOSED = "closed"  # closed by us; may be opened again


class VirtioSerial:
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
            raise ValueError("a virtio-serial port needs its name, e.g. 'com.atp.test.0'")
        self.handle = handle
        self.name = name
        self.force = force
        self.buffer_limit = buffer_limit
        self.log = logging.getLogger(f"atp.virt.{handle.name}.serial.{name}")
        self._atp = loop or get_loop()
        self._state = SerialState.IDLE
        self._stream: Any = None  # libvirt.virStream while open or lost
        self._events = 0  # the interest currently registered with libvirt
        self._buffer = ReceiveBuffer(buffer_limit)
        # asyncio primitives bind to a loop on first use (3.10+): creating them here is safe,
        # and they are only ever used on the atp loop
        self._data_ready = asyncio.Event()
        self._writable: asyncio.Future[None] | None = None  # set while a send waits
        self._open_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<VirtioSerial {self.handle.name}:{self.name} {self._state}>"

    @property
    def state(self) -> SerialState:
        return self._state

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return len(self._buffer)

    # --- blocking facade --------------------------------------------------------------

    def open(self, timeout: float = OPEN_TIMEOUT_S) -> VirtioSerial:
        """Open the port (again after a close); returns self. Example: ``p = port.open()``."""
        self._run(self._open(timeout), timeout)
        return self

    def send(self, data: bytes | bytearray | memoryview, timeout: float = IO_TIMEOUT_S) -> None:
        """Send all of ``data``. Example: ``port.send(b"ping\\n")``."""
        self._run(self._send(data, timeout), timeout)

    def recv(self, max_bytes: int = 65536, timeout: float = IO_TIMEOUT_S) -> bytes:
        """What has arrived, up to ``max_bytes``; waits for at least one byte.
        Example: ``port.recv(timeout=2)``."""
        return self._run(self._read(lambda: self._buffer.read(max_bytes), timeout, "recv"),
                         timeout)

    def recv_exactly(self, n: int, timeout: float = IO_TIMEOUT_S) -> bytes:
        """Exactly ``n`` bytes. Example: ``port.recv_exactly(4, timeout=5)``."""
        return self._run(self._read(lambda: self._buffer.read_exactly(n), timeout,
                                    f"recv_exactly({n})"), timeout)

    def readline(self, timeout: float = IO_TIMEOUT_S, max_line: int = MAX_LINE) -> bytes:
        """One line, b"\\n" included. Example: ``port.readline(timeout=5)``."""
        return self._run(self._read(lambda: self._buffer.read_line(max_line), timeout,
                                    "readline"), timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Close the port (idempotent); waiters get ChannelClosed. Example: ``port.close()``."""
        self._run(self._close(timeout), timeout)

    def __enter__(self) -> VirtioSerial:
        if self._state is not SerialState.OPEN:
            self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- async twins (usable from any event loop) -------------------------------------

    async def open_async(self, timeout: float = OPEN_TIMEOUT_S) -> VirtioSerial:
        """Example: ``port = await VirtioSerial(vm, "com.atp.test.0").open_async()``."""
        await self._on_atp(self._open(timeout))
        return self

    async def send_async(self, data: bytes | bytearray | memoryview,
                         timeout: float = IO_TIMEOUT_S) -> None:
        """Example: ``await port.send_async(b"ping\\n")``."""
        await self._on_atp(self._send(data, timeout))

    async def recv_async(self, max_bytes: int = 65536, timeout: float = IO_TIMEOUT_S) -> bytes:
        """Example: ``data = await port.recv_async(timeout=2)``."""
        return await self._on_atp(self._read(lambda: self._buffer.read(max_bytes), timeout,
                                             "recv"))

    async def recv_exactly_async(self, n: int, timeout: float = IO_TIMEOUT_S) -> bytes:
        """Example: ``head = await port.recv_exactly_async(4)``."""
        return await self._on_atp(self._read(lambda: self._buffer.read_exactly(n), timeout,
                                             f"recv_exactly({n})"))

    async def readline_async(self, timeout: float = IO_TIMEOUT_S,
                             max_line: int = MAX_LINE) -> bytes:
        """Example: ``line = await port.readline_async(timeout=5)``."""
        return await self._on_atp(self._read(lambda: self._buffer.read_line(max_line),
                                             timeout, "readline"))

    async def close_async(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Example: ``await port.close_async()``."""
        await self._on_atp(self._close(timeout))

    async def __aenter__(self) -> VirtioSerial:
        if self._state is not SerialState.OPEN:
            await self.open_async()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close_async()

    # --- plumbing between threads -----------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        try:
            return self._atp.call(coro, timeout + FACADE_MARGIN_S)
        except OperationTimeout as exc:
            # AtpLoop.call() takes the coroutine's own OperationTimeout (a TimeoutError) for
            # its wait running out and rewraps it: give the caller the precise one
            if isinstance(exc.__cause__, OperationTimeout):
                raise exc.__cause__ from None
            raise

    async def _on_atp(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the atp loop, hopping there when called from another loop."""
        if asyncio.get_running_loop() is self._atp.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._atp.loop))

    def _timed_out(self, what: str, timeout: float) -> OperationTimeout:
        return OperationTimeout(f"{self.handle.name}:{self.name}: {what}: nothing within "
                                f"{timeout:g} s")

    # --- the async core (atp loop thread only) ----------------------------------------

    async def _open(self, timeout: float) -> None:
        async with self._open_lock:  # two concurrent opens would fight over the port
            await self._open_locked(timeout)

    async def _open_locked(self, timeout: float) -> None:
        if self._state is SerialState.OPEN:
            return
        if self._stream is not None:  # LOST: release the dead stream before a new one
            await self._close(timeout)
        loop = asyncio.get_running_loop()
        attempt = loop.run_in_executor(self._atp.executor, self._open_stream, timeout)
        try:
            # shield: a timeout must not orphan a stream that opens a moment later
            stream = await asyncio.wait_for(asyncio.shield(attempt), timeout)
        except BaseException as exc:
            attempt.add_done_callback(self._discard_late_stream)
            if isinstance(exc, TimeoutError):
                raise self._timed_out("open", timeout) from None
            raise
        self._buffer = ReceiveBuffer(self.buffer_limit)
        self._stream, self._events = stream, _READ_EVENTS
        stream.eventAddCallback(_READ_EVENTS, self._on_event, None)
        self._state = SerialState.OPEN
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

    async def _send(self, data: bytes | bytearray | memoryview, timeout: float) -> None:
        view = memoryview(data).cast("B")
        try:
            async with asyncio.timeout(timeout):
                await self._send_locked(view)
        except TimeoutError as exc:
            if isinstance(exc, OperationTimeout):
                raise
            raise self._timed_out(f"send of {len(view)} bytes", timeout) from None

    async def _send_locked(self, view: memoryview) -> None:
        self._check_usable()
        async with self._write_lock:
            offset = 0
            while offset < len(view):
                self._check_usable()
                try:
                    sent = self._stream.send(bytes(view[offset:offset + CHUNK]))
                except libvirt.libvirtError as exc:
                    self._lose(self._failure(exc))
                    self._buffer.raise_if_closed()
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

    async def _read(self, take: Callable[[], bytes | None], timeout: float, what: str) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                self._check_usable(reading=True)
                async with self._read_lock:
                    while True:
                        self._check_usable(reading=True)
                        out = take()
                        if out is not None:
                            self._set_interest()  # below the limit again: resume reading
                            return out
                        self._data_ready.clear()
                        await self._data_ready.wait()
        except TimeoutError as exc:
            if isinstance(exc, OperationTimeout):
                raise
            raise self._timed_out(what, timeout) from None

    def _check_usable(self, *, reading: bool = False) -> None:
        if self._state is SerialState.IDLE:
            raise ChannelClosed(f"{self.handle.name}:{self.name} is not open",
                                hint="call open() first, or use `with VirtioSerial(...)`")
        if self._state is SerialState.CLOSED:
            raise ChannelClosed(f"{self.handle.name}:{self.name} was closed",
                                hint="open() it again")
        if self._state is SerialState.LOST and not reading:
            self._buffer.raise_if_closed()  # readers still get the buffered bytes first

    def _on_event(self, stream: Any, events: int, _opaque: object) -> None:
        """libvirt's stream callback, on the atp loop; it must never raise into libvirt."""
        try:
            if stream is not self._stream:
                return
            if events & _READ_EVENTS:
                self._drain(stream)
            if events & libvirt.VIR_STREAM_EVENT_WRITABLE:
                self._wake_writer()
            self._set_interest()
        except Exception:
            self.log.exception("stream event handler failed")

    def _drain(self, stream: Any) -> None:
        got = 0
        while self._buffer.wants_data:
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
            self._buffer.feed(data)
            got += len(data)
        if got:
            self._data_ready.set()

    def _failure(self, exc: libvirt.libvirtError) -> TransportError:
        """A failed stream call: HostUnavailable when the connection died, else ChannelClosed."""
        text = libvirt_error_text(exc)
        conn = self._stream.connect() if self._stream is not None else None
        try:
            alive = conn is not None and conn.isAlive() == 1  # local check, no round trip
        except libvirt.libvirtError:
            alive = False
        err: TransportError
        if not alive:
            self.handle.host.mark_lost(text, conn)
            err = HostUnavailable(f"{self.handle.name}:{self.name}: host connection lost "
                                  f"({text})", hint="reopen the port once the host is back")
        else:
            err = ChannelClosed(
                f"{self.handle.name}:{self.name}: stream failed ({text})",
                hint="another client may have taken the port with force=True; reopen it")
        err.__cause__ = exc
        return err

    def _lose(self, reason: TransportError) -> None:
        if self._state is not SerialState.OPEN:
            return
        self._state = SerialState.LOST
        self._buffer.close(reason)
        self.log.info("lost: %s", reason.message)
        self._wake_all()
        self._set_interest()

    def _wake_all(self) -> None:
        self._data_ready.set()
        self._wake_writer()  # the writer rechecks the state and raises

    def _wake_writer(self) -> None:
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
            if self._buffer.wants_data:
                wanted |= _READ_EVENTS
            if self._writable is not None:
                wanted |= libvirt.VIR_STREAM_EVENT_WRITABLE
        if wanted != self._events:
            stream.eventUpdateCallback(wanted)
            self._events = wanted

    async def _close(self, timeout: float) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            if self._state is not SerialState.IDLE:
                self._state = SerialState.CLOSED
            return
        eof = self._state is SerialState.LOST and isinstance(self._buffer.reason, ChannelClosed)
        self._state = SerialState.CLOSED
        self._buffer.close(ChannelClosed(f"{self.handle.name}:{self.name} was closed"))
        self._buffer.clear()
        self._wake_all()
        with contextlib.suppress(libvirt.libvirtError):
            stream.eventRemoveCallback()
        # libvirt-python's __del__ would remove the callback once more (an error, and
        # possibly off the loop thread): it checks for this attribute
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


def _end_stream(stream: Any, eof: bool) -> None:
    """Executor thread: finish after EOF (the polite end), abort otherwise; both are RPCs that
    fail harmlessly on a stream the peer already broke."""
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


def _make_client(handle: DomainHandle, protocol: ProtocolType) -> VirtioSerial:
    if not protocol.port:
        raise ValueError(f"{protocol} names no virtio-serial port")
    return VirtioSerial(handle, protocol.port)


register_protocol(ProtocolKind.VIRTIO_SERIAL, _make_client)
