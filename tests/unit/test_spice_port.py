"""Spice ports through the user's API (``vm.port``) on a small Spice server on loopback
(tests/hostile_spice.py) whose port channels echo: names found by linking, data both ways,
guest events, several ports, bounded buffering with the socket left unread, and a port
that fails alone (garbage ends it; Main and Inputs go on; the next call opens it again).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from atp_notebook.errors import ChannelClosed, InvalidArgument
from atp_notebook.lab.display_vms import DISPLAY_SETTINGS, PORT_SETTING, display_domain_xml
from atp_notebook.lab.guest import GuestImage
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.port_echo import echo_script
from atp_notebook.loop import run
from atp_notebook.notebook.commands.spice import channel_rows
from atp_notebook.session import Session, Vm, connect
from atp_notebook.spice.aio.channel import READ_CHUNK, ChannelStatus
from atp_notebook.spice.port import PortState, SpicePort
from atp_notebook.spice.proto.constants import ChannelType, InputsMsgc
from atp_notebook.spice.proto.port import (
    SERVER_MAX_DATA,
    SPICEVMC_DATA,
    PortEvent,
    PortEventKind,
)
from atp_notebook.spice.vm import ChannelInfo
from tests.hostile_spice import Gate, HostileSpiceServer, Raw, Send, ServerThread, Step
from tests.settling import settled

TIMEOUT = 10.0
NAMES = ("com.atp.echo", "com.atp.second")
GUEST = GuestImage(Path("/lab/guest/vmlinuz"), Path("/lab/guest/initrd.img"), "console=ttyS0",
                   "d" * 64)
A_SCANCODE = 0x1E


def pattern(size: int, seed: int = 0) -> bytes:
    """Bytes that show a reordering or a loss (not a repeating short period)."""
    return bytes((i * 7 + i // 251 + seed) & 0xFF for i in range(size))


class Harness:
    def __init__(self, thread: ServerThread, session: Session) -> None:
        self.thread = thread
        self.server = thread.server
        self.vm: Vm = session.vm("hostile")

    def port_links(self, channel_id: int) -> int:
        return sum(1 for link in self.server.links
                   if (link.channel_type, link.channel_id) == (ChannelType.PORT, channel_id))

    def main_and_inputs_live(self) -> None:
        """Main answers the server's pings; a key typed now reaches the server."""
        assert len(self.thread.run(self.server.ping(ChannelType.MAIN, count=3))) == 3
        before = len(self.server.key_messages())
        self.vm.type("a", timeout=TIMEOUT)
        self.thread.run(self.server.wait_until(
            lambda: len(self.server.key_messages()) > before, TIMEOUT, "the typed key"))
        key = self.server.key_messages()[-1]
        assert key.msg_type == InputsMsgc.KEY_SCANCODE and key.body[:1] == b"\x1e"


def harness(tmp_path: Path, scripts: dict[str, Sequence[Step]] | None = None,
            ) -> Iterator[Harness]:
    server = HostileSpiceServer(ports=NAMES, port_scripts=scripts)
    with ServerThread(server) as thread:
        config = tmp_path / "atp.yaml"
        config.write_text("transport:\n  spice:\n    vms:\n    - vm_id: hostile\n"
                          f"      server_addr: 127.0.0.1\n      port: {server.port}\n")
        session = connect(config)
        try:
            yield Harness(thread, session)
        finally:
            session.close()


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Harness]:
    yield from harness(tmp_path)


def test_echo_through_a_port_byte_exact(echo: Harness) -> None:
    port = echo.vm.port("com.atp.echo", timeout=TIMEOUT)
    assert (port.state, port.channel_id, port.guest_opened) == (PortState.OPEN, 0, True)
    data = pattern(300_000)  # several 64 KiB messages each way
    port.send(data, timeout=TIMEOUT)
    assert port.recv_exactly(len(data), timeout=TIMEOUT) == data
    port.send(b"one line\nand the next\n", timeout=TIMEOUT)
    assert port.readline(timeout=TIMEOUT) == b"one line\n"
    assert port.readline(timeout=TIMEOUT) == b"and the next\n"
    # the client never sent more than the server's own largest message
    sizes = [len(m.body) for m in echo.server.link(ChannelType.PORT, 0).received
             if m.msg_type == SPICEVMC_DATA]
    assert max(sizes) <= SERVER_MAX_DATA and sum(sizes) == len(data) + 22
    # only the port asked for was linked: the second one is not named yet
    assert echo.port_links(0) == 1 and echo.port_links(1) == 0
    assert echo.vm.port("com.atp.echo") is port  # one object per name


