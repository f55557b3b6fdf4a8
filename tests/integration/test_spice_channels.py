"""The Spice client against the lab's real servers: link, auth, channels on their own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from atp_notebook.config import Secret
from atp_notebook.errors import InvalidArgument, SpiceAuthError, TlsVerificationError
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.pki import make_ca, pem_cert
from atp_notebook.lab.status import LabStatus
from atp_notebook.loop import run
from atp_notebook.session import Session
from atp_notebook.spice.aio.channel import ChannelStatus
from atp_notebook.spice.endpoint import SpiceEndpoint, SpiceTls
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm import SpiceVmConnection
from tests.settling import settled

MAIN, INPUTS = ChannelType.MAIN, ChannelType.INPUTS


def spice(session: Session, vm_id: str) -> SpiceVmConnection:
    return run(session.manager.get_spice_connection(vm_id), timeout=30)


@pytest.mark.parametrize("vm_id", ["atp-vm1", "atp-vm2"])
def test_main_and_inputs_open_from_the_lab_config(session: Session, vm_id: str) -> None:
    vm = spice(session, vm_id)
    run(vm.open_channel(INPUTS), timeout=30)
    assert vm.session_id is not None and vm.main_init is not None
    channels = {c.type: c for c in vm.channels()}
    assert channels["main"].status == channels["inputs"].status == "open"
    secure = vm_id == "atp-vm2"  # TLS only, its own CA, verified
    assert channels["main"].secure is secure and channels["inputs"].secure is secure
    # the server's bandwidth test: pings answered while we read
    assert channels["main"].pings >= 1 and channels["main"].bytes_in > 100_000


@pytest.mark.parametrize("vm_id", ["atp-vm1", "atp-vm2"])
def test_open_channels_report_their_tcp_rtt_and_a_closed_one_none(
    session: Session, vm_id: str
) -> None:
    vm = spice(session, vm_id)
    inputs = run(vm.open_channel(INPUTS), timeout=30)
    main = vm.channel(MAIN)
    for channel in (main, inputs):  # plain on atp-vm1, TLS on atp-vm2: the TCP under it
        tcp = channel.tcp_info()
        assert tcp is not None and tcp.rtt_us > 0
    channels = {c.type: c for c in vm.channels()}
    for name in ("main", "inputs"):
        rtt_ms = channels[name].rtt_ms
        assert rtt_ms is not None and 0 < rtt_ms < 1000, (name, rtt_ms)  # loopback
        assert rtt_ms == round(rtt_ms, 3)  # to the microsecond the kernel measures
        min_rtt_ms = channels[name].min_rtt_ms
        assert min_rtt_ms is not None and 0 < min_rtt_ms <= rtt_ms
    run(inputs.close(), timeout=10)  # closed but still listed, as %spice shows it
    assert inputs.tcp_info() is None
    closed = {c.type: c for c in vm.channels()}["inputs"]
    assert closed.status == "closed" and closed.rtt_ms is None
    assert {c.type: c for c in vm.channels()}["main"].rtt_ms is not None


def test_a_wrong_password_is_refused(lab: LabStatus, lab_paths: LabPaths) -> None:
    tls = SpiceTls(lab_paths.spice_pki / "ca-cert.pem")
    vm = SpiceVmConnection("atp-vm2", SpiceEndpoint("127.0.0.1", tls_port=5902, tls=tls,
                                                  password=Secret("not-the-password")))
    with pytest.raises(SpiceAuthError, match="refused the ticket"):
        run(vm.open_channel(MAIN), timeout=30)
    run(vm.close(), timeout=10)


def test_a_ca_that_did_not_sign_the_server_fails_before_any_ticket(
    lab: LabStatus, tmp_path: Path
) -> None:
    rogue, _ = make_ca("a CA the Spice server never saw")
    (tmp_path / "rogue.pem").write_bytes(pem_cert(rogue))
    target = SpiceEndpoint("127.0.0.1", tls_port=5902, tls=SpiceTls(tmp_path / "rogue.pem"),
                         password=Secret("whatever"))
    vm = SpiceVmConnection("atp-vm2", target)
    with pytest.raises(TlsVerificationError, match="does not verify"):
        run(vm.open_channel(MAIN), timeout=30)
    # the link message (and with it the ticket) only goes out after a verified handshake
    assert all(c.bytes_out == 0 for c in vm.channels())
    run(vm.close(), timeout=10)


def test_a_killed_channel_leaves_the_others_working_and_reopens(session: Session) -> None:
    vm = spice(session, "atp-vm1")
    inputs = run(vm.open_channel(INPUTS), timeout=30)
    writer = inputs._writer
    assert writer is not None
    local_port = writer.get_extra_info("sockname")[1]
    subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", "5901",
                    "sport", "=", str(local_port)], check=True, capture_output=True)
    run(asyncio.wait_for(inputs.wait_closed(), 10), timeout=15)
    assert inputs.status is ChannelStatus.FAILED
    assert vm.channel(MAIN).status is ChannelStatus.OPEN  # main never noticed
    again = run(vm.open_channel(INPUTS), timeout=30)
    assert again.status is ChannelStatus.OPEN and again is not inputs


def test_opening_and_closing_200_times_leaks_nothing(session: Session) -> None:
    vm = spice(session, "atp-vm1")
    run(vm.open_channel(MAIN), timeout=30)

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def tasks() -> int:
        return len(asyncio.all_tasks())

    def counts() -> tuple[int, int, int]:
        return fds(), run(tasks(), timeout=5), threading.active_count()

    run(vm.open_channel(INPUTS), timeout=30)
    run(vm.close_channel(INPUTS), timeout=30)
    before = counts()
    for _ in range(200):
        run(vm.open_channel(INPUTS), timeout=30)
        run(vm.close_channel(INPUTS), timeout=30)
    # sockets, tasks and threads end a moment after close returns: poll until none is above
    # its count before (fewer is no leak: an earlier test's closes may finish meanwhile)
    def grown() -> bool:
        return any(now > then for now, then in zip(counts(), before, strict=True))

    assert settled(grown, False) is False, (counts(), before)
    assert vm.channel(MAIN).status is ChannelStatus.OPEN


def test_a_channel_type_not_built_yet_is_named(session: Session) -> None:
    vm = spice(session, "atp-vm1")
    with pytest.raises(InvalidArgument, match="usbredir channel is not supported"):
        run(vm.open_channel(ChannelType.USBREDIR), timeout=30)


@pytest.mark.lifecycle
def test_after_a_vm_restart_the_connection_comes_back_on_demand(session: Session) -> None:
    vm = spice(session, "atp-vm1")
    inputs = run(vm.open_channel(INPUTS), timeout=30)
    atp_lab = str(Path(sys.executable).with_name("atp-lab"))
    try:
        session.vm("atp-vm1", host="local").domain().destroy()
        run(asyncio.wait_for(inputs.wait_closed(), 15), timeout=20)
        assert inputs.status is ChannelStatus.FAILED  # users see the channel gone
    finally:  # the VM is back for every later test, whatever failed above
        subprocess.run([atp_lab, "up"], check=True, capture_output=True, timeout=600)
    again = run(vm.open_channel(INPUTS), timeout=30)  # Main is relinked first, by itself
    assert again.status is ChannelStatus.OPEN
    assert vm.channel(MAIN).status is ChannelStatus.OPEN
