"""The typed configuration: hosts (libvirt), Spice VMs, and the whole transport config.

Every class checks its own fields on construction, so a config built in code is held to the
same rules as one loaded from YAML.  A failing check raises
:class:`~atp_notebook.errors.ConfigError` whose ``key_path`` is the field's name (for
:class:`TransportConfig`, ``hosts[i].field`` or ``spice_vms[i].field``); the YAML loader maps
that back to the file's line and key path.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from atp_notebook.config.uri import LibvirtUri, parse_host, parse_libvirt_uri
from atp_notebook.errors import ConfigError

log = logging.getLogger("atp.config")

SPICE_CHANNELS = ("main", "display", "inputs", "cursor", "playback", "record", "usbredir",
                  "smartcard", "webdav", "port")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class Secret:
    """A string that does not show itself: ``repr`` and ``str`` are masked.

    Example::

        pw = Secret("hunter2")
        print(pw)        # ***
        pw.reveal()      # 'hunter2'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise ConfigError(f"a Secret holds a string, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret itself; pass it straight to the code that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # constant-time: equality of secrets is the one comparison an attacker may time
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


def _check_id(value: object, key: str) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ConfigError(f"{value!r} is not a valid id", key_path=key,
                          hint="letters, digits, '.', '_', '-', starting with a letter or digit")


