"""``%spice VM`` in a real IPython shell against the lab: the live screen as a DisplayWidget
that can be assigned and shown again, its options, ``%spice --channels`` beside it, and bad
arguments (one line and a hint, or the toolkit's brief error) that leave no widget behind.

The test shell has no kernel, so a widget's comm is ipywidgets' dummy one: what the widget
encodes is counted in ``stats`` but goes nowhere (tests/browser shows it in a browser).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

# every widget not yet closed, by model id (ipywidgets ships no type information)
from ipywidgets.widgets.widget import _instances as live_widgets  # type: ignore[import-untyped]

from atp_notebook.errors import TransportError, UnknownVm
from atp_notebook.lab.status import LabStatus
from atp_notebook.notebook import AtpMagics
from atp_notebook.notebook.widget import DisplayWidget
from tests.integration.magic_calls import line, plain, run_cell

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WAIT_S = 30.0


@pytest.fixture
def magics(ip: InteractiveShell, lab: LabStatus) -> Iterator[AtpMagics]:
    found = [c for c in ip.configurables if isinstance(c, AtpMagics)]
    assert len(found) == 1
    yield found[0]


def display_widgets() -> list[DisplayWidget]:
    return [w for w in live_widgets.values() if isinstance(w, DisplayWidget)]


def widget_threads(vm: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(f"atp-widget-{vm}-")]


def wait_until(what: str, check: object, timeout: float = WAIT_S) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g} s", pytrace=False)
        time.sleep(0.05)


@pytest.fixture
def no_widget_left(ip: InteractiveShell) -> Iterator[None]:
    """Each test closes what it showed: no DisplayWidget, no encoder thread after it."""
    before = set(display_widgets())
    yield
    for widget in set(display_widgets()) - before:
        widget.close()
    ip.user_ns.pop("w", None)


def test_spice_vm_shows_a_live_widget_that_can_be_assigned_and_shown_again(
        ip: InteractiveShell, magics: AtpMagics, no_widget_left: None) -> None:
    shell: Any = ip  # IPython's run_cell and display_formatter carry no annotations
    result = shell.run_cell("w = %spice atp-vm1 --fps 12 --quality 60")
    assert result.error_in_exec is None and result.result is None  # assigned: not shown
    w = ip.user_ns["w"]
    assert isinstance(w, DisplayWidget)
    assert (w.vm_name, repr(w)) == ("atp-vm1", "<DisplayWidget atp-vm1>")
    wait_until("the widget did not go live", lambda: w.status == "live")
    # neither shown nor viewed: nothing is encoded
    time.sleep(0.5)
    assert w.stats.frames == 0 and w.views == 0

    shown = shell.run_cell("w")
    assert shown.error_in_exec is None and shown.result is w
    data, _ = shell.display_formatter.format(w)
    assert data["text/plain"] == "<DisplayWidget atp-vm1>"  # what nbval compares
    assert data[WIDGET_VIEW]["model_id"] == w.model_id
    # shown by the kernel: a view is coming, so the whole screen goes out, exactly
    wait_until("no frame was encoded after the widget was shown",
               lambda: w.stats.frames >= 1 and w.stats.lossless >= 1)
    assert w.stats.bytes > 0

    w.close()
    wait_until("the widget's encoder thread did not end",
               lambda: "atp-widget-atp-vm1-0" not in widget_threads("atp-vm1"))


def test_two_widgets_of_one_vm_and_the_channel_table_beside_them(
        ip: InteractiveShell, magics: AtpMagics, no_widget_left: None) -> None:
    first = line(ip, "spice", "atp-vm1")
    second = line(ip, "spice", "--fps 5 atp-vm1")
    assert isinstance(first, DisplayWidget) and isinstance(second, DisplayWidget)
    assert first is not second and first.model_id != second.model_id
    for w in (first, second):
        wait_until("a widget did not go live", lambda w=w: w.status == "live")
    table = line(ip, "spice", "--channels atp-vm1")
    rows = {(c.type, c.id): c.status for c in table.value}
    assert rows[("display", 0)] == "open"
    assert plain(table).startswith("atp-vm1: ")


@pytest.mark.parametrize(("args", "fragment"), [
    ("atp-vm1 --fps 0", "frames a second are more than 0"),
    ("atp-vm1 --fps 1000", "at most 60"),
    ("atp-vm1 --quality 101", "a JPEG quality is 1..100"),
    ("atp-vm1 --quality high", "is not a JPEG quality"),
    ("atp-vm1 --channel 300", "a display channel id is 0..255"),
    ("atp-vm1 --fsp 5", "unrecognized arguments: --fsp"),
    ("atp-vm1 atp-vm2", "one VM at a time"),
    ("--channels atp-vm1 --fps 5", "takes no display option, not '--fps'"),
    ("", "missing VM name"),
])
def test_bad_arguments_show_one_line_and_a_hint_and_no_widget(
        ip: InteractiveShell, magics: AtpMagics, capsys: pytest.CaptureFixture[str],
        no_widget_left: None, args: str, fragment: str) -> None:
    before = len(display_widgets())
    with pytest.raises(UsageError, match=fragment):
        line(ip, "spice", args)
    error, shown = run_cell(ip, f"w = %spice {args}", capsys)
    assert isinstance(error, UsageError)
    lines = shown.strip().splitlines()
    assert lines[0].startswith("UsageError: ") and fragment in lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: ")
    assert len(display_widgets()) == before and "w" not in ip.user_ns


@pytest.mark.parametrize(("args", "kind", "fragment"), [
    ("no-such-vm", UnknownVm, "no host has a VM named 'no-such-vm'"),
    # the lab's VMs have one head: the server refuses display channel 1 at link time
    ("atp-vm1 --channel 1", TransportError, "it has no DISPLAY channel 1"),
])
def test_a_screen_that_cannot_be_shown_fails_the_cell_and_leaves_no_widget(
        ip: InteractiveShell, magics: AtpMagics, capsys: pytest.CaptureFixture[str],
        no_widget_left: None, args: str, kind: type[Exception], fragment: str) -> None:
    before = len(display_widgets())
    error, shown = run_cell(ip, f"w = %spice {args}", capsys)
    assert isinstance(error, kind), shown
    assert fragment in shown
    assert "Traceback" not in shown and len(shown.strip().splitlines()) <= 3
    assert len(display_widgets()) == before and "w" not in ip.user_ns
    assert "atp-widget-atp-vm1-1" not in widget_threads("atp-vm1")
