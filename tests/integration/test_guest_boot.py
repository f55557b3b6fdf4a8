"""Boot the guest image under plain QEMU (TCG, no libvirt) and use what it promises.

KVM is deliberately not used: nested KVM hangs guests on the lab's build machines, and TCG
boots this guest to a working agent in well under half a minute.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atp_notebook.lab.guest import GuestImage, build_guest
from atp_notebook.lab.paths import AGENT_PORT_NAME, TEST_PORT_NAME

AGENT_TIMEOUT = 90.0
HOSTNAME = "bootcheck"


class Agent:
    """A minimal qemu-ga client on the chardev socket: one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            assert chunk, "the agent socket was closed by QEMU"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def send(self, command: str, **arguments: Any) -> None:
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def wait_until_up(self, timeout: float) -> None:
        """Ping until the agent answers, then resynchronise.

        Until qemu-ga opens its port, QEMU leaves what we send in the socket; the agent then
        sees every ping at once and answers each, so the stale answers are skipped with a
        guest-sync whose id only this call knows.
        """
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"no answer to guest-ping within {timeout} s"
            self.send("guest-ping")
            line = self._read_line(min(deadline, time.monotonic() + 1.0))
            if line is not None and json.loads(line).get("return") == {}:
                break
        token = int.from_bytes(os.urandom(4), "big")
        self.send("guest-sync", id=token)
        while True:
            line = self._read_line(deadline)
            assert line is not None, "no answer to guest-sync"
            if json.loads(line).get("return") == token:
                return

    def call(self, command: str, timeout: float = 30.0, **arguments: Any) -> Any:
        self.send(command, **arguments)
        line = self._read_line(time.monotonic() + timeout)
        assert line is not None, f"no answer to {command} within {timeout} s"
        reply = json.loads(line)
        assert "return" in reply, f"{command} failed: {reply}"
        return reply["return"]

    def exec(self, path: str, *args: str, timeout: float = 30.0) -> tuple[int, str, str]:
        """Run a program in the guest; (exit code, stdout, stderr)."""
        pid = self.call("guest-exec", path=path, arg=list(args), **{"capture-output": True})["pid"]
        deadline = time.monotonic() + timeout
        while True:
            status = self.call("guest-exec-status", pid=pid)
            if status["exited"]:
                out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
                err = base64.b64decode(status.get("err-data", "")).decode(errors="replace")
                return status.get("exitcode", -1), out, err
            assert time.monotonic() < deadline, f"{path} {args} still runs after {timeout} s"
            time.sleep(0.1)


@dataclass
class BootedGuest:
    agent: Agent
    test_socket: Path
    serial_log: Path
    boot_to_agent: float

    def serial_tail(self) -> str:
        text = self.serial_log.read_text(errors="replace") if self.serial_log.exists() else ""
        return "\n--- guest serial log (tail) ---\n" + text[-3000:]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> GuestImage:
    return build_guest(tmp_path_factory.mktemp("guest"))


@pytest.fixture(scope="module")
def booted(image: GuestImage) -> Iterator[BootedGuest]:
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None, "qemu-system-x86_64 is needed: apt-get install qemu-system-x86"
    # A short directory of our own: unix socket paths must stay under 108 bytes.
    work = Path(tempfile.mkdtemp(prefix="atp-boot-"))
    agent_sock, test_sock, serial = work / "ga.sock", work / "test.sock", work / "serial.log"
    argv = [
        qemu, "-machine", "pc", "-accel", "tcg", "-m", "256", "-smp", "1",
        "-display", "none", "-monitor", "none", "-vga", "qxl", "-nic", "none", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", f"{image.cmdline} atp.hostname={HOSTNAME}",
        "-device", "virtio-serial",
        "-chardev", f"socket,id=agent,path={agent_sock},server=on,wait=off",
        "-device", f"virtserialport,chardev=agent,name={AGENT_PORT_NAME}",
        "-chardev", f"socket,id=test,path={test_sock},server=on,wait=off",
        "-device", f"virtserialport,chardev=test,name={TEST_PORT_NAME}",
        "-serial", f"file:{serial}",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    agent: Agent | None = None
    try:
        while not agent_sock.exists():
            assert proc.poll() is None, f"qemu exited: {proc.communicate()[0].decode()}"
            assert time.monotonic() - started < 10, "qemu did not create its sockets"
            time.sleep(0.05)
        agent = Agent(agent_sock)
        guest = BootedGuest(agent, test_sock, serial, 0.0)
        try:
            agent.wait_until_up(AGENT_TIMEOUT)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{guest.serial_tail()}") from None
        guest.boot_to_agent = time.monotonic() - started
        print(f"\nguest agent answered {guest.boot_to_agent:.1f} s after qemu started")
        yield guest
    finally:
        if agent is not None:
            agent.close()
        proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def test_agent_answers_after_boot(booted: BootedGuest) -> None:
    assert booted.agent.call("guest-ping") == {}


def test_hostname_comes_from_the_kernel_command_line(booted: BootedGuest) -> None:
    code, out, err = booted.agent.exec("cat", "/proc/sys/kernel/hostname")
    assert (code, out.strip()) == (0, HOSTNAME), err + booted.serial_tail()


def echo_through(path: Path, payload: bytes, timeout: float = 30.0) -> bytes:
    """Send payload to the test port and read back as many bytes; writing runs in a thread
    so that neither direction's buffers can deadlock the other."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.settimeout(timeout)
        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        sender.join(timeout)
        return bytes(received)


def test_echo_service_returns_random_bytes_exactly(booted: BootedGuest) -> None:
    payload = os.urandom(64 * 1024)
    started = time.monotonic()
    assert echo_through(booted.test_socket, payload) == payload, booted.serial_tail()
    print(f"\n64 KiB echoed in {time.monotonic() - started:.3f} s")
    # The host side disconnected in between: the service must still be there.
    again = os.urandom(4096)
    assert echo_through(booted.test_socket, again) == again, booted.serial_tail()


def test_framebuffer_comes_up_on_request(booted: BootedGuest) -> None:
    code, out, err = booted.agent.exec("/usr/bin/atp-fb-on", timeout=60)
    assert code == 0, f"atp-fb-on failed: {out}{err}{booted.serial_tail()}"
    assert "1024,768 32bpp" in out
    code, _, err = booted.agent.exec("/bin/sh", "-c", "test -c /dev/fb0")
    assert code == 0, f"/dev/fb0 missing after atp-fb-on: {err}"
    # running it again is harmless
    assert booted.agent.exec("/usr/bin/atp-fb-on")[0] == 0


def test_keymap_loads(booted: BootedGuest) -> None:
    code, out, err = booted.agent.exec("/bin/sh", "-c", "loadkmap < /usr/share/keymaps/de.bmap")
    assert code == 0, out + err
    code, out, err = booted.agent.exec("/bin/sh", "-c", "loadkmap < /usr/share/keymaps/us.bmap")
    assert code == 0, out + err


def test_tty1_has_a_shell_with_a_controlling_terminal(booted: BootedGuest) -> None:
    # The shell's stdin is tty1 and tty1 is its session's terminal (so Ctrl-C works there).
    script = ("for p in /proc/[0-9]*; do "
              "[ \"$(readlink $p/fd/0)\" = /dev/tty1 ] && cut -d' ' -f7 $p/stat; done; true")
    code, out, err = booted.agent.exec("/bin/sh", "-c", script)
    assert code == 0, err
    # field 7 of /proc/PID/stat is tty_nr: major 4, minor 1 -> 0x401
    assert "1025" in out.split(), f"no process with tty1 as controlling terminal: {out!r}"
