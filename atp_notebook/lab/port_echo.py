"""An echo in a lab guest on one virtio-serial port, started through the guest agent: the
far end of a Spice port (a ``spiceport`` chardev) or of a libvirt virtio-serial channel.

The guest is busybox (:mod:`.guest`): a shell waits for ``/dev/virtio-ports/NAME``, then
becomes ``atp-echo-port`` (guest_src/atp-echo-port.c, the lab's echo service too), which
opens the port once, read-write (a virtio port can be open only once in the guest), and
echoes it; at the EOF the guest reads while the host side is not connected it waits for the
host to open the port. The shell is the leader of its own process group (``setsid``):
stopping the echo kills the group, the port's only descriptor closes, and QEMU tells the
host side that the guest closed the port (a Spice PORT_EVENT CLOSED).

Example::

    with guest_echo(vm, "com.atp.echo"):
        port = vm.port("com.atp.echo")
        port.wait_guest(opened=True, timeout=10)
        port.send(b"ping\\n"); port.readline(timeout=5)   # b"ping\\n"
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from atp_notebook.errors import InvalidArgument
from atp_notebook.virt.guest_agent import GuestAgent
from atp_notebook.virt.handle import DomainHandle

ECHO_TIMEOUT_S = 30.0
# the guest waits this long for the port's device to appear (boot races the virtio driver)
PORT_WAIT_TRIES = 100


@dataclass(frozen=True)
class GuestEcho:
    """A running echo in the guest (its shell wrote its process group's id to a file)."""

    agent: GuestAgent
    port: str

    def stop(self) -> None:
        """Kill the echo (its shell and its cat): the guest closes the port."""
        # -9 to the group: the loop cannot start another cat meanwhile
        self.agent.exec(["/bin/sh", "-c", f"kill -9 -$(cat {pid_file(self.port)})"],
                        timeout=ECHO_TIMEOUT_S).check()


def pid_file(port: str) -> str:
    return shlex.quote(f"/run/atp-echo.{port}.pid")


def echo_script(port: str) -> str:
    if not port or "/" in port:
        raise InvalidArgument(f"virtio-serial port name {port!r}")
    dev = shlex.quote(f"/dev/virtio-ports/{port}")
    return (f"i=0; until /usr/bin/atp-link-ports; [ -c {dev} ]; do i=$((i + 1)); "
            f"[ $i -gt {PORT_WAIT_TRIES} ] && exit 1; sleep 0.1; done; "
            f"echo $$ >{pid_file(port)}; "  # the group's id: setsid made this shell its leader
            f"exec /usr/bin/atp-echo-port {dev}")


def start_echo(vm: DomainHandle, port: str, agent: GuestAgent | None = None) -> GuestEcho:
    """Start an echo on ``port`` in ``vm``'s guest (returns at once)."""
    qga = agent or GuestAgent(vm, timeout=ECHO_TIMEOUT_S)
    # setsid: the shell leads a process group of its own, so stop() reaches its cat too
    qga.command("guest-exec", path="/usr/bin/setsid", arg=["/bin/sh", "-c", echo_script(port)])
    return GuestEcho(qga, port)


@contextmanager
def guest_echo(vm: DomainHandle, port: str) -> Iterator[GuestEcho]:
    """An echo on ``port`` for the ``with`` block, stopped at its end."""
    echo = start_echo(vm, port)
    try:
        yield echo
    finally:
        echo.stop()
