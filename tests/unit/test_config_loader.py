"""atp.yaml loading: the lab's own file, every key, secrets kept out of reprs, errors and
logs, relative paths, find_config's order, and the typed objects (every error kind with its
line and key path: test_config_errors.py)."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
import yaml

from atp_notebook.config import (
    HostInfo,
    LibvirtUri,
    Secret,
    SpiceVmConfig,
    TransportConfig,
    find_config,
    load_config,
    parse_config,
    parse_libvirt_uri,
)
from atp_notebook.errors import ConfigError
from atp_notebook.lab.inventory import config_document
from atp_notebook.lab.paths import LabPaths
from tests.unit.config_texts import PASSWORD, VA
from tests.unit.lab_files import write_lab_client_files

LAB_PASSWORD = "lab-vm2-Pa55word"


@pytest.fixture
def lab_file(tmp_path: Path) -> tuple[Path, LabPaths]:
    """The lab's atp.yaml, written from the lab's own generator, with the files it names."""
    paths = LabPaths(tmp_path)
    write_lab_client_files(paths, LAB_PASSWORD)
    file = tmp_path / "atp.yaml"
    file.write_text(yaml.safe_dump(config_document(paths), sort_keys=False))
    return file, paths


# --- the lab's real file -------------------------------------------------------------------


def test_lab_file_parses_with_every_field(
    lab_file: tuple[Path, LabPaths], caplog: pytest.LogCaptureFixture
) -> None:
    file, paths = lab_file
    with caplog.at_level(logging.WARNING, logger="atp.config"):
        cfg = load_config(file)
    assert caplog.records == []  # loopback tcp, 0600 password file: nothing to warn about
    assert cfg.source == str(file)
    assert [h.id for h in cfg.hosts] == ["local", "tcp", "tls", "ssh"]
    assert cfg.host("local").effective_uri == LibvirtUri()
    assert cfg.host("local").host == "localhost"
    assert str(cfg.host("tcp").effective_uri) == "qemu+tcp://127.0.0.1/system"
    tls = cfg.host("tls").effective_uri
    assert (tls.transport, tls.host, tls.effective_port) == ("tls", "127.0.0.1", 16514)
    assert tls.param("pkipath") == str(paths.libvirt_client_pki)
    ssh = cfg.host("ssh").effective_uri
    assert (ssh.user, ssh.port, ssh.param("keyfile")) == ("root", 2222,
                                                          str(paths.ssh_client_key))
    assert ssh.param("no_verify") == "1" and ssh.param("no_tty") == "1"
    assert [h.id for h in cfg.hosts_tagged("lab")] == ["local", "tcp", "tls", "ssh"]
    assert [h.id for h in cfg.hosts_tagged("ssh")] == ["ssh"]
    assert cfg.hosts_tagged("nope") == ()

    vm1 = cfg.spice_vm("atp-vm1")
    assert (vm1.host, vm1.server_addr, vm1.port, vm1.tls_port) == ("local", "127.0.0.1", 5901,
                                                                   None)
    assert (vm1.tls, vm1.tls_verify, vm1.password, vm1.ca_file) == (False, True, None, None)
    assert vm1.libvirt_name == "atp-vm1" and vm1.channels == ()
    vm2 = cfg.spice_vm("atp-vm2")
    assert (vm2.port, vm2.tls_port, vm2.tls, vm2.tls_verify) == (5904, 5902, True, True)
    assert vm2.ca_file == (paths.spice_pki / "ca-cert.pem").resolve()
    assert vm2.password is not None and vm2.password.reveal() == LAB_PASSWORD
    for text in (repr(cfg), str(cfg), repr(vm2), str(vm2)):
        assert LAB_PASSWORD not in text


def test_every_key(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = """\
transport:
  hosts:
  - id: h1
    host: 10.0.0.1
    uri: qemu+tls://10.0.0.1/system?pkipath=PKI
    tags: [prod, tls]
  - id: h2
    host: "::1"
  - id: h3
  spice:
    vms:
    - vm_id: vm1
      host: h1
      domain: libvirt-vm1
      server_addr: 10.0.0.5
      port: 5900
      tls_port: 5901
      tls: false
      tls_verify: false
      ca_file: ca.pem
      server_name: vm1.example
      username: alice
      password_file: pw
      channels: [main, display, inputs, cursor, playback, record, usbredir, smartcard,
                 webdav, port]
    - vm_id: vm2
      server_addr: vm2.example
      tls_port: 5902
