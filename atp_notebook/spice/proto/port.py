"""The port channel (spice.proto ``channel PortChannel : SpicevmcChannel``): a byte pipe to
one named QEMU ``spiceport`` chardev, in the lab a virtio-serial port of the guest.

What the server sends (spice-server 0.15 ``spicevmc.cpp``, checked against the lab):

- PORT_INIT (201) first, right after the link, instead of SET_ACK: a vmc channel handles no
  acks, so there is no SET_ACK, no ACK and no window. Body: u32 name_size, u32 offset of the
  name (a pointer, from the body's start), u8 opened, then the name bytes, NUL included
  (``@zero_terminated``). ``opened`` says whether the guest side has the port open now.
- PORT_EVENT (202): u8 event, OPENED (0) / CLOSED (1) as the guest opens and closes its
  side, BREAK (2) for a chardev break.
- SPICEVMC_DATA (101): the body is the data, at most 64 KiB + 32 (the server reads its
  chardev into a buffer of that size and sends each read as one message).
- SPICEVMC_COMPRESSED_DATA (102) only to a client announcing the DATA_COMPRESS_LZ4
  spicevmc cap; this client does not, so one arriving is a protocol error.

What the client sends: SPICEVMC_DATA (101) with the bytes for the guest, and
PORT_EVENT (201, u8) OPENED / CLOSED, which QEMU hands its chardev frontend (a
virtio-serial port ignores it). The server takes each data message into one chardev write
buffer of the message's size; we send at most :data:`MAX_DATA` per message, as it does.

The only flow control is TCP's: the server stops reading the chardev (so the guest's writes
block) once 1 MiB is queued for a client that does not read its socket, and stops reading
the socket while its chardev does not take what the client sent.

Example::

    port = PortProtocol.from_link(linked)
    port.receive_data(chunk)      # [PortInit(name='com.atp.echo', opened=True)]
    port.send_data(b"ping\\n")
    port.receive_data(chunk)      # [PortData(data=b'ping\\n')]
    writer.write(port.data_to_send())
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent, unpack_body
from atp_notebook.spice.proto.constants import ChannelType, enum_or_int
from atp_notebook.spice.proto.framing import RawMessage

# spice.proto SpicevmcChannel / PortChannel message types (both directions)
SPICEVMC_DATA = 101
SPICEVMC_COMPRESSED_DATA = 102
PORT_INIT = 201  # server
PORT_EVENT = 202  # server (after port init)
MSGC_PORT_EVENT = 201  # client
# spice-protocol enums.h: SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4 (we never announce it)
SPICEVMC_CAP_DATA_COMPRESS_LZ4 = 0

PORT_INIT_HEAD = struct.Struct("<IIB")  # name_size, name offset (pointer), opened
PORT_EVENT_BODY = struct.Struct("<B")  # event
# the server's chardev read buffer (spicevmc.cpp BUF_SIZE): the largest data message it sends
SERVER_MAX_DATA = 64 * 1024 + 32
MAX_DATA = 64 * 1024  # what we put in one SPICEVMC_DATA message
# QEMU port names are short ("org.spice-space.webdav.0"); a longer one is garbage
MAX_NAME = 1024
# a data message larger than the server can send is garbage; room for the header and caps
PORT_MAX_MESSAGE = SERVER_MAX_DATA + 1024


class PortEventKind(enum.IntEnum):
    """spice-protocol enums.h ``SpicePortEvent``."""

    OPENED = 0
    CLOSED = 1
    BREAK = 2


@dataclass(frozen=True, slots=True)
class PortInit(ChannelEvent):
    """The port's name and whether the guest has its side open."""

    name: str
    opened: bool


@dataclass(frozen=True, slots=True)
class PortEvent(ChannelEvent):
    """The guest opened or closed its side (or a break); unknown values stay ints."""

    event: PortEventKind | int


@dataclass(frozen=True, slots=True)
class PortData(ChannelEvent):
    """Bytes from the guest, in order."""

    data: bytes


