"""libvirt connection URIs for the qemu driver, parsed and checked before libvirt sees them.

Form (libvirt ``docs/uri.rst``)::

    qemu[+transport]://[user@][host][:port]/system|/session[?name=value&...]

Rules, each failing with a :class:`~atp_notebook.errors.ConfigError` that names the part:

- driver ``qemu`` only; transports ``unix``, ``tcp``, ``tls``, ``ssh``, ``libssh2``,
  ``libssh`` or none (local).  ``ext`` is refused: it runs an arbitrary local command and has
  no host to pool connections by.
- local and ``unix`` take no user, host or port.  ``qemu://host/system`` (host, no transport)
  is refused: libvirt would silently use TLS there, so say ``qemu+tls://``.
- network transports need a host (libvirt would silently use ``localhost``): an IPv4 address,
  an IPv6 address in brackets, or a host name.  Port 1-65535 or none (``effective_port``
  gives libvirt's default).  The path is ``/system`` or ``/session``.
- query parameters: only those libvirt's remote driver knows, on the transports it reads
  them for (elsewhere it silently ignores them, which hides mistakes such as ``pkipath`` on
  ``tcp``); names case-insensitive as in libvirt (kept lower-case); values checked; no
  duplicates; ``&`` separators only; path values absolute (libvirt resolves relative
  ones against the process's working directory, which differs between notebooks and CI).
- ``qemu+tcp`` to a non-loopback host logs a WARNING on ``atp.config``: libvirt traffic then
  crosses the network in plain text.

Errors never echo a value whose name looks like a password.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import InitVar, dataclass
from typing import NoReturn
from urllib.parse import quote, unquote_to_bytes

from atp_notebook.errors import ConfigError

log = logging.getLogger("atp.config")

DRIVERS = ("qemu",)
TRANSPORTS = ("unix", "tcp", "tls", "ssh", "libssh2", "libssh")
PATHS = ("/system", "/session")
DEFAULT_PORTS = {"tcp": 16509, "tls": 16514, "ssh": 22, "libssh2": 22, "libssh": 22}

_LOCAL = frozenset({None, "unix"})
_SSH = frozenset({"ssh", "libssh2", "libssh"})
_LIBSSH = frozenset({"libssh2", "libssh"})
_ANY = _LOCAL | {"tcp", "tls"} | _SSH


@dataclass(frozen=True, slots=True)
class _ParamSpec:
    transports: frozenset[str | None]
    kind: str  # "text" | "path" | "bool" | "enum" | "list"
    choices: tuple[str, ...] = ()


# The parameters libvirt's remote driver reads (remote_driver.c doRemoteOpen), with the
# transports uri.rst documents them for.
PARAMS: dict[str, _ParamSpec] = {
    "name": _ParamSpec(_ANY, "text"),
    "command": _ParamSpec(frozenset({"ssh"}), "text"),
    "socket": _ParamSpec(_LOCAL | _SSH, "path"),
    "netcat": _ParamSpec(_SSH, "text"),
    "keyfile": _ParamSpec(_SSH, "path"),
    "no_verify": _ParamSpec(frozenset({"ssh", "tls"}), "bool"),
    "no_tty": _ParamSpec(frozenset({"ssh"}), "bool"),
    "pkipath": _ParamSpec(frozenset({"tls"}), "path"),
    "tls_priority": _ParamSpec(frozenset({"tls"}), "text"),
    "no_sanity": _ParamSpec(frozenset({"tls"}), "bool"),
    "known_hosts": _ParamSpec(_LIBSSH, "path"),
    "known_hosts_verify": _ParamSpec(_LIBSSH, "enum", ("normal", "auto", "ignore")),
    "sshauth": _ParamSpec(_LIBSSH, "list", ("agent", "privkey", "password",
                                            "keyboard-interactive")),
    "mode": _ParamSpec(_LOCAL | _SSH, "enum", ("auto", "legacy", "direct")),
    "proxy": _ParamSpec(_SSH, "enum", ("auto", "netcat", "native")),
}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SECRET_VALUE = re.compile(
    r"([?&;][^=&;#]*(?:pass|secret|token|credential)[^=&;#]*=)[^&;#]*", re.IGNORECASE
)
_USERINFO_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def _redact(text: str) -> str:
    """The URI with password-like values masked, safe to put in an error message."""
    return _USERINFO_PASSWORD.sub(r"\1***@", _SECRET_VALUE.sub(r"\1***", text))


def _fail(problem: str, text: str, hint: str | None = None) -> NoReturn:
    raise ConfigError(f"{problem} in '{_redact(text)}'", hint=hint)


def _transport_name(transport: str | None) -> str:
    return "local (no transport)" if transport is None else f"'{transport}'"


def host_problem(text: str) -> str | None:
    """Why ``text`` (no brackets) is not an IPv4/IPv6 address or host name; None if it is."""
    if not text:
        return "is empty"
    if ":" in text:
        return _ip_problem(text, ipaddress.IPv6Address, "IPv6")
    if re.fullmatch(r"[0-9.]+", text):
        return _ip_problem(text, ipaddress.IPv4Address, "IPv4")
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return ("is not a valid host name (dot-separated labels of 1-63 letters, digits, "
                "'-' or '_', not starting or ending with '-')")
    if labels[-1].isdigit():
        return "is not a valid host name (the last label is all digits)"
    return None


def _ip_problem(text: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address],
                name: str) -> str | None:
    if "%" in text:
        return "has an IPv6 zone id, which libvirt URIs cannot carry"
    try:
        kind(text)
    except ValueError:
        return f"is not a valid {name} address"
    return None


def parse_host(text: str, *, key_path: str | None = None) -> str:
    """Check an address or host name; returns it without IPv6 brackets.

    Example::

        parse_host("[::1]")  # -> "::1"
    """
    bracketed = text.startswith("[") and text.endswith("]")
    bare = text[1:-1] if bracketed else text
    problem = host_problem(bare)
    if bracketed and problem is None and ":" not in bare:
        problem = "is not an IPv6 address (only IPv6 goes in brackets)"
    if problem is not None:
        raise ConfigError(f"{text!r} {problem}", key_path=key_path)
    return bare


def is_loopback(host: str | None) -> bool:
    """True for no host, ``localhost``, 127.0.0.0/8 and ::1 (also IPv4-mapped)."""
    if host is None or host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True, slots=True)
class LibvirtUri:
    """A checked libvirt URI; ``str()`` gives it back in a form libvirt accepts.

    Build one with :func:`parse_libvirt_uri`, or directly (fields are checked the same way)::

        LibvirtUri(transport="ssh", user="root", host="10.0.0.1")  # qemu+ssh://root@10.0.0.1/system
    """

    driver: str = "qemu"
    transport: str | None = None
    user: str | None = None
    host: str | None = None  # IPv6 without brackets
    port: int | None = None
    path: str = "/system"
    params: tuple[tuple[str, str], ...] = ()
    # The text this URI was parsed from, only to quote it in errors (not a field).
    _text: InitVar[str | None] = None

    def __post_init__(self, _text: str | None) -> None:
        # Callers that skip the type checker may pass lists; keep the object hashable.
        params = tuple((str(name).lower(), value) for name, value in self.params)
        object.__setattr__(self, "params", params)
        _check(self, _text if _text is not None else str(self))

    @property
    def effective_port(self) -> int | None:
        """The TCP port libvirt will use: explicit, else the transport's default."""
        if self.port is not None:
            return self.port
        return DEFAULT_PORTS.get(self.transport or "")

    @property
    def is_local(self) -> bool:
        """True when libvirt talks over a local UNIX socket (no transport, or ``unix``)."""
        return self.transport in _LOCAL

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)

    def param(self, name: str) -> str | None:
        """The value of query parameter ``name``, or None."""
        return dict(self.params).get(name.lower())

    def __str__(self) -> str:
        scheme = self.driver if self.transport is None else f"{self.driver}+{self.transport}"
        authority = ""
        if self.user is not None:
            authority = quote(self.user, safe="") + "@"
        if self.host is not None:
            authority += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            authority += f":{self.port}"
        # libvirt unescapes names and values (xmlURIUnescapeString) and never turns '+' into
        # a space, so plain percent-encoding round-trips; '/', ':' and ',' stay readable.
        query = "&".join(
            f"{quote(name, safe='')}={quote(value, safe='/:,@')}" for name, value in self.params
        )
        return f"{scheme}://{authority}{quote(self.path)}" + (f"?{query}" if query else "")


