"""Screen assertions: os-autoinst needles (JSON + PNG), matched with OpenCV, and OCR.

:mod:`.needle` loads and checks needle files, :mod:`.match` finds them on a screen (pure:
numpy and OpenCV), :mod:`.ocr` reads text, :mod:`.vm_screen` waits on a VM's display for a
needle or a text (``vm.assert_screen``, ``vm.wait_for_text``), :mod:`.evidence` draws and
saves what a failed check saw (``ScreenMismatch``).

Example::

    from atp_notebook.screen import load_needles, match_needle
    needles = load_needles("needles/")
    print(match_needle(vm.display.pixels(), needles.named("login")))
"""

from atp_notebook.errors import NeedleError, ScreenMismatch
from atp_notebook.screen.evidence import evidence_images, save_evidence
from atp_notebook.screen.match import AreaMatch, NeedleMatch, match_needle, match_needles
from atp_notebook.screen.needle import (
    ClickPoint,
    Needle,
    NeedleArea,
    NeedleProperty,
    NeedleSet,
    load_needle,
    load_needles,
)

__all__ = [
    "AreaMatch",
    "ClickPoint",
    "Needle",
    "NeedleArea",
    "NeedleError",
    "NeedleMatch",
    "NeedleProperty",
    "NeedleSet",
    "ScreenMismatch",
    "evidence_images",
    "load_needle",
    "load_needles",
    "match_needle",
    "match_needles",
    "save_evidence",
]
