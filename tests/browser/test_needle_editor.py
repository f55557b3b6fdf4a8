"""The needle editor in a real browser (JupyterLab + Debian's chromium, through Playwright):
areas drawn with the mouse on its canvas (a match area, an exclude area chosen with the type
selector, a third one removed again from the list), a click inside the match area for the
click point, the name typed, then Save: the kernel writes os-autoinst JSON + PNG with
exactly those areas, and the status line says where. The match area's match percentage and
margin and the needle's properties are typed in their fields: a match of 150 or a negative
margin is marked in the field and refused on Save (the status says which, nothing is
written); once corrected they are saved in the JSON. The editor works on a picture here (no
VM); run it under the lab lock all the same (JupyterLab and chromium load the host)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from playwright.sync_api import Page

from tests.browser.conftest import JupyterLab

SETUP = """\
from PIL import Image, ImageDraw
from atp_notebook.notebook.needle_editor import NeedleEditor
picture = Image.new("RGB", (720, 400), (20, 20, 40))
ImageDraw.Draw(picture).rectangle((100, 50, 299, 149), fill=(230, 230, 230))
editor = NeedleEditor(picture, tags="browser-drawn", directory="needles-out")
editor"""
SAVED = "needles-out/drawn.json"
TIMEOUT_S = 120.0


def drag(page: Page, at: tuple[float, float, float], start: tuple[int, int],
         end: tuple[int, int]) -> None:
    """A left-button drag between two screen pixels of the canvas at (left, top, scale)."""
    left, top, scale = at
    page.mouse.move(left + start[0] * scale, top + start[1] * scale)
    page.mouse.down()
    page.mouse.move(left + end[0] * scale, top + end[1] * scale, steps=8)
    page.mouse.up()


def test_areas_drawn_with_the_mouse_are_saved_as_a_needle(jupyter_lab: JupyterLab,
                                                          page: Page, tmp_path: Path) -> None:
    jupyter_lab.write_notebook("editor.ipynb", [SETUP])
    page.goto(jupyter_lab.url("lab/tree/editor.ipynb"))
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    canvas = page.locator(".atp-needle-canvas")
    canvas.wait_for(timeout=TIMEOUT_S * 1000)
    page.wait_for_function("() => document.querySelector('.atp-needle-canvas').width === 720")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    at = (box["x"], box["y"], box["width"] / 720)

    drag(page, at, (100, 50), (300, 150))             # match (the selector's default)
    page.locator(".atp-needle-type").select_option("exclude")
    drag(page, at, (320, 200), (420, 260))
    page.locator(".atp-needle-type").select_option("ocr")
    drag(page, at, (10, 300), (200, 330))
    page.locator(".atp-needle-remove").nth(2).click()  # the ocr one goes again
    page.mouse.click(at[0] + 150 * at[2], at[1] + 100 * at[2])  # the click point
    page.locator(".atp-needle-name").fill("drawn")
    saved = jupyter_lab.root / SAVED

    # the exclude area's row has no match or margin: only the match area's fields
    match_field, margin_field = page.locator(".atp-needle-match"), page.locator(
        ".atp-needle-margin")
    assert (match_field.count(), margin_field.count()) == (1, 1)
    assert (match_field.input_value(), margin_field.input_value()) == ("96", "50")  # defaults
    for field, bad, good, refusal in (
            ("match", "150", "90", "area 0: match 150 is not a percentage 0-100"),
            ("margin", "-5", "10", "area 0: margin -5 is not a whole number")):
        page.locator(f".atp-needle-{field}").fill(bad)
        page.locator(f".atp-needle-{field}.atp-invalid").wait_for()  # marked as typed
        page.locator(".atp-needle-save").click()
        page.locator(".atp-needle-status").filter(has_text=refusal).wait_for(
            timeout=TIMEOUT_S * 1000)
        assert not saved.exists()
        page.locator(f".atp-needle-{field}").fill(good)
        page.locator(".atp-invalid").wait_for(state="detached")
    page.locator(".atp-needle-properties").fill("colour, bug=bsc#1")
    refused = page.locator(".atp-needle-status").inner_text()  # until this Save's answer
    page.locator(".atp-needle-save").click()

    deadline = time.monotonic() + TIMEOUT_S
    while not saved.exists():
        status = page.locator(".atp-needle-status").inner_text()
        assert "not saved" not in status or status == refused, status
        assert time.monotonic() < deadline, f"no {SAVED} within {TIMEOUT_S:g} s: {status!r}"
        time.sleep(0.2)
    page.get_by_text(f"saved {SAVED}").wait_for(timeout=10_000)
    assert page.locator(".atp-needle-areas li").count() == 2
    # a picture of the editor as left, for a person to look at
    canvas.locator("..").screenshot(path=str(tmp_path / "editor.png"))
    data = json.loads(saved.read_text())
    assert data["tags"] == ["browser-drawn"]
    match, exclude = data["area"]
    # the canvas shows the screen at 1:1 here or scaled: a pixel of rounding either way
    near = [abs(got - want) <= 1 for got, want in zip(
        (match["xpos"], match["ypos"], match["width"], match["height"],
         exclude["xpos"], exclude["ypos"], exclude["width"], exclude["height"],
         match["click_point"]["xpos"], match["click_point"]["ypos"]),
        (100, 50, 200, 100, 320, 200, 100, 60, 50, 50), strict=True)]
    assert all(near), data
    assert (match["type"], exclude["type"]) == ("match", "exclude")
    assert (match["match"], match["margin"]) == (90, 10)
    assert data["properties"] == ["colour", {"name": "bug", "value": "bsc#1"}]
    assert (jupyter_lab.root / "needles-out/drawn.png").is_file()