def _check(uri: LibvirtUri, text: str) -> None:
    if uri.driver not in DRIVERS:
        _fail(f"driver '{uri.driver}' is not supported", text,
              hint="atp-notebook drives QEMU/KVM: use qemu://, qemu+ssh://, qemu+tls://, ...")
    if uri.transport == "ext":
        _fail("transport 'ext' is not supported", text,
              hint="ext runs an arbitrary local command and names no host; use ssh or tls")
    if uri.transport is not None and uri.transport not in TRANSPORTS:
        _fail(f"transport '{uri.transport}' is unknown", text,
              hint="use one of: none (qemu:///system), " + ", ".join(TRANSPORTS))
    if uri.path not in PATHS:
        shown = "missing" if uri.path in ("", "/") else f"'{uri.path}' is not supported"
        _fail(f"path {shown}", text, hint="the qemu driver has /system and /session")
    if uri.is_local:
        _check_local(uri, text)
    else:
        _check_remote(uri, text)
    _check_params(uri, text)
    if uri.transport == "tcp" and not uri.is_loopback:
        log.warning(
            "%s sends libvirt traffic in plain text (no encryption, server not "
            "authenticated); use qemu+tls or qemu+ssh off loopback", _redact(text))


def _check_local(uri: LibvirtUri, text: str) -> None:
    if uri.host is not None and uri.transport is None:
        _fail(f"host '{uri.host}' given without a transport", text,
              hint=f"libvirt would silently use TLS; write qemu+tls://{uri.host}{uri.path} "
                   f"or qemu:///{uri.path.lstrip('/')} for this machine")
    for part, value in (("host", uri.host), ("user", uri.user), ("port", uri.port)):
        if value is not None:
            _fail(f"{part} '{value}' is not allowed with transport "
                  f"{_transport_name(uri.transport)}", text,
                  hint="local connections use a UNIX socket; set ?socket=/path to pick one")


