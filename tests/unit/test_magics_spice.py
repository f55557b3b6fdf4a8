"""``%type``, ``%key``, ``%click`` and ``%spice`` parsing, table-driven: good lines become frozen
requests, bad ones a UsageError of one line plus a hint (no I/O, no IPython shell)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from atp_notebook.notebook.commands.spice import (
    CHANNEL_COLUMNS,
    SpiceChannels,
    SpiceClick,
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
def test_spice_lines(line: str) -> None:
    assert parse_spice_line(line) == SpiceChannels(VM)


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
    (parse_spice_line, "atp-vm1", "missing --channels"),
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
