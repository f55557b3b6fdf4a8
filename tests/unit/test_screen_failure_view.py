"""A ScreenMismatch raised by a cell's code shows one rich output (MismatchView: the screen,
the needle, the best candidate, the diff, the numbers) and then one error line, through
IPython's custom exception hook that ``%load_ext atp_notebook`` sets. Runs in IPython's
own (non-terminal) shell, in-process."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from PIL import Image

from atp_notebook.errors import ScreenMismatch
from atp_notebook.notebook.screen_failure import MismatchView
from atp_notebook.screen import Needle, NeedleArea, match_needle


def mismatch() -> ScreenMismatch:
    needle = Needle("login", np.full((40, 60, 3), 200, np.uint8), (NeedleArea(10, 10, 20, 20),))
    shown = np.zeros((40, 60, 3), np.uint8)
    best = match_needle(shown, needle)
    return ScreenMismatch("no needle with the tag 'login' matched", screen=Image.fromarray(
        shown, "RGB"), needles=(needle,), best=best, candidates=(best,))


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "atp_notebook")
    ip.user_ns["mismatch"] = mismatch
    yield ip
    ip.run_line_magic("unload_ext", "atp_notebook")
    InteractiveShell.clear_instance()


def test_the_view_has_a_stable_line_a_picture_and_the_numbers() -> None:
    view = MismatchView(mismatch())
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"] == "ScreenMismatch evidence: best candidate 'login' of 1"
    assert bundle["image/png"].startswith(b"\x89PNG")
    assert view.picture is not None
    # screen | needle over candidate | diff, each 60x40 under a caption
    assert view.picture.size == (2 * 60 + 6, 2 * (40 + 14) + 6)
    assert list(view.pictures) == ["screen", "needle", "candidate", "diff"]
    assert "<td>login</td>" in bundle["text/html"] and "similarity" in bundle["text/html"]


def test_a_text_wait_shows_the_text_read() -> None:
    error = ScreenMismatch("'login:' not read", screen=Image.new("RGB", (8, 8)),
                           text="atp-vm1 <tty1>")
    view = MismatchView(error)
    assert view.text() == "ScreenMismatch evidence: text read"
    assert "atp-vm1 &lt;tty1&gt;" in view._repr_mimebundle_()["text/html"]
    assert list(view.pictures) == ["screen"]


def test_a_cell_raising_it_shows_the_view_then_fails_with_one_line(
        shell: InteractiveShell) -> None:
    with capture_output() as shown:
        result = shell.run_cell("raise mismatch()")  # type: ignore[no-untyped-call]
    assert isinstance(result.error_in_exec, ScreenMismatch)  # the cell still fails
    assert len(shown.outputs) == 1
    assert shown.outputs[0].data["text/plain"].startswith("ScreenMismatch evidence")
    assert "image/png" in shown.outputs[0].data
    printed = shown.stdout
    assert "no needle with the tag 'login' matched" in printed
    assert "Traceback" not in printed


def test_other_errors_keep_their_traceback(shell: InteractiveShell) -> None:
    with capture_output() as shown:
        result = shell.run_cell("1 / 0")  # type: ignore[no-untyped-call]
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert not shown.outputs


def test_unloading_removes_the_hook(shell: InteractiveShell) -> None:
    shell.run_line_magic("unload_ext", "atp_notebook")
    assert not shell.custom_exceptions
    shell.run_line_magic("load_ext", "atp_notebook")
    assert tuple(shell.custom_exceptions) == (ScreenMismatch,)