def _check_remote(uri: LibvirtUri, text: str) -> None:
    if uri.host is None:
        _fail(f"host is missing for transport '{uri.transport}'", text,
              hint=f"libvirt would silently use localhost; write "
                   f"{uri.driver}+{uri.transport}://localhost{uri.path}")
    problem = host_problem(uri.host)
    if problem is not None:
        _fail(f"host '{uri.host}' {problem}", text)
    if uri.user is not None and not _USER.fullmatch(uri.user):
        why = ("contains ':' (libvirt URIs carry no passwords; use ssh keys or an agent)"
               if ":" in uri.user else
               "is not a valid user name (letters, digits, '.', '_', '-'; no leading '-')")
        shown = uri.user.split(":", 1)[0]
        _fail(f"user '{shown}' {why}", text)
    if uri.port is not None and not 1 <= uri.port <= 65535:
        _fail(f"port {uri.port} is out of range 1-65535", text)


def _check_params(uri: LibvirtUri, text: str) -> None:
    seen: set[str] = set()
    for name, value in uri.params:
        spec = PARAMS.get(name)
        if spec is None:
            # only the name is quoted: an unknown parameter's value may be a password
            _fail(f"query parameter '{name}' is unknown", text,
                  hint="known parameters: " + ", ".join(PARAMS))
        if name in seen:
            _fail(f"query parameter '{name}' is given twice", text)
        seen.add(name)
        if uri.transport not in spec.transports:
            where = ", ".join(sorted("local" if t is None else t for t in spec.transports))
            _fail(f"query parameter '{name}' does not apply to transport "
                  f"{_transport_name(uri.transport)} (libvirt would ignore it)", text,
                  hint=f"'{name}' applies to: {where}")
        problem = _value_problem(spec, value)
        if problem is not None:
            _fail(f"query parameter '{name}' {problem}", text)
    if uri.param("proxy") == "native" and uri.param("netcat") is not None:
        _fail("query parameter 'netcat' conflicts with proxy=native", text,
              hint="libvirt refuses netcat with the native proxy; drop one")


def _value_problem(spec: _ParamSpec, value: str) -> str | None:
    if value == "":
        return "has no value"
    if spec.kind == "bool":
        return None if value in ("0", "1") else f"must be 0 or 1, got '{value}'"
    if spec.kind == "enum":
        return (None if value in spec.choices
                else f"must be one of {', '.join(spec.choices)}, got '{value}'")
    if spec.kind == "list":
        return _list_problem(spec, value.split(","))
    if spec.kind == "path" and not value.startswith("/"):
        return (f"must be an absolute path, got '{value}' (libvirt resolves relative paths "
                "against the working directory, which differs between notebooks and CI)")
    return None


def _list_problem(spec: _ParamSpec, items: list[str]) -> str | None:
    bad = [item for item in items if item not in spec.choices]
    if bad:
        return f"has unknown item '{bad[0]}' (a comma list of {', '.join(spec.choices)})"
    if len(set(items)) != len(items):
        return "lists an item twice"
    return None


