"""QMP request building and reply parsing, fed by hand-built texts (no VM)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atp_notebook.errors import CommandError, InvalidArgument, QmpCommandError
from atp_notebook.virt.qmp import MAX_REPLY_BYTES, build_command, parse_reply

GOOD_REPLIES: list[tuple[str, Any]] = [
    ('{"return": {}, "id": "libvirt-1"}', {}),
    ('{"return": {"status": "running", "running": true}}', {"status": "running", "running": True}),
    ('{"return": [1, 2, 3]}', [1, 2, 3]),
    ('{"return": "VM status: running\\r\\n"}', "VM status: running\r\n"),
    ('{"return": null}', None),
]


@pytest.mark.parametrize(("text", "value"), GOOD_REPLIES)
def test_the_return_value_comes_back(text: str, value: Any) -> None:
    assert parse_reply("cmd", text) == value


BAD_REPLIES: list[tuple[str, type[Exception], str]] = [
    ('{"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}',
     QmpCommandError, "CommandNotFound: The command x has not been found"),
    ('{"error": {"desc": "no class"}}', QmpCommandError, "GenericError: no class"),
    ('{"error": "flat"}', CommandError, "malformed error reply"),
    ("not json", CommandError, "reply is not JSON"),
    ("", CommandError, "reply is not JSON"),
    ("[1, 2]", CommandError, "not a JSON object"),
    ('{"id": "libvirt-3"}', CommandError, "neither 'return' nor 'error'"),
    ('{"return": 1', CommandError, "reply is not JSON"),
]


@pytest.mark.parametrize(("text", "error", "fragment"), BAD_REPLIES)
def test_bad_replies_are_typed_errors(text: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as caught:
        parse_reply("cmd", text)
    assert fragment in str(caught.value)
    assert "'cmd'" in str(caught.value)


def test_an_oversized_reply_is_refused_before_parsing() -> None:
    text = '{"return": "' + "x" * MAX_REPLY_BYTES + '"}'
    with pytest.raises(CommandError, match="exceeds"):
        parse_reply("cmd", text)


def test_a_qmp_error_keeps_class_and_description() -> None:
    with pytest.raises(QmpCommandError) as caught:
        parse_reply("stop", '{"error": {"class": "GenericError", "desc": "nope"}}')
    assert (caught.value.command, caught.value.error_class, caught.value.description) == (
        "stop", "GenericError", "nope")


BUILDS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("query-status", {}, {"execute": "query-status"}),
    ("send-key", {"keys": [{"type": "qcode", "data": "a"}], "hold-time": 5},
     {"execute": "send-key",
      "arguments": {"keys": [{"type": "qcode", "data": "a"}], "hold-time": 5}}),
    ("human-monitor-command", {"command-line": "info status"},
     {"execute": "human-monitor-command", "arguments": {"command-line": "info status"}}),
]


@pytest.mark.parametrize(("command", "arguments", "expected"), BUILDS)
def test_commands_are_built_as_qmp_json(command: str, arguments: dict[str, Any],
                                        expected: dict[str, Any]) -> None:
    assert json.loads(build_command(command, arguments)) == expected


@pytest.mark.parametrize(("command", "arguments", "fragment"), [
    ("", {}, "non-empty string"),
    ("x", {"a": object()}, "not JSON-serialisable"),
    ("x", {"a": float("nan")}, "not JSON-serialisable"),
    ("x", {"a": {1, 2}}, "not JSON-serialisable"),
])
def test_arguments_that_are_not_json_fail_before_sending(command: str, arguments: dict[str, Any],
                                                          fragment: str) -> None:
    # a local mistake: InvalidArgument, never a CommandError (nothing reached QEMU)
    with pytest.raises(InvalidArgument, match=fragment) as caught:
        build_command(command, arguments)
    assert not isinstance(caught.value, CommandError)
