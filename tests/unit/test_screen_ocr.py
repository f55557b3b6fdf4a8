"""OCR (atp_notebook/screen/ocr.py) with the real Tesseract on pictures drawn here: dark on
light and light on dark (a console) read alike, a region reads only its part, a region off
the picture and missing language data are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from atp_notebook.errors import InvalidArgument
from atp_notebook.screen import ocr
from atp_notebook.screen.ocr import OcrUnavailable, TextReader, read_text

LINES = ("Welcome to atp 2.06", "login: root")


def drawn(foreground: tuple[int, int, int], background: tuple[int, int, int]
          ) -> Image.Image:
    image = Image.new("RGB", (400, 80), background)
    font = ImageFont.load_default(size=20)  # Pillow's own scalable font: no system fonts
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(LINES):
        draw.text((10, 8 + row * 36), line, font=font, fill=foreground)
    return image


@pytest.mark.parametrize(("foreground", "background"), [
    ((0, 0, 0), (255, 255, 255)),  # a dialog
    ((170, 170, 170), (0, 0, 0)),  # a console: inverted before reading
])
def test_lines_are_read_dark_on_light_and_light_on_dark(
        foreground: tuple[int, int, int], background: tuple[int, int, int]) -> None:
    picture = drawn(foreground, background)
    assert read_text(picture).split("\n")[:2] == list(LINES)
    bgrx = np.dstack([np.asarray(picture)[:, :, ::-1],
                      np.zeros((80, 400), np.uint8)])  # as the display gives it
    assert read_text(bgrx).split("\n")[:2] == list(LINES)


def test_a_region_reads_only_its_part() -> None:
    assert read_text(drawn((0, 0, 0), (255, 255, 255)), (0, 40, 400, 40)).strip() == LINES[1]


@pytest.mark.parametrize("region", [(0, 0, 401, 10), (-1, 0, 5, 5), (0, 0, 0, 5)])
def test_a_region_off_the_picture_is_refused(region: tuple[int, int, int, int]) -> None:
    with pytest.raises(InvalidArgument, match=r"OCR region .* is not inside the 400x80"):
        read_text(drawn((0, 0, 0), (255, 255, 255)), region)


def test_missing_language_data_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "TESSDATA_DIRS", ())
    monkeypatch.delenv("TESSDATA_PREFIX", raising=False)
    reader = TextReader("deu")
    with pytest.raises(OcrUnavailable, match="no Tesseract data for 'deu'") as caught:
        reader.read(drawn((0, 0, 0), (255, 255, 255)))
    assert caught.value.hint is not None and "tesseract-ocr-deu" in caught.value.hint
    with pytest.raises(InvalidArgument, match="OCR scale 0"):
        TextReader(scale=0)
