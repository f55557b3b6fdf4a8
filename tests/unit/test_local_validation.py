"""A caller's mistake found before anything is sent is an InvalidArgument (an AtpError and a
ValueError), never a CommandError (nothing reached a server), a ConfigError (no file is
involved) or a bare ValueError/TypeError."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from atp_notebook.errors import CommandError, ConfigError, InvalidArgument
from atp_notebook.spice.facade import mouse_button
from atp_notebook.spice.keymaps import layout
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.virt.guest_agent import agent_timeout
from atp_notebook.virt.protocols import ProtocolType
from atp_notebook.virt.qmp import build_command
from atp_notebook.virt.receive_buffer import ReceiveBuffer


def open_usbredir() -> object:
    from atp_notebook.loop import get_loop
    from atp_notebook.spice.endpoint import SpiceEndpoint

    vm = SpiceVmConnection("vm", SpiceEndpoint("127.0.0.1", port=1))
    return get_loop().call(vm.open_channel(ChannelType.USBREDIR))


CASES: list[tuple[str, Callable[[], object], str]] = [
    ("empty QMP command", lambda: build_command("", {}), "non-empty string"),
    ("QMP argument not JSON", lambda: build_command("x", {"a": {1}}), "not JSON"),
    ("no virtio-serial port name", lambda: ProtocolType.virtio_serial(""), "port name"),
    ("a mouse button that is not one", lambda: mouse_button("fourth"), "unknown mouse button"),
    ("a combo that is not one", lambda: layout("us").combo("ctrl-nosuchkey"), "nosuchkey"),
    ("an agent timeout below zero", lambda: agent_timeout(-1), "positive number"),
    ("a read of zero bytes", lambda: ReceiveBuffer(10).read(0), "must be positive"),
    ("a channel type not built yet", open_usbredir, "not supported"),
    ("a connection without endpoint", lambda: SpiceVmConnection("vm"), "endpoint"),
]


@pytest.mark.parametrize(("what", "call", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_local_mistakes_are_invalid_arguments(what: str, call: Callable[[], object],
                                              fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment) as caught:
        call()
    assert not isinstance(caught.value, CommandError | ConfigError), what
