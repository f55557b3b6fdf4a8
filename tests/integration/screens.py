"""Comparing what Spice drew with QEMU's screendump in lab tests: pixel differences, PSNR,
and a wait that re-checks once the display is still, until the two agree or a deadline.

Exact equality is the rule; :data:`JPEG_TOLERANCE` is the one tolerance, for lossy pictures
(JPEG images, MJPEG stream frames): the one tests/unit/test_codecs_corpus.py holds the
decoded JPEG corpus to. Where the server JPEG-compressed a whole screen in one image, the
exact reference is :func:`jpeg_round_trip` of the screendump. On failure both pictures are
saved as PNGs under :data:`FAILURES` and the message says where, how many pixels differ and
by how much.

Example::

    diff = wait_until_same(vm.display, lambda: vm.screendump(0), "glz: photo")
    assert diff.pixels == 0
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atp_notebook.errors import OperationTimeout
from atp_notebook.spice.display_facade import VmDisplay

STILL_S = 0.5  # no frame for this long: the display is still
SAME_TIMEOUT_S = 60.0
# kept across runs (pytest's tmp_path of a run is gone after three more, and several
# engineers' runs share the machine)
FAILURES = Path(tempfile.gettempdir()) / "atp-display-failures"
# spice-server's JPEG quality (red-parse / image-encoders: jpeg_quality 85); libjpeg's
# default 4:2:0 chroma subsampling
SERVER_JPEG_QUALITY = 85


@dataclass(frozen=True)
class Tolerance:
    """How far a lossy picture may be from the reference: PSNR over all channels at least
    ``psnr_db``, and the mean absolute difference of each channel (0-255) at most
    ``mean_abs``."""

    psnr_db: float
    mean_abs: float


# as the JPEG corpus test: spice-server's JPEG (quality 85) of the known mixed screen was
# 31.0 dB and 2.9 there (text edges differ by up to 143)
JPEG_TOLERANCE = Tolerance(psnr_db=30.0, mean_abs=3.0)


@dataclass(frozen=True)
class ScreenDiff:
    """How two pictures differ: ``pixels`` that differ at all, PSNR in dB (inf when equal),
    the largest per-channel mean absolute difference, the largest single difference."""

    size: tuple[int, int]
    reference_size: tuple[int, int]
    pixels: int
    psnr_db: float
    mean_abs: float
    max_abs: int

    def within(self, tolerance: Tolerance | None) -> bool:
        """Equal (``tolerance`` None) or within it; pictures of two sizes never are."""
        if self.size != self.reference_size:
            return False
        if tolerance is None:
            return self.pixels == 0
        return self.psnr_db >= tolerance.psnr_db and self.mean_abs <= tolerance.mean_abs

    def __str__(self) -> str:
        if self.size != self.reference_size:
            return f"sizes differ: {self.size} vs the reference's {self.reference_size}"
        return (f"{self.pixels} of {self.size[0] * self.size[1]} pixels differ, PSNR "
                f"{self.psnr_db:.1f} dB, mean abs {self.mean_abs:.2f}, max {self.max_abs}")


def screen_diff(image: Image.Image, reference: Image.Image) -> ScreenDiff:
    """How ``image`` differs from ``reference`` (both taken as RGB)."""
    if image.size != reference.size:
        return ScreenDiff(image.size, reference.size, image.width * image.height, 0.0,
                          255.0, 255)
    a = np.asarray(image.convert("RGB"), dtype=np.int16)
    b = np.asarray(reference.convert("RGB"), dtype=np.int16)
    delta = np.abs(a - b)
    pixels = int(np.count_nonzero(delta.any(axis=2)))
    mse = float(np.mean(delta.astype(np.float64) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)
    mean_abs = float(delta.reshape(-1, 3).mean(axis=0).max())
    return ScreenDiff(image.size, reference.size, pixels, psnr, mean_abs, int(delta.max()))


def jpeg_round_trip(image: Image.Image, quality: int = SERVER_JPEG_QUALITY) -> Image.Image:
    """``image`` JPEG-compressed as spice-server does (libjpeg, ``quality``, 4:2:0) and
    decoded again by libjpeg: what a correct client shows for a screen sent as one JPEG
    image (measured on the jpeg display VM: equal to the pixel for every known image)."""
    data = io.BytesIO()
    image.convert("RGB").save(data, "JPEG", quality=quality, subsampling=2)
    with Image.open(data) as decoded:
        return decoded.convert("RGB")


def save_pair(out: Path, name: str, image: Image.Image, reference: Image.Image) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    image.save(out / f"{safe}-spice.png")
    reference.save(out / f"{safe}-screendump.png")
    return out / f"{safe}-*.png"


def wait_until_same(display: VmDisplay, reference: Callable[[], Image.Image], what: str,
                    tolerance: Tolerance | None = None, timeout: float = SAME_TIMEOUT_S,
                    out: Path = FAILURES) -> ScreenDiff:
    """Until ``display``'s screenshot equals ``reference()`` (or is within ``tolerance``):
    each check waits for the display to be still first, and after a mismatch for its next
    change (or a moment). At the deadline both pictures are saved in ``out`` and the test
    fails saying how they differ. The last comparison is returned."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(deadline - time.monotonic(), 0.1)
        with contextlib.suppress(OperationTimeout):  # compared all the same: the deadline
            display.wait_still(STILL_S, timeout=remaining)  # decides
        shot, dump = display.screenshot(timeout=remaining), reference()
        diff = screen_diff(shot, dump)
        if diff.within(tolerance):
            return diff
        if time.monotonic() >= deadline:
            saved = save_pair(out, what, shot, dump)
            wanted = "equal" if tolerance is None else f"within {tolerance}"
            pytest.fail(f"{what}: Spice's screen is not {wanted} QEMU's screendump after "
                        f"{timeout:g} s: {diff}; saved {saved}")
        with contextlib.suppress(OperationTimeout):
            display.wait_for_change(timeout=min(2.0, remaining))
