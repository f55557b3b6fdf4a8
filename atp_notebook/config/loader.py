"""Load ``atp.yaml`` into a :class:`TransportConfig`; every error names file, line and key.

The format (the lab writes exactly this, see ``atp_notebook.lab.inventory``)::

    transport:
      hosts:                        # optional list
      - id: tls                     # required, unique
        host: 10.0.0.1              # optional address; default URI qemu+ssh://<host>/system
        uri: qemu+tls://10.0.0.1/system?pkipath=/etc/pki/atp   # optional, checked
        tags: [lab, tls]            # optional list of names
      spice:
        vms:                        # required under spice
        - vm_id: atp-vm2            # required, unique
          host: tls                 # optional id of a host above: discover what is missing
          domain: vm2               # optional libvirt name (default vm_id); needs host
          server_addr: 10.0.0.1     # required unless host is given
          port: 5901                # plain port } at least one of them unless host is given
          tls_port: 5902            # TLS port   }
          tls: true                 # default: true when only tls_port is given
          tls_verify: true          # default true; false logs a WARNING
          ca_file: pki/ca-cert.pem  # relative to this file's directory; must exist
          server_name: vm2.example  # TLS name to verify (default server_addr)
          username: alice           # SASL; needs a password and TLS
          password_file: secrets/vm2.pw   # or password_env: VAR, or password: (WARNING)
          channels: [main, display, inputs]  # default: every channel the server offers

Rules:

- The document is one mapping with the single key ``transport``; it must define at least
  one host or Spice VM.  An empty file, other top-level keys, unknown keys anywhere (with a
  "did you mean"), duplicate keys, YAML merge keys (``<<``) and wrong types are errors.
  Types are YAML's own: ``port: "5900"`` is a string, hence an error; ``null`` is never
  taken for "absent" (remove the key instead).
- Ports are 1-65535; ids and tags are names (letters, digits, ``.``, ``_``, ``-``).
- ``tls: true`` needs ``tls_port``; ``tls: false`` needs ``port``; ``ca_file`` and
  ``server_name`` need a TLS port; ``username`` (SASL) needs a password and TLS — each
  unless ``host`` is given, since libvirt's domain XML then supplies the ports.
- Host ids and vm_ids are unique; a VM's ``host`` must name a host in the file.
- Passwords: at most one of ``password`` (plain text in the file, allowed with a WARNING),
  ``password_env`` (the variable must be set and non-empty) and ``password_file`` (relative
  to the YAML file; must be readable; one trailing newline is dropped; a WARNING when group
  or others may read it).  Empty passwords are errors.  Password values never appear in
  errors or logs: YAML syntax errors are reported without the source snippet for that reason.
- Paths (``ca_file``, ``password_file``) expand ``~`` and resolve against the YAML file's
  directory (the working directory for :func:`parse_config` unless ``base_dir`` is given).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from atp_notebook.config.schema import (
    HostInfo,
    Secret,
    SpiceVmConfig,
    TransportConfig,
)
from atp_notebook.config.uri import LibvirtUri, parse_libvirt_uri
from atp_notebook.errors import ConfigError

PKI_HINT = ("libvirt's TLS client reads cacert.pem, clientcert.pem and clientkey.pem from "
            "that directory")

log = logging.getLogger("atp.config")
_T = TypeVar("_T")

CONFIG_NAME = "atp.yaml"
# The lab's default root; mirrors atp_notebook.lab.paths, which config/ may not import.
LAB_DIR = Path("/var/lib/atp-lab")

HOST_KEYS = ("id", "host", "uri", "tags")
VM_KEYS = ("vm_id", "host", "domain", "server_addr", "port", "tls_port", "tls", "tls_verify",
           "ca_file", "server_name", "username", "password", "password_env", "password_file",
           "channels")
PASSWORD_KEYS = ("password", "password_env", "password_file")

_Y = "tag:yaml.org,2002:"
_KINDS = {f"{_Y}str": "a string", f"{_Y}int": "an integer", f"{_Y}bool": "a boolean",
          f"{_Y}float": "a number", f"{_Y}null": "null", f"{_Y}timestamp": "a date"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENTRY = re.compile(r"(hosts|spice_vms)\[(\d+)\]\.(\w+)")
_SCALARS = SafeConstructor()

Fields = dict[str, tuple[Node, Node]]  # key -> (key node, value node)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(node: Node, secret: bool) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = _KINDS.get(node.tag, f"a value tagged {node.tag}")
    if secret or node.tag == f"{_Y}null":
        return kind
    text = str(node.value)
    return f"{kind} ({text[:40]!r}{'...' if len(text) > 40 else ''})"


class _Document:
    """One YAML text being turned into a config: knows where it came from for errors."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, message: str, node: Node, path: str, hint: str | None = None) -> NoReturn:
        raise ConfigError(message, source=self.source, line=_line(node),
                          key_path=path or None, hint=hint)

    # --- structure ----------------------------------------------------------------------

    def mapping(self, node: Node, path: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> Fields:
        if not isinstance(node, MappingNode):
            self.fail(f"expected a mapping, got {_describe(node, False)}", node, path)
        fields: Fields = {}
        for key_node, value_node in node.value:
            if key_node.tag == f"{_Y}merge":
                self.fail("unknown key '<<'", key_node, f"{path}.<<" if path else "<<",
                          hint="YAML merge keys are not supported; write the keys out")
            if not (isinstance(key_node, ScalarNode) and key_node.tag == f"{_Y}str"):
                self.fail(f"keys must be names, got {_describe(key_node, False)}", key_node,
                          path)
            key = str(key_node.value)
            where = f"{path}.{key}" if path else key
            if key in fields:
                self.fail(f"key {key!r} appears twice (first on line "
                          f"{_line(fields[key][0])})", key_node, where)
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = (f"did you mean {close[0]!r}? " if close else "") + "allowed keys: " \
                    + ", ".join(allowed)
                self.fail(f"unknown key {key!r}", key_node, where, hint)
            fields[key] = (key_node, value_node)
        for key in required:
            if key not in fields:
                self.fail(f"missing required key {key!r}", node, path,
                          hint="allowed keys: " + ", ".join(allowed))
        return fields

    def sequence(self, node: Node, path: str) -> Iterator[tuple[Node, str]]:
        if not isinstance(node, SequenceNode):
            self.fail(f"expected a list, got {_describe(node, False)}", node, path)
        for i, item in enumerate(node.value):
            yield item, f"{path}[{i}]"

    # --- scalars ------------------------------------------------------------------------

    def string(self, node: Node, path: str, *, secret: bool = False) -> str:
        if not (isinstance(node, ScalarNode) and node.tag == f"{_Y}str"):
            null = node.tag == f"{_Y}null"
            self.fail(f"expected a string, got {_describe(node, secret)}", node, path,
                      hint="give a value or remove the key" if null
                      else None if secret else "quote it if it is meant as text")
        value = str(node.value)
        if not value:
            self.fail("is empty", node, path)
        return value

    def integer(self, node: Node, path: str) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == f"{_Y}int"):
            self.fail(f"expected an integer, got {_describe(node, False)}", node, path)
        return int(_SCALARS.construct_yaml_int(node))

    def boolean(self, node: Node, path: str) -> bool:
        if not (isinstance(node, ScalarNode) and node.tag == f"{_Y}bool"):
            self.fail(f"expected true or false, got {_describe(node, False)}", node, path)
        return bool(_SCALARS.construct_yaml_bool(node))

    def names(self, node: Node, path: str) -> tuple[str, ...]:
        return tuple(self.string(item, where) for item, where in self.sequence(node, path))

    def path(self, node: Node, path: str) -> Path:
        return (self.base_dir / Path(self.string(node, path)).expanduser()).resolve()

    # --- relocating the schema's own checks -------------------------------------------

    def relocate(self, exc: ConfigError, fields: Fields, entry: Node, path: str) -> NoReturn:
        """Re-raise a schema error (key_path = field name) at that field's line in the file."""
        if exc.source is not None:  # already placed in the file
            raise exc
        key = exc.key_path or ""
        node = fields[key][1] if key in fields else entry
        raise ConfigError(exc.message, source=self.source, line=_line(node),
                          key_path=f"{path}.{key}" if key else path, hint=exc.hint) from exc


