"""The Spice mouse against the lab: what a click or move does, read back from the guest's
own input devices (/dev/input/event*, recorded in the guest and fetched through the agent).

The lab VMs have a virtio tablet (absolute) and a PS/2 mouse (relative): the Spice server
offers client mouse mode, in which a position is exact. QEMU scales a client-mode position
in display pixels to the tablet's 0..0x7fff range as ``v * 0x7fff // size``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.loop import run
from atp_notebook.session import Session, Vm
from atp_notebook.spice.proto import InputsProtocol
from atp_notebook.spice.proto.constants import ChannelType, MouseMode
from tests.integration.waiting import wait_until

EVENT = struct.Struct("<qqHHi")  # struct input_event on x86_64: timeval, type, code, value
EV_KEY, EV_REL, EV_ABS = 1, 2, 3
ABS_X, ABS_Y = 0, 1
REL_X, REL_Y = 0, 1
BTN_LEFT, BTN_RIGHT, BTN_MIDDLE = 0x110, 0x111, 0x112
ABS_MAX = 0x7FFF
TABLET = "QEMU Virtio Tablet"
PS2_MOUSE = "PS/2"


@dataclass(frozen=True)
class InputEvent:
    type: int
    code: int
    value: int


def input_devices(vm: Vm) -> dict[str, str]:
    """Device name -> its event node, from the guest's /proc/bus/input/devices."""
    text = vm.read_file("/proc/bus/input/devices").decode()
    found: dict[str, str] = {}
    for block in text.split("\n\n"):
        name = re.search(r'^N: Name="(.*)"$', block, re.M)
        node = re.search(r"^H: Handlers=.*\b(event\d+)\b", block, re.M)
        if name and node:
            found[name.group(1)] = f"/dev/input/{node.group(1)}"
    return found


def device(vm: Vm, part: str) -> str:
    devices = input_devices(vm)
    matches = [node for name, node in devices.items() if part in name]
    assert len(matches) == 1, f"want one {part!r} input device in the guest, have {devices}"
    return matches[0]


