"""The lab's preflight checks, configuration text and inventory, without starting anything."""

from __future__ import annotations

import os
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from atp_notebook.errors import LabError
from atp_notebook.lab import daemons
from atp_notebook.lab.domains import domain_xml
from atp_notebook.lab.guest import GuestImage
from atp_notebook.lab.inventory import config_document, lab_hosts
from atp_notebook.lab.paths import LAB_VMS, LabPaths, VmSpec
from atp_notebook.lab.system import check_debian, check_ports_free, missing_packages

OS_RELEASES = [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', None),
    ('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\nVERSION_ID="11"\n',
     "Debian GNU/Linux 11 (bullseye)"),
    ('PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n', "Ubuntu 24.04 LTS"),
    ("ID=debian\n", "debian None"),
    ("", "None None"),
]


@pytest.mark.parametrize(("text", "named"), OS_RELEASES)
def test_only_debian_12_passes(tmp_path: Path, text: str, named: str | None) -> None:
    path = tmp_path / "os-release"
    path.write_text(text)
    if named is None:
        check_debian(path)
        return
    with pytest.raises(LabError) as err:
        check_debian(path)
    assert named in str(err.value) and "Debian 12" in str(err.value)
    assert err.value.hint == "run the lab on a Debian 12 (bookworm) machine"


def test_unreadable_os_release_is_a_lab_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"cannot read .*missing"):
        check_debian(tmp_path / "missing")


def test_a_taken_port_is_named_with_its_purpose() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LabError) as err:
            check_ports_free({port: "what the lab wanted it for"})
    assert f"127.0.0.1:{port} (what the lab wanted it for)" in err.value.message
    assert f"ss -ltnp 'sport = :{port}'" in str(err.value.hint)
    check_ports_free({port: "free again"})  # released: no error


def test_missing_packages_names_what_dpkg_does_not_have() -> None:
    assert missing_packages(["dpkg", "atp-no-such-package"]) == ["atp-no-such-package"]


def test_pid_alive_checks_the_executable() -> None:
    me = os.getpid()
    assert daemons.pid_alive(me)
    assert daemons.pid_alive(me, os.path.realpath(f"/proc/{me}/exe"))
    assert not daemons.pid_alive(me, "/usr/sbin/libvirtd")
    assert not daemons.pid_alive(2**22 + 1)


def test_a_stale_pid_file_means_not_running(tmp_path: Path) -> None:
    daemon = daemons.Daemon("x", "/usr/sbin/libvirtd", tmp_path / "x.pid")
    assert daemon.pid() is None
    daemon.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not libvirtd
    assert daemon.pid() is None
    assert daemon.stop() is False
    assert not daemon.pid_file.exists()


def test_libvirtd_listens_on_loopback_with_the_lab_certificates(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    conf = daemons.libvirtd_conf(paths)
    assert 'listen_addr = "127.0.0.1"' in conf
    assert f'cert_file = "{paths.libvirt_server_pki}/servercert.pem"' in conf
    assert 'tcp_port = "16509"' in conf and 'tls_port = "16514"' in conf
    qemu = daemons.qemu_conf(paths)
    assert f'spice_tls_x509_cert_dir = "{paths.spice_pki}"' in qemu
    assert "ListenAddress 127.0.0.1" in daemons.sshd_conf(paths)


def test_four_hosts_reach_one_libvirtd_by_each_transport(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    uris = {h.id: h.uri for h in lab_hosts(paths)}
    assert uris == {
        "local": "qemu:///system",
        "tcp": "qemu+tcp://127.0.0.1/system",
        "tls": f"qemu+tls://127.0.0.1/system?pkipath={paths.libvirt_client_pki}",
        "ssh": f"qemu+ssh://root@127.0.0.1:2222/system?keyfile={paths.ssh_client_key}"
               "&no_verify=1&no_tty=1",
    }


def test_the_config_names_the_password_file_not_the_password(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    doc = config_document(paths)
    vm1, vm2, sasl = doc["transport"]["spice"]["vms"]
    assert vm1 == {"vm_id": "atp-vm1", "host": "local", "server_addr": "127.0.0.1",
                   "port": 5901, "tls": False}
    # the plain port serves only main (tests of NEED_SECURED); the lab's clients start on TLS
    assert (vm2["port"], vm2["tls_port"], vm2["tls"]) == (5904, 5902, True)
    assert vm2["ca_file"] == str(paths.spice_pki / "ca-cert.pem")
    assert vm2["password_file"] == str(paths.spice_password_file("atp-vm2"))
    assert "password" not in vm2
    assert sasl["vm_id"] == "atp-sasl" and "host" not in sasl  # a QEMU outside libvirt
    assert sasl["password_file"] == str(paths.spice_password_file("atp-sasl"))
    assert "password" not in sasl
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc


def test_domain_xml_has_unix_channels_spice_and_the_guest(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    guest = GuestImage(tmp_path / "vmlinuz", tmp_path / "initrd.img", "console=ttyS0", "d1")
    vm1 = ET.fromstring(domain_xml(paths, LAB_VMS[0], guest, None))
    vm2 = ET.fromstring(domain_xml(paths, LAB_VMS[1], guest, "s3cret"))
    assert vm1.get("type") == "qemu"  # TCG: nested KVM hangs guests
    assert vm1.findtext("os/cmdline") == "console=ttyS0 atp.hostname=atp-vm1"
    channels = vm1.findall("devices/channel")
    assert [(c.get("type"), c.find("target").get("name")) for c in channels] == [  # type: ignore[union-attr]
        ("unix", "org.qemu.guest_agent.0"), ("unix", "com.atp.test.0")]
    g1 = vm1.find("devices/graphics")
    g2 = vm2.find("devices/graphics")
    assert g1 is not None and g2 is not None
    assert (g1.get("port"), g1.get("tlsPort"), g1.get("passwd")) == ("5901", None, None)
    assert (g2.get("port"), g2.get("tlsPort"), g2.get("passwd")) == ("5904", "5902", "s3cret")
    # every channel needs TLS but main, which may link on either port
    assert g2.get("defaultMode") is None  # libvirt's default: 'any'
    modes = {c.get("name"): c.get("mode") for c in g2.findall("channel")}
    assert modes == dict.fromkeys(("display", "inputs", "cursor", "playback", "record",
                                   "smartcard", "usbredir"), "secure")
    assert g1.get("defaultMode") is None and g1.findall("channel") == []
    sasl_like = VmSpec("tls-only", spice_port=None, spice_tls_port=5999, spice_password=False)
    g3 = ET.fromstring(domain_xml(paths, sasl_like, guest, None)).find("devices/graphics")
    assert g3 is not None and g3.get("defaultMode") == "secure"
