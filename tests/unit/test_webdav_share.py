"""FolderShare (spice/webdav.py) with the real WsgiDAV and wsgiref behind it and an in-memory
port in front: the guest's side is hand-built mux frames. Checked: a file read byte-exact,
writes refused on a read-only share, nothing written or read outside the folder on a
read-write one, a path that is not a folder, garbage and too many connections costing only
their own connection, the guest's daemon restarting, the port channel lost and linked again,
and unshare closing every connection."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from atp_notebook.errors import ChannelClosed, InvalidArgument, OperationTimeout
from atp_notebook.listeners import ListenerHandle
from atp_notebook.spice.proto.port import PortEvent, PortEventKind
from atp_notebook.spice.proto.webdav_mux import FRAME_HEAD, frame
from atp_notebook.spice.webdav import FolderShare

WAIT = 10.0


class MemoryPort:
    """The share's port in memory: what the guest sends is queued, what the share sends is
    decoded with a guest-side mux."""

    def __init__(self) -> None:
        self.items: list[bytes | BaseException] = []
        self.arrived = asyncio.Event()
        self.unparsed = b""  # the share's frames, parsed by hand as the guest would
        self.replies: dict[int, bytes] = {}
        self.closed_ids: list[int] = []
        self.sent = asyncio.Event()
        self.opens = 0
        self.closes = 0
        self.listeners: list[Callable[[PortEvent], None]] = []

    guest_opened = True

    @property
    def buffered(self) -> int:
        return sum(len(i) for i in self.items if isinstance(i, bytes))

    async def open_async(self, timeout: float = 1.0) -> MemoryPort:
        self.opens += 1
        return self

    async def recv_async(self, max_bytes: int = 65536, timeout: float = 1.0) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                while not self.items:
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            raise OperationTimeout(f"memory port: nothing within {timeout} s") from None
        item = self.items[0]
        if isinstance(item, BaseException):
            self.items.pop(0)
            raise item
        out, rest = item[:max_bytes], item[max_bytes:]
        if rest:
            self.items[0] = rest
        else:
            self.items.pop(0)
        return out

    async def send_async(self, data: bytes, timeout: float = 1.0) -> None:
        self.unparsed += data
        while len(self.unparsed) >= FRAME_HEAD.size:
            client_id, size = FRAME_HEAD.unpack_from(self.unparsed)
            end = FRAME_HEAD.size + size
            if len(self.unparsed) < end:
                break
            payload, self.unparsed = self.unparsed[FRAME_HEAD.size:end], self.unparsed[end:]
            if payload:
                self.replies[client_id] = self.replies.get(client_id, b"") + payload
            else:
                self.closed_ids.append(client_id)
        self.sent.set()

    async def close_async(self) -> None:
        self.closes += 1

    def add_listener(self, listener: Callable[[PortEvent], None]) -> ListenerHandle:
        self.listeners.append(listener)
        return ListenerHandle(lambda: self.listeners.remove(listener))

    # --- the guest's side -----------------------------------------------------------------

    def feed(self, item: bytes | BaseException) -> None:
        self.items.append(item)
        self.arrived.set()

    def event(self, kind: PortEventKind) -> None:
        for listener in list(self.listeners):
            listener(PortEvent(kind))

    async def request(self, client_id: int, raw: bytes, chunk: int = 1000) -> bytes:
        """Send ``raw`` as connection ``client_id`` (in frames of ``chunk`` bytes) and
        return the response, complete once the share closes the connection."""
        self.replies.pop(client_id, None)
        closes = self.closed_ids.count(client_id)
        for start in range(0, len(raw), chunk):
            self.feed(frame(client_id, raw[start:start + chunk]))
        async with asyncio.timeout(WAIT):
            while self.closed_ids.count(client_id) == closes:
                self.sent.clear()
                await self.sent.wait()
        return self.replies.get(client_id, b"")


def http(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:9843\r\n"
            f"Content-Length: {len(body)}\r\n{headers}\r\n").encode() + body


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def body(reply: bytes) -> bytes:
    return reply.split(b"\r\n\r\n", 1)[1]


def run(folder: Path, scenario: Callable[[FolderShare, MemoryPort], Awaitable[None]], *,
        read_only: bool = True, max_clients: int = 8) -> None:
    async def main() -> None:
        port = MemoryPort()
        share = FolderShare(port, folder, read_only=read_only, max_clients=max_clients)
        await share._start(WAIT)
        try:
            await scenario(share, port)
        finally:
            await share._unshare(WAIT)

    asyncio.run(main())


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "data.bin").write_bytes(os.urandom(300_000))
    (folder / "sub").mkdir()
    (folder / "sub" / "note.txt").write_text("inside\n")
    (tmp_path / "secret.txt").write_text("TOP-SECRET\n")
    return folder


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_the_guest_reads_a_file_byte_exact(shared: Path) -> None:
    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        reply = await port.request(-7, http("GET", "/data.bin"))
        assert status(reply) == 200
        assert body(reply) == (shared / "data.bin").read_bytes()
        reply = await port.request(8, http("GET", "/sub/note.txt"), chunk=3)
        assert body(reply) == b"inside\n"
        assert share.served == 2

    run(shared, scenario)


@pytest.mark.parametrize("method,path,extra", [
    ("PUT", "/new.txt", ""),
    ("PUT", "/data.bin", ""),
    ("DELETE", "/data.bin", ""),
    ("MKCOL", "/newdir", ""),
    ("MOVE", "/data.bin", "Destination: http://127.0.0.1:9843/moved.bin\r\n"),
    ("COPY", "/data.bin", "Destination: http://127.0.0.1:9843/copy.bin\r\n"),
])
def test_a_read_only_share_refuses_writes_with_403(shared: Path, method: str, path: str,
                                                   extra: str) -> None:
    before = {p: p.read_bytes() for p in shared.rglob("*") if p.is_file()}

    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        content = b"hello" if method == "PUT" else b""
        reply = await port.request(1, http(method, path, content, extra))
        assert status(reply) == 403

    run(shared, scenario)
    assert {p: p.read_bytes() for p in shared.rglob("*") if p.is_file()} == before


def test_a_read_write_share_takes_a_put(shared: Path) -> None:
    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        reply = await port.request(1, http("PUT", "/sub/new.txt", b"written by the guest"))
        assert status(reply) in (201, 204)

    run(shared, scenario, read_only=False)
    assert (shared / "sub" / "new.txt").read_bytes() == b"written by the guest"


@pytest.mark.parametrize("path", ["/../escape.txt", "/%2e%2e/escape.txt",
                                  "/sub/../../escape.txt", "/sub/%2E%2E/%2E%2E/escape.txt",
                                  "/link/escape.txt"])
def test_nothing_is_written_outside_a_read_write_share(shared: Path, path: str) -> None:
    (shared / "link").symlink_to(shared.parent)  # a symlink in the share leading out
    outside_before = listing(shared.parent)

    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        await port.request(1, http("PUT", path, b"escaped"))
        reply = await port.request(
            2, http("COPY", "/sub/note.txt", b"",
                    f"Destination: http://127.0.0.1:9843{path}\r\n"))
        assert status(reply) >= 400 or not (shared.parent / "escape.txt").exists()

    run(shared, scenario, read_only=False)
    assert not (shared.parent / "escape.txt").exists()
    new = set(listing(shared.parent)) - set(outside_before)
    assert all(p.startswith("shared/") for p in new), new


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/link/secret.txt"])
def test_nothing_outside_the_share_is_read(shared: Path, path: str) -> None:
    (shared / "link").symlink_to(shared.parent)

    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        reply = await port.request(1, http("GET", path))
        assert b"TOP-SECRET" not in reply
        assert status(reply) in (400, 403, 404)

    run(shared, scenario)


def test_a_path_that_is_not_a_folder_is_invalid(shared: Path) -> None:
    with pytest.raises(InvalidArgument, match="is not a folder"):
        FolderShare(MemoryPort(), shared / "data.bin")
    with pytest.raises(InvalidArgument, match="does not exist"):
        FolderShare(MemoryPort(), shared / "missing")


def test_garbage_costs_only_its_connection(shared: Path) -> None:
    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        reply = await port.request(5, b"\x00\xffnot http at all\r\n\r\n")
        assert b"400" in reply  # an HTTP/0.9 error page: no request version to answer
        reply = await port.request(6, http("GET", "/sub/note.txt"))
        assert body(reply) == b"inside\n"

    run(shared, scenario)


def test_connections_past_the_limit_are_refused_and_the_others_served(shared: Path) -> None:
    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        # two connections that send half a request and wait, a third is one too many
        port.feed(frame(1, b"GET /sub/note.txt HTTP/1.1\r\n"))
        port.feed(frame(2, b"GET /sub/note.txt HTTP/1.1\r\n"))
        port.feed(frame(3, b"GET /sub/note.txt HTTP/1.1\r\n\r\n"))
        async with asyncio.timeout(WAIT):
            while 3 not in port.closed_ids:
                port.sent.clear()
                await port.sent.wait()
        assert share.refused == 1
        assert 3 not in port.replies
        port.feed(frame(1, b"Host: x\r\n\r\n"))
        async with asyncio.timeout(WAIT):
            while 1 not in port.closed_ids:
                port.sent.clear()
                await port.sent.wait()
        assert body(port.replies[1]) == b"inside\n"

    run(shared, scenario, max_clients=2)


def test_the_guest_daemon_restarting_drops_its_connections(shared: Path) -> None:
    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        port.feed(frame(1, b"GET /sub/no"))  # an unfinished request, then half a frame
        port.feed(frame(2, b"whatever")[:5])
        await asyncio.sleep(0.2)
        assert share.connections == 1
        port.event(PortEventKind.CLOSED)  # the daemon exited; a new one starts afresh
        port.event(PortEventKind.OPENED)
        reply = await port.request(1, http("GET", "/sub/note.txt"))
        assert body(reply) == b"inside\n"

    run(shared, scenario)


def test_a_lost_port_channel_is_linked_again(shared: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("atp_notebook.spice.webdav.RECONNECT_DELAY_S", 0.01)

    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        port.feed(frame(1, b"GET /sub/no"))
        port.feed(ChannelClosed("the port channel ended"))
        await share._wait_ready(WAIT)
        reply = await port.request(1, http("GET", "/sub/note.txt"))
        assert body(reply) == b"inside\n"
        assert (share.losses, port.opens) == (1, 2)

    run(shared, scenario)


def test_unshare_closes_every_connection_and_the_port(shared: Path) -> None:
    async def main() -> None:
        port = MemoryPort()
        share = FolderShare(port, shared)
        await share._start(WAIT)
        port.feed(frame(4, b"GET /data.bin HTTP/1.1\r\n"))  # waits for its blank line
        async with asyncio.timeout(WAIT):
            while share.connections == 0:
                await asyncio.sleep(0.01)
        await share._unshare(WAIT)
        assert port.closed_ids == [4]  # the guest was told
        assert (share.connections, share.sharing, port.closes) == (0, False, 1)
        assert port.listeners == []
        await share._unshare(WAIT)  # idempotent
        assert port.closes == 1

    asyncio.run(main())


def test_an_idle_share_keeps_serving(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("atp_notebook.spice.webdav.IDLE_POLL_S", 0.02)

    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        await asyncio.sleep(0.2)  # several idle waits ran out
        assert share.sharing
        reply = await port.request(3, http("GET", "/sub/note.txt"))
        assert body(reply) == b"inside\n"

    run(shared, scenario)


def test_one_port_serves_one_share_at_a_time(shared: Path) -> None:
    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        with pytest.raises(InvalidArgument, match="one shared folder per VM"):
            await FolderShare(port, shared / "sub")._start(WAIT)
        await share._unshare(WAIT)
        second = FolderShare(port, shared / "sub")
        await second._start(WAIT)
        reply = await port.request(1, http("GET", "/note.txt"))
        assert body(reply) == b"inside\n"
        await second._unshare(WAIT)

    run(shared, scenario)


def test_unshare_ends_a_share_whose_loop_failed(shared: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        port = MemoryPort()
        share = FolderShare(port, shared)
        await share._start(WAIT)
        port.feed(RuntimeError("a bug in the port"))  # no transport error: the loop stops
        async with asyncio.timeout(WAIT):
            while share.sharing:
                await asyncio.sleep(0.01)
        await share._unshare(WAIT)  # does not raise; the port is closed all the same
        assert port.closes == 1

    asyncio.run(main())
    assert "stopped serving" in caplog.text


def test_a_daemon_closing_with_frames_unread_resets_after_them(shared: Path) -> None:
    async def scenario(share: FolderShare, port: MemoryPort) -> None:
        # the old daemon's last frames, still buffered when its close arrives: a whole
        # frame and the first 5 bytes of another (it died mid-frame)
        port.feed(frame(1, b"GET /sub/no"))
        port.feed(frame(2, b"whatever")[:5])
        port.event(PortEventKind.CLOSED)
        port.event(PortEventKind.OPENED)
        # the new daemon's stream starts on a frame boundary: it parses as such only if
        # the share reset its mux after the old bytes (it used to read on forever)
        reply = await port.request(1, http("GET", "/sub/note.txt"))
        assert body(reply) == b"inside\n"
        assert 2 not in port.replies

    run(shared, scenario)
