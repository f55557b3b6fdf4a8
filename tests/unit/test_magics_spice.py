"""``%type``, ``%key``, ``%click`` and ``%spice`` parsing, table-driven: good lines become frozen
requests, bad ones a UsageError of one line plus a hint (no I/O, no IPython shell; the magics
run through the shell against the lab in tests/integration/test_magics.py and
test_magics_spice_display.py)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from atp_notebook.notebook.commands.spice import (
    CHANNEL_COLUMNS,
    SpiceChannels,
    SpiceClick,
    SpiceDisplay,
    SpiceKey,
    SpiceType,
    channel_rows,
    parse_click_line,
    parse_key_line,
    parse_spice_line,
    parse_type_line,
)
from atp_notebook.notebook.commands.words import VmRef, VmSelector
from atp_notebook.notebook.results import TableResult
from atp_notebook.spice.vm import ChannelInfo

VM = VmRef("atp-vm1")


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1 hello", SpiceType(VM, "hello")),
    (r"atp-vm1 echo hi\n", SpiceType(VM, "echo hi\n")),
    (r"atp-vm1 a\tb", SpiceType(VM, "a\tb")),
    ("atp-vm1 $x {y}  two  spaces", SpiceType(VM, "$x {y}  two  spaces")),
    ("atp-vm1 --layout de echo hallo@welt", SpiceType(VM, "echo hallo@welt", "de")),
    ("atp-vm1 --layout=fr azerty", SpiceType(VM, "azerty", "fr")),
    ("atp-vm1 -- --layout de", SpiceType(VM, "--layout de")),
    ("atp-vm1 -v", SpiceType(VM, "-v")),
    ("atp-vm1@local ls", SpiceType(VmRef("atp-vm1", "local"), "ls")),
])
def test_type_lines(line: str, expected: SpiceType) -> None:
    assert parse_type_line(line) == expected


def test_type_uses_the_default_vm() -> None:
    vms = VmSelector("atp-vm1", lambda w: w == "atp-vm1")
    assert parse_type_line("hello world", vms) == SpiceType(VM, "hello world")


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1 ctrl-alt-delete", SpiceKey(VM, "ctrl-alt-delete")),
    ("atp-vm1 ctrl-c", SpiceKey(VM, "ctrl-c")),
    ("atp-vm1 --layout de ctrl-z", SpiceKey(VM, "ctrl-z", "de")),
    ("atp-vm1 f1", SpiceKey(VM, "f1")),
])
def test_key_lines(line: str, expected: SpiceKey) -> None:
    assert parse_key_line(line) == expected


@pytest.mark.parametrize("line", [
    "--channels atp-vm1", "atp-vm1 --channels", "  --channels   atp-vm1  ",
])
def test_spice_channels_lines(line: str) -> None:
    assert parse_spice_line(line) == SpiceChannels(VM)


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1", SpiceDisplay(VM)),
    ("  atp-vm1  ", SpiceDisplay(VM)),
    ("atp-vm1 --channel 1", SpiceDisplay(VM, channel=1)),
    ("--channel=2 atp-vm1", SpiceDisplay(VM, channel=2)),
    ("atp-vm1 --fps 10", SpiceDisplay(VM, fps=10.0)),
    ("atp-vm1 --fps 0.5 --quality 50", SpiceDisplay(VM, fps=0.5, quality=50)),
    ("atp-vm1 --fps=60 --quality=100", SpiceDisplay(VM, fps=60.0, quality=100)),
    ("atp-vm1 --quality 1", SpiceDisplay(VM, quality=1)),
    ("atp-vm1@tls --fps 5", SpiceDisplay(VmRef("atp-vm1", "tls"), fps=5.0)),
])
def test_spice_display_lines(line: str, expected: SpiceDisplay) -> None:
    assert parse_spice_line(line) == expected


@pytest.mark.parametrize("line", ["", "--fps 5", "atp-vm1 --fps 5"])
def test_spice_display_uses_the_default_vm(line: str) -> None:
    vms = VmSelector("atp-vm1", lambda w: w == "atp-vm1")
    request = parse_spice_line(line, vms)
    assert isinstance(request, SpiceDisplay) and request.vm == VM
    assert request.fps == (5.0 if "--fps" in line else None)


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1 100 50", SpiceClick(VM, 100, 50)),
    ("atp-vm1 0 0 --button right", SpiceClick(VM, 0, 0, "right")),
    ("atp-vm1 --button=middle 7 8", SpiceClick(VM, 7, 8, "middle")),
    ("atp-vm1@local 1 2", SpiceClick(VmRef("atp-vm1", "local"), 1, 2)),
])
def test_click_lines(line: str, expected: SpiceClick) -> None:
    assert parse_click_line(line) == expected


@pytest.mark.parametrize(("parse", "line", "message"), [
    (parse_type_line, "", "missing VM name"),
    (parse_type_line, "atp-vm1", "missing text to type"),
    (parse_type_line, "atp-vm1 --layout de", "missing text to type"),
    (parse_type_line, "atp-vm1 --layout", "--layout needs a layout name"),
    (parse_type_line, "atp-vm1 --layout xx hi", "unknown keyboard layout 'xx'"),
    (parse_type_line, "atp-vm1 --speed 3 hi", "unknown option '--speed'"),
    (parse_type_line, "atp-vm1 caf\u00e9", "\u00e9"),
    (parse_type_line, r"atp-vm1 \xff", "is not UTF-8"),
    (parse_type_line, "@x hi", "is not a VM"),
    (parse_key_line, "atp-vm1", "missing key combination"),
    (parse_key_line, "atp-vm1 ctrl-c ctrl-d", "one combination at a time"),
    (parse_key_line, "atp-vm1 ctrl-nosuchkey", "nosuchkey"),
    (parse_key_line, "atp-vm1 --layout zz ctrl-c", "unknown keyboard layout 'zz'"),
    (parse_spice_line, "", "missing VM name"),
    (parse_spice_line, "--fps 5", "missing VM name"),
    (parse_spice_line, "atp-vm1 atp-vm2", "one VM at a time, not 'atp-vm1 atp-vm2'"),
    (parse_spice_line, "atp-vm1 --fps 0", "'0': frames a second are more than 0"),
    (parse_spice_line, "atp-vm1 --fps -5", "'-5': frames a second are more than 0"),
    (parse_spice_line, "atp-vm1 --fps 61", "at most 60"),
    (parse_spice_line, "atp-vm1 --fps nan", "'nan': frames a second"),
    (parse_spice_line, "atp-vm1 --fps inf", "at most 60"),
    (parse_spice_line, "atp-vm1 --fps fast", "'fast' is not a number of frames a second"),
    (parse_spice_line, "atp-vm1 --fps", "--fps: expected one argument"),
    (parse_spice_line, "atp-vm1 --quality 0", "a JPEG quality is 1..100"),
    (parse_spice_line, "atp-vm1 --quality 101", "a JPEG quality is 1..100"),
    (parse_spice_line, "atp-vm1 --quality 9.5", "'9.5' is not a JPEG quality"),
    (parse_spice_line, "atp-vm1 --channel 256", "a display channel id is 0..255"),
    (parse_spice_line, "atp-vm1 --channel -1", "a display channel id is 0..255"),
    (parse_spice_line, "atp-vm1 --channel one", "'one' is not a display channel id"),
    (parse_spice_line, "atp-vm1 --fsp 5", "unrecognized arguments: --fsp"),
    (parse_spice_line, "atp-vm1 --chan 1", "unrecognized arguments: --chan"),
    (parse_spice_line, "--channels atp-vm1 --fps 5", "takes no display option, not '--fps'"),
    (parse_spice_line, "atp-vm1 --channel 1 --channels",
     "takes no display option, not '--channel'"),
    (parse_spice_line, "--channels atp-vm1 --quality=5",
     "takes no display option, not '--quality=5'"),
    (parse_spice_line, "--channels", "missing VM name"),
    (parse_spice_line, "--channels --verbose atp-vm1", "unknown option '--verbose'"),
    (parse_spice_line, "--channels atp-vm1 atp-vm2", "one VM at a time"),
    (parse_spice_line, "--channels 'atp-vm1", "cannot split"),
    (parse_click_line, "atp-vm1", "want X and Y, got 'nothing'"),
    (parse_click_line, "atp-vm1 5", "want X and Y, got '5'"),
    (parse_click_line, "atp-vm1 1 2 3", "want X and Y"),
    (parse_click_line, "atp-vm1 1.5 2", "whole pixels"),
    (parse_click_line, "atp-vm1 -1 2", "position -1,2 is off the screen"),
    (parse_click_line, "atp-vm1 1 2 --button fourth", "unknown mouse button 'fourth'"),
    (parse_click_line, "atp-vm1 1 2 --button", "unknown mouse button ''"),
    (parse_click_line, "atp-vm1 1 2 --double", "unknown option '--double'"),
])
def test_bad_lines(parse: object, line: str, message: str) -> None:
    assert callable(parse)
    with pytest.raises(UsageError) as caught:
        parse(line)
    text = str(caught.value)
    assert message in text.splitlines()[0]
    assert "\nhint: " in text
    assert len(text.splitlines()) == 2


def test_channel_rows_show_the_rtt_to_the_microsecond() -> None:
    infos = [
        ChannelInfo("inputs", 0, "open", True, 120, 345, 3, 0, 4.257, 5.031, 0.012),
        ChannelInfo("main", 0, "closed", False, 0, 0, 0, 0, None, None, None),
    ]
    rows = channel_rows(infos)
    assert CHANNEL_COLUMNS[-2:] == ("rtt ms", "min rtt ms")
    assert rows == [
        ["inputs", "0", "open", "TLS", "120", "345", "3", "0", "4.26", "5.031", "0.012"],
        ["main", "0", "closed", "plain", "0", "0", "0", "0", "-", "-", "-"],
    ]
    text = TableResult(CHANNEL_COLUMNS, rows, infos).text()
    header, *lines = text.splitlines()
    assert header.split()[-3:] == ["min", "rtt", "ms"]
    assert [line.split()[-2:] for line in lines] == [["5.031", "0.012"], ["-", "-"]]


@pytest.mark.parametrize(("parse", "line"), [
    (parse_type_line, "atp-vm1 caf\u00e9"),
    (parse_key_line, "atp-vm1 ctrl-nosuchkey"),
])
def test_a_refusal_from_the_layout_gets_one_hint(parse: object, line: str) -> None:
    assert callable(parse)
    with pytest.raises(UsageError) as caught:
        parse(line)
    assert str(caught.value).count("hint:") == 1
