"""The guest agent client against the lab's two VMs, over several transports."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from atp_notebook.errors import AgentUnavailable, GuestAgentError, GuestTimeout
from atp_notebook.session import Session
from atp_notebook.virt.guest_agent import GuestAgent

VM_NAMES = ["atp-vm1", "atp-vm2"]
HOST_IDS = ["local", "tcp", "tls", "ssh"]
# each VM once over tcp and once over ssh, crossed so that every VM and both remote
# transports with different auth are covered
PAIRS = [("atp-vm1", "tcp"), ("atp-vm2", "ssh")]
pair_params = pytest.mark.parametrize(("vm_name", "host_id"), PAIRS)


@pytest.fixture
def qga(session: Session, vm_name: str, host_id: str) -> GuestAgent:
    return GuestAgent(session.vm(vm_name, host=host_id))


@pytest.mark.parametrize("host_id", HOST_IDS)
@pytest.mark.parametrize("vm_name", VM_NAMES)
def test_ping_sync_and_hostname_on_every_transport(qga: GuestAgent, vm_name: str) -> None:
    qga.ping()
    assert isinstance(qga.sync(), int)
    assert qga.hostname() == vm_name


@pair_params
def test_exec_returns_exit_code_and_both_streams(qga: GuestAgent) -> None:
    result = qga.exec(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert (result.truncated, result.signal) == (False, None)
    with pytest.raises(GuestAgentError, match=r"exit 3\): err"):
        result.check()


@pair_params
def test_exec_passes_input_and_env(qga: GuestAgent) -> None:
    blob = bytes(range(256)) * 64
    assert qga.exec(["cat"], input=blob).check().stdout == blob
    result = qga.exec(["/bin/sh", "-c", 'printf "%s|%s" "$GREETING" "$OTHER"'],
                      env={"GREETING": "hello world", "OTHER": "a=b"})
    assert result.check().text == "hello world|a=b"


@pair_params
def test_a_5mb_binary_file_round_trips_byte_exact(qga: GuestAgent, vm_name: str,
                                                  host_id: str) -> None:
    data = os.urandom(5 * 1000 * 1000)
    path = f"/tmp/atp-qga-{host_id}.bin"
    started = time.monotonic()
    qga.write_file(path, data)
    written = time.monotonic()
    back = qga.read_file(path)
    done = time.monotonic()
    print(f"\n{vm_name} over {host_id}: write {5 / (written - started):.1f} MB/s, "
          f"read {5 / (done - written):.1f} MB/s")
    assert back == data
    digest = qga.exec(["sha256sum", path]).check().text.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()
    qga.exec(["rm", "-f", path]).check()


@pair_params
def test_write_file_sets_the_mode_and_an_empty_file_works(qga: GuestAgent) -> None:
    qga.write_file("/tmp/atp-qga-run.sh", b"#!/bin/sh\necho ran\n", mode=0o750)
    assert qga.exec(["/tmp/atp-qga-run.sh"]).check().text == "ran\n"
    assert qga.exec(["stat", "-c", "%a", "/tmp/atp-qga-run.sh"]).text == "750\n"
    qga.write_file("/tmp/atp-qga-empty", b"")
    assert qga.read_file("/tmp/atp-qga-empty") == b""


@pair_params
def test_reading_a_missing_file_names_the_path(qga: GuestAgent) -> None:
    with pytest.raises(GuestAgentError, match=r"/no/such/file") as info:
        qga.read_file("/no/such/file")
    assert not isinstance(info.value, AgentUnavailable)
    qga.ping()


@pair_params
def test_an_unknown_command_is_an_agent_error(qga: GuestAgent) -> None:
    with pytest.raises(GuestAgentError, match=r"'guest-no-such-thing' failed.*not been found"):
        qga.command("guest-no-such-thing")
    qga.ping()


@pair_params
def test_an_oversized_request_is_refused_without_blocking_the_agent(qga: GuestAgent) -> None:
    # libvirt would hang on it until the timeout, blocking every agent call on the VM
    started = time.monotonic()
    with pytest.raises(GuestAgentError, match="exceeds"):
        qga.exec(["cat"], input=bytes(1 << 20))
    assert time.monotonic() - started < 1.0
    qga.ping(timeout=2)


@pair_params
def test_an_exec_past_its_timeout_raises_and_is_killed(qga: GuestAgent) -> None:
    with pytest.raises(GuestTimeout, match=r"sleep 4321 .*within 1 s; killed"):
        qga.exec(["sleep", "4321"], timeout=1)
    left = qga.exec(["/bin/sh", "-c", "ps | grep -c '[s]leep 4321'"])
    assert left.stdout == b"0\n"


@pair_params
def test_information_helpers(qga: GuestAgent) -> None:
    info = qga.info()
    assert info.version.count(".") == 2
    assert info.supports("guest-exec") and not info.supports("guest-no-such-thing")
    assert qga.os_info()["kernel-release"]
    assert "lo" in [nic["name"] for nic in qga.network_interfaces()]
    # the guest clock is the host's at boot, but a loaded snapshot rewinds it: only sanity
    guest_now = qga.time()
    assert guest_now.tzinfo is not None and guest_now.year >= 2025
    assert qga.users() == [] and isinstance(qga.fsinfo(), list)


@pair_params
def test_async_twins_work_from_asyncio_run(qga: GuestAgent, vm_name: str) -> None:
    async def main() -> tuple[str, bytes, bytes]:
        await qga.ping_async()
        await qga.write_file_async("/tmp/atp-qga-async", b"async\x00data")
        name, result, back = await asyncio.gather(
            qga.hostname_async(), qga.exec_async(["cat"], input=b"in"),
            qga.read_file_async("/tmp/atp-qga-async"))
        assert await qga.wait_for_agent_async(10) >= 0
        return name, result.stdout, back

    assert asyncio.run(main()) == (vm_name, b"in", b"async\x00data")


@pytest.mark.lifecycle  # takes the agent away for seconds: run after the other lab tests
@pair_params
def test_a_stopped_agent_is_unavailable_then_comes_back(qga: GuestAgent) -> None:
    qga.exec(["atp-agent-off", "8"]).check()
    # atp-agent-off stops qemu-ga a second after it returns (so that we get its exit status);
    # poll until the agent is gone rather than guessing how long that takes
    deadline = time.monotonic() + 10
    while True:
        try:
            qga.ping(timeout=3)
        except AgentUnavailable as exc:
            assert qga.handle.name in str(exc)
            break
        assert time.monotonic() < deadline, "the agent never went away"
        time.sleep(0.1)
    with pytest.raises(AgentUnavailable, match=r"timeout 3 s"):
        qga.command("guest-get-host-name", timeout=3)
    ticks: list[tuple[float, float]] = []
    qga.wait_for_agent(timeout=60, progress=lambda done, total: ticks.append((done, total)))
    assert ticks and all(total == 60 for _, total in ticks)
    assert qga.hostname() == qga.handle.name
    qga.sync()
