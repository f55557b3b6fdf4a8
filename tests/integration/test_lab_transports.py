"""The lab through raw libvirt-python and raw sockets: every URI, every agent, every Spice port.

These are the anchors every later layer is measured against, so they use no code of ours
beyond the lab's inventory (which URIs, which ports).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
from pathlib import Path

import libvirt
import libvirt_qemu
import pytest
import yaml

from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LAB_VMS, LOOPBACK, SASL_VM, SPICE_SERVER_NAME, LabPaths, VmSpec
from atp_notebook.lab.pki import make_ca, pem_cert
from atp_notebook.lab.status import LabStatus

HOST_IDS = [h.id for h in lab_hosts(LabPaths.default())]
VM_NAMES = [vm.name for vm in LAB_VMS]


@pytest.mark.parametrize("host_id", HOST_IDS)
def test_every_uri_opens_and_lists_both_domains(
    lab: LabStatus, lab_paths: LabPaths, host_id: str
) -> None:
    uri = next(h.uri for h in lab_hosts(lab_paths) if h.id == host_id)
    conn = libvirt.open(uri)
    try:
        names = {d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
        assert set(VM_NAMES) <= names
        assert conn.getURI().split("?")[0].startswith(uri.split("://")[0])
    finally:
        conn.close()


@pytest.mark.parametrize("vm_name", VM_NAMES)
def test_guest_agent_answers_ping_and_knows_its_name(lab: LabStatus, vm_name: str) -> None:
    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByName(vm_name)
        assert json.loads(libvirt_qemu.qemuAgentCommand(
            dom, '{"execute":"guest-ping"}', 10, 0)) == {"return": {}}
        host = json.loads(libvirt_qemu.qemuAgentCommand(
            dom, '{"execute":"guest-get-host-name"}', 10, 0))
        assert host["return"]["host-name"] == vm_name
    finally:
        conn.close()


# --- Spice: a hand-built link message, to prove the servers speak Spice ----------------
# SpiceLinkHeader: magic "REDQ", major 2, minor 2, size of what follows.
# SpiceLinkMess: connection_id u32, channel_type u8 (1 = main, 3 = inputs), channel_id u8,
#                num_common_caps u32, num_channel_caps u32, caps_offset u32 (= 18, no caps).
LINK_HEADER = struct.Struct("<4sIII")
LINK_MESS = struct.Struct("<IBBIII")
LINK_REPLY_SIZE = 4 + 162 + 4 + 4 + 4  # error, RSA pub key (DER), caps counts and offset
MAIN, INPUTS = 1, 3
NEED_SECURED = 5  # SPICE_LINK_ERR_NEED_SECURED: link this channel on the TLS port


def _link_main_channel(sock: socket.socket, channel_type: int = MAIN) -> tuple[int, bytes, int]:
    body = LINK_MESS.pack(0, channel_type, 0, 0, 0, LINK_MESS.size)
    sock.sendall(LINK_HEADER.pack(b"REDQ", 2, 2, len(body)) + body)
    header = _recv_exact(sock, LINK_HEADER.size)
    magic, major, minor, size = LINK_HEADER.unpack(header)
    assert (magic, major, minor) == (b"REDQ", 2, 2)
    assert size >= LINK_REPLY_SIZE
    reply = _recv_exact(sock, size)
    error = struct.unpack_from("<I", reply)[0]
    return error, reply[4:166], size


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"server closed after {len(data)} of {n} bytes"
        data += chunk
    return data


def _spice_entry(paths: LabPaths, vm: VmSpec) -> dict[str, object]:
    config = yaml.safe_load(paths.config_file.read_text())
    entries = config["transport"]["spice"]["vms"]
    entry: dict[str, object] = next(e for e in entries if e["vm_id"] == vm.name)
    return entry


def test_plain_spice_port_answers_a_link_with_a_key(lab: LabStatus, lab_paths: LabPaths) -> None:
    vm = LAB_VMS[0]
    assert vm.spice_port is not None
    entry = _spice_entry(lab_paths, vm)
    assert entry["port"] == vm.spice_port and entry["tls"] is False
    with socket.create_connection((LOOPBACK, vm.spice_port), timeout=10) as sock:
        error, pubkey, _ = _link_main_channel(sock)
    assert error == 0  # SPICE_LINK_ERR_OK
    assert pubkey[:2] == b"\x30\x81"  # a DER SEQUENCE: the server's RSA-1024 public key


def test_tls_spice_port_answers_a_link_with_the_lab_ca(
    lab: LabStatus, lab_paths: LabPaths
) -> None:
    vm = LAB_VMS[1]
    assert vm.spice_tls_port is not None
    entry = _spice_entry(lab_paths, vm)
    assert entry["tls"] is True  # the lab's clients link every channel on TLS
    ca_file = Path(str(entry["ca_file"]))
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((LOOPBACK, vm.spice_tls_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=LOOPBACK) as sock:
        error, pubkey, _ = _link_main_channel(sock)
    assert error == 0
    assert pubkey[:2] == b"\x30\x81"
    # the password is in a 0600 file, never in atp.yaml
    password_file = Path(str(entry["password_file"]))
    assert password_file.stat().st_mode & 0o077 == 0
    assert password_file.read_text().strip() not in lab_paths.config_file.read_text()


def test_tls_spice_port_refuses_a_client_trusting_another_ca(
    lab: LabStatus, lab_paths: LabPaths, tmp_path: Path
) -> None:
    rogue_ca, _ = make_ca("not the lab's spice CA")
    (tmp_path / "rogue.pem").write_bytes(pem_cert(rogue_ca))
    context = ssl.create_default_context(cafile=str(tmp_path / "rogue.pem"))
    port = LAB_VMS[1].spice_tls_port
    assert port is not None
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname=LOOPBACK)


@pytest.mark.parametrize(("server_name", "verifies"), [
    (SPICE_SERVER_NAME, True), (LOOPBACK, True),
    ("localhost", False),  # the same socket, but not a name the certificate carries
])
@pytest.mark.parametrize("vm", [LAB_VMS[1], SASL_VM], ids=lambda vm: vm.name)
def test_spice_tls_serves_the_certificate_for_the_lab_name(
    lab: LabStatus, lab_paths: LabPaths, vm: VmSpec, server_name: str, verifies: bool
) -> None:
    # the libvirt VMs and the SASL VM (a QEMU of the lab's own) both serve the current cert
    assert vm.spice_tls_port is not None
    context = ssl.create_default_context(cafile=str(lab_paths.spice_pki / "ca-cert.pem"))
    with socket.create_connection((LOOPBACK, vm.spice_tls_port), timeout=10) as raw:
        if verifies:
            with context.wrap_socket(raw, server_hostname=server_name) as sock:
                assert sock.getpeercert() is not None
        else:
            with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
                context.wrap_socket(raw, server_hostname=server_name)


def test_atp_vm2_links_main_in_the_clear_and_tells_inputs_to_use_tls(lab: LabStatus) -> None:
    vm = LAB_VMS[1]
    conn = libvirt.open("qemu:///system")
    try:
        xml = conn.lookupByName(vm.name).XMLDesc(0)
    finally:
        conn.close()
    graphics = xml.split("<graphics", 1)[1].split("</graphics>", 1)[0]
    assert "port='5904'" in graphics and "tlsPort='5902'" in graphics
    assert "<channel name='inputs' mode='secure'/>" in graphics
    assert "name='main'" not in graphics  # main: libvirt's default, either port
    assert vm.spice_port is not None
    with socket.create_connection((LOOPBACK, vm.spice_port), timeout=10) as sock:
        error, pubkey, _ = _link_main_channel(sock)
    assert error == 0 and pubkey[:2] == b"\x30\x81"
    with socket.create_connection((LOOPBACK, vm.spice_port), timeout=10) as sock:
        error, _, _ = _link_main_channel(sock, INPUTS)
    assert error == NEED_SECURED
