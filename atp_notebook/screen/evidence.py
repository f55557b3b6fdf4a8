"""Pictures and numbers of a needle check, for a person to see why it failed (or passed).

:func:`evidence_images` draws three pictures of one :class:`NeedleMatch`: the needle's PNG
with its areas (match blue, exclude gray, OCR yellow), the screen with each area where it
was found (green passed, red failed, the click point as a cross), and the difference: the screen
dimmed to gray, magenta over it where it differs from the needle (the blurred pixels'
absolute difference, times 4), in each area where it was found. :func:`save_evidence` writes
them and a JSON of the numbers for a :class:`~atp_notebook.errors.ScreenMismatch`.

Example::

    try:
        vm.assert_screen("login", timeout=30)
    except ScreenMismatch as exc:
        save_evidence(exc, "failures/login")     # screen.png, needle.png, candidate.png, ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from atp_notebook.errors import ScreenMismatch
from atp_notebook.screen.match import NeedleMatch

__all__ = ["evidence_images", "match_numbers", "save_evidence"]

AREA_COLOURS = {"match": (40, 120, 255), "exclude": (150, 150, 150), "ocr": (255, 210, 0)}
PASSED = (0, 220, 0)
FAILED = (255, 40, 40)
DIFF_GAIN = 4  # a difference of 64 of 255 shows in full colour
DIFF_COLOUR = (255, 0, 255)


def _rgb(pixels: np.ndarray[Any, Any]) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(pixels[:, :, 2::-1]), "RGB")


def evidence_images(found: NeedleMatch,
                    screen: Image.Image | None = None) -> dict[str, Image.Image]:
    """``needle`` (its PNG and areas), and with a ``screen``: ``candidate`` (the screen
    with the areas where they were found) and ``diff``."""
    needle_picture = _rgb(found.needle.image)
    draw = ImageDraw.Draw(needle_picture)
    for area in found.needle.areas:
        left, top, right, bottom = area.box
        draw.rectangle((left, top, right - 1, bottom - 1), outline=AREA_COLOURS[area.type],
                       width=2)
    out = {"needle": needle_picture}
    if screen is None:
        return out
    candidate = screen.convert("RGB")
    strength = Image.new("L", candidate.size, 0)
    draw = ImageDraw.Draw(candidate)
    for a in found.areas:
        left, top, right, bottom = a.box
        draw.rectangle((left, top, right - 1, bottom - 1),
                       outline=PASSED if a.passed else FAILED, width=2)
        amplified = np.minimum(a.diff.astype(np.uint16) * DIFF_GAIN, 255).astype(np.uint8)
        strength.paste(Image.fromarray(amplified, "L"), (left, top))
    # the screen dimmed to gray for where things are, the difference in magenta over it
    dimmed = screen.convert("L").point(lambda v: v // 4).convert("RGB")
    diff = Image.composite(Image.new("RGB", candidate.size, DIFF_COLOUR), dimmed, strength)
    if found.areas and found.ok:
        x, y = found.click_point()
        draw.line((x - 6, y, x + 6, y), fill=PASSED, width=2)
        draw.line((x, y - 6, x, y + 6), fill=PASSED, width=2)
    out["candidate"] = candidate
    out["diff"] = diff
    return out


def match_numbers(found: NeedleMatch) -> dict[str, Any]:
    """The numbers of a check, JSON-ready."""
    return {
        "needle": found.needle.name, "ok": found.ok, "error": found.error,
        "colour": found.colour, "reason": found.reason,
        "areas": [{"type": a.area.type, "needle_box": list(a.area.box),
                   "found_at": list(a.position), "similarity": a.similarity, "mse": a.mse,
                   "required": a.area.match / 100, "passed": a.passed,
                   **({"text": a.text, "expected_text": a.expected_text}
                      if a.text is not None else {})}
                  for a in found.areas],
    }


def save_evidence(error: ScreenMismatch, folder: str | Path) -> list[Path]:
    """Write what ``error`` carries into ``folder``: ``screen.png``, and for the best
    candidate ``needle.png``, ``candidate.png``, ``diff.png``, and ``numbers.json`` (every
    candidate's numbers, best first; the text read, for a text wait). The paths written."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    if error.screen is not None:
        error.screen.save(target / "screen.png")
        written.append(target / "screen.png")
    if error.best is not None:
        for name, image in evidence_images(error.best, error.screen).items():
            image.save(target / f"{name}.png")
            written.append(target / f"{name}.png")
    numbers = {"message": error.message,
               "candidates": [match_numbers(m) for m in error.candidates],
               "text": error.text}
    (target / "numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
    written.append(target / "numbers.json")
    return written
