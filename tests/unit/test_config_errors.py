"""atp.yaml errors: every kind names its file, line and key path, with a hint where one helps."""

from __future__ import annotations

from pathlib import Path

import pytest

from atp_notebook.config import parse_config
from atp_notebook.errors import ConfigError
from tests.unit.config_texts import VA, H, V

# --- errors: (yaml, line, key path, fragment) ---------------------------------------------

ERRORS: list[tuple[str, str, int | None, str | None, str]] = [
    ("empty file", "", None, None, "the file is empty"),
    ("only comments", "# nothing\n", None, None, "the file is empty"),
    ("malformed yaml", "transport:\n  hosts: [\n", 3, None, "invalid YAML"),
    ("bad indentation", "transport:\n  hosts:\n - id: a\n   x: 1\n", 3, None,
     "invalid YAML"),
    ("two documents", H + "---\nx: 1\n", 4, None, "expected a single document"),
    ("top level is a list", "- transport\n", 1, None, "expected a mapping, got a list"),
    ("unknown top-level key", "spice: {}\ntransport: {}\n", 1, "spice", "unknown key 'spice'"),
    ("transport missing", "{}\n", 1, None, "missing required key 'transport'"),
    ("transport twice", H + "transport: {}\n", 4, "transport",
     "key 'transport' appears twice (first on line 1)"),
    ("transport null", "transport:\n", 1, "transport", "expected a mapping, got null"),
    ("nothing defined", "transport: {hosts: []}\n", 1, "transport",
     "defines no hosts and no Spice VMs"),
    ("unknown transport key", "transport:\n  host: []\n", 2, "transport.host",
     "unknown key 'host'"),
    ("hosts not a list", "transport:\n  hosts: local\n", 2, "transport.hosts",
     "expected a list, got a string ('local')"),
    ("host entry not a mapping", "transport:\n  hosts:\n  - local\n", 3,
     "transport.hosts[0]", "expected a mapping, got a string"),
    ("host id missing", "transport:\n  hosts:\n  - host: h\n", 3, "transport.hosts[0]",
     "missing required key 'id'"),
    ("host unknown key", H + "    prot: 1\n", 4, "transport.hosts[0].prot",
     "unknown key 'prot'"),
    ("host duplicate key", H + "    id: b\n", 4, "transport.hosts[0].id",
     "key 'id' appears twice (first on line 3)"),
    ("host key not a name", H + "    1: x\n", 4, "transport.hosts[0]",
     "keys must be names, got an integer"),
    ("merge key", H + "    <<: {host: h}\n", 4, "transport.hosts[0].<<", "unknown key '<<'"),
    ("host id not a string", "transport:\n  hosts:\n  - id: 12\n", 3, "transport.hosts[0].id",
     "expected a string, got an integer ('12')"),
    ("host id invalid", "transport:\n  hosts:\n  - id: 'bad id'\n", 3,
     "transport.hosts[0].id", "'bad id' is not a valid id"),
    ("host address invalid", H + "    host: 999.1.1.1\n", 4, "transport.hosts[0].host",
     "'999.1.1.1' is not a valid IPv4 address"),
    ("uri invalid", H + "    uri: qemu+tcp://h:70000/system\n", 4, "transport.hosts[0].uri",
     "port 70000 is out of range 1-65535 in 'qemu+tcp://h:70000/system'"),
    ("uri unknown param", H + "\n    uri: qemu+ssh://h/system?bogus=1\n", 5,
     "transport.hosts[0].uri", "query parameter 'bogus' is unknown"),
    ("uri not a string", H + "    uri: [qemu]\n", 4, "transport.hosts[0].uri",
     "expected a string, got a list"),
    ("tags not a list", H + "    tags: lab\n", 4, "transport.hosts[0].tags",
     "expected a list, got a string ('lab')"),
    ("tag not a string", H + "    tags: [lab, 7]\n", 4, "transport.hosts[0].tags[1]",
     "expected a string, got an integer"),
    ("tag twice", H + "    tags: [lab, lab]\n", 4, "transport.hosts[0].tags",
     "'lab' is listed twice"),
    ("duplicate host id", H + "  - id: b\n  - id: a\n", 5, "transport.hosts[2].id",
     "id 'a' is already used by transport.hosts[0] (line 3)"),
    ("spice without vms", "transport:\n  spice: {}\n", 2, "transport.spice",
     "missing required key 'vms'"),
    ("spice unknown key", "transport:\n  spice:\n    vm: []\n", 3, "transport.spice.vm",
     "unknown key 'vm'"),
    ("vm_id missing", "transport:\n  spice:\n    vms:\n    - port: 1\n", 4,
     "transport.spice.vms[0]", "missing required key 'vm_id'"),
    ("vm unknown key with suggestion", VA + "      prot: 5900\n", 6,
     "transport.spice.vms[0].prot", "unknown key 'prot'"),
    ("port not a number", VA + "      port: abc\n", 6, "transport.spice.vms[0].port",
     "expected an integer, got a string ('abc')"),
    ("port quoted", VA + "      port: '5900'\n", 6, "transport.spice.vms[0].port",
     "expected an integer, got a string ('5900')"),
    ("port a boolean", VA + "      port: true\n", 6, "transport.spice.vms[0].port",
     "expected an integer, got a boolean"),
    ("port out of range", VA + "      port: 70000\n", 6, "transport.spice.vms[0].port",
     "70000 is out of range 1-65535"),
    ("tls_port zero", VA + "      tls_port: 0\n", 6, "transport.spice.vms[0].tls_port",
     "0 is out of range 1-65535"),
    ("tls not a boolean", VA + "      port: 1\n      tls: 'yes please'\n", 7,
     "transport.spice.vms[0].tls", "expected true or false"),
    ("server_addr null", V + "      server_addr:\n      port: 1\n", 5,
     "transport.spice.vms[0].server_addr", "expected a string, got null"),
    ("server_addr invalid", V + "      server_addr: -x-\n      port: 1\n", 5,
     "transport.spice.vms[0].server_addr", "is not a valid host name"),
    ("server_addr missing", V + "      port: 5900\n", 4, "transport.spice.vms[0].server_addr",
     "is required unless host is given"),
    ("no port", VA, 4, "transport.spice.vms[0].port", "needs port or tls_port"),
    ("tls without tls_port", VA + "      port: 5900\n      tls: true\n", 7,
     "transport.spice.vms[0].tls", "is true but tls_port is not given"),
    ("tls false with only tls_port", VA + "      tls_port: 5901\n      tls: false\n", 7,
     "transport.spice.vms[0].tls", "is false but only tls_port is given"),
    ("ca_file missing", VA + "      tls_port: 1\n      ca_file: nope.pem\n", 7,
     "transport.spice.vms[0].ca_file", "nope.pem' does not exist"),
    ("ca_file a directory", VA + "      tls_port: 1\n      ca_file: .\n", 7,
     "transport.spice.vms[0].ca_file", "is a directory"),
    ("ca_file without TLS", VA + "      port: 1\n      ca_file: ca.pem\n", 7,
     "transport.spice.vms[0].ca_file", "is given but the VM has no TLS port"),
    ("server_name with a port", VA + "      tls_port: 1\n      server_name: 'a:1'\n", 7,
     "transport.spice.vms[0].server_name", "must be a host name (no port)"),
    ("sasl without TLS", VA + "      port: 1\n      username: u\n      password_file: pw\n", 7,
     "transport.spice.vms[0].username", "SASL runs over TLS only"),
    ("sasl without password", VA + "      tls_port: 1\n      username: u\n", 7,
     "transport.spice.vms[0].username", "SASL needs a password too"),
    ("domain without host", VA + "      port: 1\n      domain: d\n", 7,
     "transport.spice.vms[0].domain", "names a libvirt domain but no host"),
    ("dangling host reference", H + "  spice:\n    vms:\n    - vm_id: v\n      host: nothere\n",
     7, "transport.spice.vms[0].host", "'nothere' is not a configured host"),
    ("duplicate vm_id", VA + "      port: 1\n    - vm_id: v\n      server_addr: h\n"
     "      port: 2\n", 7, "transport.spice.vms[1].vm_id",
     "vm_id 'v' is already used by transport.spice.vms[0] (line 4)"),
    ("unknown channel", VA + "      port: 1\n      channels: [main, bogus]\n", 7,
     "transport.spice.vms[0].channels", "'bogus' is not a known name"),
    ("channels empty", VA + "      port: 1\n      channels: []\n", 7,
     "transport.spice.vms[0].channels", "is empty"),
    ("channel twice", VA + "      port: 1\n      channels: [main, main]\n", 7,
     "transport.spice.vms[0].channels", "'main' is listed twice"),
    ("two password sources", VA + "      port: 1\n      password_env: X\n"
     "      password_file: pw\n", 8, "transport.spice.vms[0].password_file",
     "at most one of password, password_env, password_file, not both password_env and "
     "password_file"),
    ("password_env unset", VA + "      port: 1\n      password_env: ATP_TEST_UNSET_VAR\n", 7,
     "transport.spice.vms[0].password_env", "environment variable ATP_TEST_UNSET_VAR is not set"),
    ("password_env bad name", VA + "      port: 1\n      password_env: 'A-B'\n", 7,
     "transport.spice.vms[0].password_env", "'A-B' is not an environment variable name"),
    ("password_file missing", VA + "      port: 1\n      password_file: missing-pw\n", 7,
     "transport.spice.vms[0].password_file", "missing-pw' does not exist"),
    ("password_file empty", VA + "      port: 1\n      password_file: empty-pw\n", 7,
     "transport.spice.vms[0].password_file", "empty-pw' is empty"),
    ("password empty", VA + "      port: 1\n      password: ''\n", 7,
     "transport.spice.vms[0].password", "is empty"),
    # client-side files named in a URI (WORK: the test's work directory)
    ("keyfile missing", H + "    uri: qemu+ssh://h/system?keyfile=WORK/no-key\n", 4,
     "transport.hosts[0].uri", "keyfile 'WORK/no-key' does not exist"),
    ("keyfile a directory", H + "    uri: qemu+libssh2://h/system?keyfile=WORK\n", 4,
     "transport.hosts[0].uri", "keyfile 'WORK' is a directory"),
    ("pkipath missing", H + "    uri: qemu+tls://h/system?pkipath=WORK/no-pki\n", 4,
     "transport.hosts[0].uri", "pkipath 'WORK/no-pki' does not exist"),
    ("pkipath a file", H + "    uri: qemu+tls://h/system?pkipath=WORK/ca.pem\n", 4,
     "transport.hosts[0].uri", "pkipath 'WORK/ca.pem' is a file, not a directory"),
    ("pkipath without a CA", H + "    uri: qemu+tls://h/system?pkipath=WORK\n", 4,
     "transport.hosts[0].uri", "pkipath 'WORK' has no cacert.pem"),
]