def parse_config(text: str, source: str = "<string>", *,
                 base_dir: Path | None = None) -> TransportConfig:
    """Parse YAML text (see the module docstring for the format and rules).

    Example::

        cfg = parse_config("transport:\\n  hosts:\\n  - id: local\\n")
        cfg.host("local").effective_uri  # qemu:///system
    """
    doc = _Document(source, base_dir if base_dir is not None else Path.cwd())
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        # from None: the YAML error's own text quotes the source line, which may hold a
        # password; the line number is all the reader needs.
        raise ConfigError(f"invalid YAML: {problem}", source=source,
                          line=None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "reason", type(exc).__name__)
        raise ConfigError(f"invalid YAML: {reason}", source=source) from None
    if root is None:
        raise ConfigError("the file is empty", source=source,
                          hint="it needs a 'transport:' mapping with hosts and/or spice.vms")
    top = doc.mapping(root, "", ("transport",), required=("transport",))
    transport = doc.mapping(top["transport"][1], "transport", ("hosts", "spice"))
    hosts: list[tuple[HostInfo, Fields, Node]] = []
    if "hosts" in transport:
        for item, path in doc.sequence(transport["hosts"][1], "transport.hosts"):
            hosts.append(_host(doc, item, path))
    vms: list[tuple[SpiceVmConfig, Fields, Node]] = []
    if "spice" in transport:
        spice = doc.mapping(transport["spice"][1], "transport.spice", ("vms",), ("vms",))
        for item, path in doc.sequence(spice["vms"][1], "transport.spice.vms"):
            vms.append(_vm(doc, item, path))
    if not hosts and not vms:
        doc.fail("defines no hosts and no Spice VMs", top["transport"][1], "transport")
    _check_unique(doc, hosts, "id", "transport.hosts", lambda h: h.id)
    _check_unique(doc, vms, "vm_id", "transport.spice.vms", lambda v: v.vm_id)
    try:
        return TransportConfig(tuple(h for h, _, _ in hosts), tuple(v for v, _, _ in vms),
                               source=source)
    except ConfigError as exc:
        match = _ENTRY.fullmatch(exc.key_path or "")
        if match is None:
            raise
        kind, index, key = match.group(1), int(match.group(2)), match.group(3)
        entries = hosts if kind == "hosts" else vms
        prefix = "transport.hosts" if kind == "hosts" else "transport.spice.vms"
        _, fields, node = entries[index]
        doc.relocate(ConfigError(exc.message, key_path=key, hint=exc.hint), fields, node,
                     f"{prefix}[{index}]")


