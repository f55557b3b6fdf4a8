"""``%qga`` and ``%%qga``: parsing (pure) and running (through ``Vm``).

Line forms::

    %qga VM COMMAND [JSON-ARGS]                  # any agent command, e.g. guest-ping
    %qga VM exec [--timeout S] [--check] -- ARGV...
    %qga VM wait [--timeout S]                   # until the agent answers (progress bar)

Cell form -- the cell is a shell script run in the guest as ``/bin/sh -c CELL``::

    %%qga VM [--timeout S] [--check]

Output is shown when the script has ended, not as it comes: qemu-ga returns a process's
``out-data``/``err-data`` only in the ``guest-exec-status`` reply that reports it exited
(qga/commands.c, ``qmp_guest_exec_status``), so there is nothing partial to poll.

Example::

    parse_qga_line("atp-vm1 exec -- cat /etc/hostname")
    # QgaExec(vm=VmRef('atp-vm1'), argv=('cat', '/etc/hostname'), timeout=None, check=False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from atp_notebook.errors import GuestAgentError
from atp_notebook.notebook.commands.words import (
    OptionParser,
    VmRef,
    VmSelector,
    check_command_name,
    parse_json_object,
    positive_float,
    split_args,
    take_word,
    usage,
)
from atp_notebook.notebook.progress import AgentProgress
from atp_notebook.notebook.render import caption_html, pre_html
from atp_notebook.notebook.results import JsonResult, NoteResult, Result
from atp_notebook.session import Vm

USAGE = ("%qga VM COMMAND [JSON-ARGS]  |  %qga VM exec [--timeout S] [--check] -- ARGV...  |  "
         "%qga VM wait [--timeout S]")
EXEC_USAGE = "%qga VM exec [--timeout S] [--check] -- ARGV..."
WAIT_USAGE = "%qga VM wait [--timeout S]"
CELL_USAGE = "%%qga VM [--timeout S] [--check], then a shell script in the cell"
SHELL = "/bin/sh"
STDERR_STYLE = "color: #b00020"


@dataclass(frozen=True)
class QgaCall:
    vm: VmRef
    command: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QgaExec:
    """Run ``argv``; ``timeout`` None means the magics' ``timeout``; ``check`` raises on a
    non-zero exit."""

    vm: VmRef
    argv: tuple[str, ...]
    timeout: float | None = None
    check: bool = False


@dataclass(frozen=True)
class QgaWait:
    vm: VmRef
    timeout: float | None = None


# --- parsing --------------------------------------------------------------------------


def parse_qga_line(line: str, vms: VmSelector | None = None) -> QgaCall | QgaExec | QgaWait:
    """The request a ``%qga`` line asks for; UsageError (one line + hint) otherwise."""
    vm, rest = (vms or VmSelector()).take(line, USAGE)
    word, tail = take_word(rest)
    if not word:
        raise usage(f"missing agent command after {vm}, e.g. %qga {vm} guest-ping", USAGE)
    if word == "exec":
        return _parse_exec(vm, tail)
    if word == "wait":
        parser = OptionParser("%qga wait", WAIT_USAGE)
        parser.add_argument("--timeout", type=positive_float)
        return QgaWait(vm, parser.parse(split_args(tail, WAIT_USAGE)).timeout)
    check_command_name(word, "guest agent", USAGE)
    return QgaCall(vm, word, parse_json_object(tail, f"arguments of {word}"))


def _parse_exec(vm: VmRef, text: str) -> QgaExec:
    words = split_args(text, EXEC_USAGE)
    # options end at "--" or at the first word that is not one: `exec ls -l` needs no "--"
    options: list[str] = []
    while words and words[0].startswith("-") and words[0] != "--":
        options.append(words.pop(0))
        if options[-1] == "--timeout" and words:
            options.append(words.pop(0))
    if words and words[0] == "--":
        words.pop(0)
    parser = OptionParser("%qga exec", EXEC_USAGE)
    parser.add_argument("--timeout", type=positive_float)
    parser.add_argument("--check", action="store_true")
    args = parser.parse(options)
    if not words:
        raise usage("exec needs a program to run, e.g. %qga atp-vm1 exec -- uname -r",
                    EXEC_USAGE)
    return QgaExec(vm, tuple(words), args.timeout, args.check)


def parse_qga_cell(line: str, cell: str, vms: VmSelector | None = None) -> QgaExec:
    """A ``%%qga`` cell as ``/bin/sh -c CELL``."""
    vm, rest = (vms or VmSelector()).take(line, CELL_USAGE)
    parser = OptionParser("%%qga", CELL_USAGE)
    parser.add_argument("--timeout", type=positive_float)
    parser.add_argument("--check", action="store_true")
    args = parser.parse(split_args(rest, CELL_USAGE))
    if not cell.strip():
        raise usage("the %%qga cell is empty: write the shell script below the magic's line",
                    CELL_USAGE)
    return QgaExec(vm, (SHELL, "-c", cell), args.timeout, args.check)


# --- running --------------------------------------------------------------------------


class ExecOutcome(Protocol):
    """What ExecOutput shows of a guest process (``atp_notebook.virt.guest_agent``)."""

    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...
    @property
    def truncated(self) -> bool: ...
    @property
    def signal(self) -> int | None: ...


def run_qga(request: QgaCall | QgaExec | QgaWait, vm: Vm, timeout: float,
            progress: Callable[[str, float], AgentProgress | None] | None = None) -> Result:
    """Run a parsed ``%qga``/``%%qga`` request on ``vm``; ``timeout`` is the default wait.

    ``progress(label, timeout)`` makes a progress display for ``wait`` (None: no display).
    """
    if isinstance(request, QgaCall):
        # the mapping keeps names exactly as QGA spells them (keywords would turn _ into -)
        reply = vm.qga(request.command, request.arguments, timeout=timeout)
        return JsonResult(reply, f"{vm.name}: {request.command}")
    if isinstance(request, QgaWait):
        limit = request.timeout or timeout
        bar = progress(f"the guest agent of {vm.name}", limit) if progress else None
        outcome = "gave up"
        try:
            took = vm.wait_for_agent(timeout=limit, progress=bar)
            outcome = f"answered after {took:.1f} s"
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        finally:
            if bar is not None:
                bar.close(outcome)
        return NoteResult(f"{vm.name}: the guest agent answers", took)
    result = vm.exec(list(request.argv), timeout=request.timeout or timeout)
    output = ExecOutput(vm.name, request.argv, result)
    if request.check and result.exit_code != 0:
        raise GuestAgentError(f"{output.command_text()} in {vm.name} failed ({output.ending()})"
                              + _stderr_tail(result.stderr))
    return output


def _stderr_tail(stderr: bytes) -> str:
    tail = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return f": {tail[-1][:200]}" if tail else ""


class ExecOutput(Result):
    """A guest process's stdout, stderr and exit: ``.value`` is the ExecResult.

    ``text/plain`` is stdout, then ``[stderr]`` and its text when there is some, then
    ``[exit code N]`` (or ``[killed by signal N]``)::

        hello
        [stderr]
        oops
        [exit code 3]
    """

    value: ExecOutcome

    def __init__(self, vm: str, argv: tuple[str, ...], result: ExecOutcome) -> None:
        self.vm = vm
        self.argv = argv
        self.value = result
        self.caption = f"{vm}: {self.command_text()}"

    @property
    def exit_code(self) -> int:
        return self.value.exit_code

    @property
    def stdout(self) -> str:
        return self.value.stdout.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.value.stderr.decode("utf-8", errors="replace")

    def command_text(self) -> str:
        if self.argv[:2] == (SHELL, "-c") and len(self.argv) == 3:
            lines = self.argv[2].strip().splitlines()
            return "sh script" if len(lines) != 1 else f"sh -c {lines[0][:60]!r}"
        return " ".join(self.argv)

    def ending(self) -> str:
        if self.value.signal is not None:
            return f"killed by signal {self.value.signal}"
        return f"exit code {self.value.exit_code}"

    def text(self) -> str:
        parts = [self.stdout.rstrip("\n")] if self.stdout else []
        if self.stderr:
            parts += ["[stderr]", self.stderr.rstrip("\n")]
        if self.value.truncated:
            parts.append("[output truncated by the guest agent]")
        parts.append(f"[{self.ending()}]")
        return "\n".join(parts)

    def html(self) -> str:
        body = caption_html(self.caption)
        if self.stdout:
            body += pre_html(self.stdout)
        if self.stderr:
            body += pre_html(self.stderr, STDERR_STYLE)
        if self.value.truncated:
            body += pre_html("(output truncated by the guest agent)", STDERR_STYLE)
        failed = self.value.exit_code != 0
        color = STDERR_STYLE if failed else "color: #1b7f3b"
        return body + pre_html(f"[{self.ending()}]", color)
