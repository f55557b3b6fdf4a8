"""``%qmp`` and ``%%qmp``: parsing (pure) and running (through ``Vm``).

Line forms::

    %qmp VM COMMAND [JSON-ARGS]
    %qmp --hmp VM LINE
    %qmp --events VM [NAMES...] [--timeout S] [--count N]

Cell forms (one command a line, ``name {json}``, ``#`` comments; or a JSON list of
``{"execute": ..., "arguments": ...}``); with ``--events`` the events seen while and after
the commands run are collected too::

    %%qmp VM
    %%qmp --events VM [NAMES...] [--timeout S] [--count N]

Example::

    parse_qmp_line('atp-vm1 human-monitor-command {"command-line": "info status"}')
    # QmpCall(vm=VmRef('atp-vm1'), command='human-monitor-command',
    #         arguments={'command-line': 'info status'})
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from atp_notebook.errors import AtpError, OperationTimeout
from atp_notebook.notebook.commands.words import (
    OptionParser,
    VmRef,
    VmSelector,
    check_command_name,
    parse_json_object,
    positive_float,
    positive_int,
    split_args,
    take_word,
    usage,
)
from atp_notebook.notebook.render import caption_html, html_table, plain_json, pre_html
from atp_notebook.notebook.results import JsonResult, Result, TextResult
from atp_notebook.session import Vm
from atp_notebook.virt.events import EventSubscription, QmpEvent

USAGE = ("%qmp VM COMMAND [JSON-ARGS]  |  %qmp --hmp VM LINE  |  "
         "%qmp --events VM [NAMES...] [--timeout S] [--count N]")
HMP_USAGE = "%qmp --hmp VM LINE, e.g. %qmp --hmp atp-vm1 info status"
EVENTS_USAGE = "%qmp --events VM [NAMES...] [--timeout S] [--count N]"
COMPACT_WIDTH = 72
CELL_USAGE = "%%qmp [--events] VM [NAMES...] [--timeout S] [--count N], then `name {json}` lines"


@dataclass(frozen=True)
class QmpCall:
    vm: VmRef
    command: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HmpCall:
    vm: VmRef
    line: str


@dataclass(frozen=True)
class EventWatch:
    """Collect events named ``names`` (all when empty) for ``timeout`` s or ``count`` events;
    ``timeout`` None means the magics' ``events_window``."""

    vm: VmRef
    names: tuple[str, ...] = ()
    timeout: float | None = None
    count: int | None = None


@dataclass(frozen=True)
class QmpStep:
    line: int  # 1-based line of the cell body (or item number of a JSON list)
    command: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QmpScript:
    vm: VmRef
    steps: tuple[QmpStep, ...]
    watch: EventWatch | None = None


# --- parsing --------------------------------------------------------------------------


def parse_qmp_line(line: str, vms: VmSelector | None = None) -> QmpCall | HmpCall | EventWatch:
    """The request a ``%qmp`` line asks for; UsageError (one line + hint) otherwise."""
    vms = vms or VmSelector()
    first, rest = take_word(line)
    if first == "--hmp":
        vm, hmp_line = vms.take(rest, HMP_USAGE)
        if not hmp_line.strip():
            raise _usage("--hmp needs a monitor command line", HMP_USAGE)
        return HmpCall(vm, hmp_line.strip())
    if first == "--events":
        return _parse_watch(rest, vms, "%qmp --events", EVENTS_USAGE)
    if first.startswith("-"):
        raise _usage(f"unknown option {first!r} (known: --hmp, --events)")
    vm, rest = vms.take(line, USAGE)
    command, json_text = take_word(rest)
    if not command:
        raise _usage(f"missing QMP command after {vm}, e.g. %qmp {vm} query-status")
    check_command_name(command, "QMP", USAGE)
    return QmpCall(vm, command, parse_json_object(json_text, f"arguments of {command}"))


