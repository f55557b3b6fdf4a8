"""The keymap tables against a real guest: type every character a layout can type into tty1.

The guest switches its console keymap with busybox ``loadkmap`` (the same compiled maps the
tables were generated from); the strokes go in as QMP ``input-send-event`` key events, and
the shell on tty1 writes what it received to a file that the guest agent reads back.

QMP's ``number`` key type is QEMU's "qnum": the set-1 make code, with bit 0x80 standing for
the E0 prefix (AltGr = E0 38 -> 0xB8), which AltGr characters here prove.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus
from atp_notebook.session import Session, Vm, connect
from atp_notebook.spice.keymaps import LAYOUT_NAMES, layout, parse_combo

VM_NAME = "atp-vm1"
OUT = "/tmp/atp-keymap-test"
WAIT_S = 20.0


@pytest.fixture
def vm(lab: LabStatus, lab_paths: LabPaths) -> Iterator[Vm]:
    session: Session = connect(lab_paths.config_file)
    try:
        yield session.vm(VM_NAME)
    finally:
        session.close()


def qnum(scancode: int) -> int:
    return (scancode & 0x7F) | (0x80 if scancode >> 8 == 0xE0 else 0)


def send(vm: Vm, events: tuple[tuple[int, bool], ...]) -> None:
    # one stroke per command: QEMU's PS/2 queue (256 bytes) drops what overflows it
    vm.qmp("input-send-event", {"events": [
        {"type": "key", "data": {"down": down, "key": {"type": "number", "data": qnum(sc)}}}
        for sc, down in events
    ]})


def type_text(vm: Vm, name: str, text: str) -> None:
    for stroke in layout(name).plan(text):
        send(vm, stroke.events())


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"{what} within {WAIT_S:.0f} s"
        time.sleep(0.2)


def guest_file(vm: Vm) -> bytes | None:
    result = vm.exec(["cat", OUT])
    return result.stdout if result.exit_code == 0 else None


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_every_character_of_the_layout_reaches_the_guest(vm: Vm, name: str) -> None:
    lay = layout(name)
    # every typable character but Enter, which ends the line; tab and Latin-1 included
    text = "".join(sorted(lay.characters - {"\n"}, key=ord))
    expected = (text + "\n").encode()
    try:
        vm.exec(["/bin/sh", "-c", f"loadkmap < /usr/share/keymaps/{name}.bmap; rm -f {OUT}"]
                ).check()
        send(vm, parse_combo("ctrl-c", name).events())  # drop anything left on the line
        type_text(vm, name, f"cat > {OUT}\n")
        # the file exists once the shell has run the command line and left its raw-mode
        # line editor: from then on the tty is in canonical mode, as cat expects
        wait_for(lambda: guest_file(vm) is not None, f"the shell runs `cat > {OUT}`")
        type_text(vm, name, text + "\n")
        send(vm, parse_combo("ctrl-d", name).events())
        wait_for(lambda: len(guest_file(vm) or b"") >= len(expected), "typed text arrives")
        assert guest_file(vm) == expected
    finally:
        vm.exec(["/bin/sh", "-c", f"loadkmap < /usr/share/keymaps/us.bmap; rm -f {OUT}"])
