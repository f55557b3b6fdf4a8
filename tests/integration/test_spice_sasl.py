"""SASL authentication of our Spice client against the lab's SASL VM (TLS only)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from atp_notebook.config import Secret
from atp_notebook.errors import SpiceAuthError
from atp_notebook.loop import run
from atp_notebook.session import Session
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm import SpiceVmConnection


def test_the_sasl_vm_lets_us_in_with_the_configured_user(session: Session) -> None:
    vm = run(session.manager.get_spice_connection("atp-sasl"), timeout=30)
    assert vm.endpoint is not None and vm.endpoint.sasl is not None
    assert vm.endpoint.ticket is None  # the password goes to SASL, never as a ticket
    run(vm.open_channel(ChannelType.INPUTS), timeout=30)
    channels = {c.type: c for c in vm.channels()}
    assert channels["main"].status == channels["inputs"].status == "open"
    assert channels["main"].secure and channels["inputs"].secure


def test_a_wrong_sasl_password_is_refused(session: Session) -> None:
    good = run(session.manager.get_spice_connection("atp-sasl"), timeout=30).endpoint
    assert good is not None and good.username is not None
    bad = replace(good, password=Secret("not-the-password"))
    vm = SpiceVmConnection("atp-sasl", bad)
    with pytest.raises(SpiceAuthError):
        run(vm.open_channel(ChannelType.MAIN), timeout=30)
    run(vm.close(), timeout=10)
