"""Fault isolation with hostile bytes, table-driven (issue 16): a small Spice server on
loopback (tests/hostile_spice.py) serves Main, Inputs, Display, Cursor, Playback and a port
channel; Port, Cursor and Playback in turn (:data:`VICTIMS`) send garbage once every channel
is open.
That channel alone fails (``failed`` in ``channel_states()``, its error naming what was
wrong); Main still answers pings, a key still reaches Inputs, every other channel is the
same connection as before and still works, and the victim links again on its next use.
The lab's real server: tests/integration/test_channel_isolation.py (sockets killed)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atp_notebook.loop import get_loop, run
from atp_notebook.session import Vm, connect
from atp_notebook.spice.aio.channel import ChannelStatus, SpiceChannel
from atp_notebook.spice.proto.constants import ChannelType, CursorMsg, InputsMsgc
from atp_notebook.spice.proto.cursor import CURSOR_HEADER, INIT_HEAD, SET_HEAD, CursorType
from atp_notebook.spice.proto.playback import PLAYBACK_MODE, PLAYBACK_VOLUME
from atp_notebook.spice.proto.port import SPICEVMC_DATA
from tests.hostile_spice import Gate, HostileSpiceServer, Raw, Send, ServerThread, Step
from tests.settling import settled

TIMEOUT = 10.0
ECHO = "com.atp.echo"
# a cursor INIT at (5, 5), visible, with a 2x2 ALPHA shape (hot spot 0, 0)
# a playback channel's greeting: RAW mode, a volume; no sound
PLAYBACK_HELLO = (Send(PLAYBACK_MODE, struct.pack("<IH", 1, 1)),
                  Send(PLAYBACK_VOLUME, struct.pack("<BHH", 2, 100, 200)))
CURSOR_INIT = Send(CursorMsg.INIT, INIT_HEAD.pack(5, 5, 0, 0, 1) + struct.pack("<H", 0)
                   + CURSOR_HEADER.pack(1, CursorType.ALPHA, 2, 2, 0, 0) + bytes(16))


@dataclass(frozen=True)
class Victim:
    """A channel that turns hostile: the garbage it sends (after the test's gate) and
    what in the error says so."""

    name: str
    channel_type: ChannelType
    garbage: Step
    error: str  # a fragment of the channel's error


VICTIMS = [
    # a data message larger than spice-server can send: refused from its header
    Victim("port", ChannelType.PORT, Raw(struct.pack("<HI", SPICEVMC_DATA, 64 * 2**20)),
           "more than the limit"),
    # a SET whose shape has a type no Spice version defines
    Victim("cursor", ChannelType.CURSOR, Send(CursorMsg.SET, SET_HEAD.pack(1, 1, 1)
                                              + struct.pack("<H", 0)
                                              + CURSOR_HEADER.pack(2, 99, 4, 4, 0, 0)),
           "99"),
    # a mode the client never announced (OPUS)
    Victim("playback", ChannelType.PLAYBACK, Send(PLAYBACK_MODE, struct.pack("<IH", 9, 3)),
           "OPUS"),
]


def server_for(victim: Victim) -> HostileSpiceServer:
    """Every channel benign but the victim, which sends its garbage at the gate (and is
    benign again when linked a second time)."""
    hostile = (Gate(), victim.garbage)
    cursor_first = (CURSOR_INIT, *hostile) if victim.channel_type is ChannelType.CURSOR \
        else (CURSOR_INIT,)
    playback_first = (*PLAYBACK_HELLO, *hostile) \
        if victim.channel_type is ChannelType.PLAYBACK else PLAYBACK_HELLO
    return HostileSpiceServer(
        ports=(ECHO,),
        port_scripts={ECHO: hostile} if victim.channel_type is ChannelType.PORT else None,
        cursor=[cursor_first, (CURSOR_INIT,)], playback=[playback_first, PLAYBACK_HELLO])


class Harness:
    def __init__(self, thread: ServerThread, vm: Vm) -> None:
        self.thread = thread
        self.server = thread.server
        self.vm = vm

    def channel(self, channel_type: ChannelType) -> SpiceChannel:
        return self.vm.spice.channel(channel_type, 0)

    def states(self) -> dict[str, tuple[str, str | None]]:
        infos = get_loop().call(self.vm.spice.channel_states(TIMEOUT, name_ports=False),
                                TIMEOUT + 5)
        return {c.type: (c.status, c.error) for c in infos}

    def main_and_inputs_live(self) -> None:
        """Main answers the server's pings; a key typed now reaches the server."""
        assert len(self.thread.run(self.server.ping(ChannelType.MAIN, count=2))) == 2
        before = len(self.server.key_messages())
        self.vm.type("a", timeout=TIMEOUT)
        self.thread.run(self.server.wait_until(
            lambda: len(self.server.key_messages()) > before, TIMEOUT, "the typed key"))
        assert self.server.key_messages()[-1].msg_type == InputsMsgc.KEY_SCANCODE


def use_port(h: Harness) -> None:
    port = h.vm.port(ECHO, timeout=TIMEOUT)
    port.send(b"echo\n", timeout=TIMEOUT)
    assert port.readline(timeout=TIMEOUT) == b"echo\n"


def use_cursor(h: Harness) -> None:
    assert h.vm.cursor.state(timeout=TIMEOUT).position == (5, 5)


def use_display(h: Harness) -> None:
    # opened, not drawn: the hostile display draws nothing (its garbage is
    # test_display_hostile's, through a live display that parses what arrives)
    channel = run(h.vm.spice.open_channel(ChannelType.DISPLAY, timeout=TIMEOUT), TIMEOUT + 5)
    assert channel.status is ChannelStatus.OPEN


def use_playback(h: Harness) -> None:
    with h.vm.audio.start_capture(timeout=TIMEOUT) as capture:
        assert h.vm.audio.playback.open
    assert capture.clip is not None  # nothing played: an empty clip, no error


USES: dict[ChannelType, Callable[[Harness], None]] = {
    ChannelType.PORT: use_port,
    ChannelType.CURSOR: use_cursor,
    ChannelType.DISPLAY: use_display,
    ChannelType.PLAYBACK: use_playback,
}


@pytest.fixture(params=VICTIMS, ids=lambda v: v.name)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Harness, Victim]]:
    victim: Victim = request.param
    with ServerThread(server_for(victim)) as thread:
        config = tmp_path / "atp.yaml"
        config.write_text("transport:\n  spice:\n    vms:\n    - vm_id: hostile\n"
                          f"      server_addr: 127.0.0.1\n      port: {thread.server.port}\n")
        session = connect(config)
        try:
            vm = session.vm("hostile")
            vm.connect_spice(timeout=TIMEOUT)  # Main linked
            yield Harness(thread, vm), victim
        finally:
            session.close()


def test_garbage_on_one_channel_ends_it_alone_and_it_reopens(
        harness: tuple[Harness, Victim]) -> None:
    h, victim = harness
    h.main_and_inputs_live()
    for use in USES.values():  # every channel open and working
        use(h)
    others = {t: h.channel(t) for t in USES if t is not victim.channel_type}
    killed = h.channel(victim.channel_type)
    kind = victim.channel_type.name.lower()

    h.thread.call(h.server.open_gate)  # the victim sends its garbage
    assert settled(lambda: killed.status, ChannelStatus.FAILED) is ChannelStatus.FAILED
    status, error = h.states()[kind]
    assert status == "failed" and error is not None and victim.error in error

    h.main_and_inputs_live()
    for channel_type, channel in others.items():
        assert h.channel(channel_type) is channel  # never lost, never relinked
        USES[channel_type](h)
    assert {t: s for t, (s, _) in h.states().items() if t != kind} == {
        t: "open" for t in ("main", "display", "inputs", "cursor", "playback", "port")
        if t != kind}

    USES[victim.channel_type](h)  # its next use links it again
    again = h.channel(victim.channel_type)
    assert again is not killed and again.status is ChannelStatus.OPEN
    assert h.states()[kind] == ("open", None)
