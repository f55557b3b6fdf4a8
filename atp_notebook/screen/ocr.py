"""Reading text off the screen with Tesseract, through tesserocr (libtesseract in-process).

Measured on this 2-core host for one 720x16 console line (research/display.md §5 has the
options): tesserocr 0.07-0.17 s a call with the model loaded once, pytesseract 2.2-3.3 s (it
starts the ``tesseract`` program and loads the model on every call), both reading the line
right: tesserocr is kept (bench/bench_screen.py measures both in one run). tesserocr's wheel
brings libtesseract; the language data is Debian's ``tesseract-ocr-eng``
(scripts/setup.sh), found in :data:`TESSDATA_DIRS` or ``$TESSDATA_PREFIX``.

Screens are prepared for Tesseract, which is trained on dark text on a light page with
letters some 20+ px high: grayscale, light-on-dark inverted, and scaled up ``scale`` times
(2 by default: the VGA console's 9x16 cells become 18x32). One API object per reader, used
under a lock (libtesseract's objects are not thread-safe).

Example::

    reader = TextReader()
    reader.read(vm.display.pixels(), region=(0, 0, 720, 16))   # 'atp login: '
    read_text(screen_bgr)          # the shared default reader
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import tesserocr
from PIL import Image

from atp_notebook.errors import AtpError, InvalidArgument
from atp_notebook.screen.needle import Bgr

__all__ = ["TESSDATA_DIRS", "OcrUnavailable", "TextReader", "read_text"]

TESSDATA_DIRS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata")
DEFAULT_SCALE = 2


class OcrUnavailable(AtpError):
    """Tesseract's language data is not installed."""


def tessdata_dir(language: str) -> str:
    candidates = [os.environ.get("TESSDATA_PREFIX", ""), *TESSDATA_DIRS]
    for folder in candidates:
        if folder and (Path(folder) / f"{language}.traineddata").is_file():
            return folder
    raise OcrUnavailable(f"no Tesseract data for {language!r} in "
                         f"{', '.join(c for c in candidates if c)}",
                         hint=f"apt-get install tesseract-ocr-{language} (scripts/setup.sh "
                              "does), or set $TESSDATA_PREFIX")


def prepare_for_ocr(pixels: Bgr, scale: int = DEFAULT_SCALE) -> Image.Image:
    """Dark text on a light background, ``scale`` times bigger, as a PIL grayscale image."""
    gray = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if float(gray.mean()) < 128:  # mostly dark: a console, light text on black
        gray = 255 - gray
    if scale > 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    # a white border: Tesseract misses letters that touch the picture's edge
    gray = cv2.copyMakeBorder(gray, 8, 8, 8, 8, cv2.BORDER_CONSTANT, value=255)
    return Image.fromarray(gray, "L")


class TextReader:
    """One Tesseract engine for ``language`` (loaded on first use)."""

    def __init__(self, language: str = "eng", scale: int = DEFAULT_SCALE) -> None:
        if scale < 1:
            raise InvalidArgument(f"OCR scale {scale!r}: 1 or more")
        self.language = language
        self.scale = scale
        self._lock = threading.Lock()
        self._api: Any = None

    def _engine(self) -> Any:
        if self._api is None:
            # PSM 6: one uniform block of text (a console, a dialog's label)
            self._api = tesserocr.PyTessBaseAPI(path=tessdata_dir(self.language),
                                                lang=self.language,
                                                # the .pyi gives the enum's values as ...
                                                psm=cast(tesserocr.PSM,
                                                         tesserocr.PSM.SINGLE_BLOCK))
        return self._api

    def read(self, pixels: Bgr | Image.Image,
             region: tuple[int, int, int, int] | None = None) -> str:
        """The text in ``pixels`` (B,G,R[,X] array or PIL image), or in ``region``
        (x, y, width, height) of it; lines end with a newline."""
        array = (np.asarray(pixels.convert("RGB"))[:, :, ::-1]
                 if isinstance(pixels, Image.Image) else pixels)
        if region is not None:
            x, y, width, height = region
            if x < 0 or y < 0 or width <= 0 or height <= 0 \
                    or x + width > array.shape[1] or y + height > array.shape[0]:
                raise InvalidArgument(f"OCR region {region!r} is not inside the "
                                      f"{array.shape[1]}x{array.shape[0]} screen")
            array = array[y:y + height, x:x + width]
        picture = prepare_for_ocr(array, self.scale)
        with self._lock:
            api = self._engine()
            api.SetImage(picture)
            return str(api.GetUTF8Text())

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.End()
                self._api = None


_default: TextReader | None = None
_default_lock = threading.Lock()


def default_reader() -> TextReader:
    global _default  # noqa: PLW0603 - one engine per process: loading it costs ~0.1 s
    with _default_lock:
        if _default is None:
            _default = TextReader()
        return _default


def read_text(pixels: Bgr | Image.Image,
              region: tuple[int, int, int, int] | None = None) -> str:
    """:meth:`TextReader.read` with the process's shared English reader."""
    return default_reader().read(pixels, region)
