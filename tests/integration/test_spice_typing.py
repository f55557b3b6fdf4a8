"""Text typed through Spice Inputs reaches the guest's tty1 shell byte for byte."""

from __future__ import annotations

import string

import pytest

from atp_notebook.loop import run
from atp_notebook.session import Session
from atp_notebook.spice.inputs import SpiceKeyboard
from atp_notebook.spice.keymaps import UntypableText, layout
from atp_notebook.spice.proto.constants import ChannelType
from tests.integration.waiting import wait_for_guest_file, wait_until

PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


@pytest.mark.parametrize("layout_name", ["us", "de", "fr"])
def test_typed_text_arrives_byte_exact(session: Session, layout_name: str) -> None:
    vm = session.vm("atp-vm1", host="local")
    text = "".join(c for c in PRINTABLE if layout(layout_name).can_type(c))
    assert set(string.ascii_letters + string.digits) <= set(text)
    vm.exec(["/bin/sh", "-c", f"rm -f /tmp/typed; loadkmap < /usr/share/keymaps/{layout_name}"
             ".bmap"]).check()
    try:
        spice = run(session.manager.get_spice_connection("atp-vm1"), timeout=30)
        inputs = run(spice.open_channel(ChannelType.INPUTS), timeout=30)
        keyboard = SpiceKeyboard(inputs, layout=layout_name)

        run(keyboard.press("ctrl-c"), timeout=30)  # a clean prompt whatever came before
        run(keyboard.type("\ncat > /tmp/typed\n"), timeout=60)
        # the shell discards type-ahead when it hands the terminal to cat: wait for cat
        wait_until(lambda: vm.exec(["pidof", "cat"]).exit_code == 0, "cat to start")
        run(keyboard.type(text + "\n"), timeout=60)
        run(keyboard.press("ctrl-d"), timeout=30)
        assert wait_for_guest_file(vm, "/tmp/typed") == (text + "\n").encode()
    finally:
        vm.exec(["/bin/sh", "-c", "loadkmap < /usr/share/keymaps/us.bmap"]).check()


def test_an_untypable_character_sends_nothing(session: Session) -> None:
    spice = run(session.manager.get_spice_connection("atp-vm1"), timeout=30)
    inputs = run(spice.open_channel(ChannelType.INPUTS), timeout=30)
    keyboard = SpiceKeyboard(inputs, layout="us")
    assert inputs.protocol is not None
    sent_before = inputs.protocol.metrics.bytes_out
    with pytest.raises(UntypableText):
        run(keyboard.type("abc\u00e9def"), timeout=30)
    assert inputs.protocol.metrics.bytes_out == sent_before
