"""The reading side of a byte channel on the atp loop: a bounded buffer that readers wait on.

A Spice port (:mod:`atp_notebook.spice.port`) and a virtio-serial port
(:mod:`atp_notebook.virt.virtio_serial`) differ in what brings their bytes (a Spice channel's
PORT_DATA, a libvirt stream's READABLE callback) and in how they stop it when the buffer is
full, not in how they are read. :class:`ByteStream` holds the bytes
(:class:`~atp_notebook.virt.receive_buffer.ReceiveBuffer`, bounded: its ``wants_data`` is the
backpressure switch) and wakes the readers; :class:`ByteStreamReads` gives a class
``recv`` / ``recv_exactly`` / ``readline``, each one coroutine on the atp loop with its
blocking and ``_async`` forms (:mod:`atp_notebook.bridge`), from three hooks: where the
stream is, how to get it ready for a read, what to do once bytes were taken.

After :meth:`ByteStream.end` (the source ended) waiting readers get the buffered bytes, then
the reason; :meth:`ByteStream.discard` (closed by us) drops the unread bytes at once.

Example::

    class Echo(ByteStreamReads):
        def __init__(self) -> None:
            self._incoming = ByteStream(limit=1 << 20)
        def _stream_label(self) -> str: return "echo"
        async def _reader_ready(self, timeout: float) -> None: pass
        def _consumed(self) -> None: pass        # resume the source if it was paused

    echo = Echo()
    echo._incoming.feed(b"ping\\n")               # the source, on the atp loop
    echo.readline(timeout=5)                       # b"ping\\n", from any thread
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from atp_notebook.bridge import atp_async, atp_blocking, within
from atp_notebook.errors import TransportError
from atp_notebook.virt.receive_buffer import BUFFER_LIMIT, ReceiveBuffer

__all__ = ["BUFFER_LIMIT", "IO_TIMEOUT_S", "MAX_LINE", "ByteStream", "ByteStreamReads"]

IO_TIMEOUT_S = 10.0
MAX_LINE = 64 * 1024

# takes what a read wants from the buffer: None while it needs more bytes
Take = Callable[[ReceiveBuffer], bytes | None]


class ByteStream:
    """Bytes received and not read yet (at most about ``limit``: the owner stops its source
    while :attr:`wants_data` is False), and the readers waiting for them. atp loop only.

    Example::

        stream = ByteStream(limit=10)
        stream.feed(b"one\\ntwo")
        await stream.take(lambda b: b.read_line(100))   # b"one\\n"
        stream.end(ChannelClosed("EOF"))
        await stream.take(lambda b: b.read_line(100))   # b"two", then ChannelClosed
    """

    def __init__(self, limit: int = BUFFER_LIMIT) -> None:
        self.limit = limit  # a new limit counts from the next restart()
        self._buffer = ReceiveBuffer(limit)
        # asyncio primitives bind to a loop on first use: creating them here is safe
        self._arrived = asyncio.Event()  # bytes, the end, or anything else to recheck
        self.read_lock = asyncio.Lock()  # one reader at a time: reads never interleave

    def __len__(self) -> int:
        return len(self._buffer)

    @property
    def wants_data(self) -> bool:
        """True while not ended and below the limit: the source may deliver more."""
        return self._buffer.wants_data

    @property
    def ended(self) -> bool:
        return self._buffer.closed

    @property
    def reason(self) -> TransportError | None:
        """Why the input ended (None while it goes on)."""
        return self._buffer.reason

    def feed(self, data: bytes) -> None:
        """Bytes from the source; an ended stream ignores them (a late delivery)."""
        if data and not self._buffer.closed:
            self._buffer.feed(data)
            self._arrived.set()

    def end(self, reason: TransportError) -> None:
        """The source ended: readers get the unread bytes, then ``reason`` (the first wins)."""
        self._buffer.close(reason)
        self._arrived.set()

    def discard(self, reason: TransportError) -> None:
        """Closed by us: the unread bytes are dropped and readers get ``reason`` now."""
        self._buffer = ReceiveBuffer(self.limit)
        self.end(reason)

    def restart(self, *, keep_unread: bool = False) -> None:
        """A new source (opened again): an empty open buffer, or one that starts with the
        bytes the old source left unread (``keep_unread``)."""
        unread = self._buffer.read(len(self._buffer)) if keep_unread and self._buffer \
            else None
        self._buffer = ReceiveBuffer(self.limit)
        if unread:
            self._buffer.feed(unread)
        self._arrived.set()

    def wake(self) -> None:
        """Make the readers look again (their owner's state changed)."""
        self._arrived.set()

    def raise_if_ended(self) -> None:
        """Raise (a copy of) the end's reason, if the input ended."""
        self._buffer.raise_if_closed()

    async def take(self, take: Take) -> bytes:
        """What ``take`` gets from the buffer, waiting for bytes until it gets something
        (or raises: after the end, once the bytes it can use are gone)."""
        while True:
            out = take(self._buffer)
            if out is not None:
                return out
            self._arrived.clear()  # no await since take(): nothing arrived in between
            await self._arrived.wait()


class ByteStreamReads:
    """``recv``, ``recv_exactly`` and ``readline`` (blocking and ``_async``) over the
    class's ``_incoming`` :class:`ByteStream`; the class gives the hooks below."""

    _incoming: ByteStream

    @property
    def buffer_limit(self) -> int:
        """Unread bytes above which the source is paused; a change counts from the next
        open."""
        return self._incoming.limit

    @buffer_limit.setter
    def buffer_limit(self, limit: int) -> None:
        self._incoming.limit = limit

    def _stream_label(self) -> str:
        """What a timeout names: ``"atp-vm1:com.atp.test.0"``."""
        raise NotImplementedError

    async def _reader_ready(self, timeout: float) -> None:
        """Before a read (the read lock held): open the source, or raise if it cannot be
        read (closed, never opened)."""
        raise NotImplementedError

    def _consumed(self) -> None:
        """After a read took bytes: resume a source paused by a full buffer."""
        raise NotImplementedError

    def _end_told(self) -> None:
        """A read has just raised the end's reason (a source may then open again)."""

    async def _recv(self, max_bytes: int = 65536, timeout: float = IO_TIMEOUT_S) -> bytes:
        """What has arrived, up to ``max_bytes``; waits for at least one byte.
        Example: ``port.recv(timeout=2)``."""
        return await self._read(lambda b: b.read(max_bytes), timeout, "recv")

    async def _recv_exactly(self, n: int, timeout: float = IO_TIMEOUT_S) -> bytes:
        """Exactly ``n`` bytes. Example: ``port.recv_exactly(4, timeout=5)``."""
        return await self._read(lambda b: b.read_exactly(n), timeout, f"recv_exactly({n})")

    async def _readline(self, timeout: float = IO_TIMEOUT_S, max_line: int = MAX_LINE) -> bytes:
        """One line, b"\\n" included. Example: ``port.readline(timeout=5)``."""
        return await self._read(lambda b: b.read_line(max_line), timeout, "readline")

    async def _read(self, take: Take, timeout: float, what: str) -> bytes:
        stream = self._incoming
        async with within(timeout, f"{self._stream_label()}: {what}", "nothing"), \
                stream.read_lock:
            await self._reader_ready(timeout)
            try:
                out = await stream.take(take)
            except TransportError:
                if stream.ended:
                    self._end_told()
                raise
            self._consumed()
            return out

    recv = atp_blocking(_recv)
    recv_async = atp_async(_recv)
    recv_exactly = atp_blocking(_recv_exactly)
    recv_exactly_async = atp_async(_recv_exactly)
    readline = atp_blocking(_readline)
    readline_async = atp_async(_readline)