def _check_unique(doc: _Document, entries: Sequence[tuple[_T, Fields, Node]], key: str,
                  prefix: str, ident: Callable[[_T], str]) -> None:
    first: dict[str, int] = {}
    for i, (obj, fields, _) in enumerate(entries):
        value = ident(obj)
        node = fields[key][1]
        if value in first:
            j = first[value]
            doc.fail(f"{key} {value!r} is already used by {prefix}[{j}] (line "
                     f"{_line(entries[j][1][key][1])})", node, f"{prefix}[{i}].{key}")
        first[value] = i


def _host(doc: _Document, node: Node, path: str) -> tuple[HostInfo, Fields, Node]:
    fields = doc.mapping(node, path, HOST_KEYS, required=("id",))
    host_id = doc.string(fields["id"][1], f"{path}.id")
    address = doc.string(fields["host"][1], f"{path}.host") if "host" in fields else None
    uri = None
    if "uri" in fields:
        uri_node = fields["uri"][1]
        try:
            uri = parse_libvirt_uri(doc.string(uri_node, f"{path}.uri"))
        except ConfigError as exc:
            if exc.source is not None:
                raise
            doc.fail(exc.message, uri_node, f"{path}.uri", exc.hint)
        _check_client_files(doc, uri, uri_node, f"{path}.uri")
    tags = doc.names(fields["tags"][1], f"{path}.tags") if "tags" in fields else ()
    try:
        return HostInfo(host_id, address, uri, tags), fields, node
    except ConfigError as exc:
        doc.relocate(exc, fields, node, path)


