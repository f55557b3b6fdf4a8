"""Unit tests of the lab PKI: layout, modes, cert profiles, idempotence, repair, and openssl."""

from __future__ import annotations

import ipaddress
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atp_notebook.errors import LabError
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.pki import (
    LIBVIRT_CA_CN,
    LabPki,
    ensure_lab_pki,
    issue_server_cert,
    make_ca,
    pem_cert,
    pem_key,
)

# Paths relative to the lab root.
LV_CA, LV_CA_KEY = "pki/libvirt-ca/cacert.pem", "pki/libvirt-ca/cakey.pem"
SRV_CA = "pki/libvirt-server/cacert.pem"
SRV, SRV_KEY = "pki/libvirt-server/servercert.pem", "pki/libvirt-server/serverkey.pem"
CLI_CA = "pki/libvirt-client/cacert.pem"
CLI, CLI_KEY = "pki/libvirt-client/clientcert.pem", "pki/libvirt-client/clientkey.pem"
SP_CA, SP_CA_KEY = "pki/spice-ca/cacert.pem", "pki/spice-ca/cakey.pem"
SP_COPY = "pki/spice/ca-cert.pem"
SP, SP_KEY = "pki/spice/server-cert.pem", "pki/spice/server-key.pem"
SSH_KEY, SSH_PUB, AUTH = "ssh/id_ed25519", "ssh/id_ed25519.pub", "ssh/authorized_keys"
HOST_KEY, HOST_PUB = "ssh/ssh_host_ed25519_key", "ssh/ssh_host_ed25519_key.pub"

EXPECTED_MODES = {
    LV_CA: 0o644,
    LV_CA_KEY: 0o600,
    SRV_CA: 0o644,
    SRV: 0o644,
    SRV_KEY: 0o600,
    CLI_CA: 0o644,
    CLI: 0o644,
    CLI_KEY: 0o600,
    SP_CA: 0o644,
    SP_CA_KEY: 0o600,
    SP_COPY: 0o644,
    SP: 0o644,
    SP_KEY: 0o600,
    SSH_KEY: 0o600,
    SSH_PUB: 0o644,
    AUTH: 0o600,
    HOST_KEY: 0o600,
    HOST_PUB: 0o644,
}
KEY_DIRS = (
    "pki/libvirt-ca",
    "pki/libvirt-server",
    "pki/libvirt-client",
    "pki/spice-ca",
    "pki/spice",
    "ssh",
)
CERTS = (LV_CA, SRV, CLI, SP_CA, SP)
CA_COPIES = (SRV_CA, CLI_CA, SP_COPY)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
VALIDITY = timedelta(days=3650)

# (file, what ensure_lab_pki must rewrite once that file is lost or damaged)
DEPENDANTS: list[tuple[str, set[str]]] = [
    (LV_CA_KEY, {LV_CA_KEY, LV_CA, SRV, CLI, SRV_CA, CLI_CA}),
    (LV_CA, {LV_CA, SRV_CA, CLI_CA}),  # same key and name: the old leaves still verify
    (SRV_KEY, {SRV_KEY, SRV}),
    (SRV, {SRV}),
    (SRV_CA, {SRV_CA}),
    (CLI_KEY, {CLI_KEY, CLI}),
    (CLI_CA, {CLI_CA}),
    (SP_CA_KEY, {SP_CA_KEY, SP_CA, SP, SP_COPY}),
    (SP_KEY, {SP_KEY, SP}),
    (SP_COPY, {SP_COPY}),
    (SSH_KEY, {SSH_KEY, SSH_PUB, AUTH}),
    (SSH_PUB, {SSH_PUB}),
    (AUTH, {AUTH}),
    (HOST_KEY, {HOST_KEY, HOST_PUB}),
    (HOST_PUB, {HOST_PUB}),
]

Snapshot = dict[str, tuple[bytes, int, int]]


