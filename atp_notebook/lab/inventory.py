"""What the lab offers its users: four host entries to one libvirtd, the VMs, and the
``atp.yaml`` that describes them in the toolkit's configuration format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from atp_notebook.lab.files import write_if_changed
from atp_notebook.lab.paths import (
    LAB_VMS,
    LOOPBACK,
    SASL_USERNAME,
    SASL_VM,
    SSH_PORT,
    LabPaths,
    VmSpec,
)


@dataclass(frozen=True)
class LabHost:
    """One libvirt host entry; all four reach the same libvirtd by different transports."""

    id: str
    host: str
    uri: str
    tags: tuple[str, ...]


def lab_hosts(paths: LabPaths) -> tuple[LabHost, ...]:
    tls = f"qemu+tls://{LOOPBACK}/system?pkipath={paths.libvirt_client_pki}"
    ssh = (
        f"qemu+ssh://root@{LOOPBACK}:{SSH_PORT}/system"
        f"?keyfile={paths.ssh_client_key}&no_verify=1&no_tty=1"
    )
    return (
        LabHost("local", "localhost", "qemu:///system", ("lab", "unix")),
        LabHost("tcp", LOOPBACK, f"qemu+tcp://{LOOPBACK}/system", ("lab", "tcp")),
        LabHost("tls", LOOPBACK, tls, ("lab", "tls")),
        LabHost("ssh", LOOPBACK, ssh, ("lab", "ssh")),
    )


def spice_entry(paths: LabPaths, vm: VmSpec, host: str | None) -> dict[str, Any]:
    """One ``transport.spice.vms`` item; ``host`` None for a VM that is no libvirt domain."""
    entry: dict[str, Any] = {"vm_id": vm.name}
    if host is not None:
        entry["host"] = host
    entry["server_addr"] = LOOPBACK
    if vm.spice_port is not None:
        entry["port"] = vm.spice_port
    if vm.spice_tls_port is not None:
        entry["tls_port"] = vm.spice_tls_port
    # where a TLS port exists the lab's clients start every channel on it (atp-vm2's plain
    # port serves only main, for tests of the move to TLS: they set tls: false themselves)
    entry["tls"] = vm.spice_tls_port is not None
    if vm.spice_tls_port is not None:
        entry["tls_verify"] = True
        entry["ca_file"] = str(paths.spice_pki / "ca-cert.pem")
    if vm.name == SASL_VM.name:
        entry["username"] = SASL_USERNAME
    if vm.spice_password:
        entry["password_file"] = str(paths.spice_password_file(vm.name))
    return entry


def config_document(paths: LabPaths) -> dict[str, Any]:
    hosts = [
        {"id": h.id, "host": h.host, "uri": h.uri, "tags": list(h.tags)}
        for h in lab_hosts(paths)
    ]
    vms = [spice_entry(paths, vm, "local") for vm in LAB_VMS]
    # no host: the SASL VM runs outside libvirt, so nothing could be discovered from it
    vms.append(spice_entry(paths, SASL_VM, None))
    return {"transport": {"hosts": hosts, "spice": {"vms": vms}}}


HEADER = """\
# Written by `atp-lab up`: the lab's hosts and VMs for atp-notebook.
# Four host entries reach the same libvirtd over each transport; the Spice password of
# atp-vm2 and the SASL password of atp-sasl are read from their password_file (mode 0600),
# never written here. atp-sasl is a QEMU outside libvirt (Spice over TLS with SASL).
"""


def write_config(paths: LabPaths) -> Path:
    text = HEADER + yaml.safe_dump(config_document(paths), sort_keys=False)
    write_if_changed(paths.config_file, text, 0o644)
    return paths.config_file