def test_the_guest_side_opening_and_closing_are_events(echo: Harness) -> None:
    port = echo.vm.port("com.atp.echo", timeout=TIMEOUT)
    heard: list[PortEvent] = []
    with port.add_listener(heard.append):
        echo.thread.call(lambda: echo.server.port_event(0, PortEventKind.CLOSED))
        port.wait_guest(opened=False, timeout=TIMEOUT)
        assert not port.guest_opened
        echo.thread.call(lambda: echo.server.port_event(0, PortEventKind.OPENED))
        port.wait_guest(opened=True, timeout=TIMEOUT)
    assert heard == [PortEvent(PortEventKind.CLOSED), PortEvent(PortEventKind.OPENED)]


def test_two_ports_at_once(echo: Harness) -> None:
    first = echo.vm.port("com.atp.echo", timeout=TIMEOUT)
    second = echo.vm.port("com.atp.second", timeout=TIMEOUT)
    assert (first.channel_id, second.channel_id) == (0, 1)
    a, b = pattern(200_000, 1), pattern(150_000, 2)
    first.send(a[:100_000], timeout=TIMEOUT)
    second.send(b, timeout=TIMEOUT)
    first.send(a[100_000:], timeout=TIMEOUT)
    assert second.recv_exactly(len(b), timeout=TIMEOUT) == b
    assert first.recv_exactly(len(a), timeout=TIMEOUT) == a
    rows = {(row.type, row.id, row.name, row.status) for row in echo.vm.spice.channels()}
    assert {("port", 0, "com.atp.echo", "open"), ("port", 1, "com.atp.second", "open")} <= rows


def test_an_unknown_name_lists_the_ports_the_vm_has(echo: Harness) -> None:
    with pytest.raises(InvalidArgument,
                       match=r"no Spice port 'com\.nope' \(its ports: com\.atp\.echo, "
                             r"com\.atp\.second\)") as caught:
        echo.vm.port("com.nope", timeout=TIMEOUT)
    assert "spiceport" in (caught.value.hint or "")
    # the ports linked to be named were closed again; a known one opens without a new probe
    def open_ports() -> list[int]:
        return [row.id for row in echo.vm.spice.channels() if row.type == "port"]

    none: list[int] = []
    assert settled(open_ports, none) == none
    echo.vm.port("com.atp.second", timeout=TIMEOUT)
    assert echo.port_links(1) == 2


def test_a_port_closed_by_us_refuses_until_opened_again(echo: Harness) -> None:
    port = echo.vm.port("com.atp.echo", timeout=TIMEOUT)
    port.close()
    assert port.state is PortState.CLOSED
    with pytest.raises(ChannelClosed, match="was closed"):
        port.send(b"x", timeout=TIMEOUT)
    with port:  # opens it again
        port.send(b"back\n", timeout=TIMEOUT)
        assert port.readline(timeout=TIMEOUT) == b"back\n"
    assert port.state is PortState.CLOSED


BULK_MESSAGE = pattern(64 * 1024, 3)
BULK_COUNT = 48  # 3 MiB the server pushes at once, far more than the buffer limit
BUFFER_LIMIT = 128 * 1024


def test_a_slow_reader_stops_the_socket_not_memory(tmp_path: Path) -> None:
    scripts: dict[str, Sequence[Step]] = {
        "com.atp.echo": (Send(SPICEVMC_DATA, BULK_MESSAGE, count=BULK_COUNT),)}
    for h in harness(tmp_path, scripts):
        port = h.vm.spice.ports.get("com.atp.echo")
        port.buffer_limit = BUFFER_LIMIT
        port.open(timeout=TIMEOUT)
        assert settled(lambda: port.paused > 0, True) is True  # noqa: B023 - used at once
        # one socket read (and a message under way) over the limit at most, ever
        bound = BUFFER_LIMIT + READ_CHUNK + SERVER_MAX_DATA
        got = bytearray()
        while len(got) < BULK_COUNT * len(BULK_MESSAGE):
            assert port.buffered <= bound
            got += port.recv(100_000, timeout=TIMEOUT)
        assert got == BULK_MESSAGE * BULK_COUNT
        assert port.paused > 1  # stopped and resumed again and again
        h.main_and_inputs_live()


GARBAGE = {
    # LZ4 data to a client that never announced the cap
    "COMPRESSED_DATA": struct.pack("<HI", 102, 5) + struct.pack("<BI", 1, 10),
    # a data message larger than spice-server can send: refused from its header
    "more than the limit": struct.pack("<HI", SPICEVMC_DATA, 64 * 2**20),
    "PORT_EVENT: 3-byte": struct.pack("<HI", 202, 3) + b"\0\0\0",
    "second PORT_INIT": struct.pack("<HIIIB", 201, 11, 2, 9, 1) + b"x\0",
}


