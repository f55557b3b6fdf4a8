"""The QEMU guest agent (qemu-ga) of one VM, over its host's shared libvirt connection.

Commands go through ``virDomainQemuAgentCommand``: libvirtd owns the agent socket, so we need
no socket of our own and every transport (local, tcp, tls, ssh) works the same way.

Limits measured against libvirt 9.0 / qemu-ga 7.2 (they shape the chunk sizes below):

* Replies travel back as one RPC string, capped at ``VIR_NET_MESSAGE_STRING_MAX`` = 4 MiB
  (libvirt ``src/rpc/virnetprotocol.x``); a larger reply fails with VIR_ERR_RPC "Unable to
  encode message payload" and is lost.  libvirtd's own agent buffer allows 10 MiB
  (``QEMU_AGENT_MAX_RESPONSE``), so the RPC cap is the one that binds.
* Requests are worse.  ``qemuAgentIOWrite`` (src/qemu/qemu_agent.c) calls ``safewrite()`` on
  the non-blocking agent socket; safewrite loops over ``write()`` and returns -1 on EAGAIN,
  forgetting what it already wrote, so the message starts over from its first byte.  A
  request bigger than one ``write()`` into the empty socket takes (219264 bytes with Linux's
  default 212992-byte send buffer) then never completes: measured, 214 KB went through, 240 KB
  hung for the whole timeout -- and blocked every other agent call on that VM meanwhile.  We
  refuse requests over 192 KiB before sending them.

Example::

    from atp_notebook.virt.guest_agent import GuestAgent
    qga = GuestAgent(vm)                    # vm: a DomainHandle such as session.vm("atp-vm1")
    qga.exec(["uname", "-r"]).check().text  # '6.1.0-...\\n'
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt
import libvirt_qemu

from atp_notebook.bridge import async_twin
from atp_notebook.errors import (
    AgentCommandDisabled,
    AgentUnavailable,
    AtpError,
    GuestAgentError,
    GuestTimeout,
    HostUnavailable,
    Interrupted,
    InvalidArgument,
)
from atp_notebook.virt.handle import DomainHandle

T = TypeVar("T")
Buffer = bytes | bytearray | memoryview

DEFAULT_TIMEOUT_S = 10.0
MAX_REQUEST_BYTES = 192 << 10  # see the module docstring: one write() to libvirtd's socket
MAX_REPLY_BYTES = 4 << 20  # VIR_NET_MESSAGE_STRING_MAX
# 1 MiB raw is 1.4 MB of base64, a third of the reply cap; reading 256 KiB, 1 MiB and 2 MiB
# chunks measured 7.1, 8.0 and 7.7 MB/s, so bigger chunks buy nothing.
READ_CHUNK = 1 << 20
# 96 KiB raw is 128 KiB of base64 plus ~60 bytes of JSON, well under MAX_REQUEST_BYTES.
# Writes run at ~2.5 MB/s for any chunk from 64 to 144 KiB: the guest side is the bottleneck.
WRITE_CHUNK = 96 << 10
EXEC_POLL_FIRST_S = 0.005  # most commands end within a few ms; back off from there
EXEC_POLL_MAX_S = 0.2
WAIT_POLL_S = 0.5

# libvirt reports every agent error reply as VIR_ERR_INTERNAL_ERROR "unable to execute QEMU
# agent command 'NAME': DESC" (qemuAgentCheckError): the class is lost, only the text remains.
_LIBVIRT_WRAPPED = re.compile(r"unable to execute QEMU agent command '[^']*'(?:: (?P<desc>.*))?",
                              re.DOTALL)
_UNAVAILABLE_TEXTS = ("guest agent is not responding", "guest agent is not connected",
                      "guest agent not available", "guest agent disappeared",
                      "guest agent is not available")
# desc texts that reveal the error class (QEMU's qmp_dispatch; libvirt's stand-ins when an
# error has no desc, qemuAgentStringifyErrorClass)
_CLASS_TEXTS = (("has been disabled", "CommandDisabled"),
                ("has not been found", "CommandNotFound"),
                ("Guest agent command failed", "QgaCommandFailed"),
                ("Invalid parameter", "InvalidParameter"),
                ("Cannot open file", "OpenFileFailed"))


# --- pure parts: requests, replies, errors, exec results -------------------------------


def agent_timeout(seconds: float) -> int:
    """libvirt takes whole seconds (and treats -2/-1/0 as block/default/no-wait): round a
    positive timeout up, so 0.2 s waits 1 s rather than not at all."""
    if not seconds > 0 or math.isinf(seconds):
        raise InvalidArgument(f"agent timeout must be a positive number of seconds, not "
                              f"{seconds!r}")
    return max(1, math.ceil(seconds))


def encode_request(vm: str, command: str, arguments: Mapping[str, Any]) -> str:
    """The JSON text of one command; refuses what is not JSON or too big to send."""
    request: dict[str, Any] = {"execute": command}
    if arguments:
        request["arguments"] = dict(arguments)
    try:
        text = json.dumps(request, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GuestAgentError(f"{command!r} for {vm!r}: arguments are not JSON: {exc}") from exc
    if len(text) > MAX_REQUEST_BYTES:
        raise GuestAgentError(
            f"{command!r} for {vm!r}: request of {len(text)} bytes exceeds the "
            f"{MAX_REQUEST_BYTES} bytes libvirt can pass to the agent in one piece",
            hint="send large data with write_file() (it chunks) and read it from there")
    return text


def error_class_from_text(desc: str) -> str | None:
    """The QGA error class a description reveals, if any."""
    return next((cls for text, cls in _CLASS_TEXTS if text in desc), None)


def agent_error(vm: str, command: str, error_class: str | None, desc: str) -> GuestAgentError:
    """The exception for an error the agent itself answered."""
    if error_class == "CommandDisabled" or "has been disabled" in desc:
        return AgentCommandDisabled(
            f"guest agent of {vm!r}: {command!r} is disabled: {desc}",
            hint="qemu-ga blocks it (--block-rpcs/--allow-rpcs, or while filesystems are frozen)")
    prefix = f"{error_class}: " if error_class else ""
    return GuestAgentError(f"guest agent of {vm!r}: {command!r} failed: {prefix}{desc}")


def parse_reply(vm: str, command: str, text: str) -> Any:
    """The ``return`` value of a reply text; agent errors and garbage raise."""
    try:
        reply = json.loads(text)
    except ValueError as exc:
        raise GuestAgentError(
            f"guest agent of {vm!r}: {command!r} reply is not JSON: {text[:80]!r}") from exc
    if isinstance(reply, dict) and "return" in reply:
        return reply["return"]
    if isinstance(reply, dict) and isinstance(reply.get("error"), dict):
        error = reply["error"]
        cls = error.get("class")
        desc = str(error.get("desc") or cls or "unknown error")
        raise agent_error(vm, command, cls if isinstance(cls, str) else None, desc)
    raise GuestAgentError(f"guest agent of {vm!r}: {command!r} reply has neither 'return' "
                          f"nor 'error': {text[:80]!r}")


def libvirt_agent_error(vm: str, command: str, code: int, message: str,
                        timeout_s: int) -> GuestAgentError:
    """The exception for a failed ``qemuAgentCommand``: by libvirt error code, then text."""
    lowered = message.lower()
    if (code in (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_AGENT_UNSYNCED)
            or any(t in lowered for t in _UNAVAILABLE_TEXTS)):
        return AgentUnavailable(
            f"guest agent of {vm!r} did not answer {command!r} (timeout {timeout_s} s): "
            f"{message}", hint="is qemu-ga running in the guest? wait_for_agent() waits for it")
    if code == libvirt.VIR_ERR_OPERATION_TIMEOUT and "state change lock" in message:
        # libvirt runs one agent command per domain at a time and waits 30 s for its turn
        return AgentUnavailable(f"guest agent of {vm!r} is busy; {command!r} was not sent: "
                                f"{message}", hint="another agent call on this VM is running")
    if code == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in message:
        return AgentUnavailable(f"{vm!r} is not running; {command!r} was not sent")
    if code == libvirt.VIR_ERR_RPC and "encode" in message:
        return GuestAgentError(
            f"guest agent of {vm!r}: the reply to {command!r} exceeds the {MAX_REPLY_BYTES} "
            f"bytes libvirt can return; it is lost: {message}",
            hint="ask for less at once (exec output: redirect it to a file, then read_file())")
    wrapped = _LIBVIRT_WRAPPED.search(message)
    desc = (wrapped.group("desc") or message) if wrapped else message
    return agent_error(vm, command, error_class_from_text(desc), desc)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How a guest command ended.  ``exit_code`` is ``-N`` when signal N killed it (as in
    :mod:`subprocess`); ``truncated`` when qemu-ga dropped output past its 16 MB cap."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    signal: int | None = None
    argv: tuple[str, ...] = ()

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    @property
    def text(self) -> str:
        """stdout as text, the usual thing a notebook wants: ``qga.exec(["id"]).text``."""
        return self.stdout_text

    def check(self) -> ExecResult:
        """This result, or GuestAgentError when the command failed.

        Example: ``qga.exec(["test", "-d", "/run"]).check()``
        """
        if self.exit_code != 0:
            how = f"signal {self.signal}" if self.signal is not None else f"exit {self.exit_code}"
            tail = self.stderr_text.strip()[-500:]
            raise GuestAgentError(f"{' '.join(self.argv) or 'guest command'} failed ({how})"
                                  + (f": {tail}" if tail else ""))
        return self


def decode_exec_status(status: Mapping[str, Any],
                       argv: Sequence[str] = ()) -> ExecResult | None:
    """A ``guest-exec-status`` return value as an ExecResult; None while still running."""
    if not status.get("exited"):
        return None
    signal = status.get("signal")
    code = status.get("exitcode")
    if code is None:
        code = -signal if signal is not None else -1  # neither: qemu-ga could not tell
    return ExecResult(
        exit_code=int(code),
        stdout=base64.b64decode(status.get("out-data", "")),
        stderr=base64.b64decode(status.get("err-data", "")),
        truncated=bool(status.get("out-truncated") or status.get("err-truncated")),
        signal=None if signal is None else int(signal),
        argv=tuple(argv),
    )


def chunks(data: Buffer, size: int) -> Iterator[memoryview]:
    """``data`` in slices of ``size`` bytes (the last may be shorter), without copying."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), size):
        yield view[start:start + size]


