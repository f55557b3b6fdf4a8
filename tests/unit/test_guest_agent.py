"""The guest agent client without a VM: request encoding, reply parsing, the error tables,
exec results, chunk arithmetic, and the client's loops against a scripted fake agent."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import libvirt
import libvirt_qemu
import pytest

from atp_notebook.errors import (
    AgentCommandDisabled,
    AgentUnavailable,
    GuestAgentError,
    GuestTimeout,
    InvalidArgument,
)
from atp_notebook.virt import guest_agent
from atp_notebook.virt.guest_agent import (
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    READ_CHUNK,
    WRITE_CHUNK,
    ExecResult,
    GuestAgent,
    agent_timeout,
    base64_size,
    chunks,
    decode_exec_status,
    encode_request,
    libvirt_agent_error,
    parse_reply,
)
from atp_notebook.virt.host import HostConnection

VM = "atp-vm9"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- timeouts and requests ------------------------------------------------------------


@pytest.mark.parametrize(("given", "sent"), [(0.2, 1), (1, 1), (1.01, 2), (10, 10), (59.5, 60)])
def test_timeouts_round_up_to_whole_seconds(given: float, sent: int) -> None:
    assert agent_timeout(given) == sent


@pytest.mark.parametrize("bad", [0, -1, -2, math.nan, math.inf])
def test_timeouts_libvirt_treats_specially_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        agent_timeout(bad)


def test_requests_are_compact_json_with_arguments_only_when_given() -> None:
    assert encode_request(VM, "guest-ping", {}) == '{"execute":"guest-ping"}'
    assert json.loads(encode_request(VM, "guest-exec", {"path": "/bin/ls", "arg": ["-l"]})) == {
        "execute": "guest-exec", "arguments": {"path": "/bin/ls", "arg": ["-l"]}}


@pytest.mark.parametrize("value", [object(), b"bytes", {1, 2}, math.nan])
def test_arguments_that_are_not_json_fail_before_sending(value: object) -> None:
    with pytest.raises(GuestAgentError, match=r"'guest-x' for 'atp-vm9': arguments are not JSON"):
        encode_request(VM, "guest-x", {"value": value})


def test_a_request_too_big_for_libvirt_is_refused_with_a_hint() -> None:
    with pytest.raises(GuestAgentError, match="exceeds") as info:
        encode_request(VM, "guest-file-write", {"buf-b64": "A" * MAX_REQUEST_BYTES})
    assert info.value.hint is not None and "write_file" in info.value.hint


# --- replies and errors -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ('{"return": {}}', {}),
    ('{"return": 5}', 5),
    ('{"return": [{"name": "lo"}]}', [{"name": "lo"}]),
    ('{"return": null}', None),
])
def test_replies_give_their_return_value(text: str, value: object) -> None:
    assert parse_reply(VM, "guest-x", text) == value


@pytest.mark.parametrize(("text", "kind", "words"), [
    ('{"error": {"class": "CommandDisabled", "desc": "no"}}', AgentCommandDisabled, "disabled"),
    ('{"error": {"class": "CommandNotFound", "desc": "Command guest-x has been disabled: '
     'frozen"}}', AgentCommandDisabled, "frozen"),
    ('{"error": {"class": "GenericError", "desc": "boom"}}', GuestAgentError,
     "'guest-x' failed: GenericError: boom"),
    ('{"error": {"class": "GenericError"}}', GuestAgentError, "GenericError"),
    ("not json", GuestAgentError, "not JSON: 'not json'"),
    ("", GuestAgentError, "not JSON"),
    ("[1, 2]", GuestAgentError, "neither 'return' nor 'error'"),
    ('{"QMP": {}}', GuestAgentError, "neither"),
])
def test_error_replies_map_to_the_error_tree(text: str, kind: type[Exception],
                                             words: str) -> None:
    with pytest.raises(GuestAgentError) as info:
        parse_reply(VM, "guest-x", text)
    assert type(info.value) is kind
    assert words in str(info.value) and VM in str(info.value)


WRAPPED = "internal error: unable to execute QEMU agent command"
LIBVIRT_ERRORS: list[tuple[int, str, type[Exception], str]] = [
    (86, "Guest agent is not responding: QEMU guest agent is not connected", AgentUnavailable,
     "timeout 3 s"),
    (86, "Guest agent is not responding: Guest agent not available for now", AgentUnavailable,
     "not available for now"),
    (86, "Guest agent is not responding: QEMU guest agent is not available due to an error",
     AgentUnavailable, "due to an error"),
    (97, "guest agent replied with wrong id to guest-sync", AgentUnavailable, "wrong id"),
    (1, "internal error: Guest agent disappeared while executing command", AgentUnavailable,
     "disappeared"),
    (68, "Timed out during operation: cannot acquire state change lock (held by agent=x)",
     AgentUnavailable, "busy"),
    (55, "Requested operation is not valid: domain is not running", AgentUnavailable,
     "not running"),
    (1, f"{WRAPPED} 'guest-x': Command guest-x has been disabled: the agent is frozen",
     AgentCommandDisabled, "is disabled"),
    (1, f"{WRAPPED} 'guest-x': The command guest-x has been disabled for this instance",
     AgentCommandDisabled, "for this instance"),
    (1, f"{WRAPPED} 'guest-x': The command guest-x has not been found", GuestAgentError,
     "CommandNotFound: The command guest-x has not been found"),
    (1, f"{WRAPPED} 'guest-x': failed to open file '/no/such' (mode: 'r'): No such file",
     GuestAgentError, "'/no/such'"),
    (1, f"{WRAPPED} 'guest-x'", GuestAgentError, "'guest-x' failed"),
    (39, "Unable to encode message payload", GuestAgentError, "exceeds the 4194304 bytes"),
    (1, "internal error: something new", GuestAgentError, "something new"),
]


@pytest.mark.parametrize(("code", "message", "kind", "words"), LIBVIRT_ERRORS)
def test_libvirt_errors_map_by_code_then_by_text(code: int, message: str,
                                                 kind: type[Exception], words: str) -> None:
    err = libvirt_agent_error(VM, "guest-x", code, message, 3)
    assert type(err) is kind
    assert words in str(err) and VM in str(err)


# --- exec results ------------------------------------------------------------------------


def test_a_running_process_has_no_result() -> None:
    assert decode_exec_status({"exited": False}) is None


def test_exec_status_decodes_code_streams_and_truncation() -> None:
    out = bytes(range(256))
    status = {"exited": True, "exitcode": 3, "out-data": b64(out), "err-data": b64(b"err\n"),
              "out-truncated": True}
    result = decode_exec_status(status, ["/bin/x", "-y"])
    assert result == ExecResult(3, out, b"err\n", truncated=True, signal=None,
                                argv=("/bin/x", "-y"))
    assert decode_exec_status({"exited": True, "exitcode": 0, "err-truncated": True}) == \
        ExecResult(0, b"", b"", truncated=True)


def test_a_signal_gives_a_negative_exit_code_like_subprocess() -> None:
    result = decode_exec_status({"exited": True, "signal": 9})
    assert result is not None and (result.exit_code, result.signal) == (-9, 9)
    unknown = decode_exec_status({"exited": True})
    assert unknown is not None and unknown.exit_code == -1


def test_exec_result_text_and_check() -> None:
    ok = ExecResult(0, "grüß\n".encode(), b"")
    assert ok.check() is ok and ok.text == ok.stdout_text == "grüß\n"
    assert ExecResult(0, b"\xff", b"").text == "\ufffd"
    with pytest.raises(GuestAgentError, match=r"^sh -c false failed \(exit 1\): bad$"):
        ExecResult(1, b"", b"bad\n", argv=("sh", "-c", "false")).check()
    with pytest.raises(GuestAgentError, match=r"signal 15"):
        ExecResult(-15, b"", b"", signal=15).check()


# --- chunk arithmetic ---------------------------------------------------------------------


def test_chunks_cover_the_data_without_copying() -> None:
    data = bytes(range(10)) * 100
    pieces = list(chunks(data, 300))
    assert [len(p) for p in pieces] == [300, 300, 300, 100]
    assert b"".join(pieces) == data
    assert all(p.obj is data for p in pieces)
    assert list(chunks(b"", 300)) == []


@pytest.mark.parametrize(("raw", "encoded"), [(0, 0), (1, 4), (3, 4), (4, 8), (96 << 10, 131072)])
def test_base64_size(raw: int, encoded: int) -> None:
    assert base64_size(raw) == encoded == len(base64.b64encode(bytes(raw)))


def test_a_full_write_chunk_fits_one_request_and_a_read_chunk_one_reply() -> None:
    request = encode_request(VM, "guest-file-write",
                             {"handle": 2**31, "buf-b64": b64(bytes(WRITE_CHUNK))})
    assert len(request) <= MAX_REQUEST_BYTES
    reply = json.dumps({"return": {"count": READ_CHUNK, "buf-b64": b64(bytes(READ_CHUNK)),
                                   "eof": False}})
    assert len(reply) < MAX_REPLY_BYTES // 2


# --- the client against a scripted fake agent ---------------------------------------------


class FakeDomain:
    """A DomainHandle whose libvirt calls run inline."""

    name = VM

    @property
    def host(self) -> HostConnection:
        raise NotImplementedError

    def domain(self, timeout: float | None = None) -> libvirt.virDomain:
        return "dom"

    def call(self, fn: Callable[[], Any]) -> Any:
        return fn()


def libvirt_error(code: int, message: str) -> libvirt.libvirtError:
    exc = libvirt.libvirtError(message)
    exc.err = (code, 10, message, 2, None, None, None, -1, -1)
    return exc


class FakeAgent:
    """Answers commands from handler functions; records what was asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, dict[str, Any], int]] = []
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        monkeypatch.setattr(libvirt_qemu, "qemuAgentCommand", self)

    def __call__(self, dom: object, text: str, timeout: int, flags: int) -> str:
        request = json.loads(text)
        name, args = request["execute"], request.get("arguments", {})
        self.calls.append((name, args, timeout))
        answer = self.handlers[name](args)
        return answer if isinstance(answer, str) else json.dumps({"return": answer})

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAgent:
    monkeypatch.setattr(guest_agent, "WAIT_POLL_S", 0.01)
    return FakeAgent(monkeypatch)