class Recorder:
    """Records a guest input device to a file while a test acts, then parses it."""

    def __init__(self, vm: Vm, node: str) -> None:
        self.vm = vm
        self.node = node
        self.path = f"/tmp/atp-events-{node.rsplit('/', 1)[-1]}"

    def __enter__(self) -> Recorder:
        started = self.vm.exec(["/bin/sh", "-c", f"rm -f {self.path}; "
                                f"cat {self.node} > {self.path} 2>/dev/null < /dev/null & "
                                "echo $!"]).check()
        self.pid = int(started.stdout)
        wait_until(lambda: self.vm.exec(["test", "-e", self.path]).exit_code == 0,
                   f"the recorder of {self.node}", timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        # by pid: other tests wait for their own `cat` with pidof
        self.vm.exec(["kill", str(self.pid)]).check()

    def events(self) -> list[InputEvent]:
        data = self.vm.read_file(self.path)
        usable = len(data) - len(data) % EVENT.size
        out = []
        for offset in range(0, usable, EVENT.size):
            _sec, _usec, kind, code, value = EVENT.unpack_from(data, offset)
            if kind != 0:  # EV_SYN separates reports: not needed here
                out.append(InputEvent(kind, code, value))
        return out

    def wait_for(self, predicate: object, what: str) -> list[InputEvent]:
        assert callable(predicate)
        wait_until(lambda: bool(predicate(self.events())), what, timeout=15, interval=0.2)
        return self.events()


def last_abs(events: list[InputEvent]) -> tuple[int | None, int | None]:
    xs = [e.value for e in events if (e.type, e.code) == (EV_ABS, ABS_X)]
    ys = [e.value for e in events if (e.type, e.code) == (EV_ABS, ABS_Y)]
    return (xs[-1] if xs else None, ys[-1] if ys else None)


def buttons(events: list[InputEvent]) -> list[tuple[int, int]]:
    return [(e.code, e.value) for e in events if e.type == EV_KEY]


@pytest.fixture
def vm(session: Session) -> Iterator[Vm]:
    vm = session.vm("atp-vm1", host="local")
    yield vm
    vm.set_mouse_mode("client")  # the mode is the VM's: leave the default for later tests


def expected(x: int, y: int, size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    return x * ABS_MAX // width, y * ABS_MAX // height


def test_the_lab_offers_client_mouse_mode_and_the_client_takes_it(vm: Vm) -> None:
    main = run(vm.spice.main(), timeout=30)
    assert main.mouse_modes == MouseMode.SERVER | MouseMode.CLIENT
    wait_until(lambda: main.mouse_mode is MouseMode.CLIENT, "client mouse mode", timeout=10)


@pytest.mark.parametrize(("x", "y", "button", "code"), [
    (100, 50, "left", BTN_LEFT),
    (0, 0, "right", BTN_RIGHT),
    (719, 399, "middle", BTN_MIDDLE),
    (360, 200, "left", BTN_LEFT),
])
def test_a_client_mode_click_lands_exactly_where_asked(
    vm: Vm, x: int, y: int, button: str, code: int
) -> None:
    size = vm.screendump().size
    assert x < size[0] and y < size[1], f"the lab's text console is {size}"
    vm.move(size[0] // 3 + 7, size[1] // 3 + 5)  # elsewhere first: evdev drops repeats
    with Recorder(vm, device(vm, TABLET)) as tablet:
        assert vm.click(x, y, button=button) is MouseMode.CLIENT
        events = tablet.wait_for(lambda ev: (code, 0) in buttons(ev), f"{button} release")
    assert last_abs(events) == expected(x, y, size)
    assert buttons(events) == [(code, 1), (code, 0)]
    # the position came before the press
    first_button = next(i for i, e in enumerate(events) if e.type == EV_KEY)
    assert last_abs(events[:first_button]) == expected(x, y, size)


def test_moves_faster_than_the_server_acks_end_at_the_last_position(vm: Vm) -> None:
    size = vm.screendump().size
    inputs = run(vm.spice.open_channel(ChannelType.INPUTS), timeout=30)
    protocol = inputs.protocol
    assert isinstance(protocol, InputsProtocol)
    vm.move(1, 1)
    points = [(10 + 3 * i, 20 + 2 * i) for i in range(40)]
    coalesced_before = protocol.motions_coalesced

    async def sweep() -> None:
        for x, y in points:  # queued without waiting: the ack window must coalesce
            protocol.position(x, y)
        await inputs.send()

    with Recorder(vm, device(vm, TABLET)) as tablet:
        run(sweep(), timeout=30)
        want = expected(*points[-1], size)
        events = tablet.wait_for(lambda ev: last_abs(ev) == want, "the last position")
    assert protocol.motions_coalesced > coalesced_before
    # every position the guest saw is one we sent, in order, ending with the last
    sent = [expected(x, y, size)[0] for x, y in points]
    seen = [e.value for e in events if (e.type, e.code) == (EV_ABS, ABS_X)]
    assert seen == sorted(seen) and set(seen) <= set(sent)
    wait_until(lambda: protocol.unacked_motions < protocol.max_unacked_motions
               and not protocol.motion_pending, "the server's motion acks", timeout=10)


def test_server_mode_sends_relative_motion_to_the_ps2_mouse(vm: Vm) -> None:
    assert vm.set_mouse_mode("server") is MouseMode.SERVER
    main = run(vm.spice.main(), timeout=30)
    assert main.mouse_mode is MouseMode.SERVER
    with Recorder(vm, device(vm, PS2_MOUSE)) as mouse, \
            Recorder(vm, device(vm, TABLET)) as tablet:
        assert vm.click(40, 30) is MouseMode.SERVER
        moved = mouse.wait_for(lambda ev: any(e.type == EV_REL for e in ev), "motion")
        clicks = tablet.wait_for(lambda ev: (BTN_LEFT, 0) in buttons(ev), "the release")
    rel_x = [e.value for e in moved if (e.type, e.code) == (EV_REL, REL_X)]
    # the pointer is first pinned top-left: the first packets all move left
    assert rel_x and all(v < 0 for v in rel_x[:3])
    # QEMU routes buttons to the most recently enabled pointer (the tablet), motion to
    # the only relative one
    assert buttons(clicks) == [(BTN_LEFT, 1), (BTN_LEFT, 0)]
    assert last_abs(clicks) == (None, None)


def test_bad_mouse_arguments_send_nothing(vm: Vm) -> None:
    inputs = run(vm.spice.open_channel(ChannelType.INPUTS), timeout=30)
    assert inputs.protocol is not None
    before = inputs.protocol.metrics.bytes_out
    calls: list[Callable[[], object]] = [
        lambda: vm.click(-1, 5), lambda: vm.move(3, -2),
        lambda: vm.click(1, 1, button="fourth"), lambda: vm.set_mouse_mode("tablet")]
    for bad in calls:
        with pytest.raises(InvalidArgument):
            bad()
    assert inputs.protocol.metrics.bytes_out == before
