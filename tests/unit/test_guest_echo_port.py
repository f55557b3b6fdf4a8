"""atp-echo-port (guest_src/atp-echo-port.c), the guest's echo service on a virtio-serial
port: it compiles with the guest programs' flags, refuses bad arguments (exit 2) and a
device it cannot open (exit 1), and echoes what it reads, here on a pseudo-terminal in raw
mode standing for the port. On a real port: tests/integration/test_virtio_serial.py (the
echoes, and that an idle echo starts no processes)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.guest_binaries import guest_binary

WAIT_S = 10.0


@pytest.fixture(scope="module")
def echo_port(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return guest_binary("atp-echo-port", tmp_path_factory)


@pytest.mark.parametrize("args", [(), ("relative/path",), ("/dev/null", "extra")],
                         ids=["none", "relative", "two"])
def test_bad_arguments_exit_2_with_the_usage(echo_port: Path, args: tuple[str, ...]) -> None:
    done = subprocess.run([str(echo_port), *args], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 2
    assert done.stderr == "usage: atp-echo-port DEVICE (an absolute path)\n"


def test_a_device_it_cannot_open_exits_1_naming_it(echo_port: Path) -> None:
    done = subprocess.run([str(echo_port), "/no/such/port"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 1
    assert done.stderr == ("atp-echo-port: cannot open /no/such/port: "
                           "No such file or directory\n")


@pytest.fixture
def terminal() -> Iterator[tuple[int, str]]:
    master, slave = pty.openpty()
    tty.setraw(slave)  # no line discipline: bytes pass as they are, as on a port
    # held open here too: a master reads EIO while no descriptor of its slave is open
    yield master, os.ttyname(slave)
    os.close(slave)
    os.close(master)


def read_some(fd: int, count: int) -> bytes:
    got = b""
    while len(got) < count:
        ready, _, _ = select.select([fd], [], [], WAIT_S)
        assert ready, f"only {got!r} echoed within {WAIT_S} s"
        got += os.read(fd, count - len(got))
    return got


def test_what_it_reads_comes_back(echo_port: Path, terminal: tuple[int, str]) -> None:
    master, name = terminal
    process = subprocess.Popen([str(echo_port), name])
    try:
        data = bytes(range(256)) * 16  # every byte value, more than one read's worth
        for chunk in (b"ping\n", data):
            os.write(master, chunk)
            assert read_some(master, len(chunk)) == chunk
        assert process.poll() is None  # it serves for as long as the guest runs
    finally:
        process.kill()
        process.wait(timeout=WAIT_S)
