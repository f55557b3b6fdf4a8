"""The WebDAV multiplex core (spice/proto/webdav_mux.py) fed hand-built frames: the
layout, frames split anywhere, interleaved connections, closes from both sides, resets and
a guest opening more connections than allowed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atp_notebook.errors import InvalidArgument, LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.webdav_mux import (
    MAX_FRAME_DATA,
    ClientClosed,
    ClientData,
    ClientOpened,
    ClientRefused,
    WebdavMux,
    frame,
)


def raw(client_id: int, data: bytes = b"") -> bytes:
    """A frame written out by hand: int64 id, uint16 size, both little-endian."""
    return struct.pack("<q", client_id) + struct.pack("<H", len(data)) + data


def test_the_layout_is_int64_id_uint16_size_then_data() -> None:
    assert frame(1, b"ab") == b"\x01\0\0\0\0\0\0\0" + b"\x02\0" + b"ab"
    assert frame(-2) == b"\xfe" + b"\xff" * 7 + b"\0\0"  # ids are signed (phodav's pointers)


def test_a_first_frame_opens_a_connection() -> None:
    mux = WebdavMux()
    assert mux.receive_data(raw(7, b"GET / HTTP/1.1\r\n")) == [
        ClientOpened(7), ClientData(7, b"GET / HTTP/1.1\r\n")]
    assert mux.receive_data(raw(7, b"\r\n")) == [ClientData(7, b"\r\n")]
    assert mux.clients == {7}


def test_frames_split_anywhere_give_the_same_events() -> None:
    stream = raw(1, b"hello") + raw(-5, b"x" * 300) + raw(1, b"world") + raw(1)
    whole = WebdavMux().receive_data(stream)
    mux = WebdavMux()
    split: list[object] = []
    for i in range(len(stream)):
        split += mux.receive_data(stream[i:i + 1])
    assert split == whole == [ClientOpened(1), ClientData(1, b"hello"), ClientOpened(-5),
                              ClientData(-5, b"x" * 300), ClientData(1, b"world"),
                              ClientClosed(1)]
    assert mux.clients == {-5}
    assert mux.partial == 0


@given(st.lists(st.tuples(st.integers(-2**63, 2**63 - 1), st.binary(min_size=1,
                                                                      max_size=200)),
                max_size=20), st.integers(1, 97))
def test_any_chunking_keeps_each_connection_in_order(frames: list[tuple[int, bytes]],
                                                      chunk: int) -> None:
    stream = b"".join(raw(c, d) for c, d in frames)
    mux = WebdavMux(max_clients=len(frames) + 1)
    got: dict[int, bytes] = {}
    for start in range(0, len(stream), chunk):
        for event in mux.receive_data(stream[start:start + chunk]):
            if isinstance(event, ClientData):
                got[event.client_id] = got.get(event.client_id, b"") + event.data
    want: dict[int, bytes] = {}
    for c, d in frames:
        want[c] = want.get(c, b"") + d
    assert got == want


def test_a_partial_frame_waits_for_its_rest() -> None:
    mux = WebdavMux()
    data = raw(3, b"z" * MAX_FRAME_DATA)
    assert mux.receive_data(data[:-1]) == []
    assert mux.partial == len(data) - 1
    assert mux.receive_data(data[-1:]) == [ClientOpened(3), ClientData(3, b"z" * MAX_FRAME_DATA)]


def test_sending_splits_into_frames_of_at_most_64k() -> None:
    mux = WebdavMux()
    mux.receive_data(raw(9, b"GET"))
    assert mux.send_data(9, b"a" * (MAX_FRAME_DATA + 10)) == 2
    assert mux.send_data(9, b"") == 0  # an empty frame would close the connection
    out = mux.data_to_send()
    assert out == raw(9, b"a" * MAX_FRAME_DATA) + raw(9, b"a" * 10)
    assert mux.data_to_send() == b""


def test_closing_from_our_side_sends_a_size_zero_frame_and_frees_the_id() -> None:
    mux = WebdavMux()
    mux.receive_data(raw(4, b"GET"))
    mux.close_client(4)
    assert mux.data_to_send() == raw(4)
    assert mux.clients == frozenset()
    # the guest's own close crossing ours is no event; its next request is a new connection
    assert mux.receive_data(raw(4)) == []
    assert mux.receive_data(raw(4, b"GET")) == [ClientOpened(4), ClientData(4, b"GET")]


def test_sending_to_a_connection_that_is_not_open_is_our_error() -> None:
    mux = WebdavMux()
    with pytest.raises(LocalProtocolError, match="connection 5 is not open"):
        mux.send_data(5, b"x")
    with pytest.raises(LocalProtocolError):
        mux.close_client(5)
    with pytest.raises(LocalProtocolError, match="at most 65535"):
        frame(1, bytes(MAX_FRAME_DATA + 1))


def test_a_close_for_an_unknown_id_is_ignored() -> None:
    mux = WebdavMux()
    assert mux.receive_data(raw(123) + raw(-1)) == []
    assert mux.data_to_send() == b""


def test_reset_forgets_every_connection_and_a_partial_frame() -> None:
    mux = WebdavMux()
    mux.receive_data(raw(2, b"a") + raw(1, b"b") + raw(3, b"cc")[:5])
    mux.send_data(1, b"unsent")
    assert mux.reset() == [ClientClosed(1), ClientClosed(2)]
    assert (mux.clients, mux.partial, mux.data_to_send()) == (frozenset(), 0, b"")
    # the guest's restarted daemon starts a fresh stream
    assert mux.receive_data(raw(1, b"x")) == [ClientOpened(1), ClientData(1, b"x")]


def test_connections_past_the_limit_are_refused_and_the_others_go_on() -> None:
    mux = WebdavMux(max_clients=2)
    events = mux.receive_data(raw(1, b"a") + raw(2, b"b") + raw(3, b"c") + raw(1, b"d"))
    refused = [e for e in events if isinstance(e, ClientRefused)]
    assert [e.client_id for e in refused] == [3]
    assert isinstance(refused[0].error, RemoteProtocolError)
    assert "limit is 2" in str(refused[0].error)
    assert ClientData(1, b"d") in events
    assert mux.data_to_send() == raw(3)  # the refusal tells the guest
    assert (mux.clients, mux.refused) == (frozenset({1, 2}), 1)
    # one closes: the next newcomer is let in
    assert mux.receive_data(raw(2) + raw(3, b"again")) == [
        ClientClosed(2), ClientOpened(3), ClientData(3, b"again")]


def test_a_flood_of_garbage_ids_stays_bounded() -> None:
    mux = WebdavMux(max_clients=4)
    flood = b"".join(raw(i, b"\xff") for i in range(10_000))
    events = mux.receive_data(flood)
    assert len(mux.clients) == 4
    assert mux.refused == 10_000 - 4
    assert sum(isinstance(e, ClientRefused) for e in events) == 10_000 - 4
    assert mux.partial == 0


def test_max_clients_must_be_positive() -> None:
    with pytest.raises(InvalidArgument, match="max_clients"):
        WebdavMux(max_clients=0)
