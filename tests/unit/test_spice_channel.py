"""ChannelProtocol: the messages every channel shares, acks, pings, closing, metrics."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from atp_notebook.errors import ChannelClosed, LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol, ChannelState, ConnectionClosed
from atp_notebook.spice.proto.common import (
    ChannelEvent,
    ChannelWait,
    Disconnecting,
    Migrate,
    MigrateData,
    Notify,
    Ping,
    SetAck,
    UnknownMessage,
    WaitForChannels,
    parse_notify,
)
from atp_notebook.spice.proto.constants import (
    ChannelType,
    LinkError,
    MigrateFlags,
    NotifySeverity,
    NotifyVisibility,
)
from atp_notebook.spice.proto.framing import MessageReader, RawMessage
from atp_notebook.spice.proto.link_wire import LinkSucceeded
from atp_notebook.spice.proto.main import MainProtocol

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice"
MINI = struct.Struct("<HI")


def mini(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def sent(chan: ChannelProtocol) -> list[RawMessage]:
    reader = MessageReader()
    reader.feed(chan.data_to_send())
    return reader.read_messages()


def cursor() -> ChannelProtocol:
    return ChannelProtocol(ChannelType.CURSOR, 0)


def test_lab_cursor_stream_acks_and_pongs() -> None:
    chan = cursor()
    events = chan.receive_data((FIXTURES / "cursor-messages.bin").read_bytes())
    assert events[0] == SetAck(1, 20)
    assert isinstance(events[1], UnknownMessage) and events[1].msg_type == 101  # CURSOR_INIT
    pings = [e for e in events if isinstance(e, Ping)]
    assert len(pings) == 2
    out = sent(chan)
    assert out[0] == RawMessage(1, struct.pack("<I", 1))  # ACK_SYNC(generation 1)
    assert out[1:] == [RawMessage(3, struct.pack("<IQ", p.id, p.timestamp)) for p in pings]
    assert chan.metrics.pings == 2 and chan.metrics.unknown_messages == 1
    assert chan.metrics.unknown_types == {101: 1}  # which types nothing parsed, and how often
    assert chan.metrics.messages_in == 4 and chan.metrics.messages_out == 3
    assert chan.last_message_serial == 4


def test_ack_every_window_messages_counting_a_list_once() -> None:
    chan = cursor()
    chan.receive_data(mini(3, struct.pack("<II", 7, 3)))  # SET_ACK generation 7, window 3
    assert [m.msg_type for m in sent(chan)] == [1]
    chan.receive_data(mini(150) * 2)
    assert sent(chan) == []
    listing = struct.pack("<HII", 2, 10, 16) + mini(150) + mini(151)
    chan.receive_data(mini(8, listing))  # the 3rd top-level message: a LIST of two
    assert sent(chan) == [RawMessage(2, b"")]  # one ACK
    chan.receive_data(mini(150) * 6)
    assert sent(chan) == [RawMessage(2, b"")] * 2
    assert chan.metrics.acks_sent == 3 and chan.ack_window == 3


def test_window_zero_means_no_acks() -> None:
    chan = cursor()
    chan.receive_data(mini(3, struct.pack("<II", 1, 0)) + mini(150) * 50)
    assert [m.msg_type for m in sent(chan)] == [1]


def test_big_bandwidth_ping_gets_a_small_pong() -> None:
    chan = cursor()
    (ping,) = chan.receive_data(mini(4, struct.pack("<IQ", 3, 99) + bytes(256000)))
    assert ping == Ping(3, 99, 256000)
    assert chan.data_to_send() == bytes.fromhex("0300 0c000000 03000000 6300000000000000"
                                                .replace(" ", ""))


@pytest.mark.parametrize(("msg_type", "body", "event"), [
    (5, bytes([2, 2, 0]) + (9).to_bytes(8, "little") + bytes([4, 0]) + (1).to_bytes(8, "little"),
     WaitForChannels((ChannelWait(ChannelType.DISPLAY, 0, 9),
                      ChannelWait(ChannelType.CURSOR, 0, 1)))),
    (6, struct.pack("<QI", 123, 8), Disconnecting(123, LinkError.BAD_CONNECTION_ID)),
    (7, struct.pack("<QIIII", 5, 2, 1, 0, 6) + b"hello\0",
     Notify(5, NotifySeverity.ERROR, NotifyVisibility.MEDIUM, 0, "hello")),
    (7, struct.pack("<QIIII", 5, 9, 9, 1, 0), Notify(5, 9, 9, 1, "")),
    (2, b"opaque", MigrateData(b"opaque")),
    (1, struct.pack("<I", 2), Migrate(MigrateFlags.NEED_DATA_TRANSFER)),
    (99, b"?", UnknownMessage(99, b"?")),
])
def test_common_messages_table(msg_type: int, body: bytes, event: ChannelEvent) -> None:
    assert cursor().receive_data(mini(msg_type, body)) == [event]


@pytest.mark.parametrize(("msg_type", "body"), [
    (3, b"\0" * 7), (4, b"\0" * 11), (5, b"\x02" + bytes(10)), (6, bytes(11)),
    (7, struct.pack("<QIIII", 0, 0, 0, 0, 5) + b"abc"), (1, b""),
])
def test_short_common_messages_are_remote_errors(msg_type: int, body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        cursor().receive_data(mini(msg_type, body))


def test_migrate_with_flush_queues_the_flush_mark() -> None:
    chan = cursor()
    (event,) = chan.receive_data(mini(1, struct.pack("<I", 3)))
    assert event == Migrate(MigrateFlags.NEED_FLUSH | MigrateFlags.NEED_DATA_TRANSFER)
    assert sent(chan) == [RawMessage(4, b"")]


def test_disconnecting_then_close() -> None:
    chan = cursor()
    chan.receive_data(mini(6, struct.pack("<QI", 1, 0)))
    assert chan.receive_data(b"") == [ConnectionClosed(Disconnecting(1, LinkError.OK))]
    assert chan.state is ChannelState.CLOSED
    with pytest.raises(LocalProtocolError):
        chan.receive_data(b"x")
    # sending after the server's close is the server's doing, not a misuse: ChannelClosed,
    # which says to reopen, and nothing is queued
    out_before = chan.metrics.messages_out
    with pytest.raises(ChannelClosed, match="server closed"):
        chan.send_message(2)
    with pytest.raises(ChannelClosed):
        chan.send_disconnecting(5)
    assert chan.metrics.messages_out == out_before
    assert chan.data_to_send() == b""


def test_close_inside_a_message_is_a_remote_error() -> None:
    chan = cursor()
    chan.receive_data(mini(4, bytes(12))[:9])
    with pytest.raises(RemoteProtocolError, match="inside a message"):
        chan.receive_data(b"")


def test_client_messages_and_metrics() -> None:
    chan = cursor()
    chan.send_disconnecting(42, LinkError.OK)
    chan.send_migrate_data(b"blob")
    assert sent(chan) == [RawMessage(6, struct.pack("<QI", 42, 0)), RawMessage(5, b"blob")]
    assert chan.metrics.bytes_out == 6 + 12 + 6 + 4


def test_from_link_takes_caps_and_header_mode() -> None:
    link = LinkSucceeded(ChannelType.MAIN, 0, frozenset({0, 2}), frozenset({1}), False, 2)
    chan = MainProtocol.from_link(link)
    assert chan.server_channel_caps == {1} and chan.has_channel_cap(1)
    chan.attach_channels()
    assert chan.data_to_send()[:8] == (1).to_bytes(8, "little")  # full header: serial 1
    with pytest.raises(LocalProtocolError, match="MAIN"):
        MainProtocol(ChannelType.INPUTS)


def test_notify_text_is_tolerant_but_bounded() -> None:
    note = parse_notify(struct.pack("<QIIII", 0, 0, 0, 0, 3) + b"\xff\xfeA")
    assert note.message == "\ufffd\ufffdA"