@pytest.fixture
def qga() -> GuestAgent:
    return GuestAgent(FakeDomain(), timeout=2.5)


def test_keywords_become_dashed_names_and_the_timeout_is_rounded(fake: FakeAgent,
                                                                  qga: GuestAgent) -> None:
    fake.handlers["guest-x"] = lambda args: args
    assert qga.command("guest-x", {"a_b": 1}, capture_output=True) == {"a_b": 1,
                                                                       "capture-output": True}
    assert qga.command("guest-x", timeout=0.1) == {}
    assert [t for _, _, t in fake.calls] == [3, 1]


def test_a_garbage_reply_fails_that_call_and_the_next_one_works(fake: FakeAgent,
                                                               qga: GuestAgent) -> None:
    replies = iter(["{not json", '{"return": {}}'])
    fake.handlers["guest-ping"] = lambda _: next(replies)
    with pytest.raises(GuestAgentError, match="not JSON"):
        qga.ping()
    qga.ping()


def test_libvirt_errors_are_raised_as_agent_errors_with_the_cause(fake: FakeAgent,
                                                                 qga: GuestAgent) -> None:
    def refuse(_: dict[str, Any]) -> Any:
        raise libvirt_error(86, "Guest agent is not responding: QEMU guest agent is not "
                                "connected")
    fake.handlers["guest-ping"] = refuse
    with pytest.raises(AgentUnavailable, match=r"'atp-vm9'.*timeout 3 s") as info:
        qga.ping()
    assert isinstance(info.value.__cause__, libvirt.libvirtError)


