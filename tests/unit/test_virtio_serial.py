"""VirtioSerial without I/O: the receive buffer (reads, lines, close, backpressure switch) and
the open-failure diagnosis from domain XML."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import libvirt
import pytest

from atp_notebook.errors import (
    ChannelClosed,
    HostUnavailable,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from atp_notebook.virt.host import HostConnection
from atp_notebook.virt.receive_buffer import ReceiveBuffer
from atp_notebook.virt.virtio_serial import (
    SerialState,
    VirtioSerial,
    explain_open_failure,
)

T = TypeVar("T")

# each op: ("feed", bytes) | ("close", None) | ("read", n) | ("exactly", n) | ("line", max_line)
# each expected result: bytes, None (needs more data), or an exception type
Op = tuple[str, object]


@dataclass
class Case:
    id: str
    ops: list[Op]
    expected: list[object] = field(default_factory=list)  # one per read op


CASES = [
    Case("read returns what is there, up to max_bytes",
         [("feed", b"abcdef"), ("read", 4), ("read", 4), ("read", 4)],
         [b"abcd", b"ef", None]),
    Case("read joins feeds",
         [("feed", b"ab"), ("feed", b"cd"), ("read", 100)], [b"abcd"]),
    Case("exactly waits for all n bytes",
         [("feed", b"abc"), ("exactly", 5), ("feed", b"defg"), ("exactly", 5), ("read", 9)],
         [None, b"abcde", b"fg"]),
    Case("exactly 0 is empty",
         [("exactly", 0)], [b""]),
    Case("partial lines wait for their newline",
         [("feed", b"ab"), ("line", 100), ("feed", b"c\nde"), ("line", 100), ("line", 100),
          ("feed", b"f\n\n"), ("line", 100), ("line", 100), ("line", 100)],
         [None, b"abc\n", None, b"def\n", b"\n", None]),
    Case("several lines in one feed",
         [("feed", b"one\ntwo\nthr"), ("line", 10), ("line", 10), ("line", 10)],
         [b"one\n", b"two\n", None]),
    Case("a line of exactly max_line bytes (newline included) is accepted",
         [("feed", b"abc\n"), ("line", 4)], [b"abc\n"]),
    Case("a terminated line over max_line is an error and stays buffered",
         [("feed", b"abcd\nx"), ("line", 4), ("read", 100)], [RemoteProtocolError, b"abcd\nx"]),
    Case("an unterminated line that already reached max_line is an error",
         [("feed", b"abcd"), ("line", 4), ("feed", b"\n"), ("read", 2)],
         [RemoteProtocolError, b"ab"]),
    Case("reads mixed with lines keep the newline search right",
         [("feed", b"abc"), ("line", 100), ("read", 2), ("feed", b"\nx\n"), ("line", 100),
          ("line", 100)],
         [None, b"ab", b"c\n", b"x\n"]),
    Case("after close buffered bytes come first, then ChannelClosed",
         [("feed", b"abc"), ("close", None), ("read", 2), ("read", 2), ("read", 2)],
         [b"ab", b"c", ChannelClosed]),
    Case("after close the unterminated tail is the last line",
         [("feed", b"a\nbc"), ("close", None), ("line", 100), ("line", 100), ("line", 100)],
         [b"a\n", b"bc", ChannelClosed]),
    Case("after close a short exactly raises and leaves the bytes for read",
         [("feed", b"abc"), ("close", None), ("exactly", 5), ("read", 10), ("exactly", 0)],
         [ChannelClosed, b"abc", b""]),
]


def run_ops(buf: ReceiveBuffer, ops: list[Op]) -> list[object]:
    results: list[object] = []
    for op, arg in ops:
        if op == "feed":
            assert isinstance(arg, bytes)
            buf.feed(arg)
            continue
        if op == "close":
            buf.close(ChannelClosed("peer hung up"))
            continue
        assert isinstance(arg, int)
        try:
            if op == "read":
                results.append(buf.read(arg))
            elif op == "exactly":
                results.append(buf.read_exactly(arg))
            else:
                results.append(buf.read_line(arg))
        except TransportError as exc:
            results.append(type(exc))
    return results


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_receive_buffer(case: Case) -> None:
    assert run_ops(ReceiveBuffer(), case.ops) == case.expected


def test_data_fed_after_close_is_our_bug_not_the_peers() -> None:
    buf = ReceiveBuffer()
    buf.close(ChannelClosed("eof"))
    with pytest.raises(LocalProtocolError):
        buf.feed(b"late")


def test_each_waiter_gets_its_own_copy_of_the_close_reason_with_its_cause() -> None:
    buf = ReceiveBuffer()
    cause = OSError("socket gone")
    reason = HostUnavailable("host lost")
    reason.__cause__ = cause
    buf.close(reason)
    buf.close(ChannelClosed("later, and less precise"))  # the first reason wins
    raised = []
    for _ in range(2):
        with pytest.raises(HostUnavailable, match="host lost") as info:
            buf.read(1)
        raised.append(info.value)
    assert raised[0] is not raised[1] and raised[0] is not reason
    assert raised[0].__cause__ is cause
    assert buf.reason is reason


def test_wants_data_is_the_backpressure_switch() -> None:
    buf = ReceiveBuffer(limit=10)
    assert buf.wants_data
    buf.feed(b"x" * 12)  # a chunk may overshoot the limit; reading then pauses
    assert not buf.wants_data and len(buf) == 12
    assert buf.read(3) == b"xxx"
    assert buf.wants_data
    buf.close(ChannelClosed("eof"))
    assert not buf.wants_data and buf.closed


@pytest.mark.parametrize("bad", [0, -1])
def test_read_sizes_are_checked(bad: int) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        ReceiveBuffer().read(bad)
    with pytest.raises(ValueError, match="n must"):
        ReceiveBuffer().read_exactly(-1)


def test_long_lines_are_scanned_once_not_quadratically() -> None:
    buf = ReceiveBuffer()
    for _ in range(10_000):
        buf.feed(b"y" * 10)
        assert buf.read_line(max_line=1_000_000) is None
    buf.feed(b"\n")
    assert buf.read_line(max_line=1_000_000) == b"y" * 100_000 + b"\n"


# --- open failures -------------------------------------------------------------------

DOMAIN_XML = """<domain type='qemu'><name>vm1</name><devices>
  <channel type='unix'>
    <target type='virtio' name='org.qemu.guest_agent.0'/><alias name='channel0'/>
  </channel>
  <channel type='pty'>
    <target type='virtio' name='com.example.pty.0'/><alias name='channel1'/>
  </channel>
  <channel type='spicevmc'>
    <target type='virtio' name='com.redhat.spice.0'/>
  </channel>