@pytest.mark.parametrize("why", sorted(GARBAGE))
def test_garbage_ends_the_port_alone_and_it_reopens_on_next_use(tmp_path: Path,
                                                                 why: str) -> None:
    scripts: dict[str, Sequence[Step]] = {
        "com.atp.echo": (Send(SPICEVMC_DATA, b"before\n"), Gate(), Raw(GARBAGE[why]))}
    for h in harness(tmp_path, scripts):
        port = h.vm.port("com.atp.echo", timeout=TIMEOUT)
        assert port.readline(timeout=TIMEOUT) == b"before\n"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(port.recv, 10, TIMEOUT)  # a reader waiting for data
            assert settled(lambda: port.buffered == 0 and not waiting.done(),  # noqa: B023
                           True)
            h.thread.call(h.server.open_gate)
            with pytest.raises(ChannelClosed, match=why):
                waiting.result(TIMEOUT)
        assert port.state.value == "lost"
        h.main_and_inputs_live()
        # the next call links the port again and the echo works
        port.send(b"again\n", timeout=TIMEOUT)
        assert port.readline(timeout=TIMEOUT) == b"again\n"
        assert port.state is PortState.OPEN and h.port_links(0) == 2


def test_a_loss_before_the_read_is_told_to_that_read_and_the_next_read_reopens(
        tmp_path: Path) -> None:
    # the loss must not vanish because no reader was waiting when it came: a read after it
    # used to link the port again at once and wait there (the %spice --channels test saw
    # "recv: nothing within 10 s" whenever the garbage won the race against its recv)
    why = "more than the limit"
    for h in harness(tmp_path, {"com.atp.echo": (Gate(), Raw(GARBAGE[why]))}):
        port = h.vm.port("com.atp.echo", timeout=TIMEOUT)
        h.thread.call(h.server.open_gate)
        assert settled(lambda: port.state.value, "lost") == "lost"  # noqa: B023
        with pytest.raises(ChannelClosed, match=why):
            port.recv(10, timeout=TIMEOUT)
        assert h.port_links(0) == 1  # told, not reopened
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(port.readline, TIMEOUT)  # this read opens it again
            assert settled(lambda: (h.port_links(0), port.state.value),  # noqa: B023
                           (2, "open")) == (2, "open")
            port.send(b"again\n", timeout=TIMEOUT)
            assert waiting.result(TIMEOUT) == b"again\n"


def test_a_read_between_the_channel_failing_and_its_end_event_is_told_the_loss(
        tmp_path: Path) -> None:
    # a failing channel marks itself failed, then awaits its socket's close, and only then
    # is its end routed to the port: a read in that gap linked the port again and waited
    # on the new link (the %spice --channels test, 1 run in ~35)
    why = "more than the limit"
    for h in harness(tmp_path, {"com.atp.echo": (Gate(), Raw(GARBAGE[why]))}):
        port = h.vm.port("com.atp.echo", timeout=TIMEOUT)
        channel = port.connection.channel(ChannelType.PORT, 0)

        async def read_in_the_gap() -> str:
            while channel.status is ChannelStatus.OPEN:  # noqa: B023
                await asyncio.sleep(0)
            try:
                await port.recv_async(10, timeout=TIMEOUT)  # noqa: B023
            except ChannelClosed as exc:
                return str(exc)
            return "no error"

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            reading = pool.submit(run, read_in_the_gap(), TIMEOUT)
            h.thread.call(h.server.open_gate)
            assert why in reading.result(TIMEOUT)
        assert h.port_links(0) == 1  # told, not linked again past the loss


def test_async_forms(echo: Harness) -> None:
    async def scenario() -> bytes:
        port: SpicePort = await echo.vm.port_async("com.atp.second", timeout=TIMEOUT)
        await port.send_async(b"async\n", timeout=TIMEOUT)
        line = await port.readline_async(timeout=TIMEOUT)
        await port.close_async()
        return line

    assert asyncio.run(scenario()) == b"async\n"


def test_the_port_vm_has_a_spiceport_chardev_per_name(tmp_path: Path) -> None:
    root = ET.fromstring(display_domain_xml(LabPaths(tmp_path), PORT_SETTING, 5917, GUEST))
    ports = [(c.get("type"), c.find("source").get("channel"),  # type: ignore[union-attr]
              c.find("target").get("type"), c.find("target").get("name"))  # type: ignore[union-attr]
             for c in root.findall("devices/channel") if c.get("type") == "spiceport"]
    assert ports == [("spiceport", n, "virtio", n) for n in ("com.atp.echo", "com.atp.second")]
    assert PORT_SETTING.name not in DISPLAY_SETTINGS  # a VM of its own, no display setting


def test_the_guest_echo_refuses_names_that_are_no_port() -> None:
    for bad in ("", "../x", "a/b"):
        with pytest.raises(InvalidArgument):
            echo_script(bad)
    assert "/dev/virtio-ports/com.atp.echo" in echo_script("com.atp.echo")


def test_the_channels_table_names_a_port() -> None:
    info = ChannelInfo("port", 1, "open", False, 10, 20, 3, 0, 1.5, None, name="com.atp.second")
    assert channel_rows([info])[0][:3] == ["port com.atp.second", "1", "open"]
