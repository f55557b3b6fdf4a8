"""``%type``, ``%key``, ``%click`` and ``%spice``: keyboard, pointer, the live screen and
the Spice channels of a VM.

Forms::

    %type VM [--layout L] [--] TEXT    # TEXT is the rest of the line, as typed;
                                       # \\n \\r \\t \\0 \\\\ \\xNN escapes
    %key VM [--layout L] COMBO         # e.g. ctrl-alt-delete, ctrl-c, alt-f2
    %click VM X Y [--button B]         # B: left (default), middle, right
    %spice VM [--channel N] [--fps F] [--quality Q]
                                       # the live screen: a DisplayWidget of display
                                       # channel N (0), F frames/s at most (30), JPEG
                                       # quality Q while it moves (1..100)
    %spice --channels VM               # every channel the server offers: type, id (a
                                       # port's name), state (not opened, connecting,
                                       # open, closed, failed: why), security, traffic,
                                       # link time and RTT (the kernel's, of its TCP)

Example::

    parse_type_line(r"atp-vm1 --layout de echo hallo\\n")
    # SpiceType(vm=VmRef('atp-vm1'), text='echo hallo\\n', layout='de')
    parse_spice_line("atp-vm1 --fps 10")
    # SpiceDisplay(vm=VmRef('atp-vm1'), channel=0, fps=10.0, quality=None)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atp_notebook.errors import AtpError
from atp_notebook.loop import get_loop
from atp_notebook.notebook.commands.words import (
    OptionParser,
    VmRef,
    VmSelector,
    decode_escapes,
    split_args,
    take_word,
    usage,
)
from atp_notebook.notebook.results import NoteResult, Result, TableResult
from atp_notebook.session import Vm
from atp_notebook.spice.keymaps import LAYOUT_NAMES, Layout
from atp_notebook.spice.keymaps import layout as keyboard_layout
from atp_notebook.spice.vm import ChannelInfo

if TYPE_CHECKING:
    from atp_notebook.notebook.widget import DisplayWidget

TYPE_USAGE = r"%type VM [--layout us|de|fr] TEXT   (escapes: \n \t \r \0 \\ \xNN)"
KEY_USAGE = "%key VM [--layout us|de|fr] COMBO   (e.g. ctrl-alt-delete, ctrl-c)"
SPICE_USAGE = "%spice VM [--channel N] [--fps F] [--quality Q]  or  %spice --channels VM"
# a browser paints at most 60 frames a second; more would only fill Jupyter's IOPub limit
MAX_FPS = 60.0
CLICK_USAGE = "%click VM X Y [--button left|middle|right]   (X, Y: display pixels)"
BUTTON_NAMES = ("left", "middle", "right")
CHANNEL_COLUMNS = ("channel", "id", "state", "security", "bytes in", "bytes out",
                   "messages", "pings", "link ms", "rtt ms", "min rtt ms")


@dataclass(frozen=True)
class SpiceType:
    vm: VmRef
    text: str
    layout: str = "us"


@dataclass(frozen=True)
class SpiceKey:
    vm: VmRef
    combo: str
    layout: str = "us"


@dataclass(frozen=True)
class SpiceChannels:
    vm: VmRef


@dataclass(frozen=True)
class SpiceDisplay:
    """The live screen: display ``channel`` of ``vm``; ``fps`` and ``quality`` None leave
    DisplayWidget's defaults."""

    vm: VmRef
    channel: int = 0
    fps: float | None = None
    quality: int | None = None


@dataclass(frozen=True)
class SpiceClick:
    vm: VmRef
    x: int
    y: int
    button: str = "left"


def _layout(name: str, usage_line: str) -> Layout:
    try:
        return keyboard_layout(name)
    except AtpError:
        raise usage(f"unknown keyboard layout {name!r}",
                    f"known layouts: {', '.join(LAYOUT_NAMES)}; {usage_line}") from None


def _take_options(rest: str, usage_line: str) -> tuple[str, str]:
    """``--layout L`` and ``--`` in front of the payload: (layout, the payload as typed)."""
    layout = "us"
    while True:
        word, tail = take_word(rest)
        if word == "--":
            return layout, tail
        if word == "--layout" or word.startswith("--layout="):
            value = word.partition("=")[2] if "=" in word else ""
            if not value:
                value, tail = take_word(tail)
            if not value:
                raise usage("--layout needs a layout name", usage_line)
            layout = value
            rest = tail
            continue
        if word.startswith("--"):
            raise usage(f"unknown option {word!r}",
                        f"{usage_line}; put -- before text that starts with --")
        return layout, rest


