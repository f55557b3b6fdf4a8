"""The lab's Spice SASL VM ``atp-sasl`` through raw sockets: TLS, link, SASL mechanisms.

The link and SASL bytes are built by hand with struct (DESIGN §7), so these tests prove the
server side of the lab and anchor the SASL client built elsewhere. The lifecycle tests at
the end kill or block the VM on purpose and let ``atp-lab up`` repair it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from scramp import ScramClient  # type: ignore[import-untyped]

from atp_notebook.config import load_config
from atp_notebook.lab import daemons, sasl_vm
from atp_notebook.lab.paths import LOOPBACK, SASL_USERNAME, SASL_VM, LabPaths
from atp_notebook.lab.pki import make_ca, pem_cert
from atp_notebook.lab.status import LabStatus
from tests.settling import settled

ATP_LAB = str(Path(sys.executable).with_name("atp-lab"))
PORT = SASL_VM.spice_tls_port
assert PORT is not None

# SpiceLinkHeader: magic "REDQ", major 2, minor 2, size of what follows.
# SpiceLinkMess: connection_id u32, channel_type u8 (1 = main), channel_id u8,
#                num_common_caps u32, num_channel_caps u32, caps_offset u32; then the caps.
LINK_HEADER = struct.Struct("<4sIII")
LINK_MESS = struct.Struct("<IBBIII")
U32 = struct.Struct("<I")
CAP_AUTH_SELECTION = 1 << 0  # SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION
CAP_AUTH_SASL = 1 << 2  # SPICE_COMMON_CAP_AUTH_SASL
AUTH_MECHANISM_SASL = 2  # SPICE_COMMON_CAP_AUTH_SASL as the chosen mechanism
LINK_ERR_VERSION_MISMATCH = 4
PUBKEY = slice(4, 4 + 162)  # after the u32 error: the RSA-1024 key, DER


def _entry(paths: LabPaths) -> dict[str, Any]:
    config = yaml.safe_load(paths.config_file.read_text())
    entry: dict[str, Any] = next(e for e in config["transport"]["spice"]["vms"]
                                 if e["vm_id"] == SASL_VM.name)
    return entry


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"server closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _tls(paths: LabPaths) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=_entry(paths)["ca_file"])
    raw = socket.create_connection((LOOPBACK, PORT), timeout=10)
    return context.wrap_socket(raw, server_hostname=LOOPBACK)


def _link(sock: socket.socket, common_caps: int) -> bytes:
    """Send a main-channel link with ``common_caps``; the server's reply body."""
    body = LINK_MESS.pack(0, 1, 0, 1, 0, LINK_MESS.size) + U32.pack(common_caps)
    sock.sendall(LINK_HEADER.pack(b"REDQ", 2, 2, len(body)) + body)
    magic, major, minor, size = LINK_HEADER.unpack(_recv_exact(sock, LINK_HEADER.size))
    assert (magic, major, minor) == (b"REDQ", 2, 2)
    return _recv_exact(sock, size)


def _mechlist(sock: socket.socket) -> list[str]:
    reply = _link(sock, CAP_AUTH_SELECTION | CAP_AUTH_SASL)
    assert U32.unpack_from(reply)[0] == 0  # SPICE_LINK_ERR_OK
    assert reply[PUBKEY] == bytes(162)  # no RSA ticket with SASL: the key is all zeros
    sock.sendall(U32.pack(AUTH_MECHANISM_SASL))
    (size,) = U32.unpack(_recv_exact(sock, 4))
    return _recv_exact(sock, size).decode("ascii").strip(",").split(",")


def _sasl_step(sock: socket.socket, data: bytes) -> tuple[bytes, bool]:
    # client data carries a trailing NUL counted in its length; so does the server's
    sock.sendall(U32.pack(len(data) + 1) + data + b"\0")
    (size,) = U32.unpack(_recv_exact(sock, 4))
    answer = _recv_exact(sock, size).rstrip(b"\0") if size else b""
    return answer, _recv_exact(sock, 1) == b"\x01"


