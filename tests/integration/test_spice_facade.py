"""The Vm's Spice facade and the ``%type``/``%key``/``%spice`` magics against the lab:
typed text reaches tty1's shell byte for byte (read back through the guest agent)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from atp_notebook.lab.status import LabStatus
from atp_notebook.loop import run
from atp_notebook.notebook.results import Result
from atp_notebook.session import Session, Vm
from atp_notebook.spice.keymaps import UntypableText
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm import SpiceVmConnection
from tests.integration.waiting import wait_for_guest_file, wait_until


@pytest.fixture
def vm(session: Session) -> Vm:
    return session.vm("atp-vm1", host="local")


# `ip`, the shell with the extension loaded, comes from tests/integration/conftest.py


def start_cat(vm: Vm, path: str, press: Callable[[str], object],
              type_: Callable[[str], object]) -> None:
    """A clean prompt on tty1, then ``cat > path`` waiting for input."""
    vm.exec(["rm", "-f", path]).check()
    press("ctrl-c")
    type_(f"\ncat > {path}\n")
    # the shell discards type-ahead when it hands the terminal to cat: wait for cat
    wait_until(lambda: vm.exec(["pidof", "cat"]).exit_code == 0, "cat to start")


def plain(result: Any) -> str:
    assert isinstance(result, Result)
    text = result._repr_mimebundle_()["text/plain"]
    assert isinstance(text, str)
    return text


def test_vm_type_and_press_reach_tty1(vm: Vm) -> None:
    path = "/tmp/facade-typed"
    start_cat(vm, path, vm.press, vm.type)
    text = "Hello, facade! 0123456789 ~`!@#$%^&*()_+-=[]{}|;':\",./<>?"
    assert vm.type(text + "\n") >= len(text) + 1
    vm.press("ctrl-d")
    assert wait_for_guest_file(vm, path) == (text + "\n").encode()


def test_vm_press_ctrl_c_ends_a_program(vm: Vm) -> None:
    start_cat(vm, "/tmp/facade-ctrl-c", vm.press, vm.type)
    vm.press("ctrl-c")
    wait_until(lambda: vm.exec(["pidof", "cat"]).exit_code != 0, "ctrl-c to end cat")


def test_vm_spice_is_the_connection(vm: Vm) -> None:
    spice = vm.spice
    assert isinstance(spice, SpiceVmConnection)
    assert spice.vm_id == "atp-vm1"
    assert vm.spice is spice  # one connection per VM, shared


def test_an_untypable_character_raises_and_sends_nothing(vm: Vm) -> None:
    spice = vm.spice
    inputs = run(spice.open_channel(ChannelType.INPUTS), timeout=30)
    assert inputs.protocol is not None
    sent_before = inputs.protocol.metrics.bytes_out
    with pytest.raises(UntypableText, match="\u00e9"):
        vm.type("abc\u00e9def")
    with pytest.raises(UntypableText):
        asyncio.run(vm.type_async("\u20ac"))
    assert inputs.protocol.metrics.bytes_out == sent_before


def test_async_twins_from_asyncio_run(vm: Vm) -> None:
    path = "/tmp/facade-async"

    def press(combo: str) -> None:
        asyncio.run(vm.press_async(combo))

    def type_(text: str) -> int:
        return asyncio.run(vm.type_async(text))

    start_cat(vm, path, press, type_)

    async def both() -> int:
        # two awaits in one foreign loop, in order
        count = await vm.type_async("async twin\n")
        await vm.press_async("ctrl-d")
        return count

    assert asyncio.run(both()) == len("async twin\n")
    assert wait_for_guest_file(vm, path) == b"async twin\n"


def test_type_and_key_magics(ip: InteractiveShell, lab: LabStatus, session: Session) -> None:
    vm = session.vm("atp-vm1", host="local")
    path = "/tmp/facade-magic"

    def press(combo: str) -> object:
        return ip.run_line_magic("key", f"atp-vm1 {combo}")

    def type_(text: str) -> object:
        return ip.run_line_magic("type", "atp-vm1 " + text.replace("\n", r"\n"))

    start_cat(vm, path, press, type_)
    # taken literally: no $var or {var} expansion; \t and \n escapes decoded
    r = ip.run_line_magic("type", r"atp-vm1 $HOME {x}\tend\n")
    assert plain(r) == "typed 14 characters on atp-vm1 (us, 14 strokes)"
    assert plain(press("ctrl-d")) == "pressed ctrl-d on atp-vm1"
    assert wait_for_guest_file(vm, path) == b"$HOME {x}\tend\n"


def test_click_magic_clicks_in_client_mode(ip: InteractiveShell, lab: LabStatus) -> None:
    # where the click lands is checked in the guest by test_spice_mouse; this is the magic
    r = ip.run_line_magic("click", "atp-vm1 5 6 --button right")
    assert plain(r) == "clicked right at 5,6 on atp-vm1 (exact, client mouse mode)"
    assert isinstance(r, Result) and r.value == "client"
    with pytest.raises(UsageError, match="want X and Y"):
        ip.run_line_magic("click", "atp-vm1 5")


def test_spice_channels_magic(ip: InteractiveShell, lab: LabStatus) -> None:
    ip.run_line_magic("key", "atp-vm1 shift")  # the Inputs channel is open
    r = ip.run_line_magic("spice", "--channels atp-vm1")
    text = plain(r)
    lines = text.splitlines()
    assert lines[0].startswith("atp-vm1: ") and lines[0].endswith("Spice channels")
    assert lines[1].split() == ["channel", "id", "state", "security", "bytes", "in", "bytes",
                                "out", "messages", "pings", "link", "ms", "rtt", "ms",
                                "min", "rtt", "ms"]
    rows = {row.split()[0]: row.split() for row in lines[2:]}
    assert rows["main"][1:4] == ["0", "open", "plain"]
    assert rows["inputs"][1:4] == ["0", "open", "plain"]
    assert int(rows["inputs"][5]) > 0  # bytes out
    for name in ("main", "inputs"):  # the kernel's RTT of each open channel's TCP, in ms
        assert float(rows[name][9]) > 0 and len(rows[name][9].partition(".")[2]) == 3
        assert 0 < float(rows[name][10]) <= float(rows[name][9])  # min rtt <= srtt
    assert {i.type for i in r.value} >= {"main", "inputs"}


@pytest.mark.parametrize(("magic", "text", "message"), [
    ("type", "atp-vm1 caf\u00e9", "\u00e9"),
    ("type", "atp-vm1", "missing text to type"),
    ("key", "atp-vm1 ctrl-nosuchkey", "nosuchkey"),
    ("spice", "atp-vm1 atp-vm2", "one VM at a time"),  # (%spice VM alone shows the screen)
    ("spice", "--channels", "missing VM name"),
])
def test_bad_spice_magics(ip: InteractiveShell, lab: LabStatus, magic: str, text: str,
                          message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic(magic, text)
