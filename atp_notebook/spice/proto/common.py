"""Messages every Spice channel shares (spice.proto ``channel BaseChannel``): layouts,
parsers to events, builders of client bodies.

Parsers take a message body and return a frozen event; a short or malformed body raises
RemoteProtocolError naming the message. Trailing bytes after the fields are ignored, as a
newer server may append fields. Builders return a body; framing adds the header.

Example::

    parse_ping(bytes.fromhex("01000000" "0828bc5601000000"))
    # Ping(id=1, timestamp=5750138888, payload_size=0)
    build_pong(1, 5750138888)     # the PONG body: the same id and timestamp
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.constants import (
    ChannelType,
    LinkError,
    MigrateFlags,
    Msg,
    NotifySeverity,
    NotifyVisibility,
    enum_or_int,
)

# spice.proto BaseChannel, server side
MIGRATE = struct.Struct("<I")  # migrate: flags32 flags
SET_ACK = struct.Struct("<II")  # set_ack: generation, window
PING = struct.Struct("<IQ")  # ping: id, timestamp, then data[] to the end (bandwidth test)
WAIT_COUNT = struct.Struct("<B")  # wait_for_channels: u8 wait_count, then ChannelWait[]
CHANNEL_WAIT = struct.Struct("<BBQ")  # ChannelWait: channel_type, channel_id, message_serial
DISCONNECTING = struct.Struct("<QI")  # disconnecting: time_stamp, link_err reason
NOTIFY = struct.Struct("<QIIII")  # notify: time_stamp, severity, visibility, what, message_len
# client side
ACK_SYNC = struct.Struct("<I")  # ack_sync: generation
PONG = struct.Struct("<IQ")  # pong: id, timestamp (SpiceMsgPing without the data)


def unpack_body(layout: struct.Struct, body: bytes, what: str, offset: int = 0) -> tuple[int, ...]:
    """``layout`` at ``offset`` of a message body, or RemoteProtocolError naming ``what``."""
    if len(body) < offset + layout.size:
        raise RemoteProtocolError(
            f"{what}: {len(body)}-byte body, needs {offset + layout.size}")
    return layout.unpack_from(body, offset)


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """Base of every event a channel protocol returns."""


@dataclass(frozen=True, slots=True)
class SetAck(ChannelEvent):
    """The server's flow control: ACK_SYNC(generation) was queued; an ACK follows every
    ``window`` messages (0 turns acks off)."""

    generation: int
    window: int


@dataclass(frozen=True, slots=True)
class Ping(ChannelEvent):
    """A PING; the PONG is already queued. ``payload_size`` is the bandwidth-test filler
    (main channel: 256000 bytes; answer fast or the server turns on lossy compression)."""

    id: int
    timestamp: int
    payload_size: int


@dataclass(frozen=True, slots=True)
class ChannelWait:
    channel_type: ChannelType | int
    channel_id: int
    message_serial: int


@dataclass(frozen=True, slots=True)
class WaitForChannels(ChannelEvent):
    """Process nothing more on this channel until each listed channel has received the
    message with that serial (its ``last_message_serial``)."""

    waits: tuple[ChannelWait, ...]


@dataclass(frozen=True, slots=True)
class Disconnecting(ChannelEvent):
    """The server is about to close this channel."""

    time_stamp: int
    reason: LinkError | int


@dataclass(frozen=True, slots=True)
class Notify(ChannelEvent):
    time_stamp: int
    severity: NotifySeverity | int
    visibility: NotifyVisibility | int
    what: int  # an error, warn or info code
    message: str


@dataclass(frozen=True, slots=True)
class Migrate(ChannelEvent):
    """Migration starts for this channel. With NEED_FLUSH a MIGRATE_FLUSH_MARK was queued
    (spice-gtk does the same); with NEED_DATA_TRANSFER a MigrateData follows."""

    flags: MigrateFlags


@dataclass(frozen=True, slots=True)
class MigrateData(ChannelEvent):
    """Opaque state to hand to the destination server (send_migrate_data there)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class UnknownMessage(ChannelEvent):
    """A message type this channel does not parse (yet): kept, not fatal."""

    msg_type: int
    body: bytes


def parse_migrate(body: bytes) -> Migrate:
    (flags,) = unpack_body(MIGRATE, body, "MIGRATE")
    known = MigrateFlags.NEED_FLUSH | MigrateFlags.NEED_DATA_TRANSFER
    return Migrate(MigrateFlags(flags & known))


def parse_migrate_data(body: bytes) -> MigrateData:
    return MigrateData(body)


def parse_set_ack(body: bytes) -> SetAck:
    generation, window = unpack_body(SET_ACK, body, "SET_ACK")
    return SetAck(generation, window)


def parse_ping(body: bytes) -> Ping:
    ping_id, timestamp = unpack_body(PING, body, "PING")
    return Ping(ping_id, timestamp, len(body) - PING.size)


def parse_wait_for_channels(body: bytes) -> WaitForChannels:
    (count,) = unpack_body(WAIT_COUNT, body, "WAIT_FOR_CHANNELS")
    waits = []
    for i in range(count):
        ctype, cid, serial = unpack_body(
            CHANNEL_WAIT, body, "WAIT_FOR_CHANNELS", WAIT_COUNT.size + i * CHANNEL_WAIT.size)
        waits.append(ChannelWait(enum_or_int(ChannelType, ctype), cid, serial))
    return WaitForChannels(tuple(waits))


def parse_disconnecting(body: bytes) -> Disconnecting:
    time_stamp, reason = unpack_body(DISCONNECTING, body, "DISCONNECTING")
    return Disconnecting(time_stamp, enum_or_int(LinkError, reason))


def parse_notify(body: bytes) -> Notify:
    time_stamp, severity, visibility, what, length = unpack_body(NOTIFY, body, "NOTIFY")
    if len(body) < NOTIFY.size + length:
        raise RemoteProtocolError(
            f"NOTIFY: message_len {length} runs past the {len(body)}-byte body")
    text = body[NOTIFY.size : NOTIFY.size + length].rstrip(b"\0")
    return Notify(time_stamp, enum_or_int(NotifySeverity, severity),
                  enum_or_int(NotifyVisibility, visibility), what,
                  text.decode("utf-8", "replace"))  # a human-readable text, shown as is


COMMON_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    Msg.MIGRATE: parse_migrate,
    Msg.MIGRATE_DATA: parse_migrate_data,
    Msg.SET_ACK: parse_set_ack,
    Msg.PING: parse_ping,
    Msg.WAIT_FOR_CHANNELS: parse_wait_for_channels,
    Msg.DISCONNECTING: parse_disconnecting,
    Msg.NOTIFY: parse_notify,
}


def build_ack_sync(generation: int) -> bytes:
    return ACK_SYNC.pack(generation)


def build_pong(ping_id: int, timestamp: int) -> bytes:
    return PONG.pack(ping_id, timestamp)


def build_disconnecting(time_stamp: int, reason: int) -> bytes:
    return DISCONNECTING.pack(time_stamp, reason)