def test_sync_checks_the_id(fake: FakeAgent, qga: GuestAgent) -> None:
    fake.handlers["guest-sync"] = lambda args: args["id"]
    token = qga.sync()
    assert fake.calls[-1][1] == {"id": token}
    fake.handlers["guest-sync"] = lambda args: args["id"] + 1
    with pytest.raises(GuestAgentError, match="out of sync"):
        qga.sync()


def test_wait_for_agent_polls_reports_progress_and_gives_up(fake: FakeAgent,
                                                            qga: GuestAgent) -> None:
    answers = iter([86, 86, 0])

    def ping(_: dict[str, Any]) -> Any:
        code = next(answers)
        if code:
            raise libvirt_error(code, "Guest agent is not responding: not connected")
        return {}

    fake.handlers["guest-ping"] = ping
    seen: list[tuple[float, float]] = []
    assert qga.wait_for_agent(30, lambda elapsed, total: seen.append((elapsed, total))) < 30
    assert len(seen) == 3 and all(total == 30 for _, total in seen)
    assert [e for e, _ in seen] == sorted(e for e, _ in seen)
    fake.handlers["guest-ping"] = lambda _: (_ for _ in ()).throw(libvirt_error(86, "gone"))
    with pytest.raises(AgentUnavailable, match=r"did not answer within 0.05 s"):
        qga.wait_for_agent(0.05)