</devices></domain>"""


@pytest.mark.parametrize(
    ("port", "text", "xml", "message", "hint"),
    [
        ("com.x.0", "operation failed: Active channel stream exists for this domain", None,
         r"port 'com.x.0' of VM 'vm1' is in use by another client", "force=True"),
        ("com.x.0", "internal error: cannot find channel com.x.0", DOMAIN_XML,
         r"VM 'vm1' has no virtio-serial port 'com.x.0' \(ports: channel0, channel1, "
         r"com.example.pty.0, com.redhat.spice.0, org.qemu.guest_agent.0\)",
         "<channel type='unix'><target type='virtio' name='com.x.0'/></channel>"),
        ("com.example.pty.0", "internal error: channel 'com.example.pty.0' is not using a "
         "UNIX socket", DOMAIN_XML,
         r"'com.example.pty.0' of VM 'vm1' is a 'pty' channel; virDomainOpenChannel opens "
         r"only UNIX-socket channels", "type='unix'"),
        ("com.redhat.spice.0", "unsupported", DOMAIN_XML, r"is a 'spicevmc' channel", "unix"),
        ("channel0", "some other failure", DOMAIN_XML,
         r"cannot open virtio-serial port 'channel0' of VM 'vm1': some other failure", None),
        ("com.x.0", "no XML to explain it", None,
         r"cannot open virtio-serial port 'com.x.0' of VM 'vm1': no XML to explain it", None),
        ("com.x.0", "garbled XML", "<domain", r"cannot open .*: garbled XML", None),
    ],
)
def test_open_failures_name_the_port_and_the_fix(
    port: str, text: str, xml: str | None, message: str, hint: str | None
) -> None:
    err = explain_open_failure("vm1", port, text, xml)
    assert type(err) is TransportError
    assert re.search(message, err.message), err.message
    if hint is None:
        assert err.hint is None
    else:
        assert err.hint is not None and hint in err.hint


# --- the object before any I/O ---------------------------------------------------------


class FakeHandle:
    """Enough of a DomainHandle for paths that never reach libvirt."""

    name = "vm1"

    @property
    def host(self) -> HostConnection:
        raise AssertionError("no host needed")

    def domain(self, timeout: float | None = None) -> libvirt.virDomain:
        raise AssertionError("no domain needed")

    def call(self, fn: Callable[[], T]) -> T:
        raise AssertionError("no libvirt call expected")


def test_a_port_must_have_a_name() -> None:
    with pytest.raises(ValueError, match="needs its name"):
        VirtioSerial(FakeHandle(), "")


def test_io_before_open_says_so_and_close_before_open_is_a_no_op() -> None:
    port = VirtioSerial(FakeHandle(), "com.x.0")
    assert repr(port) == "<VirtioSerial vm1:com.x.0 idle>"
    for call in (lambda: port.recv(timeout=1), lambda: port.send(b"x", timeout=1),
                 lambda: port.readline(timeout=1), lambda: port.recv_exactly(2, timeout=1)):
        with pytest.raises(ChannelClosed, match=r"vm1:com.x.0 is not open") as info:
            call()
        assert info.value.hint is not None and "open()" in info.value.hint
    port.close()
    port.close()
    assert port.state is SerialState.IDLE and port.buffered == 0