def _snapshot(root: Path) -> Snapshot:
    """Content, inode and mtime of every file: any rewrite changes at least one of them."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _changed(before: Snapshot, after: Snapshot) -> set[str]:
    return {name for name, state in after.items() if before.get(name) != state}


def _cert(root: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((root / name).read_bytes())


def _rsa_key(root: Path, name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((root / name).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _ext(
    cert: x509.Certificate, cls: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(cls)


def _assert_sound(root: Path, now: datetime) -> None:
    """Every cert matches its key, verifies against its CA and lives past ``now`` + 30 days."""
    for cert_name, key_name, ca_name in (
        (LV_CA, LV_CA_KEY, LV_CA),
        (SRV, SRV_KEY, LV_CA),
        (CLI, CLI_KEY, LV_CA),
        (SP_CA, SP_CA_KEY, SP_CA),
        (SP, SP_KEY, SP_CA),
    ):
        cert = _cert(root, cert_name)
        assert cert.public_key() == _rsa_key(root, key_name).public_key(), cert_name
        cert.verify_directly_issued_by(_cert(root, ca_name))
        assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc - timedelta(days=30)
    for copy, ca in ((SRV_CA, LV_CA), (CLI_CA, LV_CA), (SP_COPY, SP_CA)):
        assert (root / copy).read_bytes() == (root / ca).read_bytes(), copy


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One lab made at T0; RSA key generation is what makes these tests slow."""
    path = tmp_path_factory.mktemp("pristine")
    ensure_lab_pki(LabPaths(path), now=T0)
    return path


@pytest.fixture
def root(tmp_path: Path, pristine: Path) -> Path:
    """A private copy of the pristine lab, modes and mtimes kept, for a test to damage."""
    lab = tmp_path / "lab"
    shutil.copytree(pristine, lab)
    return lab


# --- layout and modes ------------------------------------------------------------------------


def test_every_file_exists_with_its_mode_and_nothing_else(tmp_path: Path) -> None:
    ensure_lab_pki(LabPaths(tmp_path))
    root = tmp_path
    files = {
        str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in root.rglob("*") if p.is_file()
    }
    assert files == EXPECTED_MODES  # also: no temp files left behind
    assert {d: (root / d).stat().st_mode & 0o777 for d in KEY_DIRS} == dict.fromkeys(
        KEY_DIRS, 0o700
    )


def test_lab_pki_names_the_files_it_made(tmp_path: Path) -> None:
    pki = ensure_lab_pki(LabPaths(tmp_path), now=T0)
    assert {str(p.relative_to(tmp_path)) for p in pki.files()} == set(EXPECTED_MODES)
    assert set(pki.written) == set(pki.files())
    assert pki.libvirt_client_cert.parent == LabPaths(tmp_path).libvirt_client_pki
    assert pki.spice_server_key.parent == LabPaths(tmp_path).spice_pki
    assert replace(pki, written=()) == LabPki.at(LabPaths(tmp_path))


def test_loose_modes_are_tightened_without_rewriting(root: Path) -> None:
    (root / SRV_KEY).chmod(0o644)
    (root / "ssh").chmod(0o755)
    before = _snapshot(root)
    pki = ensure_lab_pki(LabPaths(root), now=T0)
    assert (root / SRV_KEY).stat().st_mode & 0o777 == 0o600
    assert (root / "ssh").stat().st_mode & 0o777 == 0o700
    assert _snapshot(root) == before
    assert pki.written == ()


# --- certificate contents ----------------------------------------------------------------------


@pytest.mark.parametrize(("cert", "ca"), [(SRV, LV_CA), (CLI, LV_CA), (SP, SP_CA)])
def test_leaf_verifies_against_its_ca(root: Path, cert: str, ca: str) -> None:
    _cert(root, cert).verify_directly_issued_by(_cert(root, ca))


@pytest.mark.parametrize(("cert", "foreign_ca"), [(SP, LV_CA), (SRV, SP_CA), (CLI, SP_CA)])
def test_leaf_does_not_verify_against_the_other_ca(root: Path, cert: str, foreign_ca: str) -> None:
    with pytest.raises((ValueError, InvalidSignature)):
        _cert(root, cert).verify_directly_issued_by(_cert(root, foreign_ca))


@pytest.mark.parametrize(("copy", "ca"), [(SRV_CA, LV_CA), (CLI_CA, LV_CA), (SP_COPY, SP_CA)])
def test_ca_copies_are_the_ca(root: Path, copy: str, ca: str) -> None:
    assert (root / copy).read_bytes() == (root / ca).read_bytes()


