"""Spice port channels against the lab's real QEMU / spice-server (issue 16, Port).

One port VM boots for the module (``PORT_SETTING``: the VGA text console and two spiceport
chardevs on guest virtio-serial ports com.atp.echo and com.atp.second); the guest's far end
is an echo started through its agent (:mod:`atp_notebook.lab.port_echo`). Checked: a 1 MB
echo byte-exact, two ports at once, the guest closing its side arriving as a PORT_EVENT,
the port channel killed under a user leaving Main, Inputs and Display working and the port
opening again on its next use, and an unknown name listing the VM's ports. Run it under the
lab lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from atp_notebook.errors import ChannelClosed, InvalidArgument
from atp_notebook.lab.display_vms import PORT_NAMES, PORT_SETTING, display_vm
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.port_echo import guest_echo
from atp_notebook.loop import get_loop
from atp_notebook.session import Vm, connect
from atp_notebook.spice.aio.channel import ChannelStatus
from atp_notebook.spice.port import PortState
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.port import PortEvent, PortEventKind
from tests.conftest import require_lab
from tests.integration.waiting import wait_for_guest_file

TIMEOUT = 60.0  # TCG guest: a 1 MB echo through cat takes a few seconds
ECHO, SECOND = PORT_NAMES
MB = 1_000_000


def pattern(size: int, seed: int = 0) -> bytes:
    """Bytes that show a reordering or a loss (no short period)."""
    return bytes((i * 7 + i // 251 + seed) & 0xFF for i in range(size))


@pytest.fixture(scope="module")
def vm(lab_paths: LabPaths) -> Iterator[Vm]:
    require_lab(lab_paths)
    with connect(lab_paths.config_file) as session, display_vm(PORT_SETTING) as dvm:
        yield session.vm(dvm.name)


def test_a_1mb_echo_is_byte_exact(vm: Vm) -> None:
    port = vm.port(ECHO, timeout=TIMEOUT)
    with guest_echo(vm, ECHO):
        port.wait_guest(opened=True, timeout=TIMEOUT)
        data = pattern(MB)
        port.send(data, timeout=TIMEOUT)
        assert port.recv_exactly(MB, timeout=TIMEOUT) == data
        port.send(b"a line\n", timeout=TIMEOUT)
        assert port.readline(timeout=TIMEOUT) == b"a line\n"
    rows = [(r.type, r.name, r.status) for r in vm.spice.channels()]
    assert ("port", ECHO, "open") in rows


def test_two_ports_at_once(vm: Vm) -> None:
    first, second = vm.port(ECHO, timeout=TIMEOUT), vm.port(SECOND, timeout=TIMEOUT)
    assert {first.channel_id, second.channel_id} == {0, 1}
    with guest_echo(vm, ECHO), guest_echo(vm, SECOND):
        first.wait_guest(opened=True, timeout=TIMEOUT)
        second.wait_guest(opened=True, timeout=TIMEOUT)
        a, b = pattern(200_000, 1), pattern(150_000, 2)
        first.send(a, timeout=TIMEOUT)
        second.send(b, timeout=TIMEOUT)
        assert second.recv_exactly(len(b), timeout=TIMEOUT) == b
        assert first.recv_exactly(len(a), timeout=TIMEOUT) == a


def test_the_guest_closing_its_side_is_an_event(vm: Vm) -> None:
    port = vm.port(SECOND, timeout=TIMEOUT)
    heard: list[PortEvent] = []
    with port.add_listener(heard.append):
        with guest_echo(vm, SECOND):
            port.wait_guest(opened=True, timeout=TIMEOUT)
        port.wait_guest(opened=False, timeout=TIMEOUT)  # the echo was killed: fd closed
    assert PortEvent(PortEventKind.CLOSED) in heard
    assert not port.guest_opened


def test_a_killed_port_channel_fails_alone_and_reopens_on_next_use(vm: Vm) -> None:
    port = vm.port(ECHO, timeout=TIMEOUT)
    vm.screenshot(timeout=TIMEOUT)  # Display open too
    vm.press("shift", timeout=TIMEOUT)  # and Inputs
    with guest_echo(vm, ECHO):
        port.wait_guest(opened=True, timeout=TIMEOUT)
        channel = vm.spice.channel(ChannelType.PORT, port.channel_id or 0)
        get_loop().call(channel.abort(ChannelClosed("killed by the test")), timeout=TIMEOUT)
        assert port.state.value == "lost"
        # Main, Inputs and Display live on: a command typed on the console runs
        assert {(r.type, r.status) for r in vm.spice.channels()} >= {
            ("main", "open"), ("inputs", "open"), ("display", "open")}
        marker = f"/tmp/atp-port-{time.monotonic_ns()}"
        vm.type(f"echo typed >{marker}\n", timeout=TIMEOUT)
        assert wait_for_guest_file(vm, marker, TIMEOUT) == b"typed\n"
        assert vm.screenshot(timeout=TIMEOUT).size[0] > 0
        # the next call links the port again, and the guest's echo answers through it
        port.send(b"after the kill\n", timeout=TIMEOUT)
        assert port.readline(timeout=TIMEOUT) == b"after the kill\n"
        assert port.state is PortState.OPEN
        assert vm.spice.channel(ChannelType.PORT, port.channel_id or 0).status is \
            ChannelStatus.OPEN


def test_an_unknown_name_lists_the_vms_ports(vm: Vm) -> None:
    with pytest.raises(InvalidArgument, match=r"no Spice port 'com\.atp\.nope' \(its ports: "
                                              r"com\.atp\.echo, com\.atp\.second\)"):
        vm.port("com.atp.nope", timeout=TIMEOUT)

