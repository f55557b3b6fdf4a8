"""A host that accepts and never answers: callers give up within their timeout, share the
one open under way, and close() does not wait for it.

The peer is a local socket that accepts and holds connections without a byte in reply (a
hostile or wedged libvirtd); the client is the real libvirt library.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from atp_notebook.errors import HostUnavailable
from atp_notebook.loop import run
from atp_notebook.virt.host import HostConnection, HostState
from tests.unit.loop_ticks import loop_ticks


class WedgedPeer:
    """Accepts TCP connections and never answers; ``release()`` hangs up on all of them."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"qemu+tcp://127.0.0.1:{self.server.getsockname()[1]}/system"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed by release()
                return
            self.held.append(conn)

    def release(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def state_of(host: HostConnection) -> HostState:
    return host.state  # read through a call: mypy would keep a state narrowed before close()


@pytest.fixture
def peer() -> Iterator[WedgedPeer]:
    wedged = WedgedPeer()
    yield wedged
    wedged.release()


def test_blocking_and_async_callers_give_up_in_time_and_share_one_attempt(
    peer: WedgedPeer,
) -> None:
    host = HostConnection("wedged", peer.uri, connect_timeout=30)
    started = time.monotonic()
    with pytest.raises(HostUnavailable, match=r"no connection to qemu\+tcp://.* within 0\.3 s"):
        host.connection(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert state_of(host) is HostState.CONNECTING

    async def async_caller() -> tuple[float, int]:
        began = time.monotonic()
        async with loop_ticks() as ticks:
            with pytest.raises(HostUnavailable, match=r"within 0\.3 s"):
                await host.get(timeout=0.3)
        return time.monotonic() - began, ticks.count

    took, ticks = asyncio.run(async_caller())
    assert 0.3 <= took < 2.0
    assert ticks >= 10  # the caller's loop ran on while it waited
    # both callers waited on the first open: the peer saw one connection, not two
    assert len(peer.held) == 1
    assert host.stats.opens == 0 and host.stats.failures == 0

    # closing does not wait for the open that never returns
    began = time.monotonic()
    run(host.close(), timeout=10)
    assert time.monotonic() - began < 2.0
    with pytest.raises(HostUnavailable, match="closed"):
        host.connection(timeout=1)

    # once the peer hangs up, the abandoned open fails and the host stays closed
    peer.release()
    deadline = time.monotonic() + 10
    while host.stats.failures == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert host.stats.failures == 1
    assert state_of(host) is HostState.CLOSED
