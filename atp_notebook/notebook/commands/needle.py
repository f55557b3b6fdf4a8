"""``%needle``: a needle editor on a fresh screenshot of a VM.

Forms::

    %needle VM NAME [--tags a,b] [--properties p,name=value] [--dir DIR]

Shows a :class:`~atp_notebook.notebook.needle_editor.NeedleEditor` on the VM's screen as
it is now: draw the areas, set the click point, Save writes ``DIR/NAME.json`` and
``DIR/NAME.png`` (DIR: the session's needle folder, ``$ATP_NEEDLES`` or ``./needles``).

Example::

    parse_needle_line("atp-vm1 login-prompt --tags login,console")
    # NeedleRequest(vm=VmRef('atp-vm1'), name='login-prompt', tags=('login', 'console'),
    #               directory=None, properties=())
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atp_notebook.notebook.commands.words import OptionParser, VmRef, VmSelector, split_args, usage
from atp_notebook.notebook.needle_editor import NEEDLE_NAME, NeedleEditor
from atp_notebook.session import Vm

NEEDLE_USAGE = "%needle VM NAME [--tags a,b] [--properties p,name=value] [--dir DIR]"


@dataclass(frozen=True)
class NeedleRequest:
    vm: VmRef
    name: str
    tags: tuple[str, ...] = ()
    directory: Path | None = None
    properties: tuple[str, ...] = ()  # names or name=value, as the editor's field takes


def parse_needle_line(line: str, vms: VmSelector | None = None) -> NeedleRequest:
    """What a ``%needle`` line asks; UsageError (one line + hint) otherwise."""
    vm, rest = (vms or VmSelector()).take(line, NEEDLE_USAGE)
    parser = OptionParser("%needle", NEEDLE_USAGE)
    parser.add_argument("name")
    parser.add_argument("--tags", default="")
    parser.add_argument("--properties", default="")
    parser.add_argument("--dir", type=Path, dest="directory")
    options = parser.parse(split_args(rest, NEEDLE_USAGE))
    if not NEEDLE_NAME.fullmatch(options.name):
        raise usage(f"%needle: {options.name!r} is not a needle name",
                    "letters, digits, '.', '_' and '-': it names the JSON and PNG files")
    tags = _words(options.tags)
    return NeedleRequest(vm, options.name, tags, options.directory,
                         _words(options.properties))


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


def run_needle(request: NeedleRequest, vm: Vm) -> NeedleEditor:
    return NeedleEditor(vm, name=request.name, tags=request.tags,
                        directory=request.directory, properties=request.properties)
