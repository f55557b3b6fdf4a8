"""The magics' parsing and routing, table-driven: good lines become frozen requests, bad
ones a UsageError of one line plus a hint (no I/O, no IPython shell)."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

from atp_notebook.notebook.commands.atp import (
    AtpConnect,
    AtpDisconnect,
    AtpHosts,
    AtpStatus,
    AtpVms,
    parse_atp_line,
    redact_uri,
)
from atp_notebook.notebook.commands.qga import (
    QgaCall,
    QgaExec,
    QgaWait,
    parse_qga_cell,
    parse_qga_line,
)
from atp_notebook.notebook.commands.qmp import (
    EventWatch,
    HmpCall,
    QmpCall,
    QmpScript,
    QmpStep,
    parse_qmp_cell,
    parse_qmp_line,
)
from atp_notebook.notebook.commands.virtio import (
    VirtioClose,
    VirtioRecv,
    VirtioSend,
    parse_virtio_line,
)
from atp_notebook.notebook.commands.words import (
    VmRef,
    VmSelector,
    decode_escapes,
    parse_json_object,
    parse_vm_ref,
    take_word,
)

VM1 = VmRef("atp-vm1")


def assert_usage(exc: pytest.ExceptionInfo[UsageError], fragment: str) -> None:
    """A UsageError is one line, then optionally one ``hint:`` line."""
    lines = str(exc.value).splitlines()
    assert fragment in lines[0], lines
    assert len(lines) <= 2, lines
    if len(lines) == 2:
        assert lines[1].startswith("hint: ")


# --- words ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("", ("", "")),
    ("   ", ("", "")),
    ("one", ("one", "")),
    ("  one   two three ", ("one", "two three ")),
    ('vm q {"a": 1}', ("vm", 'q {"a": 1}')),
    ("a\tb", ("a", "b")),
])
def test_take_word(text: str, expected: tuple[str, str]) -> None:
    assert take_word(text) == expected


@pytest.mark.parametrize(("word", "expected"), [
    ("atp-vm1", VmRef("atp-vm1")),
    ("atp-vm1@tls", VmRef("atp-vm1", "tls")),
    ("odd@name@ssh", VmRef("odd@name", "ssh")),
    ("vm.with_dots-1@h.1", VmRef("vm.with_dots-1", "h.1")),
])
def test_vm_refs(word: str, expected: VmRef) -> None:
    assert parse_vm_ref(word) == expected
    assert str(parse_vm_ref(word)) == word


@pytest.mark.parametrize(("word", "fragment"), [
    ("@tls", "is not a VM"),
    ("atp-vm1@", "is not a VM"),
    ("atp-vm1@bad/host", "is not a host id"),
])
def test_bad_vm_refs(word: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_vm_ref(word)
    assert_usage(exc, fragment)


KNOWN = {"atp-vm1", "atp-vm2"}


@pytest.mark.parametrize(("default", "text", "expected"), [
    (None, "atp-vm2 query-status", (VmRef("atp-vm2"), "query-status")),
    ("atp-vm1", "query-status", (VM1, "query-status")),
    ("atp-vm1", "atp-vm2 query-status", (VmRef("atp-vm2"), "query-status")),
    ("atp-vm1", "other@tls query-status", (VmRef("other", "tls"), "query-status")),
    ("atp-vm1", "", (VM1, "")),
    ("atp-vm1", "--timeout 3", (VM1, "--timeout 3")),
    ("atp-vm1@ssh", "guest-ping", (VmRef("atp-vm1", "ssh"), "guest-ping")),
])
def test_default_vm(default: str | None, text: str, expected: tuple[VmRef, str]) -> None:
    selector = VmSelector(default, lambda word: word in KNOWN)
    assert selector.take(text, "usage") == expected


def test_without_a_default_the_vm_is_never_looked_up() -> None:
    def is_vm(_word: str) -> bool:
        raise AssertionError("looked up")

    assert VmSelector(None, is_vm).take("anything x", "u") == (VmRef("anything"), "x")


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("  ", {}),
    ('{"command-line": "info status"}', {"command-line": "info status"}),
    ('{"a": {"b": [1, 2.5, null, true]}, "$x": "{y}"}',
     {"a": {"b": [1, 2.5, None, True]}, "$x": "{y}"}),
])
def test_json_objects(text: str, expected: dict[str, Any]) -> None:
    assert parse_json_object(text, "arguments") == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("{'a': 1}", "not valid JSON: Expecting property name enclosed in double quotes at "
                 "column 2"),
    ('{"a": 1', "not valid JSON"),
    ("[1, 2]", "must be a JSON object, not list"),
    ('"text"', "must be a JSON object, not str"),
    ("a=1", "not valid JSON"),
])
def test_bad_json(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_json_object(text, "arguments")
    assert_usage(exc, fragment)


@pytest.mark.parametrize(("text", "expected"), [
    ("hello", b"hello"),
    (r"ping\n", b"ping\n"),
    (r"a\tb\r\n\0", b"a\tb\r\n\0"),
    (r"\x41\x7f", b"A\x7f"),
    (r"back\\slash", b"back\\slash"),
    (r"C:\Users\q", b"C:\\Users\\q"),  # unknown escapes stay as typed
    ("grüße", "grüße".encode()),
])
def test_escapes(text: str, expected: bytes) -> None:
    assert decode_escapes(text) == expected


# --- %qmp -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1 query-status", QmpCall(VM1, "query-status")),
    ("  atp-vm1   query-status  ", QmpCall(VM1, "query-status")),
    ('atp-vm1 human-monitor-command {"command-line": "info status"}',
     QmpCall(VM1, "human-monitor-command", {"command-line": "info status"})),
    ('atp-vm1@tls send-key {"keys": [{"type": "qcode", "data": "ret"}]}',
     QmpCall(VmRef("atp-vm1", "tls"), "send-key",
             {"keys": [{"type": "qcode", "data": "ret"}]})),
    ("atp-vm1 __com.redhat_x", QmpCall(VM1, "__com.redhat_x")),
    ("--hmp atp-vm1 info block", HmpCall(VM1, "info block")),
    ("--hmp atp-vm1@ssh  info   status ", HmpCall(VmRef("atp-vm1", "ssh"), "info   status")),
    ("--events atp-vm1", EventWatch(VM1)),
    ("--events atp-vm1 stop Resume --timeout 2.5 --count 2",
     EventWatch(VM1, ("STOP", "RESUME"), 2.5, 2)),
    ("--events atp-vm1 --count 1 SHUTDOWN", EventWatch(VM1, ("SHUTDOWN",), None, 1)),
])
def test_qmp_lines(line: str, expected: object) -> None:
    assert parse_qmp_line(line) == expected


@pytest.mark.parametrize(("line", "fragment"), [
    ("", "missing VM name"),
    ("atp-vm1", "missing QMP command after atp-vm1"),
    ('atp-vm1 {"a": 1}', "missing QMP command before the JSON arguments"),
    ("atp-vm1 query-status {oops}", "arguments of query-status are not valid JSON"),
    ("atp-vm1 query-status [1]", "must be a JSON object, not list"),
    ("atp-vm1 qu€ry", "is not a QMP command name"),
    ("--hmp atp-vm1", "--hmp needs a monitor command line"),
    ("--hmp", "missing VM name"),
    ("--events", "missing VM name"),
    ("--events atp-vm1 --timeout 0", "must be more than 0 seconds"),
    ("--events atp-vm1 --timeout soon", "is not a number of seconds"),
    ("--events atp-vm1 --count 0", "must be at least 1"),
    ("--events atp-vm1 --count", "expected one argument"),
    ("--events atp-vm1 --bogus", "unrecognized arguments: --bogus"),
    ("--events atp-vm1 'STOP", "cannot split"),
    ("--events atp-vm1 STO-P", "is not a QMP event name"),
    ("--json atp-vm1 x", "unknown option '--json'"),
    ("@tls query-status", "is not a VM"),
])
def test_bad_qmp_lines(line: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_qmp_line(line)
    assert_usage(exc, fragment)


def test_qmp_cell_lines_skip_blanks_and_comments_and_keep_numbers() -> None:
    cell = ('\n# pause, then go on\nstop\n\n  cont  {}  \n'
            'human-monitor-command {"command-line": "info status"}\n')
    assert parse_qmp_cell("atp-vm1", cell) == QmpScript(VM1, (
        QmpStep(3, "stop"), QmpStep(5, "cont"),
        QmpStep(6, "human-monitor-command", {"command-line": "info status"})))


def test_qmp_cell_as_a_json_list() -> None:
    cell = '[{"execute": "stop"}, {"execute": "cont", "arguments": {}}]'
    assert parse_qmp_cell("atp-vm1@tcp", cell) == QmpScript(
        VmRef("atp-vm1", "tcp"), (QmpStep(1, "stop"), QmpStep(2, "cont")))


def test_qmp_cell_with_events() -> None:
    script = parse_qmp_cell("--events atp-vm1 STOP RESUME --count 2", "stop\ncont")
    assert script.watch == EventWatch(VM1, ("STOP", "RESUME"), None, 2)
    assert [s.command for s in script.steps] == ["stop", "cont"]


@pytest.mark.parametrize(("line", "cell", "fragment"), [
    ("atp-vm1", "", "has no commands"),
    ("atp-vm1", "# only a comment\n", "has no commands"),
    ("atp-vm1 extra", "stop", "takes only the VM"),
    ("", "stop", "missing VM name"),
    ("--hmp atp-vm1", "info status", "unknown option '--hmp' for %%qmp"),
    ("atp-vm1", "stop\ncont {bad}\n", "line 2: arguments of cont are not valid JSON"),
    ("atp-vm1", "stop\n\n{\"execute\": \"cont\"}", "line 3: missing QMP command"),
    ("atp-vm1", "stop\nqu€ry", "line 2: 'qu€ry' is not a QMP command name"),
    ("atp-vm1", '[{"execute": "stop"}, {"exec": "cont"}]', "item 2: expected"),
    ("atp-vm1", '[{"execute": "stop", "id": 1}]', "item 1: unknown key 'id'"),
    ("atp-vm1", '[{"execute": "x", "arguments": []}]', "item 1: \"arguments\" must be"),
    ("atp-vm1", '[{"execute": "stop"},', "not a valid JSON list"),
    ("--events atp-vm1 --count x", "stop", "is not a whole number"),
])
def test_bad_qmp_cells(line: str, cell: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_qmp_cell(line, cell)
    assert_usage(exc, fragment)


# --- %qga -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1 guest-ping", QgaCall(VM1, "guest-ping")),
    ('atp-vm1 guest-exec {"path": "/bin/echo", "arg": ["$HOME", "{x}"]}',
     QgaCall(VM1, "guest-exec", {"path": "/bin/echo", "arg": ["$HOME", "{x}"]})),
    ("atp-vm1 exec -- cat /etc/hostname", QgaExec(VM1, ("cat", "/etc/hostname"))),
    ("atp-vm1 exec uname -r", QgaExec(VM1, ("uname", "-r"))),
    ("atp-vm1 exec --timeout 5 --check -- sh -c 'echo a b'",
     QgaExec(VM1, ("sh", "-c", "echo a b"), 5.0, True)),
    ("atp-vm1 exec -- ls --timeout 1", QgaExec(VM1, ("ls", "--timeout", "1"))),
    ("atp-vm1@ssh wait", QgaWait(VmRef("atp-vm1", "ssh"))),
    ("atp-vm1 wait --timeout 90", QgaWait(VM1, 90.0)),
])
def test_qga_lines(line: str, expected: object) -> None:
    assert parse_qga_line(line) == expected


@pytest.mark.parametrize(("line", "fragment"), [
    ("", "missing VM name"),
    ("atp-vm1", "missing agent command after atp-vm1"),
    ('atp-vm1 {"path": "x"}', "missing guest agent command before the JSON"),
    ("atp-vm1 guest-exec {path: 1}", "arguments of guest-exec are not valid JSON"),
    ("atp-vm1 exec", "exec needs a program to run"),
    ("atp-vm1 exec --", "exec needs a program to run"),
    ("atp-vm1 exec --timeout -- ls", "argument --timeout: expected one argument"),
    ("atp-vm1 exec --timeout", "expected one argument"),
    ("atp-vm1 exec --bogus -- ls", "unrecognized arguments: --bogus"),
    ("atp-vm1 exec -- echo 'unclosed", "cannot split"),
    ("atp-vm1 wait 5", "unrecognized arguments: 5"),
    ("atp-vm1 wait --timeout -1", "'-1' must be more than 0 seconds"),
])
def test_bad_qga_lines(line: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_qga_line(line)
    assert_usage(exc, fragment)


def test_qga_cell_is_a_shell_script() -> None:
    script = "echo $HOME {x}\nexit 3\n"
    assert parse_qga_cell("atp-vm1 --timeout 9 --check", script) == QgaExec(
        VM1, ("/bin/sh", "-c", script), 9.0, True)
    assert parse_qga_cell("atp-vm2", "true").argv == ("/bin/sh", "-c", "true")


@pytest.mark.parametrize(("line", "cell", "fragment"), [
    ("atp-vm1", "  \n", "the %%qga cell is empty"),
    ("atp-vm1 --count 2", "true", "unrecognized arguments: --count 2"),
    ("", "true", "missing VM name"),
])
def test_bad_qga_cells(line: str, cell: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_qga_cell(line, cell)
    assert_usage(exc, fragment)


# --- %virtio --------------------------------------------------------------------------

PORT = "com.atp.test.0"


@pytest.mark.parametrize(("line", "expected"), [
    (f"atp-vm1 {PORT} send hello", VirtioSend(VM1, PORT, b"hello")),
    (rf"atp-vm1 {PORT} send hello world\n", VirtioSend(VM1, PORT, b"hello world\n")),
    (f"atp-vm1 {PORT} send $x {{y}}", VirtioSend(VM1, PORT, b"$x {y}")),
    (f"atp-vm1 {PORT} recv", VirtioRecv(VM1, PORT)),
    (f"atp-vm1@tcp {PORT} recv --timeout 2 --line --max 10",
     VirtioRecv(VmRef("atp-vm1", "tcp"), PORT, 2.0, True, 10)),
    (f"atp-vm1 {PORT} close", VirtioClose(VM1, PORT)),
])
def test_virtio_lines(line: str, expected: object) -> None:
    assert parse_virtio_line(line) == expected


@pytest.mark.parametrize(("line", "fragment"), [
    ("", "missing VM name"),
    ("atp-vm1", "missing port name after atp-vm1"),
    ("atp-vm1 send hi", "missing port name before 'send'"),
    (f"atp-vm1 {PORT}", "missing action after com.atp.test.0"),
    (f"atp-vm1 {PORT} push x", "unknown action 'push'"),
    (f"atp-vm1 {PORT} send", "send needs the text to send"),
    (f"atp-vm1 {PORT} recv --timeout 0", "must be more than 0 seconds"),
    (f"atp-vm1 {PORT} recv --max 0", "must be at least 1"),
    (f"atp-vm1 {PORT} recv now", "unrecognized arguments: now"),
    (f"atp-vm1 {PORT} close now", "close takes no arguments"),
])
def test_bad_virtio_lines(line: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_virtio_line(line)
    assert_usage(exc, fragment)


# --- %atp -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("", AtpStatus()),
    ("status", AtpStatus()),
    (" hosts ", AtpHosts()),
    ("vms", AtpVms()),
    ("disconnect", AtpDisconnect()),
    ("connect", AtpConnect(None)),
    ("connect /etc/atp.yaml", AtpConnect("/etc/atp.yaml")),
    ("connect '/tmp/my lab.yaml'", AtpConnect("/tmp/my lab.yaml")),
])
def test_atp_lines(line: str, expected: object) -> None:
    assert parse_atp_line(line) == expected


@pytest.mark.parametrize(("line", "fragment"), [
    ("start", "unknown %atp subcommand 'start'"),
    ("vms now", "%atp vms takes no arguments"),
    ("connect a b", "connect takes one path"),
    ("connect 'a", "cannot split"),
])
def test_bad_atp_lines(line: str, fragment: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_atp_line(line)
    assert_usage(exc, fragment)


@pytest.mark.parametrize(("uri", "expected"), [
    ("qemu:///system", "qemu:///system"),
    ("qemu+ssh://root@h:2222/system?keyfile=/k/id&no_verify=1",
     "qemu+ssh://root@h:2222/system?keyfile=/k/id&no_verify=1"),
    ("qemu+tcp://h/system?password=hunter2&x=1", "qemu+tcp://h/system?password=***&x=1"),
    ("qemu+tls://h/system?pkipath=/p&auth_token=t0k", "qemu+tls://h/system?pkipath=/p&auth_token=***"),
    ("qemu+ssh://user:hunter2@h/system", "qemu+ssh://user:***@h/system"),
])
def test_uris_are_redacted(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