def parse_qmp_cell(line: str, cell: str, vms: VmSelector | None = None) -> QmpScript:
    """The commands of a ``%%qmp`` cell; a bad line is reported by its number."""
    vms = vms or VmSelector()
    first, rest = take_word(line)
    watch: EventWatch | None = None
    if first == "--events":
        watch = _parse_watch(rest, vms, "%%qmp --events", CELL_USAGE)
        vm = watch.vm
    elif first.startswith("-"):
        raise _usage(f"unknown option {first!r} for %%qmp (known: --events)", CELL_USAGE)
    else:
        vm, extra = vms.take(line, CELL_USAGE)
        if extra:
            raise _usage(f"%%qmp takes only the VM on its line, not {extra!r}", CELL_USAGE)
    steps = parse_qmp_steps(cell)
    if not steps:
        raise _usage("the %%qmp cell has no commands", CELL_USAGE)
    return QmpScript(vm, steps, watch)


def parse_qmp_steps(cell: str) -> tuple[QmpStep, ...]:
    """``name {json}`` lines (blank and ``#`` lines skipped), or one JSON list."""
    if cell.lstrip().startswith("["):
        return _parse_json_list(cell)
    steps = []
    for number, text in enumerate(cell.splitlines(), start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        command, json_text = take_word(stripped)
        where = f"line {number}"
        try:
            check_command_name(command, "QMP", CELL_USAGE)
            arguments = parse_json_object(json_text, f"{where}: arguments of {command}")
        except UsageError as exc:
            if str(exc).startswith(where):
                raise
            raise _usage(f"{where}: {str(exc).splitlines()[0]}", CELL_USAGE) from None
        steps.append(QmpStep(number, command, arguments))
    return tuple(steps)


def _parse_json_list(cell: str) -> tuple[QmpStep, ...]:
    try:
        items = json.loads(cell)
    except json.JSONDecodeError as exc:
        raise _usage(f"the cell is not a valid JSON list: {exc.msg} at line {exc.lineno} "
                     f"column {exc.colno}", CELL_USAGE) from None
    if not isinstance(items, list):
        raise _usage("the cell must be a JSON list of {\"execute\": ...} objects", CELL_USAGE)
    steps = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("execute"), str):
            raise _usage(f"item {number}: expected {{\"execute\": NAME, \"arguments\": {{...}}}}",
                         CELL_USAGE)
        unknown = sorted(set(item) - {"execute", "arguments"})
        if unknown:
            raise _usage(f"item {number}: unknown key {unknown[0]!r}", CELL_USAGE)
        arguments = item.get("arguments", {})
        if not isinstance(arguments, dict):
            raise _usage(f"item {number}: \"arguments\" must be an object", CELL_USAGE)
        check_command_name(item["execute"], "QMP", CELL_USAGE)
        steps.append(QmpStep(number, item["execute"], arguments))
    return tuple(steps)


def _parse_watch(text: str, vms: VmSelector, prog: str, usage_line: str) -> EventWatch:
    vm, rest = vms.take(text, usage_line)
    parser = OptionParser(prog, usage_line)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--timeout", type=positive_float)
    parser.add_argument("--count", type=positive_int)
    args = parser.parse(split_args(rest, usage_line))
    names = tuple(n.upper() for n in args.names)
    for name in names:
        if not name.replace("_", "").isalnum():
            raise _usage(f"{name!r} is not a QMP event name (like STOP or RESUME)", usage_line)
    return EventWatch(vm, names, args.timeout, args.count)


def _usage(message: str, usage_line: str = USAGE) -> UsageError:
    return usage(message, usage_line)


# --- running --------------------------------------------------------------------------


def run_qmp_line(request: QmpCall | HmpCall | EventWatch, vm: Vm,
                 events_window: float) -> Result:
    """Run a parsed ``%qmp`` line on ``vm``."""
    if isinstance(request, HmpCall):
        return TextResult(vm.hmp(request.line), f"{vm.name}: {request.line}")
    if isinstance(request, EventWatch):
        with vm.events(request.names or None) as subscription:
            events = collect_events(subscription, _window(request, events_window),
                                    request.count)
        return EventsResult(vm.name, events, request.names)
    caption = f"{vm.name}: {request.command}"
    return JsonResult(vm.qmp(request.command, request.arguments), caption)


