"""The sans-I/O base of every Spice channel after its link: framing, acks, pings, metrics.

I/O contract (one style for all channels): bytes go in through :meth:`receive_data`, which
returns typed events; every byte the channel wants written — replies it makes by itself
(ACK_SYNC, ACK, PONG, MIGRATE_FLUSH_MARK) and messages the caller asks for — accumulates
in one queue that :meth:`ChannelProtocol.data_to_send` drains. The adapter writes that
after every ``receive_data`` and after every command call. ``receive_data(b"")`` means
the server closed the connection.

Example::

    chan = ChannelProtocol.from_link(link_succeeded_event)
    events = chan.receive_data(chunk)     # [SetAck(generation=1, window=20), ...]
    writer.write(chan.data_to_send())     # the ACK_SYNC, PONGs, ACKs
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Self

from atp_notebook.errors import ChannelClosed, LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.common import (
    COMMON_PARSERS,
    ChannelEvent,
    Disconnecting,
    Migrate,
    Ping,
    SetAck,
    UnknownMessage,
    build_ack_sync,
    build_disconnecting,
    build_pong,
)
from atp_notebook.spice.proto.constants import ChannelType, MigrateFlags, Msg, Msgc, enum_or_int
from atp_notebook.spice.proto.framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MessageReader,
    MessageWriter,
    RawMessage,
    expand_sub_messages,
)
from atp_notebook.spice.proto.link_wire import LinkSucceeded


class ChannelState(Enum):
    OPEN = "open"
    CLOSED = "closed"  # the server closed the connection (receive_data(b""))


@dataclass(frozen=True, slots=True)
class ConnectionClosed(ChannelEvent):
    """The server closed the connection; ``disconnecting`` is its DISCONNECTING, if any."""

    disconnecting: Disconnecting | None


@dataclass(slots=True)
class ChannelMetrics:
    """Counters since the link (top-level messages; a LIST counts once)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    pings: int = 0
    acks_sent: int = 0
    unknown_messages: int = 0
    # message type -> count of the unknown ones: what a server sent that nothing parses yet
    unknown_types: dict[int, int] = field(default_factory=dict)