def parse_type_line(line: str, vms: VmSelector | None = None) -> SpiceType:
    """The text a ``%type`` line asks to type; UsageError (one line + hint) otherwise."""
    vm, rest = (vms or VmSelector()).take(line, TYPE_USAGE)
    layout_name, payload = _take_options(rest, TYPE_USAGE)
    keys = _layout(layout_name, TYPE_USAGE)
    if not payload:
        raise usage("missing text to type", TYPE_USAGE)
    try:
        text = decode_escapes(payload).decode()
    except UnicodeDecodeError:
        raise usage(f"{payload!r} is not UTF-8 once its \\x escapes are decoded",
                    "type characters, not bytes: write them as they are") from None
    try:
        keys.plan(text)
    except AtpError as exc:
        raise usage(exc.message, f"only characters of the {keys.name} layout can be typed; "
                              "try --layout de or fr") from None
    return SpiceType(vm, text, keys.name)


def parse_key_line(line: str, vms: VmSelector | None = None) -> SpiceKey:
    """The combo a ``%key`` line asks to press; UsageError otherwise."""
    vm, rest = (vms or VmSelector()).take(line, KEY_USAGE)
    layout_name, payload = _take_options(rest, KEY_USAGE)
    keys = _layout(layout_name, KEY_USAGE)
    combo, tail = take_word(payload)
    if not combo:
        raise usage("missing key combination", KEY_USAGE)
    if tail:
        raise usage(f"one combination at a time, not {payload!r}",
                    "join keys with '-': %key VM ctrl-alt-delete")
    try:
        keys.combo(combo)
    except AtpError as exc:
        raise usage(exc.message, KEY_USAGE) from None
    return SpiceKey(vm, combo, keys.name)


def _channel_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a display channel id") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{text!r}: a display channel id is 0..255 "
                                         "(0 is the first head)")
    return value


def _fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames a second"
                                         ) from None
    if not 0 < value <= MAX_FPS:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r}: frames a second are more than 0 and "
                                         f"at most {MAX_FPS:g}")
    return value


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a JPEG quality (a whole number)"
                                         ) from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: a JPEG quality is 1..100")
    return value


def parse_spice_line(line: str, vms: VmSelector | None = None
                     ) -> SpiceChannels | SpiceDisplay:
    """``%spice VM [--channel N] [--fps F] [--quality Q]`` (the live screen) or
    ``%spice --channels VM`` (the option may also follow the VM); UsageError otherwise."""
    vms = vms or VmSelector()
    words = split_args(line, SPICE_USAGE)
    if "--channels" in words:
        return _parse_channels(words, vms)
    parser = OptionParser("%spice", SPICE_USAGE)
    parser.add_argument("vm", nargs="*")
    parser.add_argument("--channel", type=_channel_id, default=0)
    parser.add_argument("--fps", type=_fps)
    parser.add_argument("--quality", type=_quality)
    options = parser.parse(words)
    if len(options.vm) > 1:
        raise usage(f"one VM at a time, not {' '.join(options.vm)!r}",
                    "a second %spice line shows a second VM")
    vm, _ = vms.take(" ".join(options.vm), SPICE_USAGE)
    return SpiceDisplay(vm, options.channel, options.fps, options.quality)


def _parse_channels(words: list[str], vms: VmSelector) -> SpiceChannels:
    options = [w for w in words if w.startswith("-")]
    unknown = [w for w in options if w != "--channels"]
    if unknown:
        display = [w for w in unknown
                   if w.partition("=")[0] in ("--channel", "--fps", "--quality")]
        if display:
            raise usage(f"--channels lists the channels and takes no display option, not "
                        f"{display[0]!r}",
                        "show the screen with %spice VM [--channel N] [--fps F] "
                        "[--quality Q], the table with %spice --channels VM")
        raise usage(f"unknown option {unknown[0]!r}", SPICE_USAGE)
    others = [w for w in words if not w.startswith("-")]
    if len(others) > 1:
        raise usage(f"one VM at a time, not {' '.join(others)!r}", SPICE_USAGE)
    vm, _ = vms.take(" ".join(others), SPICE_USAGE)
    return SpiceChannels(vm)


