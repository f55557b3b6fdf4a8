"""``SpiceEndpoint``: where one VM's Spice server listens and how to authenticate to it.

The one type the whole path uses: YAML (``transport.spice.vms``) or the libvirt domain XML
become an endpoint once, and every channel of the VM links with that same object until a
connect fails (then it is resolved again: the VM may have restarted on other ports). Nothing
is copied field by field on the way, so nothing is lost (``server_name`` was, once).

Example::

    SpiceEndpoint("127.0.0.1", tls_port=5902, password=Secret("pw"),
                  tls=SpiceTls(ca_file=Path("ca.pem"), server_name="spice.example"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atp_notebook.config import Secret, SpiceVmConfig
from atp_notebook.spice.proto import SaslCredentials


@dataclass(frozen=True)
class SpiceTls:
    """How to verify a Spice server's certificate.

    ``ca_file`` None means the system's trust store; ``verify=False`` turns verification off
    (only for labs; the config loader warns). ``server_name`` is the name the certificate must
    carry (SNI too); by default the address connected to.
    """

    ca_file: Path | None = None
    verify: bool = True
    server_name: str | None = None


@dataclass(frozen=True)
class SpiceEndpoint:
    """One VM's Spice server: address, ports, TLS verification and credentials.

    ``password`` is the ticket, or with ``username`` the SASL password; it never shows in a
    repr. ``prefer_tls`` links every channel over TLS first even when a plain port exists (a
    server that wants TLS for a channel says so, and that channel relinks on ``tls_port``).
    """

    host: str
    port: int | None = None  # plain
    tls_port: int | None = None
    tls: SpiceTls = field(default_factory=SpiceTls)
    password: Secret | None = None
    username: str | None = None  # SASL when set
    prefer_tls: bool = False
    source: str = "given"  # "config", "libvirt:<host id>", or "given" (built in code)

    def __post_init__(self) -> None:
        if isinstance(self.password, str):  # a convenience for code; kept as a Secret
            object.__setattr__(self, "password", Secret(self.password))

    @classmethod
    def from_config(cls, entry: SpiceVmConfig, *, host: str | None = None,
                    port: int | None = None, tls_port: int | None = None,
                    password: Secret | None = None, source: str = "config") -> SpiceEndpoint:
        """The endpoint of a YAML entry; ``host``/ports/``password`` fill what it leaves out
        (found in the domain XML). What the YAML says wins."""
        tls_port = entry.tls_port if entry.tls_port is not None else tls_port
        plain = entry.port if entry.port is not None else port
        return cls(
            host=entry.server_addr or host or "127.0.0.1",
            port=plain,
            tls_port=tls_port,
            tls=SpiceTls(entry.ca_file, entry.tls_verify, entry.server_name),
            password=entry.password or password,
            username=entry.username,
            # a TLS-only server (no plain port) starts on TLS whatever the YAML says
            prefer_tls=entry.tls or plain is None,
            source=source,
        )

    @property
    def sasl(self) -> SaslCredentials | None:
        """SASL credentials when a username is set (revealed only for the link)."""
        if self.username is None:
            return None
        return SaslCredentials(self.username, self.password.reveal() if self.password else "")

    @property
    def ticket(self) -> str | None:
        """The Spice ticket (password) unless SASL is used."""
        if self.username is not None or self.password is None:
            return None
        return self.password.reveal()

    def __str__(self) -> str:
        ports = [f"{self.port} plain"] if self.port is not None else []
        if self.tls_port is not None:
            name = f", name {self.tls.server_name}" if self.tls.server_name else ""
            ports.append(f"{self.tls_port} tls{name}")
        return f"spice://{self.host} ({', '.join(ports) or 'no port'}; from {self.source})"
