"""The Spice channel adapter against hostile or broken peers on loopback.

These peers are not Spice servers and do not pretend to be: they send garbage, stall, or
speak something else, to check that the adapter turns each into a typed error within its
timeout and leaves no socket behind.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Awaitable, Callable

import pytest

from atp_notebook.errors import (
    OperationTimeout,
    RemoteProtocolError,
    TransportError,
)
from atp_notebook.spice.aio.channel import ChannelStatus, SpiceChannel
from atp_notebook.spice.endpoint import SpiceEndpoint, SpiceTls
from atp_notebook.spice.proto.constants import ChannelType
from tests.settling import settled

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # read the link message, answer nothing, until the client leaves


async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await reader.read()


async def huge_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(struct.pack("<4sIII", b"REDQ", 2, 2, 0x7FFFFFFF))  # a 2 GiB link reply
    await writer.drain()
    await reader.read()


async def half_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(struct.pack("<4sIII", b"REDQ", 2, 2, 178) + b"\x00" * 20)
    await writer.drain()
    writer.close()  # gone in the middle of the reply


CASES: list[tuple[str, Behaviour, type[Exception], bool]] = [
    ("stalls after the link message", stall, OperationTimeout, False),
    ("answers in HTTP", http, RemoteProtocolError, False),
    ("announces a 2 GiB reply", huge_reply, RemoteProtocolError, False),
    ("closes mid-reply", half_reply, TransportError, False),
    ("speaks plain TCP on the TLS port", stall, TransportError, True),
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(("what", "behaviour", "error", "use_tls"), CASES,
                         ids=[c[0] for c in CASES])
def test_a_broken_peer_is_a_typed_error_in_time_and_leaks_nothing(
    what: str, behaviour: Behaviour, error: type[Exception], use_tls: bool
) -> None:
    async def scenario() -> tuple[BaseException | None, ChannelStatus]:
        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await behaviour(reader, writer)
            finally:  # the peer's own socket must not count as the client's leak
                writer.close()

        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        target = (SpiceEndpoint("127.0.0.1", tls_port=port, tls=SpiceTls(verify=False))
                  if use_tls else SpiceEndpoint("127.0.0.1", port=port))
        channel = SpiceChannel(target, ChannelType.MAIN)
        caught: BaseException | None = None
        try:
            await channel.open(timeout=1.0)
        except Exception as exc:
            caught = exc
        server.close()
        await server.wait_closed()
        return caught, channel.status

    before = open_fds()
    caught, status = asyncio.run(scenario())
    assert isinstance(caught, error), f"{what}: {caught!r}"
    assert status is ChannelStatus.FAILED
    # the peer's handler closes its side a moment later: poll, never a fixed sleep
    assert settled(open_fds, before) == before