def parse_click_line(line: str, vms: VmSelector | None = None) -> SpiceClick:
    """``%click VM X Y [--button B]``; UsageError otherwise."""
    vm, rest = (vms or VmSelector()).take(line, CLICK_USAGE)
    words = split_args(rest, CLICK_USAGE)
    button = "left"
    numbers: list[str] = []
    while words:
        word = words.pop(0)
        if word == "--button" or word.startswith("--button="):
            button = word.partition("=")[2] if "=" in word else (words.pop(0) if words else "")
            if button not in BUTTON_NAMES:
                raise usage(f"unknown mouse button {button!r}",
                            f"buttons: {', '.join(BUTTON_NAMES)}; {CLICK_USAGE}")
        elif word.startswith("--"):
            raise usage(f"unknown option {word!r}", CLICK_USAGE)
        else:
            numbers.append(word)
    if len(numbers) != 2:
        raise usage(f"want X and Y, got {' '.join(numbers) or 'nothing'!r}", CLICK_USAGE)
    try:
        x, y = (int(n) for n in numbers)
    except ValueError:
        raise usage(f"X and Y are whole pixels, not {' '.join(numbers)!r}", CLICK_USAGE) from None
    if x < 0 or y < 0:
        raise usage(f"position {x},{y} is off the screen", CLICK_USAGE)
    return SpiceClick(vm, x, y, button)


def run_click(request: SpiceClick, vm: Vm) -> Result:
    mode = vm.click(request.x, request.y, button=request.button)
    how = "exact, client mouse mode" if mode.name == "CLIENT" else \
        "best effort, server mouse mode"
    return NoteResult(f"clicked {request.button} at {request.x},{request.y} on {request.vm} "
                      f"({how})", str(mode.name).lower())


def run_type(request: SpiceType, vm: Vm) -> Result:
    strokes = vm.type(request.text, layout=request.layout)
    chars = len(request.text)
    return NoteResult(f"typed {chars} character{'s' * (chars != 1)} on {request.vm} "
                      f"({request.layout}, {strokes} strokes)", strokes)


def run_key(request: SpiceKey, vm: Vm) -> Result:
    vm.press(request.combo, layout=request.layout)
    return NoteResult(f"pressed {request.combo} on {request.vm}", request.combo)


def channel_rows(infos: Sequence[ChannelInfo]) -> list[list[str]]:
    """The rows of ``%spice --channels``, one per channel under CHANNEL_COLUMNS; "-" where a
    time is unknown (a channel not open has no RTT); a failed channel's state says why."""
    def ms(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    # RTT to the microsecond: on loopback it is a few tens of µs, which 2 digits would hide;
    # srtt includes the server's delayed ACKs (ms on an idle channel), min rtt does not
    return [[info.type if info.name is None else f"{info.type} {info.name}",  # a port's name
             str(info.id), info.status if info.error is None else f"{info.status}: {info.error}",
             "TLS" if info.secure else "plain",
             str(info.bytes_in), str(info.bytes_out), str(info.messages_in), str(info.pings),
             ms(info.link_ms, 2), ms(info.rtt_ms, 3), ms(info.min_rtt_ms, 3)]
            for info in infos]


def run_channels(request: SpiceChannels, vm: Vm, timeout: float) -> Result:
    """Every channel the VM's Spice server offers and every one open, with its state;
    ``.value`` is the list of :class:`ChannelInfo`. Main is opened (and the list waited
    for) within ``timeout`` s; port channels not named yet are linked once for their name."""
    connection = vm.spice  # connected: Main and the configured channels
    infos = get_loop().call(connection.channel_states(timeout), timeout + 5.0,
                            what=f"%spice --channels {request.vm}")
    rows = channel_rows(infos)
    count = len(rows)
    return TableResult(CHANNEL_COLUMNS, rows, infos,
                       f"{request.vm}: {count} Spice channel{'s' * (count != 1)}")


def run_display(request: SpiceDisplay, vm: Vm, timeout: float) -> DisplayWidget:
    """The live screen of ``request``: the display channel is opened first (up to
    ``timeout`` s), so a VM or a head that cannot be shown fails the cell here and leaves
    no widget behind, half open."""
    # imported here: anywidget and the encoders (~0.2 s) load only when a screen is shown
    from atp_notebook.notebook.widget import DisplayWidget  # noqa: PLC0415

    vm.display_channel(request.channel).open(timeout=timeout)
    options: dict[str, Any] = {}  # only what the line set: the widget keeps its defaults
    if request.fps is not None:
        options["fps"] = request.fps
    if request.quality is not None:
        options["quality"] = request.quality
    return DisplayWidget(vm, request.channel, **options)
