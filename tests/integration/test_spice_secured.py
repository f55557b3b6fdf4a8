"""NEED_SECURED against a real server: a channel the server wants over TLS relinks there.

The lab's atp-vm2 serves main on its plain port (5904) and tells every other channel
NEED_SECURED there: they must link on its TLS port (5902). The lab's own config starts every
channel on TLS (``tls: true``); these tests take that entry and start on the plain port.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from atp_notebook.errors import TransportError
from atp_notebook.lab.paths import LAB_VMS, LabPaths
from atp_notebook.lab.status import LabStatus
from atp_notebook.loop import run
from atp_notebook.session import Session, connect
from atp_notebook.spice.inputs import SpiceKeyboard
from atp_notebook.spice.proto.constants import ChannelType
from tests.integration.waiting import wait_for_guest_file

VM = "atp-vm2"
SPEC = next(v for v in LAB_VMS if v.name == VM)
PLAIN, TLS = SPEC.spice_port, SPEC.spice_tls_port
RELINK = "server wants TLS for this channel: relinking on the TLS port"


def _lab_config_with(lab_paths: LabPaths, tmp_path: Path,
                     change: Callable[[dict[str, Any]], None]) -> Path:
    """The lab's atp.yaml with atp-vm2's entry changed by ``change``."""
    doc = yaml.safe_load(lab_paths.config_file.read_text())
    (entry,) = [v for v in doc["transport"]["spice"]["vms"] if v["vm_id"] == VM]
    change(entry)
    path = tmp_path / "atp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _plain_first(entry: dict[str, Any]) -> None:
    assert (entry["port"], entry["tls_port"]) == (PLAIN, TLS)  # the lab lists both ports
    entry["tls"] = False


def _our_connections_to(port: int | None) -> int:
    """This process's established TCP connections to 127.0.0.1:port, as the kernel sees
    them (not as our channel objects say)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    return sum(f"pid={os.getpid()}," in line for line in out.splitlines())


@pytest.fixture
def plain_first(lab: LabStatus, lab_paths: LabPaths, tmp_path: Path) -> Iterator[Session]:
    """A session on the lab's config, with atp-vm2 starting every channel on 5904."""
    session = connect(_lab_config_with(lab_paths, tmp_path, _plain_first))
    yield session
    session.close()


def test_main_stays_plain_and_inputs_relinks_over_tls(
    plain_first: Session, caplog: pytest.LogCaptureFixture
) -> None:
    spice = run(plain_first.manager.get_spice_connection(VM), timeout=30)
    with caplog.at_level(logging.INFO, logger=f"atp.spice.{VM}"):
        inputs = run(spice.open_channel(ChannelType.INPUTS), timeout=30)
    channels = {c.type: c for c in spice.channels()}
    assert channels["main"].status == channels["inputs"].status == "open"
    assert channels["main"].secure is False and channels["inputs"].secure is True
    # the server refused inputs on the plain port once, and main never
    said = [(r.name, r.getMessage()) for r in caplog.records if RELINK in r.getMessage()]
    assert said == [(f"atp.spice.{VM}.inputs", RELINK)]
    # the kernel agrees: one connection to each port, main's plain, inputs' on TLS
    assert (_our_connections_to(PLAIN), _our_connections_to(TLS)) == (1, 1)

    # and the relinked channel carries keys: a line typed on tty1 reaches the guest
    vm = plain_first.vm(VM)
    vm.exec(["rm", "-f", "/tmp/secured"]).check()
    keyboard = SpiceKeyboard(inputs, layout="us")
    # no Ctrl-C first: the tty would flush what follows it (issue 11, item 10); the first
    # newline ends whatever a former test left on the shell's line
    run(keyboard.type("\necho over-tls > /tmp/secured\n"), timeout=60)
    assert wait_for_guest_file(vm, "/tmp/secured") == b"over-tls\n"


def test_without_a_tls_port_the_error_says_so(
    lab: LabStatus, lab_paths: LabPaths, tmp_path: Path
) -> None:
    def plain_only(entry: dict[str, Any]) -> None:
        _plain_first(entry)
        # no TLS port, and no host to discover one from: this config knows only 5904
        for key in ("tls_port", "ca_file", "host"):
            del entry[key]

    session = connect(_lab_config_with(lab_paths, tmp_path, plain_only))
    try:
        spice = run(session.manager.get_spice_connection(VM), timeout=30)
        with pytest.raises(TransportError,
                           match="the server asks for TLS and no tls_port is configured"):
            run(spice.open_channel(ChannelType.INPUTS), timeout=30)
        # main is allowed in the clear and stays open; only inputs failed
        channels = {c.type: c for c in spice.channels()}
        assert channels["main"].status == "open" and channels["main"].secure is False
        assert channels["inputs"].status != "open"
    finally:
        session.close()