def base64_size(raw: int) -> int:
    return (raw + 2) // 3 * 4


@dataclass(frozen=True)
class AgentInfo:
    """``guest-info``: the agent's version and which commands it has (name -> enabled)."""

    version: str
    commands: Mapping[str, bool]

    def supports(self, command: str) -> bool:
        return self.commands.get(command, False)


# --- the client -------------------------------------------------------------------------


# Kill a guest process and its descendants: a `%%qga` script runs as `/bin/sh -c`, and
# killing only the shell left its `sleep` running, re-parented to init (seen on the lab's
# busybox guest). The whole tree is listed first, then killed in one `kill`: killing a child
# first let its shell exit on its own, and the shell's kill then "failed" (a full run said
# "may still run" of a process that was gone). Needs a POSIX sh, ps -o and awk (busybox).
KILL_TREE = (
    'tree() { echo "$1"; for child in $(ps -o pid,ppid | awk -v p="$1" \'$2 == p {print $1}\'); '
    'do tree "$child"; done; }; kill -KILL $(tree "$1") 2>/dev/null; exit 0'
)


def one_line(argv: Sequence[str]) -> str:
    """A command for a one-line message: a script's lines joined with ``; ``."""
    return "; ".join(part.strip() for part in " ".join(argv).splitlines() if part.strip())


