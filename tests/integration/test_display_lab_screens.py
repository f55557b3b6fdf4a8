"""The lab's own VMs seen through our display channel: ``vm.screenshot()`` equals QEMU's
screendump on atp-vm1 (plain) and atp-vm2 (TLS), what is typed shows up as frames, and
``%screenshot`` in the IPython shell, bad arguments included.

Both VMs show the VGA text console (720x400) with a blinking cursor, so the comparison
takes a screenshot, the screendump and a second screenshot and accepts a round where all
three agree (the cursor did not blink in between); a few rounds always find one."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from atp_notebook.errors import InvalidArgument
from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.sasl_vm import SaslVmFiles
from atp_notebook.lab.status import LabStatus
from atp_notebook.notebook import AtpMagics
from atp_notebook.notebook.commands.screen import ImageResult
from atp_notebook.session import Session, Vm
from atp_notebook.spice.display.live import Frame
from tests.integration.magic_calls import line, plain

ROUNDS = 20


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def agreeing_round(vm: Vm) -> tuple[np.ndarray, np.ndarray]:
    """(screenshot, screendump) of a round where nothing changed between them, or the last
    round's pair when none agreed (the assertion then shows how far apart they are)."""
    pair = None
    for _ in range(ROUNDS):
        before = rgb(vm.screenshot())
        dump = rgb(vm.screendump())
        after = rgb(vm.screenshot())
        pair = (after, dump)
        if np.array_equal(before, after) and np.array_equal(after, dump):
            return pair
        vm.display.wait_for_change(timeout=2) if not np.array_equal(before, after) else None
    assert pair is not None
    return pair


def differing(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"sizes differ: {a.shape} vs {b.shape}"
    return f"{int((a != b).any(axis=2).sum())} pixels differ"


@pytest.mark.parametrize("name", ["atp-vm1", "atp-vm2"])
def test_the_screenshot_equals_qemus_screendump(session: Session, name: str) -> None:
    vm = session.vm(name)
    shot, dump = agreeing_round(vm)
    assert np.array_equal(shot, dump), differing(shot, dump)
    assert vm.display.stats().messages > 0


def test_typed_text_arrives_as_frames_and_the_screen_still_matches(session: Session) -> None:
    vm = session.vm("atp-vm1")
    vm.screenshot()  # the display is open and drawn
    frames: list[Frame] = []
    with vm.display.add_listener(frames.append):
        vm.type("echo display-frames-test\n")
        frame = vm.display.wait_for_change(timeout=20)
        # the cursor blinks every ~0.27 s: still for less than that means the echo is done
        vm.display.wait_still(0.2, timeout=30)
    assert frame.size == (720, 400) and frame.rects
    assert frames and all(f.number > 0 for f in frames)
    assert [f.number for f in frames] == sorted(f.number for f in frames)
    shot, dump = agreeing_round(vm)
    assert np.array_equal(shot, dump), differing(shot, dump)


def test_a_region_is_the_same_pixels_as_the_whole_screen_there(session: Session) -> None:
    vm = session.vm("atp-vm1")
    whole = rgb(vm.screenshot())
    part = rgb(vm.screenshot(region=(10, 20, 100, 50)))
    assert part.shape == (50, 100, 3)
    # the cursor may blink between the two: compare a part of the screen it never visits
    assert np.array_equal(part[:5], whole[20:25, 10:110])
    with pytest.raises(InvalidArgument, match="not inside the 720x400 screen"):
        vm.screenshot(region=(700, 0, 100, 10))


def qmp_screendump(socket_path: Path, target: Path) -> Image.Image:
    """QEMU's own screendump through a QMP unix socket: the Spice-only lab VM has no
    libvirt, so the test speaks QMP to the socket the lab gave its QEMU."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(socket_path))
        replies = sock.makefile("rb")
        json.loads(replies.readline())  # the greeting
        for command in ({"execute": "qmp_capabilities"},
                        {"execute": "screendump", "arguments": {"filename": str(target)}}):
            sock.sendall(json.dumps(command).encode() + b"\n")
            while True:  # events may come before the reply
                reply = json.loads(replies.readline())
                if "return" in reply or "error" in reply:
                    assert "return" in reply, reply
                    break
    with Image.open(target) as dumped:
        return dumped.convert("RGB")


def test_a_spice_only_vm_screenshot_equals_its_qemu_screendump(
        session: Session, lab_paths: LabPaths, tmp_path: Path) -> None:
    vm = session.vm("atp-sasl")  # Spice on TLS with SASL, no libvirt host
    assert vm.spice_only
    qmp = SaslVmFiles.at(lab_paths).qmp_socket
    pair = None
    for round_ in range(ROUNDS):
        before = rgb(vm.screenshot())
        dump = rgb(qmp_screendump(qmp, tmp_path / f"dump{round_}.ppm"))
        after = rgb(vm.screenshot())
        pair = (after, dump)
        if np.array_equal(before, after) and np.array_equal(after, dump):
            break
    assert pair is not None
    assert np.array_equal(pair[0], pair[1]), differing(pair[0], pair[1])


# --- %screenshot -------------------------------------------------------------------------


@pytest.fixture
def magics(ip: InteractiveShell, lab: LabStatus) -> Iterator[AtpMagics]:
    found = [c for c in ip.configurables if isinstance(c, AtpMagics)]
    assert len(found) == 1
    yield found[0]


def test_screenshot_magic_shows_the_picture_with_a_stable_line(
        ip: InteractiveShell, magics: AtpMagics, tmp_path: Path) -> None:
    result = line(ip, "screenshot", "atp-vm1")
    assert isinstance(result, ImageResult)
    assert plain(result) == "atp-vm1: screenshot 720x400"
    assert result.value.size == (720, 400)
    bundle = result._repr_mimebundle_()
    assert bundle["image/png"].startswith(b"\x89PNG") and "text/html" not in bundle
    target = tmp_path / "top.png"
    part = line(ip, "screenshot", f"atp-vm1 --region 0,0,720,40 --save {target}")
    assert plain(part) == f"atp-vm1: screenshot 720x40 region 0,0,720,40, saved to {target}"
    with Image.open(target) as saved:
        assert saved.size == (720, 40)


@pytest.mark.parametrize(("args", "fragment"), [
    ("atp-vm1 --region 1,2,3", "not X,Y,W,H"),
    ("atp-vm1 --region 0,0,0,5", "W and H > 0"),
    ("atp-vm1 --channel x", "not a display channel id"),
    ("atp-vm1 --channel 300", "0..255"),
    ("atp-vm1 --bogus", "unrecognized arguments"),
    ("atp-vm1 --save shot.nosuchformat", "no image format"),
])
def test_screenshot_magic_refuses_bad_arguments(ip: InteractiveShell, magics: AtpMagics,
                                                args: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        line(ip, "screenshot", args)


def test_screenshot_magic_names_a_region_off_the_screen(
        ip: InteractiveShell, magics: AtpMagics) -> None:
    with pytest.raises(InvalidArgument, match="not inside the 720x400 screen"):
        line(ip, "screenshot", "atp-vm1 --region 700,0,100,10")
