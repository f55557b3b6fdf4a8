"""Needle matching (atp_notebook/screen/match.py) on synthetic screens: an element found at
its place or moved within the margin, lost past the margin or when missing, a recolouring
that grayscale matching misses and colour-aware matching sees, exclude areas ignored,
os-autoinst's similarity scale, click points and ranking, OCR areas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.screen.match import (
    match_needle,
    match_needles,
    search_margin,
    search_windows,
    similarity_of,
)
from atp_notebook.screen.needle import Needle, NeedleArea, NeedleProperty

SIZE = (320, 240)  # width, height
BACKGROUND = (128, 128, 128)  # B, G, R
RED = (30, 30, 200)  # B, G, R: gray level 80.8
GREEN_OF_THE_SAME_GRAY = (0, 138, 0)  # gray level 81.0
ELEMENT = (100, 80, 60, 40)  # x, y, width, height


def screen(element_at: tuple[int, int] | None = (100, 80), colour: tuple[int, int, int] = RED,
           spot: tuple[int, int] | None = None) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A gray screen with a coloured element (a frame around a white bar, so it has one
    best place) and, optionally, a small black spot elsewhere."""
    image = np.full((SIZE[1], SIZE[0], 3), BACKGROUND, np.uint8)
    if element_at is not None:
        x, y = element_at
        _, _, w, h = ELEMENT
        image[y:y + h, x:x + w] = colour
        image[y + 10:y + 18, x + 8:x + 40] = (255, 255, 255)
    if spot is not None:
        image[spot[1]:spot[1] + 6, spot[0]:spot[0] + 6] = 0
    return image


def needle_of(*areas: NeedleArea, properties: tuple[str, ...] = (),
              name: str = "element") -> Needle:
    return Needle(name, screen(), areas, ("element",),
                  tuple(NeedleProperty(p) for p in properties))


MATCH = NeedleArea(*ELEMENT)


@dataclass(frozen=True)
class Case:
    name: str
    shown: np.ndarray[Any, np.dtype[np.uint8]]
    areas: tuple[NeedleArea, ...]
    colour: bool
    ok: bool
    position: tuple[int, int] | None  # of the first area, when found
    similarity: tuple[float, float]  # bounds of the first area's similarity


CASES = [
    Case("same place", screen(), (MATCH,), False, True, (100, 80), (1.0, 1.0)),
    Case("moved within the margin", screen((130, 55)), (MATCH,), False, True, (130, 55),
         (1.0, 1.0)),
    Case("moved to the margin's edge", screen((150, 80)), (MATCH,), False, True, (150, 80),
         (1.0, 1.0)),
    Case("moved past the margin", screen((160, 80)), (MATCH,), False, False, None,
         (0.0, 0.5)),
    Case("margin 0, moved 1 px", screen((101, 80)),
         (NeedleArea(*ELEMENT, margin=0),), False, False, (100, 80), (0.0, 0.95)),
    Case("missing", screen(None), (MATCH,), False, False, None, (0.0, 0.5)),
    Case("recoloured, grayscale", screen(colour=GREEN_OF_THE_SAME_GRAY), (MATCH,), False,
         True, (100, 80), (0.99, 1.0)),
    Case("recoloured, colour-aware", screen(colour=GREEN_OF_THE_SAME_GRAY), (MATCH,), True,
         False, None, (0.0, 0.5)),
    Case("colour-aware, same colour", screen(), (MATCH,), True, True, (100, 80), (1.0, 1.0)),
    Case("a spot in the area", screen(spot=(120, 100)), (MATCH,), False, False, (100, 80),
         (0.0, 0.95)),
    Case("a spot in an exclude area", screen(spot=(120, 100)),
         (MATCH, NeedleArea(115, 95, 20, 15, "exclude")), False, True, (100, 80),
         (1.0, 1.0)),
    Case("a spot in an exclude area, colour-aware", screen(spot=(120, 100)),
         (MATCH, NeedleArea(115, 95, 20, 15, "exclude")), True, True, (100, 80),
         (1.0, 1.0)),
    Case("moved, the spot excluded", screen((110, 90), spot=(130, 110)),
         (MATCH, NeedleArea(115, 95, 20, 15, "exclude")), False, True, (110, 90),
         (1.0, 1.0)),
    Case("a lower match level lets the spot pass", screen(spot=(120, 100)),
         (NeedleArea(*ELEMENT, match=50),), False, True, (100, 80), (0.5, 0.95)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_an_area_is_found_where_it_is_or_not_at_all(case: Case) -> None:
    found = match_needle(case.shown, needle_of(*case.areas), colour=case.colour)
    assert found.ok is case.ok, found
    first = found.areas[0]
    low, high = case.similarity
    assert low <= first.similarity <= high, found
    if case.position is not None:
        assert first.position == case.position, found
    assert first.diff.shape == (ELEMENT[3], ELEMENT[2])
    assert len(found.areas) == 1  # exclude areas give no result of their own
    assert found.error == pytest.approx((1 - first.similarity) ** 2)


def test_the_diff_shows_where_the_screen_differs() -> None:
    found = match_needle(screen(spot=(120, 100)), needle_of(MATCH))
    diff = found.areas[0].diff
    ys, xs = np.nonzero(diff)
    # the spot's 6x6 at 20,20 inside the area, spread by one pixel of blur
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (19, 26, 19, 26)


def test_a_bgrx_screen_and_a_pil_screen_match_like_bgr() -> None:
    from PIL import Image

    bgr = screen((110, 70))
    bgrx = np.dstack([bgr, np.zeros(bgr.shape[:2], np.uint8)])
    pil = Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1]), "RGB")
    results = [match_needle(s, needle_of(MATCH)).areas[0] for s in (bgr, bgrx, pil)]
    assert {(r.position, r.similarity) for r in results} == {((110, 70), 1.0)}