def parse_port_init(body: bytes) -> PortInit:
    name_size, offset, opened = unpack_body(PORT_INIT_HEAD, body, "PORT_INIT")
    if not 1 <= name_size <= MAX_NAME:
        raise RemoteProtocolError(f"PORT_INIT: name size {name_size}, want 1..{MAX_NAME} "
                                  "(the name and its NUL)")
    if offset < PORT_INIT_HEAD.size or offset + name_size > len(body):
        raise RemoteProtocolError(f"PORT_INIT: a {name_size}-byte name at offset {offset} "
                                  f"is outside the {len(body)}-byte body")
    raw = body[offset:offset + name_size]
    if raw[-1] != 0 or 0 in raw[:-1]:
        raise RemoteProtocolError(f"PORT_INIT: the name {raw!r} is not one NUL-terminated "
                                  "string")
    try:
        name = raw[:-1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"PORT_INIT: the name {raw!r} is not UTF-8") from exc
    if opened > 1:
        raise RemoteProtocolError(f"PORT_INIT: opened is {opened}, want 0 or 1")
    return PortInit(name, bool(opened))


def parse_port_event(body: bytes) -> PortEvent:
    if len(body) != PORT_EVENT_BODY.size:
        raise RemoteProtocolError(f"PORT_EVENT: {len(body)}-byte body, want 1")
    (event,) = PORT_EVENT_BODY.unpack(body)
    return PortEvent(enum_or_int(PortEventKind, event))


class PortProtocol(ChannelProtocol):
    """One port channel: PORT_INIT, guest open/close events and data, both ways.

    ``name`` and ``guest_opened`` follow what the server said (None / False until
    PORT_INIT). Data before PORT_INIT is a protocol error: a port without a name is no port.
    """

    channel_kind = ChannelType.PORT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_message_size", PORT_MAX_MESSAGE)
        super().__init__(*args, **kwargs)
        self.name: str | None = None
        self.guest_opened = False
        self.data_in = 0  # payload bytes, both ways (the metrics count framed bytes)
        self.data_out = 0

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        kind = message.msg_type
        if kind == PORT_INIT:
            if self.name is not None:
                raise RemoteProtocolError(f"{self!r}: a second PORT_INIT "
                                          f"(the port is {self.name!r})")
            init = parse_port_init(message.body)
            self.name, self.guest_opened = init.name, init.opened
            return init
        if self.name is None:
            raise RemoteProtocolError(f"{self!r}: message {kind} before PORT_INIT")
        if kind == SPICEVMC_DATA:
            self.data_in += len(message.body)
            return PortData(message.body)
        if kind == PORT_EVENT:
            event = parse_port_event(message.body)
            if event.event == PortEventKind.OPENED:
                self.guest_opened = True
            elif event.event == PortEventKind.CLOSED:
                self.guest_opened = False
            return event
        if kind == SPICEVMC_COMPRESSED_DATA:
            raise RemoteProtocolError(f"{self!r}: COMPRESSED_DATA, though this client never "
                                      "announced the DATA_COMPRESS_LZ4 cap")
        return None

    def send_data(self, data: bytes | bytearray | memoryview) -> int:
        """Queue ``data`` for the guest, in messages of at most :data:`MAX_DATA` bytes;
        returns the number of messages. Empty data queues nothing."""
        self._check_named()
        view = memoryview(data).cast("B")
        count = 0
        for start in range(0, len(view), MAX_DATA):
            self.send_message(SPICEVMC_DATA, bytes(view[start:start + MAX_DATA]))
            count += 1
        self.data_out += len(view)
        return count

    def send_port_event(self, event: PortEventKind) -> None:
        """Tell the port's chardev frontend that the client side opened or closed it."""
        self._check_named()
        if event not in (PortEventKind.OPENED, PortEventKind.CLOSED):
            raise LocalProtocolError(f"a client sends OPENED or CLOSED port events, not {event!r}")
        self.send_message(MSGC_PORT_EVENT, PORT_EVENT_BODY.pack(event))

    def _check_named(self) -> None:
        if self.name is None:
            raise LocalProtocolError(f"{self!r}: nothing can be sent before PORT_INIT")