def test_exec_sends_argv_env_input_and_polls_until_exit(fake: FakeAgent,
                                                        qga: GuestAgent) -> None:
    polls = iter([{"exited": False}, {"exited": False},
                  {"exited": True, "exitcode": 0, "out-data": b64(b"hi")}])
    fake.handlers["guest-exec"] = lambda _: {"pid": 42}
    fake.handlers["guest-exec-status"] = lambda _: next(polls)
    result = qga.exec(["cat", "-"], input=b"\x00\x01", env={"A": "1", "B": "x=y"})
    assert (result.exit_code, result.stdout, result.argv) == (0, b"hi", ("cat", "-"))
    assert fake.calls[0][1] == {"path": "cat", "arg": ["-"], "capture-output": True,
                                "env": ["A=1", "B=x=y"], "input-data": b64(b"\x00\x01")}
    assert fake.names() == ["guest-exec"] + ["guest-exec-status"] * 3
    with pytest.raises(InvalidArgument, match="list of strings"):
        qga.exec("ls -l")


def test_an_exec_past_its_timeout_raises_and_is_killed(fake: FakeAgent,
                                                       qga: GuestAgent) -> None:
    started: list[dict[str, Any]] = []

    def spawn(args: dict[str, Any]) -> Any:
        started.append(args)
        return {"pid": 100 + len(started)}

    fake.handlers["guest-exec"] = spawn
    fake.handlers["guest-exec-status"] = lambda args: (
        {"exited": True, "exitcode": 0} if args["pid"] == 102 or len(fake.calls) > 20
        else {"exited": False})
    with pytest.raises(GuestTimeout, match=r"sleep 99 \(pid 101\).*within 0.05 s; killed"):
        qga.exec(["sleep", "99"], timeout=0.05)
    assert started[1] == {"path": "/bin/sh",
                          "arg": ["-c", guest_agent.KILL_TREE, "kill-tree", "101"]}


def test_write_file_chunks_handles_partial_writes_and_closes(fake: FakeAgent,
                                                              qga: GuestAgent) -> None:
    stored = bytearray()

    def write(args: dict[str, Any]) -> Any:
        data = base64.b64decode(args["buf-b64"])[:70000]  # qemu-ga may write less
        stored.extend(data)
        return {"count": len(data), "eof": False}

    fake.handlers.update({"guest-file-open": lambda _: 7, "guest-file-write": write,
                          "guest-file-close": lambda _: {}})
    data = bytes(range(256)) * 1000
    qga.write_file("/tmp/f", memoryview(data))
    assert bytes(stored) == data
    assert fake.calls[0][1] == {"path": "/tmp/f", "mode": "wb"}
    assert fake.names()[-1] == "guest-file-close" and fake.calls[-1][1] == {"handle": 7}
    writes = [base64.b64decode(a["buf-b64"]) for n, a, _ in fake.calls
              if n == "guest-file-write"]
    # each 96 KiB chunk is offered whole; what the agent did not take is offered again
    assert [len(w) for w in writes] == [WRITE_CHUNK, 28304, WRITE_CHUNK, 28304, 59392]