class GuestAgent:
    """qemu-ga of one VM.  Blocking methods run libvirt calls on the caller's thread; each has
    an ``*_async`` twin that runs it in the event loop's default executor.  Holds no state
    beyond its settings, so one instance may be shared between threads (libvirt runs one agent
    command per domain at a time anyway).

    Example::

        qga = GuestAgent(session.vm("atp-vm1"), timeout=5)
        qga.hostname()                       # 'atp-vm1'
        await qga.exec_async(["sync"])       # from async code
    """

    def __init__(self, handle: DomainHandle, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        agent_timeout(timeout)  # validate now, not on the first call
        self.handle = handle
        self.timeout = timeout
        self.log = logging.getLogger(f"atp.virt.{handle.name}.qga")

    def __repr__(self) -> str:
        return f"<GuestAgent of {self.handle.name}>"

    # --- commands ---

    def command(self, name: str, arguments: Mapping[str, Any] | None = None, /, *,
                timeout: float | None = None, **kwargs: Any) -> Any:
        """Run one agent command and return its ``return`` value.

        Arguments come as a mapping (names as QGA spells them) and/or keywords, where ``_``
        becomes ``-`` (``capture_output=True`` is ``"capture-output"``).  ``timeout`` (default
        ``self.timeout``) is rounded up to whole seconds for libvirt, which may spend up to
        5 s more on its own ``guest-sync`` when the agent has just (re)connected.

        Example: ``qga.command("guest-file-open", path="/etc/hostname", mode="r")``
        """
        args = dict(arguments or {})
        args.update({k.replace("_", "-"): v for k, v in kwargs.items()})
        vm = self.handle.name
        text = encode_request(vm, name, args)
        seconds = agent_timeout(self.timeout if timeout is None else timeout)
        started = time.monotonic()
        dom = self.handle.domain(seconds)
        try:
            reply = self.handle.call(
                lambda: libvirt_qemu.qemuAgentCommand(dom, text, seconds, 0))
        except libvirt.libvirtError as exc:
            err = libvirt_agent_error(vm, name, exc.get_error_code() or 0,
                                      str(exc.get_error_message() or exc), seconds)
            self.log.debug("%s failed after %.3f s: %s", name, time.monotonic() - started, err)
            raise err from exc
        # never the arguments or the reply: they may hold file contents or input data
        self.log.debug("%s ok in %.3f s", name, time.monotonic() - started)
        return parse_reply(vm, name, reply)

    def ping(self, timeout: float | None = None) -> None:
        """Raise AgentUnavailable unless the agent answers.  Example: ``qga.ping()``"""
        self.command("guest-ping", timeout=timeout)

    def sync(self, timeout: float | None = None) -> int:
        """``guest-sync`` with a fresh random id; raise unless that id comes back.

        libvirt already syncs by itself: qemuAgentGuestSync sends ``guest-sync`` with a new id
        before a command whenever it is not "in sync" -- with QEMU >= 2.1 (VSERPORT_CHANGE)
        that is once per agent connection and again after a timeout, and a restarted agent is
        a new connection.  So calls need no sync of ours; this is for callers who want an
        explicit end-to-end check, e.g. after restarting the agent.

        Example: ``qga.sync()``
        """
        token = secrets.randbelow(1 << 53)  # exact in any JSON parser
        got = self.command("guest-sync", id=token, timeout=timeout)
        if got != token:
            raise GuestAgentError(f"guest agent of {self.handle.name!r} out of sync: sent id "
                                  f"{token}, got {got!r}")
        return token

    def wait_for_agent(self, timeout: float = 60.0,
                       progress: Callable[[float, float], None] | None = None) -> float:
        """Ping until the agent answers; return the seconds it took.  ``progress(elapsed,
        timeout)`` is called before each try (for a progress bar).  AgentUnavailable when
        ``timeout`` passes; a host that is reconnecting counts as "not yet".

        Example: ``qga.wait_for_agent(60, lambda done, total: bar.update(done / total))``
        """
        started = time.monotonic()
        last: Exception | None = None
        try:
            while (elapsed := time.monotonic() - started) < timeout:
                if progress is not None:
                    progress(elapsed, timeout)
                try:
                    self.ping(timeout=min(self.timeout, max(timeout - elapsed, 0.001)))
                    return time.monotonic() - started
                except (AgentUnavailable, HostUnavailable) as exc:
                    last = exc
                time.sleep(max(0.0, min(WAIT_POLL_S, timeout - (time.monotonic() - started))))
        except KeyboardInterrupt:
            raise Interrupted(f"waiting for the guest agent of {self.handle.name!r}: "
                              f"interrupted after {time.monotonic() - started:.1f} s") from None
        raise AgentUnavailable(f"guest agent of {self.handle.name!r} did not answer within "
                               f"{timeout:g} s", hint="is the VM booted and qemu-ga in it?"
                               ) from last

    # --- processes ---

    def exec(self, argv: Sequence[str], input: Buffer | None = None,
             env: Mapping[str, str] | None = None, timeout: float = 60.0,
             capture: bool = True, *, kill_on_timeout: bool = True) -> ExecResult:
        """Run ``argv`` in the guest (``guest-exec``) and wait until it ends.

        ``argv[0]`` is looked up in qemu-ga's PATH.  ``env`` *replaces* the environment (qemu-ga
        passes exactly these variables).  ``input`` goes to stdin; it travels in the request,
        so it is limited to about 140 KiB -- write bigger input to a file first.  stdout and
        stderr together must stay under ~3 MB (the reply limit); redirect bigger output to a
        file.  qemu-ga reports an end only when the process has exited *and* its output pipes
        are closed, so a background child holding them keeps the command "running".

        After ``timeout``: GuestTimeout.  qemu-ga has no command to stop a process, so with
        ``kill_on_timeout`` we SIGKILL it and its descendants through another ``guest-exec``
        of ``/bin/sh`` (best effort: needs sh, ps and awk in the guest).  Kernel > Interrupt
        does the same and raises ``Interrupted``.

        Example: ``qga.exec(["/bin/sh", "-c", "echo hi"]).text  # 'hi\\n'``
        """
        if isinstance(argv, str) or not argv:
            raise InvalidArgument("argv must be a non-empty list of strings, e.g. ['ls', '-l']")
        args: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]),
                                "capture-output": capture}
        if env is not None:
            args["env"] = [f"{k}={v}" for k, v in env.items()]
        if input is not None:
            args["input-data"] = base64.b64encode(input).decode("ascii")
        deadline = time.monotonic() + timeout
        pid = int(self.command("guest-exec", args)["pid"])
        self.log.debug("exec %s: pid %d", argv[0], pid)
        try:
            result = self._wait_exec(pid, argv, deadline)
        except KeyboardInterrupt:
            # Kernel > Interrupt: stop the guest process as a timeout would, in one line
            killed = self._kill(pid)
            raise Interrupted(
                f"{one_line(argv)} (pid {pid}) in {self.handle.name!r}: interrupted; "
                + ("killed in the guest" if killed else "it may still run in the guest")
            ) from None
        if result is not None:
            return result
        killed = kill_on_timeout and self._kill(pid)
        raise GuestTimeout(f"{one_line(argv)} (pid {pid}) in {self.handle.name!r} did not end "
                           f"within {timeout:g} s" + ("; killed" if killed else ""),
                           hint=None if killed else "it may still be running in the guest")

    def _wait_exec(self, pid: int, argv: Sequence[str], deadline: float) -> ExecResult | None:
        """Poll until ``pid`` ends (its result) or ``deadline`` passes (None)."""
        delay = EXEC_POLL_FIRST_S
        while True:
            result = decode_exec_status(self.command("guest-exec-status", pid=pid), argv)
            if result is not None:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, EXEC_POLL_MAX_S)

    def _kill(self, pid: int) -> bool:
        """SIGKILL ``pid`` and collect both exit statuses, so qemu-ga forgets them."""
        try:
            killer = int(self.command("guest-exec", path="/bin/sh",
                                      arg=["-c", KILL_TREE, "kill-tree", str(pid)])["pid"])
            ok = self._reap(killer)
            self._reap(pid)
            return ok
        except AtpError as exc:
            self.log.debug("could not kill pid %d: %s", pid, exc)
            return False

    def _reap(self, pid: int, within: float = 2.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            result = decode_exec_status(self.command("guest-exec-status", pid=pid))
            if result is not None:
                return result.exit_code == 0
            time.sleep(0.05)
        return False

    # --- files ---

    def read_file(self, path: str) -> bytes:
        """A guest file's bytes, read in 1 MiB chunks.

        Example: ``qga.read_file("/etc/hostname")  # b'atp-vm1\\n'``
        """
        out = bytearray()
        with self._open(path, "rb") as handle:
            while True:
                got = self.command("guest-file-read", handle=handle, count=READ_CHUNK)
                out += base64.b64decode(got.get("buf-b64", ""))
                if got.get("eof") or not got.get("count"):
                    break
        self.log.debug("read %s: %d bytes", path, len(out))
        return bytes(out)

    def write_file(self, path: str, data: Buffer, mode: int | None = None) -> None:
        """Create or replace a guest file with ``data`` (96 KiB per request; not atomic).
        ``mode`` (e.g. ``0o755``) is applied afterwards with the guest's ``chmod``.

        Example: ``qga.write_file("/tmp/run.sh", b"#!/bin/sh\\necho hi\\n", mode=0o755)``
        """
        total = 0
        with self._open(path, "wb") as handle:
            for piece in chunks(data, WRITE_CHUNK):
                rest = piece
                while rest:  # qemu-ga may write less than asked ("count" says how much)
                    done = int(self.command("guest-file-write", handle=handle,
                                            buf_b64=base64.b64encode(rest).decode())["count"])
                    if done <= 0:
                        raise GuestAgentError(f"writing {path!r} in {self.handle.name!r} made "
                                              f"no progress after {total} bytes (disk full?)")
                    rest, total = rest[done:], total + done
        if mode is not None:
            self.exec(["chmod", f"{mode:o}", path], timeout=self.timeout).check()
        self.log.debug("wrote %s: %d bytes", path, total)

    @contextlib.contextmanager
    def _open(self, path: str, mode: str) -> Iterator[int]:
        try:
            handle = int(self.command("guest-file-open", path=path, mode=mode))
        except GuestAgentError as exc:  # keeps its class: unavailable stays unavailable
            raise type(exc)(f"cannot open {path!r} in {self.handle.name!r}: {exc.message}",
                            hint=exc.hint) from exc
        try:
            yield handle
        except BaseException:
            # the first error matters; a handle we fail to close dies with the agent anyway
            with contextlib.suppress(AtpError):
                self.command("guest-file-close", handle=handle)
            raise
        self.command("guest-file-close", handle=handle)

    # --- information ---

    def info(self) -> AgentInfo:
        """Agent version and commands.  Example: ``qga.info().supports("guest-exec")``"""
        got = self.command("guest-info")
        return AgentInfo(str(got["version"]), {c["name"]: bool(c["enabled"])
                                               for c in got.get("supported_commands", [])})

    def os_info(self) -> dict[str, Any]:
        """``guest-get-osinfo``.  Example: ``qga.os_info()["kernel-release"]``"""
        return dict(self.command("guest-get-osinfo"))

    def hostname(self) -> str:
        """The guest's host name.  Example: ``qga.hostname()  # 'atp-vm1'``"""
        return str(self.command("guest-get-host-name")["host-name"])

    def network_interfaces(self) -> list[dict[str, Any]]:
        """NICs and addresses.  Example: ``[i["name"] for i in qga.network_interfaces()]``"""
        return list(self.command("guest-network-get-interfaces"))

    def time(self) -> datetime.datetime:
        """The guest's clock (UTC).  Example: ``qga.time() - datetime.now(timezone.utc)``"""
        ns = int(self.command("guest-get-time"))
        return datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)

    def users(self) -> list[dict[str, Any]]:
        """Logged-in users (none in a busybox guest).  Example: ``qga.users()``"""
        return list(self.command("guest-get-users"))

    def fsinfo(self) -> list[dict[str, Any]]:
        """Disk-backed filesystems (``guest-get-fsinfo``).  Example: ``qga.fsinfo()``"""
        return list(self.command("guest-get-fsinfo"))

    # --- async forms, made from the blocking definitions above: the call runs on an
    # executor thread, because libvirt calls block and must never run on an event loop ---

    command_async = async_twin(command)
    ping_async = async_twin(ping)
    sync_async = async_twin(sync)
    wait_for_agent_async = async_twin(wait_for_agent)
    exec_async = async_twin(exec)
    read_file_async = async_twin(read_file)
    write_file_async = async_twin(write_file)
    info_async = async_twin(info)
    os_info_async = async_twin(os_info)
    hostname_async = async_twin(hostname)
    network_interfaces_async = async_twin(network_interfaces)
    time_async = async_twin(time)
    users_async = async_twin(users)
    fsinfo_async = async_twin(fsinfo)