def _scram_login(paths: LabPaths, username: str, password: str) -> tuple[int, int]:
    """A full SCRAM-SHA-256 login: (auth result, link result), or EOFError on refusal."""
    mech = "SCRAM-SHA-256"
    with _tls(paths) as sock:
        assert mech in _mechlist(sock)
        sock.sendall(U32.pack(len(mech)) + mech.encode())
        client = ScramClient([mech], username, password)
        server_first, done = _sasl_step(sock, client.get_client_first().encode())
        assert not done
        client.set_server_first(server_first.decode())
        server_final, done = _sasl_step(sock, client.get_client_final().encode())
        assert done
        client.set_server_final(server_final.decode())
        return U32.unpack(_recv_exact(sock, 4))[0], U32.unpack(_recv_exact(sock, 4))[0]


def test_the_sasl_vm_runs_and_its_agent_knows_its_name(lab: LabStatus,
                                                       lab_paths: LabPaths) -> None:
    status = {vm.name: vm for vm in lab.vms}[SASL_VM.name]
    assert status.ok and status.spice_tls_port == PORT and status.spice_port is None
    pid = sasl_vm.process(lab_paths).pid()
    assert pid is not None and daemons.pid_alive(pid, sasl_vm.QEMU)
    files = sasl_vm.SaslVmFiles.at(lab_paths)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(files.agent_socket))
        sock.sendall(b'\xff{"execute": "guest-sync-delimited", "arguments": {"id": 42}}\n'
                     b'{"execute": "guest-get-host-name"}\n')
        data = b""
        while data.rpartition(b"\xff")[2].count(b"\n") < 2:
            data += sock.recv(4096)
    sync, name = data.rpartition(b"\xff")[2].splitlines()[:2]
    assert json.loads(sync) == {"return": 42}
    assert json.loads(name) == {"return": {"host-name": SASL_VM.name}}


def test_tls_handshake_is_verified_by_the_lab_spice_ca(lab: LabStatus,
                                                       lab_paths: LabPaths) -> None:
    entry = _entry(lab_paths)
    assert entry["ca_file"] == str(lab_paths.spice_pki / "ca-cert.pem")
    with _tls(lab_paths) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert sock.getpeercert() is not None


def test_a_client_trusting_another_ca_is_refused(lab: LabStatus, tmp_path: Path) -> None:
    rogue_ca, _ = make_ca("not the lab's spice CA")
    (tmp_path / "rogue.pem").write_bytes(pem_cert(rogue_ca))
    context = ssl.create_default_context(cafile=str(tmp_path / "rogue.pem"))
    with socket.create_connection((LOOPBACK, PORT), timeout=10) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname=LOOPBACK)


def test_sasl_is_offered_with_scram_and_never_anonymous(lab: LabStatus,
                                                        lab_paths: LabPaths) -> None:
    with _tls(lab_paths) as sock:
        mechs = _mechlist(sock)
    assert "SCRAM-SHA-256" in mechs and "PLAIN" in mechs
    assert "ANONYMOUS" not in mechs  # mech_list in qemu.conf keeps it out


def test_a_client_without_auth_selection_is_turned_away(lab: LabStatus,
                                                        lab_paths: LabPaths) -> None:
    with _tls(lab_paths) as sock:
        first = _link(sock, 0)
        assert U32.unpack_from(first)[0] == 0
        # spice-server then sends a second link reply: it cannot ask this client for SASL
        second = _link_reply_only(sock)
    assert U32.unpack_from(second)[0] == LINK_ERR_VERSION_MISMATCH


def _link_reply_only(sock: socket.socket) -> bytes:
    magic, _, _, size = LINK_HEADER.unpack(_recv_exact(sock, LINK_HEADER.size))
    assert magic == b"REDQ"
    return _recv_exact(sock, size)


def test_the_username_and_password_in_atp_yaml_log_in(lab: LabStatus,
                                                      lab_paths: LabPaths) -> None:
    config = load_config(lab_paths.config_file)
    vm = config.spice_vm(SASL_VM.name)
    assert vm.username == SASL_USERNAME and vm.tls and vm.tls_port == PORT
    assert vm.password is not None
    assert _scram_login(lab_paths, vm.username, vm.password.reveal()) == (0, 0)
    # the password is in a 0600 file, never in atp.yaml
    password_file = Path(_entry(lab_paths)["password_file"])
    assert password_file.stat().st_mode & 0o077 == 0
    assert vm.password.reveal() not in lab_paths.config_file.read_text()


