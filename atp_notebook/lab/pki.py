"""The lab's keys and certificates: two TLS CAs, their leaf certificates, and ssh keys.

Two CAs, not one, because a Spice client of atp-vm2 must trust only the Spice server: were
both signed by one CA, that client would also accept libvirtd's certificate, and the reverse.

:func:`ensure_lab_pki` is idempotent so that ``atp-lab up`` can run it every time. A file that
is present and still good is never rewritten, so daemons that loaded it need no restart, and
:attr:`LabPki.written` tells the caller which files did change. "Good" is judged per file from
what it depends on (a cert on its key and its CA), so losing one file redoes only that file
and what hangs off it: a re-made CA no longer verifies its old leaves, which are re-issued.

Private keys are unencrypted PKCS#8 because libvirtd and QEMU read them without a passphrase.
They are protected by mode 0600 in 0700 directories instead, are created 0600 from the start
(:mod:`atp_notebook.lab.files`) so they are never briefly readable by others, and never
appear in a repr, log line or exception message: only their paths do.

The Spice server certificate names ``spice.atp-lab.test`` and 127.0.0.1, and not
``localhost``: the lab's config dials 127.0.0.1, and a client that dials ``localhost`` (the
same socket) must fail verification unless it is told the server's name (``server_name``),
which is what the tests of that setting need.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atp_notebook.errors import LabError
from atp_notebook.lab.files import HINT, ensure_mode, read_or_none, write_atomic, write_if_changed
from atp_notebook.lab.paths import LOOPBACK, SPICE_SERVER_NAME, LabPaths

log = logging.getLogger(__name__)

# RSA, not EC or Ed25519: every gnutls (libvirt, spice-gtk) and openssl build accepts it.
RSA_KEY_SIZE = 2048
VALIDITY = timedelta(days=3650)
BACKDATE = timedelta(hours=1)  # so a peer whose clock is a little behind accepts a fresh cert
RENEW_BEFORE = timedelta(days=30)  # so a lab brought up today works for at least a month

LIBVIRT_CA_CN = "atp-lab libvirt CA"
SPICE_CA_CN = "atp-lab spice CA"
SERVER_CN = LOOPBACK  # clients check the name they dialled, which for the lab is loopback
CLIENT_CN = "atp-lab client"
LOOPBACK_SANS: tuple[str, ...] = ("localhost", LOOPBACK, "::1")
# The IP stays: spice-gtk (the bench's reference client) and the lab's own probes dial it.
SPICE_SERVER_SANS: tuple[str, ...] = (SPICE_SERVER_NAME, LOOPBACK)
SSH_COMMENT = "atp-lab"

_KEY_MODE = 0o600
_PUBLIC_MODE = 0o644
_DIR_MODE = 0o700


@dataclass(frozen=True)
class LabPki:
    """Where every PKI file of the lab lives; ``written`` lists what the last ensure changed."""

    libvirt_ca_cert: Path
    libvirt_ca_key: Path
    libvirt_server_ca: Path
    libvirt_server_cert: Path
    libvirt_server_key: Path
    libvirt_client_ca: Path  # the client files live in paths.libvirt_client_pki (?pkipath=)
    libvirt_client_cert: Path
    libvirt_client_key: Path
    spice_ca_cert: Path
    spice_ca_key: Path
    spice_server_ca: Path  # the server files live in paths.spice_pki, QEMU's spice x509 dir
    spice_server_cert: Path
    spice_server_key: Path
    ssh_client_key: Path
    ssh_client_pub: Path
    ssh_authorized_keys: Path
    ssh_host_key: Path
    ssh_host_pub: Path
    written: tuple[Path, ...] = ()

    @classmethod
    def at(cls, paths: LabPaths) -> LabPki:
        """The layout under ``paths``, without creating anything."""
        lv_ca, sp_ca = paths.pki_dir / "libvirt-ca", paths.pki_dir / "spice-ca"
        server, client, spice = paths.libvirt_server_pki, paths.libvirt_client_pki, paths.spice_pki
        ssh = paths.ssh_dir
        return cls(
            libvirt_ca_cert=lv_ca / "cacert.pem",
            libvirt_ca_key=lv_ca / "cakey.pem",
            libvirt_server_ca=server / "cacert.pem",
            libvirt_server_cert=server / "servercert.pem",
            libvirt_server_key=server / "serverkey.pem",
            libvirt_client_ca=client / "cacert.pem",
            libvirt_client_cert=client / "clientcert.pem",
            libvirt_client_key=client / "clientkey.pem",
            spice_ca_cert=sp_ca / "cacert.pem",
            spice_ca_key=sp_ca / "cakey.pem",
            spice_server_ca=spice / "ca-cert.pem",
            spice_server_cert=spice / "server-cert.pem",
            spice_server_key=spice / "server-key.pem",
            ssh_client_key=paths.ssh_client_key,
            ssh_client_pub=paths.ssh_client_key.with_name(paths.ssh_client_key.name + ".pub"),
            ssh_authorized_keys=ssh / "authorized_keys",
            ssh_host_key=ssh / "ssh_host_ed25519_key",
            ssh_host_pub=ssh / "ssh_host_ed25519_key.pub",
        )

    def files(self) -> tuple[Path, ...]:
        """Every file of the lab PKI."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "written")

    def directories(self) -> tuple[Path, ...]:
        """The directories holding those files; every one holds a key, so all are 0700."""
        return tuple(dict.fromkeys(p.parent for p in self.files()))

    def restarts(self) -> frozenset[str]:
        """What must restart to load ``written``: "libvirtd", "sshd" and/or "spice" (every
        QEMU serving Spice TLS). Each reads its files only at start; an empty ``written``
        (a lab whose PKI was already good) restarts nothing.
        """
        readers = {
            "libvirtd": self.libvirt_server_cert.parent,
            "sshd": self.ssh_host_key.parent,
            "spice": self.spice_server_cert.parent,
        }
        return frozenset(
            part for part, directory in readers.items()
            if any(directory in path.parents for path in self.written)
        )


