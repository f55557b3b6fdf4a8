"""The byte stream a Spice port and a virtio-serial port share: bytes fed in, readers that
wait for them (blocking and async forms), bounded, then the reason it ended."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from atp_notebook.byte_stream import ByteStream, ByteStreamReads
from atp_notebook.errors import ChannelClosed, OperationTimeout, RemoteProtocolError
from atp_notebook.loop import get_loop

T = TypeVar("T")


class Source(ByteStreamReads):
    """A stream whose source is the test: it feeds bytes on the atp loop."""

    def __init__(self, limit: int = 1024) -> None:
        self._incoming = ByteStream(limit)
        self.ready_calls = 0
        self.consumed = 0
        self.refuse: ChannelClosed | None = None  # what _reader_ready raises

    def _stream_label(self) -> str:
        return "test:stream"

    async def _reader_ready(self, timeout: float) -> None:
        self.ready_calls += 1
        if self.refuse is not None:
            raise self.refuse

    def _consumed(self) -> None:
        self.consumed += 1

    def feed_later(self, *chunks: bytes, delay: float = 0.05) -> None:
        """Feed ``chunks`` from the atp loop after a reader started waiting."""
        atp = get_loop().loop
        for i, chunk in enumerate(chunks):
            atp.call_soon_threadsafe(atp.call_later, delay * (i + 1),
                                     self._incoming.feed, chunk)


def on_atp(coro: Coroutine[Any, Any, T]) -> T:
    return get_loop().call(coro, what="test")


def test_a_reader_waits_for_the_bytes_it_needs_across_chunks() -> None:
    source = Source()
    source.feed_later(b"hel", b"lo\nwor", b"ld\n")
    assert source.readline(timeout=5) == b"hello\n"
    assert source.readline(timeout=5) == b"world\n"
    assert source.consumed == 2 and source.ready_calls == 2


def test_each_read_takes_what_it_asks_for() -> None:
    source = Source()
    source.feed_later(b"abcdefgh")
    assert source.recv_exactly(3, timeout=5) == b"abc"
    assert source.recv(100, timeout=5) == b"defgh"  # what has arrived, not 100
    source.feed_later(b"xyz")
    assert source.recv(2, timeout=5) == b"xy"
    assert len(source._incoming) == 1


def test_the_async_forms_read_the_same_stream() -> None:
    source = Source()

    async def read_both() -> tuple[bytes, bytes]:
        source.feed_later(b"one\ntwo")
        return (await source.readline_async(timeout=5),
                await source.recv_exactly_async(3, timeout=5))

    assert asyncio.run(read_both()) == (b"one\n", b"two")


def test_concurrent_readers_take_whole_reads_in_turn() -> None:
    source = Source()

    async def two_readers() -> list[bytes]:
        line = asyncio.ensure_future(source._readline(5))
        await asyncio.sleep(0)
        pair = asyncio.ensure_future(source._recv_exactly(2, 5))
        await asyncio.sleep(0)
        # "ab" would do for the second reader, but the first one's line is not whole yet
        for chunk in (b"ab", b"c\n", b"zz"):
            source._incoming.feed(chunk)
            await asyncio.sleep(0)
        return [await line, await pair]

    assert on_atp(two_readers()) == [b"abc\n", b"zz"]


def test_a_read_that_gets_nothing_times_out_naming_the_stream() -> None:
    source = Source()
    with pytest.raises(OperationTimeout, match=r"test:stream: readline: nothing within 0.1 s"):
        source.readline(timeout=0.1)
    source.feed_later(b"late\n")  # the stream is still usable
    assert source.readline(timeout=5) == b"late\n"


def test_after_the_end_readers_get_the_unread_bytes_then_the_reason() -> None:
    source = Source()

    async def read_to_the_end() -> list[bytes | str]:
        stream = source._incoming
        waiting = asyncio.ensure_future(source._readline(5))
        await asyncio.sleep(0)
        stream.feed(b"last\nno newline")
        stream.end(ChannelClosed("EOF"))
        stream.feed(b"too late")  # a delivery after the end is dropped
        got: list[bytes | str] = [await waiting, await source._readline(5)]
        for _ in range(2):  # each reader gets its own copy of the reason
            try:
                await source._recv(10, 5)
            except ChannelClosed as exc:
                got.append(exc.message)
        return got

    assert on_atp(read_to_the_end()) == [b"last\n", b"no newline", "EOF", "EOF"]


def test_the_first_end_reason_wins() -> None:
    stream = ByteStream()
    stream.end(ChannelClosed("the real cause"))
    stream.end(ChannelClosed("a later symptom"))
    with pytest.raises(ChannelClosed, match="the real cause"):
        stream.raise_if_ended()
    assert stream.ended and not stream.wants_data


def test_discard_drops_the_unread_bytes_and_wakes_a_waiting_reader() -> None:
    source = Source()

    async def closed_while_waiting() -> tuple[str, int]:
        stream = source._incoming
        stream.feed(b"unread, no newline")
        waiting = asyncio.ensure_future(source._readline(5))
        await asyncio.sleep(0)
        stream.discard(ChannelClosed("closed by us"))
        with pytest.raises(ChannelClosed) as caught:
            await waiting
        return caught.value.message, len(stream)

    assert on_atp(closed_while_waiting()) == ("closed by us", 0)


@pytest.mark.parametrize(("keep", "expected"), [(True, b"left over\nnew\n"),
                                                (False, b"new\n")])
def test_restart_keeps_the_unread_bytes_only_when_asked(keep: bool, expected: bytes) -> None:
    stream = ByteStream()

    async def restarted() -> bytes:
        stream.feed(b"left over\n")
        stream.end(ChannelClosed("lost"))
        stream.restart(keep_unread=keep)
        assert not stream.ended
        stream.feed(b"new\n")
        return await stream.take(lambda b: b.read(100))

    assert asyncio.run(restarted()) == expected


def test_the_limit_is_the_backpressure_switch_and_a_read_reports_room_again() -> None:
    source = Source(limit=8)
    stream = source._incoming
    stream.feed(b"12345678")
    assert not stream.wants_data and len(stream) == 8
    stream.feed(b"9")  # the source's last delivery before it paused: kept, not lost
    assert source.recv_exactly(5, timeout=5) == b"12345"
    assert stream.wants_data and source.consumed == 1
    assert source.recv(100, timeout=5) == b"6789"


def test_a_reader_refused_by_its_owner_takes_nothing() -> None:
    source = Source()
    source._incoming.feed(b"kept\n")
    source.refuse = ChannelClosed("test:stream is not open")
    with pytest.raises(ChannelClosed, match="is not open"):
        source.readline(timeout=5)
    source.refuse = None
    assert source.readline(timeout=5) == b"kept\n" and source.consumed == 1


def test_an_overlong_line_is_the_peers_fault_and_stays_readable() -> None:
    source = Source()
    source._incoming.feed(b"x" * 20 + b"\n")
    with pytest.raises(RemoteProtocolError, match="exceeds max_line=10"):
        source.readline(timeout=5, max_line=10)
    assert source.recv(100, timeout=5) == b"x" * 20 + b"\n"


def test_a_new_buffer_limit_counts_from_the_next_restart() -> None:
    source = Source(limit=4)
    source.buffer_limit = 2
    source._incoming.feed(b"abc")
    assert source._incoming.wants_data  # the old limit, until the source opens again
    source._incoming.restart()
    source._incoming.feed(b"ab")
    assert not source._incoming.wants_data and source.buffer_limit == 2
