"""The magics' result objects: stable text/plain (what nbval compares), escaped HTML, the
raw value; the brief error rendering; the progress bar's nbval-stable display."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from atp_notebook.config import HostInfo, TransportConfig
from atp_notebook.errors import GuestTimeout, HostUnavailable, QmpCommandError, UnknownVm
from atp_notebook.notebook.commands.atp import hosts_table
from atp_notebook.notebook.commands.qga import ExecOutput
from atp_notebook.notebook.commands.qmp import EventsResult, QmpStep, ScriptResult
from atp_notebook.notebook.failures import brief_traceback, errors_shown_briefly
from atp_notebook.notebook.progress import ProgressView, in_notebook
from atp_notebook.notebook.render import json_tree_html, text_table
from atp_notebook.notebook.results import (
    BytesResult,
    JsonResult,
    NoteResult,
    TableResult,
    TextResult,
)
from atp_notebook.session import connect
from atp_notebook.virt.events import QmpEvent
from atp_notebook.virt.guest_agent import ExecResult

SANITIZE = Path(__file__).parents[1] / "nbval-sanitize.cfg"
EVIL = "<script>alert('x')</script>&"


def nbval_sanitize(text: str) -> str:
    """What nbval does to an output before comparing (same file, same regex reading)."""
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", SANITIZE.read_text(), re.MULTILINE)
    for regex, replace in pairs:
        text = re.sub(regex, replace, text)
    return text


def bundle(result: Any) -> dict[str, Any]:
    out = result._repr_mimebundle_()
    assert isinstance(out, dict)
    return out


# --- JSON -----------------------------------------------------------------------------


def test_json_text_is_sorted_and_independent_of_insertion_order() -> None:
    a = JsonResult({"status": "running", "running": True, "nested": {"z": 1, "a": [1, 2]}})
    b = JsonResult({"nested": {"a": [1, 2], "z": 1}, "running": True, "status": "running"})
    assert a.text() == b.text() == (
        '{\n  "nested": {\n    "a": [\n      1,\n      2\n    ],\n    "z": 1\n  },\n'
        '  "running": true,\n  "status": "running"\n}')
    assert bundle(a)["text/html"] == bundle(b)["text/html"]
    assert repr(a) == a.text()


def test_json_result_gives_the_raw_value_and_all_three_types() -> None:
    value = {"status": "running"}
    r = JsonResult(value, "atp-vm1: query-status")
    assert r.value is value
    assert r["status"] == "running"
    assert set(bundle(r)) == {"text/plain", "text/html", "application/json"}
    assert bundle(r)["application/json"] == value
    assert "atp-vm1: query-status" in bundle(r)["text/html"]


@pytest.mark.parametrize("value", [{}, [], "VM status: running\r\n", 3, None, True, 2.5])
def test_json_scalars_and_empties(value: Any) -> None:
    r = JsonResult(value)
    assert r.text() == JsonResult(value).text()
    assert "0x" not in r.text()
    assert bundle(r)["application/json"] == value


def test_json_html_escapes_keys_and_values() -> None:
    html = bundle(JsonResult({EVIL: [EVIL, {"k": EVIL}]}, caption=EVIL))["text/html"]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_json_tree_folds_deep_levels_and_summarises_long_lists() -> None:
    html = json_tree_html({"a": {"b": {"c": {"d": 1}}}, "long": list(range(500))})
    assert html.count("<details open") == 3  # root, "a", "long" (levels 0-1); "b" is folded
    assert "… 300 more" in html


def test_values_json_cannot_hold_are_shown_as_text() -> None:
    r = JsonResult({"when": Path("/tmp")})
    assert r.text() == '{\n  "when": "/tmp"\n}'
    assert bundle(r)["application/json"] == {"when": "/tmp"}


# --- text, notes, tables, bytes ---------------------------------------------------------


def test_text_keeps_the_raw_value_and_shows_normalised_lines() -> None:
    r = TextResult("VM status: running\r\n\r\n", "atp-vm1: info status")
    assert r.value == "VM status: running\r\n\r\n"
    assert r.text() == "VM status: running"
    assert set(bundle(r)) == {"text/plain", "text/html"}  # HTML wins in JupyterLab


def test_table_text_is_aligned_without_trailing_spaces() -> None:
    assert text_table(["id", "state"], [["local", "ready"], ["tls", ""]]) == (
        "id     state\nlocal  ready\ntls")


def test_table_html_escapes_every_cell() -> None:
    t = TableResult(["h", EVIL], [[EVIL, "x"]], value=None, caption=EVIL)
    html = bundle(t)["text/html"]
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") == 3
    assert t.text().splitlines()[0] == EVIL


def test_bytes_show_their_repr_and_html_escaped_text() -> None:
    r = BytesResult(b"<b>hi</b>\n\xff", "atp-vm1:com.atp.test.0")
    assert r.text() == "b'<b>hi</b>\\n\\xff'"
    assert r.value == b"<b>hi</b>\n\xff"
    html = bundle(r)["text/html"]
    assert "<b>hi" not in html and "&lt;b&gt;hi" in html and "11 bytes" in html


def test_notes() -> None:
    assert NoteResult("sent 3 bytes", 3).text() == "sent 3 bytes"
    assert NoteResult("x", 3).value == 3


def test_include_and_exclude() -> None:
    r = JsonResult({"a": 1})
    assert set(r._repr_mimebundle_(include={"text/plain"})) == {"text/plain"}
    assert "application/json" not in r._repr_mimebundle_(exclude={"application/json"})


# --- guest processes --------------------------------------------------------------------


@pytest.mark.parametrize(("result", "text"), [
    (ExecResult(0, b"hello\n", b""), "hello\n[exit code 0]"),
    (ExecResult(3, b"out\n", b"oops\n"), "out\n[stderr]\noops\n[exit code 3]"),
    (ExecResult(1, b"", b"no such file\n"), "[stderr]\nno such file\n[exit code 1]"),
    (ExecResult(0, b"", b""), "[exit code 0]"),
    (ExecResult(-9, b"part", b"", signal=9), "part\n[killed by signal 9]"),
    (ExecResult(0, b"x" * 3, b"", truncated=True),
     "xxx\n[output truncated by the guest agent]\n[exit code 0]"),
    (ExecResult(0, b"\xffbad utf-8\n", b""), "\ufffdbad utf-8\n[exit code 0]"),
])
def test_exec_output_text(result: ExecResult, text: str) -> None:
    out = ExecOutput("atp-vm1", ("sh", "-c", "x"), result)
    assert out.text() == text
    assert out.value is result


def test_exec_output_html_marks_stderr_and_failure_and_escapes() -> None:
    out = ExecOutput("atp-vm1", ("/bin/sh", "-c", "echo <x>"), ExecResult(2, EVIL.encode(),
                                                                           EVIL.encode()))
    html = bundle(out)["text/html"]
    assert "<script>" not in html
    assert "exit code 2" in html and "#b00020" in html
    assert "sh -c &#x27;echo &lt;x&gt;&#x27;" in html
    assert ExecOutput("v", ("/bin/sh", "-c", "a\nb"), ExecResult(0, b"", b"")).caption == \
        "v: sh script"


# --- QMP events and scripts -------------------------------------------------------------


def events(t0: float) -> list[QmpEvent]:
    return [QmpEvent("atp-vm1", "STOP", t0), QmpEvent("atp-vm1", "RESUME", t0 + 0.25),
            QmpEvent("atp-vm1", "BLOCK_JOB_READY", t0 + 1, {"device": EVIL, "len": 1})]


def test_event_text_holds_no_timestamps() -> None:
    a, b = EventsResult("atp-vm1", events(1e9), ["STOP"]), EventsResult("atp-vm1", events(2e9),
                                                                         ["STOP"])
    assert a.text() == b.text() == (
        "atp-vm1: 3 events (STOP)\nSTOP\nRESUME\n"
        f'BLOCK_JOB_READY {{"device": "{EVIL}", "len": 1}}')
    # the HTML shows offsets from the first event; nbval's duration pattern masks them
    assert nbval_sanitize(bundle(a)["text/html"]) == nbval_sanitize(bundle(b)["text/html"])
    assert "<script>" not in bundle(a)["text/html"]
    assert a.value[0].timestamp == 1e9
    assert EventsResult("atp-vm1", []).text() == "atp-vm1: 0 events"


def test_script_result_lists_each_line_with_its_reply() -> None:
    done = [(QmpStep(2, "stop"), {}), (QmpStep(4, "query-status"),
                                       {"status": "running", "running": True}),
            (QmpStep(5, "query-x"), {"long": "y" * 80})]
    r = ScriptResult("atp-vm1", done)
    assert r.text().splitlines()[:3] == [
        "atp-vm1: 3 commands", "2: stop -> {}",
        '4: query-status -> {"running": true, "status": "running"}']
    assert r.text().splitlines()[3:] == ["5: query-x -> {", f'  "long": "{"y" * 80}"', "}"]
    assert r.value[0] == ("stop", {})


# --- errors -----------------------------------------------------------------------------


def test_qmp_errors_show_class_and_description_on_one_line() -> None:
    exc = QmpCommandError("nope", "CommandNotFound", "The command nope has not been found")
    lines = brief_traceback(exc)
    assert len(lines) == 1
    assert "QmpCommandError" in lines[0]
    assert "CommandNotFound: The command nope has not been found" in lines[0]


def test_notes_and_hints_follow_the_message() -> None:
    exc = UnknownVm("no host has a VM named 'x'", hint="see %atp vms")
    exc.add_note("at line 3 of the cell: stop (nothing ran before it)")
    assert [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in brief_traceback(exc)] == [
        "UnknownVm: no host has a VM named 'x'",
        "at line 3 of the cell: stop (nothing ran before it)", "hint: see %atp vms"]


def test_the_brief_traceback_still_renders_after_the_except_block() -> None:
    # regression: a lambda closing over the `except ... as exc` name failed later with
    # NameError, because Python deletes that name when the except block ends
    with pytest.raises(GuestTimeout) as info, errors_shown_briefly():
        raise GuestTimeout("sleep 9 did not end within 1 s")
    render = info.value._render_traceback_  # type: ignore[attr-defined]
    assert "GuestTimeout" in render()[0]


def test_other_errors_pass_untouched() -> None:
    with pytest.raises(ValueError) as info, errors_shown_briefly():
        raise ValueError("a bug")
    assert not hasattr(info.value, "_render_traceback_")


# --- progress ---------------------------------------------------------------------------


def test_no_progress_outside_a_notebook_kernel() -> None:
    assert not in_notebook()


def test_every_progress_state_compares_equal_under_nbval() -> None:
    # nbval replays only the first display of the bar, nbconvert stores the last state
    first = ProgressView("the guest agent of atp-vm1", 0.0, 30)._repr_mimebundle_()
    later = ProgressView("the guest agent of atp-vm1", 7.31, 30)._repr_mimebundle_()
    done = ProgressView("the guest agent of atp-vm1", 7.31, 30,
                        "answered after 7.3 s")._repr_mimebundle_()
    for state in (later, done):
        for kind in ("text/plain", "text/html"):
            assert nbval_sanitize(first[kind]) == nbval_sanitize(state[kind]), kind
    assert first["text/html"] != later["text/html"]


def test_the_bar_says_done_when_the_wait_ends() -> None:
    # a newcomer saw the bar stay at "waiting" after the agent had answered
    done = ProgressView("the guest agent of atp-vm1", 7.31, 30,
                        "answered after 7.3 s")._repr_mimebundle_()
    assert done["text/plain"] == ("waiting for the guest agent of atp-vm1 "
                                  "(done: answered after 7.3 s)")
    assert '<progress value="30.0" max="30"' in done["text/html"]  # a full bar
    assert "done: answered after 7.3 s" in done["text/html"]
    assert "<script>" not in ProgressView(EVIL, 0, 1)._repr_mimebundle_()["text/html"]


def test_hosts_table_says_why_a_host_failed() -> None:
    # a real libvirt client against a port nothing listens on: refused at once
    config = TransportConfig(hosts=(
        HostInfo("dead", "127.0.0.1").with_uri("qemu+tcp://127.0.0.1:1/system"),
        HostInfo("idle", "127.0.0.1").with_uri("qemu+tcp://127.0.0.1:2/system"),
    ))
    session = connect(config)
    try:
        with pytest.raises(HostUnavailable):
            session.host("dead").connection(timeout=10)
        table = hosts_table(session)
        assert table.columns == ["host", "uri", "tags", "state", "opens", "losses",
                                 "last error"]
        dead, idle = table.rows
        assert dead[:3] == ["dead", "qemu+tcp://127.0.0.1:1/system", ""]
        assert dead[3:6] == ["lost", "0", "0"]
        assert "127.0.0.1:1" in dead[6] and "refused" in dead[6].lower()
        assert idle[3:] == ["idle", "0", "0", ""]
        assert "refused" in bundle(table)["text/plain"].lower()
    finally:
        session.close()
