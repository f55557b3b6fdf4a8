"""The port channel's sans-I/O core: bytes in, events out; bytes out; garbage refused."""

from __future__ import annotations

import struct

import pytest

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.channel import ConnectionClosed
from atp_notebook.spice.proto.common import Ping
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.framing import MessageReader, RawMessage
from atp_notebook.spice.proto.port import (
    MAX_DATA,
    PORT_MAX_MESSAGE,
    PortData,
    PortEvent,
    PortEventKind,
    PortInit,
    PortProtocol,
    parse_port_init,
)

MINI = struct.Struct("<HI")


def frame(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def init_body(name: bytes, opened: int = 1, *, size: int | None = None,
              offset: int = 9) -> bytes:
    """PORT_INIT as spice-server marshals it: the name after the fixed part."""
    named = name + b"\0"
    return struct.pack("<IIB", len(named) if size is None else size, offset, opened) + named


def port(name: bytes = b"com.atp.echo", opened: int = 1) -> PortProtocol:
    chan = PortProtocol(ChannelType.PORT, 0)
    chan.receive_data(frame(201, init_body(name, opened)))
    return chan


def sent(chan: PortProtocol) -> list[RawMessage]:
    reader = MessageReader(max_message_size=PORT_MAX_MESSAGE)
    reader.feed(chan.data_to_send())
    return reader.read_messages()


@pytest.mark.parametrize(("wire", "events"), [
    (frame(201, init_body(b"com.atp.echo", 1)), [PortInit("com.atp.echo", True)]),
    (frame(201, init_body(b"org.spice-space.webdav.0", 0)),
     [PortInit("org.spice-space.webdav.0", False)]),
    (frame(201, init_body(b"x", 0)) + frame(202, b"\0") + frame(101, b"hello")
     + frame(202, b"\1"),
     [PortInit("x", False), PortEvent(PortEventKind.OPENED), PortData(b"hello"),
      PortEvent(PortEventKind.CLOSED)]),
    (frame(201, init_body(b"x")) + frame(202, b"\2") + frame(202, b"\7"),
     [PortInit("x", True), PortEvent(PortEventKind.BREAK), PortEvent(7)]),
    (frame(201, init_body(b"x")) + frame(101), [PortInit("x", True), PortData(b"")]),
    # a ping is answered as on any channel
    (frame(201, init_body(b"x")) + frame(4, struct.pack("<IQ", 9, 5)),
     [PortInit("x", True), Ping(9, 5, 0)]),
])
def test_events(wire: bytes, events: list[object]) -> None:
    assert PortProtocol(ChannelType.PORT, 0).receive_data(wire) == events


def test_port_init_as_the_lab_server_sent_it() -> None:
    # captured from the lab (QEMU 7.2, spice-server 0.15), the guest side not open yet
    body = b"\r\x00\x00\x00\t\x00\x00\x00\x00com.atp.echo\x00"
    assert parse_port_init(body) == PortInit("com.atp.echo", False)
    assert body == init_body(b"com.atp.echo", 0)


def test_events_arrive_the_same_byte_by_byte() -> None:
    wire = frame(201, init_body(b"com.atp.echo")) + frame(101, bytes(range(256)) * 3)
    chan = PortProtocol(ChannelType.PORT, 0)
    events = [e for i in range(len(wire)) for e in chan.receive_data(wire[i:i + 1])]
    assert events == [PortInit("com.atp.echo", True), PortData(bytes(range(256)) * 3)]


def test_state_follows_the_server() -> None:
    chan = PortProtocol(ChannelType.PORT, 0)
    assert (chan.name, chan.guest_opened) == (None, False)
    chan.receive_data(frame(201, init_body(b"com.atp.echo", 0)))
    assert (chan.name, chan.guest_opened) == ("com.atp.echo", False)
    chan.receive_data(frame(202, b"\0"))
    assert chan.guest_opened
    chan.receive_data(frame(202, b"\2"))  # a break changes nothing
    assert chan.guest_opened
    chan.receive_data(frame(202, b"\1") + frame(101, b"abc"))
    assert not chan.guest_opened and chan.data_in == 3
    assert chan.receive_data(b"") == [ConnectionClosed(None)]


def test_send_data_in_chunks() -> None:
    chan = port()
    data = bytes(i % 251 for i in range(2 * MAX_DATA + 5))
    assert chan.send_data(data) == 3
    messages = sent(chan)
    assert [m.msg_type for m in messages] == [101, 101, 101]
    assert [len(m.body) for m in messages] == [MAX_DATA, MAX_DATA, 5]
    assert b"".join(m.body for m in messages) == data
    assert chan.data_out == len(data)
    assert chan.send_data(b"") == 0 and chan.data_to_send() == b""


def test_send_port_events() -> None:
    chan = port()
    chan.send_port_event(PortEventKind.OPENED)
    chan.send_port_event(PortEventKind.CLOSED)
    assert sent(chan) == [RawMessage(201, b"\0"), RawMessage(201, b"\1")]
    with pytest.raises(LocalProtocolError, match="OPENED or CLOSED"):
        chan.send_port_event(PortEventKind.BREAK)


def test_nothing_is_sent_before_port_init() -> None:
    chan = PortProtocol(ChannelType.PORT, 0)
    with pytest.raises(LocalProtocolError, match="before PORT_INIT"):
        chan.send_data(b"x")


def test_only_port_channels() -> None:
    with pytest.raises(LocalProtocolError, match="PORT channels"):
        PortProtocol(ChannelType.INPUTS, 0)


@pytest.mark.parametrize(("body", "why"), [
    (b"", "needs 9"),
    (struct.pack("<IIB", 0, 9, 1), "name size 0"),
    (struct.pack("<IIB", 5000, 9, 1) + b"a" * 4999 + b"\0", "name size 5000"),
    (init_body(b"name", size=50), "outside"),
    (init_body(b"name", offset=4), "outside"),
    (init_body(b"name", offset=2**32 - 1), "outside"),
    (struct.pack("<IIB", 4, 9, 1) + b"name", "NUL-terminated"),
    (struct.pack("<IIB", 4, 9, 1) + b"n\0m\0", "NUL-terminated"),
    (init_body(b"\xff\xfe"), "not UTF-8"),
    (init_body(b"x", opened=2), "opened is 2"),
])
def test_bad_port_init(body: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        parse_port_init(body)


@pytest.mark.parametrize(("wire", "why"), [
    (frame(101, b"data"), "before PORT_INIT"),
    (frame(202, b"\0"), "before PORT_INIT"),
    (frame(201, init_body(b"a")) + frame(201, init_body(b"b")), "second PORT_INIT"),
    (frame(201, init_body(b"a")) + frame(202, b""), "PORT_EVENT: 0-byte"),
    (frame(201, init_body(b"a")) + frame(202, b"\0\0"), "PORT_EVENT: 2-byte"),
    (frame(201, init_body(b"a")) + frame(102, struct.pack("<BI", 1, 10) + b"x"),
     "COMPRESSED_DATA"),
    # larger than anything spice-server sends: refused from the header, nothing buffered
    (frame(201, init_body(b"a")) + MINI.pack(101, PORT_MAX_MESSAGE + 1), "more than the limit"),
    (MINI.pack(101, 2**32 - 1), "more than the limit"),
])
def test_garbage_is_a_remote_protocol_error(wire: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        PortProtocol(ChannelType.PORT, 0).receive_data(wire)


def test_unknown_message_types_are_reported_not_fatal() -> None:
    chan = port()
    (event,) = chan.receive_data(frame(150, b"?"))
    assert type(event).__name__ == "UnknownMessage"
    assert chan.metrics.unknown_types == {150: 1}
