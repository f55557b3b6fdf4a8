"""Channel message framing: the data header, ``SPICE_MSG_LIST`` expansion, size limits.

After the link, every message on a channel is a header then ``size`` body bytes
(protocol.h): with the MINI_HEADER common cap the header is ``SpiceMiniDataHeader``
(u16 type, u32 size; 6 bytes), otherwise ``SpiceDataHeader`` (u64 serial, u16 type,
u32 size, u32 sub_list; 18 bytes). Both sides use the same header once the cap is agreed.

Example::

    reader = MessageReader(max_message_size=DEFAULT_MAX_MESSAGE_SIZE)
    reader.feed(b"\\x04\\x00\\x0c\\x00\\x00\\x00" + bytes(12))   # a PING
    reader.read_messages()   # [RawMessage(msg_type=4, body=b"\\x00" * 12)]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.buffer import ReceiveBuffer
from atp_notebook.spice.proto.constants import Msg

MINI_HEADER = struct.Struct("<HI")  # protocol.h: SpiceMiniDataHeader {type, size}
DATA_HEADER = struct.Struct("<QHII")  # protocol.h: SpiceDataHeader {serial, type, size, sub_list}
SUB_LIST_SIZE = struct.Struct("<H")  # protocol.h: SpiceSubMessageList.size, then u32 offsets
SUB_LIST_OFFSET = struct.Struct("<I")
SUB_MESSAGE = struct.Struct("<HI")  # protocol.h: SpiceSubMessage {type, size}, then its data

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024  # main, inputs, cursor, ...: real messages are small
DISPLAY_MAX_MESSAGE_SIZE = 64 * 1024 * 1024  # a full-screen uncompressed bitmap fits


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as framed: its type number and body. ``serial`` and ``sub_list`` are
    only non-zero with the full (non-mini) header."""

    msg_type: int
    body: bytes
    serial: int = 0
    sub_list: int = 0


class MessageReader:
    """Bytes in, whole messages out; a message is consumed only once all of it is here.

    A header announcing more than ``max_message_size`` body bytes raises
    RemoteProtocolError before anything is buffered for it.
    """

    def __init__(
        self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, mini_header: bool = True
    ) -> None:
        self.max_message_size = max_message_size
        self.mini_header = mini_header
        self._header = MINI_HEADER if mini_header else DATA_HEADER
        self._buffer = ReceiveBuffer()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages (0 means at a boundary)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer.feed(data)

    def next_message(self) -> RawMessage | None:
        """The next whole message, or None until its last byte has been fed."""
        fields = self._buffer.unpack_from(self._header)
        if fields is None:
            return None
        if self.mini_header:
            serial, sub_list = 0, 0
            msg_type, size = fields
        else:
            serial, msg_type, size, sub_list = fields
        if size > self.max_message_size:
            raise RemoteProtocolError(
                f"message type {msg_type} announces {size} bytes, more than the limit of "
                f"{self.max_message_size}")
        if len(self._buffer) < self._header.size + size:
            return None
        self._buffer.take(self._header.size)
        body = self._buffer.take(size)
        if sub_list and sub_list >= size:
            raise RemoteProtocolError(
                f"message type {msg_type}: sub_list offset {sub_list} outside its {size} bytes")
        return RawMessage(msg_type, body, serial, sub_list)

    def read_messages(self) -> list[RawMessage]:
        """Every whole message buffered so far."""
        out: list[RawMessage] = []
        while (message := self.next_message()) is not None:
            out.append(message)
        return out


def expand_sub_messages(message: RawMessage) -> list[RawMessage]:
    """The messages a top-level message stands for, in order.

    ``SPICE_MSG_LIST`` (spice.proto: ``Data list``) is a SpiceSubMessageList — u16 count,
    then that many u32 offsets, each from the start of the message body (spice-gtk
    spice_channel_recv_msg) to a SpiceSubMessage header and its data — and stands only
    for its sub-messages. With the full header a non-zero
    ``sub_list`` points at such a list inside an ordinary message; the sub-messages come
    first, then the message itself (as spice-gtk's spice_channel_recv_msg handles it).
    Nested lists are refused: no server sends them and they would allow deep recursion.
    """
    if message.msg_type == Msg.LIST:
        return _parse_sub_list(message.body, 0)
    if message.sub_list:
        return [*_parse_sub_list(message.body, message.sub_list), message]
    return [message]


def _parse_sub_list(body: bytes, start: int) -> list[RawMessage]:
    try:
        (count,) = SUB_LIST_SIZE.unpack_from(body, start)
        offsets = struct.unpack_from(f"<{count}I", body, start + SUB_LIST_SIZE.size)
        out = []
        for offset in offsets:
            msg_type, size = SUB_MESSAGE.unpack_from(body, offset)
            begin = offset + SUB_MESSAGE.size
            if begin + size > len(body):
                raise RemoteProtocolError(
                    f"sub-message type {msg_type} at offset {offset}: {size} bytes run past "
                    f"the {len(body)}-byte list")
            if msg_type == Msg.LIST:
                raise RemoteProtocolError("a SPICE_MSG_LIST nested inside another")
            out.append(RawMessage(msg_type, body[begin : begin + size]))
    except struct.error as exc:
        raise RemoteProtocolError(f"truncated SPICE_MSG_LIST of {len(body)} bytes") from exc
    return out


class MessageWriter:
    """Message type and body in, framed bytes out (the header matching the link's caps)."""

    def __init__(self, *, mini_header: bool = True) -> None:
        self.mini_header = mini_header
        self._serial = 0  # SpiceDataHeader.serial counts from 1 per channel and direction

    def pack(self, msg_type: int, body: bytes = b"") -> bytes:
        if not 0 <= msg_type <= 0xFFFF:
            raise LocalProtocolError(f"message type {msg_type} does not fit a u16")
        if len(body) > 0xFFFFFFFF:
            raise LocalProtocolError(f"a message body of {len(body)} bytes does not fit a u32")
        if self.mini_header:
            return MINI_HEADER.pack(msg_type, len(body)) + body
        self._serial += 1
        return DATA_HEADER.pack(self._serial, msg_type, len(body), 0) + body
