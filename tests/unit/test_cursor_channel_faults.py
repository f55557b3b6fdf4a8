"""vm.cursor through the user's API on a small Spice server on loopback
(tests/hostile_spice.py) whose cursor channel plays scripted messages: the state after
INIT, waits for a move and a hide, garbage ending the cursor channel alone with a
RemoteProtocolError for the waiting call (Main and Inputs go on; the next call links it
again), the server closing it mid-message, a cursor larger than the screen drawn into a
screenshot's pixels, a wait that times out, and the async forms."""

from __future__ import annotations

import asyncio
import concurrent.futures
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from atp_notebook.errors import ChannelClosed, OperationTimeout, RemoteProtocolError
from atp_notebook.session import Session, Vm, connect
from atp_notebook.spice.cursor_facade import CursorSnapshot, draw_cursor
from atp_notebook.spice.proto.constants import ChannelType, CursorMsg, InputsMsgc
from atp_notebook.spice.proto.cursor import (
    CURSOR_HEADER,
    INIT_HEAD,
    SET_HEAD,
    CursorFlags,
    CursorType,
)
from tests.hostile_spice import Close, Gate, HostileSpiceServer, Raw, Send, ServerThread, Step

TIMEOUT = 10.0
RED = 0xFFFF0000  # ARGB


def alpha_cursor(width: int, height: int, hot: tuple[int, int], argb: int = RED,
                 unique: int = 1) -> bytes:
    """A Cursor struct: flags NONE off, the header, an opaque one-colour ALPHA shape."""
    return (struct.pack("<H", 0)
            + CURSOR_HEADER.pack(unique, CursorType.ALPHA, width, height, *hot)
            + argb.to_bytes(4, "little") * (width * height))


def init(x: int, y: int, cursor: bytes, visible: int = 1) -> Send:
    return Send(CursorMsg.INIT, INIT_HEAD.pack(x, y, 0, 0, visible) + cursor)


def move(x: int, y: int) -> Send:
    return Send(CursorMsg.MOVE, struct.pack("<hh", x, y))


GARBAGE: dict[str, bytes] = {
    # a SET whose 4x4 ALPHA shape has 3 of its 64 data bytes
    "want 64": SET_HEAD.pack(1, 1, 1) + struct.pack("<H", 0)
    + CURSOR_HEADER.pack(2, CursorType.ALPHA, 4, 4, 0, 0) + b"\x01\x02\x03",
    # a shape of an unknown type
    "type 99": SET_HEAD.pack(1, 1, 1) + struct.pack("<H", 0)
    + CURSOR_HEADER.pack(2, 99, 4, 4, 0, 0),
    # a 4000x4000 cursor: beyond any real pointer (the core's cap)
    "4000x4000": SET_HEAD.pack(1, 1, 1) + struct.pack("<H", 0)
    + CURSOR_HEADER.pack(2, CursorType.ALPHA, 4000, 4000, 0, 0),
    # FROM_CACHE naming a shape never cached
    "cache": SET_HEAD.pack(1, 1, 1) + struct.pack("<H", CursorFlags.FROM_CACHE)
    + CURSOR_HEADER.pack(77, CursorType.ALPHA, 4, 4, 0, 0),
}


class Harness:
    def __init__(self, thread: ServerThread, session: Session) -> None:
        self.thread = thread
        self.server = thread.server
        self.vm: Vm = session.vm("hostile")

    def cursor_links(self) -> int:
        return sum(1 for link in self.server.links if link.channel_type == ChannelType.CURSOR)

    def main_and_inputs_live(self) -> None:
        """Main answers the server's pings; a key typed now reaches the server."""
        assert len(self.thread.run(self.server.ping(ChannelType.MAIN, count=3))) == 3
        before = len(self.server.key_messages())
        self.vm.type("a", timeout=TIMEOUT)
        self.thread.run(self.server.wait_until(
            lambda: len(self.server.key_messages()) > before, TIMEOUT, "the typed key"))
        assert self.server.key_messages()[-1].msg_type == InputsMsgc.KEY_SCANCODE


def harness(tmp_path: Path, cursor: Sequence[Sequence[Step]]) -> Iterator[Harness]:
    server = HostileSpiceServer(cursor=cursor)
    with ServerThread(server) as thread:
        config = tmp_path / "atp.yaml"
        config.write_text("transport:\n  spice:\n    vms:\n    - vm_id: hostile\n"
                          f"      server_addr: 127.0.0.1\n      port: {server.port}\n")
        session = connect(config)
        try:
            yield Harness(thread, session)
        finally:
            session.close()


