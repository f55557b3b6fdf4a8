"""The lab's VMs as libvirt domains: their XML, start/stop, and waiting for the agent.

The VMs boot the lab's kernel + initramfs (no disk) under TCG: ``/dev/kvm`` exists on the
machines we target, but nested KVM hangs guests there.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import libvirt
import libvirt_qemu

from atp_notebook.errors import LabError
from atp_notebook.lab import boot_watch
from atp_notebook.lab.boot_watch import BootingGuest
from atp_notebook.lab.files import write_atomic
from atp_notebook.lab.guest import GuestImage
from atp_notebook.lab.paths import AGENT_PORT_NAME, LOOPBACK, TEST_PORT_NAME, LabPaths, VmSpec
from atp_notebook.libvirt_errors import silence_libvirt

log = logging.getLogger("atp.lab")

LAB_NAMESPACE = "https://atp-notebook.invalid/lab"
# Bumped when the domain XML changes in a way a running VM must be restarted for.
DOMAIN_REVISION = "5"  # 4, 5: atp-vm2 gained a plain port that serves main only
MEMORY_MIB = 256
DISK_SIZE = "64M"
AGENT_PING = json.dumps({"execute": "guest-ping"})


def open_libvirt(uri: str = "qemu:///system") -> libvirt.virConnect:
    """The lab's libvirt connection; libvirt's own printing of errors is silenced first
    (here, not at import: importing the lab must not change libvirt for the process)."""
    silence_libvirt()
    return libvirt.open(uri)


def spice_password(paths: LabPaths, vm: VmSpec) -> str | None:
    """The VM's Spice password, made once and kept in a 0600 file."""
    if not vm.spice_password:
        return None
    path = paths.spice_password_file(vm.name)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    write_atomic(path, password + "\n", 0o600)
    return password


def domain_xml(
    paths: LabPaths, vm: VmSpec, guest: GuestImage, password: str | None, uuid: str | None = None
) -> str:
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = vm.name
    if uuid is not None:  # redefining an existing domain must keep its identity
        ET.SubElement(dom, "uuid").text = uuid
    meta = ET.SubElement(dom, "metadata")
    ET.SubElement(meta, f"{{{LAB_NAMESPACE}}}lab", digest=_revision(guest))
    ET.SubElement(dom, "memory", unit="MiB").text = str(MEMORY_MIB)
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = str(guest.kernel)
    ET.SubElement(os_el, "initrd").text = str(guest.initrd)
    ET.SubElement(os_el, "cmdline").text = f"{guest.cmdline} atp.hostname={vm.name}"
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"

    dev = ET.SubElement(dom, "devices")
    # A small qcow2 disk (unused by the guest, which runs from its initramfs) gives QEMU a
    # place to store internal snapshots: savevm/loadvm need one writable qcow2 image.
    disk = ET.SubElement(dev, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2")
    ET.SubElement(disk, "source", file=str(disk_path(paths, vm.name)))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    serial = ET.SubElement(dev, "serial", type="file")
    ET.SubElement(serial, "source", path=str(paths.console_log(vm.name)))
    ET.SubElement(serial, "target", port="0")
    # UNIX-socket channels (no path: libvirt picks one): virDomainOpenChannel refuses ptys.
    for port_name in (AGENT_PORT_NAME, TEST_PORT_NAME):
        channel = ET.SubElement(dev, "channel", type="unix")
        ET.SubElement(channel, "target", type="virtio", name=port_name)

    graphics = ET.SubElement(dev, "graphics", type="spice", autoport="no", listen=LOOPBACK)
    if vm.spice_port is not None:
        graphics.set("port", str(vm.spice_port))
    if vm.spice_tls_port is not None:
        graphics.set("tlsPort", str(vm.spice_tls_port))
        if vm.spice_port is None:
            graphics.set("defaultMode", "secure")
    if password is not None:
        graphics.set("passwd", password)
    ET.SubElement(graphics, "listen", type="address", address=LOOPBACK)
    # Named one by one, with the default left at 'any': libvirt cannot exempt a channel
    # from defaultMode='secure' (it drops mode='any' as the default value, and 'insecure'
    # would refuse main over TLS, which the lab's own config uses).
    for channel_name in vm.spice_secure_channels:
        ET.SubElement(graphics, "channel", name=channel_name, mode="secure")

    video = ET.SubElement(dev, "video")
    ET.SubElement(video, "model", type="qxl", vram="16384", heads="1")
    # a virtio tablet (absolute) lets Spice offer client mouse mode once the guest's driver
    # is up; the PS/2 mouse takes the relative motion of server mode
    ET.SubElement(dev, "input", type="tablet", bus="virtio")
    ET.SubElement(dev, "input", type="mouse", bus="ps2")
    ET.SubElement(dev, "input", type="keyboard", bus="ps2")
    ET.SubElement(dev, "memballoon", model="none")
    return ET.tostring(dom, encoding="unicode")


def disk_path(paths: LabPaths, name: str) -> Path:
    return paths.vm_dir / name / "disk.qcow2"


def ensure_disk(paths: LabPaths, name: str) -> None:
    path = disk_path(paths, name)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), DISK_SIZE],
                          capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise LabError(f"qemu-img could not create {path}: {proc.stderr.strip()}",
                       hint="apt-get install qemu-utils")


