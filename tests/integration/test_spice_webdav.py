"""Folder sharing over Spice against the lab's real QEMU / spice-server and Debian's
spice-webdavd in the guest (issue 16, WebDav).

One webdav VM boots for the module (``WEBDAV_SETTING``: the VGA text console and the
``org.spice-space.webdav.0`` spiceport on its guest virtio-serial port); the guest's
spice-webdavd is started once through its agent (``atp-webdavd start``, lab/guest_webdav.py)
and survives every share and unshare (it waits for the host side again). Checked: the guest
fetches a 1 MB random file with busybox wget, byte-exact; writes to a read-only share are
403 and nothing appears on the host; the webdav channel killed under a share leaves Main,
Inputs and Display working and the guest's next fetch works through the relinked channel.
Run it under the lab lock.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atp_notebook.errors import ChannelClosed, InvalidArgument
from atp_notebook.lab.display_vms import WEBDAV_SETTING, display_vm
from atp_notebook.lab.guest_webdav import WEBDAVD_PORT
from atp_notebook.lab.paths import LabPaths
from atp_notebook.loop import get_loop
from atp_notebook.session import Vm, connect
from atp_notebook.spice.proto.constants import ChannelType
from tests.conftest import require_lab
from tests.integration.waiting import wait_for_guest_file

TIMEOUT = 60.0  # TCG guest: 1 MB through wget and the mux takes a few seconds
MB = 1_000_000
URL = f"http://127.0.0.1:{WEBDAVD_PORT}"


@pytest.fixture(scope="module")
def vm(lab_paths: LabPaths) -> Iterator[Vm]:
    require_lab(lab_paths)
    with connect(lab_paths.config_file) as session, display_vm(WEBDAV_SETTING) as dvm:
        vm = session.vm(dvm.name)
        vm.exec(["/usr/bin/atp-webdavd", "start"], timeout=TIMEOUT).check()
        try:
            yield vm
        finally:
            vm.exec(["/usr/bin/atp-webdavd", "stop"], timeout=TIMEOUT)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "random.bin").write_bytes(os.urandom(MB))
    return shared


def fetch(vm: Vm, name: str) -> tuple[int, str]:
    """The guest's wget of ``name`` from the share: (size, sha256) of what it saved (once
    the guest's daemon answers: after each new link it resets connections for a moment)."""
    script = (f"atp-webdavd wait && rm -f /tmp/got && wget -q -O /tmp/got {URL}/{name} "
              "&& wc -c </tmp/got && sha256sum /tmp/got")
    done = vm.exec(["/bin/sh", "-c", script], timeout=TIMEOUT).check()
    size, digest = done.stdout_text.split()[:2]
    return int(size), digest


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in path.rglob("*")}


def test_the_guest_fetches_a_file_byte_exact(vm: Vm, folder: Path) -> None:
    want = hashlib.sha256((folder / "random.bin").read_bytes()).hexdigest()
    with vm.share_folder(folder, timeout=TIMEOUT) as share:
        assert fetch(vm, "random.bin") == (MB, want)
        assert share.served >= 1
    assert not share.sharing
    assert share.connections == 0


def test_a_write_to_a_read_only_share_is_refused(vm: Vm, folder: Path) -> None:
    before = snapshot(folder)
    with vm.share_folder(folder, timeout=TIMEOUT):
        for method, path in (("PUT", "/put.txt"), ("DELETE", "/random.bin")):
            script = ("echo written-by-the-guest >/tmp/put.txt && "
                      f"atp-dav-request {method} {path} /tmp/put.txt")
            if method != "PUT":
                script = f"atp-dav-request {method} {path}"
            reply = vm.exec(["/bin/sh", "-c", script], timeout=TIMEOUT).check().stdout
            assert reply.startswith(b"HTTP/1.0 403 "), (method, reply[:200])
    assert snapshot(folder) == before


def test_a_path_that_is_not_a_folder_is_refused(vm: Vm, folder: Path) -> None:
    with pytest.raises(InvalidArgument, match="is not a folder"):
        vm.share_folder(folder / "random.bin", timeout=TIMEOUT)


def test_a_killed_webdav_channel_fails_alone_and_sharing_works_again(vm: Vm,
                                                                     folder: Path) -> None:
    want = (MB, hashlib.sha256((folder / "random.bin").read_bytes()).hexdigest())
    with vm.share_folder(folder, timeout=TIMEOUT) as share:
        assert fetch(vm, "random.bin") == want
        vm.screenshot(timeout=TIMEOUT)  # Display open too
        vm.press("shift", timeout=TIMEOUT)  # and Inputs
        channel = vm.spice.channel(ChannelType.WEBDAV, 0)
        get_loop().call(channel.abort(ChannelClosed("killed by the test")), timeout=TIMEOUT)
        # Main, Inputs and Display live on: a command typed on the console runs
        assert {(r.type, r.status) for r in vm.spice.channels()} >= {
            ("main", "open"), ("inputs", "open"), ("display", "open")}
        marker = f"/tmp/atp-webdav-{time.monotonic_ns()}"
        vm.type(f"echo typed >{marker}\n", timeout=TIMEOUT)
        assert wait_for_guest_file(vm, marker, TIMEOUT) == b"typed\n"
        assert vm.screenshot(timeout=TIMEOUT).size[0] > 0
        # the share links the channel again by itself; once the guest's daemon sees it,
        # the guest's next fetch works
        share.wait_ready(timeout=TIMEOUT)
        assert fetch(vm, "random.bin") == want
        assert share.losses >= 1

