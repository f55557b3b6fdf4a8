"""One Spice endpoint per VM against the lab: the TLS name from YAML reaches the handshake,
a known endpoint costs no libvirt call, the YAML channel list opens on connect, clicks off
the screen are refused with its size, and Spice-only VMs are VMs."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from atp_notebook.config import SpiceVmConfig, TransportConfig, load_config
from atp_notebook.errors import InvalidArgument, NoLibvirtHost, TlsVerificationError, UnknownVm
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus
from atp_notebook.loop import run
from atp_notebook.session import Session, Vm, connect
from atp_notebook.spice.facade import VmSpice
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm_events import InputFailed
from atp_notebook.virt.guest_agent import GuestAgent
from atp_notebook.virt.protocols import ProtocolType
from atp_notebook.virt.qmp import Qmp
from atp_notebook.virt.virtio_serial import VirtioSerial
from tests.settling import settled

SPICE_NAME = "spice.atp-lab.test"  # the name in the lab's Spice certificate (not localhost)


def lab_config(lab_paths: LabPaths) -> TransportConfig:
    return load_config(lab_paths.config_file)


def with_spice(config: TransportConfig, vm_id: str, **changes: Any) -> TransportConfig:
    """The lab's configuration with one ``spice.vms`` entry changed."""
    vms = tuple(dataclasses.replace(v, **changes) if v.vm_id == vm_id else v
                for v in config.spice_vms)
    return dataclasses.replace(config, spice_vms=vms)