def _require_readable_file(doc: _Document, label: str, file: Path, node: Node, where: str,
                           *, hint: str | None = None) -> None:
    """Fail unless ``file`` is a regular file this process can read."""
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "does not exist"
        doc.fail(f"{label} '{file}' {what}", node, where, hint=hint)
    if not os.access(file, os.R_OK):
        doc.fail(f"{label} '{file}' cannot be read (permission denied)", node, where)


def _check_client_files(doc: _Document, uri: LibvirtUri, node: Node, where: str) -> None:
    """Files the libvirt client reads on this machine must be there now: a missing key or
    CA is a mistake in the file, not a host that is down (that would be retried for ever).
    The URI parser has made them absolute already. ``socket`` is not checked: over ssh it
    is a remote path, and a local one appears only once its daemon has started."""
    if (keyfile := uri.param("keyfile")) is not None:
        _require_readable_file(doc, "keyfile", Path(keyfile), node, where,
                               hint="the ssh private key the client logs in with")
    if (pkipath := uri.param("pkipath")) is not None:
        pki = Path(pkipath)
        if not pki.is_dir():
            what = "is a file, not a directory" if pki.exists() else "does not exist"
            doc.fail(f"pkipath '{pki}' {what}", node, where, hint=PKI_HINT)
        if not (pki / "cacert.pem").is_file():
            doc.fail(f"pkipath '{pki}' has no cacert.pem", node, where, hint=PKI_HINT)


def _vm(doc: _Document, node: Node, path: str) -> tuple[SpiceVmConfig, Fields, Node]:
    fields = doc.mapping(node, path, VM_KEYS, required=("vm_id",))

    def value(key: str) -> tuple[Node, str] | None:
        return (fields[key][1], f"{path}.{key}") if key in fields else None

    strings = {k: doc.string(*v) for k in ("vm_id", "host", "domain", "server_addr",
                                           "server_name", "username") if (v := value(k))}
    ports = {k: doc.integer(*v) for k in ("port", "tls_port") if (v := value(k))}
    flags = {k: doc.boolean(*v) for k in ("tls", "tls_verify") if (v := value(k))}
    # Default tls from the ports: a VM that has only a TLS port is reached over TLS.
    flags.setdefault("tls", "port" not in ports and "tls_port" in ports)
    ca_file = None
    if (v := value("ca_file")) is not None:
        ca_file = doc.path(*v)
        _require_readable_file(doc, "ca_file", ca_file, *v)
    channels: tuple[str, ...] = ()
    if (v := value("channels")) is not None:
        channels = doc.names(*v)
        if not channels:
            doc.fail("is empty", *v, hint="omit channels to allow every channel")
    password = _password(doc, fields, path)
    try:
        vm = SpiceVmConfig(
            strings["vm_id"], strings.get("server_addr"), ports.get("port"),
            ports.get("tls_port"), password, ca_file=ca_file,
            username=strings.get("username"), host=strings.get("host"),
            domain=strings.get("domain"), channels=channels,
            server_name=strings.get("server_name"), **flags)
    except ConfigError as exc:
        doc.relocate(exc, fields, node, path)
    return vm, fields, node


