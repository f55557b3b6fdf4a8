"""``%spice --channels VM`` through IPython's own shell, against tests/hostile_spice.py (Main,
Display, Inputs and two port channels): every channel the server lists is a row, with its
state -- not opened, open, closed by us, failed and why -- and bad lines are one UsageError
line with a hint. The lab's servers: tests/integration/test_magics_spice_channels.py."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from atp_notebook.errors import AtpError, ChannelClosed
from atp_notebook.loop import run
from atp_notebook.notebook.results import TableResult
from atp_notebook.session import Vm
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.port import SPICEVMC_DATA
from atp_notebook.spice.vm import ChannelInfo
from tests.hostile_spice import Close, Gate, HostileSpiceServer, Raw, ServerThread
from tests.settling import settled

TIMEOUT = 10.0
PORTS = ("com.atp.echo", "com.atp.broken")
# a data message larger than spice-server can send: refused from its header
GARBAGE = struct.pack("<HI", SPICEVMC_DATA, 64 * 2**20)


@dataclass
class Shell:
    ip: InteractiveShell
    server: HostileSpiceServer
    thread: ServerThread

    def channels(self) -> TableResult:
        result = self.ip.run_line_magic("spice", "--channels hostile")
        assert isinstance(result, TableResult)
        return result

    def states(self) -> dict[tuple[str, int, str | None], str]:
        infos: list[ChannelInfo] = self.channels().value
        return {(c.type, c.id, c.name): c.status for c in infos}

    @property
    def vm(self) -> Vm:
        """The VM the magics use (the shell's session)."""
        magics: Any = self.ip.magics_manager.registry["AtpMagics"]
        vm: Vm = magics.context.session.vm("hostile")
        return vm


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    """The shell with ``%load_ext atp_notebook``, its session on a hostile server whose
    display channel ends as soon as it is drawn and whose second port sends garbage once
    the test opens the gate (on that port's first link)."""
    server = HostileSpiceServer([Close()], ports=PORTS,
                                port_scripts={"com.atp.broken": [Gate(), Raw(GARBAGE)]})
    with ServerThread(server) as thread:
        config = tmp_path / "atp.yaml"
        config.write_text("transport:\n  spice:\n    vms:\n    - vm_id: hostile\n"
                          f"      server_addr: 127.0.0.1\n      port: {server.port}\n")
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "atp_notebook")
        ip.run_line_magic("config", f"AtpMagics.config_path = {str(config)!r}")
        ip.run_line_magic("config", f"AtpMagics.timeout = {TIMEOUT}")
        try:
            yield Shell(ip, server, thread)
        finally:
            ip.run_line_magic("atp", "disconnect")
            ip.run_line_magic("unload_ext", "atp_notebook")
            InteractiveShell.clear_instance()


def test_every_listed_channel_is_a_row_with_its_state(shell: Shell) -> None:
    result = shell.channels()
    assert {(c.type, c.id, c.name): c.status for c in result.value} == {
        ("main", 0, None): "open",
        ("display", 0, None): "not opened",
        ("inputs", 0, None): "not opened",
        ("port", 0, "com.atp.echo"): "not opened",  # named by a link of a moment
        ("port", 1, "com.atp.broken"): "not opened",
    }
    text = result._repr_mimebundle_()["text/plain"]
    caption, header, *rows = text.splitlines()
    assert caption == "hostile: 5 Spice channels"
    assert header.split()[:4] == ["channel", "id", "state", "security"]
    assert [row.split()[:4] for row in rows] == [
        ["main", "0", "open", "plain"],
        ["display", "0", "not", "opened"],
        ["inputs", "0", "not", "opened"],
        ["port", "com.atp.echo", "0", "not"],
        ["port", "com.atp.broken", "1", "not"],
    ]
    html = result._repr_mimebundle_()["text/html"]
    assert "<table" in html and "com.atp.broken" in html and "not opened" in html


def test_open_closed_and_failed_channels_say_so(shell: Shell) -> None:
    vm = shell.vm
    shell.ip.run_line_magic("key", "hostile shift")  # Inputs opens
    echo = vm.port("com.atp.echo", timeout=TIMEOUT)
    broken = vm.port("com.atp.broken", timeout=TIMEOUT)  # its first link: the script's
    states = shell.states()
    assert (states[("port", 0, "com.atp.echo")], states[("port", 1, "com.atp.broken")]) == (
        "open", "open")
    echo.close()
    # the server closes the display once it is linked and initialised: failed, and why
    with contextlib.suppress(ChannelClosed):
        run(vm.spice.open_channel(ChannelType.DISPLAY), TIMEOUT)
    # the broken port's garbage ends that channel alone
    shell.thread.call(shell.server.open_gate)
    with pytest.raises(ChannelClosed, match="more than the limit"):
        broken.recv(timeout=TIMEOUT)

    def failed() -> list[str]:
        return sorted(f"{c.type}:{c.id}" for c in shell.channels().value
                      if c.status == "failed")

    assert settled(failed, ["display:0", "port:1"]) == ["display:0", "port:1"]
    result = shell.channels()
    by_key = {(c.type, c.id): c for c in result.value}
    assert by_key[("main", 0)].status == by_key[("inputs", 0)].status == "open"
    assert by_key[("port", 0)].status == "closed"  # by us
    display_error = by_key[("display", 0)].error
    assert display_error == "the server closed the channel"  # the row names the channel
    port_error = by_key[("port", 1)].error
    assert port_error is not None and "more than the limit" in port_error
    row = next(r for r in result.rows if r[0] == "port com.atp.broken")
    assert row[1:3] == ["1", f"failed: {port_error}"]
    # Main and Inputs still work, and the closed port opens again on its next use
    before = len(shell.server.key_messages())
    assert shell.ip.run_line_magic("key", "hostile shift").value == "shift"
    shell.thread.run(shell.server.wait_until(
        lambda: len(shell.server.key_messages()) > before, TIMEOUT, "the key pressed"))
    assert len(shell.thread.run(shell.server.ping(ChannelType.MAIN, count=1))) == 1
    echo.open()
    echo.send(b"again\n", timeout=TIMEOUT)
    assert echo.readline(timeout=TIMEOUT) == b"again\n"
    assert shell.states()[("port", 0, "com.atp.echo")] == "open"


@pytest.mark.parametrize(("args", "fragment"), [
    ("--channels", "missing VM name"),
    ("--channels hostile other", "one VM at a time"),
    ("--channels hostile --fps 5", "takes no display option, not '--fps'"),
    ("--channels --verbose hostile", "unknown option '--verbose'"),
])
def test_bad_lines_are_one_usage_error_with_a_hint(shell: Shell, args: str,
                                                   fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as caught:
        shell.ip.run_line_magic("spice", args)
    assert "\nhint: " in str(caught.value)
    assert not shell.server.links  # nothing was opened for a bad line


def test_an_unknown_vm_is_named(shell: Shell) -> None:
    with pytest.raises(AtpError, match="nosuchvm"):
        shell.ip.run_line_magic("spice", "--channels nosuchvm")
    assert not shell.server.links
