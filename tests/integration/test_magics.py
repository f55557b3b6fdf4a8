"""The magics in a real IPython shell against the lab: every magic, bad arguments, settings
through ``%config``, assignment, JSON that IPython must not expand, brief errors."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from atp_notebook.errors import (
    ConfigError,
    GuestAgentError,
    GuestTimeout,
    OperationTimeout,
    QmpCommandError,
    UnknownVm,
)
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus
from atp_notebook.notebook import AtpMagics
from atp_notebook.notebook.commands.words import VmRef
from tests.integration.magic_calls import cell, line, plain, run_cell
from tests.integration.pausing import resumed_after

PORT = "com.atp.test.0"
# `ip`, the shell with the extension loaded, comes from tests/integration/conftest.py


@pytest.fixture
def magics(ip: InteractiveShell, lab: LabStatus) -> Iterator[AtpMagics]:
    """The registered AtpMagics; settings changed by a test are put back after it."""
    found = [c for c in ip.configurables if isinstance(c, AtpMagics)]
    assert len(found) == 1
    m = found[0]
    saved = (m.timeout, m.events_window, m.default_vm)
    yield m
    m.timeout, m.events_window, m.default_vm = saved


# --- %atp -----------------------------------------------------------------------------


def test_atp_vms_lists_both_vms(ip: InteractiveShell, magics: AtpMagics) -> None:
    r = line(ip, "atp", "vms")
    assert {v.name for v in r.value} >= {"atp-vm1", "atp-vm2"}
    rows = {row.split()[0]: row for row in plain(r).splitlines()[2:]}
    assert "running" in rows["atp-vm1"] and "running" in rows["atp-vm2"]
    assert "tcp, tls, ssh" in rows["atp-vm1"]  # the same domain through the other hosts


def test_status_and_hosts_never_show_a_secret(ip: InteractiveShell, magics: AtpMagics,
                                              lab_paths: LabPaths) -> None:
    secret_files = list((lab_paths.config_file.parent / "secrets").glob("*"))
    secrets = [p.read_text().strip() for p in secret_files if p.is_file()]
    assert secrets, "the lab keeps atp-vm2's Spice password in a file"
    keys = [p for p in Path(lab_paths.config_file.parent).rglob("*key*.pem")]
    key_texts = [k.read_text()[40:120] for k in keys if k.is_file()]
    for sub in ("status", "hosts", ""):
        bundle = line(ip, "atp", sub)._repr_mimebundle_()
        for shown in (bundle["text/plain"], bundle["text/html"]):
            for secret in secrets + key_texts:
                assert secret not in shown
    status = plain(line(ip, "atp", "status"))
    assert "spice atp-vm2" in status and "password set" in status
    assert re.search(r"^config +" + re.escape(str(lab_paths.config_file)), status, re.M)
    hosts = plain(line(ip, "atp", "hosts"))
    assert [row.split()[0] for row in hosts.splitlines()[2:]] == ["local", "tcp", "tls", "ssh"]


def test_connect_and_disconnect(ip: InteractiveShell, magics: AtpMagics,
                                lab_paths: LabPaths) -> None:
    assert plain(line(ip, "atp", "disconnect")) == "disconnected"
    assert not magics.context.connected
    assert plain(line(ip, "atp", "disconnect")) == "not connected"
    # lazily connected again by the next magic that needs it
    assert line(ip, "qmp", "atp-vm1 query-name").value == {"name": "atp-vm1"}
    assert magics.context.connected
    with pytest.raises(ConfigError) as info:
        line(ip, "atp", "connect /nonexistent/atp.yaml")
    render = info.value._render_traceback_
    assert "/nonexistent/atp.yaml" in render()[0]
    r = line(ip, "atp", f"connect {lab_paths.config_file}")
    assert plain(r) == f"connected: {lab_paths.config_file} (4 hosts)"
    assert line(ip, "qmp", "atp-vm2 query-name").value == {"name": "atp-vm2"}


def test_bad_atp_arguments(ip: InteractiveShell, magics: AtpMagics) -> None:
    with pytest.raises(UsageError, match="unknown %atp subcommand 'up'"):
        line(ip, "atp", "up")


# --- %qmp -----------------------------------------------------------------------------


def test_qmp_result_can_be_assigned(ip: InteractiveShell, magics: AtpMagics,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    error, _ = run_cell(ip, "r = %qmp atp-vm1 query-status", capsys)
    assert error is None
    r = ip.user_ns["r"]
    assert r.value["status"] == "running"
    assert r["running"] is True
    assert plain(r) == '{\n  "running": true,\n  "singlestep": false,\n  "status": "running"\n}'


def test_json_arguments_reach_qemu_as_typed(ip: InteractiveShell, magics: AtpMagics,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cell = 'r = %qmp atp-vm1 human-monitor-command {"command-line": "info status"}'
    error, _ = run_cell(ip, cell, capsys)
    assert error is None
    assert ip.user_ns["r"].value.startswith("VM status: running")
    # with IPython's expansion, "$x" would become "status" and the reply would be the same
    ip.user_ns["x"] = "status"
    error, _ = run_cell(
        ip, 'r = %qmp atp-vm1 human-monitor-command {"command-line": "info $x"}', capsys)
    assert error is None
    assert "VM status" not in ip.user_ns["r"].value
    error, _ = run_cell(ip, 'r = %qmp atp-vm1 qom-get {"path": "/machine", '
                            '"property": "type"}', capsys)
    assert error is None and ip.user_ns["r"].value.endswith("-machine")


def test_hmp_through_a_chosen_host(ip: InteractiveShell, magics: AtpMagics) -> None:
    r = line(ip, "qmp", "--hmp atp-vm1@tls info name")
    assert plain(r) == "atp-vm1"
    assert plain(line(ip, "qmp", "--hmp atp-vm2@ssh info status")) == "VM status: running"


def test_events_are_collected_for_a_while(ip: InteractiveShell, magics: AtpMagics) -> None:
    vm = magics.context.vm(VmRef("atp-vm1"))

    def pause_and_resume() -> None:
        vm.qmp("stop")
        vm.qmp("cont")

    timer = threading.Timer(1.0, pause_and_resume)
    timer.start()
    with resumed_after(vm):
        try:
            r = line(ip, "qmp", "--events atp-vm1 STOP RESUME --count 2 --timeout 30")
        finally:
            timer.join()
    assert [e.name for e in r.value] == ["STOP", "RESUME"]
    assert plain(r) == "atp-vm1: 2 events (STOP, RESUME)\nSTOP\nRESUME"
    started = time.monotonic()
    none = line(ip, "qmp", "--events atp-vm1 SHUTDOWN --timeout 0.5")
    assert none.value == [] and time.monotonic() - started < 5
    magics.events_window = 0.3  # the default window comes from the settings
    started = time.monotonic()
    assert line(ip, "qmp", "--events atp-vm1 SHUTDOWN").value == []
    assert time.monotonic() - started < 3


def test_qmp_cell_runs_in_order(ip: InteractiveShell, magics: AtpMagics) -> None:
    r = cell(ip, "qmp", "atp-vm1", "# comment\nquery-name\n\nquery-status {}\n")
    assert [c for c, _ in r.value] == ["query-name", "query-status"]
    assert plain(r).splitlines()[:2] == ["atp-vm1: 2 commands", '2: query-name -> '
                                         '{"name": "atp-vm1"}']
    r = cell(ip, "qmp", "atp-vm2@tcp", '[{"execute": "query-name"}]')
    assert r.value == [("query-name", {"name": "atp-vm2"})]


def test_qmp_cell_stops_at_the_first_error_and_names_its_line(
        ip: InteractiveShell, magics: AtpMagics, capsys: pytest.CaptureFixture[str]) -> None:
    cell = "%%qmp atp-vm1\nquery-name\nno-such-command\nstop\n"
    with resumed_after(magics.context.vm(VmRef("atp-vm1"))):  # should the stop run after all
        error, shown = run_cell(ip, cell, capsys)
        assert line(ip, "qmp", "atp-vm1 query-status").value["status"] == "running"  # no stop
    assert isinstance(error, QmpCommandError)
    assert "at line 2 of the cell: no-such-command (1 earlier command(s) ran)" in shown
    assert "CommandNotFound" in shown
    assert len(shown.strip().splitlines()) == 2  # no traceback


def test_qmp_cell_with_events(ip: InteractiveShell, magics: AtpMagics) -> None:
    with resumed_after(magics.context.vm(VmRef("atp-vm1"))):
        r = cell(ip, "qmp", "--events atp-vm1 STOP RESUME --count 2 --timeout 30",
                 "stop\ncont\n")
    assert r.events is not None
    assert [e.name for e in r.events.value] == ["STOP", "RESUME"]
    assert plain(r).splitlines() == ["atp-vm1: 2 commands", "1: stop -> {}", "2: cont -> {}",
                                     "atp-vm1: 2 events (STOP, RESUME)", "STOP", "RESUME"]


@pytest.mark.parametrize(("magic", "text", "fragment"), [
    ("qmp", "", "missing VM name"),
    ("qmp", "atp-vm1", "missing QMP command after atp-vm1"),
    ("qmp", "atp-vm1 query-status {'single': 'quotes'}", "not valid JSON"),
    ("qmp", "--events atp-vm1 --count 0", "must be at least 1"),
    ("qga", "atp-vm1 exec", "exec needs a program"),
    ("qga", "atp-vm1 wait --timeout x", "is not a number of seconds"),
    ("virtio", "atp-vm1 com.atp.test.0 pull", "unknown action 'pull'"),
    ("atp", "vms all", "takes no arguments"),
])
def test_bad_arguments_show_one_line_and_a_hint(
        ip: InteractiveShell, magics: AtpMagics, capsys: pytest.CaptureFixture[str],
        magic: str, text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        line(ip, magic, text)
    error, shown = run_cell(ip, f"%{magic} {text}", capsys)
    assert isinstance(error, UsageError)
    lines = shown.strip().splitlines()
    assert lines[0].startswith("UsageError: ") and fragment in lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: ")


@pytest.mark.parametrize(("source", "kind", "fragment"), [
    ("%qmp atp-vm1 no-such-command", QmpCommandError,
     "CommandNotFound: The command no-such-command has not been found"),
    ('%qmp atp-vm1 query-block {"bogus": 1}', QmpCommandError, "GenericError"),
    ("%qmp no-such-vm query-status", UnknownVm, "no host has a VM named 'no-such-vm'"),
    ("%qga atp-vm1 guest-no-such", GuestAgentError, "guest-no-such"),
])
def test_toolkit_errors_show_one_clear_line(
        ip: InteractiveShell, magics: AtpMagics, capsys: pytest.CaptureFixture[str],
        source: str, kind: type[Exception], fragment: str) -> None:
    error, shown = run_cell(ip, source, capsys)
    assert isinstance(error, kind)
    assert fragment in shown
    assert "Traceback" not in shown and len(shown.strip().splitlines()) <= 3


# --- %qga -----------------------------------------------------------------------------


def test_agent_commands(ip: InteractiveShell, magics: AtpMagics) -> None:
    assert line(ip, "qga", "atp-vm1 guest-get-host-name").value == {"host-name": "atp-vm1"}
    assert line(ip, "qga", "atp-vm2@ssh guest-ping").value == {}
    r = line(ip, "qga", 'atp-vm1 guest-exec {"path": "/bin/echo", "arg": ["$HOME {x}"], '
                        '"capture-output": true}')
    assert isinstance(r.value["pid"], int)
    status = line(ip, "qga", f'atp-vm1 guest-exec-status {{"pid": {r.value["pid"]}}}')
    assert set(status.value) >= {"exited"}


def test_exec_line(ip: InteractiveShell, magics: AtpMagics) -> None:
    r = line(ip, "qga", "atp-vm1 exec -- cat /etc/hostname")
    assert plain(r) == "atp-vm1\n[exit code 0]"
    assert r.exit_code == 0 and r.stdout == "atp-vm1\n"
    r = line(ip, "qga", "atp-vm2 exec -- sh -c 'echo \"$0 {x}\"; exit 4' arg0")
    assert plain(r) == "arg0 {x}\n[exit code 4]"
    with pytest.raises(GuestAgentError, match=r"exit code 4"):
        line(ip, "qga", "atp-vm2 exec --check -- sh -c 'exit 4'")


def test_shell_cell_shows_output_and_a_failing_exit(ip: InteractiveShell,
                                                    magics: AtpMagics) -> None:
    script = "echo hello from $(hostname)\necho oops >&2\nexit 3\n"
    r = cell(ip, "qga", "atp-vm1", script)
    assert plain(r) == "hello from atp-vm1\n[stderr]\noops\n[exit code 3]"
    assert r.value.exit_code == 3
    html = r._repr_mimebundle_()["text/html"]
    assert "oops" in html and "exit code 3" in html
    with pytest.raises(GuestAgentError, match=r"sh script in atp-vm1 failed \(exit code 3\): oops"):
        cell(ip, "qga", "atp-vm1 --check", script)


def test_wait_for_the_agent_shows_no_progress_outside_a_notebook(
        ip: InteractiveShell, magics: AtpMagics, capsys: pytest.CaptureFixture[str]) -> None:
    error, shown = run_cell(ip, "r = %qga atp-vm1 wait --timeout 30", capsys)
    assert error is None and shown == ""
    assert plain(ip.user_ns["r"]) == "atp-vm1: the guest agent answers"
    assert isinstance(ip.user_ns["r"].value, float)


def test_config_timeout_takes_effect(ip: InteractiveShell, magics: AtpMagics) -> None:
    ip.run_line_magic("config", "AtpMagics.timeout = 5")
    assert magics.timeout == 5
    ip.run_line_magic("config", "AtpMagics.timeout = 1")
    started = time.monotonic()
    with pytest.raises(GuestTimeout, match="within 1 s"):
        line(ip, "qga", "atp-vm1 exec -- sleep 8")
    assert time.monotonic() - started < 6
    started = time.monotonic()
    with pytest.raises(OperationTimeout):
        line(ip, "virtio", f"atp-vm1 {PORT} recv")
    assert time.monotonic() - started < 5
    line(ip, "virtio", f"atp-vm1 {PORT} close")
    ip.run_line_magic("config", "AtpMagics.timeout = 0")  # %config logs the TraitError
    assert magics.timeout == 1


# --- %virtio --------------------------------------------------------------------------


def test_virtio_echo_round_trip(ip: InteractiveShell, magics: AtpMagics,
                                capsys: pytest.CaptureFixture[str]) -> None:
    sent = line(ip, "virtio", rf"atp-vm1 {PORT} send hello {{x}} $x\n")
    assert plain(sent) == f"sent 13 bytes to atp-vm1:{PORT}"
    got = line(ip, "virtio", f"atp-vm1 {PORT} recv --line --timeout 10")
    assert got.value == b"hello {x} $x\n"
    assert plain(got) == "b'hello {x} $x\\n'"
    error, _ = run_cell(ip, f"%virtio atp-vm1 {PORT} send ping", capsys)
    assert error is None
    got = bytearray()
    while len(got) < 4:
        got += line(ip, "virtio", f"atp-vm1 {PORT} recv --timeout 10").value
    assert bytes(got) == b"ping"
    assert f"atp-vm1:{PORT}" in plain(line(ip, "atp", "status"))
    assert plain(line(ip, "virtio", f"atp-vm1 {PORT} close")) == f"closed atp-vm1:{PORT}"
    assert plain(line(ip, "virtio", f"atp-vm1 {PORT} close")) == f"atp-vm1:{PORT} was not open"


# --- %spice ---------------------------------------------------------------------------


def test_spice_channels_of_the_tls_vm_show_a_numeric_rtt(ip: InteractiveShell,
                                                         magics: AtpMagics) -> None:
    line(ip, "key", "atp-vm2 shift")  # opens Main and Inputs, over TLS with the password
    r = line(ip, "spice", "--channels atp-vm2")
    header, *rows = plain(r).splitlines()[1:]
    assert header.split()[-7:] == ["link", "ms", "rtt", "ms", "min", "rtt", "ms"]
    cells = {row.split()[0]: row.split() for row in rows}
    for name in ("main", "inputs"):
        assert cells[name][2:4] == ["open", "TLS"]
        # the kernel's RTT of the TCP under the TLS, and its lowest sample
        assert 0 < float(cells[name][-1]) <= float(cells[name][-2])
    assert all(i.rtt_ms is not None and i.rtt_ms > 0 for i in r.value if i.status == "open")


# --- settings and the extension ---------------------------------------------------------


def test_default_vm(ip: InteractiveShell, magics: AtpMagics) -> None:
    ip.run_line_magic("config", "AtpMagics.default_vm = 'atp-vm1'")
    assert line(ip, "qmp", "query-name").value == {"name": "atp-vm1"}
    assert line(ip, "qmp", "atp-vm2 query-name").value == {"name": "atp-vm2"}
    assert line(ip, "qga", "guest-get-host-name").value == {"host-name": "atp-vm1"}
    assert plain(cell(ip, "qga", "", "hostname")) == "atp-vm1\n[exit code 0]"
    assert plain(line(ip, "qmp", "--hmp info name")) == "atp-vm1"


def test_unload_and_load_again(ip: InteractiveShell, magics: AtpMagics,
                               lab_paths: LabPaths) -> None:
    ip.run_line_magic("unload_ext", "atp_notebook")
    assert "qmp" not in ip.magics_manager.magics["line"]
    assert all(c is not magics for c in cast(list[object], ip.configurables))
    assert not magics.context.connected
    ip.run_line_magic("load_ext", "atp_notebook")
    again = [c for c in ip.configurables if isinstance(c, AtpMagics)]
    assert len(again) == 1
    # settings made with %config before the reload still apply (they live in the shell)
    assert again[0].config_path == str(lab_paths.config_file)
    assert again[0].timeout > 0  # a rejected `%config AtpMagics.timeout = 0` did not stick
    assert line(ip, "qmp", "atp-vm1 query-name").value == {"name": "atp-vm1"}
