"""The SASL VM's command line, SASL files, atp.yaml entry and probes, without starting QEMU."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from atp_notebook.config import parse_config
from atp_notebook.lab import sasl_vm
from atp_notebook.lab.guest import GuestImage
from atp_notebook.lab.inventory import config_document
from atp_notebook.lab.paths import SASL_USERNAME, SASL_VM, LabPaths
from atp_notebook.lab.status import _probe_sasl_vm
from tests.unit.lab_files import write_lab_client_files


def _guest(tmp_path: Path) -> GuestImage:
    return GuestImage(tmp_path / "vmlinuz", tmp_path / "initrd.img", "console=ttyS0", "d1")


def _option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_qemu_runs_spice_tls_only_with_sasl_and_the_lab_certificates(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    argv = sasl_vm.qemu_argv(paths, _guest(tmp_path))
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    (spice,) = _option(argv, "-spice")
    opts = dict(o.split("=", 1) for o in spice.split(","))
    assert opts == {"tls-port": "5903", "addr": "127.0.0.1", "x509-dir": str(paths.spice_pki),
                    "sasl": "on", "disable-ticketing": "on"}  # no port=: TLS only
    assert _option(argv, "-accel") == ["tcg"]  # nested KVM hangs guests
    assert _option(argv, "-append") == ["console=ttyS0 atp.hostname=atp-sasl"]
    assert _option(argv, "-pidfile") == [str(paths.run_dir / "atp-sasl.pid")]
    assert "-daemonize" in argv
    assert _option(argv, "-serial") == [f"file:{paths.console_log('atp-sasl')}"]
    assert any("name=org.qemu.guest_agent.0" in d for d in _option(argv, "-device"))


def test_a_comma_in_a_path_is_doubled_for_qemu(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "a,b")
    (spice,) = _option(sasl_vm.qemu_argv(paths, _guest(tmp_path)), "-spice")
    assert f"x509-dir={tmp_path}/a,,b/pki/spice," in spice


def test_sasl_config_always_names_the_mechanisms(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    lines = sasl_vm.sasl_conf(paths).splitlines()
    # without mech_list the server would also offer ANONYMOUS
    assert "mech_list: scram-sha-256 plain" in lines
    assert f"sasldb_path: {paths.sasl_dir / 'passwd.db'}" in lines


def test_atp_yaml_entry_loads_with_username_password_file_and_ca(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    entry = config_document(paths)["transport"]["spice"]["vms"][-1]
    assert entry == {
        "vm_id": "atp-sasl", "server_addr": "127.0.0.1", "tls_port": 5903, "tls": True,
        "tls_verify": True, "ca_file": str(paths.spice_pki / "ca-cert.pem"),
        "username": "atp", "password_file": str(paths.spice_password_file("atp-sasl")),
    }
    write_lab_client_files(paths, "pw")
    config = parse_config(json.dumps(config_document(paths)), "atp.yaml")
    vm = config.spice_vm("atp-sasl")
    assert (vm.username, vm.tls, vm.tls_port, vm.port, vm.host) == ("atp", True, 5903, None, None)
    assert vm.password is not None and vm.password.reveal() == "pw"


def test_the_sasl_user_is_written_once_per_password_and_host(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    paths.sasl_dir.mkdir(mode=0o700)
    assert sasl_vm.ensure_user(paths, "first")
    assert not sasl_vm.ensure_user(paths, "first")
    assert sasl_vm.ensure_user(paths, "second")
    db = paths.sasl_dir / "passwd.db"
    assert db.stat().st_mode & 0o077 == 0
    users = subprocess.run(["sasldblistusers2", "-f", str(db)], capture_output=True,
                           text=True, check=True).stdout
    # stored under the host's name as realm; clients send the bare name
    assert users.split(":")[0].startswith(f"{SASL_USERNAME}@")
    assert "second" not in (paths.sasl_dir / "passwd.stamp").read_text()


@pytest.fixture
def agent_socket(tmp_path: Path) -> Iterator[tuple[LabPaths, list[bytes]]]:
    """A fake qemu-ga on the SASL VM's agent socket, answering with scripted bytes."""
    paths = LabPaths(tmp_path)
    paths.run_dir.mkdir()
    replies: list[bytes] = []
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sasl_vm.SaslVmFiles.at(paths).agent_socket))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            request = conn.recv(4096)
            token = json.loads(request[1:].split(b"\n")[0])["arguments"]["id"]
            for reply in replies:
                conn.sendall(reply.replace(b"TOKEN", str(token).encode()))
            conn.recv(1)  # hold the connection until the client closes it

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield paths, replies
    server.close()


def test_agent_probe_skips_a_former_clients_leftovers(
    agent_socket: tuple[LabPaths, list[bytes]]
) -> None:
    paths, replies = agent_socket
    replies += [b'{"return": 7}\n{"ret', b'urn": {}}\n\xff{"return": TOKEN}\n', b'{"return": {}}\n']
    assert sasl_vm.agent_answers(paths, timeout=2.0)


def test_agent_probe_wants_the_sync_token_back(
    agent_socket: tuple[LabPaths, list[bytes]]
) -> None:
    paths, replies = agent_socket
    replies += [b'\xff{"return": 1}\n{"return": {}}\n']
    assert not sasl_vm.agent_answers(paths, timeout=2.0)


def test_a_silent_agent_is_reported_within_the_timeout(
    agent_socket: tuple[LabPaths, list[bytes]]
) -> None:
    paths, _ = agent_socket
    assert not sasl_vm.agent_answers(paths, timeout=0.3)


def test_status_of_a_sasl_vm_that_never_ran(tmp_path: Path) -> None:
    status = _probe_sasl_vm(LabPaths(tmp_path))
    assert (status.name, status.state, status.ok) == (SASL_VM.name, "shut off", False)
    assert (status.spice_port, status.spice_tls_port) == (None, 5903)