def test_a_write_that_makes_no_progress_fails_and_still_closes(fake: FakeAgent,
                                                               qga: GuestAgent) -> None:
    fake.handlers.update({"guest-file-open": lambda _: 7,
                          "guest-file-write": lambda _: {"count": 0, "eof": False},
                          "guest-file-close": lambda _: {}})
    with pytest.raises(GuestAgentError, match="no progress after 0 bytes"):
        qga.write_file("/tmp/f", b"data")
    assert fake.names()[-1] == "guest-file-close"


def test_read_file_reads_until_eof_and_closes_after_an_error(fake: FakeAgent,
                                                            qga: GuestAgent) -> None:
    parts = iter([b"a" * 10, b"b" * 5, b""])
    def read(_: dict[str, Any]) -> Any:
        part = next(parts)
        return {"count": len(part), "buf-b64": b64(part), "eof": not part}

    fake.handlers.update({"guest-file-open": lambda _: 3, "guest-file-close": lambda _: {},
                          "guest-file-read": read})
    assert qga.read_file("/f") == b"a" * 10 + b"b" * 5
    assert fake.calls[1][1] == {"handle": 3, "count": READ_CHUNK}

    def broken(_: dict[str, Any]) -> Any:
        raise libvirt_error(1, f"{WRAPPED} 'guest-file-read': read failed: EIO")

    fake.handlers["guest-file-read"] = broken
    fake.calls.clear()
    with pytest.raises(GuestAgentError, match="EIO"):
        qga.read_file("/f")
    assert fake.names() == ["guest-file-open", "guest-file-read", "guest-file-close"]


def test_opening_a_missing_file_names_it(fake: FakeAgent, qga: GuestAgent) -> None:
    def missing(args: dict[str, Any]) -> Any:
        raise libvirt_error(1, f"{WRAPPED} 'guest-file-open': failed to open file "
                               f"'{args['path']}' (mode: 'r'): No such file or directory")
    fake.handlers["guest-file-open"] = missing
    with pytest.raises(GuestAgentError, match=r"cannot open '/no/such' in 'atp-vm9'"):
        qga.read_file("/no/such")


def test_file_contents_and_input_are_never_logged(fake: FakeAgent, qga: GuestAgent,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake.handlers.update({"guest-file-open": lambda _: 1, "guest-file-close": lambda _: {},
                          "guest-file-write": lambda a: {"count": len(
                              base64.b64decode(a["buf-b64"])), "eof": False},
                          "guest-exec": lambda _: {"pid": 1},
                          "guest-exec-status": lambda _: {"exited": True, "exitcode": 0}})
    with caplog.at_level(logging.DEBUG, logger="atp.virt.atp-vm9.qga"):
        qga.write_file("/f", b"SECRET-CONTENT")
        qga.exec(["cat"], input=b"SECRET-INPUT")
    assert caplog.records and all(r.name == "atp.virt.atp-vm9.qga" for r in caplog.records)
    assert "SECRET" not in caplog.text and b64(b"SECRET-CONTENT") not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_async_twins_run_off_the_event_loop_thread(fake: FakeAgent, qga: GuestAgent) -> None:
    import threading
    threads: list[str] = []

    def host_name(_: dict[str, Any]) -> Any:
        threads.append(threading.current_thread().name)
        return {"host-name": VM}

    fake.handlers["guest-get-host-name"] = host_name
    fake.handlers["guest-ping"] = lambda _: {}

    async def main() -> list[Any]:
        return list(await asyncio.gather(qga.hostname_async(), qga.ping_async()))

    assert asyncio.run(main()) == [VM, None]
    assert threads and threading.main_thread().name not in threads