def test_a_wrong_password_is_refused(lab: LabStatus, lab_paths: LabPaths) -> None:
    # a failed SASL step: the server just closes the connection (DESIGN §7)
    with pytest.raises((EOFError, ConnectionError)):
        _scram_login(lab_paths, SASL_USERNAME, "not the password")


# --- lifecycle: break the SASL VM, let `atp-lab up` repair it --------------------------


def atp_lab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ATP_LAB, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture
def lab_restored(lab: LabStatus) -> Iterator[LabStatus]:
    yield lab
    result = atp_lab("up")
    assert result.returncode == 0, result.stderr


@pytest.mark.lifecycle
def test_up_restarts_a_killed_sasl_vm(lab_restored: LabStatus, lab_paths: LabPaths) -> None:
    pid = sasl_vm.process(lab_paths).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    status = atp_lab("status", "--json")
    assert status.returncode == 1
    vms = {v["name"]: v["ok"] for v in json.loads(status.stdout)["vms"]}
    assert vms == {"atp-vm1": True, "atp-vm2": True, "atp-sasl": False}
    result = atp_lab("up")
    assert result.returncode == 0, result.stderr
    assert "started atp-sasl" in result.stdout
    assert sasl_vm.process(lab_paths).pid() not in (None, pid)
    assert atp_lab("status").returncode == 0


def port_is_free() -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, PORT))
        except OSError:
            return False
        return True


def holders_of(host: str, port: object) -> str:
    listing = subprocess.run(["ss", "-tanp", f"sport = :{port}"], capture_output=True,
                             text=True, check=False).stdout
    return f"{host}:{port} still taken:\n{listing}"


@pytest.mark.lifecycle
def test_a_taken_sasl_port_is_named_and_nothing_is_left_behind(
    lab_restored: LabStatus, lab_paths: LabPaths
) -> None:
    assert sasl_vm.stop(lab_paths)
    # once in a full run the port was still taken right after the stop: wait (bounded) and
    # name the holder if it stays taken, rather than fail on a bare EADDRINUSE
    assert settled(port_is_free, True), holders_of(LOOPBACK, PORT)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((LOOPBACK, PORT))
        squatter.listen()
        result = atp_lab("up")
    assert result.returncode == 1
    assert f"{LOOPBACK}:{PORT} (Spice TLS of atp-sasl)" in result.stderr
    assert sasl_vm.process(lab_paths).pid() is None


def _agent_exec(lab_paths: LabPaths, script: str) -> str:
    """``/bin/sh -c script`` in the SASL VM through its agent socket; its stdout."""
    files = sasl_vm.SaslVmFiles.at(lab_paths)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(files.agent_socket))
        reader = sock.makefile("rb")

        def call(command: dict[str, Any]) -> Any:
            sock.sendall(json.dumps(command).encode() + b"\n")
            while True:
                reply = json.loads(reader.readline().lstrip(b"\xff"))
                if "return" in reply and reply["return"] != 7:  # not the sync's echo
                    return reply["return"]

        sock.sendall(b'\xff{"execute": "guest-sync-delimited", "arguments": {"id": 7}}\n')
        pid = call({"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", script], "capture-output": True}})["pid"]
        for _ in range(300):
            status = call({"execute": "guest-exec-status", "arguments": {"pid": pid}})
            if status["exited"]:
                return base64.b64decode(status.get("out-data", "")).decode()
            time.sleep(0.1)
    raise AssertionError(f"the SASL VM's agent did not finish {script!r} within 30 s")


def test_the_sasl_vm_idles_without_starting_processes(lab: LabStatus,
                                                      lab_paths: LabPaths) -> None:
    # it has no test port: the echo service's wait for it looked every 0.2 s for ever
    # (~160 ms of host CPU a second under TCG); now every 5 s once the guest is 15 s up
    # (a test that reset the VM may have run just before: past those 15 s first)
    lines = _agent_exec(lab_paths, "while [ $(cut -d. -f1 /proc/uptime) -lt 17 ]; do sleep 1; "
                                   "done; grep processes /proc/stat; sleep 2; "
                                   "grep processes /proc/stat").split("\n")
    first, second = (int(line.split()[1]) for line in lines[:2])
    assert second - first < 6, f"{second - first} processes started in 2 s: {lines}"