class ChannelProtocol:
    """One linked channel: parses the shared messages and answers the automatic ones.

    Subclasses parse their channel's messages in :meth:`handle_channel_message`; types
    nobody parses become UnknownMessage events.
    """

    channel_kind: ChannelType | None = None  # set by subclasses bound to one channel type

    def __init__(
        self,
        channel_type: ChannelType | int,
        channel_id: int = 0,
        *,
        common_caps: Iterable[int] = (),
        channel_caps: Iterable[int] = (),
        mini_header: bool = True,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        manual_acks: bool = False,
    ) -> None:
        if self.channel_kind is not None and channel_type != self.channel_kind:
            raise LocalProtocolError(
                f"{type(self).__name__} is for {self.channel_kind.name} channels, "
                f"not channel type {channel_type}")
        self.channel_type = enum_or_int(ChannelType, channel_type)
        self.channel_id = channel_id
        self.server_common_caps = frozenset(common_caps)
        self.server_channel_caps = frozenset(channel_caps)
        self.state = ChannelState.OPEN
        self.metrics = ChannelMetrics()
        self.last_message_serial = 0  # spice-gtk: mini-header serials count from 1
        self.ack_window = 0
        self._ack_count = 0
        # manual_acks: the owner acknowledges messages once it has handled them (a display
        # draws them first), so the server's flow control sees what was really drawn
        self.manual_acks = manual_acks
        self._unacknowledged = 0  # messages received (manual mode) not yet handed back
        self.mini_header = mini_header  # one event per message (no sub-message lists)
        self._reader = MessageReader(max_message_size=max_message_size, mini_header=mini_header)
        self._writer = MessageWriter(mini_header=mini_header)
        self._out = bytearray()
        self._disconnecting: Disconnecting | None = None

    @classmethod
    def from_link(cls, link: LinkSucceeded, **kwargs: Any) -> Self:
        """The protocol for a channel the handshake just opened (its caps and header)."""
        return cls(link.channel_type, link.channel_id, common_caps=link.common_caps,
                   channel_caps=link.channel_caps, mini_header=link.mini_header, **kwargs)

    def __repr__(self) -> str:
        kind = (self.channel_type.name if isinstance(self.channel_type, ChannelType)
                else self.channel_type)
        return f"<{type(self).__name__} {kind}:{self.channel_id} {self.state.value}>"

    @property
    def partial_bytes(self) -> int:
        """Bytes of a message received so far whose rest has not arrived."""
        return self._reader.buffered

    def has_channel_cap(self, cap: int) -> bool:
        return cap in self.server_channel_caps

    # --- bytes in ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[ChannelEvent]:
        if self.state is ChannelState.CLOSED:
            if not data:
                return []  # EOF reported twice: nothing new
            raise LocalProtocolError(f"receive_data() on {self!r} after the connection closed")
        if not data:
            if self._reader.buffered:
                raise RemoteProtocolError(
                    f"{self!r}: the server closed the connection inside a message "
                    f"({self._reader.buffered} bytes of it received)")
            self.state = ChannelState.CLOSED
            return [ConnectionClosed(self._disconnecting)]
        self.metrics.bytes_in += len(data)
        self._reader.feed(data)
        events: list[ChannelEvent] = []
        while (message := self._reader.next_message()) is not None:
            self.metrics.messages_in += 1
            self.last_message_serial = message.serial or self.last_message_serial + 1
            # spice-channel.c counts every top-level message (after the SET_ACK that
            # started the window) and acks when ``window`` of them have arrived
            if self._ack_count:
                if self.manual_acks:
                    self._unacknowledged += 1
                else:
                    self._count_handled(1)
            for sub in expand_sub_messages(message):
                events.append(self._dispatch(sub))
        return events

    def _count_handled(self, count: int) -> None:
        for _ in range(count):
            if not self._ack_count:
                return  # a SET_ACK since restarted the window
            self._ack_count -= 1
            if self._ack_count == 0:
                self._queue(Msgc.ACK)
                self.metrics.acks_sent += 1
                self._ack_count = self.ack_window

    def take_unacknowledged(self) -> int:
        """(manual_acks) The messages received since the last call; hand them back to
        :meth:`acknowledge` once they are handled."""
        count, self._unacknowledged = self._unacknowledged, 0
        return count

    def acknowledge(self, count: int) -> None:
        """(manual_acks) ``count`` received messages are handled: queue the ACKs due (one
        per ``window`` messages, as the automatic mode does on arrival)."""
        if self.state is ChannelState.OPEN:
            self._count_handled(count)

    def _dispatch(self, message: RawMessage) -> ChannelEvent:
        if message.msg_type > Msg.BASE_LAST:
            event = self.handle_channel_message(message)
        else:
            parser = COMMON_PARSERS.get(message.msg_type)
            event = parser(message.body) if parser is not None else None
            if event is not None:
                self._answer_common(event)
        if event is None:
            self.metrics.unknown_messages += 1
            types = self.metrics.unknown_types
            types[message.msg_type] = types.get(message.msg_type, 0) + 1
            return UnknownMessage(message.msg_type, message.body)
        return event

    def _answer_common(self, event: ChannelEvent) -> None:
        if isinstance(event, SetAck):
            self._queue(Msgc.ACK_SYNC, build_ack_sync(event.generation))
            self.ack_window = self._ack_count = event.window
        elif isinstance(event, Ping):
            self.metrics.pings += 1
            self._queue(Msgc.PONG, build_pong(event.id, event.timestamp))
        elif isinstance(event, Disconnecting):
            self._disconnecting = event
        elif isinstance(event, Migrate) and event.flags & MigrateFlags.NEED_FLUSH:
            self._queue(Msgc.MIGRATE_FLUSH_MARK)

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        """Parse a channel-specific message (type > 100); None if this channel doesn't."""
        return None

    # --- bytes out --------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the server, in order; empties the queue."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def send_message(self, msg_type: int, body: bytes = b"") -> None:
        """Queue one framed message (for builders this class has no method for).

        Raises ChannelClosed once the server has closed the connection: that is the
        server's doing (or the network's), not a misuse of this object.
        """
        if self.state is ChannelState.CLOSED:
            raise ChannelClosed(f"cannot send on {self!r}: the server closed the connection",
                                hint="open the channel again: the other channels are "
                                     "unaffected")
        self._queue(msg_type, body)

    def send_disconnecting(self, time_stamp: int, reason: int = 0) -> None:
        """SPICE_MSGC_DISCONNECTING before a clean close (time_stamp: the caller's clock)."""
        self.send_message(Msgc.DISCONNECTING, build_disconnecting(time_stamp, reason))

    def send_migrate_data(self, data: bytes) -> None:
        """Hand a MigrateData blob to the destination server after a migration switch."""
        self.send_message(Msgc.MIGRATE_DATA, data)

    def _queue(self, msg_type: int, body: bytes = b"") -> None:
        framed = self._writer.pack(msg_type, body)
        self._out += framed
        self.metrics.messages_out += 1
        self.metrics.bytes_out += len(framed)
