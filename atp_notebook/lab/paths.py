"""Where the lab keeps its state, and the fixed facts of its layout (ports, names).

Everything the lab makes lives under one directory, ``$ATP_LAB_DIR`` or
``/var/lib/atp-lab``, so that ``down`` and a re-run of ``up`` find exactly what a previous run
made, and so tests can point a second lab-shaped directory elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LAB_DIR = Path("/var/lib/atp-lab")

# Loopback ports the lab listens on.  libvirt's defaults for tcp/tls, so that URIs without a
# port work; ssh on 2222 so a host sshd on 22 is left alone.
LIBVIRT_TCP_PORT = 16509
LIBVIRT_TLS_PORT = 16514
SSH_PORT = 2222
LOOPBACK = "127.0.0.1"

# The lab's guest-side virtio-serial port with an echo service behind it.
TEST_PORT_NAME = "com.atp.test.0"
AGENT_PORT_NAME = "org.qemu.guest_agent.0"


# The name the lab's Spice server certificate is issued for (besides 127.0.0.1). ``.test``
# is reserved (RFC 2606): it never resolves, so only a client told the name uses it.
SPICE_SERVER_NAME = "spice.atp-lab.test"


# The Spice channels libvirt can set a TLS mode for (<graphics><channel name=...>).
SPICE_CHANNEL_NAMES = (
    "main", "display", "inputs", "cursor", "playback", "record", "smartcard", "usbredir",
)


@dataclass(frozen=True)
class VmSpec:
    """One lab VM: its libvirt name and how its Spice server listens.

    With both ports, ``spice_secure_channels`` must link over TLS (on the plain port the
    server answers NEED_SECURED); the others link on either port.
    """

    name: str
    spice_port: int | None  # plain port; None = TLS only
    spice_tls_port: int | None
    spice_password: bool
    spice_secure_channels: tuple[str, ...] = ()

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(p for p in (self.spice_port, self.spice_tls_port) if p is not None)


# The lab's libvirt domains.
LAB_VMS: tuple[VmSpec, ...] = (
    VmSpec("atp-vm1", spice_port=5901, spice_tls_port=None, spice_password=False),
    # Main may link in the clear on 5904, every other channel is told NEED_SECURED there
    # and must relink on 5902: how a client's move to TLS is tested against a real server.
    # The lab's config still starts every channel on TLS (tls: true).
    VmSpec("atp-vm2", spice_port=5904, spice_tls_port=5902, spice_password=True,
           spice_secure_channels=tuple(c for c in SPICE_CHANNEL_NAMES if c != "main")),
)

# The Spice SASL VM: a plain QEMU process the lab starts itself, not a libvirt domain,
# because libvirt's ``spice_sasl`` switch applies to every domain of the host (see
# sasl_vm.py). TLS only: on a plain port spice-server offers SASL only with DIGEST-MD5 and
# auth-conf, which no Python SASL library implements. Its password is the SASL password.
SASL_VM = VmSpec("atp-sasl", spice_port=None, spice_tls_port=5903, spice_password=True)
# The SASL user as the client sends it: the server appends its realm (the host name), the
# same realm saslpasswd2 stored the user under, so the bare name is the portable form.
SASL_USERNAME = "atp"


@dataclass(frozen=True)
class LabPaths:
    """Every path the lab writes, derived from one root."""

    root: Path

    @classmethod
    def default(cls) -> LabPaths:
        return cls(Path(os.environ.get("ATP_LAB_DIR", str(DEFAULT_LAB_DIR))))

    # configuration handed to users
    @property
    def config_file(self) -> Path:
        return self.root / "atp.yaml"

    # pid files and logs of the daemons the lab started
    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    # certificates and keys
    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def libvirt_server_pki(self) -> Path:
        """cacert.pem, servercert.pem, serverkey.pem for libvirtd's TLS listener."""
        return self.pki_dir / "libvirt-server"

    @property
    def libvirt_client_pki(self) -> Path:
        """The ``?pkipath=`` directory: cacert.pem, clientcert.pem, clientkey.pem."""
        return self.pki_dir / "libvirt-client"

    @property
    def spice_pki(self) -> Path:
        """QEMU's Spice x509 dir: ca-cert.pem, server-cert.pem, server-key.pem (own CA)."""
        return self.pki_dir / "spice"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_client_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    def spice_password_file(self, vm: str) -> Path:
        return self.secrets_dir / f"{vm}.spice-password"

    # the guest image
    @property
    def guest_dir(self) -> Path:
        return self.root / "guest"

    @property
    def vm_dir(self) -> Path:
        return self.root / "vms"

    def console_log(self, vm: str) -> Path:
        return self.vm_dir / vm / "console.log"

    # daemon configuration files
    @property
    def etc_dir(self) -> Path:
        return self.root / "etc"

    # the SASL VM: its Cyrus SASL config and user database (0700: the database is a secret)
    @property
    def sasl_dir(self) -> Path:
        return self.root / "sasl"