@pytest.mark.parametrize(("ca", "cn"), [(LV_CA, "atp-lab libvirt CA"), (SP_CA, "atp-lab spice CA")])
def test_ca_profile(root: Path, ca: str, cn: str) -> None:
    cert = _cert(root, ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and isinstance(bc.value, x509.BasicConstraints) and bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    key = _rsa_key(root, ca.replace("cacert", "cakey"))
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert _ext(cert, x509.SubjectKeyIdentifier).value == ski


LOOPBACK_SAN: set[x509.GeneralName] = {
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
}
# A name that is not an address, and not localhost: a client dialling localhost must be
# told the name (server_name) to verify the Spice server.
SPICE_SAN: set[x509.GeneralName] = {
    x509.DNSName("spice.atp-lab.test"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
}


@pytest.mark.parametrize(
    ("name", "ca", "cn", "purpose", "sans"),
    [
        (SRV, LV_CA, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, LOOPBACK_SAN),
        (CLI, LV_CA, "atp-lab client", ExtendedKeyUsageOID.CLIENT_AUTH, None),
        (SP, SP_CA, "spice.atp-lab.test", ExtendedKeyUsageOID.SERVER_AUTH, SPICE_SAN),
    ],
)
def test_leaf_profile(
    root: Path,
    name: str,
    ca: str,
    cn: str,
    purpose: x509.ObjectIdentifier,
    sans: set[x509.GeneralName] | None,
) -> None:
    cert, ca_cert = _cert(root, name), _cert(root, ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    assert cert.issuer == ca_cert.subject
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and isinstance(bc.value, x509.BasicConstraints) and not bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature and ku.value.key_encipherment
    assert not ku.value.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [purpose]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    if sans is None:
        with pytest.raises(x509.ExtensionNotFound):
            _ext(cert, x509.SubjectAlternativeName)
    else:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(san) == sans


@pytest.mark.parametrize(
    ("cert", "key"),
    [(LV_CA, LV_CA_KEY), (SRV, SRV_KEY), (CLI, CLI_KEY), (SP_CA, SP_CA_KEY), (SP, SP_KEY)],
)
def test_key_is_unencrypted_pkcs8_rsa2048_matching_its_cert(
    root: Path, cert: str, key: str
) -> None:
    assert (root / key).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    private = _rsa_key(root, key)
    assert private.key_size == 2048
    assert _cert(root, cert).public_key() == private.public_key()


def test_validity_signature_and_serials(root: Path) -> None:
    certs = [_cert(root, name) for name in CERTS]
    for cert in certs:
        assert cert.not_valid_before_utc == T0 - timedelta(hours=1)
        assert cert.not_valid_after_utc == T0 + VALIDITY
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        assert cert.version == x509.Version.v3
    assert len({c.serial_number for c in certs}) == len(certs)
    assert all(c.serial_number > 2**64 for c in certs)  # random 159-bit, not a counter


# --- idempotence and repair ------------------------------------------------------------------


def test_second_run_leaves_every_file_untouched(tmp_path: Path) -> None:
    root = tmp_path
    ensure_lab_pki(LabPaths(root), now=T0)
    before = _snapshot(root)
    pki = ensure_lab_pki(LabPaths(root), now=T0 + timedelta(days=1))
    assert _snapshot(root) == before
    assert pki.written == ()


@pytest.mark.parametrize("damage", ["delete", "truncate"])
@pytest.mark.parametrize(("name", "dependants"), DEPENDANTS, ids=[n for n, _ in DEPENDANTS])
def test_losing_a_file_redoes_only_it_and_its_dependants(
    root: Path, name: str, dependants: set[str], damage: str
) -> None:
    path = root / name
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = _snapshot(root)
    pki = ensure_lab_pki(LabPaths(root), now=T0)
    assert _changed(before, _snapshot(root)) == dependants
    assert {str(p.relative_to(root)) for p in pki.written} == dependants
    _assert_sound(root, T0)


@pytest.mark.parametrize(
    ("days_left", "renewed"),
    [(31, False), (30, True), (29, True), (-5, True)],
)
def test_certs_near_expiry_are_renewed_keys_kept(root: Path, days_left: int, renewed: bool) -> None:
    later = T0 + VALIDITY - timedelta(days=days_left)
    before = _snapshot(root)
    ensure_lab_pki(LabPaths(root), now=later)
    assert _changed(before, _snapshot(root)) == (set(CERTS) | set(CA_COPIES) if renewed else set())
    if renewed:
        _assert_sound(root, later)
        assert _cert(root, SRV).not_valid_before_utc == later - timedelta(hours=1)


@dataclass(frozen=True)
class _Lab:
    root: Path
    ca: tuple[x509.Certificate, rsa.RSAPrivateKey]
    server: x509.Certificate


def _reissue(
    cert: x509.Certificate,
    signer: tuple[x509.Certificate, rsa.RSAPrivateKey],
    *,
    not_after: datetime | None = None,
    ext: x509.ExtensionType | None = None,
    subject: x509.Name | None = None,
) -> bytes:
    """``cert`` re-signed by ``signer``, with one extension, the end date or subject swapped."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or cert.subject)
        .issuer_name(signer[0].subject)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(not_after or cert.not_valid_after_utc)
    )
    for e in cert.extensions:
        value = ext if ext is not None and type(ext) is type(e.value) else e.value
        builder = builder.add_extension(value, critical=e.critical)
    return pem_cert(builder.sign(signer[1], hashes.SHA256()))


BAD_SERVER_CERTS: dict[str, Callable[[_Lab], bytes]] = {
    "garbage": lambda lab: b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    "a key instead": lambda lab: (lab.root / SRV_KEY).read_bytes(),
    "expires in 10 days": lambda lab: _reissue(lab.server, lab.ca, not_after=T0 + timedelta(10)),
    "signed by a rogue CA of the same name": lambda lab: _reissue(
        lab.server, make_ca(LIBVIRT_CA_CN)
    ),
    "client purpose": lambda lab: _reissue(
        lab.server, lab.ca, ext=x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    ),
    "wrong SAN": lambda lab: _reissue(
        lab.server, lab.ca, ext=x509.SubjectAlternativeName([x509.DNSName("example.com")])
    ),
    "for another key": lambda lab: pem_cert(
        issue_server_cert(*lab.ca, "127.0.0.1", sans=["localhost", "127.0.0.1", "::1"], now=T0)[0]
    ),
}


@pytest.mark.parametrize("make_bad", BAD_SERVER_CERTS.values(), ids=BAD_SERVER_CERTS.keys())
def test_bad_server_cert_is_reissued(root: Path, make_bad: Callable[[_Lab], bytes]) -> None:
    lab = _Lab(root, (_cert(root, LV_CA), _rsa_key(root, LV_CA_KEY)), _cert(root, SRV))
    (root / SRV).write_bytes(make_bad(lab))
    before = _snapshot(root)
    ensure_lab_pki(LabPaths(root), now=T0)
    assert _changed(before, _snapshot(root)) == {SRV}
    _assert_sound(root, T0)


def test_an_equivalent_cert_is_kept(root: Path) -> None:
    # Same key, CA and profile, new serial: good as it is, so it must not be re-issued.
    lab_ca = (_cert(root, LV_CA), _rsa_key(root, LV_CA_KEY))
    (root / SRV).write_bytes(_reissue(_cert(root, SRV), lab_ca))
    before = _snapshot(root)
    assert ensure_lab_pki(LabPaths(root), now=T0).written == ()
    assert _snapshot(root) == before


def _older_spice_cert(root: Path) -> bytes:
    """The Spice server cert as labs made it before it had a name: CN and SANs of loopback,
    same key and CA, still valid for years."""
    spice_ca = (_cert(root, SP_CA), _rsa_key(root, SP_CA_KEY))
    loopback = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
         x509.IPAddress(ipaddress.ip_address("::1"))])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    return _reissue(_cert(root, SP), spice_ca, ext=loopback, subject=subject)


def test_an_older_labs_spice_cert_is_reissued_for_the_name_and_restarts_spice(
    root: Path,
) -> None:
    (root / SP).write_bytes(_older_spice_cert(root))
    key_before = (root / SP_KEY).read_bytes()
    before = _snapshot(root)
    pki = ensure_lab_pki(LabPaths(root), now=T0)
    assert _changed(before, _snapshot(root)) == {SP}  # the key and the CA stay
    assert pki.restarts() == {"spice"}  # every QEMU serving Spice TLS reloads it
    san = _ext(_cert(root, SP), x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName) and set(san) == SPICE_SAN
    assert (root / SP_KEY).read_bytes() == key_before
    _assert_sound(root, T0)
    # and from then on it is left alone: nothing rewritten, nothing restarted
    again = ensure_lab_pki(LabPaths(root), now=T0 + timedelta(days=1))
    assert again.written == () and again.restarts() == frozenset()


@pytest.mark.parametrize(
    ("lost", "restarts"),
    [
        (SRV_KEY, {"libvirtd"}),
        (LV_CA_KEY, {"libvirtd"}),  # a new CA re-issues libvirtd's cert
        (CLI_KEY, set()),  # only clients read it, at each connect
        (SP_KEY, {"spice"}),
        (SP_CA_KEY, {"spice"}),
        (SP_COPY, {"spice"}),
        (HOST_KEY, {"sshd"}),
        (SSH_KEY, {"sshd"}),  # authorized_keys changes with it
    ],
)
def test_what_restarts_follows_what_was_rewritten(
    root: Path, lost: str, restarts: set[str]
) -> None:
    (root / lost).unlink()
    assert ensure_lab_pki(LabPaths(root), now=T0).restarts() == restarts


def test_a_good_pki_restarts_nothing(root: Path) -> None:
    assert ensure_lab_pki(LabPaths(root), now=T0).restarts() == frozenset()


# --- ssh -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "pub"), [(SSH_KEY, SSH_PUB), (HOST_KEY, HOST_PUB)])
def test_ssh_key_pair(root: Path, key: str, pub: str) -> None:
    data = (root / key).read_bytes()
    assert data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    private = serialization.load_ssh_private_key(data, password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    line = (root / pub).read_bytes()
    kind, blob, comment = line.decode().split()
    assert (kind, comment) == ("ssh-ed25519", "atp-lab") and line.endswith(b"\n")
    assert serialization.load_ssh_public_key(line) == private.public_key()
    assert blob


def test_authorized_keys_holds_the_client_key(root: Path) -> None:
    assert (root / AUTH).read_bytes() == (root / SSH_PUB).read_bytes()
    assert (root / AUTH).read_bytes() != (root / HOST_PUB).read_bytes()


# --- openssl as an independent judge -----------------------------------------------------------

OPENSSL_CASES = [
    (SRV_CA, SRV, ["-purpose", "sslserver", "-verify_hostname", "localhost"], True),
    (SRV_CA, SRV, ["-purpose", "sslserver", "-verify_ip", "127.0.0.1"], True),
    (SRV_CA, SRV, ["-purpose", "sslserver", "-verify_ip", "::1"], True),
    (CLI_CA, CLI, ["-purpose", "sslclient"], True),
    (SP_COPY, SP, ["-purpose", "sslserver", "-verify_hostname", "spice.atp-lab.test"], True),
    (SP_COPY, SP, ["-purpose", "sslserver", "-verify_ip", "127.0.0.1"], True),
    (SP_COPY, SP, ["-verify_hostname", "localhost"], False),  # same socket, not its name
    (SP_COPY, SP, ["-verify_ip", "::1"], False),
    (SRV_CA, SP, [], False),  # the spice server must not pass for libvirt's CA
    (SP_COPY, SRV, [], False),
    (SRV_CA, SRV, ["-purpose", "sslclient"], False),  # EKU serverAuth only
    (SRV_CA, SRV, ["-verify_hostname", "example.com"], False),
]


@pytest.mark.parametrize(("ca", "cert", "args", "ok"), OPENSSL_CASES)
def test_openssl_verify(tmp_path: Path, ca: str, cert: str, args: list[str], ok: bool) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is needed for this cross-check"
    ensure_lab_pki(LabPaths(tmp_path))  # openssl judges against the real clock
    result = subprocess.run(
        [
            openssl,
            "verify",
            "-x509_strict",
            *args,
            "-CAfile",
            str(tmp_path / ca),
            str(tmp_path / cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    assert ("OK" in result.stdout) == ok


# --- helpers, errors, secrecy ------------------------------------------------------------------


def test_public_helpers_make_a_working_rogue_chain(root: Path) -> None:
    rogue_ca, rogue_key = make_ca("rogue CA")
    cert, key = issue_server_cert(rogue_ca, rogue_key, "127.0.0.1", sans=["localhost", "::1"])
    cert.verify_directly_issued_by(rogue_ca)
    with pytest.raises(ValueError, match="does not match"):
        cert.verify_directly_issued_by(_cert(root, LV_CA))
    loaded = serialization.load_pem_private_key(pem_key(key), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey) and loaded.public_key() == cert.public_key()
    assert x509.load_pem_x509_certificate(pem_cert(cert)) == cert
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


@pytest.mark.parametrize("blocker", ["pki", "ssh", "pki/spice"])
def test_unwritable_place_raises_lab_error(tmp_path: Path, blocker: str) -> None:
    (tmp_path / blocker).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / blocker).write_text("a file where a directory belongs")
    with pytest.raises(LabError) as info:
        ensure_lab_pki(LabPaths(tmp_path), now=T0)
    assert str(tmp_path / blocker) in info.value.message
    assert info.value.hint


def test_no_private_key_bytes_in_repr_or_log(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_pem = (root / SRV_KEY).read_bytes()
    body = [line for line in key_pem.decode().splitlines() if "-----" not in line]
    (root / SRV_KEY).write_bytes(key_pem[: len(key_pem) // 2])  # a broken key gets logged
    with caplog.at_level(logging.DEBUG, logger="atp_notebook.lab.pki"):
        pki = ensure_lab_pki(LabPaths(root), now=T0)
    new_body = [line for line in (root / SRV_KEY).read_text().splitlines() if "-----" not in line]
    assert str(root / SRV_KEY) in caplog.text
    for text in (caplog.text, repr(pki)):
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in body + new_body)