def run_qmp_script(script: QmpScript, vm: Vm, events_window: float) -> ScriptResult:
    """Run the steps in order; the first failure stops the cell and names its line."""
    if script.watch is None:
        return ScriptResult(vm.name, _run_steps(script.steps, vm))
    with vm.events(script.watch.names or None) as subscription:
        done = _run_steps(script.steps, vm)
        events = collect_events(subscription, _window(script.watch, events_window),
                                script.watch.count)
    return ScriptResult(vm.name, done, EventsResult(vm.name, events, script.watch.names))


def _run_steps(steps: Sequence[QmpStep], vm: Vm) -> list[tuple[QmpStep, Any]]:
    done: list[tuple[QmpStep, Any]] = []
    for step in steps:
        try:
            done.append((step, vm.qmp(step.command, step.arguments)))
        except AtpError as exc:
            ran = f"{len(done)} earlier command(s) ran" if done else "nothing ran before it"
            exc.add_note(f"at line {step.line} of the cell: {step.command} ({ran})")
            raise
    return done


def _window(watch: EventWatch, events_window: float) -> float:
    return watch.timeout if watch.timeout is not None else events_window


def collect_events(subscription: EventSubscription, timeout: float,
                   count: int | None) -> list[QmpEvent]:
    """Events until ``count`` arrived or ``timeout`` s passed (no error when fewer came)."""
    deadline = time.monotonic() + timeout
    events: list[QmpEvent] = []
    while count is None or len(events) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            events.append(subscription.get(timeout=remaining))
        except OperationTimeout:
            break
    return events


# --- results --------------------------------------------------------------------------


def _event_row(event: QmpEvent) -> str:
    return f"{event.name} {json.dumps(event.data, sort_keys=True)}" if event.data \
        else event.name


class EventsResult(Result):
    """QMP events in arrival order; ``.value`` is the list of QmpEvent (with timestamps).

    The display leaves timestamps out of ``text/plain`` (they change every run); the HTML
    shows each event's offset from the first, which nbval's duration pattern masks.
    """

    def __init__(self, vm: str, events: Sequence[QmpEvent], names: Sequence[str] = ()) -> None:
        self.value = list(events)
        self.vm = vm
        self.caption = f"{vm}: {len(self.value)} event{'s' * (len(self.value) != 1)}" + (
            f" ({', '.join(names)})" if names else "")

    def text(self) -> str:
        return "\n".join([self.caption, *(_event_row(e) for e in self.value)])

    def html(self) -> str:
        start = self.value[0].timestamp if self.value else 0.0
        rows = [[f"+{e.timestamp - start:.3f} s", e.name,
                 json.dumps(e.data, sort_keys=True) if e.data else ""] for e in self.value]
        return html_table(["time", "event", "data"], rows, self.caption)


class ScriptResult(Result):
    """What a ``%%qmp`` cell ran: ``.value`` is a list of ``(command, return)`` pairs;
    ``.events`` the EventsResult when the cell watched events."""

    def __init__(self, vm: str, done: Sequence[tuple[QmpStep, Any]],
                 events: EventsResult | None = None) -> None:
        self.vm = vm
        self.steps = [step for step, _ in done]
        self.value = [(step.command, ret) for step, ret in done]
        self.events = events
        self.caption = f"{vm}: {len(done)} command{'s' * (len(done) != 1)}"

    def _lines(self) -> list[str]:
        lines = []
        for step, (command, ret) in zip(self.steps, self.value, strict=True):
            compact = json.dumps(ret, sort_keys=True, default=str)
            # short replies stay on the command's line; long ones indent below it
            shown = compact if len(compact) <= COMPACT_WIDTH else plain_json(ret)
            lines.append(f"{step.line}: {command} -> {shown}")
        return lines

    def text(self) -> str:
        parts = [self.caption, *self._lines()]
        if self.events is not None:
            parts.append(self.events.text())
        return "\n".join(parts)

    def html(self) -> str:
        body = caption_html(self.caption) + pre_html("\n".join(self._lines()))
        return body + (self.events.html() if self.events is not None else "")