# --- certificate profiles ------------------------------------------------------------------

CertAndKey = tuple[x509.Certificate, rsa.RSAPrivateKey]  # what make_ca and issue_server_cert return
# (value, critical) pairs. One list serves both to build a cert and to judge whether an
# existing one still carries exactly what we would give it today.
_Extensions = list[tuple[x509.ExtensionType, bool]]


@dataclass(frozen=True)
class _Profile:
    common_name: str
    purpose: x509.ObjectIdentifier | None  # EKU of a leaf; None makes a CA
    sans: tuple[str, ...] = ()


_SERVER = _Profile(SERVER_CN, ExtendedKeyUsageOID.SERVER_AUTH, LOOPBACK_SANS)
_SPICE_SERVER = _Profile(SPICE_SERVER_NAME, ExtendedKeyUsageOID.SERVER_AUTH, SPICE_SERVER_SANS)
_CLIENT = _Profile(CLIENT_CN, ExtendedKeyUsageOID.CLIENT_AUTH)


def _extensions(
    profile: _Profile, key: rsa.RSAPrivateKey, issuer_key: rsa.RSAPrivateKey
) -> _Extensions:
    # gnutls (libvirt) checks basic constraints, key usage and purpose of every cert.
    ca = profile.purpose is None
    exts: _Extensions = [
        (x509.BasicConstraints(ca=ca, path_length=None), True),
        (_key_usage(ca=ca), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ]
    if profile.purpose is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        exts += [(x509.ExtendedKeyUsage([profile.purpose]), False), (aki, False)]
    if profile.sans:
        names = [_general_name(s) for s in profile.sans]
        exts.append((x509.SubjectAlternativeName(names), False))
    return exts


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


# --- building and judging certificates -----------------------------------------------------


def _build(
    profile: _Profile, key: rsa.RSAPrivateKey, issuer: CertAndKey | None, now: datetime
) -> x509.Certificate:
    """A cert for ``key`` signed by ``issuer`` (None: self-signed), valid from ``now``."""
    subject = _name(profile.common_name)
    issuer_name, issuer_key = (subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    end = now + VALIDITY
    if issuer is not None:  # never outlive the CA: past its end the cert could not verify
        end = min(end, issuer[0].not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(end)
    )
    for value, critical in _extensions(profile, key, issuer_key):
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _conforms(
    cert: x509.Certificate,
    profile: _Profile,
    key: rsa.RSAPrivateKey,
    issuer: CertAndKey | None,
    now: datetime,
) -> bool:
    """Is for ``key``, stays valid past RENEW_BEFORE, verifies against ``issuer`` (None:
    self-signed), and carries exactly the subject and extensions ``profile`` asks for."""
    issuer_cert, issuer_key = (cert, key) if issuer is None else issuer
    return (
        cert.public_key() == key.public_key()
        and cert.subject == _name(profile.common_name)
        and cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc - now > RENEW_BEFORE
        and _issued_by(cert, issuer_cert)
        and all(
            _has_extension(cert, value, critical)
            for value, critical in _extensions(profile, key, issuer_key)
        )
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _has_extension(cert: x509.Certificate, value: x509.ExtensionType, critical: bool) -> bool:
    try:
        ext = cert.extensions.get_extension_for_class(type(value))
    except x509.ExtensionNotFound:
        return False
    return ext.value == value and ext.critical == critical


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)


# --- public helpers (also for tests that need e.g. a rogue CA) ---------------------------


def make_ca(common_name: str, *, now: datetime | None = None) -> CertAndKey:
    """A new self-signed CA certificate and its new RSA key."""
    key = _new_rsa_key()
    return _build(_Profile(common_name, None), key, None, _utc(now)), key


def issue_server_cert(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    sans: Sequence[str],
    now: datetime | None = None,
) -> CertAndKey:
    """A TLS server cert (EKU serverAuth) and its new key; ``sans`` are host names or IPs."""
    profile = _Profile(common_name, ExtendedKeyUsageOID.SERVER_AUTH, tuple(sans))
    key = _new_rsa_key()
    return _build(profile, key, (ca_cert, ca_key), _utc(now)), key


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key: rsa.RSAPrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM: what libvirt and QEMU load without asking for a passphrase."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- the lab's files -----------------------------------------------------------------------


def ensure_lab_pki(paths: LabPaths, *, now: datetime | None = None) -> LabPki:
    """Create or repair every PKI file under ``paths``; leave good files byte-for-byte alone.

    ``now`` (default: the current time; naive means UTC) decides which certs are about to
    expire and dates new ones; tests pass a later time to simulate an old lab.
    """
    pki = LabPki.at(paths)
    for directory in pki.directories():
        _ensure_dir(directory)
    run = _Run(_utc(now))
    lv_ca = run.cert(pki.libvirt_ca_cert, pki.libvirt_ca_key, _Profile(LIBVIRT_CA_CN, None))
    sp_ca = run.cert(pki.spice_ca_cert, pki.spice_ca_key, _Profile(SPICE_CA_CN, None))
    run.cert(pki.libvirt_server_cert, pki.libvirt_server_key, _SERVER, issuer=lv_ca)
    run.cert(pki.libvirt_client_cert, pki.libvirt_client_key, _CLIENT, issuer=lv_ca)
    run.cert(pki.spice_server_cert, pki.spice_server_key, _SPICE_SERVER, issuer=sp_ca)
    run.exact(pki.libvirt_server_ca, pem_cert(lv_ca[0]), _PUBLIC_MODE)
    run.exact(pki.libvirt_client_ca, pem_cert(lv_ca[0]), _PUBLIC_MODE)
    run.exact(pki.spice_server_ca, pem_cert(sp_ca[0]), _PUBLIC_MODE)

    client_line = run.ssh_key(pki.ssh_client_key, pki.ssh_client_pub)
    # Owner-only, as sshd's StrictModes wants for the file that says who may log in as root.
    run.exact(pki.ssh_authorized_keys, client_line, _KEY_MODE)
    run.ssh_key(pki.ssh_host_key, pki.ssh_host_pub)
    return replace(pki, written=tuple(run.written))


class _Run:
    """One pass of :func:`ensure_lab_pki`: its clock and the files it rewrote."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.written: list[Path] = []

    def cert(
        self,
        cert_path: Path,
        key_path: Path,
        profile: _Profile,
        *,
        issuer: CertAndKey | None = None,
    ) -> CertAndKey:
        """Keep the cert if it still conforms, else issue a new one (for the kept key).

        A re-made CA fails ``_conforms`` for its old leaves, which is how they get re-issued.
        """
        key = self.rsa_key(key_path)
        cert = _load(cert_path, x509.load_pem_x509_certificate)
        if cert is None or not _conforms(cert, profile, key, issuer, self.now):
            cert = _build(profile, key, issuer, self.now)
            self.write(cert_path, pem_cert(cert), _PUBLIC_MODE)
        return cert, key

    def rsa_key(self, path: Path) -> rsa.RSAPrivateKey:
        key = _load(path, _parse_rsa_key)
        if key is None:
            key = _new_rsa_key()
            self.write(path, pem_key(key), _KEY_MODE)
        else:
            ensure_mode(path, _KEY_MODE)
        return key

    def ssh_key(self, path: Path, pub_path: Path) -> bytes:
        """Ensure an ed25519 key in OpenSSH format and its .pub; returns the public line."""
        key = _load(path, _parse_ed25519_key)
        if key is None:
            key = ed25519.Ed25519PrivateKey.generate()
            private = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            self.write(path, private, _KEY_MODE)
        else:
            ensure_mode(path, _KEY_MODE)
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        line = public + f" {SSH_COMMENT}\n".encode()
        self.exact(pub_path, line, _PUBLIC_MODE)
        return line

    def exact(self, path: Path, data: bytes, mode: int) -> None:
        """A file derived from another (CA copy, .pub): rewritten only if it differs."""
        if write_if_changed(path, data, mode):
            self._wrote(path)

    def write(self, path: Path, data: bytes, mode: int) -> None:
        write_atomic(path, data, mode)
        self._wrote(path)

    def _wrote(self, path: Path) -> None:
        self.written.append(path)
        log.info("wrote %s", path)


# --- loading, tolerant of anything broken --------------------------------------------------

_T = TypeVar("_T")


def _load(path: Path, parse: Callable[[bytes], _T]) -> _T | None:
    """The parsed file, or None if it is missing or unusable (the caller then re-makes it)."""
    data = read_or_none(path)
    if data is None:
        return None
    try:
        return parse(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Name the file only: its bytes may be a (broken) private key.
        log.info("%s is unusable; re-making it", path)
        return None


def _parse_rsa_key(data: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != RSA_KEY_SIZE:
        raise ValueError(f"not an RSA-{RSA_KEY_SIZE} key")
    return key


def _parse_ed25519_key(data: bytes) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_ssh_private_key(data, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("not an ed25519 key")
    return key


# --- file system ---------------------------------------------------------------------------


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create directory {path}: {exc.strerror}", hint=HINT) from exc
    ensure_mode(path, _DIR_MODE)  # mkdir's mode is cut by the umask, and the dir may be old


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