@pytest.mark.parametrize(("text", "line", "key_path", "fragment"),
                         [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error_names_file_line_and_key(
    workdir: Path, monkeypatch: pytest.MonkeyPatch,
    text: str, line: int | None, key_path: str | None, fragment: str,
) -> None:
    monkeypatch.delenv("ATP_TEST_UNSET_VAR", raising=False)
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace("WORK", str(workdir)), "cfg.yaml", base_dir=workdir)
    err = info.value
    assert (err.source, err.line, err.key_path) == ("cfg.yaml", line, key_path)
    assert fragment.replace("WORK", str(workdir)) in err.message
    where = "cfg.yaml" if line is None else f"cfg.yaml:{line}"
    assert str(err).startswith(where + (f": {key_path}: " if key_path else ": "))


def test_unknown_key_hints_the_allowed_ones(workdir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(VA + "      prot: 5900\n", base_dir=workdir)
    assert info.value.hint is not None
    assert info.value.hint.startswith("did you mean 'port'?")
    for key in ("vm_id", "tls_port", "password_env", "password_file", "channels", "domain"):
        assert key in info.value.hint


def test_dangling_host_hint_lists_known_ids(workdir: Path) -> None:
    text = H + "  - id: b\n  spice:\n    vms:\n    - vm_id: v\n      host: c\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, base_dir=workdir)
    assert info.value.hint == "known host ids: a, b"


def test_parse_config_default_source_is_string(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^<string>:1: transport: expected a mapping"):
        parse_config("transport: 3\n")
