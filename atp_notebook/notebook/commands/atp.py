"""``%atp``: the session -- status, hosts, VMs, connect and disconnect.

Forms::

    %atp [status]          # config, settings, hosts, Spice VMs (passwords never shown)
    %atp hosts             # each host: URI (password-like parameters masked), tags, state
    %atp vms               # every VM on every reachable host
    %atp connect [PATH]    # a new session from PATH (or the default search)
    %atp disconnect        # close the session and the open ports

Example::

    parse_atp_line("connect ~/lab.yaml")      # AtpConnect(path='/root/lab.yaml')
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from atp_notebook.notebook.commands.words import split_args, take_word, usage
from atp_notebook.notebook.results import TableResult
from atp_notebook.session import Session

USAGE = "%atp [status | hosts | vms | connect [PATH] | disconnect]"
# a URI query value whose name looks like a secret is masked (libvirt URIs rarely carry one,
# but a hand-written atp.yaml may); paths such as keyfile= are shown: they are not secrets
_SECRET_PARAM = re.compile(r"([?&;][^=&;#]*(?:pass|secret|token|credential)[^=&;#]*=)[^&;#]*",
                           re.IGNORECASE)
_USERINFO_PASSWORD = re.compile(r"^([a-z0-9+.-]+://[^/@:]*):[^/@]*@", re.IGNORECASE)


@dataclass(frozen=True)
class AtpStatus:
    pass


@dataclass(frozen=True)
class AtpHosts:
    pass


@dataclass(frozen=True)
class AtpVms:
    pass


@dataclass(frozen=True)
class AtpConnect:
    path: str | None


@dataclass(frozen=True)
class AtpDisconnect:
    pass


AtpRequest = AtpStatus | AtpHosts | AtpVms | AtpConnect | AtpDisconnect


def parse_atp_line(line: str) -> AtpRequest:
    """The request a ``%atp`` line asks for; UsageError (one line + hint) otherwise."""
    word, rest = take_word(line)
    simple: dict[str, AtpRequest] = {"": AtpStatus(), "status": AtpStatus(),
                                     "hosts": AtpHosts(), "vms": AtpVms(),
                                     "disconnect": AtpDisconnect()}
    if word in simple:
        if rest:
            raise usage(f"%atp {word} takes no arguments, not {rest!r}", USAGE)
        return simple[word]
    if word == "connect":
        words = split_args(rest, USAGE)
        if len(words) > 1:
            raise usage("connect takes one path (quote it if it has spaces)", USAGE)
        return AtpConnect(os.path.expanduser(words[0]) if words else None)
    raise usage(f"unknown %atp subcommand {word!r}", USAGE)


def redact_uri(uri: str) -> str:
    """``uri`` with password-like query values and a ``user:password@`` masked."""
    return _USERINFO_PASSWORD.sub(r"\1:***@", _SECRET_PARAM.sub(r"\1***", uri))


def hosts_table(session: Session) -> TableResult:
    """Each host's connection: its state, how often it was opened and lost, and why it last
    failed (what a test engineer asks first of a host shown ``lost``)."""
    hosts = session.hosts()
    rows = [[h.id, redact_uri(h.uri), ", ".join(h.tags), h.state, str(h.stats.opens),
             str(h.stats.losses), redact_uri(h.stats.last_error or "")] for h in hosts]
    return TableResult(["host", "uri", "tags", "state", "opens", "losses", "last error"],
                       rows, hosts, f"{len(rows)} host{'s' * (len(rows) != 1)}")


def vms_table(session: Session) -> TableResult:
    vms = session.vms()
    rows = [[v.name, v.state, v.host_id, ", ".join(v.also_on)] for v in vms]
    return TableResult(["vm", "state", "host", "also on"], rows, vms,
                       f"{len(rows)} VM{'s' * (len(rows) != 1)}")


def status_table(session: Session, settings: Sequence[tuple[str, str]],
                 open_ports: Sequence[str]) -> TableResult:
    """Configuration source, settings, hosts and Spice VMs; a password shows as "set"."""
    config = session.config
    rows = [["config", config.source or "(in memory)"], *[[k, v] for k, v in settings]]
    rows += [[f"host {h.id}", f"{h.state}  {redact_uri(h.uri)}"] for h in session.hosts()]
    for vm in config.spice_vms:
        ports = ", ".join(p for p in (f"port {vm.port}" if vm.port else "",
                                      f"tls_port {vm.tls_port}" if vm.tls_port else "") if p)
        where = vm.server_addr or f"via host {vm.host}"
        secret = "password set" if vm.password is not None else "no password"
        rows.append([f"spice {vm.vm_id}",
                     f"{where} {ports or '(ports from libvirt)'}, tls={vm.tls}, {secret}"])
    rows.append(["open ports", ", ".join(open_ports) or "none"])
    return TableResult(["what", "value"], rows, session, "atp session")