def _revision(guest: GuestImage) -> str:
    return f"{guest.digest}-r{DOMAIN_REVISION}"


def _lab_digest(dom: libvirt.virDomain) -> str | None:
    try:
        meta = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, LAB_NAMESPACE, 0)
    except libvirt.libvirtError:
        return None
    return ET.fromstring(meta).get("digest")


def lookup(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def ensure_defined(
    conn: libvirt.virConnect, paths: LabPaths, vm: VmSpec, guest: GuestImage
) -> libvirt.virDomain:
    """Define the VM; a running VM built from an older guest image is restarted."""
    existing = lookup(conn, vm.name)
    if existing is not None and _lab_digest(existing) is None:
        raise LabError(
            f"a domain named {vm.name!r} exists and was not defined by atp-lab",
            hint=f"rename or undefine it (`virsh undefine {vm.name}`), then run `atp-lab up`",
        )
    paths.console_log(vm.name).parent.mkdir(parents=True, exist_ok=True)
    ensure_disk(paths, vm.name)
    uuid = existing.UUIDString() if existing is not None else None
    xml = domain_xml(paths, vm, guest, spice_password(paths, vm), uuid)
    if existing is not None and existing.isActive() and _lab_digest(existing) != _revision(guest):
        log.info("%s runs an older guest image or domain: restarting it", vm.name)
        existing.destroy()
    return conn.defineXML(xml)


def start(dom: libvirt.virDomain) -> bool:
    """Start the domain unless it runs (a paused one is resumed); True if we started it."""
    state = dom.state()[0]
    if state == libvirt.VIR_DOMAIN_RUNNING:
        return False
    if state == libvirt.VIR_DOMAIN_PAUSED:
        dom.resume()
        return False
    log.info("starting %s", dom.name())
    try:
        dom.create()
    except libvirt.libvirtError as exc:
        raise LabError(f"cannot start {dom.name()}: {exc.get_error_message()}") from exc
    return True


def agent_answers(dom: libvirt.virDomain, timeout_s: int = 2) -> bool:
    try:
        libvirt_qemu.qemuAgentCommand(dom, AGENT_PING, timeout_s, 0)
    except libvirt.libvirtError:
        return False
    return True


def booting_guest(dom: libvirt.virDomain, paths: LabPaths) -> BootingGuest:
    """A domain as :func:`boot_watch.wait_for_agents` sees it: probe, console, reset."""
    return BootingGuest(dom.name(), partial(agent_answers, dom),
                        paths.console_log(dom.name()), partial(dom.reset, 0))


def wait_for_agents(
    doms: list[libvirt.virDomain],
    paths: LabPaths,
    timeout: float,
    others: Sequence[BootingGuest] = (),
) -> None:
    """Wait until every domain's guest agent answers ``guest-ping`` (hung guests are reset).

    ``others`` adds VMs that are no libvirt domains (the SASL VM), so all guests boot in
    parallel against one deadline and one error names every silent one.
    """
    boot_watch.wait_for_agents([booting_guest(d, paths) for d in doms] + list(others), timeout)


def destroy_and_undefine(conn: libvirt.virConnect, name: str) -> bool:
    """Stop and forget a lab VM; only domains carrying the lab's metadata are touched."""
    dom = lookup(conn, name)
    if dom is None or _lab_digest(dom) is None:
        return False
    if dom.isActive():
        log.info("stopping %s", name)
        dom.destroy()
    dom.undefine()
    return True


def qemu_pid(name: str) -> int | None:
    """The QEMU process of a running domain, from libvirt's own pid file."""
    try:
        return int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
