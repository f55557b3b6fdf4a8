"""Message framing: mini and full headers, partial data, size limits, SPICE_MSG_LIST."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import pytest

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.buffer import ReceiveBuffer
from atp_notebook.spice.proto.framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MessageReader,
    MessageWriter,
    RawMessage,
    expand_sub_messages,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice"
MINI = struct.Struct("<HI")


def mini(msg_type: int, body: bytes) -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def sub_list(*messages: tuple[int, bytes], base: int = 0) -> bytes:
    """A SpiceSubMessageList at ``base`` in a body: u16 count, u32 offsets (from the start
    of the message body, as spice-gtk reads them), then each SpiceSubMessage."""
    table_size = 2 + 4 * len(messages)
    offsets, blobs, at = [], b"", base + table_size
    for msg_type, body in messages:
        offsets.append(at)
        blob = MINI.pack(msg_type, len(body)) + body
        blobs += blob
        at += len(blob)
    return struct.pack(f"<H{len(messages)}I", len(messages), *offsets) + blobs


@pytest.mark.parametrize(("stream", "expected"), [
    (mini(4, bytes(12)), [RawMessage(4, bytes(12))]),
    (mini(104, b""), [RawMessage(104, b"")]),
    (mini(103, b"a") + mini(113, b"bc"), [RawMessage(103, b"a"), RawMessage(113, b"bc")]),
    (mini(103, b"a") + mini(113, b"bc")[:3], [RawMessage(103, b"a")]),
])
def test_mini_header_messages(stream: bytes, expected: list[RawMessage]) -> None:
    reader = MessageReader()
    reader.feed(stream)
    assert reader.read_messages() == expected


def test_byte_by_byte_gives_the_same_messages() -> None:
    stream = gzip.decompress((FIXTURES / "main-session.bin.gz").read_bytes())
    whole = MessageReader()
    whole.feed(stream)
    expected = whole.read_messages()
    assert [m.msg_type for m in expected] == [103, 113, 114, 4, 4, 4, 104, 4, 4]
    split = MessageReader()
    got: list[RawMessage] = []
    for i in range(0, len(stream), 997):  # odd chunks straddle every header and body
        split.feed(stream[i : i + 997])
        got += split.read_messages()
    assert got == expected and split.buffered == 0


def test_oversized_message_is_refused_from_its_header() -> None:
    reader = MessageReader(max_message_size=100)
    reader.feed(MINI.pack(302, 101))  # just the header: refused before any body arrives
    with pytest.raises(RemoteProtocolError, match="302 announces 101 bytes"):
        reader.next_message()
    at_limit = MessageReader(max_message_size=100)
    at_limit.feed(mini(302, bytes(100)))
    assert at_limit.next_message() == RawMessage(302, bytes(100))
    assert DEFAULT_MAX_MESSAGE_SIZE == 1 << 20


def test_full_header_reader_and_writer() -> None:
    writer = MessageWriter(mini_header=False)
    first, second = writer.pack(3, b"\x01\x00\x00\x00"), writer.pack(2)
    assert first == bytes.fromhex("0100000000000000 0300 04000000 00000000 01000000"
                                  .replace(" ", ""))
    assert second[:8] == (2).to_bytes(8, "little")  # serials count from 1
    reader = MessageReader(mini_header=False)
    reader.feed(first + second)
    assert reader.read_messages() == [RawMessage(3, b"\x01\x00\x00\x00", 1),
                                      RawMessage(2, b"", 2)]


@pytest.mark.parametrize(("msg_type", "body", "expected"), [
    (3, struct.pack("<IQ", 1, 2), "0300 0c000000 01000000 0200000000000000"),
    (104, b"", "6800 00000000"),
])
def test_mini_writer_golden(msg_type: int, body: bytes, expected: str) -> None:
    assert MessageWriter().pack(msg_type, body) == bytes.fromhex(expected.replace(" ", ""))


def test_writer_refuses_impossible_types() -> None:
    with pytest.raises(LocalProtocolError):
        MessageWriter().pack(70000)


def test_list_expands_to_its_sub_messages() -> None:
    body = sub_list((4, bytes(12)), (7, b"note"))
    assert expand_sub_messages(RawMessage(8, body)) == [RawMessage(4, bytes(12)),
                                                        RawMessage(7, b"note")]
    assert expand_sub_messages(RawMessage(4, b"x")) == [RawMessage(4, b"x")]
    assert expand_sub_messages(RawMessage(8, struct.pack("<H", 0))) == []


def test_full_header_sub_list_comes_before_the_message() -> None:
    listing = sub_list((3, struct.pack("<II", 1, 10)), base=4)
    body = b"MAIN" + listing
    out = expand_sub_messages(RawMessage(101, body, serial=5, sub_list=4))
    assert out == [RawMessage(3, struct.pack("<II", 1, 10)), RawMessage(101, body, 5, 4)]


@pytest.mark.parametrize("body", [
    b"",  # no count
    struct.pack("<H", 2) + struct.pack("<I", 6),  # two offsets promised, one present
    struct.pack("<HI", 1, 100),  # offset past the end
    struct.pack("<HI", 1, 6) + MINI.pack(4, 50),  # sub-message longer than the list
    sub_list((8, sub_list((4, bytes(12))))),  # nested list
])
def test_bad_lists_are_remote_errors(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        expand_sub_messages(RawMessage(8, body))


def test_sub_list_offset_outside_the_message() -> None:
    writer = struct.pack("<QHII", 1, 101, 4, 9) + b"abcd"
    reader = MessageReader(mini_header=False)
    reader.feed(writer)
    with pytest.raises(RemoteProtocolError, match="sub_list"):
        reader.next_message()


def test_receive_buffer_is_linear_for_many_small_chunks() -> None:
    """A 16 MiB message fed in 4 KiB chunks, and 40000 small messages, stay fast."""
    reader = MessageReader(max_message_size=16 << 20)
    big = bytes(range(256)) * (16 << 12)
    stream = mini(302, big)
    start = time.perf_counter()
    for i in range(0, len(stream), 4096):
        reader.feed(stream[i : i + 4096])
        assert reader.next_message() is None or i + 4096 >= len(stream)
    small = b"".join(mini(4, i.to_bytes(12, "little")) for i in range(40000))
    for i in range(0, len(small), 1000):
        reader.feed(small[i : i + 1000])
        for message in reader.read_messages():
            assert message.msg_type == 4
    assert time.perf_counter() - start < 5.0


def test_receive_buffer_compacts_without_losing_bytes() -> None:
    buf = ReceiveBuffer()
    data = bytes(range(256)) * 1024  # 256 KiB: crosses the compaction threshold
    out = bytearray()
    for i in range(0, len(data), 1000):
        buf.feed(data[i : i + 1000])
        while len(buf) >= 777:
            out += buf.take(777)
    out += buf.take(len(buf))
    assert bytes(out) == data and not buf
    assert buf.peek(1) is None and buf.peek_u32() is None
    with pytest.raises(LocalProtocolError):
        buf.take(1)
