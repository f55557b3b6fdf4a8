"""One Spice channel over asyncio: link it, then a reader task that always drains.

The adapter is thin (aioquic-style): bytes from the socket go into the sans-I/O objects of
``spice/proto``, their events go to ``on_event``, and whatever they queue for the server is
written back at once. The reader never stops reading while the channel is open: the server
drops a client that lets its socket back up (DESIGN §7).

Example (on the atp loop)::

    channel = SpiceChannel(SpiceEndpoint("127.0.0.1", port=5901), ChannelType.MAIN)
    await channel.open(timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable

from atp_notebook.errors import (
    ChannelClosed,
    OperationTimeout,
    RemoteProtocolError,
    TransportError,
)
from atp_notebook.spice.aio.connect import open_stream
from atp_notebook.spice.aio.tcp_info import TcpInfo, read_tcp_info
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto import (
    ChannelProtocol,
    ConnectionClosed,
    LinkFailed,
    LinkHandshake,
    LinkSucceeded,
    NeedSecured,
)
from atp_notebook.spice.proto.channel import ChannelState
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ChannelType

READ_CHUNK = 256 * 1024
LINK_TIMEOUT_S = 10.0
# how long a close waits for the server's first message on a channel just linked: spice-server
# waits 30 s (COMMON_CLIENT_TIMEOUT) for a display channel's DISPLAY_INIT, then drops it
SERVER_INIT_WAIT_S = 35.0
# a message the server started must be complete within this (a trickling server would
# otherwise hold the channel, and the bytes buffered so far, for ever)
MESSAGE_TIMEOUT_S = 30.0


class ChannelStatus(enum.StrEnum):
    IDLE = "idle"
    LINKING = "linking"
    OPEN = "open"
    CLOSED = "closed"  # by us
    FAILED = "failed"  # by the server or the network

    def describe(self) -> str:
        """The status in words, for reprs and tables."""
        return "closed by the server" if self is ChannelStatus.FAILED else str(self)


ProtocolFactory = Callable[[LinkSucceeded], ChannelProtocol]
EventSink = Callable[["SpiceChannel", ChannelEvent], None]
StatusSink = Callable[["SpiceChannel"], None]
BatchSink = Callable[["SpiceChannel"], None]


class SpiceChannel:
    """One channel (type, id) of one VM: its own TCP or TLS connection."""

    def __init__(
        self,
        endpoint: SpiceEndpoint,
        channel_type: ChannelType,
        channel_id: int = 0,
        *,
        connection_id: int = 0,
        channel_caps: tuple[int, ...] = (),
        protocol_factory: ProtocolFactory | None = None,
        on_event: EventSink | None = None,
        on_ended: StatusSink | None = None,
        after_batch: BatchSink | None = None,
        message_timeout: float = MESSAGE_TIMEOUT_S,
        vm_id: str = "vm",
    ) -> None:
        self.endpoint = endpoint
        self.channel_type = channel_type
        self.channel_id = channel_id
        self.connection_id = connection_id
        self.channel_caps = channel_caps
        self.status = ChannelStatus.IDLE
        self.secure = False
        self.error: BaseException | None = None
        self.protocol: ChannelProtocol | None = None
        self.link_seconds: float | None = None
        self._factory = protocol_factory or ChannelProtocol.from_link
        self._on_event = on_event
        self._on_ended = on_ended  # told once when the server or the network ends an open channel
        # told after each read's events went to on_event (a display draws them, then acks)
        self._after_batch = after_batch
        self.message_timeout = message_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._established = asyncio.Event()  # the server's first message arrived
        self._deferred_close: asyncio.Future[None] | None = None  # _close_in_background
        self._opening: asyncio.Future[None] | None = None  # the link under way
        # cleared by pause_reading(): a port channel's backpressure (vmc channels have no
        # acks; TCP is their flow control)
        self._may_read = asyncio.Event()
        self._may_read.set()
        self.log = logging.getLogger(f"atp.spice.{vm_id}.{channel_type.name.lower()}"
                                     f"{channel_id or ''}")

    def __repr__(self) -> str:
        return (f"<SpiceChannel {self.channel_type.name}:{self.channel_id} "
                f"{self.status.describe()}>")

    # --- opening ----------------------------------------------------------------------

    async def open(self, timeout: float = LINK_TIMEOUT_S) -> None:
        """Connect and link; NEED_SECURED moves this channel to the TLS port. Returns once
        the server has sent its first message on the channel (see :meth:`_opening_work`).

        A caller that gives up (cancels) gets its CancelledError at once, but the link goes
        on in the background and the channel is closed only when that is safe.
        """
        if self.status is ChannelStatus.OPEN:
            return
        work = self._opening
        if work is None or work.done():
            work = self._opening = asyncio.ensure_future(self._opening_work(timeout))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(self._close_after_open)
            raise

    def _close_after_open(self, work: asyncio.Future[None]) -> None:
        if not work.cancelled() and work.exception() is None:
            self._close_in_background()  # linked for nobody

    async def _opening_work(self, timeout: float) -> None:
        """Link, then wait for the server's first message on this channel (SET_ACK).

        spice-server 0.15.1 (to 0.16.0) reads a new display channel in a loop until
        DISPLAY_INIT arrives, holding no reference of its own: a socket closed inside that
        loop frees the channel client under it, the SPICE Worker segfaults and QEMU dies
        (dcc.cpp ``display_channel_client_wait_for_init``; reproduced here by ending a
        session while its display channel linked). Its first message leaves only after
        that loop, so once it is here nothing we close can hit the window; until then
        neither a cancelled caller nor :meth:`close` closes the socket. The protocol sends
        what the server waits for (DISPLAY_INIT) right after the link.
        """
        self.status = ChannelStatus.LINKING
        self._established.clear()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._connect_and_link(), timeout)
        except TimeoutError:
            await self._drop()
            self.status = ChannelStatus.FAILED
            raise OperationTimeout(f"{self!r}: no link within {timeout:g} s") from None
        except BaseException:
            await self._drop()
            self.status = ChannelStatus.FAILED
            raise
        self.link_seconds = time.perf_counter() - started
        self.status = ChannelStatus.OPEN
        self._closed.clear()
        self._task = asyncio.ensure_future(self._read_forever())
        if not await self._first_message(timeout):
            self._close_in_background()
            self.status = ChannelStatus.FAILED
            raise OperationTimeout(f"{self!r}: linked, but the server sent nothing within "
                                   f"{timeout:g} s")
        if not self._established.is_set():
            raise ChannelClosed(f"{self!r}: the server closed the channel right after the "
                                "link" + (f": {self.error}" if self.error else ""))

    async def _first_message(self, timeout: float) -> bool:
        """Until the first message or the server's close; False when ``timeout`` passed."""
        established = asyncio.ensure_future(self._established.wait())
        ended = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait([established, ended], timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            established.cancel()
            ended.cancel()
        return bool(done)

    def _close_in_background(self) -> None:
        """Close without making the caller wait: :meth:`close` waits until that is safe."""
        self._deferred_close = asyncio.ensure_future(self.close())

    async def _connect_and_link(self) -> None:
        target = self.endpoint
        use_tls = target.tls_port is not None and (target.port is None or target.prefer_tls)
        while True:
            port = target.tls_port if use_tls else target.port
            if port is None:
                raise TransportError(f"{self!r}: the server asks for TLS and no tls_port is "
                                     "configured", hint="set tls_port for this VM")
            self._reader, self._writer = await open_stream(
                target.host, port, target.tls if use_tls else None)
            self.secure = use_tls
            try:
                outcome = await self._link()
            except (ConnectionError, OSError) as exc:
                # a server busy dropping the previous session of this VM may reset a new
                # link (seen on rapid reconnects): a transport error, not a bare OSError
                raise TransportError(f"{self!r}: the server reset the connection during the "
                                     f"link ({exc.strerror or exc})",
                                     hint="try again: the server may still be closing an "
                                          "earlier session") from exc
            if isinstance(outcome, NeedSecured):
                if use_tls:
                    raise RemoteProtocolError(f"{self!r}: NEED_SECURED on the TLS port")
                self.log.info("server wants TLS for this channel: relinking on the TLS port")
                await self._drop()
                use_tls = True
                continue
            return

    async def _link(self) -> LinkSucceeded | NeedSecured:
        assert self._reader is not None and self._writer is not None
        link = LinkHandshake(self.channel_type, self.channel_id, self.connection_id,
                             channel_caps=self.channel_caps, password=self.endpoint.ticket,
                             sasl_credentials=self.endpoint.sasl)
        self._writer.write(link.initiate())
        while True:
            data = await self._reader.read(READ_CHUNK)
            for event in link.receive_data(data):
                if isinstance(event, LinkSucceeded):
                    self.protocol = self._factory(event)
                    trailing, eof = link.trailing_data
                    if trailing:
                        self._deliver(self.protocol.receive_data(trailing))
                        self._batch_done()
                    if eof:
                        self._deliver(self.protocol.receive_data(b""))
                    await self._flush()
                    return event
                if isinstance(event, NeedSecured):
                    return event
                if isinstance(event, LinkFailed):
                    raise event.exception()
            out = link.data_to_send()
            if out:
                self._writer.write(out)
                await self._writer.drain()

    # --- running ----------------------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._reader is not None and self.protocol is not None
        protocol = self.protocol
        loop = asyncio.get_running_loop()
        message_deadline: float | None = None  # when the message under way must be complete
        try:
            while True:
                if not self._may_read.is_set():
                    message_deadline = await self._paused(message_deadline)
                if message_deadline is None:
                    data = await self._reader.read(READ_CHUNK)
                else:
                    data = await self._read_until(message_deadline - loop.time())
                events = protocol.receive_data(data)
                if not protocol.partial_bytes:
                    message_deadline = None
                elif message_deadline is None:
                    message_deadline = loop.time() + self.message_timeout
                closed = not data or any(isinstance(e, ConnectionClosed) for e in events)
                if not closed:
                    await self._flush()  # acks and pongs go out before anything else happens
                self._deliver(events)
                self._batch_done()
                if closed:
                    raise ChannelClosed(f"{self!r}: the server closed the channel")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            ended = self.status is ChannelStatus.OPEN
            if ended:
                # the VM's connection tells the user, once for all its channels
                self.log.debug("channel ended: %s", exc)
                self.status = ChannelStatus.FAILED
            await self._drop()
            self._closed.set()
            if ended and self._on_ended is not None:
                self._on_ended(self)

    async def _paused(self, message_deadline: float | None) -> float | None:
        """Wait while reading is paused; the deadline of a message under way starts again
        (the pause was ours, not the server's)."""
        await self._may_read.wait()
        if message_deadline is None:
            return None
        return asyncio.get_running_loop().time() + self.message_timeout

    async def _read_until(self, left: float) -> bytes:
        assert self._reader is not None and self.protocol is not None
        try:
            # not wait_for: on 3.11 it returns a read that completes as the task is
            # cancelled and drops the cancel, and close() then waits for ever
            async with asyncio.timeout(max(left, 0.0)):
                return await self._reader.read(READ_CHUNK)
        except TimeoutError:
            raise RemoteProtocolError(
                f"{self.channel_type.name.lower()}:{self.channel_id}: the server sent "
                f"{self.protocol.partial_bytes} bytes of a message "
                f"and not the rest within {self.message_timeout:g} s") from None

    def _batch_done(self) -> None:
        if self._after_batch is not None:
            try:
                self._after_batch(self)
            except Exception:  # a consumer's bug must not kill the reader
                self.log.exception("batch handler failed")

    def _deliver(self, events: list[ChannelEvent]) -> None:
        if any(not isinstance(e, ConnectionClosed) for e in events):
            self._established.set()
        if self._on_event is None:
            return
        for event in events:
            try:
                self._on_event(self, event)
            except Exception:  # a consumer's bug must not kill the reader
                self.log.exception("event handler failed")

    def _write_queued(self) -> bool:
        """Hand what the protocol queued to the socket; whether there was anything."""
        if self.protocol is None or self._writer is None:
            return False
        data = self.protocol.data_to_send()
        if data:
            self._writer.write(data)
        return bool(data)

    async def _flush(self) -> None:
        if self._write_queued() and self._writer is not None:
            await self._writer.drain()

    def ensure_open(self) -> None:
        """Raise ChannelClosed unless the channel is open (call before queueing commands: a
        channel closed from this side, or never opened, has no protocol state to refuse them;
        the protocol itself refuses them once the server has closed the connection)."""
        protocol = self.protocol
        if (self.status is not ChannelStatus.OPEN or protocol is None
                or protocol.state is not ChannelState.OPEN):
            raise ChannelClosed(f"{self!r} is not open" + (f": {self.error}" if self.error
                                                             else ""),
                                hint="open it again: the other channels are unaffected")

    async def send(self) -> None:
        """Write what the protocol queued (call after using its builders)."""
        self.ensure_open()
        try:
            await self._flush()
        except (ConnectionError, OSError) as exc:
            raise ChannelClosed(f"{self!r}: {exc}") from exc

    def write_pending(self) -> None:
        """Write what the protocol queued (small replies such as ACKs) without waiting for
        the socket to drain, if the channel is still open; a broken socket is the reader's
        to report (it sees it too)."""
        if self.status is ChannelStatus.OPEN:
            with contextlib.suppress(ConnectionError, OSError):
                self._write_queued()

    def pause_reading(self) -> None:
        """Stop reading the socket after the current batch, until :meth:`resume_reading`:
        backpressure for a consumer that is behind. Only for channels without acks (a
        port): the server's pings wait too, and a display would stall its server."""
        self._may_read.clear()

    def resume_reading(self) -> None:
        self._may_read.set()

    async def abort(self, error: BaseException) -> None:
        """End an open channel because of ``error`` (data it could not handle): the channel
        is FAILED with that error and ``on_ended`` hears it, as when the server ends it."""
        if self.status is not ChannelStatus.OPEN:
            return
        self.error = error
        self.status = ChannelStatus.FAILED
        self.log.debug("channel aborted: %s", error)
        await self._end_reader()
        if self._on_ended is not None:
            self._on_ended(self)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def tcp_info(self) -> TcpInfo | None:
        """The kernel's smoothed RTT (and retransmissions) of this channel's own TCP
        connection, TLS or not; None unless the channel is open. Spice has no ping the
        client could send and time, so this is the channel's round trip::

            channel.tcp_info().rtt_ms     # e.g. 0.031 on loopback
        """
        if self.status is not ChannelStatus.OPEN or self._writer is None:
            return None
        return read_tcp_info(self._writer.get_extra_info("socket"))

    # --- closing ----------------------------------------------------------------------

    async def close(self) -> None:
        """Close this channel only; idempotent. A channel linked moments ago is closed once
        the server has made its side of it (see :meth:`_opening_work`)."""
        work = self._opening
        if work is not None and not work.done() and work is not asyncio.current_task():
            await asyncio.wait([work])  # a link under way ends first (bounded by its timeout)
        if self._task is not None and not self._established.is_set():
            await self._first_message(SERVER_INIT_WAIT_S)
        if self.status in (ChannelStatus.OPEN, ChannelStatus.LINKING):
            self.status = ChannelStatus.CLOSED
        await self._end_reader()

    async def _end_reader(self) -> None:
        """Stop the reader task (unless it is the caller), close the socket and wake
        :meth:`wait_closed`."""
        task, self._task = self._task, None
        try:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                # wait() raises only if the caller is cancelled: that must reach the caller
                # (awaiting the task would turn the reader's own CancelledError into ours)
                await asyncio.wait([task])
                if not task.cancelled() and task.exception() is not None:
                    self.log.debug("reader ended with %r", task.exception())
        finally:
            await self._drop()
            self._closed.set()

    async def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