@pytest.fixture
def libvirt_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every call made on a libvirt connection or domain object, by method name (the real
    objects answer: each method is wrapped to count, then call through)."""
    counts: Counter[str] = Counter()

    def counting(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return method(*args, **kwargs)
        return wrapper

    for cls in (libvirt.virConnect, libvirt.virDomain):
        for name, method in vars(cls).items():
            if callable(method) and not name.startswith("_"):
                monkeypatch.setattr(cls, name, counting(f"{cls.__name__}.{name}", method))
    return counts


# --- 1. the endpoint and its TLS name ------------------------------------------------------


def test_server_name_from_yaml_reaches_tls_verification(lab: LabStatus,
                                                         lab_paths: LabPaths) -> None:
    # reached as "localhost", a name the certificate does not carry: verification fails
    # unless the YAML says which name to expect (server_name was lost on the way once)
    base = with_spice(lab_config(lab_paths), "atp-vm2", server_addr="localhost", port=None,
                      tls=True)
    without = connect(with_spice(base, "atp-vm2", server_name=None))
    try:
        with pytest.raises(TlsVerificationError, match="does not verify"):
            without.vm("atp-vm2").connect_spice()
    finally:
        without.close()
    named = connect(with_spice(base, "atp-vm2", server_name=SPICE_NAME))
    try:
        vm = named.vm("atp-vm2")
        spice = vm.connect_spice()
        assert spice.endpoint is not None and spice.endpoint.tls.server_name == SPICE_NAME
        assert spice.channel(ChannelType.MAIN).secure
    finally:
        named.close()


def test_a_key_press_makes_no_libvirt_call_once_the_endpoint_is_known(
    lab: LabStatus, lab_paths: LabPaths, libvirt_calls: Counter[str]
) -> None:
    # atp-vm1 without a spice.vms entry: its endpoint comes from the domain XML
    config = dataclasses.replace(lab_config(lab_paths), spice_vms=())
    session = connect(config)
    try:
        vm = session.vm("atp-vm1")
        vm.press("shift")  # resolves the endpoint: a lookup and the domain XML
        assert libvirt_calls["virDomain.XMLDesc"] == 1
        endpoint = vm.spice_input.spice.endpoint
        assert endpoint is not None and endpoint.source == "libvirt:local"
        libvirt_calls.clear()
        for _ in range(5):
            vm.press("shift")
        vm.click(1, 1)
        assert sum(libvirt_calls.values()) == 0, libvirt_calls
    finally:
        session.close()


# --- 2. the YAML channel list -----------------------------------------------------------------


@pytest.mark.parametrize(("listed", "opened"), [
    (("main", "inputs"), {"main", "inputs"}),
    (("main",), {"main"}),
    (("main", "inputs", "display"), {"main", "inputs", "display"}),
])
def test_the_channels_a_vm_lists_open_on_connect_the_others_on_first_use(
    lab: LabStatus, lab_paths: LabPaths, listed: tuple[str, ...], opened: set[str]
) -> None:
    session = connect(with_spice(lab_config(lab_paths), "atp-vm1", channels=listed))
    try:
        vm = session.vm("atp-vm1")
        spice = vm.connect_spice()
        assert {c.type for c in spice.channels() if c.status == "open"} == opened
        vm.press("shift")  # inputs on first use when not listed
        assert "inputs" in {c.type for c in spice.channels() if c.status == "open"}
    finally:
        session.close()


# --- 3. Spice-only VMs ----------------------------------------------------------------------


def test_a_spice_only_vm_is_a_vm_that_types_and_clicks_and_refuses_qmp(
    session: Session,
) -> None:
    vm = session.vm("atp-sasl")
    assert vm.spice_only and vm.host_id is None
    vm.press("shift")
    vm.type("")
    width, height = vm.screen_size()
    assert vm.click(width // 2, height // 2) is not None
    for use in (lambda: vm.qmp("query-status"), lambda: vm.qga("guest-ping"),
                lambda: vm.exec(["true"]), lambda: vm.serial("com.atp.test.0"),
                lambda: vm.protocol(ProtocolType.QMP)):
        with pytest.raises(NoLibvirtHost, match="'atp-sasl' has no libvirt host"):
            use()
    listed = {v.name: v for v in session.vms()}
    assert listed["atp-sasl"].state == "spice only"
    assert "atp-vm1" in listed  # the libvirt VMs are still there


def test_an_unknown_vm_says_where_to_look(session: Session) -> None:
    with pytest.raises(UnknownVm) as caught:
        session.vm("no-such-vm")
    assert caught.value.hint is not None and "%atp vms" in caught.value.hint


# --- 8. vm.protocol ---------------------------------------------------------------------------


def test_protocol_gives_the_typed_client_of_each_kind(session: Session) -> None:
    vm = session.vm("atp-vm1")
    qmp: Qmp = vm.protocol(ProtocolType.QMP)
    qga: GuestAgent = vm.protocol(ProtocolType.QGA)
    spice: VmSpice = vm.protocol(ProtocolType.SPICE)
    port: VirtioSerial = vm.protocol(ProtocolType.virtio_serial("com.atp.test.0"))
    assert qmp is vm.monitor and qga is vm.agent and spice is vm.spice_input
    assert qmp.status() == "running"
    qga.ping()
    with port.open() as opened:
        opened.send(b"ping\n")
        assert opened.readline(timeout=10) == b"ping\n"
    with pytest.raises(InvalidArgument, match="port name"):
        ProtocolType.virtio_serial("")


# --- 9. clicks on the screen only ---------------------------------------------------------------


@pytest.mark.parametrize(("x", "y"), [(5000, 5000), (-1, 3), (0, 100_000)])
def test_a_click_off_the_screen_names_the_screen_size(session: Session, x: int,
                                                      y: int) -> None:
    vm = session.vm("atp-vm1")
    width, height = vm.screen_size()
    assert width >= 640 and height >= 400
    with pytest.raises(InvalidArgument, match=rf"off the screen of atp-vm1 \({width}x{height}"):
        vm.click(x, y)
    with pytest.raises(InvalidArgument, match="off the screen"):
        vm.move(x, y)
    assert vm.click(width - 1, height - 1) is not None  # the last pixel is on it


# --- 5. takeover --------------------------------------------------------------------------------


@pytest.fixture
def two_sessions(lab: LabStatus, lab_paths: LabPaths) -> Iterator[tuple[Session, Session]]:
    first, second = connect(lab_paths.config_file), connect(lab_paths.config_file)
    yield first, second
    first.close()
    second.close()


def test_a_takeover_is_reported_once_with_what_happens_next(
    two_sessions: tuple[Session, Session], caplog: pytest.LogCaptureFixture
) -> None:
    first, second = two_sessions
    mine, theirs = first.vm("atp-vm1"), second.vm("atp-vm1")
    heard: list[object] = []
    spice = mine.connect_spice()
    handle = spice.add_listener(heard.append)
    mine.press("shift")
    main, inputs = spice.channel(ChannelType.MAIN), spice.channel(ChannelType.INPUTS)
    caplog.clear()
    theirs.press("shift")  # another client links Main: the server drops ours
    run(main.wait_closed(), timeout=20)
    run(inputs.wait_closed(), timeout=20)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert "atp-vm1" in text and "another Spice client" in text
    assert "next call reconnects" in text
    assert "closed by the server" in repr(inputs) and "open" not in repr(inputs)
    assert [type(e).__name__ for e in heard].count("ConnectionLost") == 1
    mine.press("shift")  # the next call reconnects (and takes the VM back)
    assert spice.channel(ChannelType.INPUTS).status == "open"
    handle.close()
    assert len(spice.listeners) == 0


# --- 4. listeners that go away --------------------------------------------------------------------


def test_closed_event_subscriptions_and_ports_leave_no_host_listener(session: Session) -> None:
    vm = session.vm("atp-vm1")
    before = len(vm.host.listeners)
    subscriptions = [vm.events(["STOP"]) for _ in range(3)]
    assert len(vm.host.listeners) == before + 3
    for subscription in subscriptions:
        subscription.close()
    assert len(vm.host.listeners) == before
    for _ in range(100):
        vm.events(["RESUME"]).close()
    for _ in range(5):
        vm.serial("com.atp.test.0").close()
    assert len(vm.host.listeners) == before


def test_a_spice_only_vm_in_the_config_needs_no_libvirt_host_at_all(
    lab: LabStatus, lab_paths: LabPaths, tmp_path: Path
) -> None:
    entry = next(v for v in lab_config(lab_paths).spice_vms if v.vm_id == "atp-sasl")
    assert isinstance(entry, SpiceVmConfig) and entry.host is None
    session = connect(TransportConfig(hosts=(), spice_vms=(entry,)))
    try:
        vm: Vm = session.vm("atp-sasl")
        vm.press("shift")
        assert [v.name for v in session.vms()] == ["atp-sasl"]
    finally:
        session.close()


# --- 6. the non-blocking input path -------------------------------------------------------------


def test_nowait_input_returns_at_once_and_failures_reach_the_listeners(session: Session) -> None:
    vm = session.vm("atp-vm1")
    spice = vm.connect_spice()
    failed = threading.Event()
    heard: list[InputFailed] = []

    def on_event(event: object) -> None:
        if isinstance(event, InputFailed):
            heard.append(event)
            failed.set()

    handle = spice.add_listener(on_event)
    try:
        vm.press("shift")  # Inputs open: what follows only queues
        inputs = spice.channel(ChannelType.INPUTS)
        assert inputs.protocol is not None
        sent_before = inputs.protocol.metrics.messages_out
        vm.spice_input.press_nowait("shift")
        vm.spice_input.send_scancodes_nowait(bytes([0x2A, 0xAA]))  # shift down, up
        vm.spice_input.move_nowait(3, 3)
        assert settled(lambda: inputs.protocol.metrics.messages_out - sent_before
                       if inputs.protocol else 0, 3) == 3
        vm.spice_input.click_nowait(99_999, 1)  # off the screen: the listener hears it
        assert failed.wait(20)
        assert heard[0].vm_id == "atp-vm1" and isinstance(heard[0].error, InvalidArgument)
        assert "off the screen" in str(heard[0].error)
        with pytest.raises(InvalidArgument):  # a typo is the caller's to hear at once
            vm.spice_input.press_nowait("ctrl-nosuchkey")
    finally:
        handle.close()