def test_a_screen_of_another_size_matches_nothing_and_says_why() -> None:
    found = match_needle(np.zeros((400, 720, 3), np.uint8), needle_of(MATCH))
    assert not found.ok and found.areas == ()
    assert found.reason == "the screen is 720x400, the needle 320x240"


@pytest.mark.parametrize(("mse", "similarity"), [(0.0, 1.0), (2.0, 1.0), (40.0, 0.9),
                                                 (21.0, 0.95), (382.0, 0.0), (1e6, 0.0)])
def test_os_autoinsts_similarity_scale(mse: float, similarity: float) -> None:
    assert similarity_of(mse) == pytest.approx(similarity)


def test_the_colour_property_turns_colour_aware_matching_on() -> None:
    shown = screen(colour=GREEN_OF_THE_SAME_GRAY)
    assert match_needle(shown, needle_of(MATCH)).ok
    coloured = needle_of(MATCH, properties=("colour",))
    assert not match_needle(shown, coloured).ok
    assert match_needle(shown, coloured, colour=False).ok


def test_the_click_point_moves_with_the_area() -> None:
    centre = match_needle(screen((110, 90)), needle_of(MATCH))
    assert centre.click_point() == (110 + 30, 90 + 20)
    from atp_notebook.screen.needle import ClickPoint

    pointed = needle_of(NeedleArea(*ELEMENT, click_point=ClickPoint(5, 6)),
                        NeedleArea(10, 10, 20, 20, click_point=ClickPoint(1, 2, "other")))
    found = match_needle(screen((110, 90)), pointed)
    assert found.click_point() == (10 + 1, 10 + 2)  # the last area with one
    assert found.click_point("other") == (11, 12)
    assert match_needle(screen((110, 90)), needle_of(
        NeedleArea(*ELEMENT, click_point=ClickPoint(5, 6)))).click_point() == (115, 96)


def test_needles_rank_ok_first_then_error_then_workaround_then_name() -> None:
    shown = screen(spot=(120, 100))
    spotted = needle_of(MATCH, name="b-spotted")  # fails: the spot
    lenient = needle_of(NeedleArea(*ELEMENT, match=50), name="c-lenient")
    workaround = needle_of(NeedleArea(*ELEMENT, match=50), properties=("workaround",),
                           name="d-workaround")
    ranked = match_needles(shown, [spotted, lenient, workaround])
    assert [m.needle.name for m in ranked] == ["d-workaround", "c-lenient", "b-spotted"]
    assert [m.ok for m in ranked] == [True, True, False]


def test_a_threshold_lowers_every_areas_bar() -> None:
    shown = screen(spot=(120, 100))
    similarity = match_needle(shown, needle_of(MATCH)).areas[0].similarity
    assert not match_needle(shown, needle_of(MATCH), threshold=0.95 - similarity).ok
    assert match_needle(shown, needle_of(MATCH), threshold=0.97 - similarity).ok


def test_ocr_areas_compare_the_text_read_on_the_screen_with_the_needles() -> None:
    texts = {"needle": "login: root", "same": "login:  root\n", "other": "Password:"}

    def reader_for(screen_text: str) -> Any:
        def read(pixels: np.ndarray[Any, np.dtype[np.uint8]]) -> str:
            # the needle's own PNG is the unchanged screen(): its element is red
            is_needle = tuple(pixels[0, 0]) == RED and not hasattr(read, "needle_read")
            if is_needle:
                read.needle_read = True  # type: ignore[attr-defined]
                return texts["needle"]
            return texts[screen_text]
        return read

    needle = needle_of(MATCH, NeedleArea(*ELEMENT, type="ocr", match=90))
    same = match_needle(screen(), needle, read_text=reader_for("same"))
    assert same.ok and same.areas[1].text == "login: root"
    assert same.areas[1].expected_text == "login: root" and same.areas[1].similarity == 1.0
    other = match_needle(screen(), needle_of(MATCH, NeedleArea(*ELEMENT, type="ocr")),
                         read_text=reader_for("other"))
    assert not other.ok and other.areas[1].similarity < 0.5
    unread = match_needle(screen(), needle_of(MATCH, NeedleArea(*ELEMENT, type="ocr")))
    assert not unread.ok and unread.reason == "its OCR areas need a text reader"


