"""QMP through the shared libvirt connection, on both lab VMs and over several transports."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from atp_notebook.errors import InvalidArgument, QmpCommandError
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus
from atp_notebook.session import Session, Vm, connect
from atp_notebook.virt.events import QmpEvent
from atp_notebook.virt.protocols import ProtocolType
from atp_notebook.virt.qmp import Qmp
from tests.integration.pausing import resumed_after

VM_HOSTS = [("atp-vm1", "tcp"), ("atp-vm2", "ssh"), ("atp-vm1", "local")]


@pytest.fixture(scope="module")
def session(lab_paths: LabPaths) -> Iterator[Session]:
    s = connect(lab_paths.config_file)
    yield s
    s.close()


@pytest.fixture(params=VM_HOSTS, ids=[f"{v}@{h}" for v, h in VM_HOSTS])
def vm(request: pytest.FixtureRequest, lab: LabStatus, session: Session) -> Vm:
    name, host = request.param
    return session.vm(name, host=host)


def guest_sh(vm: Vm, script: str) -> str:
    """Run a shell line in the guest through the agent and return its stdout."""
    return vm.exec(["/bin/sh", "-c", script], timeout=30).stdout_text


def test_execute_returns_the_return_value(vm: Vm) -> None:
    assert vm.qmp("query-status")["status"] == "running"
    assert vm.qmp("query-name") == {"name": vm.name}
    assert vm.monitor.status() == "running"


def test_errors_are_typed_and_the_connection_stays_usable(vm: Vm) -> None:
    with pytest.raises(QmpCommandError) as err:
        vm.qmp("no-such-command")
    assert err.value.error_class == "CommandNotFound"
    with pytest.raises(QmpCommandError, match="GenericError: Invalid parameter type"):
        vm.qmp("screendump", filename=5)
    with pytest.raises(InvalidArgument, match="not JSON-serialisable"):  # nothing was sent
        vm.qmp("query-status", {"x": object()})
    assert vm.qmp("query-status")["running"] is True


def test_hmp_passthrough(vm: Vm) -> None:
    assert vm.hmp("info status").strip() == "VM status: running"
    with pytest.raises(InvalidArgument, match="empty"):
        vm.hmp("  ")


def test_stop_and_cont_raise_events(vm: Vm) -> None:
    seen: list[QmpEvent] = []
    with resumed_after(vm), vm.events(["STOP", "RESUME"], callback=seen.append) as events:
        vm.monitor.stop()
        stop = events.wait_for("STOP", timeout=10)
        assert vm.monitor.status() == "paused"
        vm.monitor.cont()
        resume = events.wait_for("RESUME", timeout=10)
    assert (stop.vm, stop.name, resume.name) == (vm.name, "STOP", "RESUME")
    assert resume.timestamp >= stop.timestamp > 0
    assert [e.name for e in seen] == ["STOP", "RESUME"]
    assert vm.monitor.status() == "running"


def test_events_as_an_async_iterator(lab: LabStatus, session: Session) -> None:
    vm = session.vm("atp-vm1", host="tcp")

    async def scenario() -> list[str]:
        names: list[str] = []
        async with vm.events(["STOP", "RESUME"]) as events:
            await vm.qmp_async("stop")
            await vm.qmp_async("cont")
            async for event in events:
                names.append(event.name)
                if len(names) == 2:
                    break
        return names

    with resumed_after(vm):
        assert asyncio.run(scenario()) == ["STOP", "RESUME"]


def test_screendump_is_an_image_of_the_text_console(vm: Vm) -> None:
    image = vm.screendump()
    assert image.size == (720, 400)  # VGA text mode of the qxl device
    assert image.mode == "RGB"
    assert len(image.getcolors(1 << 16) or []) > 1  # the shell prompt is on it


def test_send_key_types_into_the_console(lab: LabStatus, session: Session) -> None:
    vm = session.vm("atp-vm1", host="tcp")
    keys = ["t", "o", "u", "c", "h", "spc", "slash", "t", "m", "p", "slash", "q", "k", "ret"]
    guest_sh(vm, "rm -f /tmp/qk")
    for key in keys:
        vm.monitor.send_key([key])
    deadline = 50
    while deadline and guest_sh(vm, "test -e /tmp/qk && echo yes").strip() != "yes":
        threading.Event().wait(0.2)
        deadline -= 1
    assert guest_sh(vm, "test -e /tmp/qk && echo yes").strip() == "yes"


def test_query_block_shows_the_snapshot_disk(vm: Vm) -> None:
    blocks = vm.monitor.query_block()
    formats = [b["inserted"]["image"]["format"] for b in blocks if b.get("inserted")]
    assert "qcow2" in formats


def test_snapshot_save_load_delete_restores_guest_memory(lab: LabStatus,
                                                         session: Session) -> None:
    vm = session.vm("atp-vm2", host="local")
    qmp = vm.monitor
    guest_sh(vm, "echo before > /tmp/snap")
    qmp.snapshot_save("atp-test")
    try:
        assert "atp-test" in qmp.snapshots()
        guest_sh(vm, "echo after > /tmp/snap")
        qmp.snapshot_load("atp-test")
        # the restored guest reopens its agent port: libvirt sees the agent come back
        vm.wait_for_agent(timeout=60)
        assert guest_sh(vm, "cat /tmp/snap").strip() == "before"
    finally:
        qmp.snapshot_delete("atp-test")
    assert "atp-test" not in qmp.snapshots()
    with pytest.raises(QmpCommandError):
        qmp.snapshot_load("no-such-snapshot")
    assert qmp.status() == "running"  # a failed load leaves the VM as it was


def test_protocol_registry_gives_the_qmp_client(vm: Vm) -> None:
    client = vm.protocol(ProtocolType.QMP)
    assert isinstance(client, Qmp) and client.status() == "running"


def test_twenty_threads_of_qmp_and_qga_calls_share_one_connection(
    lab: LabStatus, session: Session
) -> None:
    vms = [session.vm("atp-vm1", host="tcp"), session.vm("atp-vm2", host="tcp")]
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        got = []
        try:
            for call in range(50):
                vm = vms[(index + call) % 2]
                if call % 3 == 2:  # a guest-agent call every third, through the same connection
                    got.append(vm.qga("guest-get-host-name")["host-name"])
                else:
                    got.append(vm.qmp("query-name")["name"])
        except BaseException as exc:
            errors.append(exc)
        results[index] = got

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for index, got in results.items():
        assert got == [vms[(index + c) % 2].name for c in range(50)]
    assert session.manager.pool.stats()["tcp"].opens == 1
