"""``%virtio``: send to and receive from a VM's virtio-serial port.

Forms::

    %virtio VM PORT send TEXT      # TEXT as typed (UTF-8); \\n \\r \\t \\0 \\\\ \\xNN escapes
    %virtio VM PORT recv [--timeout S] [--line] [--max N]
    %virtio VM PORT close

The port stays open between magics (so a ``recv`` sees the answer to an earlier ``send``)
until ``close``, ``%atp disconnect`` or the end of the kernel.

Example::

    parse_virtio_line(r"atp-vm1 com.atp.test.0 send ping\\n")
    # VirtioSend(vm=VmRef('atp-vm1'), port='com.atp.test.0', data=b'ping\\n')
"""

from __future__ import annotations

from dataclasses import dataclass

from atp_notebook.notebook.commands.words import (
    OptionParser,
    VmRef,
    VmSelector,
    decode_escapes,
    positive_float,
    positive_int,
    split_args,
    take_word,
    usage,
)
from atp_notebook.notebook.results import BytesResult, NoteResult, Result
from atp_notebook.virt.virtio_serial import VirtioSerial

USAGE = ("%virtio VM PORT send TEXT  |  %virtio VM PORT recv [--timeout S] [--line] [--max N]"
         "  |  %virtio VM PORT close")
RECV_USAGE = "%virtio VM PORT recv [--timeout S] [--line] [--max N]"
DEFAULT_MAX = 65536


@dataclass(frozen=True)
class VirtioSend:
    vm: VmRef
    port: str
    data: bytes


@dataclass(frozen=True)
class VirtioRecv:
    """Read what has arrived (at least one byte), or one line with ``line``; ``timeout``
    None means the magics' ``timeout``."""

    vm: VmRef
    port: str
    timeout: float | None = None
    line: bool = False
    max_bytes: int = DEFAULT_MAX


@dataclass(frozen=True)
class VirtioClose:
    vm: VmRef
    port: str


def parse_virtio_line(line: str, vms: VmSelector | None = None
                      ) -> VirtioSend | VirtioRecv | VirtioClose:
    """The request a ``%virtio`` line asks for; UsageError (one line + hint) otherwise."""
    vm, rest = (vms or VmSelector()).take(line, USAGE)
    port, rest = take_word(rest)
    if not port:
        raise usage(f"missing port name after {vm}, e.g. com.atp.test.0", USAGE)
    if port in ("send", "recv", "close"):
        raise usage(f"missing port name before {port!r}", USAGE)
    action, tail = take_word(rest)
    if action == "send":
        if not tail:
            raise usage("send needs the text to send", USAGE)
        return VirtioSend(vm, port, decode_escapes(tail))
    if action == "recv":
        parser = OptionParser("%virtio recv", RECV_USAGE)
        parser.add_argument("--timeout", type=positive_float)
        parser.add_argument("--line", action="store_true")
        parser.add_argument("--max", type=positive_int, default=DEFAULT_MAX)
        args = parser.parse(split_args(tail, RECV_USAGE))
        return VirtioRecv(vm, port, args.timeout, args.line, args.max)
    if action == "close":
        if tail:
            raise usage(f"close takes no arguments, not {tail!r}", USAGE)
        return VirtioClose(vm, port)
    if not action:
        raise usage(f"missing action after {port}: send, recv or close", USAGE)
    raise usage(f"unknown action {action!r}: use send, recv or close", USAGE)


def run_virtio(request: VirtioSend | VirtioRecv, stream: VirtioSerial,
               timeout: float) -> Result:
    """Send or receive on an open port; ``timeout`` is the default wait."""
    where = f"{request.vm}:{request.port}"
    if isinstance(request, VirtioSend):
        stream.send(request.data, timeout=timeout)
        size = len(request.data)
        return NoteResult(f"sent {size} byte{'s' * (size != 1)} to {where}", size)
    wait = request.timeout or timeout
    if request.line:
        data = stream.readline(timeout=wait, max_line=request.max_bytes)
    else:
        data = stream.recv(request.max_bytes, timeout=wait)
    return BytesResult(data, where)