def _decode(part: str, what: str, text: str) -> str:
    if _BAD_ESCAPE.search(part):
        _fail(f"{what} has a bad percent-escape", text)
    try:
        decoded = unquote_to_bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{what} does not decode as UTF-8", text)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        _fail(f"{what} contains a control character", text)
    return decoded


def parse_libvirt_uri(text: str) -> LibvirtUri:
    """Parse and check a libvirt URI (see the module docstring for the rules).

    Example::

        uri = parse_libvirt_uri("qemu+tcp://[::1]:16509/system")
        uri.host, uri.effective_port  # -> ("::1", 16509)
    """
    if not isinstance(text, str):
        raise ConfigError(f"a libvirt URI must be a string, got {type(text).__name__}")
    if not text or any(c.isspace() or ord(c) < 0x20 or ord(c) >= 0x7F for c in text):
        _fail("URI is empty or contains whitespace, control or non-ASCII characters", text,
              hint="percent-encode such characters (str() of a LibvirtUri does)")
    match = _SCHEME.match(text)
    if match is None:
        _fail("not a libvirt URI", text,
              hint="expected driver[+transport]://[user@][host][:port]/path[?params], "
                   "e.g. qemu:///system or qemu+ssh://root@host/system")
    driver, transport = _split_scheme(match.group(1), text)
    rest = text[match.end():]
    if "#" in rest:
        _fail("a '#fragment' is not allowed", text)
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if not slash:
        _fail("path is missing", text, hint="the qemu driver has /system and /session")
    user: str | None = None
    if "@" in authority:
        raw_user, _, authority = authority.rpartition("@")
        if not raw_user:
            _fail("user is empty before '@'", text)
        user = _decode(raw_user, "user", text)
    host, port = _split_host_port(authority, text)
    if host is None and user is not None:
        _fail("host is missing after the user", text)
    return LibvirtUri(driver, transport, user, host, port, "/" + _decode(path, "path", text),
                      _parse_query(query, text), text)


def _split_scheme(scheme: str, text: str) -> tuple[str, str | None]:
    driver, plus, transport = scheme.lower().partition("+")
    if "+" in transport:
        _fail(f"scheme '{scheme}' has more than one '+'", text)
    if plus and not transport:
        _fail("transport is empty after '+'", text)
    return driver, transport or None


def _parse_query(query: str, text: str) -> tuple[tuple[str, str], ...]:
    params: list[tuple[str, str]] = []
    if not query:  # "qemu:///system?" is fine for libvirt too
        return ()
    for section in query.split("&"):
        if not section:
            _fail("query has an empty parameter ('&&' or a trailing '&')", text)
        if ";" in section:
            # libvirt splits on ';' only when there is no '&' at all: ambiguous, refuse it
            _fail("query uses ';' as a separator", text, hint="separate parameters with '&'")
        raw_name, eq, raw_value = section.partition("=")
        if not raw_name:
            _fail("query has a parameter without a name", text)
        name = _decode(raw_name, "a query parameter name", text).lower()
        value = _decode(raw_value, f"query parameter '{name}'", text) if eq else ""
        params.append((name, value))
    return tuple(params)


def _split_host_port(authority: str, text: str) -> tuple[str | None, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            _fail("IPv6 host is missing its closing ']'", text)
        host, after = authority[1:end], authority[end + 1:]
        if after and not after.startswith(":"):
            _fail(f"unexpected '{after}' after the IPv6 host", text)
        problem = host_problem(host) if ":" in host else "is not an IPv6 address"
        if problem is not None:
            _fail(f"host '[{host}]' {problem}", text)
        port_text: str | None = after[1:] if after else None
    else:
        if authority.count(":") > 1:
            _fail(f"IPv6 host '{authority}' must be in brackets", text,
                  hint="e.g. qemu+tcp://[::1]:16509/system")
        host, colon, port_part = authority.partition(":")
        if "%" in host:
            _fail(f"host '{host}' must not be percent-encoded", text)
        port_text = port_part if colon else None
        if not host:
            if port_text is not None:
                _fail("port given without a host", text)
            return None, None
    if port_text is None:
        return host, None
    if not port_text:
        _fail("port is empty after ':'", text)
    if not port_text.isdigit() or not port_text.isascii():
        _fail(f"port '{port_text}' is not a number", text)
    return host, int(port_text)