def _check_port(value: object, key: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, got {type(value).__name__}", key_path=key)
    if not 1 <= value <= 65535:
        raise ConfigError(f"{value} is out of range 1-65535", key_path=key)


def _names(values: Iterable[str], key: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConfigError("must be a list of names, not one string", key_path=key)
    result = tuple(values)
    for value in result:
        if allowed is not None and value not in allowed:
            raise ConfigError(f"{value!r} is not a known name", key_path=key,
                              hint="allowed: " + ", ".join(allowed))
        if allowed is None:
            _check_id(value, key)
    duplicates = sorted({v for v in result if result.count(v) > 1})
    if duplicates:
        raise ConfigError(f"{duplicates[0]!r} is listed twice", key_path=key)
    return result


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A libvirt host: an id, its address, and how to reach its libvirtd.

    Without ``uri`` the connection is ``qemu+ssh://<host>/system`` (SSH is the default
    transport), or ``qemu:///system`` when ``host`` is None or ``localhost``::

        HostInfo("host1", "10.0.0.1").with_uri("qemu+tls://10.0.0.1/system")
    """

    id: str
    host: str | None = None
    uri: LibvirtUri | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_id(self.id, "id")
        if self.host is not None:
            if not isinstance(self.host, str):
                raise ConfigError(f"must be a string, got {type(self.host).__name__}",
                                  key_path="host")
            object.__setattr__(self, "host", parse_host(self.host, key_path="host"))
        if isinstance(self.uri, str):  # untyped callers: accept the text form too
            object.__setattr__(self, "uri", _parse_uri(self.uri))
        elif self.uri is not None and not isinstance(self.uri, LibvirtUri):
            raise ConfigError(f"must be a LibvirtUri or a string, got "
                              f"{type(self.uri).__name__}", key_path="uri")
        object.__setattr__(self, "tags", _names(self.tags, "tags", None))

    @property
    def effective_uri(self) -> LibvirtUri:
        """``uri`` if given, else the default for ``host`` (see the class docstring)."""
        if self.uri is not None:
            return self.uri
        if self.host is None or self.host.lower().rstrip(".") == "localhost":
            return LibvirtUri()
        return LibvirtUri(transport="ssh", host=self.host)

    def with_uri(self, uri: LibvirtUri | str) -> HostInfo:
        """A copy that connects through ``uri`` (parsed if it is a string)."""
        return replace(self, uri=_parse_uri(uri) if isinstance(uri, str) else uri)


def _parse_uri(text: str) -> LibvirtUri:
    try:
        return parse_libvirt_uri(text)
    except ConfigError as exc:
        raise ConfigError(exc.message, key_path="uri", hint=exc.hint) from exc


@dataclass(frozen=True, slots=True)
class SpiceVmConfig:
    """How to reach one VM's Spice server.

    With ``host`` (a :class:`HostInfo` id) the address, ports and password that are not given
    are discovered from the libvirt domain XML (``domain``, default ``vm_id``).  Without it,
    ``server_addr`` and a port are required.  ``tls`` says whether channels start on the TLS
    port; ``channels`` (empty = all the server offers) limits which ones are opened::

        SpiceVmConfig("vm1", "10.0.0.1", port=5900, password=Secret("pw"))
    """

    vm_id: str
    server_addr: str | None = None
    port: int | None = None
    tls_port: int | None = None
    password: Secret | None = None
    tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    username: str | None = None  # SASL
    host: str | None = None  # HostInfo id
    domain: str | None = None  # libvirt name, when it differs from vm_id
    channels: tuple[str, ...] = ()
    server_name: str | None = None  # TLS SNI and certificate name; default server_addr

    def __post_init__(self) -> None:
        _check_id(self.vm_id, "vm_id")
        if self.host is not None:
            _check_id(self.host, "host")
        if self.server_addr is not None:
            object.__setattr__(self, "server_addr",
                               parse_host(self.server_addr, key_path="server_addr"))
        elif self.host is None:
            raise ConfigError("is required unless host is given (then it is discovered "
                              "from libvirt)", key_path="server_addr")
        _check_port(self.port, "port")
        _check_port(self.tls_port, "tls_port")
        for key in ("tls", "tls_verify"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError("must be true or false", key_path=key)
        if self.password is not None and not isinstance(self.password, Secret):
            # a plain str here would show up in repr(); insist on the masked type
            raise ConfigError("must be a Secret", key_path="password")
        if self.ca_file is not None:
            object.__setattr__(self, "ca_file", Path(self.ca_file))
        object.__setattr__(self, "channels", _names(self.channels, "channels", SPICE_CHANNELS))
        for key in ("username", "domain"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError("must be a non-empty string", key_path=key)
        if self.server_name is not None:
            if ":" in self.server_name:
                raise ConfigError(f"{self.server_name!r} must be a host name (no port)",
                                  key_path="server_name")
            parse_host(self.server_name, key_path="server_name")
        self._check_combinations()

    def _check_combinations(self) -> None:
        discovered = self.host is not None  # ports may come from the domain XML
        if self.port is None and self.tls_port is None and not discovered:
            raise ConfigError("needs port or tls_port (or host, to discover them)",
                              key_path="port")
        if self.tls and self.tls_port is None and not discovered:
            raise ConfigError("is true but tls_port is not given", key_path="tls")
        if not self.tls and self.port is None and self.tls_port is not None and not discovered:
            raise ConfigError("is false but only tls_port is given", key_path="tls",
                              hint="set tls: true, or give the plain port")
        tls_possible = self.tls or self.tls_port is not None or discovered
        for key in ("ca_file", "server_name"):
            if getattr(self, key) is not None and not tls_possible:
                raise ConfigError("is given but the VM has no TLS port", key_path=key)
        if self.username is not None:
            if self.password is None and not discovered:
                raise ConfigError("SASL needs a password too", key_path="username")
            if not tls_possible:
                # DESIGN §7: on a plain port spice-server offers only DIGEST-MD5 with
                # auth-conf, which no Python library implements; SASL runs over TLS.
                raise ConfigError("SASL runs over TLS only, but no tls_port is given",
                                  key_path="username")
        if self.domain is not None and not discovered:
            raise ConfigError("names a libvirt domain but no host is given", key_path="domain")
        if not self.tls_verify:
            log.warning("Spice VM %s: tls_verify is false, so the server certificate is not "
                        "checked%s", self.vm_id,
                        " (ca_file is ignored)" if self.ca_file is not None else "")

    @property
    def libvirt_name(self) -> str:
        """The domain name in libvirt: ``domain`` if given, else ``vm_id``."""
        return self.domain or self.vm_id


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """All hosts and Spice VMs; ids are unique and VMs name only known hosts.

    Example::

        cfg = TransportConfig(hosts=(HostInfo("local"),))
        cfg.host("local").effective_uri  # qemu:///system
    """

    hosts: tuple[HostInfo, ...] = ()
    spice_vms: tuple[SpiceVmConfig, ...] = ()
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hosts", tuple(self.hosts))
        object.__setattr__(self, "spice_vms", tuple(self.spice_vms))
        seen: dict[str, int] = {}
        for i, host in enumerate(self.hosts):
            if host.id in seen:
                raise ConfigError(f"host id {host.id!r} is already used by hosts[{seen[host.id]}]",
                                  source=self.source, key_path=f"hosts[{i}].id")
            seen[host.id] = i
        vms: dict[str, int] = {}
        for i, vm in enumerate(self.spice_vms):
            if vm.vm_id in vms:
                raise ConfigError(f"vm_id {vm.vm_id!r} is already used by "
                                  f"spice_vms[{vms[vm.vm_id]}]",
                                  source=self.source, key_path=f"spice_vms[{i}].vm_id")
            vms[vm.vm_id] = i
            if vm.host is not None and vm.host not in seen:
                raise ConfigError(f"host {vm.host!r} is not a configured host",
                                  source=self.source, key_path=f"spice_vms[{i}].host",
                                  hint=_known("host ids", seen))

    def host(self, host_id: str) -> HostInfo:
        """The host with this id; a ConfigError lists the known ids otherwise."""
        for host in self.hosts:
            if host.id == host_id:
                return host
        raise ConfigError(f"no host with id {host_id!r}", source=self.source,
                          hint=_known("host ids", [h.id for h in self.hosts]))

    def hosts_tagged(self, tag: str) -> tuple[HostInfo, ...]:
        """The hosts carrying ``tag``, in file order (may be empty)."""
        return tuple(h for h in self.hosts if tag in h.tags)

    def spice_vm(self, vm_id: str) -> SpiceVmConfig:
        """The Spice entry for ``vm_id``; a ConfigError lists the known ones otherwise."""
        for vm in self.spice_vms:
            if vm.vm_id == vm_id:
                return vm
        raise ConfigError(f"no Spice VM with vm_id {vm_id!r}", source=self.source,
                          hint=_known("vm_ids", [v.vm_id for v in self.spice_vms]))


def _known(what: str, names: Iterable[str]) -> str:
    names = list(names)
    return f"known {what}: {', '.join(names)}" if names else f"no {what} are configured"
