"""The WebDAV multiplex carried by the Spice port ``org.spice-space.webdav.0`` (sans-I/O).

The guest's ``spice-webdavd`` accepts TCP connections on its loopback (port 9843) and
forwards every one over that single virtio port; the Spice client runs the WebDAV server.
spice-server carries that port on a channel of type WEBDAV with the port channel's
messages (:class:`WebdavChannelProtocol`). Both directions of its data are one stream of
frames (spice-gtk ``channel-webdav.c`` and phodav ``spice-webdavd.c``, read for the layout
only)::

    int64 client id (LE) | uint16 size (LE) | size bytes of data

- The id names one guest TCP connection. spice-webdavd derives it from a pointer (a
  sign-extended 32-bit value), so any int64, negative ones included, is a valid id.
- The first frame of an id the client does not know opens a connection for it.
- A frame of size 0 ends the connection: from the guest, its TCP peer closed (the client
  then drops the connection); from the client, the server side is done. spice-webdavd does
  not close the guest's socket on it, so an HTTP client still reads a response to its end
  by its Content-Length; a later request on the same socket arrives as a new connection
  with the old id, which is also what spice-gtk does.
- Frames of different ids interleave freely; one frame is never split by another.
- When the guest closes the port (spice-webdavd exits) every connection is gone and the
  next frame starts a fresh stream: :meth:`WebdavMux.reset`.

What is hostile here is volume, not syntax (every header is valid): more simultaneous
connections than ``max_clients`` are refused one by one (a :class:`ClientRefused` event
carrying a RemoteProtocolError, and a size-0 frame queued for the guest) while the others
go on. The receive buffer holds at most one partial frame beyond what was just fed.

Example::

    mux = WebdavMux()
    mux.receive_data(b"\\x07" + bytes(7) + b"\\x03\\x00GET")
    # [ClientOpened(client_id=7), ClientData(client_id=7, data=b'GET')]
    mux.send_data(7, b"HTTP/1.1 200 OK\\r\\n...")
    mux.close_client(7)
    port.send(mux.data_to_send())
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from atp_notebook.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.port import PortProtocol

WEBDAV_PORT_NAME = "org.spice-space.webdav.0"
FRAME_HEAD = struct.Struct("<qH")  # client id, data size
MAX_FRAME_DATA = 0xFFFF  # the size is a uint16
# spice-gtk has no limit; a guest opening hundreds of connections at once is not a WebDAV
# client (gvfs and davfs2 keep a handful)
DEFAULT_MAX_CLIENTS = 32


class WebdavChannelProtocol(PortProtocol):
    """The channel carrying the multiplex: spice.proto ``channel WebDAVChannel :
    PortChannel``. spice-server gives the port named :data:`WEBDAV_PORT_NAME` a channel type
    of its own (WEBDAV, 11; reds.cpp checks the name) instead of listing it as a PORT; its
    messages are the port's: PORT_INIT, PORT_EVENT and SPICEVMC_DATA."""

    channel_kind = ChannelType.WEBDAV


@dataclass(frozen=True, slots=True)
class ClientOpened:
    """A new guest connection (its first data follows as :class:`ClientData`)."""

    client_id: int


@dataclass(frozen=True, slots=True)
class ClientData:
    """Bytes the guest connection sent, in order."""

    client_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientClosed:
    """The guest connection closed (a size-0 frame), or the whole stream was reset."""

    client_id: int


@dataclass(frozen=True, slots=True)
class ClientRefused:
    """A connection turned away (a size-0 frame is queued for it); the others go on."""

    client_id: int
    error: RemoteProtocolError


MuxEvent = ClientOpened | ClientData | ClientClosed | ClientRefused


def frame(client_id: int, data: bytes | bytearray | memoryview = b"") -> bytes:
    """One frame: ``data`` (at most :data:`MAX_FRAME_DATA` bytes) for ``client_id``."""
    if len(data) > MAX_FRAME_DATA:
        raise LocalProtocolError(f"a webdav frame holds at most {MAX_FRAME_DATA} bytes, "
                                 f"not {len(data)}")
    return FRAME_HEAD.pack(client_id, len(data)) + bytes(data)


class WebdavMux:
    """Both directions of the multiplex, as bytes in and events / bytes out.

    ``clients`` are the open connection ids. Sending to an id that is not open is a
    LocalProtocolError (our bug), never something the guest can cause.
    """

    def __init__(self, max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        if max_clients < 1:
            raise InvalidArgument(f"max_clients must be at least 1, not {max_clients}")
        self.max_clients = max_clients
        self._clients: set[int] = set()
        self._in = bytearray()
        self._out = bytearray()
        self.refused = 0  # connections turned away since the start

    @property
    def clients(self) -> frozenset[int]:
        return frozenset(self._clients)

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[MuxEvent]:
        """Feed bytes from the port; returns the events of every complete frame (a partial
        frame waits for the rest)."""
        self._in += data
        events: list[MuxEvent] = []
        offset = 0
        buffered = len(self._in)
        while buffered - offset >= FRAME_HEAD.size:
            client_id, size = FRAME_HEAD.unpack_from(self._in, offset)
            end = offset + FRAME_HEAD.size + size
            if end > buffered:
                break
            payload = bytes(self._in[offset + FRAME_HEAD.size:end])
            offset = end
            self._on_frame(client_id, payload, events)
        del self._in[:offset]  # one move per feed, not per frame
        return events

    def send_data(self, client_id: int, data: bytes | bytearray | memoryview) -> int:
        """Queue ``data`` for an open connection in frames of at most
        :data:`MAX_FRAME_DATA` bytes; returns the number of frames (0 for empty data: a
        size-0 frame would end the connection)."""
        self._check_open(client_id)
        view = memoryview(data).cast("B")
        count = 0
        for start in range(0, len(view), MAX_FRAME_DATA):
            self._out += frame(client_id, view[start:start + MAX_FRAME_DATA])
            count += 1
        return count

    def close_client(self, client_id: int) -> None:
        """End an open connection from our side: a size-0 frame, and the id is free."""
        self._check_open(client_id)
        self._clients.discard(client_id)
        self._out += frame(client_id)

    def reset(self) -> list[ClientClosed]:
        """The guest closed the port or the channel ended: every connection is gone, a
        partial frame and unsent frames are dropped. Returns the connections closed."""
        closed = [ClientClosed(c) for c in sorted(self._clients)]
        self._clients.clear()
        self._in.clear()
        self._out.clear()
        return closed

    def data_to_send(self) -> bytes:
        """The frames queued since the last call, for the port."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def partial(self) -> int:
        """Bytes of an incomplete frame waiting for the rest."""
        return len(self._in)

    def _on_frame(self, client_id: int, payload: bytes, events: list[MuxEvent]) -> None:
        if not payload:
            # the guest closed it; an id we do not know was closed by us first (a race)
            if client_id in self._clients:
                self._clients.discard(client_id)
                events.append(ClientClosed(client_id))
            return
        if client_id not in self._clients:
            if len(self._clients) >= self.max_clients:
                self.refused += 1
                self._out += frame(client_id)
                events.append(ClientRefused(client_id, RemoteProtocolError(
                    f"webdav: guest connection {client_id} refused: {len(self._clients)} "
                    f"are open already, the limit is {self.max_clients}")))
                return
            self._clients.add(client_id)
            events.append(ClientOpened(client_id))
        events.append(ClientData(client_id, payload))

    def _check_open(self, client_id: int) -> None:
        if client_id not in self._clients:
            raise LocalProtocolError(f"webdav: connection {client_id} is not open")
