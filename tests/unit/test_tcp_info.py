"""``read_tcp_info`` against real sockets on loopback (no mocks): the kernel's smoothed RTT
of a TCP connection that carried data, and None for everything that has none."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator

import pytest

from atp_notebook.spice.aio.tcp_info import TcpInfo, read_tcp_info

TCP_ESTABLISHED = 1  # include/net/tcp_states.h


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname()[:2])
        accepted, _ = server.accept()
    with client, accepted:
        for _ in range(5):  # a few round trips give the kernel RTT samples
            client.sendall(b"ping" * 100)
            assert accepted.recv(4096)
            accepted.sendall(b"pong")
            assert client.recv(4096)
        yield client, accepted


def test_a_connection_that_carried_data_has_a_positive_rtt(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    for sock in tcp_pair:
        info = read_tcp_info(sock)
        assert isinstance(info, TcpInfo)
        assert info.state == TCP_ESTABLISHED
        assert info.rtt_us > 0 and info.rttvar_us >= 0 and info.total_retrans == 0
        assert info.rtt_ms == round(info.rtt_us / 1000, 3) > 0
        assert info.rtt_ms < 1000  # loopback: nowhere near a second
        # Debian 12's kernel has min_rtt: no sample (so no average of them) is below it
        assert info.min_rtt_us is not None and 0 < info.min_rtt_us <= info.rtt_us


def test_the_reading_agrees_with_ss(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    # ss(8) prints "rtt:<srtt ms>/<rttvar ms>" from the same struct: the layout is right
    client = tcp_pair[0]
    port = client.getsockname()[1]
    shown = subprocess.run(["ss", "-tin", "state", "established", "sport", "=", str(port)],
                           check=True, capture_output=True, text=True).stdout
    word = next(w for w in shown.split() if w.startswith("rtt:"))
    srtt_ms, rttvar_ms = (float(v) for v in word.removeprefix("rtt:").split("/"))
    info = read_tcp_info(client)
    assert info is not None
    # nothing was sent between the two readings, so the kernel took no new sample
    assert (info.rtt_us, info.rttvar_us) == (round(srtt_ms * 1000), round(rttvar_ms * 1000))
    min_rtt = next(w for w in shown.split() if w.startswith("minrtt:"))
    assert info.min_rtt_ms == float(min_rtt.removeprefix("minrtt:"))


def test_a_closed_socket_has_none(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client = tcp_pair[0]
    client.close()
    assert read_tcp_info(client) is None


def test_sockets_that_are_not_tcp_have_none() -> None:
    unix_a, unix_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with unix_a, unix_b, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert read_tcp_info(unix_a) is None
        assert read_tcp_info(udp) is None
    assert read_tcp_info(None) is None


def test_an_asyncio_stream_socket_is_read_and_closing_it_ends_the_reading() -> None:
    async def scenario() -> tuple[TcpInfo | None, TcpInfo | None]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.sockets[0].getsockname()[1])
            for _ in range(5):
                writer.write(b"hello")
                await reader.readexactly(5)
            live = read_tcp_info(writer.get_extra_info("socket"))
            writer.close()
            await writer.wait_closed()
            return live, read_tcp_info(writer.get_extra_info("socket"))

    live, closed = asyncio.run(scenario())
    assert live is not None and live.rtt_us > 0
    assert closed is None