@pytest.mark.parametrize(("place", "moved_to"), [
    ((0, 0), (0, 0)), ((0, 0), (7, 3)),  # the search window clipped at the top-left
    ((260, 200), (260, 200)), ((260, 200), (251, 196)),  # and at the bottom-right
])
def test_an_area_at_the_screens_edge_is_searched_in_the_clipped_window(
        place: tuple[int, int], moved_to: tuple[int, int]) -> None:
    w, h = ELEMENT[2], ELEMENT[3]
    needle = Needle("edge", screen(place), (NeedleArea(place[0], place[1], w, h),), ("e",))
    found = match_needle(screen(moved_to), needle)
    assert found.ok and found.areas[0].position == moved_to
    # moved off the edge, the element's border blurs into the background instead of being
    # mirrored at the screen's edge: a little under 1
    assert found.areas[0].similarity == 1.0 if moved_to == place else (
        0.98 < found.areas[0].similarity < 1.0)


@pytest.mark.parametrize(("copies", "expected"), [
    (((60, 80), (145, 80)), (60, 80)),  # 40 px left beats 45 px right
    (((100, 35), (100, 122)), (100, 122)),  # 42 px down beats 45 px up
])
def test_of_equal_candidates_the_one_closest_to_the_areas_place_wins(
        copies: tuple[tuple[int, int], ...], expected: tuple[int, int]) -> None:
    shown = screen(None)
    for at in copies:
        shown[:] = np.where(screen(at) != screen(None), screen(at), shown)
    found = match_needle(shown, needle_of(MATCH)).areas[0]
    assert (found.position, found.similarity) == (expected, 1.0)


# --- search_ratio: os-autoinst's widening of every search (tinycv.pm search_) -------------


@pytest.mark.parametrize(("margin", "ratio", "searched"), [
    (50, 0.0, 50),
    (50, 0.02, 69),  # int(50 + 0.02 * 974): os-autoinst's usual check
    (50, 1.0, 1024),  # its full-screen check
    (0, 0.5, 512),
    (2000, 0.5, 2000),  # never narrower than the area's own margin
])
def test_search_margin_is_os_autoinsts_formula(margin: int, ratio: float,
                                                searched: int) -> None:
    assert search_margin(NeedleArea(*ELEMENT, margin=margin), ratio) == searched


@pytest.mark.parametrize(("moved_to", "ratio", "ok"), [
    ((169, 80), 0.0, False),  # 69 px away: past the margin of 50
    ((169, 80), 0.02, True),  # within the 69 px a ratio of 0.02 reaches
    ((170, 80), 0.02, False),
    ((250, 190), 0.02, False),
    ((250, 190), 1.0, True),  # the whole screen
    ((0, 0), 1.0, True),
])
def test_a_search_ratio_finds_an_element_moved_past_its_margin(
        moved_to: tuple[int, int], ratio: float, ok: bool) -> None:
    found = match_needle(screen(moved_to), needle_of(MATCH), search_ratio=ratio)
    assert found.ok is ok, found
    if ok:
        assert found.areas[0].position == moved_to
        # at the screen's corner the blur sees no pixel beyond the element: not quite 1
        assert found.areas[0].similarity > 0.98


def test_a_search_ratio_applies_to_every_needle_and_keeps_the_closest_place() -> None:
    shown = screen((100, 80))
    found = match_needles(shown, [needle_of(MATCH, name="a"), needle_of(MATCH, name="b")],
                          search_ratio=1.0)
    # the element where the needle has it wins over any other place on the screen
    assert [(m.needle.name, m.ok, m.areas[0].position) for m in found] == [
        ("a", True, (100, 80)), ("b", True, (100, 80))]


def test_the_search_windows_grow_with_the_search_ratio() -> None:
    needles = [needle_of(MATCH, NeedleArea(10, 10, 20, 10, "ocr"))]
    x, y, w, h = ELEMENT
    assert search_windows(needles) == [(x - 50, y - 50, x + w + 50, y + h + 50),
                                       (10, 10, 30, 20)]
    assert search_windows(needles, 0.02)[0] == (x - 69, y - 69, x + w + 69, y + h + 69)
    assert search_windows(needles, 1.0)[1] == (10, 10, 30, 20)  # OCR areas are not searched


@pytest.mark.parametrize("bad", [-0.01, 1.5, float("nan"), True, "1"])
def test_a_search_ratio_outside_0_to_1_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match=r"search_ratio .* must be a number from 0"):
        match_needle(screen(), needle_of(MATCH), search_ratio=bad)
    with pytest.raises(InvalidArgument, match="search_ratio"):
        search_windows([needle_of(MATCH)], bad)
