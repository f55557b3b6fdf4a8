"""libvirt URI parsing: good URIs with their fields and str() round trip, bad ones with the
part the error must name, the plaintext-tcp warning, and secrets kept out of errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from atp_notebook.config.uri import LibvirtUri, is_loopback, parse_host, parse_libvirt_uri
from atp_notebook.errors import ConfigError

LAB_TLS = "qemu+tls://127.0.0.1/system?pkipath=/var/lib/atp-lab/pki/libvirt-client"
LAB_SSH = ("qemu+ssh://root@127.0.0.1:2222/system"
           "?keyfile=/var/lib/atp-lab/ssh/id_ed25519&no_verify=1&no_tty=1")

# (text, expected fields, canonical str() — None when it is the text itself)
GOOD: list[tuple[str, dict[str, Any], str | None]] = [
    ("qemu:///system", {"transport": None, "host": None, "path": "/system"}, None),
    ("qemu:///session", {"transport": None, "path": "/session"}, None),
    ("qemu+unix:///system", {"transport": "unix", "host": None}, None),
    ("qemu+unix:///system?socket=/opt/libvirt/run/libvirt/libvirt-sock",
     {"transport": "unix", "params": (("socket", "/opt/libvirt/run/libvirt/libvirt-sock"),)},
     None),
    # the lab's four hosts (DESIGN §6)
    ("qemu+tcp://127.0.0.1/system", {"transport": "tcp", "host": "127.0.0.1", "port": None},
     None),
    (LAB_TLS, {"transport": "tls", "host": "127.0.0.1",
               "params": (("pkipath", "/var/lib/atp-lab/pki/libvirt-client"),)}, None),
    (LAB_SSH, {"transport": "ssh", "user": "root", "host": "127.0.0.1", "port": 2222,
               "params": (("keyfile", "/var/lib/atp-lab/ssh/id_ed25519"), ("no_verify", "1"),
                          ("no_tty", "1"))}, None),
    # DESIGN §5
    ("qemu+tls://10.0.0.1/system", {"transport": "tls", "host": "10.0.0.1"}, None),
    ("qemu+tcp://[::1]:16509/system", {"transport": "tcp", "host": "::1", "port": 16509}, None),
    ("qemu+tls://[2001:db8::1]:16600/system?no_verify=1&no_sanity=1"
     "&tls_priority=NORMAL:-VERS-SSL3.0",
     {"host": "2001:db8::1", "port": 16600,
      "params": (("no_verify", "1"), ("no_sanity", "1"),
                 ("tls_priority", "NORMAL:-VERS-SSL3.0"))}, None),
    ("qemu+ssh://root@[fe80::1]/system", {"user": "root", "host": "fe80::1"}, None),
    ("qemu+ssh://user@host/system", {"user": "user", "host": "host", "port": None}, None),
    ("qemu+ssh://host.example.com/session", {"host": "host.example.com", "path": "/session"},
     None),
    ("qemu+ssh://h_1.lab./system", {"host": "h_1.lab."}, None),
    ("qemu+libssh2://user@host/system?known_hosts=/home/user/.ssh/known_hosts",
     {"transport": "libssh2", "params": (("known_hosts", "/home/user/.ssh/known_hosts"),)},
     None),
    ("qemu+libssh://u@h/system?known_hosts_verify=auto&sshauth=privkey,agent",
     {"transport": "libssh",
      "params": (("known_hosts_verify", "auto"), ("sshauth", "privkey,agent"))}, None),
    ("qemu+ssh://h/system?command=/opt/openssh/bin/ssh&netcat=/opt/nc&proxy=netcat"
     "&mode=legacy&socket=/run/libvirt/libvirt-sock",
     {"params": (("command", "/opt/openssh/bin/ssh"), ("netcat", "/opt/nc"),
                 ("proxy", "netcat"), ("mode", "legacy"),
                 ("socket", "/run/libvirt/libvirt-sock"))}, None),
    ("qemu:///system?mode=direct", {"transport": None, "params": (("mode", "direct"),)}, None),
    ("qemu+ssh://h/system?name=qemu:///system", {"params": (("name", "qemu:///system"),)},
     None),
    ("qemu+tcp://host-1.lab:5000/system", {"host": "host-1.lab", "port": 5000}, None),
    # normalised forms: scheme case, parameter-name case, empty query, percent-encoding
    ("QEMU+TCP://localhost/system", {"driver": "qemu", "transport": "tcp"},
     "qemu+tcp://localhost/system"),
    ("qemu+tls://h/system?NO_VERIFY=1", {"params": (("no_verify", "1"),)},
     "qemu+tls://h/system?no_verify=1"),
    ("qemu:///system?", {"params": ()}, "qemu:///system"),
    ("qemu:///%73ystem", {"path": "/system"}, "qemu:///system"),
    ("qemu+unix:///system?socket=/run/my%20dir/libvirt-sock",
     {"params": (("socket", "/run/my dir/libvirt-sock"),)}, None),
    ("qemu+ssh://h/system?keyfile=/home/j%C3%BCrgen/id",
     {"params": (("keyfile", "/home/jürgen/id"),)}, None),
    ("qemu+tls://h/system?tls_priority=NORMAL:%2BVERS-TLS1.3",
     {"params": (("tls_priority", "NORMAL:+VERS-TLS1.3"),)}, None),
    ("qemu+tls://h/system?pkipath=/a%26b", {"params": (("pkipath", "/a&b"),)}, None),
]


@pytest.mark.parametrize(("text", "fields", "canonical"), GOOD, ids=[g[0] for g in GOOD])
def test_good_uri_fields_and_round_trip(
    text: str, fields: dict[str, Any], canonical: str | None
) -> None:
    uri = parse_libvirt_uri(text)
    for name, expected in fields.items():
        assert getattr(uri, name) == expected, name
    assert uri.driver == "qemu"
    assert str(uri) == (canonical or text)
    assert parse_libvirt_uri(str(uri)) == uri


BAD: list[tuple[str, str]] = [
    ("", "URI is empty"),
    ("qemu+tcp://h:70000/system",
     "port 70000 is out of range 1-65535 in 'qemu+tcp://h:70000/system'"),
    ("qemu+tcp://h:0/system", "port 0 is out of range 1-65535"),
    ("qemu+tcp://h:abc/system", "port 'abc' is not a number"),
    ("qemu+tcp://h:/system", "port is empty after ':'"),
    ("qemu+tcp://:16509/system", "port given without a host"),
    ("qemu+tcp:///system", "host is missing for transport 'tcp'"),
    ("qemu+ssh:///system", "host is missing for transport 'ssh'"),
    ("qemu+ssh://root@/system", "host is missing after the user"),
    ("qemu+ssh://@h/system", "user is empty"),
    ("qemu+foo://h/system", "transport 'foo' is unknown"),
    ("qemu+ext:///system?command=/bin/nc", "transport 'ext' is not supported"),
    ("xen:///system", "driver 'xen' is not supported"),
    ("qemu+ssh+tls://h/system", "has more than one '+'"),
    ("qemu+://h/system", "transport is empty after '+'"),
    ("qemu:/system", "not a libvirt URI"),
    ("/system", "not a libvirt URI"),
    ("qemu+tcp://h", "path is missing"),
    ("qemu+tcp://h/", "path missing"),
    ("qemu:///foo", "path '/foo' is not supported"),
    ("qemu:///system/", "path '/system/' is not supported"),
    ("qemu:///system#frag", "'#fragment' is not allowed"),
    ("qemu://h/system", "host 'h' given without a transport"),
    ("qemu+unix://h/system", "host 'h' is not allowed with transport 'unix'"),
    ("qemu+tcp://::1/system", "IPv6 host '::1' must be in brackets"),
    ("qemu+tcp://[::1/system", "missing its closing ']'"),
    ("qemu+tcp://[::1]x/system", "unexpected 'x' after the IPv6 host"),
    ("qemu+tcp://[10.0.0.1]/system", "host '[10.0.0.1]' is not an IPv6 address"),
    ("qemu+tcp://[::g]/system", "host '[::g]' is not a valid IPv6 address"),
    ("qemu+tcp://[fe80::1%25eth0]/system", "zone id"),
    ("qemu+tcp://999.1.1.1/system", "host '999.1.1.1' is not a valid IPv4 address"),
    ("qemu+tcp://-bad.example/system", "host '-bad.example' is not a valid host name"),
    ("qemu+tcp://h.123/system", "the last label is all digits"),
    ("qemu+tcp://h%41/system", "must not be percent-encoded"),
    ("qemu+tcp://bad host/system", "whitespace"),
    ("qemu+ssh://h/system?keyfile=/j\u00fcrgen", "non-ASCII"),
    ("qemu+ssh://-oProxyCommand=x@h/system", "is not a valid user name"),
    ("qemu+ssh://h/system?foo=1", "query parameter 'foo' is unknown"),
    ("qemu+tls://h/system?no_verify=yes", "query parameter 'no_verify' must be 0 or 1, got 'yes'"),
    ("qemu+ssh://h/system?no_tty=2", "query parameter 'no_tty' must be 0 or 1"),
    ("qemu+ssh://h/system?keyfile=/a&keyfile=/b", "query parameter 'keyfile' is given twice"),
    ("qemu+ssh://h/system?no_tty=1&NO_TTY=1", "query parameter 'no_tty' is given twice"),
    ("qemu+tcp://h/system?pkipath=/x",
     "query parameter 'pkipath' does not apply to transport 'tcp'"),
    ("qemu:///system?keyfile=/x",
     "query parameter 'keyfile' does not apply to transport local (no transport)"),
    ("qemu+libssh://h/system?no_verify=1",
     "query parameter 'no_verify' does not apply to transport 'libssh'"),
    ("qemu+ssh://h/system?keyfile=id_rsa", "must be an absolute path, got 'id_rsa'"),
    ("qemu+libssh://h/system?known_hosts_verify=maybe",
     "must be one of normal, auto, ignore, got 'maybe'"),
    ("qemu+ssh://h/system?proxy=socks", "must be one of auto, netcat, native"),
    ("qemu:///system?mode=fast", "must be one of auto, legacy, direct"),
    ("qemu+libssh2://h/system?sshauth=agent,magic", "has unknown item 'magic'"),
    ("qemu+libssh2://h/system?sshauth=agent,agent", "lists an item twice"),
    ("qemu+ssh://h/system?proxy=native&netcat=nc", "'netcat' conflicts with proxy=native"),
    ("qemu+ssh://h/system?mode=", "query parameter 'mode' has no value"),
    ("qemu+ssh://h/system?no_tty", "query parameter 'no_tty' has no value"),
    ("qemu+ssh://h/system?no_tty=1&&mode=auto", "empty parameter"),
    ("qemu+ssh://h/system?no_tty=1;mode=auto", "uses ';' as a separator"),
    ("qemu+ssh://h/system?=x", "parameter without a name"),
    ("qemu+ssh://h/system?keyfile=/a%zz", "query parameter 'keyfile' has a bad percent-escape"),
    ("qemu+ssh://h/system?keyfile=/a%00b", "contains a control character"),
    ("qemu+ssh://h/system?keyfile=/a%FF", "does not decode as UTF-8"),
    ("qemu:///%ZZsystem", "path has a bad percent-escape"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD, ids=[b[0] or "<empty>" for b in BAD])
def test_bad_uri_names_the_part(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_libvirt_uri(text)
    assert fragment in str(info.value)


def test_unknown_parameter_hint_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_libvirt_uri("qemu+ssh://h/system?foo=1")
    assert info.value.hint is not None
    for name in ("keyfile", "pkipath", "no_verify", "sshauth", "known_hosts_verify", "proxy"):
        assert name in info.value.hint


@pytest.mark.parametrize("text", [
    "qemu+ssh://h/system?password=hunter2-secret",
    "qemu+ssh://h/system?keyfile=/k&ssh_passphrase=hunter2-secret",
    "qemu+ssh://alice:hunter2-secret@h/system",
    "qemu+tcp://h:99999/system?Password=hunter2-secret",
])
def test_password_like_values_never_echoed(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_libvirt_uri(text)
    assert "hunter2-secret" not in str(info.value)
    assert "***" in str(info.value)


def test_invalid_field_errors_quote_the_text_as_given() -> None:
    with pytest.raises(ConfigError) as info:
        parse_libvirt_uri("QEMU+TCP://h:70000/system")
    assert "in 'QEMU+TCP://h:70000/system'" in str(info.value)


@pytest.mark.parametrize(("text", "port", "local"), [
    ("qemu:///system", None, True),
    ("qemu+unix:///system", None, True),
    ("qemu+tcp://127.0.0.1/system", 16509, False),
    ("qemu+tls://h/system", 16514, False),
    ("qemu+ssh://h/system", 22, False),
    ("qemu+libssh2://h/system", 22, False),
    ("qemu+libssh://h/system", 22, False),
    ("qemu+ssh://h:2222/system", 2222, False),
    ("qemu+tls://h:1/system", 1, False),
])
def test_effective_port_and_locality(text: str, port: int | None, local: bool) -> None:
    uri = parse_libvirt_uri(text)
    assert uri.effective_port == port
    assert uri.is_local is local


@pytest.mark.parametrize("host", ["10.0.0.1", "[2001:db8::5]", "libvirt.example.com"])
def test_plaintext_tcp_to_a_remote_host_warns(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="atp.config"):
        parse_libvirt_uri(f"qemu+tcp://{host}/system")
    records = [r for r in caplog.records if r.name == "atp.config"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "plain text" in records[0].getMessage()
    assert host in records[0].getMessage()


@pytest.mark.parametrize("text", [
    "qemu+tcp://127.0.0.1/system", "qemu+tcp://127.8.9.10:5000/system",
    "qemu+tcp://[::1]:16509/system", "qemu+tcp://localhost/system",
    "qemu+tcp://[::ffff:127.0.0.1]/system", "qemu+tls://10.0.0.1/system",
    "qemu+ssh://10.0.0.1/system",
])
def test_no_warning_on_loopback_or_encrypted(
    text: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="atp.config"):
        parse_libvirt_uri(text)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_direct_construction_is_checked_and_formats() -> None:
    uri = LibvirtUri(transport="ssh", user="root", host="10.0.0.1", port=2222,
                     params=(("keyfile", "/k"),))
    assert str(uri) == "qemu+ssh://root@10.0.0.1:2222/system?keyfile=/k"
    assert LibvirtUri() == parse_libvirt_uri("qemu:///system")
    assert str(LibvirtUri(transport="tcp", host="::1")) == "qemu+tcp://[::1]/system"
    with pytest.raises(ConfigError, match="host is missing for transport 'tcp'"):
        LibvirtUri(transport="tcp")
    with pytest.raises(ConfigError, match="port 70000 is out of range"):
        LibvirtUri(transport="tcp", host="h", port=70000)


def test_params_accessor_and_hashable() -> None:
    uri = parse_libvirt_uri(LAB_SSH)
    assert uri.param("keyfile") == "/var/lib/atp-lab/ssh/id_ed25519"
    assert uri.param("NO_TTY") == "1"
    assert uri.param("pkipath") is None
    assert len({uri, parse_libvirt_uri(LAB_SSH)}) == 1


def test_not_a_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be a string, got int"):
        parse_libvirt_uri(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "bare"), [
    ("10.0.0.1", "10.0.0.1"), ("::1", "::1"), ("[::1]", "::1"), ("vm.example", "vm.example"),
])
def test_parse_host_accepts(text: str, bare: str) -> None:
    assert parse_host(text) == bare


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "is empty"), ("1.2.3", "not a valid IPv4"), ("a..b", "not a valid host name"),
    ("[10.0.0.1]", "only IPv6 goes in brackets"), ("x" * 64, "not a valid host name"),
])
def test_parse_host_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_host(text, key_path="server_addr")
    assert info.value.key_path == "server_addr"


@pytest.mark.parametrize(("host", "loopback"), [
    (None, True), ("localhost", True), ("LOCALHOST.", True), ("127.0.0.1", True),
    ("127.255.0.9", True), ("::1", True), ("::ffff:127.0.0.1", True), ("10.0.0.1", False),
    ("::2", False), ("localhost.example", False), ("128.0.0.1", False),
])
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
