"""The magics on a Spice-only VM (the lab's atp-sasl: no libvirt domain) and on screen
bounds: what works, and the one-line errors for what cannot."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from atp_notebook.errors import InvalidArgument, NoLibvirtHost
from tests.integration.magic_calls import line, plain, run_cell


def test_atp_vms_lists_the_spice_only_vm(ip: InteractiveShell) -> None:
    rows = {row.split()[0]: row for row in plain(line(ip, "atp", "vms")).splitlines()[2:]}
    assert "atp-sasl" in rows and "spice only" in rows["atp-sasl"]


def test_keys_typing_clicks_and_channels_work_on_a_spice_only_vm(ip: InteractiveShell) -> None:
    assert "pressed shift on atp-sasl" in plain(line(ip, "key", "atp-sasl shift"))
    assert "typed 1 character on atp-sasl" in plain(line(ip, "type", r"atp-sasl \n"))
    assert "clicked left at 10,10 on atp-sasl" in plain(line(ip, "click", "atp-sasl 10 10"))
    table = plain(line(ip, "spice", "--channels atp-sasl"))
    rows = {row.split()[0]: row.split() for row in table.splitlines()[2:]}
    assert rows["main"][2:4] == ["open", "TLS"] and rows["inputs"][2:4] == ["open", "TLS"]


@pytest.mark.parametrize(("source", "kind", "fragment"), [
    ("%qmp atp-sasl query-status", NoLibvirtHost, "'atp-sasl' has no libvirt host"),
    ("%qga atp-sasl guest-ping", NoLibvirtHost, "'atp-sasl' has no libvirt host"),
    ("%click atp-vm1 5000 5000", InvalidArgument, "off the screen of atp-vm1 ("),
])
def test_what_cannot_be_done_is_one_clear_line(
        ip: InteractiveShell, capsys: pytest.CaptureFixture[str], source: str,
        kind: type[Exception], fragment: str) -> None:
    error, shown = run_cell(ip, source, capsys)
    assert isinstance(error, kind)
    assert fragment in shown
    assert "Traceback" not in shown and len(shown.strip().splitlines()) <= 3
