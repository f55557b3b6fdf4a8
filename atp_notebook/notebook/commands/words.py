"""Words, VM references, JSON arguments and options: the parsing every magic shares.

IPython hands a line magic its whole line as one string. The magics split off only the
leading words they need and keep the rest raw, so JSON and guest text arrive unchanged
(``shlex`` would eat the quotes of ``{"command-line": "info status"}``). Every user mistake
becomes a :class:`UsageError` of one line plus a ``hint:`` line, never a traceback.

Example::

    take_word('atp-vm1 query-status {"a": 1}')   # ('atp-vm1', 'query-status {"a": 1}')
    parse_vm_ref("atp-vm1@tls")                   # VmRef(name='atp-vm1', host='tls')
    parse_json_object('{"a": 1}', "arguments")    # {'a': 1}
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from IPython.core.error import UsageError

JSON_HINT = 'JSON arguments look like {"name": "text", "count": 1, "on": true}'
_HOST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def usage(message: str, hint: str | None = None) -> UsageError:
    """A UsageError of one line, plus a ``hint:`` line saying what to type instead."""
    message = " ".join(message.split())  # one line, whatever the source text held
    return UsageError(f"{message}\nhint: {hint}" if hint else message)


def take_word(text: str) -> tuple[str, str]:
    """The first whitespace-separated word of ``text`` and the rest, left-stripped."""
    parts = text.lstrip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].lstrip() if len(parts) > 1 else ""


def split_args(text: str, usage_line: str) -> list[str]:
    """Shell-like words (quotes group, backslashes escape), for parts that hold no JSON."""
    try:
        return shlex.split(text)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise usage(f"cannot split {text!r} into words: {exc}", usage_line) from None


@dataclass(frozen=True)
class VmRef:
    """A VM as a magic names it: ``name``, or ``name@host`` to pick the libvirt host."""

    name: str
    host: str | None = None

    def __str__(self) -> str:
        return self.name if self.host is None else f"{self.name}@{self.host}"


def parse_vm_ref(word: str) -> VmRef:
    """``atp-vm1`` or ``atp-vm1@tls`` (the host is a host id of the configuration)."""
    name, at, host = word.rpartition("@")
    if not at:
        name, host = word, ""
    if not name or (at and not host):
        raise usage(f"{word!r} is not a VM", "write NAME or NAME@HOST, e.g. atp-vm1@tls")
    if at and not _HOST_ID.fullmatch(host):
        raise usage(f"{host!r} in {word!r} is not a host id",
                    "host ids are letters, digits, '.', '_' and '-'; see %atp hosts")
    return VmRef(name, host or None)


def _every_word_is_a_vm(_word: str) -> bool:
    return True


@dataclass(frozen=True)
class VmSelector:
    """Reads the VM word of a magic line; with a default VM the word may be left out.

    ``is_vm`` is asked only when a default is set, to tell ``%qmp query-status`` (default
    VM) from ``%qmp atp-vm1 query-status``; a word with ``@`` always names a VM::

        VmSelector("atp-vm1", lambda w: w in {"atp-vm1", "atp-vm2"}).take("query-status", "")
        # (VmRef('atp-vm1'), 'query-status')
    """

    default: str | None = None
    is_vm: Callable[[str], bool] = field(default=_every_word_is_a_vm)

    def take(self, text: str, usage_line: str) -> tuple[VmRef, str]:
        word, rest = take_word(text)
        if self.default is not None and (
                not word or word.startswith("-") or ("@" not in word and not self.is_vm(word))):
            return parse_vm_ref(self.default), text.strip()
        if not word or word.startswith("-"):
            raise usage("missing VM name", usage_line)
        return parse_vm_ref(word), rest


def parse_json_object(text: str, what: str, usage_line: str | None = None) -> dict[str, Any]:
    """A JSON object (``{}`` when ``text`` is blank); says where the JSON breaks."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise usage(f"{what} are not valid JSON: {exc.msg} at column {exc.colno}",
                    usage_line or JSON_HINT) from None
    if not isinstance(value, dict):
        raise usage(f"{what} must be a JSON object, not {type(value).__name__}",
                    usage_line or JSON_HINT)
    return value


def check_command_name(name: str, kind: str, usage_line: str) -> str:
    """QMP/QGA command names: letters, digits, '-', '_' and '.' (vendor prefixes)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        if name.startswith(("{", "[")):
            raise usage(f"missing {kind} command before the JSON arguments", usage_line)
        raise usage(f"{name!r} is not a {kind} command name", usage_line)
    return name


class OptionParser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line + hint) instead of printing and exiting.

    Example::

        p = OptionParser("%virtio VM PORT recv", "%virtio VM PORT recv [--timeout S]")
        p.add_argument("--timeout", type=positive_float)
        p.parse(["--timeout", "2"]).timeout      # 2.0
    """

    def __init__(self, prog: str, usage_line: str) -> None:
        super().__init__(prog=prog, add_help=False, allow_abbrev=False, exit_on_error=False)
        self.usage_line = usage_line

    def parse(self, args: Sequence[str]) -> argparse.Namespace:
        try:
            return self.parse_args(list(args))
        except argparse.ArgumentError as exc:  # exit_on_error=False raises these for types
            raise usage(f"{self.prog}: {exc}", self.usage_line) from None

    def error(self, message: str) -> NoReturn:
        raise usage(f"{self.prog}: {message}", self.usage_line)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise usage(f"{self.prog}: {message or 'stopped'}", self.usage_line)


def positive_float(text: str) -> float:
    """argparse type for seconds: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def positive_int(text: str) -> int:
    """argparse type for counts: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|[nrt0\\])")
_SIMPLE_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}


def decode_escapes(text: str) -> bytes:
    """UTF-8 bytes of ``text`` with ``\\n \\r \\t \\0 \\\\ \\xNN`` turned into their bytes.

    Only these escapes are special, so a Windows path or a regex mostly passes as typed::

        decode_escapes(r"ping\\n")      # b"ping\\n"
    """
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(text):
        out += text[pos:match.start()].encode()
        code = match.group(1)
        out += bytes([int(code[1:], 16)]) if code[0] == "x" else _SIMPLE_ESCAPES[code]
        pos = match.end()
    out += text[pos:].encode()
    return bytes(out)
