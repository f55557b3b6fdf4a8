"""``%screenshot`` parsing, table-driven: good lines become frozen requests, bad ones a
UsageError of one line plus a hint (no I/O, no IPython shell)."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.error import UsageError
from PIL import Image

from atp_notebook.notebook.commands.screen import ImageResult, Screenshot, parse_screenshot_line
from atp_notebook.notebook.commands.words import VmRef, VmSelector

VM = VmRef("atp-vm1")


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1", Screenshot(VM)),
    ("atp-vm1 --region 0,0,200,100", Screenshot(VM, (0, 0, 200, 100))),
    ("atp-vm1 --region=5,6,7,8 --channel 1", Screenshot(VM, (5, 6, 7, 8), 1)),
    ("atp-vm1 --save out.png", Screenshot(VM, save=Path("out.png"))),
    ("atp-vm1@local --channel=0", Screenshot(VmRef("atp-vm1", "local"))),
])
def test_screenshot_lines(line: str, expected: Screenshot) -> None:
    assert parse_screenshot_line(line) == expected


def test_screenshot_uses_the_default_vm() -> None:
    vms = VmSelector("atp-vm1", lambda w: w == "atp-vm1")
    assert parse_screenshot_line("--region 1,1,2,2", vms) == Screenshot(VM, (1, 1, 2, 2))


@pytest.mark.parametrize(("line", "fragment"), [
    ("", "VM"),
    ("atp-vm1 --region", "expected one argument"),
    ("atp-vm1 --region 1,2,3,x", "not X,Y,W,H"),
    ("atp-vm1 --region=-1,0,2,2", "X and Y >= 0"),
    ("atp-vm1 --channel=-1", "0..255"),
    ("atp-vm1 extra", "unrecognized arguments"),
    ("atp-vm1 --save picture", "no image format"),
])
def test_bad_screenshot_lines(line: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as caught:
        parse_screenshot_line(line)
    assert "hint:" in str(caught.value)


def test_an_image_result_has_stable_text_and_a_png() -> None:
    result = ImageResult(Image.new("RGB", (4, 3), (1, 2, 3)), "vm: screenshot 4x3")
    bundle = result._repr_mimebundle_()
    assert bundle["text/plain"] == "vm: screenshot 4x3" == repr(result)
    assert bundle["image/png"].startswith(b"\x89PNG") and set(bundle) == {"text/plain",
                                                                          "image/png"}
