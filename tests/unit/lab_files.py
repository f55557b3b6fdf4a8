"""Stand-ins for the files the lab's atp.yaml names, so it loads without a lab.

The loader checks that client-side files exist (Spice CA, password files, libvirt's PKI
directory, the ssh key); their contents are not parsed at load time.
"""

from __future__ import annotations

from atp_notebook.lab.paths import LabPaths

PEM = "-----BEGIN CERTIFICATE-----\n"


def write_lab_client_files(paths: LabPaths, password: str) -> None:
    """The files ``config_document(paths)`` names, with ``password`` for every Spice VM."""
    paths.spice_pki.mkdir(parents=True, exist_ok=True)
    (paths.spice_pki / "ca-cert.pem").write_text(PEM)
    paths.libvirt_client_pki.mkdir(parents=True, exist_ok=True)
    (paths.libvirt_client_pki / "cacert.pem").write_text(PEM)
    paths.ssh_client_key.parent.mkdir(parents=True, exist_ok=True)
    paths.ssh_client_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    paths.ssh_client_key.chmod(0o600)
    paths.secrets_dir.mkdir(parents=True, exist_ok=True)
    for vm in ("atp-vm2", "atp-sasl"):  # the VMs with a password
        secret = paths.spice_password_file(vm)
        secret.write_text(password + "\n")
        secret.chmod(0o600)
