"""``%spice --channels VM`` against the lab's real spice-server: the port VM (a display VM
with the VGA console and two spiceport chardevs, ``PORT_SETTING``) lists every channel its
server offers -- Main, Display, Inputs, Cursor and both ports by name -- each with its
state, and the states follow what the notebook opens and closes. Run it under the lab lock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from atp_notebook.lab.display_vms import PORT_NAMES, PORT_SETTING, display_vm
from atp_notebook.lab.paths import LabPaths
from atp_notebook.notebook.results import TableResult
from tests.conftest import require_lab
from tests.integration.magic_calls import line, plain

TIMEOUT = 60.0
ECHO, SECOND = PORT_NAMES


@pytest.fixture(scope="module")
def vm_name(lab_paths: LabPaths) -> Iterator[str]:
    require_lab(lab_paths)
    with display_vm(PORT_SETTING) as dvm:
        yield dvm.name


def table(ip: InteractiveShell, vm_name: str) -> TableResult:
    result = line(ip, "spice", f"--channels {vm_name}")
    assert isinstance(result, TableResult)
    return result


def test_every_channel_the_server_offers_is_listed_with_its_state(
        ip: InteractiveShell, vm_name: str) -> None:
    result = table(ip, vm_name)
    states = {(c.type, c.id, c.name): c.status for c in result.value}
    # a VGA guest's server: Main, one display with its cursor, Inputs, the two spiceports
    assert states == {
        ("main", 0, None): "open",
        ("display", 0, None): "not opened",
        ("inputs", 0, None): "not opened",
        ("cursor", 0, None): "not opened",
        ("port", 0, ECHO): "not opened",
        ("port", 1, SECOND): "not opened",
    }
    caption, header, *rows = plain(result).splitlines()
    assert caption == f"{vm_name}: 6 Spice channels"
    assert header.split()[:3] == ["channel", "id", "state"]
    assert [row.split()[0] for row in rows] == ["main", "display", "inputs", "cursor",
                                                "port", "port"]
    assert f"port {ECHO}" in plain(result) and f"port {SECOND}" in plain(result)


def test_the_states_follow_what_is_opened_and_closed(ip: InteractiveShell,
                                                     vm_name: str) -> None:
    line(ip, "key", f"{vm_name} shift")  # Inputs
    line(ip, "screenshot", vm_name)  # Display
    magics = ip.magics_manager.registry["AtpMagics"]
    vm = magics.context.session.vm(vm_name)
    port = vm.port(SECOND, timeout=TIMEOUT)
    by_key = {(c.type, c.id): c for c in table(ip, vm_name).value}
    assert {k: c.status for k, c in by_key.items()} == {
        ("main", 0): "open", ("display", 0): "open", ("inputs", 0): "open",
        ("cursor", 0): "not opened", ("port", 0): "not opened", ("port", 1): "open"}
    assert all(c.rtt_ms is not None for c in by_key.values() if c.status == "open")
    port.close()
    after = {(c.type, c.id): c.status for c in table(ip, vm_name).value}
    assert after[("port", 1)] == "closed" and after[("main", 0)] == "open"
    assert after[("port", 0)] == "not opened"  # linked only to learn its name