"""
    pki = workdir / "pki"
    pki.mkdir()
    (pki / "cacert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    text = text.replace("PKI", str(pki))
    with caplog.at_level(logging.WARNING, logger="atp.config"):
        cfg = parse_config(text, "every.yaml", base_dir=workdir)
    assert ["tls_verify is false" in r.getMessage() for r in caplog.records] == [True]
    h1, h2, h3 = cfg.hosts
    assert h1 == HostInfo("h1", "10.0.0.1",
                          parse_libvirt_uri(f"qemu+tls://10.0.0.1/system?pkipath={pki}"),
                          ("prod", "tls"))
    assert str(h2.effective_uri) == "qemu+ssh://[::1]/system"  # SSH is the default transport
    assert h3.host is None and h3.effective_uri == LibvirtUri()
    vm1, vm2 = cfg.spice_vms
    assert vm1 == SpiceVmConfig(
        "vm1", "10.0.0.5", 5900, 5901, Secret(PASSWORD), tls=False, tls_verify=False,
        ca_file=(workdir / "ca.pem").resolve(), username="alice", host="h1",
        domain="libvirt-vm1", channels=("main", "display", "inputs", "cursor", "playback",
                                        "record", "usbredir", "smartcard", "webdav", "port"),
        server_name="vm1.example")
    assert vm1.libvirt_name == "libvirt-vm1"
    assert vm2.tls is True  # only a TLS port: tls defaults to true
    assert vm2.tls_verify is True


# --- secrets -----------------------------------------------------------------------------


def test_inline_password_warns_and_stays_masked(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = VA + f"      port: 1\n      password: {PASSWORD}\n"
    with caplog.at_level(logging.WARNING, logger="atp.config"):
        cfg = parse_config(text, "inline.yaml", base_dir=workdir)
    vm = cfg.spice_vm("v")
    assert vm.password is not None and vm.password.reveal() == PASSWORD
    for shown in (repr(cfg), str(cfg), repr(vm), str(vm), repr(vm.password), str(vm.password),
                  f"{vm.password}", caplog.text):
        assert PASSWORD not in shown
    assert repr(vm.password) == "Secret('***')"
    assert [r.getMessage() for r in caplog.records] == [
        "inline.yaml:7: transport.spice.vms[0].password is stored in plain text; "
        "prefer password_env or password_file"]


@pytest.mark.parametrize(("tail", "secret", "fragment"), [
    # unterminated quote: PyYAML's own message would quote this line
    (f'      port: 1\n      password: "{PASSWORD}\n', PASSWORD, "invalid YAML"),
    (f"      port: 1\n      password: [{PASSWORD}]\n", PASSWORD, "expected a string, got a list"),
    ("      port: 1\n      password: 1234567890123\n", "1234567890123",
     "expected a string, got an integer"),
    (f"      port: 1\n      password: {PASSWORD}\n      password_env: X\n", PASSWORD,
     "at most one of"),
    (f"      password: {PASSWORD}\n      port: 70000\n", PASSWORD, "out of range"),
    (f"      password: {PASSWORD}\n      tls: true\n      port: 1\n", PASSWORD,
     "is true but tls_port is not given"),
])
def test_password_never_in_errors(workdir: Path, tail: str, secret: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(VA + tail, base_dir=workdir)
    assert fragment in str(info.value)
    assert secret not in "".join(traceback.format_exception(info.value))


def test_yaml_error_is_not_chained(workdir: Path) -> None:
    # the YAML error's text quotes the offending line, which may carry a password
    with pytest.raises(ConfigError) as info:
        parse_config(VA + f'      password: "{PASSWORD}\n', base_dir=workdir)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_password_env(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATP_TEST_SPICE_PW", PASSWORD)
    cfg = parse_config(VA + "      port: 1\n      password_env: ATP_TEST_SPICE_PW\n",
                       base_dir=workdir)
    password = cfg.spice_vm("v").password
    assert password is not None and password.reveal() == PASSWORD
    monkeypatch.setenv("ATP_TEST_SPICE_PW", "")
    with pytest.raises(ConfigError, match="environment variable ATP_TEST_SPICE_PW is empty"):
        parse_config(VA + "      port: 1\n      password_env: ATP_TEST_SPICE_PW\n",
                     base_dir=workdir)


@pytest.mark.parametrize(("content", "expected"), [
    (f"{PASSWORD}\n", PASSWORD), (f"{PASSWORD}\r\n", PASSWORD), (PASSWORD, PASSWORD),
    (f" {PASSWORD} \n", f" {PASSWORD} "),  # only the newline goes; spaces may be meant
])
def test_password_file_strips_one_newline(workdir: Path, content: str, expected: str) -> None:
    file = workdir / "secrets" / "vm.pw"
    file.parent.mkdir()
    file.write_bytes(content.encode())
    file.chmod(0o600)
    cfg = parse_config(VA + "      port: 1\n      password_file: secrets/vm.pw\n",
                       base_dir=workdir)
    password = cfg.spice_vm("v").password
    assert password is not None and password.reveal() == expected


def test_password_file_errors_do_not_show_content(workdir: Path) -> None:
    (workdir / "two-lines").write_text(f"{PASSWORD}\n\n")
    (workdir / "binary").write_bytes(b"\xff\xfe" + PASSWORD.encode())
    for name, fragment in (("two-lines", "has more than one line"),
                           ("binary", "is not UTF-8 text")):
        with pytest.raises(ConfigError) as info:
            parse_config(VA + f"      port: 1\n      password_file: {name}\n", base_dir=workdir)
        assert fragment in str(info.value)
        assert PASSWORD not in str(info.value)


def test_password_file_unreadable(workdir: Path) -> None:
    # a path through a regular file fails to open for root too (ENOTDIR)
    with pytest.raises(ConfigError, match="pw/x' cannot be read \\(Not a directory\\)"):
        parse_config(VA + "      port: 1\n      password_file: pw/x\n", base_dir=workdir)


@pytest.mark.parametrize(("mode", "warns"), [(0o600, False), (0o400, False), (0o640, True),
                                             (0o604, True), (0o644, True)])
def test_password_file_mode_warning(
    workdir: Path, caplog: pytest.LogCaptureFixture, mode: int, warns: bool
) -> None:
    (workdir / "pw").chmod(mode)
    with caplog.at_level(logging.WARNING, logger="atp.config"):
        parse_config(VA + "      port: 1\n      password_file: pw\n", "m.yaml", base_dir=workdir)
    messages = [r.getMessage() for r in caplog.records]
    assert bool(messages) is warns
    if warns:
        assert messages[0].startswith("m.yaml:7: transport.spice.vms[0].password_file:")
        assert f"mode {mode:o}" in messages[0] and PASSWORD not in messages[0]


def test_secret_behaviour() -> None:
    a, b = Secret("x-secret"), Secret("x-secret")
    assert a == b and a != Secret("other") and hash(a) == hash(b)
    assert (repr(a), str(a), a.reveal()) == ("Secret('***')", "***", "x-secret")
    assert a.__eq__("x-secret") is NotImplemented
    with pytest.raises(ConfigError, match="holds a string"):
        Secret(3)  # type: ignore[arg-type]


# --- paths -------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_yaml_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    (conf / "pki").mkdir(parents=True)
    (conf / "pki" / "ca.pem").write_text("ca")
    (conf / "pw").write_text(PASSWORD)
    (conf / "pw").chmod(0o600)
    (conf / "atp.yaml").write_text(
        VA + "      tls_port: 1\n      ca_file: pki/ca.pem\n      password_file: pw\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    vm = load_config(conf / "atp.yaml").spice_vm("v")
    assert vm.ca_file == (conf / "pki" / "ca.pem").resolve()
    assert vm.password is not None and vm.password.reveal() == PASSWORD


def test_parse_config_resolves_against_cwd_by_default(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    vm = parse_config(VA + "      tls_port: 1\n      ca_file: ca.pem\n").spice_vm("v")
    assert vm.ca_file == (workdir / "ca.pem").resolve()


def test_absolute_and_home_paths(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(workdir))
    text = VA + f"      tls_port: 1\n      ca_file: {workdir / 'ca.pem'}\n"
    assert parse_config(text, base_dir=Path("/")).spice_vm("v").ca_file == (
        workdir / "ca.pem").resolve()
    text = VA + "      tls_port: 1\n      ca_file: ~/ca.pem\n"
    assert parse_config(text, base_dir=Path("/")).spice_vm("v").ca_file == (
        workdir / "ca.pem").resolve()


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.source == str(tmp_path / "nope.yaml")
    assert "cannot read the config file" in str(info.value)


def test_load_config_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"transport: \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bad.yaml")


# --- find_config -------------------------------------------------------------------------


@pytest.fixture
def search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no ATP_* variables."""
    for var in ("ATP_CONFIG", "ATP_LAB_DIR"):
        monkeypatch.delenv(var, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path


def test_find_config_order(search: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = search / "lab"
    lab.mkdir()
    monkeypatch.setenv("ATP_LAB_DIR", str(lab))
    assert find_config() is None  # ATP_LAB_DIR set: /var/lib/atp-lab is not looked at
    (lab / "atp.yaml").write_text("x")
    assert find_config() == lab / "atp.yaml"
    (search / "cwd" / "atp.yaml").write_text("x")
    assert find_config() == search / "cwd" / "atp.yaml"
    explicit = search / "mine.yaml"
    explicit.write_text("x")
    monkeypatch.setenv("ATP_CONFIG", str(explicit))
    assert find_config() == explicit
    monkeypatch.setenv("ATP_CONFIG", "")  # empty counts as unset
    assert find_config() == search / "cwd" / "atp.yaml"


def test_find_config_atp_config_must_exist(search: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (search / "cwd" / "atp.yaml").write_text("x")  # no silent fall back to this one
    monkeypatch.setenv("ATP_CONFIG", str(search / "missing.yaml"))
    with pytest.raises(ConfigError) as info:
        find_config()
    assert info.value.source == "$ATP_CONFIG"
    assert "missing.yaml" in str(info.value)


def test_find_config_relative_atp_config(search: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (search / "cwd" / "sub").mkdir()
    (search / "cwd" / "sub" / "c.yaml").write_text("x")
    monkeypatch.setenv("ATP_CONFIG", "sub/c.yaml")
    assert find_config() == search / "cwd" / "sub" / "c.yaml"


def test_find_config_default_lab_dir(search: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_config()
    default = Path("/var/lib/atp-lab/atp.yaml")
    assert found == (default if default.is_file() else None)


def test_load_config_uses_the_search(search: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATP_LAB_DIR", str(search / "nolab"))
    with pytest.raises(ConfigError, match="no configuration found"):
        load_config()
    (search / "cwd" / "atp.yaml").write_text("transport:\n  hosts:\n  - id: here\n")
    cfg = load_config()
    assert [h.id for h in cfg.hosts] == ["here"]
    assert cfg.source == str(search / "cwd" / "atp.yaml")


# --- the typed objects used directly (DESIGN §5) --------------------------------------------


@pytest.mark.parametrize(("host", "uri"), [
    (None, "qemu:///system"), ("localhost", "qemu:///system"),
    ("10.0.0.1", "qemu+ssh://10.0.0.1/system"), ("::1", "qemu+ssh://[::1]/system"),
    ("[2001:db8::2]", "qemu+ssh://[2001:db8::2]/system"),
    ("vmhost.example", "qemu+ssh://vmhost.example/system"),
])
def test_host_default_uri(host: str | None, uri: str) -> None:
    assert str(HostInfo("h", host).effective_uri) == uri


def test_host_with_uri_returns_a_new_host() -> None:
    base = HostInfo("host1", "10.0.0.1", tags=("a",))
    tls = base.with_uri("qemu+tls://10.0.0.1/system")
    assert tls is not base and base.uri is None
    assert tls == HostInfo("host1", "10.0.0.1", parse_libvirt_uri("qemu+tls://10.0.0.1/system"),
                           ("a",))
    assert base.with_uri(LibvirtUri()).effective_uri == LibvirtUri()
    with pytest.raises(ConfigError) as info:
        base.with_uri("qemu+tls://10.0.0.1/nope")
    assert info.value.key_path == "uri" and "path '/nope'" in str(info.value)


def test_host_checks_fields() -> None:
    with pytest.raises(ConfigError, match="not a valid id"):
        HostInfo("")
    with pytest.raises(ConfigError, match="not a valid IPv4"):
        HostInfo("h", "300.1.1.1")
    with pytest.raises(ConfigError, match="one string"):
        HostInfo("h", tags="lab")  # type: ignore[arg-type]
    assert HostInfo("h", tags=["x"]).tags == ("x",)  # type: ignore[arg-type]
    assert HostInfo("h", uri="qemu:///session").uri == LibvirtUri(path="/session")  # type: ignore[arg-type]


def test_spice_vm_checks_fields() -> None:
    vm = SpiceVmConfig("vm1", "[::1]", port=5900, password=Secret(PASSWORD))
    assert vm.server_addr == "::1" and PASSWORD not in repr(vm)
    with pytest.raises(ConfigError, match="must be a Secret") as info:
        SpiceVmConfig("vm1", "h", port=1, password=PASSWORD)  # type: ignore[arg-type]
    assert PASSWORD not in str(info.value)
    discovered = SpiceVmConfig("vm1", host="h1", tls=True, username="u", domain="d")
    assert (discovered.server_addr, discovered.libvirt_name) == (None, "d")


def test_transport_config_lookups_and_checks() -> None:
    cfg = TransportConfig((HostInfo("a", tags=("x",)), HostInfo("b", "10.0.0.2")),
                          (SpiceVmConfig("v1", host="a"),), source="s.yaml")
    assert cfg.host("b").host == "10.0.0.2"
    assert cfg.hosts_tagged("x") == (cfg.host("a"),)
    assert cfg.spice_vm("v1").host == "a"
    with pytest.raises(ConfigError) as info:
        cfg.host("c")
    assert "no host with id 'c'" in str(info.value) and info.value.hint == "known host ids: a, b"
    with pytest.raises(ConfigError) as info:
        cfg.spice_vm("v9")
    assert "no Spice VM with vm_id 'v9'" in str(info.value)
    assert info.value.hint == "known vm_ids: v1"
    with pytest.raises(ConfigError) as info:
        TransportConfig().spice_vm("x")
    assert info.value.hint == "no vm_ids are configured"
    with pytest.raises(ConfigError, match="already used by hosts\\[0\\]") as info:
        TransportConfig((HostInfo("a"), HostInfo("a")))
    assert info.value.key_path == "hosts[1].id"
    with pytest.raises(ConfigError, match="'z' is not a configured host"):
        TransportConfig((HostInfo("a"),), (SpiceVmConfig("v", host="z"),))
