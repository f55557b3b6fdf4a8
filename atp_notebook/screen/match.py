"""Finding a needle on a screen, the os-autoinst way, with a colour-aware mode.

For each match area (os-autoinst ``tinycv_impl.cc search_TEMPLATE``, ``tinycv.pm``):

1. the area of the needle's PNG and the screen's search window (the area grown by its
   ``margin`` on every side, clipped to the screen) are made grayscale and blurred with a
   3x3 Gaussian (``prep``: small rendering differences are not differences);
2. ``cv2.matchTemplate(TM_SQDIFF)`` scores every place in the window; of the places within
   10 of the lowest sum of squared differences, the one closest to the area's own place wins;
3. there, the mean squared difference (MSE) of the blurred pixels gives the similarity on
   os-autoinst's scale, ``0.9 + (40 - MSE) / 380`` clipped to 0..1 (MSE 2 -> 1.0, MSE 40
   -> 0.9), and the area passes at ``similarity >= match / 100 - threshold``;
4. the needle's error is the mean of ``(1 - similarity)^2`` over its areas; of several
   needles, one that passed comes first, then lower error, then a ``workaround`` needle,
   then the name.

``search_ratio`` (0..1, default 0) widens every search window on the way to the whole screen,
as os-autoinst's ``tinycv.pm search_`` does: an area is searched within
``margin + search_ratio * (1024 - margin)`` px (``int()``-truncated), so 1 searches 1024 px
around it. It is an argument of a search, not a key of the needle file (os-autoinst's
``needle.pm`` reads no such key; its backend passes 0.02 on most checks and 1 on every fifth
second and at the deadline, ``backend/baseclass.pm check_asserted_screen``). We never shrink
an area's own margin (os-autoinst would, for a margin over 1024). The default stays 0: we
check on damage, not on a clock, and a full-screen search costs 11.6x a search within a
margin of 50 (bench ``screen_match.area_200x100_full``: 18.4 vs 1.6 ms on 1024x768).

Where we differ: exclude areas are a mask of the needle's pixels (ignored wherever the area
lands) instead of a green rectangle painted over both pictures at fixed places; the closest
candidate is measured in screen coordinates (os-autoinst compares a window-relative point
with an absolute one). Colour-aware mode (``colour=True``, or the needle's ``colour``
property) keeps B, G and R: the search sums the three channels and the MSE is the worst
channel's, so a red that became a green of the same gray level fails where grayscale
matching passes it (os-autoinst PR #1633: "very colour blind"). OCR areas pass when the text
read there on the screen is like the text read on the needle's PNG (``read_text``; similarity
= difflib's ratio of the two), which os-autoinst never compares.

A screen of another size than the needle's PNG matches nothing (the reason says so).
Pure: numpy and OpenCV, no I/O.

Example::

    result = match_needle(screen_bgr, needle)          # NeedleMatch
    result.ok, result.areas[0].similarity, result.areas[0].position
    best = match_needles(screen_bgr, needles)[0]       # best first
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from atp_notebook.errors import InvalidArgument
from atp_notebook.screen.needle import (
    WORKAROUND_PROPERTY,
    Bgr,
    Needle,
    NeedleArea,
    _as_bgr,
)

__all__ = ["FULL_SEARCH_MARGIN", "AreaMatch", "NeedleMatch", "match_needle", "match_needles",
           "search_margin", "search_windows", "similarity_of"]

# os-autoinst minVec: every place whose squared-difference sum is within this of the lowest
CANDIDATE_SLACK = 10.0
# os-autoinst tinycv.pm: the margin a search_ratio of 1 reaches (the whole of a 1024 px screen
# from any place on it)
FULL_SEARCH_MARGIN = 1024
Gray = np.ndarray[Any, np.dtype[np.uint8]]
# reads the text of a BGR picture (atp_notebook.screen.ocr.read_text)
TextReader = Callable[[Bgr], str]


def search_margin(area: NeedleArea, search_ratio: float = 0.0) -> int:
    """How far around ``area`` a search with ``search_ratio`` looks (os-autoinst's formula,
    never below the area's own margin). Example: ``search_margin(area, 0.02)``."""
    widened = int(area.margin + search_ratio * (FULL_SEARCH_MARGIN - area.margin))
    return max(area.margin, widened)


def _checked_ratio(search_ratio: float) -> float:
    if isinstance(search_ratio, bool) or not isinstance(search_ratio, int | float) \
            or not 0.0 <= search_ratio <= 1.0:
        raise InvalidArgument(f"search_ratio {search_ratio!r} must be a number from 0 (each "
                              "area's margin) to 1 (the whole screen)")
    return float(search_ratio)


def similarity_of(mse: float) -> float:
    """os-autoinst's similarity for a mean squared difference of blurred pixels."""
    return min(max(0.9 + (40.0 - mse) / 380.0, 0.0), 1.0)


@dataclass(frozen=True, eq=False)
class AreaMatch:
    """One area's best place on the screen: ``position`` (x, y) of its top-left corner,
    ``similarity`` 0..1, ``mse`` behind it, ``diff`` the absolute difference of the blurred
    pixels there (h, w) uint8; ``text``/``expected_text`` for an OCR area."""

    area: NeedleArea
    similarity: float
    position: tuple[int, int]
    mse: float
    passed: bool
    diff: Gray = field(repr=False)
    text: str | None = None
    expected_text: str | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Where it was found: (left, top, right, bottom) on the screen."""
        x, y = self.position
        return x, y, x + self.area.width, y + self.area.height

    @property
    def offset(self) -> tuple[int, int]:
        """How far from its place in the needle it was found."""
        return self.position[0] - self.area.x, self.position[1] - self.area.y


@dataclass(frozen=True, eq=False)
class NeedleMatch:
    """A needle checked against one screen: ``ok`` when every match/ocr area passed;
    ``error`` is os-autoinst's (mean squared 1 - similarity); ``reason`` says why nothing
    could be compared (a screen of another size)."""

    needle: Needle
    areas: tuple[AreaMatch, ...]
    ok: bool
    error: float
    colour: bool
    reason: str | None = None

    def __repr__(self) -> str:
        sims = ", ".join(f"{a.similarity:.3f}@{a.position[0]},{a.position[1]}"
                         for a in self.areas)
        state = "ok" if self.ok else "failed"
        why = f" ({self.reason})" if self.reason else ""
        return f"<NeedleMatch {self.needle.name} {state} [{sims}]{why}>"

    @property
    def similarity(self) -> float:
        """The lowest area similarity (0 when nothing was compared)."""
        return min((a.similarity for a in self.areas), default=0.0)

    def click_point(self, point_id: str | None = None) -> tuple[int, int]:
        """Where to click (os-autoinst ``testapi``): the click point of the last area that
        has one (with ``point_id``, that one), else the centre of the last area; moved with
        the area to where it was found."""
        found = self.areas
        chosen = None
        for a in reversed(found):
            cp = a.area.click_point
            if cp is not None and (point_id is None or cp.id == point_id):
                chosen = a
                break
        if chosen is None:
            if point_id is not None:
                raise InvalidArgument(f"needle {self.needle.name!r} has no click point "
                                      f"{point_id!r}")
            if not found:
                raise InvalidArgument(f"needle {self.needle.name!r} was not found, so it "
                                      "has no click point")
            chosen = found[-1]
        cp = chosen.area.click_point
        dx, dy = ((chosen.area.width / 2, chosen.area.height / 2) if cp is None
                  else cp.within(chosen.area.width, chosen.area.height))
        return int(chosen.position[0] + dx), int(chosen.position[1] + dy)


# --- preparation -------------------------------------------------------------------------


def _prepared(image: Bgr, box: tuple[int, int, int, int], colour: bool) -> np.ndarray:
    """``box`` of ``image`` grayscale (or BGR) and blurred with a 3x3 Gaussian, the blur
    seeing one pixel beyond the box where there is one (as blurring a region of the whole
    picture does)."""
    left, top, right, bottom = box
    height, width = image.shape[:2]
    gl, gt = max(left - 1, 0), max(top - 1, 0)
    gr, gb = min(right + 1, width), min(bottom + 1, height)
    crop = image[gt:gb, gl:gr, :3]
    picture = crop if colour else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    blurred = cv2.GaussianBlur(picture, (3, 3), 0)
    return blurred[top - gt:top - gt + bottom - top, left - gl:left - gl + right - left]


def _needle_area(needle: Needle, index: int, colour: bool) -> tuple[np.ndarray, Any]:
    """The prepared area ``index`` of the needle and its mask (None: every pixel counts),
    computed once per needle."""
    key = ("area", index, colour)
    cached = needle.cache.get(key)
    if cached is None:
        area = needle.areas[index]
        template = _prepared(needle.image, area.box, colour)
        mask = np.ones(template.shape[:2], np.uint8)
        for other in needle.areas_of("exclude"):
            left = max(other.x - area.x, 0)
            top = max(other.y - area.y, 0)
            right = min(other.x + other.width - area.x, area.width)
            bottom = min(other.y + other.height - area.y, area.height)
            if right > left and bottom > top:
                mask[top:bottom, left:right] = 0
        cached = needle.cache[key] = (template, None if mask.all() else mask)
    return cached


def _area_match(screen: Bgr, needle: Needle, index: int, *, colour: bool,
                threshold: float, search_ratio: float) -> AreaMatch:
    area = needle.areas[index]
    template, mask = _needle_area(needle, index, colour)
    height, width = screen.shape[:2]
    margin = search_margin(area, search_ratio)
    wl, wt = max(area.x - margin, 0), max(area.y - margin, 0)
    wr = min(area.x + area.width + margin, width)
    wb = min(area.y + area.height + margin, height)
    window = _prepared(screen, (wl, wt, wr, wb), colour)
    if mask is None:
        scores = cv2.matchTemplate(window, template, cv2.TM_SQDIFF)
    else:  # a mask of the template's channel count: OpenCV wants them alike
        full = mask if not colour else cv2.merge([mask, mask, mask])
        scores = cv2.matchTemplate(window, template, cv2.TM_SQDIFF, mask=full)
    lowest = float(scores.min())
    ys, xs = np.nonzero(scores <= lowest + CANDIDATE_SLACK)
    # the closest to the area's own place, in screen coordinates
    distance = (xs + wl - area.x) ** 2 + (ys + wt - area.y) ** 2
    pick = int(np.argmin(distance))
    x, y = int(xs[pick]) + wl, int(ys[pick]) + wt
    found = window[y - wt:y - wt + area.height, x - wl:x - wl + area.width]
    diff = cv2.absdiff(found, template)
    squared = diff.astype(np.float32) ** 2
    keep = None if mask is None else mask.astype(bool)
    if colour:
        per_channel = [float(squared[:, :, c][keep].mean() if keep is not None
                             else squared[:, :, c].mean()) for c in range(3)]
        mse = max(per_channel)  # the worst channel: a hue change shows in one of them
        diff = diff.max(axis=2)
    else:
        mse = float(squared[keep].mean() if keep is not None else squared.mean())
    if keep is not None:
        diff = np.where(keep, diff, 0).astype(np.uint8)
    similarity = similarity_of(mse)
    return AreaMatch(area, similarity, (x, y), mse,
                     similarity >= area.match / 100.0 - threshold,
                     np.asarray(diff, dtype=np.uint8))


def _ocr_area(screen: Bgr, needle: Needle, index: int, read_text: TextReader,
              threshold: float) -> AreaMatch:
    area = needle.areas[index]
    left, top, right, bottom = area.box
    key = ("text", index)
    expected = needle.cache.get(key)
    if expected is None:
        expected = needle.cache[key] = _normal(read_text(needle.image[top:bottom,
                                                                      left:right]))
    text = _normal(read_text(screen[top:bottom, left:right, :3]))
    similarity = difflib.SequenceMatcher(None, expected, text).ratio() if (
        expected or text) else 1.0
    diff = np.zeros((area.height, area.width), np.uint8)
    return AreaMatch(area, similarity, (area.x, area.y), 0.0,
                     similarity >= area.match / 100.0 - threshold, diff, text, expected)


def _normal(text: str) -> str:
    return " ".join(text.split())


# --- needles ---------------------------------------------------------------------------


def match_needle(screen: Bgr | Image.Image, needle: Needle, *, colour: bool | None = None,
                 threshold: float = 0.0, read_text: TextReader | None = None,
                 search_ratio: float = 0.0) -> NeedleMatch:
    """``needle`` checked against ``screen`` (B,G,R[,X] (h, w, 3|4) uint8, or a PIL image).

    ``colour``: None follows the needle's ``colour`` property. ``threshold`` is taken off
    every area's required similarity (os-autoinst's). OCR areas need ``read_text`` and are
    read only once every match area passed; without it they fail. ``search_ratio`` (0..1)
    widens each area's search towards the whole screen (:func:`search_margin`).
    """
    search_ratio = _checked_ratio(search_ratio)
    pixels = screen if isinstance(screen, np.ndarray) else _as_bgr(screen)
    use_colour = needle.colour if colour is None else colour
    height, width = pixels.shape[:2]
    if (width, height) != needle.size:
        return NeedleMatch(needle, (), False, 1.0, use_colour,
                           f"the screen is {width}x{height}, the needle "
                           f"{needle.size[0]}x{needle.size[1]}")
    areas = [_area_match(pixels, needle, i, colour=use_colour, threshold=threshold,
                         search_ratio=search_ratio)
             for i, a in enumerate(needle.areas) if a.type == "match"]
    ocr = [i for i, a in enumerate(needle.areas) if a.type == "ocr"]
    reason = None
    if ocr and all(a.passed for a in areas):
        if read_text is None:
            reason = "its OCR areas need a text reader"
        else:
            areas += [_ocr_area(pixels, needle, i, read_text, threshold) for i in ocr]
    ok = reason is None and bool(areas) and all(a.passed for a in areas)
    error = (sum((1.0 - a.similarity) ** 2 for a in areas) / len(areas)) if areas else 1.0
    return NeedleMatch(needle, tuple(areas), ok, error, use_colour, reason)


def match_needles(screen: Bgr | Image.Image, needles: Iterable[Needle], *,
                  colour: bool | None = None, threshold: float = 0.0,
                  read_text: TextReader | None = None,
                  search_ratio: float = 0.0) -> list[NeedleMatch]:
    """Every needle checked against ``screen``, best first (os-autoinst's order)."""
    pixels = screen if isinstance(screen, np.ndarray) else _as_bgr(screen)
    results = [match_needle(pixels, n, colour=colour, threshold=threshold,
                            read_text=read_text, search_ratio=search_ratio) for n in needles]
    return sorted(results, key=_rank)


def _rank(m: NeedleMatch) -> tuple[bool, float, bool, str]:
    return (not m.ok, m.error, not m.needle.has_property(WORKAROUND_PROPERTY), m.needle.name)


def search_windows(needles: Sequence[Needle],
                   search_ratio: float = 0.0) -> list[tuple[int, int, int, int]]:
    """The screen boxes (left, top, right, bottom) a change must touch to change a match:
    each match area grown by its margin (widened by ``search_ratio``), each OCR area."""
    search_ratio = _checked_ratio(search_ratio)
    boxes = []
    for needle in needles:
        for a in needle.areas:
            if a.type == "match":
                m = search_margin(a, search_ratio)
                boxes.append((a.x - m, a.y - m, a.x + a.width + m, a.y + a.height + m))
            elif a.type == "ocr":
                boxes.append(a.box)
    return boxes