def _password(doc: _Document, fields: Fields, path: str) -> Secret | None:
    given = [k for k in PASSWORD_KEYS if k in fields]
    if not given:
        return None
    if len(given) > 1:
        doc.fail(f"give at most one of {', '.join(PASSWORD_KEYS)}, not both {given[0]} and "
                 f"{given[1]}", fields[given[1]][0], f"{path}.{given[1]}")
    key = given[0]
    node, where = fields[key][1], f"{path}.{key}"
    if key == "password":
        secret = doc.string(node, where, secret=True)
        log.warning("%s:%d: %s is stored in plain text; prefer password_env or "
                    "password_file", doc.source, _line(node), where)
        return Secret(secret)
    if key == "password_env":
        name = doc.string(node, where)
        if not _ENV_NAME.fullmatch(name):
            doc.fail(f"{name!r} is not an environment variable name", node, where)
        env = os.environ.get(name)
        if env is None:
            doc.fail(f"environment variable {name} is not set", node, where)
        if not env:
            doc.fail(f"environment variable {name} is empty", node, where)
        return Secret(env)
    return Secret(_read_password_file(doc, doc.path(node, where), node, where))


def _read_password_file(doc: _Document, file: Path, node: Node, where: str) -> str:
    try:
        data = file.read_bytes()
        mode = file.stat().st_mode
    except FileNotFoundError:
        doc.fail(f"password_file '{file}' does not exist", node, where)
    except IsADirectoryError:
        doc.fail(f"password_file '{file}' is a directory", node, where)
    except OSError as exc:
        doc.fail(f"password_file '{file}' cannot be read ({exc.strerror})", node, where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        doc.fail(f"password_file '{file}' is not UTF-8 text", node, where)
    # Files written by `echo` end in one newline that is not part of the password.
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not text:
        doc.fail(f"password_file '{file}' is empty", node, where)
    if "\n" in text:
        doc.fail(f"password_file '{file}' has more than one line", node, where,
                 hint="the file should hold only the password")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s:%d: %s: '%s' is readable by group or others (mode %o); "
                    "chmod 600 it", doc.source, _line(node), where, file,
                    stat.S_IMODE(mode))
    return text


def load_config(path: str | os.PathLike[str] | None = None) -> TransportConfig:
    """Load a config file; with no path, the one :func:`find_config` finds.

    Example::

        cfg = load_config("/var/lib/atp-lab/atp.yaml")
        cfg.spice_vm("atp-vm1").port  # 5901
    """
    if path is None:
        found = find_config()
        if found is None:
            raise ConfigError(
                "no configuration found", hint=f"set $ATP_CONFIG, create ./{CONFIG_NAME}, "
                "or run `atp-lab up` to get the lab's")
        path = found
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror})",
                          source=str(file)) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("the config file is not UTF-8 text", source=str(file)) from exc
    return parse_config(text, str(file), base_dir=file.resolve().parent)


def find_config() -> Path | None:
    """The config file to use: ``$ATP_CONFIG``, ``./atp.yaml``, then the lab's.

    The lab's is ``$ATP_LAB_DIR/atp.yaml``, or ``/var/lib/atp-lab/atp.yaml`` when
    ``ATP_LAB_DIR`` is unset.  A set ``ATP_CONFIG`` that names no file is an error, not a
    reason to fall back silently to another file.

    Example::

        find_config()  # PosixPath('/var/lib/atp-lab/atp.yaml') on a lab machine
    """
    explicit = os.environ.get("ATP_CONFIG")
    if explicit:
        file = Path(explicit).expanduser()
        if not file.is_file():
            raise ConfigError(f"ATP_CONFIG names '{explicit}', which is not a file",
                              source="$ATP_CONFIG",
                              hint="fix or unset ATP_CONFIG to use ./atp.yaml or the lab's")
        return file.resolve()
    local = Path(CONFIG_NAME)
    if local.is_file():
        return local.resolve()
    lab_dir = os.environ.get("ATP_LAB_DIR")
    lab = (Path(lab_dir) if lab_dir else LAB_DIR) / CONFIG_NAME
    return lab if lab.is_file() else None