def test_state_waits_and_hide(tmp_path: Path) -> None:
    script = (init(30, 40, alpha_cursor(4, 3, (1, 2))), Gate(), move(50, 60),
              Send(CursorMsg.HIDE))
    for h in harness(tmp_path, [script]):
        assert h.vm.cursor.status == "not opened"
        now = h.vm.cursor.state(timeout=TIMEOUT)
        assert (now.position, now.hotspot, now.size, now.visible) == ((30, 40), (1, 2),
                                                                       (4, 3), True)
        assert now.shape is not None and now.shape.getpixel((3, 2)) == (255, 0, 0, 255)
        assert h.vm.cursor.status == "open"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            moved = pool.submit(h.vm.cursor.wait_for_cursor,
                                lambda c: c.position == (50, 60), TIMEOUT)
            h.thread.call(h.server.open_gate)
            assert moved.result(TIMEOUT).top_left == (49, 58)
        hidden = h.vm.cursor.wait_for_cursor(lambda c: not c.visible, timeout=TIMEOUT)
        assert not hidden.shown and hidden.hotspot == (1, 2)  # the shape is kept
        assert h.vm.cursor.position == (50, 60)


def test_waiting_for_a_change_that_never_comes_times_out(tmp_path: Path) -> None:
    for h in harness(tmp_path, [(init(1, 2, alpha_cursor(2, 2, (0, 0))),)]):
        first = h.vm.cursor.state(timeout=TIMEOUT)
        with pytest.raises(OperationTimeout, match=r"cursor channel 0: no cursor matching the "
                           r"wait within 0.5 s; the cursor then: <CursorSnapshot at \(1, 2\) "
                           r"visible"):
            h.vm.cursor.wait_for_cursor(timeout=0.5)
        assert h.vm.cursor.state(timeout=TIMEOUT) == first  # the channel lives on


@pytest.mark.parametrize("why", sorted(GARBAGE))
def test_garbage_ends_the_cursor_alone_and_it_reopens_on_next_use(tmp_path: Path,
                                                                   why: str) -> None:
    first = (init(5, 5, alpha_cursor(2, 2, (0, 0))), Gate(), Send(CursorMsg.SET, GARBAGE[why]))
    second = (init(7, 8, alpha_cursor(3, 3, (1, 1), argb=0xFF00FF00)),)
    for h in harness(tmp_path, [first, second]):
        assert h.vm.cursor.state(timeout=TIMEOUT).position == (5, 5)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(h.vm.cursor.wait_for_cursor, None, TIMEOUT)
            h.thread.call(h.server.open_gate)
            with pytest.raises(RemoteProtocolError, match="hostile: cursor channel 0 ended"):
                waiting.result(TIMEOUT)
        assert h.vm.cursor.status == "closed by the server"
        h.main_and_inputs_live()
        again = h.vm.cursor.state(timeout=TIMEOUT)  # linked again: the second script
        assert (again.position, again.hotspot) == ((7, 8), (1, 1))
        assert h.cursor_links() == 2 and h.vm.cursor.status == "open"


def test_the_server_closing_mid_message_is_channel_closed_for_the_call(tmp_path: Path) -> None:
    cut = init(5, 5, alpha_cursor(8, 8, (0, 0)))
    head = struct.pack("<HI", CursorMsg.SET, 500)  # mini header: 500 bytes announced
    first = (cut, Gate(), Raw(head + b"\x00" * 20), Close())
    for h in harness(tmp_path, [first, (cut,)]):
        h.vm.cursor.state(timeout=TIMEOUT)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(h.vm.cursor.wait_for_cursor, None, TIMEOUT)
            h.thread.call(h.server.open_gate)
            with pytest.raises((ChannelClosed, RemoteProtocolError),
                               match="cursor channel 0 ended"):
                waiting.result(TIMEOUT)
        h.main_and_inputs_live()
        assert h.vm.cursor.state(timeout=TIMEOUT).position == (5, 5)


def test_a_cursor_larger_than_the_screen_is_drawn_clipped(tmp_path: Path) -> None:
    # 300x200 with its hot spot in the middle, over a 64x48 screen at (32, 24)
    for h in harness(tmp_path, [(init(32, 24, alpha_cursor(300, 200, (150, 100))),)]):
        big: CursorSnapshot = h.vm.cursor.state(timeout=TIMEOUT)
        screen = np.zeros((48, 64, 4), np.uint8)
        drawn = draw_cursor(screen, big)
        assert drawn.shape == screen.shape
        assert (drawn[..., :3] == [0, 0, 255]).all()  # red everywhere (B, G, R)


def test_async_forms(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> tuple[CursorSnapshot, CursorSnapshot]:
        now = await h.vm.cursor.state_async(timeout=TIMEOUT)
        h.thread.call(h.server.open_gate)
        moved = await h.vm.cursor.wait_for_cursor_async(lambda c: c.position == (9, 9),
                                                        timeout=TIMEOUT)
        return now, moved

    script = (init(3, 4, alpha_cursor(2, 2, (1, 1))), Gate(), move(9, 9))
    for h in harness(tmp_path, [script]):
        now, moved = asyncio.run(scenario(h))
        assert (now.position, moved.position, moved.hotspot) == ((3, 4), (9, 9), (1, 1))
