"""``vm.type(..., layout="de")`` through the facade (Spice Inputs, not QMP) into a guest whose
console has the German keymap: characters placed differently on a German keyboard arrive
exactly; with the US layout's scancodes the same text would come out wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from atp_notebook.session import Session, Vm
from atp_notebook.spice.keymaps import layout

OUT = "/tmp/atp-facade-de"
WAIT_S = 30.0
# y/z swapped, and symbols that sit elsewhere (or behind AltGr) on a German keyboard
TEXT = "yzYZ@#/()=?-_;:<>|{}[]~\\äöüß"


def guest_file(vm: Vm) -> bytes | None:
    result = vm.exec(["cat", OUT])
    return result.stdout if result.exit_code == 0 else None


def wait_for(vm: Vm, enough: int) -> bytes | None:
    deadline = time.monotonic() + WAIT_S
    found = guest_file(vm)
    while (found is None or len(found) < enough) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = guest_file(vm)
    return found


@pytest.fixture
def german_vm(session: Session) -> Iterator[Vm]:
    vm = session.vm("atp-vm1")
    vm.exec(["/bin/sh", "-c", f"loadkmap < /usr/share/keymaps/de.bmap; rm -f {OUT}"]).check()
    try:
        yield vm
    finally:
        vm.press("ctrl-c", layout="de")  # leave no cat waiting on tty1
        vm.exec(["/bin/sh", "-c", f"loadkmap < /usr/share/keymaps/us.bmap; rm -f {OUT}"])


def test_the_facade_types_with_the_german_layout(german_vm: Vm) -> None:
    vm = german_vm
    # the text would be typed differently with US scancodes: the test can tell them apart
    ascii_part = TEXT.replace("äöüß", "")
    assert layout("de").plan(ascii_part) != layout("us").plan(ascii_part)
    vm.press("ctrl-c", layout="de")  # a clean line (type waits for the guest to settle)
    vm.type(f"cat > {OUT}\n", layout="de")
    # the file appears once the shell runs cat and has left its line editor
    assert wait_for(vm, 0) is not None, f"the shell did not run `cat > {OUT}`"
    expected = (TEXT + "\n").encode()
    assert vm.type(TEXT + "\n", layout="de") > len(TEXT)
    vm.press("ctrl-d", layout="de")
    assert wait_for(vm, len(expected)) == expected
